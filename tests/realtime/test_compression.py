"""permessage-deflate: negotiated when the client offers it, and the data stays correct."""

from __future__ import annotations

import json

from websockets.asyncio.client import connect
from websockets.extensions.permessage_deflate import PerMessageDeflate

from wsutil import recv_type


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
