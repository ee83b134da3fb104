"""The pure-Python original, as the seed documents describe it, for the fan-out benchmark.

    python3 baseline_server.py --port P --db PATH [--host 127.0.0.1] [--interval 1] [--broadcast]

Seed 000 (implementation summary) and 001 (API doc) describe a `websockets` server whose
background asyncio task, every `update_interval`, fetches the metrics from the skills DB
with SQL on the event loop (SkillsStorage is synchronous sqlite3), builds the JSON payload
and sends it to every client in turn, dropping the ones that closed; clients may subscribe
to one skill.  This file is that design, written reasonably:

- the SQL is the per-tick SQL of bench/analytics_bench.py (top skills from `skill_metrics`,
  24 h / 1 h windows and the z-score inputs from `skill_invocation`), so its snapshot carries
  the same figures as ours and has about the same size;
- the payload is serialised once per subscription (all clients subscribed to all skills share
  one string), not once per client;
- each client gets `await ws.send(text)` in turn, as the seed's "Send to all clients" loop
  with per-client error handling does.  `--broadcast` uses websockets' `broadcast()` instead
  (the library's fire-and-forget fan-out, which the seeds do not use), for comparison;
- the loop sleeps `update_interval` after each broadcast, as `while running: await
  broadcast(); await asyncio.sleep(interval)` does, so a slow broadcast lowers the rate.

One addition for measurement: every metrics_update carries a `seq` counter, as ours does
(protocol v1); the original has none.  Stdin accepts "busy SECONDS": the main thread then
runs pure-Python CPU work for that long (the GIL benchmark).  Prints "LISTENING <port>"
when ready.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import signal
import sqlite3
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from websockets.asyncio.server import ServerConnection, broadcast, serve
from websockets.exceptions import ConnectionClosed

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from analytics_bench import BASELINE_TOP, BASELINE_WINDOWS, BASELINE_ZSCORE  # noqa: E402

__all__ = ["BaselineServer", "main"]

log = logging.getLogger("baseline")

TOP_N = 10
ANOMALY_THRESHOLD = 2.0


def iso(t: datetime) -> str:
    return t.isoformat(timespec="milliseconds").replace("+00:00", "Z")


class BaselineServer:
    """websockets server + asyncio broadcast task, the shape of the original RealTimeMetricsServer."""

    def __init__(self, host: str, port: int, db_path: Path, update_interval: float,
                 use_broadcast: bool = False) -> None:
        self.host = host
        self.port = port
        self.update_interval = update_interval
        self.use_broadcast = use_broadcast
        self.clients: set[ServerConnection] = set()
        self.subscriptions: dict[ServerConnection, str | None] = {}
        self.conn = sqlite3.connect(db_path, check_same_thread=False)
        self.conn.row_factory = sqlite3.Row
        self.seq = 0
        self._running = False
        self._server: Any = None
        self._broadcast_task: asyncio.Task[None] | None = None
        self.tick_seconds: list[float] = []

    # ---- lifecycle ----

    async def start(self) -> None:
        self._running = True
        self._server = await serve(self.client_handler, self.host, self.port)
        self.port = self._server.sockets[0].getsockname()[1]
        self._broadcast_task = asyncio.create_task(self._broadcast_loop())

    async def stop(self) -> None:
        self._running = False
        if self._broadcast_task:
            self._broadcast_task.cancel()
        if self._server:
            self._server.close()
            await self._server.wait_closed()
        self.conn.close()

    # ---- clients ----

    def register_client(self, ws: ServerConnection) -> None:
        self.clients.add(ws)
        self.subscriptions[ws] = None

    def unregister_client(self, ws: ServerConnection) -> None:
        self.clients.discard(ws)
        self.subscriptions.pop(ws, None)

    async def client_handler(self, ws: ServerConnection) -> None:
        self.register_client(ws)
        try:
            await ws.send(json.dumps({
                "type": "connected", "message": "Connected to Session-Buddy real-time metrics",
                "timestamp": iso(datetime.now(timezone.utc)),
            }))
            async for message in ws:
                await self.handle_client_message(ws, message)
        except ConnectionClosed:
            pass
        finally:
            self.unregister_client(ws)

    async def handle_client_message(self, ws: ServerConnection, message: str | bytes) -> None:
        try:
            data = json.loads(message)
        except (json.JSONDecodeError, UnicodeDecodeError):
            await ws.send(json.dumps({"type": "error", "message": "Invalid JSON"}))
            return
        kind = data.get("type") if isinstance(data, dict) else None
        now = iso(datetime.now(timezone.utc))
        if kind == "subscribe":
            skill = data.get("skill_name", data.get("skill"))
            self.subscriptions[ws] = skill
            await ws.send(json.dumps({
                "type": "subscription_confirmed", "skill": skill, "skill_name": skill,
                "message": f"Subscribed to updates for {skill}" if skill else "Subscribed to all skills",
                "timestamp": now,
            }))
        elif kind == "ping":
            await ws.send(json.dumps({"type": "pong", "timestamp": now}))
        else:
            await ws.send(json.dumps({"type": "error", "message": f"Unknown message type: {kind}"}))

    # ---- metrics ----

    def fetch_metrics(self) -> dict[str, Any]:
        """The tick's SQL, synchronous on the event loop as in the original."""
        now = datetime.now(timezone.utc)
        params = {"d24": iso(now - timedelta(hours=24)), "h1": iso(now - timedelta(hours=1)), "now": iso(now)}
        totals = {r["skill_name"]: dict(r) for r in self.conn.execute(BASELINE_TOP)}
        windows = self.conn.execute(BASELINE_WINDOWS, params).fetchall()
        zscores = {name: z for name, z in self.conn.execute(BASELINE_ZSCORE, params) if z is not None}
        ranked = sorted(windows, key=lambda r: (-r[1], r[0]))[:TOP_N]
        missing = [r[0] for r in ranked if r[0] not in totals]
        if missing:
            marks = ",".join("?" * len(missing))
            for r in self.conn.execute(f"SELECT * FROM skill_metrics WHERE skill_name IN ({marks})", missing):
                totals[r["skill_name"]] = dict(r)
        top = []
        for name, count, completed, count_1h, avg_duration in ranked:
            t = totals.get(name, {})
            top.append({
                "skill_name": name,
                "last_invocation_at": t.get("last_invoked"),
                "invocation_count": count,
                "completed_count": completed,
                "avg_duration": avg_duration,
                "total_invocations": t.get("total_invocations"),
                "completion_rate": t.get("completion_rate"),
                "avg_duration_seconds": t.get("avg_duration_seconds"),
                "invocation_count_1h": count_1h,
                "is_anomalous": abs(zscores.get(name, 0.0)) >= ANOMALY_THRESHOLD,
            })
        anomalies = sorted(
            ({"skill_name": name, "anomaly_type": "performance_drop" if z < 0 else "performance_spike",
              "deviation_score": z, "detected_at": params["now"]}
             for name, z in zscores.items() if abs(z) >= ANOMALY_THRESHOLD),
            key=lambda a: -abs(a["deviation_score"]))
        return {"top_skills": top, "anomalies": anomalies, "stale": False}

    def message_for(self, metrics: dict[str, Any], skill: str | None, timestamp: str) -> str:
        data = metrics
        if skill is not None:
            data = {"top_skills": [s for s in metrics["top_skills"] if s["skill_name"] == skill],
                    "anomalies": [a for a in metrics["anomalies"] if a["skill_name"] == skill],
                    "stale": False}
        return json.dumps({"type": "metrics_update", "seq": self.seq, "timestamp": timestamp, "data": data})

    async def broadcast_metrics(self) -> None:
        if not self.clients:
            return
        started = time.perf_counter()
        metrics = self.fetch_metrics()
        self.seq += 1
        timestamp = iso(datetime.now(timezone.utc))
        messages: dict[str | None, str] = {}
        targets = list(self.clients)
        if self.use_broadcast:
            groups: dict[str | None, list[ServerConnection]] = {}
            for ws in targets:
                groups.setdefault(self.subscriptions.get(ws), []).append(ws)
            for skill, members in groups.items():
                broadcast(members, self.message_for(metrics, skill, timestamp))
        else:
            disconnected = []
            for ws in targets:
                skill = self.subscriptions.get(ws)
                if skill not in messages:
                    messages[skill] = self.message_for(metrics, skill, timestamp)
                try:
                    await ws.send(messages[skill])
                except ConnectionClosed:
                    disconnected.append(ws)
            for ws in disconnected:
                self.unregister_client(ws)
        self.tick_seconds.append(time.perf_counter() - started)

    async def _broadcast_loop(self) -> None:
        while self._running:
            try:
                await self.broadcast_metrics()
            except Exception:
                log.exception("broadcast failed")
            await asyncio.sleep(self.update_interval)


