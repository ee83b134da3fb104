"""Wire protocol v1 (docs/realtime/WEBSOCKET_SERVER.md): every client message and its reply, every error code
reachable without auth, fragmentation, binary frames, message size and client limits."""

from __future__ import annotations

import asyncio
import json

import pytest
from websockets.asyncio.client import connect

from protocol_checks import assert_error, assert_metrics_data_matches, top_names
from wsutil import (
    CONNECT_KWARGS,
    TS_RE,
    client_url,
    expect_close,
    recv_reply,
    recv_type,
    recv_updates,
    request,
    wait_until,
)


async def _still_open(ws) -> None:
    """An error reply must never close the connection: a ping still gets its pong."""
    reply = await request(ws, {"type": "ping"})
    assert reply["type"] == "pong", reply


# ---- replies --------------------------------------------------------------------


async def test_ping_ignores_extra_fields(client) -> None:
    reply = await request(client, {"type": "ping", "id": 7, "extra": {"nested": [1, 2]}})
    assert reply["type"] == "pong"
    assert TS_RE.match(reply["timestamp"])


async def test_many_pings_get_as_many_pongs_in_order(client) -> None:
    for _ in range(10):
        await client.send(json.dumps({"type": "ping"}))
    for _ in range(10):
        assert (await recv_reply(client))["type"] == "pong"


@pytest.mark.parametrize("key", ["skill", "skill_name"])
async def test_subscription_confirmation_fields(client, key) -> None:
    reply = await request(client, {"type": "subscribe", key: "ruff-check"})
    assert set(reply) == {"type", "skill", "skill_name", "message", "timestamp", "epoch", "seq"}
    assert reply["type"] == "subscription_confirmed"
    assert (reply["skill"], reply["skill_name"]) == ("ruff-check", "ruff-check")
    assert isinstance(reply["message"], str) and reply["message"]
    assert TS_RE.match(reply["timestamp"])


async def test_subscribe_with_both_keys_equal_is_accepted(client) -> None:
    reply = await request(client, {"type": "subscribe", "skill": "mypy", "skill_name": "mypy"})
    assert reply["type"] == "subscription_confirmed"
    assert reply["skill"] == reply["skill_name"] == "mypy"
    assert top_names(await recv_type(client, "metrics_update")) == ["mypy"]


async def test_subscribe_to_a_skill_without_data_gives_empty_lists(client) -> None:
    reply = await request(client, {"type": "subscribe", "skill_name": "not-yet-used"})
    assert reply["type"] == "subscription_confirmed"
    assert reply["skill_name"] == "not-yet-used"
    for update in await recv_updates(client, 2):
        assert update["data"]["top_skills"] == []
        assert update["data"]["anomalies"] == []


async def test_resubscribing_switches_the_filter(client) -> None:
    await request(client, {"type": "subscribe", "skill": "mypy"})
    assert top_names(await recv_type(client, "metrics_update")) == ["mypy"]
    await request(client, {"type": "subscribe", "skill": "black"})
    assert top_names(await recv_type(client, "metrics_update")) == ["black"]


@pytest.mark.parametrize("key", ["skill", "skill_name"])
async def test_get_metrics_each_key(client, seeded_db, key) -> None:
    await recv_type(client, "metrics_update")
    reply = await request(client, {"type": "get_metrics", key: "old-skill"})
    assert reply["type"] == "metrics_response"
    assert_metrics_data_matches(reply["data"], seeded_db.expected_metrics("old-skill"))


async def test_get_metrics_ignores_the_subscription(client, seeded_db) -> None:
    await request(client, {"type": "subscribe", "skill": "black"})
    await recv_type(client, "metrics_update")
    reply = await request(client, {"type": "get_metrics", "skill_name": "mypy"})
    assert reply["type"] == "metrics_response"
    assert reply["data"]["skill_name"] == "mypy"


