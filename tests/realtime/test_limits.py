"""The limits of docs/realtime/SECURITY.md over real sockets: max_clients at its default, allowed_origins,
the rate limit, and a client that stops reading while every update is ~200 KB. Each test also
checks that well-behaved clients keep their pace, and that /metrics counted what happened."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import socket
import sqlite3
import time
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from rawws import OP_TEXT, RawWebSocket, encode_frame
from skills_seed import create_db, iso_ms, utc_now
from test_http_routes import get, samples
from wsutil import CONNECT_KWARGS, expect_close, recv_json, recv_type, recv_updates, wait_until


def counter(text: str, name: str, reason: str | None = None) -> float:
    labels = (("reason", reason),) if reason else ()
    return samples(text)[(f"session_buddy_{name}", labels)]


async def metrics_text(server: Any) -> str:
    _, _, body = await get(server, "/metrics")
    return body.decode()


def rss_kib() -> int:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))


# ---- max_clients (default 100) ------------------------------------------------------------


async def test_the_101st_client_gets_1013_while_the_first_100_keep_receiving(server_factory) -> None:
    server = await server_factory()
    assert server.max_clients == 100
    clients = []
    try:
        for _ in range(100):
            clients.append(await asyncio.wait_for(connect(f"ws://127.0.0.1:{server.port}", **CONNECT_KWARGS), 10))
        await asyncio.gather(*(recv_type(ws, "metrics_update", 30) for ws in clients))
        await wait_until(lambda: len(server.clients) == 100, message="100 clients listed")

        extra = await asyncio.wait_for(connect(f"ws://127.0.0.1:{server.port}", **CONNECT_KWARGS), 10)
        assert await expect_close(extra) == 1013

        seq = (await recv_type(clients[0], "metrics_update"))["seq"]
        later = await asyncio.gather(*(recv_type(ws, "metrics_update", 30) for ws in clients))
        assert all(u["seq"] >= seq for u in later)
        assert len(server.clients) == 100
        assert counter(await metrics_text(server), "connections_rejected_total", "server_full") == 1
    finally:
        await asyncio.gather(*(ws.close() for ws in clients), return_exceptions=True)


# ---- allowed_origins ------------------------------------------------------------------------


async def test_origins_not_listed_get_403(server_factory, client_factory) -> None:
    server = await server_factory(allowed_origins=["https://dash.example.com", "http://localhost:8765"])
    url = f"ws://127.0.0.1:{server.port}"
    for origin in ("https://evil.example.com", "https://dash.example.com.evil.com", "null",
                   "HTTPS://DASH.EXAMPLE.COM"):
        with pytest.raises(InvalidStatus) as refused:
            async with connect(url, origin=origin, **CONNECT_KWARGS):
                pass
        assert refused.value.response.status_code == 403
    for origin in ("https://dash.example.com", "http://localhost:8765", None):
        _, hello = await client_factory.with_hello(url, origin=origin)
        assert hello["type"] == "connected"
    text = await metrics_text(server)
    assert counter(text, "connections_rejected_total", "origin") == 4
    # Plain HTTP routes are not WebSocket handshakes: no Origin check there.
    status, _, _ = await get(server, "/healthz")
    assert status == 200


# ---- rate limit ---------------------------------------------------------------------------


async def _updates_paced(ws: Any, seconds: float) -> list[float]:
    """Arrival times of the updates `ws` receives during `seconds`."""
    arrivals = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            message = json.loads(await asyncio.wait_for(ws.recv(), max(0.01, deadline - time.monotonic())))
        except (asyncio.TimeoutError, TimeoutError):
            break
        if message["type"] == "metrics_update":
            arrivals.append(time.monotonic())
    return arrivals


async def test_a_flood_gets_rate_limited_then_closed_1008(server, client_factory) -> None:
    bystander = await client_factory(server)
    flooder = await client_factory(server)
    replies: dict[str, int] = {}
    close_code = None

    async def read_flooder() -> None:
        nonlocal close_code
        try:
            async for raw in flooder:
                message = json.loads(raw)
                key = message.get("code", message["type"])
                replies[key] = replies.get(key, 0) + 1
        except ConnectionClosed:
            pass
        close_code = flooder.close_code

    reader = asyncio.create_task(read_flooder())
    pace = asyncio.create_task(_updates_paced(bystander, 8))
    started = time.monotonic()
    try:
        for _ in range(1000):  # ~150 messages/s: far over 20/s, for about 7 s
            await flooder.send('{"type":"ping"}')
            await asyncio.sleep(1 / 150)
    except ConnectionClosed:
        pass
    await asyncio.wait_for(reader, 15)
    elapsed = time.monotonic() - started
    assert close_code == 1008, (close_code, replies)
    assert 5.0 <= elapsed <= 10.0, elapsed
    assert replies.get("rate_limited", 0) > 100
    assert replies.get("pong", 0) >= 40  # the burst, then the refill
    arrivals = await pace
    assert len(arrivals) >= 8 / server.update_interval * 0.5
    assert max(b - a for a, b in zip(arrivals, arrivals[1:])) < 1.5
    text = await metrics_text(server)
    assert counter(text, "connections_closed_total", "rate_limit") == 1
    assert counter(text, "messages_rate_limited_total") == replies["rate_limited"]


async def test_a_steady_15_messages_per_second_is_never_limited(server, client_factory) -> None:
    ws = await client_factory(server)
    for _ in range(90):  # 6 s
        await ws.send('{"type":"ping"}')
        await asyncio.sleep(1 / 15)
    pongs = 0
    while pongs < 90:
        message = await recv_json(ws)
        assert message.get("code") != "rate_limited"
        pongs += message["type"] == "pong"


# ---- a client that stops reading -----------------------------------------------------------


def _big_db(path: Path, skills: int = 420) -> Path:
    """Skills with 200-character names, so that one update for all of them is ~200 KB."""
    create_db(path)
    now = iso_ms(utc_now())
    con = sqlite3.connect(path)
    with con:
        con.executemany(
            "INSERT INTO skill_invocation (skill_name, invoked_at, session_id, completed, duration_seconds,"
            " created_at) VALUES (?, ?, 's', 1, 1.5, ?)",
            [(f"skill-{i:04d}-" + "n" * 190, now, now) for i in range(skills)],
        )
    con.close()
    return path


async def test_a_client_that_never_reads_stays_bounded_and_delays_nobody(server_factory, tmp_path) -> None:
    server = await server_factory(db_path=_big_db(tmp_path / "big" / "skills.db"), top_n=1000)
    async with connect(f"ws://127.0.0.1:{server.port}", max_size=None, **CONNECT_KWARGS) as reader:
        update = await recv_type(reader, "metrics_update")
        size = len(json.dumps(update))
        assert size > 190_000, size

        stalled = await RawWebSocket.connect("127.0.0.1", server.port)
        sock = stalled.writer.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # it never reads: fill up fast
        await asyncio.sleep(3)
        baseline = rss_kib()
        arrivals = await _updates_paced(reader, 30)
        grown = rss_kib() - baseline
        print(f"RSS growth with a stalled client: {grown} KiB")
        await stalled.aclose()

    # Every interval delivered to the reader, whatever the stalled client does.
    assert len(arrivals) >= 30 / server.update_interval * 0.5, len(arrivals)
    gaps = [b - a for a, b in zip(arrivals, arrivals[1:])]
    assert max(gaps) < 1.5, max(gaps)
    # 150 updates of ~200 KB went unread: the server keeps at most one of them for that client.
    # (Under `make asan` freed memory sits in ASan's quarantine, so RSS says nothing there.)
    if "libasan" not in os.environ.get("LD_PRELOAD", ""):
        assert grown < 20 * 1024, f"RSS grew by {grown} KiB"
    text = await metrics_text(server)
    assert counter(text, "updates_conflated_total") > 50


# ---- a client whose replies pile up -----------------------------------------------------------


async def _silent_client(port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A WebSocket client with a 4 KiB receive buffer (set before connect, so the kernel cannot
    auto-tune it) that reads nothing after the handshake."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", port))
    reader, writer = await asyncio.open_connection(sock=sock, limit=4096)
    writer.write(f"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                 f"Sec-WebSocket-Key: {base64.b64encode(os.urandom(16)).decode()}\r\n"
                 "Sec-WebSocket-Version: 13\r\n\r\n".encode())
    await writer.drain()
    assert (await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)).startswith(b"HTTP/1.1 101")
    return reader, writer


async def test_a_client_closed_for_its_reply_queue_leaves_promptly(server, client_factory) -> None:
    """Replies over 64 KiB close the client with 1008. It does not read, so it never takes the
    close frame: the server must still drop it within its close grace, not at keepalive."""
    bystander = await client_factory(server)
    pace = asyncio.create_task(_updates_paced(bystander, 12))
    reader, writer = await _silent_client(server.port)
    try:
        writer.write(encode_frame(OP_TEXT, b'{"type":"unsubscribe"}'))
        # The longest name allowed (1 KiB), each byte of which the reply escapes as \u0001.
        request = encode_frame(OP_TEXT, json.dumps({"type": "get_metrics", "skill_name": "\x01" * 1024}).encode())
        deadline = time.monotonic() + 30
        while counter(await metrics_text(server), "connections_closed_total", "slow_consumer") == 0:
            assert time.monotonic() < deadline, "the reply queue never overflowed"
            writer.write(request * 5)  # 5 per 0.3 s: under the rate limit
            await asyncio.sleep(0.3)
        decided = time.monotonic()
        await wait_until(lambda: len(server.clients) == 1, timeout=15, message="the slow client to leave")
        assert time.monotonic() - decided < 10
    finally:
        writer.transport.abort()
    arrivals = await pace
    assert max(b - a for a, b in zip(arrivals, arrivals[1:])) < 1.5


# ---- keepalive ----------------------------------------------------------------------------------


async def test_keepalive_drops_a_client_that_never_answers_pings(server_factory) -> None:
    """Keepalive (docs/realtime/WEBSOCKET_SERVER.md): a ping every 20 s (the first one 10-20 s after connecting, staggered
    by connection), a drop 20 s after an unanswered one. A `websockets` client answers by itself and stays; a raw client
    that answers nothing is dropped."""
    from rawws import OP_PING

    server = await server_factory(update_interval=5.0)
    async with connect(f"ws://127.0.0.1:{server.port}", ping_interval=None, **CONNECT_KWARGS) as good:
        mute = await RawWebSocket.connect("127.0.0.1", server.port)
        started = time.monotonic()
        ping_at = None
        while True:
            frame = await mute.read_frame(timeout=60)
            if frame is None:
                break
            if frame.opcode == OP_PING and ping_at is None:
                ping_at = time.monotonic() - started
        dropped_at = time.monotonic() - started
        assert ping_at is not None and 9 <= ping_at <= 23, ping_at
        assert 18 <= dropped_at - ping_at <= 25, (ping_at, dropped_at)
        assert len(server.clients) == 1
        pong = await good.ping()  # still open and answering
        await asyncio.wait_for(pong, 10)


async def test_keepalive_pings_of_clients_connected_together_are_spread(server_factory) -> None:
    """Ten clients that connect in the same instant are not all pinged in the same second: their first pings
    fall 10-20 s after connecting, staggered by connection, and each is answered with a pong that keeps it open."""
    from rawws import OP_PING, OP_PONG

    server = await server_factory(update_interval=5.0)
    clients = [await RawWebSocket.connect("127.0.0.1", server.port) for _ in range(10)]
    started = time.monotonic()

    async def first_ping(ws: RawWebSocket) -> float:
        while True:
            frame = await ws.read_frame(timeout=30)
            assert frame is not None, "closed before its first ping"
            if frame.opcode == OP_PING:
                at = time.monotonic() - started
                await ws.send_frame(OP_PONG, frame.payload)
                return at

    pings = sorted(await asyncio.gather(*(first_ping(ws) for ws in clients)))
    assert 9 <= pings[0] and pings[-1] <= 23, pings
    assert pings[-1] - pings[0] >= 6, pings  # ten slots of 1 s: not one burst
    assert len({round(p) for p in pings}) >= 6, pings
    await asyncio.sleep(2)
    assert len(server.clients) == 10  # every pong was taken as an answer
    for ws in clients:
        await ws.aclose()
