"""What session-buddy's metric names should say for a set of invocation rows, computed in Python.

The reference the server's /metrics is compared with: the same definitions as session-buddy's
PrometheusExporter (phase None or "" -> "unknown", completed "true"/"false", a duration observed
only when there is one, its buckets) applied to rows written straight into a real SQLite file.
Imported as a plain module (tests/conftest.py puts tests/realtime on sys.path).
"""

from __future__ import annotations

import math
import sqlite3
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from session_buddy.realtime.metrics_exporter import DURATION_BUCKETS
from skills_seed import iso_ms

__all__ = ["Row", "expected", "insert_rows", "scrape_families", "upstream_samples"]

UPSTREAM_FAMILIES = ("skill_invocations", "skill_duration_seconds", "skill_completion_rate",
                     "anomalies_detected", "active_sessions_total", "skill_metrics_cache_last_update")


@dataclass(frozen=True)
class Row:
    skill: str
    invoked_at: datetime | str
    completed: bool = True
    duration: float | None = 1.0
    phase: str | None = "execution"
    session: str = "session-a"


def insert_rows(path: Path, rows: list[Row], *, with_phase: bool = True) -> None:
    """INSERT the rows with sqlite3, as another tool would (the V1 trigger keeps skill_metrics)."""
    con = sqlite3.connect(path, timeout=10)
    try:
        with con:
            for r in rows:
                at = iso_ms(r.invoked_at) if isinstance(r.invoked_at, datetime) else r.invoked_at
                cols = "skill_name, invoked_at, session_id, completed, duration_seconds"
                values: list[Any] = [r.skill, at, r.session, r.completed, r.duration]
                if with_phase:
                    cols += ", workflow_phase"
                    values.append(r.phase)
                con.execute(f"INSERT INTO skill_invocation ({cols}) VALUES ({', '.join('?' * len(values))})",
                            values)
    finally:
        con.close()


def _le(bound: float) -> str:
    return "+Inf" if math.isinf(bound) else repr(float(bound))


def expected(rows: list[Row]) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """The samples of skill_invocations_total, skill_duration_seconds and skill_completion_rate."""
    out: dict[tuple[str, tuple[tuple[str, str], ...]], float] = defaultdict(float)
    total: dict[str, int] = defaultdict(int)
    done: dict[str, int] = defaultdict(int)
    for r in rows:
        phase = r.phase or "unknown"
        key = (("completed", "true" if r.completed else "false"), ("skill_name", r.skill), ("workflow_phase", phase))
        out[("skill_invocations_total", key)] += 1
        total[r.skill] += 1
        done[r.skill] += r.completed
        if r.duration is None:
            continue
        base = (("skill_name", r.skill), ("workflow_phase", phase))
        for bound in (*DURATION_BUCKETS, math.inf):
            le = (*base, ("le", _le(bound)))
            out[("skill_duration_seconds_bucket", tuple(sorted(le)))] += r.duration <= bound
        out[("skill_duration_seconds_count", base)] += 1
        out[("skill_duration_seconds_sum", base)] += r.duration
    for skill, n in total.items():
        out[("skill_completion_rate", (("skill_name", skill),))] = done[skill] / n
    return dict(out)


def scrape_families(text: str) -> dict[str, Any]:
    return {f.name: f for f in text_string_to_metric_families(text)}


def upstream_samples(text: str, names: tuple[str, ...] = ("skill_invocations_total", "skill_duration_seconds_bucket",
                                                             "skill_duration_seconds_count", "skill_duration_seconds_sum",
                                                             "skill_completion_rate")
                     ) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """The samples of those names, keyed like expected()."""
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name in names:
                out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out
