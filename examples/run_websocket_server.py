"""Run the real-time metrics server until Ctrl+C or SIGTERM.

Usage:
    python examples/run_websocket_server.py [--host localhost] [--port 8765]
        [--db .session-buddy/skills.db] [--interval 1.0] [--log-level INFO] [--demo]

Then, in another terminal:
    python examples/websocket_client_example.py
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from pathlib import Path

from session_buddy.realtime import RealTimeMetricsServer

log = logging.getLogger("run_websocket_server")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Serve live skill metrics over WebSocket.")
    parser.add_argument("--host", default="localhost", help="address to bind (default: localhost)")
    parser.add_argument("--port", type=int, default=8765, help="port, 0 for any free port (default: 8765)")
    parser.add_argument("--db", type=Path, default=None,
                        help="skills database (default: .session-buddy/skills.db in the current folder)")
    parser.add_argument("--interval", type=float, default=1.0, help="seconds between updates (default: 1.0)")
    parser.add_argument("--demo", action="store_true",
                        help="write synthetic invocations; one skill starts failing after --demo-drop-after s")
    parser.add_argument("--demo-drop-after", type=float, default=60.0, metavar="SECONDS",
                        help="when the demo injects its completion drop (default: 60)")
    parser.add_argument("--log-level", default="INFO",
                        choices=["DEBUG", "INFO", "WARNING", "ERROR"], help="default: INFO")
    return parser.parse_args(argv)


async def serve(args: argparse.Namespace) -> int:
    server = RealTimeMetricsServer(host=args.host, port=args.port, db_path=args.db,
                                   update_interval=args.interval)
    try:
        await server.start()
    except OSError as exc:
        print(f"error: cannot listen on {args.host}:{args.port}: {exc.strerror or exc}", file=sys.stderr)
        return 1

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)

    demo = None
    if args.demo:
        from session_buddy.realtime.demo import DemoTraffic

        demo = DemoTraffic(server.db_path, drop_after=args.demo_drop_after)
        demo.start()
    log.info("serving %s from %s; Ctrl+C stops", server.url, server.db_path)
    try:
        await stop.wait()
    finally:
        log.info("stopping")
        if demo is not None:
            demo.stop()
        await server.stop()
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=args.log_level, format="%(asctime)s %(levelname)-7s %(name)s: %(message)s")
    try:
        return asyncio.run(serve(args))
    except (TypeError, ValueError) as exc:  # a bad --port / --interval value
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
