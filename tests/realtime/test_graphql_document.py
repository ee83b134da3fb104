"""GraphQL documents (SPEC section 13): the shipped schema, the bounds on hostile documents, the
compiled selection of a subscription (GRAPHQL_CONTRACT part 2), variable coercion, and queries
executed against a real server compared with what a plain websockets client gets."""

from __future__ import annotations

import fnmatch
import time
import tomllib
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from graphql import build_schema, lexicographic_sort_schema, print_schema

from protocol_checks import top_names
from skills_seed import EXPECTED_ORDER, insert_anomaly, utc_now
from wsutil import recv_type, request
from session_buddy.realtime._graphql_document import (
    DocumentError,
    DocumentLimits,
    NotAQuery,
    PreparedQuery,
    PreparedSubscription,
    graphql_schema,
    prepare,
    schema_sdl,
)
from session_buddy.realtime._graphql_query import ServerMetricsSource, execute_query

REPO = Path(__file__).resolve().parents[2]

# GRAPHQL_CONTRACT part 1, as agreed between the Python and the C side.
CONTRACT_SDL = """
type Query {
  topSkills(limit: Int = 10): [SkillMetrics!]!
  skill(name: String!): SkillMetrics
  anomalies(skill: String): [Anomaly!]!
  history(skill: String, window: Int = 3600, step: Int = 60): [HistoryPoint!]!
}
type Subscription { metricsUpdate(skill: String, since: RecoveryPosition): MetricsUpdate! }
input RecoveryPosition { epoch: String!, seq: Int! }
type MetricsUpdate { seq: Int!, epoch: String!, timestamp: String!, stale: Boolean!,
                     topSkills: [SkillMetrics!]!, anomalies: [Anomaly!]! }
type SkillMetrics { skillName: String!, lastInvocationAt: String, invocationCount: Int!,
  completedCount: Int!, avgDuration: Float, totalInvocations: Int!, completedInvocations: Int!,
  completionRate: Float!, avgDurationSeconds: Float, invocationCount1h: Int!,
  invocationCount24h: Int!, isAnomalous: Boolean! }
enum AnomalyType { performance_drop performance_spike pattern_shift }
type Anomaly { skillName: String!, anomalyType: AnomalyType!, baselineValue: Float!,
  observedValue: Float!, deviationScore: Float!, detectedAt: String! }
type HistoryPoint { t: String!, invocationCount: Int!, completedCount: Int!, avgDuration: Float }
"""

SKILL_FIELDS = (
    "skillName lastInvocationAt invocationCount completedCount avgDuration totalInvocations "
    "completedInvocations completionRate avgDurationSeconds invocationCount1h invocationCount24h isAnomalous"
)
ANOMALY_FIELDS = "skillName anomalyType baselineValue observedValue deviationScore detectedAt"


def errors_of(query: str, variables: dict[str, Any] | None = None, name: str | None = None, **kw: Any) -> list[dict]:
    with pytest.raises(DocumentError) as caught:
        prepare(query, variables, name, **kw)
    formatted = caught.value.formatted
    assert formatted and all(isinstance(e["message"], str) and e["message"] for e in formatted)
    return formatted


def the_error(query: str, variables: dict[str, Any] | None = None, **kw: Any) -> dict[str, Any]:
    errors = errors_of(query, variables, **kw)
    assert len(errors) == 1, errors
    return errors[0]


def subscription(query: str, variables: dict[str, Any] | None = None, name: str | None = None) -> PreparedSubscription:
    prepared = prepare(query, variables, name)
    assert isinstance(prepared, PreparedSubscription), prepared
    return prepared


def compiled(query: str, variables: dict[str, Any] | None = None) -> str:
    return subscription(query, variables).selection


# ---- the schema ----------------------------------------------------------------


def _without_descriptions(sdl: str) -> str:
    schema = build_schema(sdl)
    for named in schema.type_map.values():
        named.description = None
        for field in getattr(named, "fields", {}).values():
            field.description = None
            for arg in getattr(field, "args", {}).values():
                arg.description = None
        for value in getattr(named, "values", {}).values():
            value.description = None
    return print_schema(lexicographic_sort_schema(schema))


def test_the_shipped_schema_is_the_contracts() -> None:
    assert _without_descriptions(schema_sdl()) == _without_descriptions(CONTRACT_SDL)


