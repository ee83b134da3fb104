"""Main test module of the real-time metrics WebSocket server (run: pytest tests/test_websocket_server.py -v).

It covers what session-buddy's own suite covered (lifecycle, connections, broadcasting,
subscriptions, several clients, error handling, ping/pong) against the C server, with real
sockets on port 0 and real SQLite files. Deeper tests per area live in tests/realtime/.
"""

from __future__ import annotations

import asyncio
import json
import time

import pytest
from websockets.asyncio.client import connect

from session_buddy.realtime import NetworkClient, RealTimeMetricsServer, run_server
from session_buddy.realtime import websocket_server as legacy

from protocol_checks import (
    assert_connected,
    assert_entry_matches,
    assert_error,
    assert_metrics_data_matches,
    assert_metrics_update_shape,
    top_names,
)
from wsutil import (
    CONNECT_KWARGS,
    TS_RE,
    client_url,
    expect_close,
    free_port,
    open_client,
    recv_type,
    recv_updates,
    request,
    wait_until,
)


def test_legacy_import_path_gives_the_same_objects() -> None:
    assert legacy.RealTimeMetricsServer is RealTimeMetricsServer
    assert legacy.run_server is run_server


# ---- lifecycle -----------------------------------------------------------------


async def test_start_serves_and_stop_releases(server_factory) -> None:
    server = await server_factory(start=False)
    assert server.running is False
    assert server._running is False
    assert server._server is None
    assert server._broadcast_task is None

    await server.start()
    assert server.running is True
    assert server._running is True
    assert server._server is not None
    assert server._broadcast_task is not None
    assert 0 < server.port < 65536, "port 0 must be replaced by the bound port"
    assert server.url == f"ws://localhost:{server.port}"

    ws, hello = await open_client(client_url(server))
    try:
        assert_connected(hello)
        assert_metrics_update_shape(await recv_type(ws, "metrics_update"))
    finally:
        await ws.close()

    await server.stop()
    assert server.running is False
    assert server._running is False
    assert server._server is None
    assert server._broadcast_task is None
    with pytest.raises(OSError):
        await connect(client_url(server), open_timeout=5, **CONNECT_KWARGS)


async def test_async_context_manager_starts_and_stops(seeded_db) -> None:
    server = RealTimeMetricsServer(port=0, db_path=seeded_db.path, update_interval=0.2)
    async with server as entered:
        assert entered is server
        assert server.running is True
        ws, hello = await open_client(client_url(server))
        try:
            assert_connected(hello)
            await recv_type(ws, "metrics_update")
        finally:
            await ws.close()
    assert server.running is False
    with pytest.raises(OSError):
        await connect(client_url(server), open_timeout=5, **CONNECT_KWARGS)


async def test_async_context_manager_stops_on_error(seeded_db) -> None:
    server = RealTimeMetricsServer(port=0, db_path=seeded_db.path, update_interval=0.2)
    with pytest.raises(ZeroDivisionError):
        async with server:
            assert server.running is True
            1 / 0  # noqa: B018
    assert server.running is False


async def test_run_server_serves_until_cancelled(seeded_db) -> None:
    port = free_port()
    task = asyncio.create_task(run_server("127.0.0.1", port, seeded_db.path, 0.2, False))
    url = f"ws://127.0.0.1:{port}"

    async def try_connect():
        if task.done():
            task.result()  # surface a startup failure instead of timing out
        try:
            return await open_client(url, timeout=5)
        except OSError:
            return None

    ws, hello = await wait_until(try_connect, timeout=15, message="run_server to accept clients")
    try:
        assert_connected(hello)
        await recv_type(ws, "metrics_update")
        task.cancel()
        assert await expect_close(ws) == 1001
        with pytest.raises(asyncio.CancelledError):
            await task
    finally:
        await ws.close()
        task.cancel()
    with pytest.raises(OSError):
        await connect(url, open_timeout=5, **CONNECT_KWARGS)


# ---- connections and broadcasting ---------------------------------------------------


