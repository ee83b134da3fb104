"""The cost of section 9 (history and recovery): the service thread's time per get_history
reply, whether those replies delay another client's updates, and the memory the recovery window
and the history buckets hold.

Usage: .venv/bin/python bench/history_bench.py [--rows 1000000] [--skills 200] [--requests 300]
       [--seconds 10] [--phase cost|delay|memory ...]

The DB holds --rows invocations of --skills skills spread over the last 24 h (built once and
cached under bench/.data/ by analytics_bench.build_db). Three measurements, one server each:
1. get_history (24 h, 60 s steps, all skills and one skill) sent back to back by one client, with
   no ticks: the service thread's CPU time (from /proc/self/task/<tid>/schedstat, in ns) divided
   by the number of replies, and the round trip seen by the client.
2. A watcher subscribed at a 0.1 s interval: how late each update arrives (arrival time minus
   the update's own timestamp, which is taken when the tick starts, so the tick's own DB and
   analytics work is included), without and then with another process sending 24 h
   get_history requests back to back (a new connection every 29, under the rate limit).
3. The recovery window full at the defaults' snapshot count (600 snapshots: recovery_window 30 s
   at a 0.05 s interval, the same count as 600 s at 1 s) with top_n 200: the bytes the window's
   figures hold (malloc'd, as retention_stats reports them), the history buckets, and the RSS
   growth of the process while the window filled.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import time
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from websockets.asyncio.client import connect  # noqa: E402

from analytics_bench import build_db, pct  # noqa: E402
from session_buddy.realtime import RealTimeMetricsServer  # noqa: E402


def task_cpu_ns() -> dict[int, int]:
    out = {}
    for tid in os.listdir("/proc/self/task"):
        try:
            with open(f"/proc/self/task/{tid}/schedstat") as f:
                out[int(tid)] = int(f.read().split()[0])
        except OSError:
            pass
    return out


def rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


async def history_cost(db: Path, requests: int) -> None:
    """The rate limit allows bursts of 40 messages per connection: each connection sends 30."""
    server = RealTimeMetricsServer(port=0, db_path=db, update_interval=3600)
    await server.start()
    url = f"ws://127.0.0.1:{server.port}"
    for skill in (None, "skill-007"):
        msg = json.dumps({"type": "get_history", "skill_name": skill, "window": 86400, "step": 60})
        conns = []
        for _ in range((requests + 29) // 30):
            ws = await connect(url, max_size=None, compression=None)
            await ws.recv()  # connected
            conns.append(ws)
        await conns[0].send(msg)
        reply = json.loads(await conns[0].recv())
        assert reply["type"] == "history_response" and len(reply["points"]) == 1440, reply
        total = sum(p["invocation_count"] for p in reply["points"])
        size = len(json.dumps(reply))
        before = task_cpu_ns()
        rtts, done = [], 0
        for ws in conns:
            for _ in range(min(30, requests - done)):
                started = time.perf_counter()
                await ws.send(msg)
                text = await ws.recv()
                rtts.append(time.perf_counter() - started)
                assert text.startswith('{"type":"history_response"'), text[:80]
                done += 1
        after = task_cpu_ns()
        # The service thread is the busiest one besides this (the client's) thread: the ticker
        # is idle at a 3600 s interval.
        deltas = sorted(((after[t] - before.get(t, 0), t) for t in after if t != os.getpid()), reverse=True)
        service_ns = deltas[0][0]
        for ws in conns:
            await ws.close()
        print(f"get_history 24 h / 60 s, skill {skill or 'all'}: {total:,} invocations in the reply, "
              f"{size:,} bytes; service thread {service_ns / done / 1e6:.3f} ms per reply "
              f"(next busiest thread {deltas[1][0] / done / 1e6:.3f} ms); "
              f"round trip p50 {pct(rtts, 50) * 1e3:.2f} ms, p99 {pct(rtts, 99) * 1e3:.2f} ms ({done} requests)")
    await server.stop()


async def watch(url: str, seconds: float) -> list[float]:
    lateness = []
    async with connect(url, max_size=None, compression=None) as ws:
        await ws.recv()
        await ws.send(json.dumps({"type": "subscribe", "skill_name": "skill-001"}))
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            msg = json.loads(await ws.recv())
            if msg["type"] == "metrics_update":
                sent = datetime.fromisoformat(msg["timestamp"].replace("Z", "+00:00")).timestamp()
                lateness.append(time.time() - sent)
    return lateness[2:]


async def hammer(url: str, seconds: float, rate: float) -> int:
    """Run in a process of its own (--hammer URL), so that the watcher's loop measures the
    server, not this client's work.  rate: requests per second, 0 for back to back."""
    stop = asyncio.Event()
    asyncio.get_running_loop().call_later(seconds, stop.set)
    n = 0
    next_at = time.monotonic()
    msg = json.dumps({"type": "get_history", "skill_name": None, "window": 86400, "step": 60})
    while not stop.is_set():  # a new connection per 30 requests: under the rate limit's burst
        async with connect(url, max_size=None, compression=None) as ws:
            await ws.recv()
            await ws.send(json.dumps({"type": "unsubscribe"}))  # replies only
            await ws.recv()
            for _ in range(29):
                if stop.is_set():
                    break
                if rate:
                    next_at += 1 / rate
                    await asyncio.sleep(max(0.0, next_at - time.monotonic()))
                await ws.send(msg)
                while json.loads(await ws.recv())["type"] != "history_response":
                    pass  # an update sent before the unsubscribe took effect
                n += 1
    return n