def test_every_field_argument_and_type_is_described() -> None:
    schema = graphql_schema()
    missing = []
    for name, named in schema.type_map.items():
        if name.startswith("__") or name in ("String", "Int", "Float", "Boolean", "ID"):
            continue
        if not named.description:
            missing.append(name)
        for field_name, field in getattr(named, "fields", {}).items():
            if not field.description:
                missing.append(f"{name}.{field_name}")
            missing += [f"{name}.{field_name}({a})" for a, arg in getattr(field, "args", {}).items() if not arg.description]
        missing += [f"{name}.{v}" for v, value in getattr(named, "values", {}).items() if not value.description]
    assert missing == []


def test_the_schema_ships_as_package_data() -> None:
    assert (REPO / "session_buddy" / "realtime" / "schema.graphql").read_text("utf-8") == schema_sdl()
    config = tomllib.loads((REPO / "pyproject.toml").read_text("utf-8"))
    patterns = config["tool"]["setuptools"]["package-data"]["session_buddy.realtime"]
    assert any(fnmatch.fnmatch("schema.graphql", p) for p in patterns), patterns


# ---- bounds ---------------------------------------------------------------------


def _fast(started: float) -> None:
    assert time.monotonic() - started < 2.0, "a hostile document took more than 2 s to refuse"


def test_a_megabyte_document_is_refused_where_it_crosses_the_bound() -> None:
    started = time.monotonic()
    error = the_error("{ topSkills { skillName } }" + " " * (1 << 20))
    _fast(started)
    assert "16384 bytes" in error["message"]
    assert error["locations"] == [{"line": 1, "column": 16385}]


