"""A server in its own process, under a given open-file limit, for the slow-connection tests.

    python slow_server.py DB SOFT[:HARD] MAX_PENDING LOG_PATH

Sets RLIMIT_NOFILE to SOFT and HARD (HARD defaults to SOFT, so that start() cannot raise it), starts a server
on 127.0.0.1 port 0 with max_pending=MAX_PENDING ("-" for the default), prints its port, writes every log record of
session_buddy.realtime to LOG_PATH, and runs until stdin closes.
"""

from __future__ import annotations

import asyncio
import logging
import resource
import sys


async def main(db: str, nofile: str, max_pending: str, log_path: str) -> None:
    from session_buddy.realtime import RealTimeMetricsServer

    soft, _, hard = nofile.partition(":")
    resource.setrlimit(resource.RLIMIT_NOFILE, (int(soft), int(hard or soft)))
    handler = logging.FileHandler(log_path)
    handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    logger = logging.getLogger("session_buddy.realtime")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    limits = {} if max_pending == "-" else {"max_pending": int(max_pending)}
    server = RealTimeMetricsServer(host="127.0.0.1", port=0, db_path=db, update_interval=0.5, **limits)
    await server.start()
    print(server.port, flush=True)
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, sys.stdin.read)
    await server.stop()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]))