async def test_get_metrics_for_a_skill_outside_the_top_n(server_factory, client_factory,
                                                         seeded_db) -> None:
    server = await server_factory(top_n=2)
    ws = await client_factory(server)
    assert top_names(await recv_type(ws, "metrics_update")) == seeded_db.expected_order[:2]
    reply = await request(ws, {"type": "get_metrics", "skill_name": "black"})
    assert reply["type"] == "metrics_response", reply
    assert_metrics_data_matches(reply["data"], seeded_db.expected_metrics("black"))


async def test_auth_message_without_auth_keeps_the_connection(client) -> None:
    """Whatever the answer to a stray `auth` (ignored or an error), the connection stays open."""
    await client.send(json.dumps({"type": "auth", "token": "irrelevant"}))
    await client.send(json.dumps({"type": "ping"}))
    reply = await recv_reply(client)
    if reply["type"] == "error":
        assert reply["request_type"] == "auth", reply
        reply = await recv_reply(client)
    assert reply["type"] == "pong", reply


# ---- errors ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "raw",
    ["this is not json", "{", '{"type": "ping"', "", "[1, 2, 3]", '[{"type": "ping"}]',
     '"ping"', "42", "null", "true"],
    ids=["text", "open-brace", "truncated", "empty", "array", "array-of-object", "string",
         "number", "null", "true"],
)
async def test_invalid_json(client, raw) -> None:
    reply = await request(client, raw)
    assert_error(reply, "invalid_json", None)
    await _still_open(client)


@pytest.mark.parametrize(
    "message,request_type",
    [
        ({}, None),
        ({"type": None}, None),
        ({"type": 5}, ...),
        ({"type": ["ping"]}, ...),
        ({"type": "subscribe", "skill_name": 42}, "subscribe"),
        ({"type": "subscribe", "skill": ["mypy"]}, "subscribe"),
        ({"type": "subscribe", "skill": {"name": "mypy"}}, "subscribe"),
        ({"type": "subscribe", "skill": "mypy", "skill_name": "black"}, "subscribe"),
        ({"type": "get_metrics"}, "get_metrics"),
        ({"type": "get_metrics", "skill_name": None}, "get_metrics"),
        ({"type": "get_metrics", "skill_name": 42}, "get_metrics"),
        ({"type": "get_metrics", "skill": True}, "get_metrics"),
        ({"type": "get_metrics", "skill": "mypy", "skill_name": "black"}, "get_metrics"),
    ],
    ids=["no-type", "null-type", "int-type", "list-type", "subscribe-int", "subscribe-list",
         "subscribe-object", "subscribe-differing-keys", "get_metrics-missing",
         "get_metrics-null", "get_metrics-int", "get_metrics-bool", "get_metrics-differing-keys"],
)
async def test_invalid_request(client, message, request_type) -> None:
    reply = await request(client, message)
    assert_error(reply, "invalid_request", request_type)
    await _still_open(client)


@pytest.mark.parametrize("type_", ["make_coffee", "PING", "Subscribe", "metrics_update", "pong"])
async def test_unknown_type_echoes_request_type(client, type_) -> None:
    reply = await request(client, {"type": type_})
    assert_error(reply, "unknown_type", type_)
    await _still_open(client)


@pytest.mark.parametrize("skill", ["no-such-skill", "x' OR '1'='1", "name with spaces ☃"])
async def test_unknown_skill(client, skill) -> None:
    await recv_type(client, "metrics_update")
    reply = await request(client, {"type": "get_metrics", "skill_name": skill})
    assert_error(reply, "unknown_skill", "get_metrics")
    assert reply["message"] == f"Invalid skill name: {skill}"
    await _still_open(client)


async def test_a_run_of_errors_never_closes_the_connection(client) -> None:
    for raw in ["nope", "[]", "{}", '{"type": "nope"}', '{"type": "get_metrics"}',
                '{"type": "get_metrics", "skill": "nope"}']:
        reply = await request(client, raw)
        assert reply["type"] == "error", reply
    await _still_open(client)
    seqs = [u["seq"] for u in await recv_updates(client, 2)]
    assert seqs[0] < seqs[1]


# ---- framing ------------------------------------------------------------------------


async def test_fragmented_message_is_reassembled(client) -> None:
    await client.send(['{"type":', '"ping"}'])
    assert (await recv_reply(client))["type"] == "pong"