def test_the_size_bound_counts_utf8_bytes() -> None:
    prefix = '{ skill(name: "'
    error = the_error(prefix + "\u00e9" * 9000 + '") { skillName } }')  # 2 bytes each
    assert "bytes" in error["message"]
    # The first character whose last byte is past 16384, counted in characters from 1.
    assert error["locations"] == [{"line": 1, "column": len(prefix) + (16384 - len(prefix)) // 2 + 1}]


def test_a_document_just_under_the_size_bound_is_parsed() -> None:
    query = "{ topSkills { skillName } }"
    assert isinstance(prepare(query + " " * (16384 - len(query))), PreparedQuery)


@pytest.mark.parametrize("text", ["{" * 8000, "{ a" * 4000, "query($v: [[[[[[[[[[[[[[[[[[[[[[[[[[Int]]]]]]]]]]]]]]]]]]]]]]]]]]) { __typename }"])
def test_deep_nesting_is_refused_before_the_parser_recurses(text: str) -> None:
    started = time.monotonic()
    error = the_error(text)
    _fast(started)
    assert "nests brackets" in error["message"]
    assert error["locations"][0]["line"] == 1


def test_fields_nested_past_the_depth_bound_are_refused_at_the_field() -> None:
    nine = "{ a { b { c { d { e { f { g { h { i } } } } } } } } }"
    error = the_error(nine)
    assert "more than 8 deep" in error["message"]
    assert error["locations"] == [{"line": 1, "column": nine.index("i") + 1}]
    # Eight deep passes the bound: what is wrong with it then is the unknown fields.
    eight = "{ a { b { c { d { e { f { g { h } } } } } } } }"
    assert all("deep" not in e["message"] for e in errors_of(eight))


def test_depth_counts_through_fragments() -> None:
    query = (
        "{ __schema { ...A } } fragment A on __Schema { types { ...B } } "
        "fragment B on __Type { fields { type { ofType { ofType { ofType { ofType { name } } } } } } }"
    )
    error = the_error(query, limits=DocumentLimits())  # limits given: no introspection bounds
    assert "deep" in error["message"]
    assert error["locations"] == [{"line": 1, "column": query.index("name") + 1}]


def test_the_standard_introspection_query_gets_the_introspection_bounds() -> None:
    from graphql import get_introspection_query

    assert isinstance(prepare(get_introspection_query()), PreparedQuery)
    # ... but only when it selects nothing else: with a data field, the default bounds apply.
    mixed = get_introspection_query().replace("query IntrospectionQuery {", "query IntrospectionQuery { topSkills { skillName }", 1)
    assert "deep" in errors_of(mixed)[0]["message"]
    nested = "{ __schema { types { fields { type { " + "ofType { " * 13 + "name" + " }" * 17 + " }"
    assert "deep" in errors_of(nested)[0]["message"]  # 18 deep: over even those


@pytest.mark.parametrize("field", ["__typename", "topSkills { skillName }"])
def test_huge_alias_counts_are_refused_quickly(field: str) -> None:
    query = "{ " + " ".join(f"a{i}: {field}" for i in range(330)) + " }"
    assert len(query) < 16384
    started = time.monotonic()
    error = the_error(query)
    _fast(started)
    assert "more than 200 fields" in error["message"]
    assert error["locations"][0]["line"] == 1


def test_two_hundred_fields_pass_the_bound() -> None:
    query = "{ " + " ".join(f"a{i}: __typename" for i in range(200)) + " }"
    assert isinstance(prepare(query), PreparedQuery)


def test_a_fragment_bomb_is_refused_without_expanding_it() -> None:
    levels = 40  # 2**40 field selections if expanded
    fragments = " ".join(f"fragment F{i} on Query {{ ...F{i + 1} ...F{i + 1} }}" for i in range(levels))
    query = "{ ...F0 } " + fragments + f" fragment F{levels} on Query {{ __typename }}"
    started = time.monotonic()
    error = the_error(query)
    _fast(started)
    assert "more than 200" in error["message"]


def test_fragment_cycles_are_validation_errors_with_locations() -> None:
    error = the_error("{ ...A } fragment A on Query { ...B } fragment B on Query { ...A }")
    assert error["message"] == "Cannot spread fragment 'A' within itself via 'B'."
    assert len(error["locations"]) == 2


def test_a_long_fragment_cycle_does_not_exhaust_the_stack() -> None:
    n = 150
    fragments = " ".join(f"fragment F{i} on Query {{ ...F{(i + 1) % n} }}" for i in range(n))
    errors = errors_of("{ ...F0 } " + fragments)
    assert any("within itself" in e["message"] for e in errors)


def test_too_many_tokens_stop_the_parse() -> None:
    query = "{ " + "__typename " * 2100 + "}"
    assert len(query) < 16384 * 2
    error = the_error(query, limits=DocumentLimits(max_bytes=1 << 20, max_fields=5000))
    assert "more than 2000 tokens" in error["message"]
    assert error["locations"][0]["line"] == 1


def test_unused_fragments_are_bounded_too() -> None:
    fragment = "fragment Big on Query { " + " ".join(f"a{i}: __typename" for i in range(250)) + " }"
    error = the_error("{ __typename } " + fragment)
    assert "more than 200 fields" in error["message"]


def test_syntax_and_validation_errors_have_locations() -> None:
    syntax = the_error("{ topSkills { skillName }")
    assert syntax["message"].startswith("Syntax Error") and syntax["locations"] == [{"line": 1, "column": 26}]
    unknown = the_error("{ topSkills { nope } }")
    assert "Cannot query field 'nope'" in unknown["message"]
    assert unknown["locations"] == [{"line": 1, "column": 15}]


# ---- operations ------------------------------------------------------------------


def test_mutations_are_not_in_the_schema() -> None:
    error = the_error("mutation { topSkills { skillName } }")
    assert "mutation" in error["message"] and error["locations"] == [{"line": 1, "column": 1}]


def test_the_operation_is_chosen_by_name() -> None:
    document = "query A { topSkills { skillName } } subscription B { metricsUpdate { seq } }"
    assert isinstance(prepare(document, None, "A"), PreparedQuery)
    assert isinstance(prepare(document, None, "B"), PreparedSubscription)
    assert "operation name" in the_error(document)["message"]
    assert "Unknown operation named 'C'" in errors_of(document, None, "C")[0]["message"]


def test_a_subscription_where_only_queries_run() -> None:
    with pytest.raises(NotAQuery) as caught:
        prepare("subscription { metricsUpdate { seq } }", subscriptions=False)
    assert caught.value.formatted[0]["locations"] == [{"line": 1, "column": 1}]


def test_subscription_root_rules_come_from_graphql_core() -> None:
    assert "only one top level field" in the_error(
        "subscription { metricsUpdate { seq } again: metricsUpdate { seq } }")["message"]
    assert "introspection" in the_error("subscription { __typename }")["message"]


# ---- the compiled selection --------------------------------------------------------


def test_the_contract_example() -> None:
    assert compiled("subscription { u: metricsUpdate { seq top: topSkills { skillName __typename } } }") == (
        "{u:metricsUpdate{seq:seq,top:topSkills{skillName:skillName,__typename:__typename}}}")


def test_named_and_inline_fragments_are_expanded_in_place() -> None:
    query = """
        subscription Live {
          metricsUpdate {
            epoch
            ...Head
            ... on MetricsUpdate { stale }
            ... { anomalies { ...A } }
          }
        }
        fragment Head on MetricsUpdate { seq topSkills { ...S } timestamp }
        fragment S on SkillMetrics { skillName isAnomalous }
        fragment A on Anomaly { anomalyType }
    """
    assert compiled(query) == (
        "{metricsUpdate:metricsUpdate{epoch:epoch,seq:seq,topSkills:topSkills{skillName:skillName,"
        "isAnomalous:isAnomalous},timestamp:timestamp,stale:stale,anomalies:anomalies{anomalyType:anomalyType}}}")


def test_duplicate_response_keys_are_merged_where_they_first_appear() -> None:
    query = """
        subscription {
          metricsUpdate {
            top: topSkills { skillName }
            seq
            top: topSkills { isAnomalous skillName }
            ...F
            seq
          }
        }
        fragment F on MetricsUpdate { top: topSkills { n: skillName } }
    """
    assert compiled(query) == (
        "{metricsUpdate:metricsUpdate{top:topSkills{skillName:skillName,isAnomalous:isAnomalous,n:skillName},seq:seq}}")


def test_a_fragment_spread_twice_in_one_selection_is_collected_once() -> None:
    query = "subscription { metricsUpdate { ...F seq ...F } } fragment F on MetricsUpdate { epoch }"
    assert compiled(query) == "{metricsUpdate:metricsUpdate{epoch:epoch,seq:seq}}"


def test_conflicting_fields_under_one_key_are_a_validation_error() -> None:
    error = the_error("subscription { metricsUpdate { x: seq x: epoch } }")
    assert "'x' conflict" in error["message"] and len(error["locations"]) == 2


@pytest.mark.parametrize(("variables", "expected"), [
    ({"on": True}, "{m:metricsUpdate{seq:seq,epoch:epoch,top:topSkills{skillName:skillName}}}"),
    ({"on": False}, "{m:metricsUpdate{seq:seq,stale:stale}}"),
])
def test_skip_and_include_apply_to_fields_fragments_and_spreads(variables: dict, expected: str) -> None:
    query = """
        subscription($on: Boolean!) {
          m: metricsUpdate {
            seq
            timestamp @skip(if: true)
            epoch @include(if: $on)
            stale @skip(if: $on)
            ... @include(if: $on) { top: topSkills { skillName } }
            ...Never @include(if: false)
          }
        }
        fragment Never on MetricsUpdate { anomalies { skillName } }
    """
    assert compiled(query, variables) == expected


def test_an_object_field_left_with_no_field_is_an_error() -> None:
    error = the_error("subscription { metricsUpdate { seq topSkills { skillName @skip(if: true) } } }")
    assert "selects no field" in error["message"]
    assert error["locations"] == [{"line": 1, "column": 36}]


def test_skill_and_since_come_from_literals() -> None:
    sub = subscription('subscription { metricsUpdate(skill: "mypy", since: {epoch: "e1", seq: 17}) { seq } }')
    assert (sub.skill, sub.since_epoch, sub.since_seq) == ("mypy", "e1", 17)
    assert sub.selection == "{metricsUpdate:metricsUpdate{seq:seq}}"


def test_skill_and_since_come_from_variables() -> None:
    query = "subscription($s: String, $p: RecoveryPosition) { metricsUpdate(skill: $s, since: $p) { seq } }"
    sub = subscription(query, {"s": "black", "p": {"epoch": "abc", "seq": 3}})
    assert (sub.skill, sub.since_epoch, sub.since_seq) == ("black", "abc", 3)
    sub = subscription(query, {})
    assert (sub.skill, sub.since_epoch, sub.since_seq) == (None, None, 0)
    sub = subscription(query, {"s": None, "p": None})
    assert (sub.skill, sub.since_epoch, sub.since_seq) == (None, None, 0)


def test_a_since_inside_a_literal_takes_a_variable() -> None:
    query = 'subscription($n: Int!) { metricsUpdate(since: {epoch: "e", seq: $n}) { seq } }'
    assert subscription(query, {"n": 9}).since_seq == 9


def test_a_selection_the_c_side_would_refuse_as_too_long_is_an_error() -> None:
    aliases = " ".join(f"{'k' * 250}{i}: seq" for i in range(40))
    query = "subscription { metricsUpdate { " + aliases + " } }"
    assert len(query) < 16384
    error = the_error(query)
    assert "8192 bytes" in error["message"]


# ---- variables ------------------------------------------------------------------


def test_variables_are_coerced_per_the_schema() -> None:
    query = "query($n: Int!) { topSkills(limit: $n) { skillName } }"
    wrong = the_error(query, {"n": "three"})
    assert "$n" in wrong["message"] and wrong["locations"] == [{"line": 1, "column": 7}]
    missing = the_error(query, {})
    assert "$n" in missing["message"] and missing["locations"] == [{"line": 1, "column": 7}]
    too_big = the_error(query, {"n": 2**31})
    assert "$n" in too_big["message"]
    prepared = prepare(query, {"n": 3})
    assert isinstance(prepared, PreparedQuery) and prepared.variables == {"n": 3}


def test_an_input_object_variable_needs_its_required_fields() -> None:
    query = "subscription($p: RecoveryPosition) { metricsUpdate(since: $p) { seq } }"
    error = the_error(query, {"p": {"epoch": "e"}})
    assert "seq" in error["message"] and "$p" in error["message"]
    error = the_error(query, {"p": {"epoch": "e", "seq": 1, "extra": 2}})
    assert "extra" in error["message"]


# ---- queries against a real server --------------------------------------------------


def run(server: Any, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
    prepared = prepare(query, variables)
    assert isinstance(prepared, PreparedQuery)
    return execute_query(prepared, ServerMetricsSource(server, server.max_message_size))


def camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(p[:1].upper() + p[1:] for p in rest)


def as_graphql(entry: dict[str, Any]) -> dict[str, Any]:
    return {camel(k): v for k, v in entry.items()}


@pytest.fixture
async def slow_server(server_factory: Any, seeded_db: Any) -> Any:
    """One snapshot for the whole test: the plain client and the queries read the same one."""
    now = utc_now()
    insert_anomaly(seeded_db.path, "ruff-check", "performance_drop", 0.9, 0.2, -3.5, now - timedelta(minutes=5))
    insert_anomaly(seeded_db.path, "mypy", "pattern_shift", 10.0, 30.0, 6.25, now - timedelta(minutes=2))
    return await server_factory(update_interval=3600)


async def _plain_update(client_factory: Any, server: Any, skill: str | None = None) -> dict[str, Any]:
    ws = await client_factory(server)
    await request(ws, {"type": "subscribe", "skill": skill})
    return (await recv_type(ws, "metrics_update"))["data"]


async def test_top_skills_are_the_plain_updates_entries(slow_server: Any, client_factory: Any) -> None:
    plain = await _plain_update(client_factory, slow_server)
    assert top_names({"data": plain}) == EXPECTED_ORDER
    result = run(slow_server, f"{{ topSkills(limit: 100) {{ {SKILL_FIELDS} }} }}")
    assert "errors" not in result
    ws = await client_factory(slow_server)
    expected = []
    for entry in plain["top_skills"]:
        metrics = (await request(ws, {"type": "get_metrics", "skill": entry["skill_name"]}))["data"]
        expected.append({
            **as_graphql(entry),
            "invocationCount24h": metrics["invocation_count_24h"],
            "completedInvocations": metrics["completed_invocations"],
        })
    assert result["data"]["topSkills"] == expected
    assert [e["completedInvocations"] for e in expected] == [7, 5, 3, 1, 2, 2]


@pytest.mark.parametrize(("limit", "count"), [(0, 0), (2, 2), (6, 6), (10, 6), (None, 6)])
async def test_top_skills_limit(slow_server: Any, limit: int | None, count: int) -> None:
    result = run(slow_server, "query($n: Int) { topSkills(limit: $n) { skillName } }", {"n": limit})
    assert [e["skillName"] for e in result["data"]["topSkills"]] == EXPECTED_ORDER[:count]


async def test_top_skills_defaults_to_ten_and_never_passes_top_n(server_factory: Any) -> None:
    server = await server_factory(update_interval=3600, top_n=3)
    assert [e["skillName"] for e in run(server, "{ topSkills { skillName } }")["data"]["topSkills"]] == EXPECTED_ORDER[:3]
    assert len(run(server, "{ topSkills(limit: 5) { skillName } }")["data"]["topSkills"]) == 3


async def test_a_negative_limit_is_a_field_error(slow_server: Any) -> None:
    result = run(slow_server, "{ topSkills(limit: -1) { skillName } }")
    assert result["data"] is None
    assert result["errors"][0]["path"] == ["topSkills"] and result["errors"][0]["locations"]


async def test_skill_is_the_per_skill_entry_and_get_metrics(slow_server: Any, client_factory: Any) -> None:
    ws = await client_factory(slow_server)
    for name in EXPECTED_ORDER:
        plain = await _plain_update(client_factory, slow_server, name)
        metrics = (await request(ws, {"type": "get_metrics", "skill": name}))["data"]
        result = run(slow_server, f"query($n: String!) {{ skill(name: $n) {{ {SKILL_FIELDS} }} }}", {"n": name})
        got = result["data"]["skill"]
        assert {k: got[k] for k in as_graphql(plain["top_skills"][0])} == as_graphql(plain["top_skills"][0])
        for key, value in metrics.items():  # every get_metrics figure under its camelCase name
            assert got[camel(key)] == value, (name, key)


async def test_a_skill_with_no_data_is_null(slow_server: Any) -> None:
    assert run(slow_server, '{ skill(name: "never-ran") { skillName } }') == {"data": {"skill": None}}


async def test_anomalies_are_the_plain_updates(slow_server: Any, client_factory: Any) -> None:
    plain = await _plain_update(client_factory, slow_server)
    assert len(plain["anomalies"]) == 2
    result = run(slow_server, f"{{ anomalies {{ {ANOMALY_FIELDS} }} }}")
    assert result["data"]["anomalies"] == [as_graphql(a) for a in plain["anomalies"]]
    assert result["data"]["anomalies"][0]["anomalyType"] == "pattern_shift"  # |6.25| first
    one = await _plain_update(client_factory, slow_server, "ruff-check")
    result = run(slow_server, f'{{ anomalies(skill: "ruff-check") {{ {ANOMALY_FIELDS} }} }}')
    assert result["data"]["anomalies"] == [as_graphql(a) for a in one["anomalies"]]
    assert [a["skillName"] for a in result["data"]["anomalies"]] == ["ruff-check"]


@pytest.mark.parametrize(("skill", "window", "step"), [("pytest-run", 86400, 3600), (None, 7200, 600), ("mypy", 3600, 60)])
async def test_history_is_get_history(slow_server: Any, client_factory: Any, skill: str | None, window: int, step: int) -> None:
    ws = await client_factory(slow_server)
    query = "query($s: String, $w: Int, $d: Int) { history(skill: $s, window: $w, step: $d) { t invocationCount completedCount avgDuration } }"
    for _ in range(3):  # a bucket boundary may pass between the two reads: read both again
        result = run(slow_server, query, {"s": skill, "w": window, "d": step})
        plain = await request(ws, {"type": "get_history", "skill_name": skill, "window": window, "step": step})
        assert plain["type"] == "history_response"
        if result["data"]["history"][-1]["t"] == plain["points"][-1]["t"]:
            break
    assert result["data"]["history"] == [as_graphql(p) for p in plain["points"]]
    assert len(plain["points"]) == window // step


async def test_history_defaults_and_a_count_that_shows(slow_server: Any) -> None:
    points = run(slow_server, "{ history { t } }")["data"]["history"]
    assert len(points) == 60  # window 3600, step 60
    day = run(slow_server, '{ history(skill: "pytest-run", window: 86400, step: 3600) { invocationCount } }')
    assert sum(p["invocationCount"] for p in day["data"]["history"]) == 6


async def test_history_errors_are_the_plain_protocols(slow_server: Any) -> None:
    unknown = run(slow_server, '{ history(skill: "never-ran") { t } }')
    assert unknown["data"] is None
    (error,) = unknown["errors"]
    assert error["message"] == "Invalid skill name: never-ran"
    assert error["extensions"] == {"code": "unknown_skill"} and error["path"] == ["history"]
    assert error["locations"] == [{"line": 1, "column": 3}]
    bad = run(slow_server, "{ history(step: 7) { t } }")
    assert bad["errors"][0]["extensions"] == {"code": "invalid_request"}


async def test_typename_and_aliases_in_a_query(slow_server: Any) -> None:
    result = run(slow_server, '{ __typename first: topSkills(limit: 1) { __typename n: skillName } s: skill(name: "black") { skillName } }')
    assert result == {"data": {
        "__typename": "Query",
        "first": [{"__typename": "SkillMetrics", "n": "pytest-run"}],
        "s": {"skillName": "black"},
    }}
