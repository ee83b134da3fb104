"""Assertions on the shape of wire-protocol messages (docs/realtime/WEBSOCKET_SERVER.md), shared by test modules."""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from skills_seed import ANOMALY_FIELDS, METRICS_RESPONSE_FIELDS, TOP_SKILL_FIELDS
from wsutil import TS_RE, is_number, parse_ts

__all__ = [
    "assert_anomaly_shape",
    "assert_connected",
    "assert_entry_matches",
    "assert_error",
    "assert_metrics_data_matches",
    "assert_metrics_update_shape",
    "assert_recent",
    "assert_stream_position",
    "top_names",
]

FLOAT_FIELDS = ("avg_duration", "completion_rate", "avg_duration_seconds")
INT_FIELDS = ("invocation_count", "completed_count", "total_invocations", "invocation_count_1h")


def assert_recent(ts: str, slack: timedelta = timedelta(minutes=2)) -> None:
    """A protocol timestamp that is UTC 'now' (catches local-time-as-UTC bugs)."""
    when = parse_ts(ts)
    now = datetime.now(timezone.utc)
    assert abs(now - when) < slack, f"timestamp {ts} is not close to now ({now.isoformat()})"


EPOCH_RE = re.compile(r"^[0-9a-f]{16}$")


def assert_stream_position(msg: dict[str, Any]) -> None:
    """`epoch` (16 hex digits) and `seq` (an int >= 0), as connected, subscription_confirmed and
    metrics_update carry them."""
    assert isinstance(msg["epoch"], str) and EPOCH_RE.match(msg["epoch"]), msg
    assert type(msg["seq"]) is int and msg["seq"] >= 0, msg


def assert_connected(msg: dict[str, Any]) -> None:
    assert set(msg) == {"type", "message", "authenticated", "protocol_version", "epoch", "seq",
                        "timestamp"}, msg
    assert msg["type"] == "connected"
    assert msg["message"] == "Connected to Session-Buddy real-time metrics"
    assert msg["authenticated"] is False
    assert msg["protocol_version"] == "1.1"
    assert_stream_position(msg)
    assert TS_RE.match(msg["timestamp"]), msg["timestamp"]
    assert_recent(msg["timestamp"])


def assert_entry_shape(entry: dict[str, Any]) -> None:
    assert set(entry) == TOP_SKILL_FIELDS, sorted(entry)
    assert isinstance(entry["skill_name"], str) and entry["skill_name"]
    assert entry["last_invocation_at"] is None or TS_RE.match(entry["last_invocation_at"]), entry
    for key in INT_FIELDS:
        assert type(entry[key]) is int and entry[key] >= 0, (key, entry[key])
    assert entry["completed_count"] <= entry["invocation_count"]
    assert entry["invocation_count_1h"] <= entry["invocation_count"]
    assert entry["invocation_count"] <= entry["total_invocations"]
    assert is_number(entry["completion_rate"]) and 0.0 <= entry["completion_rate"] <= 1.0, entry
    for key in ("avg_duration", "avg_duration_seconds"):
        assert entry[key] is None or (is_number(entry[key]) and entry[key] >= 0), (key, entry[key])
    assert type(entry["is_anomalous"]) is bool


def assert_anomaly_shape(anomaly: dict[str, Any]) -> None:
    assert set(anomaly) == ANOMALY_FIELDS, sorted(anomaly)
    assert isinstance(anomaly["skill_name"], str)
    assert anomaly["anomaly_type"] in ("performance_drop", "performance_spike", "pattern_shift")
    for key in ("baseline_value", "observed_value", "deviation_score"):
        assert is_number(anomaly[key]), (key, anomaly[key])
    assert isinstance(anomaly["detected_at"], str) and TS_RE.match(anomaly["detected_at"]), anomaly


def assert_metrics_update_shape(msg: dict[str, Any]) -> None:
    """Exactly the fields and types of the wire protocol (docs/realtime/WEBSOCKET_SERVER.md), in a healthy (not stale) state."""
    assert set(msg) == {"type", "seq", "epoch", "timestamp", "data"}, sorted(msg)
    assert msg["type"] == "metrics_update"
    assert_stream_position(msg)
    assert TS_RE.match(msg["timestamp"]), msg["timestamp"]
    assert_recent(msg["timestamp"])
    data = msg["data"]
    assert set(data) == {"top_skills", "anomalies", "stale"}, sorted(data)
    assert data["stale"] is False
    assert isinstance(data["top_skills"], list)
    assert isinstance(data["anomalies"], list)
    for entry in data["top_skills"]:
        assert_entry_shape(entry)
    for anomaly in data["anomalies"]:
        assert_anomaly_shape(anomaly)
    scores = [abs(a["deviation_score"]) for a in data["anomalies"]]
    assert scores == sorted(scores, reverse=True), "anomalies not sorted by |deviation_score| desc"


def _approx(value: Any, expected: float | None, what: Any = None) -> None:
    if expected is None:
        assert value is None, (what, value)
    else:
        assert value == pytest.approx(expected, rel=1e-3, abs=1e-3), (what, value, expected)


def assert_entry_matches(entry: dict[str, Any], expected: dict[str, Any]) -> None:
    """A top_skills entry equals the expected values (floats to 1e-3)."""
    assert_entry_shape(entry)
    for key, want in expected.items():
        if key in FLOAT_FIELDS:
            _approx(entry[key], want, (entry["skill_name"], key))
        else:
            assert entry[key] == want, (entry["skill_name"], key, entry[key], want)


def assert_metrics_data_matches(data: dict[str, Any], expected: dict[str, Any]) -> None:
    """A metrics_response.data equals the expected values (floats to 1e-3)."""
    assert set(data) == METRICS_RESPONSE_FIELDS, sorted(data)
    for key in ("total_invocations", "completed_invocations", "invocation_count_1h",
                "invocation_count_24h"):
        assert type(data[key]) is int, (key, data[key])
    assert type(data["is_anomalous"]) is bool
    for key, want in expected.items():
        if key in ("completion_rate", "avg_duration_seconds"):
            _approx(data[key], want, key)
        else:
            assert data[key] == want, (key, data[key], want)


def assert_error(msg: dict[str, Any], code: str, request_type: Any = ...) -> None:
    """An `error` reply with `code`; `request_type` is checked unless left as `...`."""
    assert set(msg) == {"type", "code", "message", "request_type"}, msg
    assert msg["type"] == "error", msg
    assert msg["code"] == code, msg
    assert isinstance(msg["message"], str) and msg["message"], msg
    if request_type is not ...:
        assert msg["request_type"] == request_type, msg


def top_names(msg: dict[str, Any]) -> list[str]:
    return [entry["skill_name"] for entry in msg["data"]["top_skills"]]