async def delay_of_others(db: Path, seconds: float) -> None:
    server = RealTimeMetricsServer(port=0, db_path=db, update_interval=0.1)
    await server.start()
    url = f"ws://127.0.0.1:{server.port}"
    print(f"a watcher's update lateness (update timestamp to arrival, 0.1 s interval, {seconds:.0f} s each):")
    quiet = await watch(url, seconds)
    print(f"  alone: p50 {pct(quiet, 50) * 1e3:.2f} ms, p99 {pct(quiet, 99) * 1e3:.2f} ms, "
          f"max {max(quiet) * 1e3:.2f} ms")
    for rate in (20, 0):  # one client at the rate limit; then back to back, over many connections
        proc = await asyncio.create_subprocess_exec(
            sys.executable, __file__, "--hammer", url, "--seconds", str(seconds + 1),
            "--rate", str(rate), stdout=asyncio.subprocess.PIPE)
        busy = await watch(url, seconds)
        replies = int((await proc.communicate())[0])
        print(f"  with another process sending 24 h get_history {'at 20/s' if rate else 'back to back'}: "
              f"p50 {pct(busy, 50) * 1e3:.2f} ms, p99 {pct(busy, 99) * 1e3:.2f} ms, "
              f"max {max(busy) * 1e3:.2f} ms ({replies} replies, {replies / seconds:.0f}/s)")
    await server.stop()


async def retention_memory(db: Path, skills: int) -> None:
    rss0 = rss_bytes()
    server = RealTimeMetricsServer(port=0, db_path=db, update_interval=0.05, recovery_window=30, top_n=skills)
    await server.start()
    rss_started = rss_bytes()
    while server.retention_stats()["snapshots"] < 600:
        await asyncio.sleep(0.5)
    await asyncio.sleep(2)  # the window slides: steady state
    stats = server.retention_stats()
    rss_full = rss_bytes()
    frame = len(server.metrics_update(None) or "")
    await server.stop()
    mib = 1024 * 1024
    print(f"recovery window: {stats['snapshots']} snapshots of {skills} skills "
          f"(seq {stats['oldest_seq']}..{stats['newest_seq']}): figures {stats['metrics_bytes'] / mib:.1f} MiB "
          f"({stats['metrics_bytes'] / stats['snapshots'] / 1024:.1f} KiB each); an all-skills update "
          f"serialised is {frame / 1024:.0f} KiB, so 600 as JSON would be {600 * frame / mib:.0f} MiB")
    print(f"history buckets: {stats['history_bytes'] / mib:.1f} MiB")
    print(f"process RSS: {rss0 / mib:.0f} MiB before start, {rss_started / mib:.0f} MiB after the startup read, "
          f"{rss_full / mib:.0f} MiB with the window full (+{(rss_full - rss_started) / mib:.1f} MiB)")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--skills", type=int, default=200)
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--hammer", metavar="URL", help=argparse.SUPPRESS)
    parser.add_argument("--rate", type=float, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--phase", choices=["cost", "delay", "memory"], action="append",
                        help="run only these measurements (default: all three)")
    args = parser.parse_args()
    if args.hammer:
        print(asyncio.run(hammer(args.hammer, args.seconds, args.rate)))
        return 0
    phases = args.phase or ["cost", "delay", "memory"]
    db = build_db(args.rows, args.skills, 1)
    print(f"{args.rows:,} invocations of {args.skills} skills over the last 24 h ({db.name})\n")
    if "cost" in phases:
        asyncio.run(history_cost(db, args.requests))
    if "delay" in phases:
        asyncio.run(delay_of_others(db, args.seconds))
    if "memory" in phases:
        asyncio.run(retention_memory(db, args.skills))
    return 0


if __name__ == "__main__":
    sys.exit(main())
