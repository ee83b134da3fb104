"""Hosts our C server in a plain Python process for the fan-out benchmark.

    python3 ours_server.py --port P --db PATH [--host 127.0.0.1] [--interval 1]

The same as `python -m session_buddy.realtime --max-clients 0 --log-level WARNING`, plus what
the harness needs: "LISTENING <port>" is printed once the first snapshot was built (so the
idle RSS includes the loaded analytics state), and stdin accepts "busy SECONDS", which runs
pure-Python CPU work on the main thread (the asyncio thread) for that long while the
service thread keeps serving: the GIL benchmark.

GraphQL clients (the load generator's --graphql) go through the package's own GraphQL handler
(graphql-core validation once per subscribe, then `gql_subscribe`), as users' clients do.

Logging is at WARNING, so the per-connection INFO lines (50,000 connects) are not even queued:
they are not part of fan-out.  The pure-Python baseline runs with logging at WARNING too.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent.parent
sys.path.insert(0, str(ROOT))

from session_buddy.realtime import RealTimeMetricsServer  # noqa: E402

__all__ = ["main"]

def busy_python(seconds: float) -> int:
    """Pure-Python CPU work holding the GIL; never yields to the event loop."""
    end = time.monotonic() + seconds
    n = 0
    while time.monotonic() < end:
        n += sum(i * i for i in range(200))
    return n


async def amain(args: argparse.Namespace) -> int:
    logger = logging.getLogger("bench.ours")
    logger.setLevel(logging.WARNING)
    server = RealTimeMetricsServer(host=args.host, port=args.port, db_path=args.db,
                                   update_interval=args.interval, max_clients=0, logger=logger)
    loop = asyncio.get_running_loop()
    first = loop.create_future()

    def on_first(_payload: dict[str, Any]) -> None:
        if not first.done():
            first.set_result(None)

    server.register_metrics_subscriber(on_first)
    await server.start()
    await first
    server.unregister_metrics_subscriber(on_first)  # no Python work per tick from here on

    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)

    def on_line() -> None:
        line = sys.stdin.readline()
        if not line:
            loop.remove_reader(sys.stdin.fileno())
            return
        parts = line.split()
        if parts[:1] == ["busy"]:
            busy_python(float(parts[1]))
            print("BUSY_DONE", flush=True)

    try:
        loop.add_reader(sys.stdin.fileno(), on_line)
    except OSError:  # stdin is a regular file or /dev/null: no commands
        pass
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
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    return asyncio.run(amain(args))


if __name__ == "__main__":
    sys.exit(main())
