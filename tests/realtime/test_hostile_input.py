"""Hostile input a network can send, each answered the way the protocol and security rules (docs/realtime/WEBSOCKET_SERVER.md, SECURITY.md) say, with a
bystander client that must keep its updates: garbage before the handshake, a handshake that never
ends, absurd JSON, hostile skill names, abrupt disconnects, and connection churn."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import socket
import sqlite3
import struct
import time
from typing import Any

import pytest
from websockets.asyncio.client import connect

from protocol_checks import assert_error
from rawws import OP_TEXT, RawWebSocket, encode_frame
from skills_seed import SEED
from test_limits import counter, metrics_text
from wsutil import CONNECT_KWARGS, open_fd_count, recv_type, recv_updates, request, wait_until


@pytest.fixture
async def bystander(server, client_factory) -> Any:
    ws = await client_factory(server)
    await recv_type(ws, "metrics_update")
    return ws


async def assert_healthy(server: Any, bystander: Any) -> None:
    seqs = [u["seq"] for u in await recv_updates(bystander, 2)]
    assert seqs[0] < seqs[1]
    assert (await request(bystander, {"type": "ping"}))["type"] == "pong"
    assert server.running


async def read_until_eof(reader: asyncio.StreamReader, timeout: float) -> bytes:
    data = b""
    deadline = time.monotonic() + timeout
    while True:
        chunk = await asyncio.wait_for(reader.read(65536), max(0.01, deadline - time.monotonic()))
        if not chunk:
            return data
        data += chunk


# ---- before and during the handshake ---------------------------------------------------------


@pytest.mark.parametrize("garbage", [
    os.urandom(4096),
    b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + os.urandom(64),  # a TLS ClientHello on a plain port
    b"NOT-HTTP garbage garbage\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    b"Sec-WebSocket-Version: 13\r\n\r\n",  # no key
    b"GET / HTTP/1.1\r\n" + b"X-Junk: " + b"a" * 20000 + b"\r\n\r\n",
], ids=["random", "tls-hello", "not-http", "no-key", "huge-header"])
async def test_garbage_before_the_handshake_is_dropped(server, bystander, garbage, caplog) -> None:
    caplog.set_level(logging.INFO, logger="session_buddy.realtime")
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    try:
        writer.write(garbage)
        await writer.drain()
        answer = await read_until_eof(reader, 15)
    except ConnectionResetError:
        answer = b""
    finally:
        writer.close()
    assert b"101 Switching Protocols" not in answer
    await assert_healthy(server, bystander)
    assert len(server.clients) == 1
    # A client's garbage is not the operator's emergency: nothing above INFO.
    loud = [r.getMessage() for r in caplog.records
            if r.name.startswith("session_buddy") and r.levelno >= logging.WARNING]
    assert not loud, loud


_UPGRADE = ("{method} / HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            "{key}{version}Content-Length: 0\r\n\r\n")
_KEY = "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
_V13 = "Sec-WebSocket-Version: 13\r\n"


@pytest.mark.parametrize(("method", "key", "version", "status"), [
    ("GET", _KEY, "Sec-WebSocket-Version: 8\r\n", b"426"),
    ("GET", _KEY, "Sec-WebSocket-Version: 13, 8\r\n", b"426"),
    ("GET", _KEY, "", b"426"),
    ("GET", "", _V13, b"400"),
    ("GET", "Sec-WebSocket-Key: abc\r\n", _V13, b"400"),
    ("GET", "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ\r\n", _V13, b"400"),  # padding missing
    ("GET", "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZR==\r\n", _V13, b"400"),  # not 16 bytes' worth
    ("GET", "Sec-WebSocket-Key: dGhl*HNhbXBsZSBub25jZQ==\r\n", _V13, b"400"),
    ("POST", _KEY, _V13, b"400"),
], ids=["version-8", "version-list", "no-version", "no-key", "short-key", "unpadded-key", "key-bits",
        "key-alphabet", "post"])
async def test_an_invalid_upgrade_request_gets_an_http_error(server, bystander, method, key, version,
                                                             status) -> None:
    """RFC 6455 4.2.1: 400 for a malformed opening handshake; 4.4: 426 naming version 13."""
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    try:
        writer.write(_UPGRADE.format(method=method, key=key, version=version).encode())
        await writer.drain()
        answer = await read_until_eof(reader, 15)
    finally:
        writer.close()
    head = answer.split(b"\r\n\r\n")[0].lower()
    assert head.startswith(b"http/1.1 " + status), answer[:200]
    if status == b"426":
        assert b"\r\nsec-websocket-version: 13" in head
    await assert_healthy(server, bystander)
    text = await metrics_text(server)
    assert counter(text, "connections_rejected_total", "bad_handshake") == 1
    assert counter(text, "connections_total") == 1  # the bystander only


async def test_the_rfc_sample_handshake_is_accepted(server) -> None:
    """The validation above refuses nothing valid: RFC 6455's own example key gets its example
    accept value."""
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    try:
        writer.write(_UPGRADE.format(method="GET", key=_KEY, version=_V13).encode())
        await writer.drain()
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
    finally:
        writer.close()
    assert head.startswith(b"HTTP/1.1 101 ")
    assert b"s3pPLMBiTxaQ9kYGzzhZRbK+xOo=" in head


async def test_a_handshake_that_never_completes_is_dropped_after_the_timeout(server, bystander) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    try:
        writer.write(b"GET / HTTP/1.1\r\nHost: x\r\n")  # and then nothing
        await writer.drain()
        started = time.monotonic()
        await read_until_eof(reader, 25)
        waited = time.monotonic() - started
    finally:
        writer.close()
    assert 8 <= waited <= 20, f"dropped after {waited:.1f} s; the handshake timeout is 10 s"
    await assert_healthy(server, bystander)


# ---- absurd JSON ---------------------------------------------------------------------------


async def test_json_nested_10000_levels_deep_is_invalid_json(server, bystander, client_factory) -> None:
    ws = await client_factory(server)
    for deep in ('{"a":' * 10000 + "1" + "}" * 10000, "[" * 10000 + "]" * 10000,
                 '{"type":"ping","x":' + "[" * 10000 + "]" * 10000 + "}"):
        assert_error(await request(ws, deep), "invalid_json")
    assert (await request(ws, {"type": "ping"}))["type"] == "pong"
    await assert_healthy(server, bystander)


@pytest.mark.parametrize("number", ["1e999999", "-1e999999", "1" * 5000, "0." + "0" * 5000 + "1",
                                    "123456789012345678901234567890"])
async def test_huge_numbers_are_answered(client, number) -> None:
    """No field of the protocol is a number, so any number is fine to ignore, but LEJP refuses
    integers of more than 20 digits: invalid_json. Either way the connection stays open."""
    reply = await request(client, '{"type":"ping","n":' + number + "}")
    if reply["type"] == "error":
        assert_error(reply, "invalid_json")
    else:
        assert reply["type"] == "pong"
    assert (await request(client, {"type": "ping"}))["type"] == "pong"


async def test_duplicated_keys_take_the_last_value(client) -> None:
    await recv_type(client, "metrics_update")  # get_metrics answers from the latest snapshot
    assert (await request(client, '{"type":"subscribe","type":"ping"}'))["type"] == "pong"
    reply = await request(client, '{"type":"get_metrics","skill_name":"nope","skill_name":"mypy"}')
    assert reply["type"] == "metrics_response" and reply["data"]["skill_name"] == "mypy"


async def test_nul_bytes_in_strings(client) -> None:
    assert_error(await request(client, {"type": "get_metrics", "skill_name": "my\u0000py"}), "invalid_request")
    assert_error(await request(client, {"type": "subscribe", "skill_name": "\u0000"}), "invalid_request")
    assert_error(await request(client, {"type": "pi\u0000ng"}), "unknown_type")
    assert (await request(client, {"type": "ping"}))["type"] == "pong"


# ---- hostile skill names -------------------------------------------------------------------


HOSTILE_NAMES = [
    'quo"te\\back\\"slash',
    "'; DROP TABLE skill_invocation; --",
    "x' OR '1'='1",
    "<script>alert(1)</script>",
    "\u202eevil\u200b",
    "n" * 1024,  # the longest name allowed (longer ones: test_untrusted_text.py)
]


@pytest.mark.parametrize("name", HOSTILE_NAMES, ids=["quotes", "drop-table", "or-1-1", "html", "bidi", "1kib"])
async def test_hostile_skill_names_are_data(server, client, seeded_db, name) -> None:
    reply = await request(client, {"type": "get_metrics", "skill_name": name})
    assert_error(reply, "unknown_skill", "get_metrics")
    assert reply["message"] == f"Invalid skill name: {name}"

    confirmed = await request(client, {"type": "subscribe", "skill_name": name})
    assert confirmed["type"] == "subscription_confirmed" and confirmed["skill_name"] == name
    update = await recv_type(client, "metrics_update")
    assert update["data"]["top_skills"] == [] and update["data"]["anomalies"] == []

    con = sqlite3.connect(seeded_db.path)
    try:
        tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        rows = con.execute("SELECT COUNT(*) FROM skill_invocation").fetchone()[0]
    finally:
        con.close()
    assert {"skill_invocation", "skill_metrics", "skill_anomalies"} <= tables
    assert rows == len(SEED)


# ---- abrupt disconnects --------------------------------------------------------------------


async def test_abrupt_disconnect_mid_frame(server, bystander) -> None:
    for how in ("fin", "rst"):
        ws = await RawWebSocket.connect("127.0.0.1", server.port)
        await ws.recv_json()
        await wait_until(lambda: len(server.clients) == 2, message="the raw client listed")
        frame = encode_frame(OP_TEXT, b'{"type":"subscribe","skill_name":"' + b"x" * 3000 + b'"}')
        await ws.send_raw(frame[:1500])  # half a frame
        if how == "rst":
            sock = ws.writer.get_extra_info("socket")
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        await ws.aclose()
        await wait_until(lambda: len(server.clients) == 1, message=f"the {how} client to leave")
    await assert_healthy(server, bystander)


# ---- churn ---------------------------------------------------------------------------------


async def test_connection_churn_returns_fds_to_their_baseline(server_factory) -> None:
    server = await server_factory(max_clients=0)
    url = f"ws://127.0.0.1:{server.port}"

    async def cycle() -> None:
        async with connect(url, **CONNECT_KWARGS) as ws:
            assert json.loads(await ws.recv())["type"] == "connected"

    await asyncio.gather(*(cycle() for _ in range(20)))
    await wait_until(lambda: not server.clients, message="warm-up clients gone")
    baseline = open_fd_count()
    for _ in range(20):  # 1,000 cycles, 50 at a time
        await asyncio.gather(*(cycle() for _ in range(50)))
    await wait_until(lambda: not server.clients, timeout=30, message="every client gone")
    await wait_until(lambda: open_fd_count() <= baseline + 2, timeout=30,
                     message=f"open fds back to {baseline}")