def busy_python(seconds: float) -> int:
    """Pure-Python CPU work holding the GIL; never yields to the event loop."""
    end = time.monotonic() + seconds
    n = 0
    while time.monotonic() < end:
        n += sum(i * i for i in range(200))
    return n


def watch_stdin(loop: asyncio.AbstractEventLoop, server: BaselineServer) -> None:
    def on_line() -> None:
        line = sys.stdin.readline()
        if not line:
            loop.remove_reader(sys.stdin.fileno())
            return
        parts = line.split()
        if parts[:1] == ["busy"]:
            busy_python(float(parts[1]))
            print("BUSY_DONE", flush=True)
        elif parts[:1] == ["stats"]:
            ticks = server.tick_seconds
            print("STATS " + json.dumps({"ticks": len(ticks), "tick_seconds": ticks[-200:]}), flush=True)

    try:
        loop.add_reader(sys.stdin.fileno(), on_line)
    except OSError:  # stdin is a regular file or /dev/null: no commands
        pass


async def amain(args: argparse.Namespace) -> int:
    server = BaselineServer(args.host, args.port, args.db, args.interval, args.broadcast)
    server.fetch_metrics()  # warm the SQLite cache, so the idle RSS includes it
    await server.start()
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    watch_stdin(loop, server)
    print(f"LISTENING {server.port}", flush=True)
    await stop.wait()
    await server.stop()
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--db", type=Path, required=True)
    parser.add_argument("--interval", type=float, default=1.0)
    parser.add_argument("--broadcast", action="store_true", help="websockets.broadcast() instead of await send")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    return asyncio.run(amain(args))


if __name__ == "__main__":
    sys.exit(main())
