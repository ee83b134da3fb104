"""A workload for LeakSanitizer/valgrind: every server path that allocates, then a clean exit.

Run by `make asan` under LSan (the full pytest run is checked for memory errors and
undefined behaviour only, because the interpreter's own exit is not leak-clean).
Usage: python tests/sanitizers/leak_workload.py
"""

from __future__ import annotations

import asyncio
import json
import logging
import sys
import tempfile
from datetime import datetime, timedelta, timezone
from pathlib import Path

from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from session_buddy.realtime import RealTimeMetricsServer
from session_buddy.storage import SkillsStorage

MESSAGES = [
    {"type": "ping"},
    {"type": "subscribe", "skill_name": "ruff"},
    {"type": "get_metrics", "skill": "ruff"},
    {"type": "get_metrics", "skill": "no-such-skill"},
    {"type": "unsubscribe"},
    {"type": "subscribe"},
    {"type": "launch"},
    {"skill": 1},
]


class InProcess:
    def __init__(self) -> None:
        self.received: list[str] = []

    async def send(self, text: str) -> None:
        self.received.append(text)


async def one_round(db: Path) -> None:
    server = RealTimeMetricsServer(port=0, db_path=db, update_interval=0.05, max_clients=3,
                                   max_message_size=4096)
    await server.start()
    inproc = InProcess()
    server.register_client(inproc)
    server.register_metrics_subscriber(lambda payload: None)
    clients = [await connect(server.url) for _ in range(3)]
    try:
        async with connect(server.url) as extra:  # over max_clients: close 1013
            await extra.recv()
            await extra.recv()
    except ConnectionClosed:
        pass
    for ws in clients:
        for message in MESSAGES:
            await ws.send(json.dumps(message))
        await ws.send("not json")
        await ws.send(b'{"type":"ping"}')
        await ws.send(['{"type":', '"ping"}'])
    await server.handle_client_message(inproc, '{"type":"get_metrics","skill":"ruff"}')
    await server.broadcast_metrics()
    try:
        await clients[0].send("x" * 5000)  # over max_message_size: close 1009
        await clients[0].recv()
    except ConnectionClosed:
        pass
    await asyncio.sleep(0.2)
    await clients[1].close()
    await server.stop()
    for ws in clients:
        await ws.close()


async def main() -> int:
    logging.basicConfig(level=logging.ERROR)
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "skills.db"
        now = datetime.now(timezone.utc)
        with SkillsStorage(db) as storage:
            for i in range(200):
                storage.store_invocation(["ruff", "mypy", "pytest-run"][i % 3], now - timedelta(minutes=i),
                                         "s", completed=i % 4 != 0, duration_seconds=1.0 + i % 7)
        for _ in range(5):
            await one_round(db)
    print("leak workload done")
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
