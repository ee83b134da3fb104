"""Server RSS and CPU per connection: `websockets` clients with their default compression
(permessage-deflate) against the same clients with compression=None (issue 14's table).

    python3 bench/deflate_memory.py [--clients 1000] [--hold 10] [--server PATH/ours_server.py]

For each mode, a fresh server process (bench/fanout/ours_server.py, update interval 1 s, on a
cached benchmark DB) is measured idle, then with N clients that each sent one (compressed)
ping, got its pong and at least one metrics_update; then its CPU time (user + system) is read
over `--hold` seconds while the N clients receive updates.  The clients run in this process,
in batches so that connecting stays on loopback without bursts.  --server points to another
checkout's ours_server.py to measure that build (e.g. before a change).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from websockets.asyncio.client import connect

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))

from analytics_bench import build_db  # noqa: E402

__all__ = ["main"]

CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE_KIB = os.sysconf("SC_PAGE_SIZE") // 1024


def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/statm") as f:
        return int(f.read().split()[1]) * PAGE_KIB


def cpu_s(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


async def start_server(script: Path, db: Path) -> tuple[subprocess.Popen, int]:
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    proc = subprocess.Popen([sys.executable, str(script), "--port", "0", "--db", str(db), "--interval", "1"],
                            stdout=subprocess.PIPE, stdin=subprocess.PIPE, text=True, env=env)
    assert proc.stdout is not None
    line = await asyncio.wait_for(asyncio.to_thread(proc.stdout.readline), 60)
    if not line.startswith("LISTENING"):
        proc.kill()
        raise RuntimeError(f"server did not start: {line!r}")
    return proc, int(line.split()[1])


async def client(url: str, compression: str | None, ready: asyncio.Event, stop: asyncio.Event,
                 counts: list[int]) -> None:
    async with connect(url, compression=compression, open_timeout=60, ping_interval=None,
                       max_queue=4) as ws:
        assert json.loads(await ws.recv())["type"] == "connected"
        await ws.send(json.dumps({"type": "ping"}))
        got_pong = got_update = False
        while not (got_pong and got_update):
            kind = json.loads(await ws.recv())["type"]
            got_pong |= kind == "pong"
            got_update |= kind == "metrics_update"
        counts[0] += 1
        if counts[0] == counts[1]:
            ready.set()
        while not stop.is_set():
            try:
                await asyncio.wait_for(ws.recv(), 0.5)
            except (asyncio.TimeoutError, TimeoutError):
                pass


async def measure(script: Path, db: Path, clients: int, hold: float, compression: str | None) -> dict[str, Any]:
    proc, port = await start_server(script, db)
    url = f"ws://127.0.0.1:{port}"
    try:
        idle = rss_kib(proc.pid)
        ready, stop = asyncio.Event(), asyncio.Event()
        counts = [0, clients]
        tasks = []
        for i in range(0, clients, 100):
            tasks += [asyncio.create_task(client(url, compression, ready, stop, counts))
                      for _ in range(min(100, clients - i))]
            await asyncio.sleep(0.05)
        await asyncio.wait_for(ready.wait(), 120)
        loaded = rss_kib(proc.pid)
        cpu0, t0 = cpu_s(proc.pid), time.monotonic()
        await asyncio.sleep(hold)
        cpu = cpu_s(proc.pid) - cpu0
        wall = time.monotonic() - t0
        stop.set()
        await asyncio.gather(*tasks)
        return {"compression": compression or "none", "clients": clients, "idle_rss_kib": idle,
                "loaded_rss_kib": loaded, "rss_per_conn_kib": round((loaded - idle) / clients, 1),
                "server_cpu_s": round(cpu, 2), "over_s": round(wall, 1)}
    finally:
        proc.terminate()
        proc.wait(10)


async def amain(args: argparse.Namespace) -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    db = build_db(20000, 40, 7)
    rows = [await measure(args.server, db, args.clients, args.hold, mode) for mode in (None, "deflate")]
    print(f"server: {args.server}")
    print("| clients | server RSS per connection | server CPU over "
          f"{args.hold:g} s |\n|---|---|---|")
    for r in rows:
        print(f"| {r['clients']} x compression={r['compression']} | {r['rss_per_conn_kib']} KiB "
              f"| {r['server_cpu_s']} s |")
    print(json.dumps(rows))
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=1000)
    parser.add_argument("--hold", type=float, default=10.0)
    parser.add_argument("--server", type=Path, default=BENCH / "fanout" / "ours_server.py")
    return asyncio.run(amain(parser.parse_args()))


if __name__ == "__main__":
    sys.exit(main())
