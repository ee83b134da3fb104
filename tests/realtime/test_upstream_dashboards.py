"""session-buddy's own Grafana dashboards and Prometheus alert rules, evaluated against our /metrics.

Every PromQL expression in session-buddy's `docs/grafana/phase4-skills-dashboard.json`,
`docs/monitoring/grafana-dashboard.json` and `docs/monitoring/prometheus-alerts.yaml`
(lesleslie/session-buddy, commit a2e4633e83e3c536d1bf2c7aa8d3cacf1494ec97) is listed below as
data, with the panel or alert it belongs to.  The test seeds a real DB, starts a real server,
scrapes /metrics twice with new rows written in between (rate() and increase() need two
samples), and evaluates each expression with promql_mini: each must return data with sane
values.  An expression on a metric we do not export is listed in NOT_EXPORTED with the reason,
which docs/realtime/MIGRATING.md repeats.

With SESSION_BUDDY_UPSTREAM_GIT pointing to a git directory of session-buddy, one more test
checks that this list holds every expression of those three files, and nothing else.
"""

from __future__ import annotations

import asyncio
import json
import math
import operator
import os
import re
import sqlite3
import subprocess
import time
import urllib.request
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from prom_model import Row, insert_rows
from promql_mini import Scrape, Series, evaluate, metric_names, parse, split_condition
from skills_seed import create_db, insert_anomaly, utc_now

PHASE4 = "docs/grafana/phase4-skills-dashboard.json"
MONITORING = "docs/monitoring/grafana-dashboard.json"
ALERTS = "docs/monitoring/prometheus-alerts.yaml"

# The job name the alert rules and the dashboard expect for this server in prometheus.yml.
JOB = "session-buddy-websocket"


@dataclass(frozen=True)
class Query:
    source: str
    where: str           # panel title, alert condition name, or alert rule name
    expr: str
    sane: str            # what a healthy answer looks like: see check_sane()
    fires: bool | None = None  # for conditions: whether the seeded data must trip it


