"""In-process clients are held to the network path's slow-consumer bounds: one unsent update at
most (a newer one replaces it), replies up to 64 KiB and then a close with 1008, and a client
that never reads delays nobody: not broadcast_metrics(), not the other clients."""

from __future__ import annotations

import asyncio
import json
import time
import tracemalloc
from collections.abc import AsyncIterator
from typing import Any

from websockets.asyncio.client import connect
from websockets.asyncio.server import ServerConnection, serve

from wsutil import CONNECT_KWARGS, expect_close, recv_json, recv_type, wait_until


class NeverReturns:
    """An in-process client whose send() never completes (a peer that stopped reading)."""

    def __init__(self) -> None:
        self.calls = 0
        self.closed: list[tuple[int, str]] = []

    async def send(self, text: str) -> None:
        self.calls += 1
        await asyncio.Event().wait()

    async def close(self, code: int = 1000, reason: str = "") -> None:
        self.closed.append((code, reason))


class Sink:
    def __init__(self) -> None:
        self.received: list[dict[str, Any]] = []

    async def send(self, text: str) -> None:
        self.received.append(json.loads(text))


async def test_a_client_whose_send_never_returns_costs_one_task_and_delays_nobody(server_factory, client_factory) -> None:
    server = await server_factory(update_interval=0.05)
    stuck, good = NeverReturns(), Sink()
    server.register_client(stuck)
    server.register_client(good)
    network = await client_factory(server)
    await wait_until(lambda: stuck.calls == 1, message="the first send to the stuck client")

    tracemalloc.start()
    try:
        await wait_until(lambda: len(good.received) >= 5, message="updates to the good client")
        tasks_before = len(asyncio.all_tasks())
        memory_before = tracemalloc.get_traced_memory()[0]
        seen_before = len(good.received)
        deadline = time.monotonic() + 3.0  # 60 ticks at 0.05 s
        broadcasts = 0
        while time.monotonic() < deadline:
            await asyncio.wait_for(server.broadcast_metrics(), 10)
            broadcasts += 1
            await asyncio.sleep(0.05)
        tasks_after = len(asyncio.all_tasks())
        memory_after = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()

    assert broadcasts >= 5, "broadcast_metrics() kept returning"
    assert stuck.calls == 1, "one send at a time: the stuck one"
    assert tasks_after <= tasks_before + 2, f"tasks grew from {tasks_before} to {tasks_after}"
    assert memory_after - memory_before < 1_000_000, f"memory grew by {memory_after - memory_before} bytes"
    assert len(good.received) >= seen_before + 10, "the good client kept receiving"
    seqs = [m["seq"] for m in good.received]
    assert seqs == sorted(seqs)
    first, second = (await recv_type(network, "metrics_update"))["seq"], (await recv_type(network, "metrics_update"))["seq"]
    assert first < second, "the network client kept receiving"
    assert stuck in server.clients, "a slow update consumer is conflated, not dropped"


async def test_a_newer_update_replaces_an_unsent_one(server_factory) -> None:
    server = await server_factory(update_interval=60)

    class Gate:
        def __init__(self) -> None:
            self.open = asyncio.Event()
            self.received: list[dict[str, Any]] = []

        async def send(self, text: str) -> None:
            await self.open.wait()
            self.received.append(json.loads(text))

    gate = Gate()
    server.register_client(gate)
    for _ in range(4):
        await server.broadcast_metrics()  # returns though the gate is shut
    gate.open.set()
    await wait_until(lambda: len(gate.received) == 2, message="the held update and the latest one")
    first, latest = gate.received
    await server.broadcast_metrics()
    await wait_until(lambda: len(gate.received) == 3, message="the next update")
    assert first["seq"] < latest["seq"] < gate.received[2]["seq"]
    assert latest["seq"] == first["seq"] + 3, "the two snapshots in between were conflated away"


class NeverSends:
    """Starlette-style adapter over a real connection whose outgoing side is stuck, as with a
    peer whose receive window is full: replies pile up in the server."""

    def __init__(self, connection: ServerConnection) -> None:
        self._ws = connection
        self.remote_address = connection.remote_address

    async def send(self, text: str) -> None:
        await asyncio.Event().wait()

    async def close(self, code: int = 1000, reason: str = "") -> None:
        await self._ws.close(code, reason)

    async def __aiter__(self) -> AsyncIterator[str]:
        async for message in self._ws:
            yield message


async def test_replies_past_64_kib_close_the_mounted_client_with_1008(server_factory) -> None:
    server = await server_factory(update_interval=60)
    finished: list[Any] = []

    async def handler(connection: ServerConnection) -> None:
        finished.append(await server.client_handler(NeverSends(connection)))

    async with serve(handler, "127.0.0.1", 0) as outer:
        port = next(iter(outer.sockets)).getsockname()[1]
        async with connect(f"ws://127.0.0.1:{port}", **CONNECT_KWARGS) as ws:
            request = json.dumps({"type": "get_metrics", "skill_name": "pytest-run"})
            sent = 0
            while ws.close_code is None and sent < 2000:  # ~300 bytes a reply: 64 KiB is ~220 of them
                try:
                    await ws.send(request)
                except Exception:
                    break
                sent += 1
            assert await expect_close(ws, timeout=15) == 1008
            assert ws.close_reason == "reply queue full"
        await wait_until(lambda: finished == [None], message="client_handler to return")
    assert len(server.clients) == 0


async def test_a_registered_client_gets_its_replies_in_order_with_updates(server_factory) -> None:
    server = await server_factory(update_interval=60)
    sink = Sink()
    server.register_client(sink)
    await server.handle_client_message(sink, '{"type": "subscribe", "skill_name": "mypy"}')
    await wait_until(lambda: len(sink.received) == 2, message="confirmation and update")
    assert [m["type"] for m in sink.received] == ["subscription_confirmed", "metrics_update"]
    assert [e["skill_name"] for e in sink.received[1]["data"]["top_skills"]] == ["mypy"]
    await server.handle_client_message(sink, '{"type": "ping"}')
    assert sink.received[-1]["type"] == "pong", "handle_client_message() returns once its reply is sent"
    assert (await recv_json_from(sink, 2))["type"] == "pong"


async def recv_json_from(sink: Sink, index: int) -> dict[str, Any]:
    await wait_until(lambda: len(sink.received) > index, message=f"message {index}")
    return sink.received[index]
