"""Plain HTTP and WebSocket on one port, through one lws protocol whose callback hands HTTP to
its own room: a connection that served HTTP can still upgrade; a client naming our subprotocol
gets it; one naming another subprotocol gets no WebSocket, and the server goes on serving."""

from __future__ import annotations

import asyncio
import json

import pytest
from websockets.asyncio.client import connect

from wsutil import CONNECT_KWARGS, recv_type

_KEY = "dGhlIHNhbXBsZSBub25jZQ=="


def _upgrade(port: int, subprotocol: str | None = None) -> bytes:
    proto = f"Sec-WebSocket-Protocol: {subprotocol}\r\n" if subprotocol else ""
    return (f"GET / HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {_KEY}\r\nSec-WebSocket-Version: 13\r\n"
            f"{proto}\r\n").encode()


async def _read_head(reader: asyncio.StreamReader) -> bytes:
    return await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 15)


async def test_a_connection_that_served_http_can_then_upgrade(server) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    try:
        writer.write(f"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\n\r\n".encode())
        await writer.drain()
        head = await _read_head(reader)
        assert head.startswith(b"HTTP/1.1 200"), head
        length = int(next(line.split(b":")[1] for line in head.split(b"\r\n")
                          if line.lower().startswith(b"content-length:")))
        body = await asyncio.wait_for(reader.readexactly(length), 15)
        assert json.loads(body)["status"] == "ok"

        writer.write(_upgrade(server.port))
        await writer.drain()
        head = await _read_head(reader)
        assert head.startswith(b"HTTP/1.1 101"), head
        # The greeting arrives as a text frame: the session was set up on the upgraded connection.
        first = await asyncio.wait_for(reader.readexactly(2), 15)
        assert first[0] == 0x81, first
        size = first[1] & 0x7F
        if size == 126:
            size = int.from_bytes(await asyncio.wait_for(reader.readexactly(2), 15), "big")
        assert json.loads(await asyncio.wait_for(reader.readexactly(size), 15))["type"] == "connected"
    finally:
        writer.close()


async def test_naming_our_subprotocol_gets_it(server) -> None:
    async with connect(f"ws://127.0.0.1:{server.port}", subprotocols=["session-buddy-metrics"],
                       **CONNECT_KWARGS) as ws:
        assert ws.subprotocol == "session-buddy-metrics"
        await recv_type(ws, "connected")


async def test_naming_another_subprotocol_gives_no_websocket(server) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    try:
        writer.write(_upgrade(server.port, "http-only"))
        await writer.drain()
        answer = await asyncio.wait_for(reader.read(4096), 15)
        assert not answer.startswith(b"HTTP/1.1 101"), answer
    finally:
        writer.close()
    # The server goes on serving WebSocket clients.
    async with connect(f"ws://127.0.0.1:{server.port}", **CONNECT_KWARGS) as ws:
        await recv_type(ws, "connected")
