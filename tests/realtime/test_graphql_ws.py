"""GraphQL over WebSocket (graphql-transport-ws, SPEC section 13) over real sockets: the handshake,
connection_init and its timeout, ping, every close code of the protocol document, auth through
the handshake and through connection_init, operation ids and limits, and `next` frames that
carry exactly what the plain protocol's metrics_update carries in the same tick."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import jwt as pyjwt
import pytest
from websockets.asyncio.client import connect

from test_http_routes import get, samples
from wsutil import (CONNECT_KWARGS, DEFAULT_TIMEOUT, client_url, expect_close, recv_json, recv_type, request,
                    wait_until)

SUBPROTOCOL = "graphql-transport-ws"
SECRET = "test-secret-for-graphql-tests-0123456789abcdef-0123456789abcdef-012345"
pytestmark = pytest.mark.filterwarnings("ignore::jwt.warnings.InsecureKeyLengthWarning")

ALL_FIELDS = """
subscription Live($skill: String) {
  metricsUpdate(skill: $skill) {
    seq epoch timestamp stale
    topSkills { skillName lastInvocationAt invocationCount completedCount avgDuration
                totalInvocations completedInvocations completionRate avgDurationSeconds
                invocationCount1h invocationCount24h isAnomalous }
    anomalies { skillName anomalyType baselineValue observedValue deviationScore detectedAt }
  }
}
"""


def token_for(user: str = "alice", *, secret: str = SECRET, exp_in: float = 3600) -> str:
    return pyjwt.encode({"user_id": user, "exp": int(time.time() + exp_in)}, secret, algorithm="HS256")


async def open_gql(server: Any, **kwargs: Any) -> Any:
    ws = await connect(client_url(server), subprotocols=[SUBPROTOCOL], open_timeout=DEFAULT_TIMEOUT,
                       **CONNECT_KWARGS, **kwargs)
    assert ws.subprotocol == SUBPROTOCOL
    return ws


async def acked(server: Any, payload: Any = None, **kwargs: Any) -> Any:
    ws = await open_gql(server, **kwargs)
    init: dict[str, Any] = {"type": "connection_init"}
    if payload is not None:
        init["payload"] = payload
    await ws.send(json.dumps(init))
    assert await recv_json(ws) == {"type": "connection_ack"}
    return ws


async def subscribe(ws: Any, op_id: str, query: str = ALL_FIELDS, variables: dict[str, Any] | None = None) -> None:
    await ws.send(json.dumps({"id": op_id, "type": "subscribe",
                              "payload": {"query": query, "variables": variables or {}}}))


async def recv_for(ws: Any, op_id: str, kind: str = "next", timeout: float = DEFAULT_TIMEOUT) -> dict[str, Any]:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        msg = await recv_json(ws, max(0.1, deadline - asyncio.get_running_loop().time()))
        if msg.get("id") == op_id and msg.get("type") == kind:
            return msg
        assert msg.get("type") in ("next", "complete", "pong"), msg


def camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(p[:1].upper() + p[1:] for p in rest)


def as_graphql(update: dict[str, Any]) -> dict[str, Any]:
    """A plain metrics_update in the shape ALL_FIELDS asks for (the camelCase names of the same
    values; invocationCount24h repeats the 24 h count)."""
    def skill(entry: dict[str, Any]) -> dict[str, Any]:
        return {**{camel(k): v for k, v in entry.items()}, "invocationCount24h": entry["invocation_count"]}

    data = update["data"]
    return {"seq": update["seq"], "epoch": update["epoch"], "timestamp": update["timestamp"],
            "stale": data["stale"], "topSkills": [skill(e) for e in data["top_skills"]],
            "anomalies": [{camel(k): v for k, v in a.items()} for a in data["anomalies"]]}


def without_completed_invocations(update: dict[str, Any]) -> dict[str, Any]:
    """metrics_update has no all-time completed count (get_metrics has): compared apart."""
    return {**update, "topSkills": [{k: v for k, v in e.items() if k != "completedInvocations"}
                                    for e in update["topSkills"]]}


# ---- the handshake and connection_init ----

async def test_ack_then_ping_pong(server) -> None:
    ws = await acked(server)
    await ws.send(json.dumps({"type": "ping", "payload": {"n": 1}}))
    assert await recv_json(ws) == {"type": "pong"}
    await ws.send(json.dumps({"type": "pong"}))  # a pong needs no answer
    await ws.send(json.dumps({"type": "ping"}))
    assert await recv_json(ws) == {"type": "pong"}
    await ws.close()


async def test_plain_clients_are_unaffected(server, client_factory) -> None:
    plain = await client_factory(server)
    gql_ws = await acked(server)
    assert (await recv_type(plain, "metrics_update"))["type"] == "metrics_update"
    await gql_ws.close()


async def test_no_connection_init_closes_4408(server) -> None:
    ws = await open_gql(server)
    assert await expect_close(ws, timeout=15) == 4408


async def test_second_connection_init_closes_4429(server) -> None:
    ws = await acked(server)
    await ws.send(json.dumps({"type": "connection_init"}))
    assert await expect_close(ws) == 4429


async def test_subscribe_before_ack_closes_4401(server) -> None:
    ws = await open_gql(server)
    await subscribe(ws, "1")
    assert await expect_close(ws) == 4401


@pytest.mark.parametrize("bad", [
    "not json", "[]", '{"type":"start","id":"1"}', '{"type":"subscribe","id":"1"}',
    '{"type":"subscribe","id":"","payload":{"query":"{a}"}}', '{"type":"complete"}',
])
async def test_invalid_messages_close_4400(server, bad: str) -> None:
    ws = await acked(server)
    await ws.send(bad)
    assert await expect_close(ws) == 4400


async def test_binary_frames_close_4400(server) -> None:
    ws = await acked(server)
    await ws.send(b'{"type":"ping"}')
    assert await expect_close(ws) == 4400


# ---- authentication ----

@pytest.fixture
async def auth_server(server_factory) -> Any:
    return await server_factory(require_auth=True, jwt_secret=SECRET)


@pytest.mark.parametrize("payload", [
    lambda t: {"token": t}, lambda t: {"authorization": f"Bearer {t}"}, lambda t: {"Authorization": f"Bearer {t}"},
])
async def test_token_in_connection_init(auth_server, payload) -> None:
    ws = await acked(auth_server, payload(token_for("carol")))
    await wait_users(auth_server, ["carol"])
    await ws.close()


async def test_token_in_the_handshake(auth_server) -> None:
    ws = await acked(auth_server, additional_headers={"Authorization": f"Bearer {token_for('dave')}"})
    await wait_users(auth_server, ["dave"])
    await ws.close()


@pytest.mark.parametrize("payload", [None, {"token": "garbage"}, {"token": token_for(secret="x" * 64)},
                                     {"token": token_for(exp_in=-60)}])
async def test_missing_or_bad_token_closes_4403(auth_server, payload) -> None:
    ws = await open_gql(auth_server)
    init: dict[str, Any] = {"type": "connection_init"}
    if payload is not None:
        init["payload"] = payload
    await ws.send(json.dumps(init))
    assert await expect_close(ws) == 4403
    assert not auth_server.clients


async def test_bad_handshake_token_closes_4403(auth_server) -> None:
    ws = await open_gql(auth_server, additional_headers={"Authorization": "Bearer nope"})
    assert await expect_close(ws) == 4403


async def wait_users(server: Any, users: list[str]) -> None:
    await wait_until(lambda: sorted(c.user_id for c in server.clients) == users,
                     message=f"clients {users}")


# ---- subscriptions ----

async def plain_updates_by_seq(ws: Any, seqs: set[int]) -> dict[int, dict[str, Any]]:
    found: dict[int, dict[str, Any]] = {}
    while not seqs <= set(found):
        msg = await recv_type(ws, "metrics_update")
        found[msg["seq"]] = msg
    return found


@pytest.mark.parametrize("skill", [None, "pytest-run", "no-such-skill"])
async def test_next_equals_the_plain_update_of_the_same_tick(server, client_factory, skill) -> None:
    plain = await client_factory(server)
    if skill is not None:
        await plain.send(json.dumps({"type": "subscribe", "skill_name": skill}))
    gql_ws = await acked(server)
    await subscribe(gql_ws, "live", variables={"skill": skill})
    nexts = [await recv_for(gql_ws, "live") for _ in range(3)]
    updates = [n["payload"]["data"]["metricsUpdate"] for n in nexts]
    assert [u["seq"] for u in updates] == list(range(updates[0]["seq"], updates[0]["seq"] + 3))
    plain_by_seq = await plain_updates_by_seq(plain, {u["seq"] for u in updates[1:]})
    for update in updates[1:]:  # the first may predate the plain client's subscription
        assert without_completed_invocations(update) == as_graphql(plain_by_seq[update["seq"]])
        assert "errors" not in nexts[0]["payload"]
    if skill == "no-such-skill":
        assert updates[-1]["topSkills"] == [] and updates[-1]["anomalies"] == []
    for entry in updates[-1]["topSkills"]:  # the all-time completed count, from get_metrics
        reply = await request(plain, {"type": "get_metrics", "skill_name": entry["skillName"]})
        assert entry["completedInvocations"] == reply["data"]["completed_invocations"]
    await gql_ws.close()


async def test_complete_stops_one_operation_and_frees_its_id(server) -> None:
    ws = await acked(server)
    await subscribe(ws, "a", "subscription { metricsUpdate { seq } }")
    await subscribe(ws, "b", "subscription { metricsUpdate { seq stale } }")
    await recv_for(ws, "a")
    seq_then = (await recv_for(ws, "b"))["payload"]["data"]["metricsUpdate"]["seq"]
    await ws.send(json.dumps({"id": "a", "type": "complete"}))
    # Frames written before the server read the complete may still arrive; a few ticks later,
    # only b's may.
    while (await recv_for(ws, "b"))["payload"]["data"]["metricsUpdate"]["seq"] < seq_then + 3:
        pass
    for _ in range(2):
        msg = await recv_json(ws)
        assert msg["type"] == "next" and msg["id"] == "b", msg
    await subscribe(ws, "a", "subscription { metricsUpdate { epoch } }")  # the id is free again
    first = await recv_for(ws, "a")
    assert set(first["payload"]["data"]["metricsUpdate"]) == {"epoch"}
    await ws.close()


async def test_a_live_id_used_again_closes_4409(server) -> None:
    ws = await acked(server)
    await subscribe(ws, "dup", "subscription { metricsUpdate { seq } }")
    await recv_for(ws, "dup")
    await subscribe(ws, "dup", "subscription { metricsUpdate { seq } }")
    assert await expect_close(ws) == 4409


async def test_the_17th_operation_gets_an_error_and_the_rest_keep_going(server) -> None:
    ws = await acked(server)
    for i in range(16):
        await subscribe(ws, f"op{i}", "subscription { metricsUpdate { seq } }")
    await subscribe(ws, "op16", "subscription { metricsUpdate { seq } }")
    error = await recv_for(ws, "op16", "error")
    assert "16" in error["payload"][0]["message"]
    seen = set()
    while len(seen) < 16:
        msg = await recv_json(ws)
        assert msg["type"] == "next" and msg["id"] != "op16", msg
        seen.add(msg["id"])
    await ws.close()


async def test_an_invalid_document_is_an_error_and_the_connection_stays(server) -> None:
    ws = await acked(server)
    await subscribe(ws, "bad", "subscription { metricsUpdate { noSuchField } }")
    error = await recv_for(ws, "bad", "error")
    assert "noSuchField" in error["payload"][0]["message"] and error["payload"][0]["locations"]
    await subscribe(ws, "good", "subscription { metricsUpdate { seq } }")
    assert (await recv_for(ws, "good"))["payload"]["data"]["metricsUpdate"]["seq"] >= 1
    await ws.close()


async def test_a_query_over_the_socket_gets_next_then_complete(server) -> None:
    ws = await acked(server)
    await subscribe(ws, "q", '{ skill(name: "pytest-run") { skillName totalInvocations } }')
    reply = await recv_for(ws, "q")
    assert reply["payload"]["data"]["skill"]["skillName"] == "pytest-run"
    assert (await recv_json(ws)) == {"id": "q", "type": "complete"}
    await ws.close()


async def test_since_recovers_every_missed_update_in_order(server) -> None:
    ws = await acked(server)
    await subscribe(ws, "live", "subscription { metricsUpdate { seq epoch } }")
    last = (await recv_for(ws, "live"))["payload"]["data"]["metricsUpdate"]
    await ws.close()
    await wait_until(lambda: server.updates_since(last["seq"]) and len(server.updates_since(last["seq"])) >= 3,
                     message="three updates missed")
    ws = await acked(server)
    query = "subscription($since: RecoveryPosition) { metricsUpdate(since: $since) { seq epoch } }"
    await subscribe(ws, "live", query, {"since": {"epoch": last["epoch"], "seq": last["seq"]}})
    seqs = [(await recv_for(ws, "live"))["payload"]["data"]["metricsUpdate"]["seq"] for _ in range(5)]
    assert seqs == list(range(last["seq"] + 1, last["seq"] + 6))
    await ws.close()


async def test_since_of_another_epoch_starts_from_the_current_update(server) -> None:
    ws = await acked(server)
    query = "subscription($since: RecoveryPosition) { metricsUpdate(since: $since) { seq epoch } }"
    await subscribe(ws, "live", query, {"since": {"epoch": "0000000000000000", "seq": 1}})
    first = (await recv_for(ws, "live"))["payload"]["data"]["metricsUpdate"]
    assert first["epoch"] == server.epoch and first["seq"] >= 1
    await ws.close()


# ---- hostile documents and what /metrics shows ----

def nested(depth: int) -> str:
    return "subscription { metricsUpdate { " + "topSkills { " * depth + "skillName" + " }" * depth + " } }"


@pytest.mark.parametrize("query", [
    nested(40),                                                                   # deep nesting
    "subscription { metricsUpdate { " + " ".join(f"a{i}: seq" for i in range(250)) + " } }",  # many aliases
    "subscription { metricsUpdate { " + " ".join(f"a{i}: seq" for i in range(3000)) + " } }",  # huge aliases
    "subscription { metricsUpdate { ...A } } fragment A on MetricsUpdate { ...B } "
    "fragment B on MetricsUpdate { ...A }",                                       # a fragment cycle
    "subscription { metricsUpdate { seq } " + "#" * 30000 + "\n}",                 # over the document size
])
async def test_hostile_documents_get_errors_and_the_connection_stays(server, query: str) -> None:
    ws = await acked(server)
    await subscribe(ws, "evil", query)
    error = await recv_for(ws, "evil", "error")
    assert error["payload"] and all("message" in e for e in error["payload"])
    await subscribe(ws, "fine", "subscription { metricsUpdate { seq } }")
    assert (await recv_for(ws, "fine"))["payload"]["data"]["metricsUpdate"]["seq"] >= 1
    await ws.close()


async def test_a_1_mb_document_closes_1009(server, client_factory) -> None:
    bystander = await client_factory(server)
    ws = await acked(server, max_size=None)
    await subscribe(ws, "big", "subscription { metricsUpdate { seq } }" + " " * (1 << 20))
    assert await expect_close(ws) == 1009
    assert (await recv_type(bystander, "metrics_update"))["type"] == "metrics_update"


async def test_metrics_count_graphql_operations(server) -> None:
    ws = await acked(server)
    await subscribe(ws, "a", "subscription { metricsUpdate { seq } }")
    await subscribe(ws, "b", "{ topSkills { skillName } }")
    await recv_for(ws, "a")
    await recv_for(ws, "b", "complete")

    async def figures() -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        return samples((await get(server, "/metrics"))[2].decode())

    got = await wait_until(figures, message="/metrics")
    assert got[("session_buddy_graphql_subscriptions", ())] == 1
    assert got[("session_buddy_graphql_operations_total", ())] == 2
    await ws.close()
    await wait_until(lambda: figures_zero(server), message="the subscription gone from /metrics")


async def figures_zero(server: Any) -> bool:
    got = samples((await get(server, "/metrics"))[2].decode())
    return got[("session_buddy_graphql_subscriptions", ())] == 0
