"""What the GraphQL handler answers (SPEC section 13): a graphql-transport-ws subscribe message
and a GraphQL-over-HTTP request, as the C core forwards them, decided against a real server."""

from __future__ import annotations

import json
from typing import Any

import pytest

from skills_seed import EXPECTED_ORDER
from session_buddy.realtime._graphql import http_answer, operation_answer
from session_buddy.realtime._graphql_document import PreparedSubscription
from session_buddy.realtime._graphql_query import ServerMetricsSource

TOP = "{ topSkills(limit: 2) { skillName } }"
TOP_DATA = {"data": {"topSkills": [{"skillName": n} for n in EXPECTED_ORDER[:2]]}}


@pytest.fixture
async def source(server_factory: Any) -> ServerMetricsSource:
    server = await server_factory(update_interval=3600)
    return ServerMetricsSource(server, server.max_message_size)


def post(body: Any, content_type: str = "application/json") -> dict[str, Any]:
    text = body if isinstance(body, str) else json.dumps(body)
    return {"method": "POST", "args": [], "body": text, "content_type": content_type, "user": ""}


def get(**params: str) -> dict[str, Any]:
    return {"method": "GET", "args": [f"{k}={v}" for k, v in params.items()], "body": "", "content_type": "", "user": ""}


# ---- over HTTP --------------------------------------------------------------------


@pytest.mark.parametrize("content_type", ["application/json", "application/json; charset=utf-8", "APPLICATION/JSON", ""])
async def test_a_posted_query_answers_its_data(source: ServerMetricsSource, content_type: str) -> None:
    assert http_answer(post({"query": TOP}, content_type), source) == (200, TOP_DATA)


async def test_a_posted_query_with_variables_and_an_operation_name(source: ServerMetricsSource) -> None:
    document = "query A($n: Int) { topSkills(limit: $n) { skillName } } query B { __typename }"
    status, body = http_answer(post({"query": document, "variables": {"n": 2}, "operationName": "A"}), source)
    assert (status, body) == (200, TOP_DATA)
    assert http_answer(post({"query": document, "operationName": "B"}), source) == (200, {"data": {"__typename": "Query"}})


async def test_application_graphql_posts_the_document_itself(source: ServerMetricsSource) -> None:
    assert http_answer(post(TOP, "application/graphql"), source) == (200, TOP_DATA)


async def test_a_get_query_answers_its_data(source: ServerMetricsSource) -> None:
    request = get(query="query($n: Int) { topSkills(limit: $n) { skillName } }", variables='{"n": 2}', operationName="")
    assert http_answer(request, source) == (200, TOP_DATA)


@pytest.mark.parametrize("body", ["{not json", "[1, 2]", '"query"', "[" * 100000, json.dumps({"variables": {}}),
                                  json.dumps({"query": ""}), json.dumps({"query": 7}),
                                  json.dumps({"query": TOP, "variables": [1]}),
                                  json.dumps({"query": TOP, "operationName": 3})])
async def test_a_body_that_is_not_graphql_parameters_is_400(source: ServerMetricsSource, body: str) -> None:
    status, response = http_answer(post(body), source)
    assert status == 400
    assert set(response) == {"errors"} and response["errors"][0]["message"]


async def test_another_content_type_is_415(source: ServerMetricsSource) -> None:
    status, response = http_answer(post({"query": TOP}, "text/plain"), source)
    assert status == 415 and "application/json" in response["errors"][0]["message"]


@pytest.mark.parametrize("request_", [
    get(query=TOP, variables="{nope"),
    get(variables="{}"),
    {"method": "GET", "args": [f"k{i}=v" for i in range(40)], "body": "", "content_type": ""},
])
async def test_a_get_that_is_not_graphql_parameters_is_400(source: ServerMetricsSource, request_: dict) -> None:
    status, response = http_answer(request_, source)
    assert status == 400 and response["errors"][0]["message"]


async def test_document_errors_are_200_with_located_errors(source: ServerMetricsSource) -> None:
    status, response = http_answer(post({"query": "{ topSkills { nope } }"}), source)
    assert status == 200
    assert set(response) == {"errors"}
    assert response["errors"][0]["locations"] == [{"line": 1, "column": 15}]
    status, response = http_answer(post({"query": "{" * 10000}), source)
    assert status == 200 and response["errors"][0]["locations"]


