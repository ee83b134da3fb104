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

from wsutil import CONNECT_KWARGS, DEFAULT_TIMEOUT, client_url, expect_close, recv_json, recv_type, wait_until

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
    """A plain metrics_update in the shape ALL_FIELDS asks for."""
    def skill(entry: dict[str, Any]) -> dict[str, Any]:
        out = {camel(k): v for k, v in entry.items()}
        out["invocationCount24h"] = entry["invocation_count"]
        out["completedInvocations"] = None  # filled from get_metrics by the caller
        return out

    data = update["data"]
    return {"seq": update["seq"], "epoch": update["epoch"], "timestamp": update["timestamp"],
            "stale": data["stale"], "topSkills": [skill(e) for e in data["top_skills"]],
            "anomalies": [{camel(k): v for k, v in a.items()} for a in data["anomalies"]]}


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
