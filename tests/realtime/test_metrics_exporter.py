"""session_buddy.realtime.metrics_exporter: session-buddy's push exporter, scraped over real HTTP."""

from __future__ import annotations

import socket
import subprocess
import sys
import urllib.request
import uuid

import pytest
from prometheus_client.parser import text_string_to_metric_families

from session_buddy.realtime import metrics_exporter as exporter_mod
from session_buddy.realtime.metrics_exporter import DURATION_BUCKETS, PrometheusExporter, create_exporter


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _scrape(port: int) -> dict[str, list]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=30) as resp:
        text = resp.read().decode()
    return {f.name: f.samples for f in text_string_to_metric_families(text)}


def test_recorded_figures_are_served_over_http() -> None:
    skill = f"s-{uuid.uuid4().hex[:8]}"
    exporter = create_exporter(port=_free_port())
    assert exporter.is_running()
    exporter.record_invocation(skill, "execution", True, 0.3)
    exporter.record_invocation(skill, "execution", False, 45.0)
    exporter.record_invocation(skill, None, True, None)
    exporter.record_invocation(skill, "", True, None)
    exporter.update_completion_rate(skill, 0.75)
    exporter.record_anomaly("performance_drop", skill)
    exporter.update_active_sessions(4)

    families = _scrape(exporter.port)

    calls = {(s.labels["workflow_phase"], s.labels["completed"]): s.value
             for s in families["skill_invocations"] if s.name == "skill_invocations_total"
             and s.labels["skill_name"] == skill}
    assert calls == {("execution", "true"): 1.0, ("execution", "false"): 1.0, ("unknown", "true"): 2.0}
    buckets = {s.labels["le"]: s.value for s in families["skill_duration_seconds"]
               if s.name == "skill_duration_seconds_bucket" and s.labels["skill_name"] == skill}
    assert [float(le) for le in buckets if le != "+Inf"] == list(DURATION_BUCKETS)
    assert buckets["0.5"] == 1.0 and buckets["30.0"] == 1.0 and buckets["60.0"] == 2.0 and buckets["+Inf"] == 2.0
    # Invocations without a duration leave the histogram alone.
    assert not any(s.labels.get("workflow_phase") == "unknown" and s.labels.get("skill_name") == skill
                   for s in families["skill_duration_seconds"])
    rate = [s.value for s in families["skill_completion_rate"] if s.labels["skill_name"] == skill]
    assert rate == [0.75]
    anomalies = [s.value for s in families["anomalies_detected"] if s.name == "anomalies_detected_total"
                 and s.labels == {"anomaly_type": "performance_drop", "skill_name": skill}]
    assert anomalies == [1.0]
    assert [s.value for s in families["active_sessions_total"]] == [4.0]


def test_start_twice_warns_and_a_busy_port_raises(caplog: pytest.LogCaptureFixture) -> None:
    exporter = create_exporter(port=_free_port())
    with caplog.at_level("WARNING", logger="session_buddy.realtime.metrics_exporter"):
        exporter.start()
    assert any("already running" in r.getMessage() for r in caplog.records)
    second = PrometheusExporter(port=exporter.port)
    with pytest.raises(OSError):
        second.start()
    assert not second.is_running()


@pytest.mark.parametrize("call", [
    lambda e: e.update_completion_rate("x", 1.5),
    lambda e: e.update_completion_rate("x", -0.1),
    lambda e: e.update_active_sessions(-1),
    lambda e: PrometheusExporter(port=0),
    lambda e: PrometheusExporter(port=70000),
    lambda e: PrometheusExporter(port="9090"),
])
def test_bad_values_are_refused(call) -> None:
    with pytest.raises(ValueError):
        call(PrometheusExporter(port=_free_port()))


def test_module_metrics_keep_upstreams_names() -> None:
    names = {m._name for m in (exporter_mod.skill_invocations_total, exporter_mod.skill_duration_seconds,
                               exporter_mod.skill_completion_rate, exporter_mod.active_sessions_total,
                               exporter_mod.anomalies_detected_total)}
    # prometheus_client keeps counters' names without their _total suffix.
    assert names == {"skill_invocations", "skill_duration_seconds", "skill_completion_rate",
                     "active_sessions_total", "anomalies_detected"}


def test_importing_the_server_does_not_import_prometheus_client() -> None:
    code = "import sys, session_buddy.realtime; print('prometheus_client' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.strip() == "False"