QUERIES: tuple[Query, ...] = (
    # phase4-skills-dashboard.json: panels
    Query(PHASE4, "Skill Invocation Rate (per minute)", "rate(skill_invocations_total[5m]) * 60", "rate"),
    Query(PHASE4, "Skill Completion Rates", "skill_completion_rate", "ratio"),
    Query(PHASE4, "Skill Duration (p50, p95, p99)",
          "histogram_quantile(0.50, rate(skill_duration_seconds_bucket[5m]))", "quantile"),
    Query(PHASE4, "Skill Duration (p50, p95, p99)",
          "histogram_quantile(0.95, rate(skill_duration_seconds_bucket[5m]))", "quantile"),
    Query(PHASE4, "Skill Duration (p50, p95, p99)",
          "histogram_quantile(0.99, rate(skill_duration_seconds_bucket[5m]))", "quantile"),
    Query(PHASE4, "Successful Invocations by Skill",
          'sum(rate(skill_invocations_total{completed="true"}[5m])) by (skill_name)', "rate"),
    Query(PHASE4, "Skill Completion Rate (with anomaly threshold at 70%)", "skill_completion_rate", "ratio"),
    Query(PHASE4, "Prometheus Server", 'up{job="prometheus"}', "up"),
    Query(PHASE4, "Active Sessions", "active_sessions_total", "sessions"),
    Query(PHASE4, "Anomaly Detection Rate (per minute)", "rate(anomalies_detected_total[5m]) * 60", "rate"),
    # grafana-dashboard.json: alerting conditions
    Query(MONITORING, "High Anomaly Rate", "sum(increase(anomalies_detected_total[5m])) > 5", "increase", False),
    Query(MONITORING, "Low Completion Rate", "avg(skill_completion_rate) by (skill_name) < 0.7", "ratio", True),
    Query(MONITORING, "WebSocket Server Down", f'up{{job="{JOB}"}} == 0', "up", False),
    Query(MONITORING, "Database Pool Exhausted", "sqlite_connections_active / sqlite_connections_max > 0.9",
          "ratio"),
    # grafana-dashboard.json: panels
    Query(MONITORING, "Real-Time Skill Invocations", "rate(skill_invocations_total[1m])", "rate"),
    Query(MONITORING, "Skill Completion Rate", "avg(skill_completion_rate) by (skill_name)", "ratio"),
    Query(MONITORING, "Anomaly Detection", "sum(increase(anomalies_detected_total[5m]))", "increase"),
    Query(MONITORING, "Active Sessions", "active_sessions_total", "sessions"),
    Query(MONITORING, "Top Skills by Invocations (24h)",
          "topk(10, sum(increase(skill_invocations_total[24h])) by (skill_name))", "increase"),
    Query(MONITORING, "Skill Duration Distribution",
          "histogram_quantile(0.95, sum(rate(skill_duration_seconds_bucket[5m])) by (le, skill_name))", "quantile"),
    Query(MONITORING, "Workflow Phase Distribution",
          "sum(increase(skill_invocations_total[1h])) by (workflow_phase)", "increase"),
    Query(MONITORING, "Anomaly Timeline", "increase(anomalies_detected_total[1h])", "increase"),
    Query(MONITORING, "WebSocket Server Health", f'up{{job="{JOB}"}}', "up"),
    Query(MONITORING, "Database Connection Pool", "sqlite_connections_active / sqlite_connections_max", "ratio"),
    Query(MONITORING, "Alert Rules Summary", 'sum(ALERTS{alertname=~"SessionBuddy.*"}) by (alertstate)', "alerts"),
    # prometheus-alerts.yaml: rules
    Query(ALERTS, "SessionBuddyHighAnomalyRate", "sum(increase(anomalies_detected_total[5m])) > 5", "increase",
          False),
    Query(ALERTS, "SessionBuddySkillPerformanceDrop", 'skill_completion_rate{skill_name!="test"} < 0.7', "ratio",
          True),
    Query(ALERTS, "SessionBuddySkillCriticalFailure", 'skill_completion_rate{skill_name!="test"} < 0.5', "ratio",
          True),
    Query(ALERTS, "SessionBuddyWebSocketServerDown", f'up{{job="{JOB}"}} == 0', "up", False),
    Query(ALERTS, "SessionBuddyDatabasePoolExhausted", "(sqlite_connections_active / sqlite_connections_max) > 0.9",
          "ratio"),
    Query(ALERTS, "SessionBuddyDatabasePoolCritical", "(sqlite_connections_active / sqlite_connections_max) > 0.95",
          "ratio"),
    Query(ALERTS, "SessionBuddyActiveSessionsZero", "active_sessions_total == 0", "sessions", False),
    Query(ALERTS, "SessionBuddySlowSkillExecution",
          "histogram_quantile(0.95, rate(skill_duration_seconds_bucket[5m])) > 30", "quantile", True),
    Query(ALERTS, "SessionBuddyVerySlowSkillExecution",
          "histogram_quantile(0.95, rate(skill_duration_seconds_bucket[5m])) > 60", "quantile", True),
    Query(ALERTS, "SessionBuddyHighInvocationRate", "rate(skill_invocations_total[1m]) > 100", "rate"),
    Query(ALERTS, "SessionBuddyStaleMetricsCache", "time() - skill_metrics_cache_last_update > 300", "age", False),
    Query(ALERTS, "SessionBuddyMissingSkillMetrics", "count(skill_completion_rate) < 10", "skills", True),
    Query(ALERTS, "SessionBuddyCrackerjackIntegrationFailing",
          'rate(skill_invocations_total{workflow_phase="execution", skill_name=~".*-fail"}[5m]) > 0.1', "rate"),
    Query(ALERTS, "SessionBuddyCICDPipelineFailure",
          'rate(skill_invocations_total{workflow_phase="execution", completed="false"}[5m]) > 0.2', "rate"),
    Query(ALERTS, "SessionBuddyPredictionAccuracyDrop", "(skill_prediction_correct / skill_prediction_total) < 0.7",
          "ratio"),
    Query(ALERTS, "SessionBuddyABTestSampleSizeInsufficient", "ab_test_samples_total < ab_test_min_sample_size",
          "skills"),
)

# Names the queries use that our server does not export, and why (docs/realtime/MIGRATING.md).
NOT_EXPORTED = {
    "sqlite_connections_active": "the server reads through one SQLite connection, not a pool; "
                                 "session-buddy's exporter never exported it either",
    "sqlite_connections_max": "as sqlite_connections_active",
    "skill_prediction_correct": "session-buddy's prediction models are not part of the real-time server",
    "skill_prediction_total": "as skill_prediction_correct",
    "ab_test_samples_total": "session-buddy's A/B tests are not part of the real-time server",
    "ab_test_min_sample_size": "as ab_test_samples_total",
}
# Series Prometheus makes itself rather than scraping them.
FROM_PROMETHEUS = {"up", "ALERTS"}


def _not_exported(q: Query) -> bool:
    return bool(metric_names(parse(q.expr)) & NOT_EXPORTED.keys()) or q.expr == 'up{job="prometheus"}'


