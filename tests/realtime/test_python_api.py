"""The Python-side API: in-process clients, metrics subscribers, client_handler inside another
server, handle_client_message / handle_subscription, broadcast_metrics, and `clients`."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import threading
import time
from typing import Any

import pytest
from websockets.asyncio.server import serve

from session_buddy.realtime import NetworkClient

from protocol_checks import assert_connected, assert_error, assert_metrics_update_shape, top_names
from skills_seed import iso_ms, store_invocation, utc_now
from wsutil import (
    open_client,
    recv_json,
    recv_type,
    recv_update_where,
    recv_updates,
    request,
    wait_until,
)

LOGGER = "session_buddy.realtime"


class Sink:
    """The smallest in-process client: an object with `async send(text)`.

    `subscription_skill` and `remote_address` exist only when given, as they are optional."""

    def __init__(self, **attrs: Any) -> None:
        self.received: list[str] = []
        for name, value in attrs.items():
            setattr(self, name, value)

    async def send(self, text: str) -> None:
        self.received.append(text)  # checked by the tests: raising here would be swallowed

    @property
    def messages(self) -> list[dict[str, Any]]:
        return [json.loads(t) for t in self.received]

    def of_type(self, type_: str) -> list[dict[str, Any]]:
        return [m for m in self.messages if m.get("type") == type_]

    @property
    def last(self) -> dict[str, Any]:
        assert self.received, "nothing was sent"
        return json.loads(self.received[-1])


class SlottedSink:
    """An in-process client whose attributes cannot be set from outside."""

    __slots__ = ("received",)

    def __init__(self) -> None:
        self.received: list[str] = []

    async def send(self, text: str) -> None:
        self.received.append(text)


async def _quiet_afterwards(control, counter, what: str) -> None:
    """After `control` has seen 1 + 3 more updates, `counter()` must not have moved during the 3."""
    await recv_type(control, "metrics_update")  # lets anything already in flight land
    before = counter()
    await recv_updates(control, 3)
    assert counter() == before, f"{what} still received updates"


# ---- register_client ------------------------------------------------------------------------


async def test_register_client_plain_object(server, client, seeded_db) -> None:
    await wait_until(lambda: len(server.clients) == 1, message="the network client listed")
    sink = Sink()
    server.register_client(sink)
    assert sink in server.clients
    assert len(server.clients) == 2, "len(clients) counts both kinds"

    await wait_until(lambda: len(sink.received) >= 3, message="three updates to the sink")
    assert all(type(t) is str for t in sink.received), "send() must get JSON text (str)"
    messages = sink.messages
    assert all(m["type"] == "metrics_update" for m in messages), "in-process clients get no `connected`"
    seqs = [m["seq"] for m in messages]
    assert seqs == sorted(set(seqs))
    for m in messages:
        assert_metrics_update_shape(m)
        assert top_names(m) == seeded_db.expected_order

    server.unregister_client(sink)
    assert sink not in server.clients
    assert len(server.clients) == 1
    await _quiet_afterwards(client, lambda: len(sink.received), "an unregistered client")

    server.unregister_client(sink)  # unknown objects: a no-op
    server.unregister_client(Sink())
    assert len(server.clients) == 1


async def test_register_client_honours_subscription_skill(server, seeded_db) -> None:
    sink = Sink(subscription_skill="black", remote_address="in-process:1")
    server.register_client(sink)
    await wait_until(lambda: len(sink.received) >= 2, message="updates to the sink")
    for m in sink.messages:
        assert top_names(m) == ["black"]


async def test_register_client_without_send_is_rejected(server) -> None:
    with pytest.raises(TypeError):
        server.register_client(object())
    assert len(server.clients) == 0


async def test_broken_in_process_client_does_not_stop_broadcasting(server, client) -> None:
    class Broken:
        async def send(self, text: str) -> None:
            raise ConnectionError("gone")

    good = Sink()
    server.register_client(Broken())
    server.register_client(good)
    await wait_until(lambda: len(good.received) >= 3, message="updates to the good sink")
    seqs = [u["seq"] for u in await recv_updates(client, 3)]
    assert seqs == sorted(set(seqs))


# ---- metrics subscribers -----------------------------------------------------------------------


async def test_metrics_subscribers_sync_async_and_raising(server, client, caplog, seeded_db) -> None:
    caplog.set_level(logging.ERROR, logger=LOGGER)
    sync_got: list[dict] = []
    async_got: list[dict] = []
    raised: list[dict] = []

    threads: set[int] = set()

    def sync_cb(payload: dict) -> None:
        threads.add(threading.get_ident())
        sync_got.append(payload)

    def bad_sync_cb(payload: dict) -> None:
        raised.append(payload)
        raise RuntimeError("subscriber boom (sync)")

    async def async_cb(payload: dict) -> None:
        threads.add(threading.get_ident())
        await asyncio.sleep(0)
        async_got.append(payload)

    async def bad_async_cb(payload: dict) -> None:
        await asyncio.sleep(0)
        raise RuntimeError("subscriber boom (async)")

    for cb in (bad_sync_cb, sync_cb, bad_async_cb, async_cb):
        server.register_metrics_subscriber(cb)

    await wait_until(lambda: len(sync_got) >= 3 and len(async_got) >= 3 and len(raised) >= 3,
                     message="three calls to every subscriber")
    assert threads == {threading.get_ident()}, "subscribers must run on the asyncio thread"
    for payload in sync_got + async_got:
        assert isinstance(payload, dict)
        assert_metrics_update_shape(payload)
        assert top_names(payload) == seeded_db.expected_order, "subscribers get the unfiltered snapshot"
    seqs = [p["seq"] for p in sync_got]
    assert seqs == sorted(set(seqs))

    def boom_records(kind: str) -> list[logging.LogRecord]:
        return [
            r for r in caplog.records
            if r.name.startswith(LOGGER) and r.levelno >= logging.ERROR and r.exc_info
            and f"boom ({kind})" in str(r.exc_info[1])
        ]

    await wait_until(lambda: boom_records("sync") and boom_records("async"),
                     message="the subscribers' exceptions logged with traceback")

    # The network client never noticed.
    seqs = [u["seq"] for u in await recv_updates(client, 2)]
    assert seqs[0] < seqs[1]

    server.unregister_metrics_subscriber(sync_cb)
    server.unregister_metrics_subscriber(bad_sync_cb)
    await _quiet_afterwards(client, lambda: len(sync_got) + len(raised), "an unregistered subscriber")
    assert len(async_got) > 3, "the remaining subscriber kept being called"
    server.unregister_metrics_subscriber(sync_cb)  # again: a no-op


async def test_metrics_subscriber_must_be_callable(server) -> None:
    with pytest.raises(TypeError):
        server.register_metrics_subscriber("not callable")


# ---- client_handler inside another websockets server ----------------------------------------------


async def test_client_handler_serves_a_websockets_connection(server, seeded_db) -> None:
    results: list[Any] = []
    errors: list[BaseException] = []

    async def handler(connection) -> None:
        try:
            results.append(await server.client_handler(connection))
        except BaseException as exc:  # recorded, so the test can fail on it
            errors.append(exc)
            raise

    async with serve(handler, "127.0.0.1", 0) as outer:
        port = next(iter(outer.sockets)).getsockname()[1]
        ws, hello = await open_client(f"ws://127.0.0.1:{port}")
        try:
            assert_connected(hello)
            await wait_until(lambda: len(server.clients) == 1, message="the mounted client listed")

            update = await recv_type(ws, "metrics_update")
            assert_metrics_update_shape(update)
            assert top_names(update) == seeded_db.expected_order

            pong = await request(ws, {"type": "ping"})
            assert pong["type"] == "pong"

            reply = await request(ws, {"type": "subscribe", "skill": "mypy"})
            assert reply["type"] == "subscription_confirmed"
            assert reply["skill"] == reply["skill_name"] == "mypy"
            assert top_names(await recv_type(ws, "metrics_update")) == ["mypy"]

            reply = await request(ws, {"type": "get_metrics", "skill_name": "black"})
            assert reply["type"] == "metrics_response"
            assert reply["data"]["skill_name"] == "black"

            assert_error(await request(ws, "not json"), "invalid_json", None)

            reply = await request(ws, {"type": "unsubscribe"})
            assert reply["type"] == "unsubscribed"
            await ws.send('{"type": "ping"}')
            assert (await recv_json(ws))["type"] == "pong", "an update followed unsubscribe"
        finally:
            await ws.close()
        await wait_until(lambda: results or errors, message="client_handler to return")
        assert errors == []
        assert results == [None]
        assert len(server.clients) == 0


# ---- handle_client_message / handle_subscription -------------------------------------------------------


async def test_handle_client_message_str_and_bytes(server, seeded_db) -> None:
    await server.broadcast_metrics()  # a snapshot exists for get_metrics
    sink = Sink()
    await server.handle_client_message(sink, '{"type": "ping"}')
    assert sink.last["type"] == "pong"
    await server.handle_client_message(sink, b'{"type": "ping"}')
    assert sink.last["type"] == "pong"
    await server.handle_client_message(sink, "{nope")
    assert_error(sink.last, "invalid_json", None)
    await server.handle_client_message(sink, '{"type": "teleport"}')
    assert_error(sink.last, "unknown_type", "teleport")
    await server.handle_client_message(sink, '{"type": "get_metrics", "skill": "mypy"}')
    assert sink.last["type"] == "metrics_response"
    assert sink.last["data"]["skill_name"] == "mypy"
    await server.handle_client_message(sink, '{"type": "get_metrics", "skill": "nope"}')
    assert_error(sink.last, "unknown_skill", "get_metrics")
    assert sink.last["message"] == "Invalid skill name: nope"
    assert sink not in server.clients, "answering a message registers nothing"


async def test_subscribe_message_is_kept_for_later_registration(server) -> None:
    sink = Sink()
    await server.handle_client_message(sink, '{"type": "subscribe", "skill_name": "alpha-lint"}')
    assert sink.last["type"] == "subscription_confirmed"
    assert sink.last["skill_name"] == "alpha-lint"
    assert sink.subscription_skill == "alpha-lint"
    server.register_client(sink)
    await wait_until(lambda: sink.of_type("metrics_update"), message="an update to the sink")
    for update in sink.of_type("metrics_update"):
        assert top_names(update) == ["alpha-lint"]


async def test_handle_subscription(server, seeded_db) -> None:
    sink = Sink()
    await server.handle_subscription(sink, "mypy")
    confirm = sink.last
    assert confirm["type"] == "subscription_confirmed"
    assert confirm["skill"] == confirm["skill_name"] == "mypy"
    assert sink.subscription_skill == "mypy"

    server.register_client(sink)
    await wait_until(lambda: sink.of_type("metrics_update"), message="an update to the sink")
    assert all(top_names(u) == ["mypy"] for u in sink.of_type("metrics_update"))

    await server.handle_subscription(sink, None)
    assert sink.last["type"] == "subscription_confirmed"
    assert sink.last["skill"] is None and sink.last["skill_name"] is None
    assert sink.subscription_skill is None
    seen = len(sink.received)
    await wait_until(
        lambda: any(top_names(u) == seeded_db.expected_order
                    for u in [json.loads(t) for t in sink.received[seen:]]
                    if u["type"] == "metrics_update"),
        message="an unfiltered update after subscribing to all",
    )


async def test_handle_subscription_on_an_object_without_settable_attributes(server) -> None:
    sink = SlottedSink()
    await server.handle_subscription(sink, "black")
    assert json.loads(sink.received[-1])["type"] == "subscription_confirmed"


# ---- broadcast_metrics ---------------------------------------------------------------------------------


async def test_broadcast_metrics_on_demand(server_factory, client_factory, seeded_db) -> None:
    server = await server_factory(update_interval=30.0)
    ws = await client_factory(server)
    payloads: list[dict] = []
    server.register_metrics_subscriber(payloads.append)
    sink = Sink()
    server.register_client(sink)

    invoked_at = iso_ms(utc_now())
    store_invocation(seeded_db.path, "on-demand", invoked_at)

    started = time.monotonic()
    await asyncio.wait_for(server.broadcast_metrics(), 10)
    assert time.monotonic() - started < 5

    # By the time it returns, subscribers and in-process clients have the new snapshot.
    assert payloads, "broadcast_metrics() returned before the subscribers were called"
    assert "on-demand" in top_names(payloads[-1])
    assert sink.of_type("metrics_update"), "broadcast_metrics() returned before in-process delivery"
    seq = payloads[-1]["seq"]

    # ...and network clients get it promptly, not after the 30 s interval.
    update = await recv_update_where(ws, lambda u: u["seq"] >= seq, timeout=5,
                                     what="the on-demand update")
    assert "on-demand" in top_names(update)


async def test_broadcast_metrics_on_a_stopped_server_raises(server_factory) -> None:
    server = await server_factory(start=False)
    with pytest.raises(RuntimeError):
        await server.broadcast_metrics()
    await server.start()
    await server.broadcast_metrics()
    await server.stop()
    with pytest.raises(RuntimeError):
        await server.broadcast_metrics()


# ---- clients ------------------------------------------------------------------------------------------


async def test_clients_is_a_fresh_set_of_network_and_in_process_clients(server, client) -> None:
    sink = Sink()
    server.register_client(sink)
    await wait_until(lambda: len(server.clients) == 2, message="both kinds listed")
    first = server.clients
    assert isinstance(first, set)
    assert first is not server.clients
    first.clear()
    assert len(server.clients) == 2, "mutating the returned set must not touch the server"
    kinds = {type(c) for c in server.clients}
    assert kinds == {NetworkClient, Sink}


async def test_network_client_entries(server, client) -> None:
    def mine() -> NetworkClient | None:
        found = [c for c in server.clients if isinstance(c, NetworkClient)]
        return found[0] if len(found) == 1 else None

    entry = await wait_until(mine, message="the network client listed")
    assert type(entry.id) is int
    assert entry.remote_address == f"127.0.0.1:{client.local_address[1]}"
    assert entry.subscribed is True
    assert entry.subscription_skill is None
    assert entry.user_id is None
    with pytest.raises(dataclasses.FrozenInstanceError):
        entry.subscribed = False  # type: ignore[misc]

    await request(client, {"type": "subscribe", "skill_name": "mypy"})
    await wait_until(lambda: (e := mine()) is not None and e.subscription_skill == "mypy",
                     message="subscription_skill to follow")
    assert mine().id == entry.id

    await request(client, {"type": "unsubscribe"})
    await wait_until(lambda: (e := mine()) is not None and e.subscribed is False,
                     message="subscribed to turn False")

    await client.close()
    await wait_until(lambda: len(server.clients) == 0, message="the closed client to leave")