async def test_connected_message_comes_first(server, client_factory) -> None:
    ws, hello = await client_factory.with_hello(server)
    assert_connected(hello)


async def _next_frame(ws) -> dict:
    return json.loads(await asyncio.wait_for(ws.recv(), 10))


@pytest.mark.parametrize("first", [{"type": "ping"}, {"type": "subscribe", "skill": "mypy"}],
                         ids=["ping", "subscribe"])
async def test_the_frame_after_connected_is_the_reply_to_the_first_request(server_factory, client_factory, first) -> None:
    """Clients written for session-buddy's own server read the reply to their first request as
    the next frame: no update comes before the next tick (here 60 s away)."""
    server = await server_factory(update_interval=60)
    ws = await client_factory(server)
    await ws.send(json.dumps(first))
    reply = await _next_frame(ws)
    if first["type"] == "ping":
        assert reply["type"] == "pong"
        await server.broadcast_metrics()  # the stream itself still flows
        assert (await _next_frame(ws))["type"] == "metrics_update"
    else:
        assert reply["type"] == "subscription_confirmed"
        update = await _next_frame(ws)  # a subscribe is answered at once with the current update
        assert update["type"] == "metrics_update"
        assert top_names(update) == ["mypy"]


async def test_the_first_update_comes_with_the_next_tick(server_factory, client_factory) -> None:
    server = await server_factory(update_interval=0.5)
    ws = await client_factory(server)
    update = await recv_type(ws, "metrics_update", timeout=10)
    assert_metrics_update_shape(update)


async def test_metrics_update_reports_the_database(client, seeded_db) -> None:
    update = await recv_type(client, "metrics_update")
    assert_metrics_update_shape(update)
    assert top_names(update) == seeded_db.expected_order
    for entry in update["data"]["top_skills"]:
        assert_entry_matches(entry, seeded_db.expected_entry(entry["skill_name"]))
    assert update["data"]["anomalies"] == []


async def test_top_n_limits_the_list(server_factory, client_factory, seeded_db) -> None:
    server = await server_factory(top_n=2)
    ws = await client_factory(server)
    update = await recv_type(ws, "metrics_update")
    assert top_names(update) == seeded_db.expected_order[:2]


async def test_several_clients_all_receive_updates(server, client_factory) -> None:
    clients = await asyncio.gather(*(client_factory(server) for _ in range(5)))
    batches = await asyncio.gather(*(recv_updates(ws, 3) for ws in clients))
    for updates in batches:
        seqs = [u["seq"] for u in updates]
        assert seqs == sorted(set(seqs)), f"seq not strictly increasing: {seqs}"
    await wait_until(lambda: len(server.clients) == 5, message="5 clients listed")


async def test_clients_lists_network_clients(server, client_factory) -> None:
    a = await client_factory(server)
    b = await client_factory(server)
    await wait_until(lambda: len(server.clients) == 2, message="two clients listed")
    listed = [c for c in server.clients if isinstance(c, NetworkClient)]
    assert len(listed) == 2
    ports = {c.remote_address.rsplit(":", 1)[1] for c in listed}
    assert ports == {str(a.local_address[1]), str(b.local_address[1])}
    await a.close()
    await wait_until(lambda: len(server.clients) == 1, message="the closed client to leave")


# ---- messages -------------------------------------------------------------------


@pytest.mark.parametrize("key", ["skill", "skill_name"])
async def test_subscribe_to_one_skill(client, seeded_db, key) -> None:
    reply = await request(client, {"type": "subscribe", key: "mypy"})
    assert set(reply) == {"type", "skill", "skill_name", "message", "timestamp", "epoch", "seq"}, reply
    assert reply["type"] == "subscription_confirmed"
    assert reply["skill"] == "mypy"
    assert reply["skill_name"] == "mypy"
    assert isinstance(reply["message"], str) and reply["message"]
    assert TS_RE.match(reply["timestamp"])
    for update in await recv_updates(client, 2):
        assert top_names(update) == ["mypy"]
        assert_entry_matches(update["data"]["top_skills"][0], seeded_db.expected_entry("mypy"))


