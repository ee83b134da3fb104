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
import time
import urllib.request
from datetime import datetime, timedelta, timezone
from pathlib import Path

from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import ConnectionClosed

from session_buddy.realtime import RealTimeMetricsServer
from session_buddy.realtime.auth import generate_token
from session_buddy.storage import SkillsStorage

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "realtime"))
from redis_fixture import RedisServer  # noqa: E402 - the scale-out tests' real redis-server

SECRET = "leak-workload-secret-0123456789abcdef"


def connect(url, **kwargs):
    """These clients leave messages unread, so websockets stops reading its socket and would wait
    its full close timeout for the server's close frame: keep that wait short."""
    return ws_connect(url, close_timeout=1, **kwargs)

MESSAGES = [
    {"type": "ping"},
    {"type": "subscribe", "skill_name": "ruff"},
    {"type": "get_metrics", "skill": "ruff"},
    {"type": "get_metrics", "skill": "no-such-skill"},
    {"type": "unsubscribe"},
    {"type": "subscribe"},
    {"type": "launch"},
    {"skill": 1},
    {"type": "get_history", "skill_name": "ruff", "window": 3600, "step": 60},
    {"type": "get_history", "step": 7},
    {"type": "subscribe", "since": {"epoch": "0" * 16, "seq": 1}},
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
    # Resumed subscribes replay from the recovery window, on both paths.
    since = {"epoch": server.epoch, "seq": 1}
    await clients[2].send(json.dumps({"type": "subscribe", "skill_name": "ruff", "since": since}))
    await server.handle_client_message(inproc, json.dumps({"type": "subscribe", "since": since}))
    assert server.updates_since(1, "ruff") is not None
    assert len(server.clients) == 4  # the rows of the network clients, copied and freed
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


async def expect_closed(ws) -> None:
    try:
        while True:
            await ws.recv()
    except ConnectionClosed:
        pass


async def secured_round(db: Path) -> None:
    """Authentication by each source and its failures, the Origin check, the rate limiter."""
    server = RealTimeMetricsServer(port=0, db_path=db, update_interval=0.05, require_auth=True,
                                   jwt_secret=SECRET, allowed_origins=["http://ok.example"])
    await server.start()
    token = generate_token("leak", secret=SECRET)
    by_header = await connect(server.url, additional_headers={"Authorization": f"Bearer {token}"})
    by_query = await connect(f"{server.url}/?token={token}")
    by_message = await connect(server.url)
    await by_message.send('{"type":"ping"}')  # auth_required
    await by_message.send(json.dumps({"type": "auth", "token": token}))
    for ws in (by_header, by_query, by_message):
        await ws.recv()
    assert {c.user_id for c in server.clients} == {"leak"}
    bad = await connect(server.url, additional_headers={"Authorization": "Bearer a.b.c"})
    await expect_closed(bad)
    wrong = await connect(server.url)
    await wrong.send(json.dumps({"type": "auth", "token": token + "x"}))
    await expect_closed(wrong)
    silent = await connect(server.url)  # closed by the stop, with its auth deadline still armed
    try:
        async with connect(server.url, origin="http://evil.example"):
            pass
    except Exception:  # HTTP 403
        pass
    for _ in range(60):  # past the burst: rate_limited replies
        await by_header.send('{"type":"ping"}')
    replies = 0
    while replies < 60:  # read them, or the client stops reading its socket and its close stalls
        if json.loads(await by_header.recv())["type"] in ("pong", "error"):
            replies += 1
    await server.stop()
    for ws in (by_header, by_query, by_message, silent):
        await ws.close()


async def until(what: str, check, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        if time.monotonic() > deadline:
            raise RuntimeError(f"leak workload: {what} did not happen")
        await asyncio.sleep(0.1)


def healthz(port: int) -> dict:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as r:
            return json.loads(r.read())
    except urllib.error.HTTPError as err:  # 503 while degraded
        return json.loads(err.read())


async def redis_round(db: Path, tmp: Path) -> None:
    """A publisher and an edge on a real redis-server: the lease, the appends, the edge's reads
    and its history copy, the whole protocol on the edge, then Redis restarted empty (reconnects,
    a new epoch) and the stops."""
    redis = RedisServer(tmp)
    redis.start()
    try:
        publisher = RealTimeMetricsServer(port=0, db_path=db, update_interval=0.05, role="publisher",
                                          redis_url=redis.url)
        edge = RealTimeMetricsServer(port=0, db_path=tmp / "unused.db", update_interval=0.05,
                                     role="edge", redis_url=redis.url)
        await publisher.start()
        await edge.start()
        ws = await connect(edge.url)

        async def edge_history_copied() -> bool:
            await ws.send(json.dumps({"type": "get_history", "window": 3600, "step": 60}))
            while True:
                reply = json.loads(await ws.recv())
                if reply["type"] == "history_response":
                    return any(p["invocation_count"] for p in reply["points"])

        await until("the edge's history copy", edge_history_copied)
        for message in MESSAGES:
            await ws.send(json.dumps(message))
        await ws.send(json.dumps({"type": "subscribe", "since": {"epoch": edge.epoch, "seq": 1}}))
        old_epoch = edge.epoch
        assert edge.retained_updates(1) is not None
        redis.kill()

        async def edge_stale() -> bool:
            return bool(healthz(edge.port).get("stale"))

        await until("the edge stale", edge_stale)
        redis.start()

        async def new_epoch() -> bool:
            return edge.epoch != old_epoch and healthz(edge.port).get("seq", 0) > 1

        await until("a new epoch on the edge", new_epoch)
        await ws.close()
        await edge.stop()
        await publisher.stop()
    finally:
        redis.stop()


def server_config(**changes):
    """A CoreConfig for start_core, with some fields changed."""
    from dataclasses import replace

    from session_buddy.realtime._startup import CoreConfig

    base = CoreConfig(
        db_path="/nonexistent/skills.db", iface=None, disable_ipv6=True, use_poll=False, port=0,
        interval_s=1.0, recovery_window_s=600.0, top_n=10, anomaly_threshold=2.0, record_anomalies=True, max_clients=100,
        max_message_size=65536, max_pending=256, min_log_level=0, static_dir="/nonexistent",
        ssl_certfile=None, ssl_keyfile=None, allowed_origins=None, allowed_hosts=None, jwt_secret=None,
    )
    return replace(base, **changes)


async def error_paths(db: Path) -> None:
    """start()'s refusals: a busy port (OSError from C), start_core on a running server, and a
    CoreConfig refused halfway through its conversion."""
    import socket

    blocker = socket.socket()
    blocker.bind(("127.0.0.1", 0))
    blocker.listen()
    busy = RealTimeMetricsServer(host="127.0.0.1", port=blocker.getsockname()[1], db_path=db)
    try:
        await busy.start()
    except OSError:
        pass
    finally:
        blocker.close()
    server = RealTimeMetricsServer(port=0, db_path=db, allowed_origins=["https://a.example"])
    await server.start()
    try:
        server.start_core(server_config(allowed_origins=("https://b.example",)))
    except RuntimeError:
        pass
    await server.stop()
    try:
        server.start_core(server_config(allowed_origins=("https://b.example",), allowed_hosts=("h", 1)))
    except TypeError:
        pass


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
            await secured_round(db)
            await error_paths(db)
        await redis_round(db, Path(tmp))
    print("leak workload done")
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
