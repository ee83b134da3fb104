"""GraphQL through the client users run, Python's `gql` (SPEC section 13): its WebSocket transport
subscribes, receives what the plain protocol sends in the same tick, and recovers with `since`
after a reconnect; its HTTP transport answers every query of the schema against a seeded DB,
equal to the plain protocol's answers; the schema is served; HTTP refusals are clean."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from graphql import build_schema
from gql import Client, GraphQLRequest
from gql.transport.exceptions import TransportQueryError
from gql.transport.httpx import HTTPXAsyncTransport
from gql.transport.websockets import WebsocketsTransport

import session_buddy.realtime
from skills_seed import EXPECTED_ORDER
from test_graphql_ws import as_graphql, camel, without_completed_invocations
from wsutil import DEFAULT_TIMEOUT, client_url, recv_type, request

LIVE = """
subscription Live($skill: String, $since: RecoveryPosition) {
  metricsUpdate(skill: $skill, since: $since) {
    seq epoch timestamp stale
    topSkills { skillName lastInvocationAt invocationCount completedCount avgDuration
                totalInvocations completedInvocations completionRate avgDurationSeconds
                invocationCount1h invocationCount24h isAnomalous }
    anomalies { skillName anomalyType baselineValue observedValue deviationScore detectedAt }
  }
}
"""


def http_url(server: Any) -> str:
    return client_url(server).replace("ws://", "http://") + "/graphql"


def ws_client(server: Any, **kwargs: Any) -> Client:
    return Client(transport=WebsocketsTransport(url=client_url(server) + "/", **kwargs))


def http_client(server: Any) -> Client:
    return Client(transport=HTTPXAsyncTransport(url=http_url(server)))


async def test_gql_subscribes_and_matches_the_plain_protocol(server, client_factory) -> None:
    plain = await client_factory(server)
    updates = []
    async with ws_client(server) as session:
        async for result in session.subscribe(GraphQLRequest(LIVE)):
            updates.append(result["metricsUpdate"])
            if len(updates) == 3:
                break
    seqs = [u["seq"] for u in updates]
    assert seqs == list(range(seqs[0], seqs[0] + 3))
    wanted = set(seqs[1:])
    plain_by_seq: dict[int, dict[str, Any]] = {}
    while not wanted <= set(plain_by_seq):
        msg = await recv_type(plain, "metrics_update")
        plain_by_seq[msg["seq"]] = msg
    for update in updates[1:]:
        assert without_completed_invocations(update) == as_graphql(plain_by_seq[update["seq"]])
    assert [e["skillName"] for e in updates[-1]["topSkills"]] == EXPECTED_ORDER


async def test_gql_recovers_after_a_reconnect(server) -> None:
    seen: list[int] = []
    since = None
    for _ in range(2):  # two connections: the second resumes where the first stopped
        async with ws_client(server) as session:
            request_ = GraphQLRequest(LIVE, variable_values={"since": since})
            async for result in session.subscribe(request_):
                update = result["metricsUpdate"]
                seen.append(update["seq"])
                since = {"epoch": update["epoch"], "seq": update["seq"]}
                if len(seen) % 3 == 0:
                    break
    assert seen == list(range(seen[0], seen[0] + 6)), seen  # no gap, no repeat


async def test_gql_one_skill_subscription(server) -> None:
    async with ws_client(server) as session:
        request_ = GraphQLRequest(LIVE, variable_values={"skill": "ruff-check"})
        async for result in session.subscribe(request_):
            assert [e["skillName"] for e in result["metricsUpdate"]["topSkills"]] == ["ruff-check"]
            break


async def test_gql_token_in_init_payload(server_factory) -> None:
    from test_graphql_ws import SECRET, token_for

    server = await server_factory(require_auth=True, jwt_secret=SECRET)
    async with ws_client(server, init_payload={"token": token_for("erin")}) as session:
        async for result in session.subscribe(GraphQLRequest("subscription { metricsUpdate { seq } }")):
            assert result["metricsUpdate"]["seq"] >= 1
            assert [c.user_id for c in server.clients] == ["erin"]
            break


# ---- queries over HTTP ----

async def test_gql_http_top_skills_skill_and_anomalies(server, client_factory) -> None:
    plain = await client_factory(server)
    update = await recv_type(plain, "metrics_update")
    async with http_client(server) as session:
        top = await session.execute(GraphQLRequest("{ topSkills(limit: 3) { skillName invocationCount } }"))
        assert top["topSkills"] == [{"skillName": e["skill_name"], "invocationCount": e["invocation_count"]}
                                    for e in update["data"]["top_skills"][:3]]
        for name in EXPECTED_ORDER:
            one = await session.execute(GraphQLRequest(
                "query One($n: String!) { skill(name: $n) { skillName totalInvocations completedInvocations "
                "completionRate avgDurationSeconds lastInvocationAt invocationCount1h invocationCount24h "
                "isAnomalous } }", variable_values={"n": name}))
            reply = await request(plain, {"type": "get_metrics", "skill_name": name})
            assert one["skill"] == {camel(k): v for k, v in reply["data"].items()}
        missing = await session.execute(GraphQLRequest('{ skill(name: "no-such-skill") { skillName } }'))
        assert missing == {"skill": None}
        anomalies = await session.execute(GraphQLRequest("{ anomalies { skillName anomalyType deviationScore } }"))
        assert isinstance(anomalies["anomalies"], list)


async def test_gql_http_history_equals_get_history(server, client_factory) -> None:
    plain = await client_factory(server)
    await recv_type(plain, "metrics_update")
    async with http_client(server) as session:
        got = await session.execute(GraphQLRequest(
            '{ history(skill: "pytest-run", window: 3600, step: 600) { t invocationCount completedCount avgDuration } }'))
    reply = await request(plain, {"type": "get_history", "skill_name": "pytest-run", "window": 3600, "step": 600})
    assert got["history"] == [{camel(k): v for k, v in p.items()} for p in reply["points"]]


async def test_gql_http_errors_name_the_field(server) -> None:
    async with http_client(server) as session:
        with pytest.raises(TransportQueryError) as caught:
            await session.execute(GraphQLRequest("{ topSkills { noSuchField } }"))
    error = caught.value.errors[0]
    assert "noSuchField" in error["message"] and error["locations"]


async def test_http_errors_locate_the_bad_field_in_the_text_sent(server) -> None:
    async with httpx.AsyncClient() as http:
        reply = await http.post(http_url(server), json={"query": "{ topSkills { noSuchField } }"})
    assert reply.status_code == 200
    (error,) = reply.json()["errors"]
    assert "noSuchField" in error["message"] and error["locations"] == [{"line": 1, "column": 15}]


async def test_http_get_query_and_schema(server) -> None:
    async with httpx.AsyncClient() as http:
        got = await http.get(http_url(server), params={"query": "{ topSkills(limit: 1) { skillName } }"})
        assert got.status_code == 200 and got.json()["data"]["topSkills"][0]["skillName"] == EXPECTED_ORDER[0]
        schema = await http.get(http_url(server) + "/schema")
    assert schema.status_code == 200
    served = build_schema(schema.text)
    shipped = (Path(session_buddy.realtime.__file__).parent / "schema.graphql").read_text("utf-8")
    assert schema.text == shipped
    assert set(served.subscription_type.fields["metricsUpdate"].args) == {"skill", "since"}


async def raw_post_status(server: Any, content_length: int) -> int:
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(f"POST /graphql HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                 f"Content-Length: {content_length}\r\n\r\n".encode())
    await writer.drain()
    status_line = await asyncio.wait_for(reader.readline(), DEFAULT_TIMEOUT)
    writer.close()
    return int(status_line.split()[1])


@pytest.mark.parametrize("how", ["put", "huge", "not-json"])
async def test_http_refusals(server, how: str) -> None:
    async with httpx.AsyncClient() as http:
        if how == "put":
            reply = await http.put(http_url(server), content=b"{}")
            assert reply.status_code == 405
        elif how == "huge":
            # Refused on its Content-Length, before a byte of the body is read (a client that
            # kept sending would see the connection close under it instead of the answer).
            assert await raw_post_status(server, 1 << 20) == 413
        else:
            reply = await http.post(http_url(server), content=b"{not json", headers={"content-type": "application/json"})
            assert reply.status_code == 400
        ok = await http.post(http_url(server), json={"query": "{ topSkills { skillName } }"})
        assert ok.status_code == 200  # the server is fine afterwards


async def test_http_needs_a_token_when_auth_is_on(server_factory) -> None:
    from test_graphql_ws import SECRET, token_for

    server = await server_factory(require_auth=True, jwt_secret=SECRET)
    async with httpx.AsyncClient() as http:
        refused = await http.post(http_url(server), json={"query": "{ topSkills { skillName } }"})
        assert refused.status_code == 401
        ok = await http.post(http_url(server), json={"query": "{ topSkills { skillName } }"},
                             headers={"Authorization": f"Bearer {token_for()}"})
        assert ok.status_code == 200 and ok.json()["data"]["topSkills"]


async def test_gql_fetches_the_schema_by_introspection(server) -> None:
    client = Client(transport=HTTPXAsyncTransport(url=http_url(server)), fetch_schema_from_transport=True)
    async with client as session:  # gql validates the query locally against what it fetched
        result = await session.execute(GraphQLRequest("{ topSkills(limit: 1) { skillName } }"))
    assert result["topSkills"][0]["skillName"] == EXPECTED_ORDER[0]
    assert client.schema is not None and set(client.schema.subscription_type.fields) == {"metricsUpdate"}


async def test_http_applies_the_origin_policy(server_factory) -> None:
    server = await server_factory(allowed_origins=["https://dash.example"])
    body = {"query": "{ topSkills { skillName } }"}
    async with httpx.AsyncClient() as http:
        refused = await http.post(http_url(server), json=body, headers={"Origin": "https://evil.example"})
        allowed = await http.post(http_url(server), json=body, headers={"Origin": "https://dash.example"})
        no_origin = await http.post(http_url(server), json=body)  # not a browser: auth guards those
    assert refused.status_code == 403
    assert allowed.status_code == 200 and no_origin.status_code == 200