async def test_fragmented_subscribe_in_many_pieces(client) -> None:
    text = json.dumps({"type": "subscribe", "skill_name": "alpha-lint"})
    await client.send([text[i:i + 3] for i in range(0, len(text), 3)])
    reply = await recv_reply(client)
    assert reply["type"] == "subscription_confirmed"
    assert reply["skill_name"] == "alpha-lint"


async def test_binary_frame_with_json_is_accepted(client) -> None:
    await client.send(b'{"type": "ping"}')
    assert (await recv_reply(client))["type"] == "pong"
    await client.send(json.dumps({"type": "subscribe", "skill": "mypy"}).encode())
    reply = await recv_reply(client)
    assert reply["type"] == "subscription_confirmed"
    assert reply["skill"] == "mypy"


async def test_fragmented_binary_frame_with_json_is_accepted(client) -> None:
    await client.send([b'{"type"', b': "ping"}'])
    assert (await recv_reply(client))["type"] == "pong"


async def test_binary_frame_with_bad_json_is_an_error(client) -> None:
    await client.send(b"\x00\x01not json")
    reply = await recv_reply(client)
    assert_error(reply, "invalid_json", None)
    await _still_open(client)


def _ping_of_size(n: int) -> str:
    base = '{"type":"ping","pad":""}'
    assert n >= len(base)
    text = base[:-2] + "x" * (n - len(base)) + '"}'
    assert len(text.encode()) == n
    return text


@pytest.mark.parametrize("compression", [None, "deflate"])
async def test_message_at_the_limit_passes_and_over_it_closes_1009(server_factory, client_factory,
                                                                  compression) -> None:
    server = await server_factory(max_message_size=1024)
    bystander = await client_factory(server)
    ws = await client_factory(server, compression=compression)
    assert (await request(ws, _ping_of_size(1024)))["type"] == "pong"
    await ws.send(_ping_of_size(1025))
    assert await expect_close(ws) == 1009
    # Nobody else is affected.
    seqs = [u["seq"] for u in await recv_updates(bystander, 2)]
    assert seqs[0] < seqs[1]


async def test_fragments_over_the_limit_close_1009(server_factory, client_factory) -> None:
    server = await server_factory(max_message_size=1024)
    ws = await client_factory(server, compression=None)
    text = _ping_of_size(1500)
    await ws.send([text[:500], text[500:1000], text[1000:]])  # each piece is under the limit
    assert await expect_close(ws) == 1009


async def test_default_limit_is_64_kib(server, client_factory) -> None:
    ws = await client_factory(server, compression=None)
    assert (await request(ws, _ping_of_size(65536)))["type"] == "pong"
    await ws.send(_ping_of_size(65537))
    assert await expect_close(ws) == 1009


# ---- max_clients -------------------------------------------------------------------------


async def test_client_over_max_clients_gets_1013_and_others_keep_going(server_factory,
                                                                       client_factory) -> None:
    server = await server_factory(max_clients=3)
    first = [await client_factory(server) for _ in range(3)]
    await wait_until(lambda: len(server.clients) == 3, message="three clients listed")

    fourth = client_factory.track(
        await asyncio.wait_for(connect(client_url(server), **CONNECT_KWARGS), 10)
    )
    assert await expect_close(fourth) == 1013

    for ws in first:
        a = await recv_type(ws, "metrics_update")
        b = await recv_type(ws, "metrics_update")
        assert b["seq"] > a["seq"]
    assert len(server.clients) == 3

    # Freeing a slot lets the next client in.
    await first[0].close()
    await wait_until(lambda: len(server.clients) == 2, message="the closed client to leave")
    fifth = await client_factory(server)
    await recv_type(fifth, "metrics_update")


async def test_max_clients_zero_means_unlimited(server_factory, client_factory) -> None:
    server = await server_factory(max_clients=0)
    clients = [await client_factory(server) for _ in range(5)]
    await asyncio.gather(*(recv_type(ws, "metrics_update") for ws in clients))
    await wait_until(lambda: len(server.clients) == 5, message="five clients listed")
