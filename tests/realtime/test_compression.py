"""permessage-deflate: negotiated when the client offers it, and the data stays correct."""

from __future__ import annotations

import json

from websockets.asyncio.client import connect
from websockets.extensions.permessage_deflate import PerMessageDeflate

from wsutil import expect_close, recv_type


async def test_deflate_negotiated_and_updates_decode(server) -> None:
    async with connect(server.url, compression="deflate") as ws:
        assert any(isinstance(e, PerMessageDeflate) for e in ws.protocol.extensions)
        assert json.loads(await ws.recv())["type"] == "connected"
        first = await recv_type(ws, "metrics_update", 10)
        second = await recv_type(ws, "metrics_update", 10)
        assert second["seq"] > first["seq"] and first["data"]["top_skills"]
        await ws.send(json.dumps({"type": "ping"}))
        assert (await recv_type(ws, "pong", 10))["type"] == "pong"


async def test_no_extension_when_the_client_does_not_offer_it(server) -> None:
    async with connect(server.url, compression=None) as ws:
        assert ws.protocol.extensions == []
        assert json.loads(await ws.recv())["type"] == "connected"
        assert (await recv_type(ws, "metrics_update", 10))["data"]["top_skills"]


async def test_compressed_and_plain_clients_get_the_same_update(server) -> None:
    async with connect(server.url, compression="deflate") as zipped, connect(server.url, compression=None) as plain:
        await zipped.recv()
        await plain.recv()
        await server.broadcast_metrics()
        a = await recv_type(zipped, "metrics_update", 10)
        b = await recv_type(plain, "metrics_update", 10)
        while a["seq"] != b["seq"]:
            if a["seq"] < b["seq"]:
                a = await recv_type(zipped, "metrics_update", 10)
            else:
                b = await recv_type(plain, "metrics_update", 10)
        assert a == b


async def test_compressed_message_over_the_limit_closes_1009(server_factory) -> None:
    """5,000 bytes inflate from a few dozen: the limit applies to the inflated message.
    (lws ignores RECEIVE's return value for inflated data, which once let this through.)"""
    server = await server_factory(max_message_size=4096)
    async with connect(server.url, compression="deflate", close_timeout=2) as ws:
        await ws.recv()
        await ws.send("x" * 5000)
        assert await expect_close(ws, 10) == 1009


async def test_compressed_message_larger_than_one_chunk_is_reassembled(server) -> None:
    """lws inflates into chunks of its rx buffer; a 20 KB message spans several."""
    async with connect(server.url, compression="deflate") as ws:
        await ws.recv()
        await ws.send(json.dumps({"type": "ping", "padding": "y" * 20000}))
        assert (await recv_type(ws, "pong", 10))["type"] == "pong"