def check_sane(q: Query, result: list[Series], db_skills: set[str]) -> None:
    values = [s.value for s in result]
    finite = [v for v in values if math.isfinite(v)]
    assert result, f"{q.where}: {q.expr} returned no data"
    if q.sane == "rate" or q.sane == "increase":
        assert finite == values and all(v >= 0 for v in values), (q.expr, values)
        assert any(v > 0 for v in values), f"{q.expr}: nothing moved between the scrapes"
    elif q.sane == "ratio":
        assert finite == values and all(0 <= v <= 1 for v in values), (q.expr, values)
    elif q.sane == "quantile":
        # NaN for series that saw no new observation between the scrapes, as in Prometheus.
        assert finite and all(0 <= v <= 300 for v in finite), (q.expr, values)
    elif q.sane == "sessions":
        assert values == [float(int(values[0]))] and values[0] >= 1, values
    elif q.sane == "up":
        assert values == [1.0] * len(values), values
    elif q.sane == "age":
        assert len(values) == 1 and 0 <= values[0] < 120, values
    elif q.sane == "skills":
        assert values == [float(len(db_skills))], values
    elif q.sane == "alerts":
        assert {s.labels.get("alertstate") for s in result} == {"pending"} and all(v >= 1 for v in values)
    else:
        raise AssertionError(q.sane)
    for s in result:  # every skill a query names is one of the database's
        if "skill_name" in s.labels:
            assert s.labels["skill_name"] in db_skills, s.labels


def startup_rows() -> list[Row]:
    now = utc_now()
    rows = [Row("pytest-run", now - (i + 1) * 3 * timedelta(minutes=1), i % 6 != 0, 1.0 + i,
                "execution", f"dev-{i % 3}") for i in range(12)]
    rows += [Row("ruff-check", now - (i + 2) * timedelta(minutes=4), True, 0.2 * (i + 1), "setup", "dev-0")
             for i in range(5)]
    rows += [Row("flaky-skill", now - (i + 1) * timedelta(minutes=2), i < 4, 3.0, "execution", "dev-1")
             for i in range(10)]                                    # completes 40 %
    rows += [Row("crackerjack-fail", now - timedelta(minutes=7), False, 1.0, "execution", "ci-1"),
             Row("crackerjack-fail", now - timedelta(minutes=8), True, 2.0, "execution", "ci-1"),
             Row("slow-skill", now - timedelta(hours=3), True, 100.0, "verification", "ci-2"),
             Row("no-phase", now - timedelta(days=2), True, None, None, "old"),
             Row("test", now - timedelta(minutes=30), False, None, "execution", "dev-2")]
    return rows


def between_rows() -> list[Row]:
    now = utc_now()
    return [Row("pytest-run", now, True, 4.0, "execution", "dev-0"),
            Row("pytest-run", now, False, 50.0, "execution", "dev-4"),
            Row("ruff-check", now, True, 0.3, "setup", "dev-0"),
            Row("flaky-skill", now, False, 3.0, "execution", "dev-1"),
            Row("crackerjack-fail", now, False, 1.5, "execution", "ci-1"),
            Row("slow-skill", now, True, 200.0, "verification", "ci-2"),
            Row("slow-skill", now, True, 250.0, "verification", "ci-2"),
            Row("no-phase", now, True, 0.05, None, "dev-3")]


async def _scrape(server: Any) -> Scrape:
    await server.broadcast_metrics()
    url = server.url.replace("ws://", "http://") + "/metrics"

    def fetch() -> str:
        with urllib.request.urlopen(url, timeout=30) as resp:
            return resp.read().decode()

    text = await asyncio.get_running_loop().run_in_executor(None, fetch)
    scrape = Scrape.from_text(time.time(), text)
    # What Prometheus adds to every successful scrape of the job.
    scrape.add("up", {"job": JOB, "instance": f"{server.host}:{server.port}"}, 1.0)
    return scrape


def _alerts_from_rules(scrapes: list[Scrape]) -> None:
    """ALERTS as Prometheus keeps it: one series per alert rule that returns data (pending, as
    the test does not wait out any rule's `for:`)."""
    for q in QUERIES:
        if q.source != ALERTS or _not_exported(q):
            continue
        for s in evaluate(parse(q.expr), scrapes):
            labels = {k: v for k, v in s.labels.items() if k != "__name__"}
            scrapes[-1].add("ALERTS", {**labels, "alertname": q.where, "alertstate": "pending"}, 1.0)