@pytest.mark.parametrize(
    "message",
    [{"type": "subscribe"}, {"type": "subscribe", "skill_name": None}, {"type": "subscribe", "skill": None}],
    ids=["absent", "skill_name-null", "skill-null"],
)
async def test_subscribe_to_all_skills(client, seeded_db, message) -> None:
    await request(client, {"type": "subscribe", "skill": "black"})
    assert top_names(await recv_type(client, "metrics_update")) == ["black"]
    reply = await request(client, message)
    assert reply["type"] == "subscription_confirmed"
    assert reply["skill"] is None
    assert reply["skill_name"] is None
    update = await recv_type(client, "metrics_update")
    assert top_names(update) == seeded_db.expected_order


async def test_unsubscribe_reply(client) -> None:
    reply = await request(client, {"type": "unsubscribe"})
    assert set(reply) == {"type", "timestamp"}, reply
    assert reply["type"] == "unsubscribed"
    assert TS_RE.match(reply["timestamp"])


async def test_ping_pong(client) -> None:
    reply = await request(client, {"type": "ping"})
    assert set(reply) == {"type", "timestamp"}, reply
    assert reply["type"] == "pong"
    assert TS_RE.match(reply["timestamp"])


@pytest.mark.parametrize("key", ["skill", "skill_name"])
async def test_get_metrics(client, seeded_db, key) -> None:
    await recv_type(client, "metrics_update")  # answers come from the last snapshot
    reply = await request(client, {"type": "get_metrics", key: "pytest-run"})
    assert reply["type"] == "metrics_response", reply
    assert set(reply) <= {"type", "data", "timestamp"}, reply
    assert_metrics_data_matches(reply["data"], seeded_db.expected_metrics("pytest-run"))


async def test_get_metrics_unknown_skill(client) -> None:
    await recv_type(client, "metrics_update")
    reply = await request(client, {"type": "get_metrics", "skill_name": "no-such-skill"})
    assert_error(reply, "unknown_skill", "get_metrics")
    assert reply["message"] == "Invalid skill name: no-such-skill"


async def test_invalid_json_is_answered_and_connection_stays(client) -> None:
    assert_error(await request(client, "this is not json"), "invalid_json")
    assert (await request(client, {"type": "ping"}))["type"] == "pong"
    await recv_type(client, "metrics_update")


async def test_unknown_type_is_answered_and_connection_stays(client) -> None:
    reply = await request(client, {"type": "make_coffee"})
    assert_error(reply, "unknown_type", "make_coffee")
    assert (await request(client, {"type": "ping"}))["type"] == "pong"


# ---- stop with clients connected ---------------------------------------------------


async def test_stop_closes_50_clients_with_1001_within_2s(server_factory, client_factory) -> None:
    server = await server_factory()
    clients = list(await asyncio.gather(*(client_factory(server) for _ in range(50))))
    await wait_until(lambda: len(server.clients) == 50, timeout=20, message="50 clients listed")

    closes = asyncio.gather(*(expect_close(ws, timeout=10) for ws in clients))
    started = time.monotonic()
    await server.stop()
    stop_took = time.monotonic() - started
    codes = await closes
    all_closed = time.monotonic() - started

    assert codes == [1001] * 50
    assert all_closed < 2.0, f"clients saw their close after {all_closed:.2f} s"
    assert stop_took < 2.5, f"stop() took {stop_took:.2f} s"
    assert server.running is False
    assert len(server.clients) == 0


async def test_reply_to_a_message_in_one_json_text(client) -> None:
    """Replies are single JSON objects in text frames (not binary, not several per frame)."""
    await client.send(json.dumps({"type": "ping"}))
    while True:
        raw = await asyncio.wait_for(client.recv(), 10)
        assert isinstance(raw, str), "the server must send text frames"
        msg = json.loads(raw)
        assert isinstance(msg, dict)
        if msg["type"] == "pong":
            break