@pytest.mark.parametrize("request_", [post({"query": "subscription { metricsUpdate { seq } }"}),
                                      get(query="subscription { metricsUpdate { seq } }")])
async def test_a_subscription_over_http_is_400(source: ServerMetricsSource, request_: dict) -> None:
    status, response = http_answer(request_, source)
    assert status == 400
    assert "WebSocket" in response["errors"][0]["message"] and response["errors"][0]["locations"]


async def test_a_field_error_keeps_200_with_data_and_errors(source: ServerMetricsSource) -> None:
    status, response = http_answer(post({"query": '{ a: topSkills(limit: 1) { skillName } h: history(skill: "never-ran") { t } }'}), source)
    assert status == 200
    assert response["data"] is None  # history is non-null: its error nulls the whole data
    assert response["errors"][0]["path"] == ["h"] and response["errors"][0]["extensions"] == {"code": "unknown_skill"}


# ---- over graphql-transport-ws -----------------------------------------------------------


async def test_a_subscribe_for_a_subscription_goes_to_c(source: ServerMetricsSource) -> None:
    message = {"id": "1", "type": "subscribe", "payload": {
        "query": "subscription($s: String) { u: metricsUpdate(skill: $s) { seq } }", "variables": {"s": "mypy"},
        "extensions": {"ignored": True}}}
    answer = operation_answer("1", message, source)
    assert answer == PreparedSubscription("mypy", "{u:metricsUpdate{seq:seq}}", None, 0)


async def test_a_subscribe_for_a_query_is_next_then_complete(source: ServerMetricsSource) -> None:
    answer = operation_answer("q1", {"id": "q1", "type": "subscribe", "payload": {"query": TOP}}, source)
    assert isinstance(answer, list)
    assert [json.loads(f) for f in answer] == [
        {"id": "q1", "type": "next", "payload": TOP_DATA},
        {"id": "q1", "type": "complete"},
    ]


@pytest.mark.parametrize("message", [
    {"id": "x", "type": "subscribe"},
    {"id": "x", "type": "subscribe", "payload": "query"},
    {"id": "x", "type": "subscribe", "payload": {"query": None}},
    {"id": "x", "type": "subscribe", "payload": {"query": TOP, "variables": "n=1"}},
    "not an object",
])
async def test_a_subscribe_without_a_request_is_one_error(source: ServerMetricsSource, message: Any) -> None:
    (frame,) = operation_answer("x", message, source)
    reply = json.loads(frame)
    assert reply["id"] == "x" and reply["type"] == "error"
    assert isinstance(reply["payload"], list) and reply["payload"][0]["message"]


async def test_a_document_error_is_one_error_with_locations(source: ServerMetricsSource) -> None:
    message = {"id": "e", "type": "subscribe", "payload": {"query": "subscription { metricsUpdate { nope } }"}}
    (frame,) = operation_answer("e", message, source)
    reply = json.loads(frame)
    assert reply["type"] == "error"
    assert reply["payload"][0]["locations"] == [{"line": 1, "column": 32}]


async def test_frames_stay_ascii_whatever_the_client_sent(source: ServerMetricsSource) -> None:
    in_document = {"id": "s", "type": "subscribe", "payload": {"query": '{ skill(name: "\udc80") { skillName } }'}}
    (frame,) = operation_answer("s", in_document, source)
    frame.encode("ascii")
    assert json.loads(frame)["payload"][0]["locations"] == [{"line": 1, "column": 16}]  # the lexer refuses it
    in_variables = {"id": "s", "type": "subscribe", "payload": {
        "query": "query($n: String!) { skill(name: $n) { skillName } }", "variables": {"n": "\udc80\u00e9"}}}
    frames = operation_answer("s", in_variables, source)
    assert isinstance(frames, list) and len(frames) == 2
    for frame in frames:
        frame.encode("ascii")
    payload = json.loads(frames[0])["payload"]
    assert payload["data"] == {"skill": None} and payload["errors"][0]["path"] == ["skill"]