@pytest.fixture
async def scrapes(server_factory, tmp_path: Path) -> tuple[list[Scrape], set[str]]:
    db = create_db(tmp_path / "dash" / "skills.db")
    rows = startup_rows()
    insert_rows(db, rows)
    insert_anomaly(db, "flaky-skill", "performance_drop", 0.9, 0.4, -3.0)
    server = await server_factory(db_path=db)
    first = await _scrape(server)
    insert_rows(db, between_rows())
    # The anomaly clears and comes back: anomalies_detected_total moves between the scrapes.
    with sqlite3.connect(db) as con:
        con.execute("UPDATE skill_anomalies SET resolved_at = ?", (utc_now().isoformat(),))
    await server.broadcast_metrics()
    insert_anomaly(db, "flaky-skill", "performance_drop", 0.9, 0.3, -3.4)
    while True:  # rate() needs the second scrape at a later time than the first
        second = await _scrape(server)
        if second.t > first.t:
            break
    scrape_list = [first, second]
    _alerts_from_rules(scrape_list)  # after the scrapes: ALERTS comes from the rules, not from us
    return scrape_list, {r.skill for r in rows}


@pytest.mark.parametrize("q", [q for q in QUERIES if not _not_exported(q)],
                         ids=lambda q: f"{Path(q.source).stem}:{q.where}:{q.expr}")
async def test_expression_returns_data(q: Query, scrapes) -> None:
    scrape_list, skills = scrapes
    node = parse(q.expr)
    condition = split_condition(node)
    if condition is None:
        check_sane(q, evaluate(node, scrape_list), skills)
        return
    left, op, threshold = condition
    lhs = evaluate(left, scrape_list)
    check_sane(q, lhs, skills)
    filtered = evaluate(node, scrape_list)
    assert isinstance(lhs, list) and isinstance(filtered, list)
    cmp = {"<": operator.lt, ">": operator.gt, "==": operator.eq}[op]
    assert [s.labels for s in filtered] == [s.labels for s in lhs if cmp(s.value, threshold)]
    if q.fires is not None:
        assert bool(filtered) is q.fires, (q.where, [(s.labels, s.value) for s in lhs])
    if "skill_name!=\"test\"" in q.expr:
        assert all(s.labels.get("skill_name") != "test" for s in filtered)


async def test_expressions_we_do_not_answer_name_only_unexported_metrics(scrapes) -> None:
    """The skipped queries are exactly those on names we do not export (or Prometheus's own
    target), and those names are indeed absent from our scrape."""
    scrape_list, _ = scrapes
    exported = {name for name, _ in scrape_list[-1].samples}
    skipped = [q for q in QUERIES if _not_exported(q)]
    assert {q.where for q in skipped} == {
        "Prometheus Server", "Database Pool Exhausted", "Database Connection Pool",
        "SessionBuddyDatabasePoolExhausted", "SessionBuddyDatabasePoolCritical",
        "SessionBuddyPredictionAccuracyDrop", "SessionBuddyABTestSampleSizeInsufficient"}
    assert not exported & NOT_EXPORTED.keys()
    used = set().union(*(metric_names(parse(q.expr)) for q in QUERIES))
    assert used - NOT_EXPORTED.keys() - FROM_PROMETHEUS <= exported


def _upstream_expressions(git_dir: str) -> list[tuple[str, str]]:
    def show(path: str) -> str:
        return subprocess.run(["git", "-C", git_dir, "show", f"HEAD:{path}"], check=True, capture_output=True,
                              text=True).stdout

    found: list[tuple[str, str]] = []

    def walk(source: str, node: Any) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                if key == "expr" and isinstance(value, str):
                    found.append((source, value))
                else:
                    walk(source, value)
        elif isinstance(node, list):
            for item in node:
                walk(source, item)

    walk(PHASE4, json.loads(show(PHASE4)))
    walk(MONITORING, json.loads(show(MONITORING)))
    found += [(ALERTS, m) for m in re.findall(r"^\s+expr: (.+)$", show(ALERTS), re.MULTILINE)]
    return found


@pytest.mark.skipif(not os.environ.get("SESSION_BUDDY_UPSTREAM_GIT"),
                    reason="set SESSION_BUDDY_UPSTREAM_GIT to a git directory of lesleslie/session-buddy")
def test_the_list_is_every_upstream_expression() -> None:
    upstream = sorted(_upstream_expressions(os.environ["SESSION_BUDDY_UPSTREAM_GIT"]))
    ours = sorted((q.source, q.expr) for q in QUERIES)
    assert ours == upstream
