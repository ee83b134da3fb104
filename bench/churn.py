"""Connection churn: N connect/handshake/ping/close cycles against one server, then its RSS and
open file descriptors compared with their baseline.

Usage: .venv/bin/python bench/churn.py [--cycles 10000] [--concurrency 50]

The server runs in this process (so /proc/self tells its RSS and fds); the clients run in a
child process, so their sockets and memory are not counted. The baseline is taken after a
warm-up of `--warmup` cycles, when allocator pools and lws's own tables have reached their
working size.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from session_buddy.realtime import RealTimeMetricsServer  # noqa: E402

CLIENT = textwrap.dedent("""
    import asyncio, json, sys
    from websockets.asyncio.client import connect

    async def one(url):
        async with connect(url, compression=None, open_timeout=20) as ws:
            assert json.loads(await ws.recv())["type"] == "connected"
            await ws.send('{"type":"ping"}')
            while json.loads(await ws.recv())["type"] != "pong":
                pass

    async def main(url, cycles, concurrency):
        sem = asyncio.Semaphore(concurrency)
        failures = 0
        async def guarded():
            nonlocal failures
            async with sem:
                try:
                    await one(url)
                except Exception:
                    failures += 1
        await asyncio.gather(*(guarded() for _ in range(cycles)))
        print(failures)

    asyncio.run(main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3])))
""")


def rss_kib() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def fd_count() -> int:
    return len(os.listdir("/proc/self/fd"))


async def run_clients(url: str, cycles: int, concurrency: int) -> tuple[int, float]:
    start = time.perf_counter()
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", CLIENT, url, str(cycles), str(concurrency),
        stdout=subprocess.PIPE,
    )
    out, _ = await proc.communicate()
    if proc.returncode != 0:
        raise RuntimeError(f"client process failed with status {proc.returncode}")
    return int(out.decode().strip()), time.perf_counter() - start


async def settle(server: RealTimeMetricsServer) -> None:
    """Wait until every connection has been torn down on the server side."""
    deadline = time.monotonic() + 30
    while server.clients and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
    await asyncio.sleep(1.0)


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cycles", type=int, default=10_000)
    ap.add_argument("--warmup", type=int, default=500)
    ap.add_argument("--concurrency", type=int, default=50)
    args = ap.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        server = RealTimeMetricsServer(host="127.0.0.1", port=0, db_path=Path(tmp) / "skills.db",
                                       update_interval=1.0, max_clients=0)
        async with server:
            url = f"ws://127.0.0.1:{server.port}"
            failed, _ = await run_clients(url, args.warmup, args.concurrency)
            await settle(server)
            rss0, fds0 = rss_kib(), fd_count()
            failed2, elapsed = await run_clients(url, args.cycles, args.concurrency)
            await settle(server)
            rss1, fds1 = rss_kib(), fd_count()

    print(f"| cycles | failed | wall s | cycles/s | RSS before KiB | RSS after KiB | delta KiB | fds before | fds after |")
    print("|---|---|---|---|---|---|---|---|---|")
    print(f"| {args.cycles} | {failed + failed2} | {elapsed:.1f} | {args.cycles / elapsed:.0f} | {rss0} | {rss1} "
          f"| {rss1 - rss0:+d} | {fds0} | {fds1} |")


if __name__ == "__main__":
    asyncio.run(main())
