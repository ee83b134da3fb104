"""A known skills database for the server tests, and what the server should report for it.

Every invocation sits at a fixed age relative to `now`, far enough from the 1 h and 24 h
window edges that a slow test run cannot move it across one. No skill has two invocations
in the last hour, so the server's own anomaly detection (which needs at least two current
values) can never fire on this data: every anomaly a test sees is one it inserted.

Ranking (window count desc, total desc, name asc) on this data:
    pytest-run (6, 8), ruff-check (4, 7), mypy (4, 4), alpha-lint (2, 2), black (2, 2),
    old-skill (0, 3)
which exercises every tie-breaker, and a skill with data older than 24 h only.

`session_buddy.storage` is imported lazily so that tests/conftest.py never breaks
collection of unrelated test directories.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from statistics import fmean
from typing import Any

__all__ = [
    "ANOMALY_FIELDS",
    "EXPECTED_ORDER",
    "METRICS_RESPONSE_FIELDS",
    "SEED",
    "TOP_SKILL_FIELDS",
    "Invocation",
    "SeededDB",
    "create_db",
    "insert_anomaly",
    "insert_invocation_raw",
    "iso_ms",
    "seed_db",
    "store_invocation",
    "utc_now",
]

H = timedelta(hours=1)
M = timedelta(minutes=1)
D = timedelta(days=1)


@dataclass(frozen=True)
class Invocation:
    skill: str
    age: timedelta
    completed: bool
    duration: float | None  # only completed invocations carry a duration


SEED: tuple[Invocation, ...] = (
    # pytest-run: 6 in the last 24 h (one of them in the last hour), 2 older. 7 of 8 completed.
    Invocation("pytest-run", 20 * M, True, 2.0),
    Invocation("pytest-run", 2 * H, True, 1.0),
    Invocation("pytest-run", 4 * H, True, 3.0),
    Invocation("pytest-run", 6 * H, False, None),
    Invocation("pytest-run", 8 * H, True, 2.5),
    Invocation("pytest-run", 12 * H, True, 4.5),
    Invocation("pytest-run", 3 * D, True, 5.0),
    Invocation("pytest-run", 3 * D + H, True, 6.0),
    # ruff-check: 4 in 24 h, 7 in total -> ties mypy on the window and wins on the total,
    # although the name alone would put it after mypy.
    Invocation("ruff-check", 150 * M, True, 0.5),
    Invocation("ruff-check", 7 * H, True, 0.75),
    Invocation("ruff-check", 11 * H, True, 0.25),
    Invocation("ruff-check", 18 * H, False, None),
    Invocation("ruff-check", 2 * D, True, 0.5),
    Invocation("ruff-check", 2 * D + H, True, 1.0),
    Invocation("ruff-check", 4 * D, False, None),
    # mypy: 4 in 24 h, 4 in total.
    Invocation("mypy", 3 * H, True, 10.0),
    Invocation("mypy", 5 * H, False, None),
    Invocation("mypy", 9 * H, True, 12.0),
    Invocation("mypy", 15 * H, True, 8.0),
    # black and alpha-lint: 2 and 2 everywhere -> the name decides.
    Invocation("black", 2 * H, True, 1.5),
    Invocation("black", 10 * H, True, 2.5),
    Invocation("alpha-lint", 6 * H, False, None),
    Invocation("alpha-lint", 14 * H, True, 3.0),
    # old-skill: nothing in the last 24 h, still listed (last) with window counts of 0.
    Invocation("old-skill", 2 * D, True, 7.0),
    Invocation("old-skill", 3 * D, False, None),
    Invocation("old-skill", 5 * D, True, 9.0),
)

EXPECTED_ORDER = ["pytest-run", "ruff-check", "mypy", "alpha-lint", "black", "old-skill"]

TOP_SKILL_FIELDS = frozenset({
    "skill_name", "last_invocation_at",
    "invocation_count", "completed_count", "avg_duration",
    "total_invocations", "completion_rate", "avg_duration_seconds",
    "invocation_count_1h", "is_anomalous",
})

METRICS_RESPONSE_FIELDS = frozenset({
    "skill_name", "total_invocations", "completed_invocations", "completion_rate",
    "avg_duration_seconds", "last_invocation_at", "invocation_count_1h",
    "invocation_count_24h", "is_anomalous",
})

ANOMALY_FIELDS = frozenset({
    "skill_name", "anomaly_type", "baseline_value", "observed_value", "deviation_score",
    "detected_at",
})


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


def iso_ms(dt: datetime) -> str:
    """The protocol's timestamp form: `2026-11-22T10:00:00.123Z`."""
    dt = dt.astimezone(timezone.utc)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond // 1000:03d}Z"


def _mean(values: list[float]) -> float | None:
    return fmean(values) if values else None


@dataclass
class SeededDB:
    path: Path
    now: datetime
    rows: list[tuple[Invocation, str]] = field(default_factory=list)  # (invocation, invoked_at)
    expected_order: list[str] = field(default_factory=lambda: list(EXPECTED_ORDER))

    @property
    def skills(self) -> list[str]:
        return sorted({inv.skill for inv, _ in self.rows})

    def _rows(self, skill: str) -> list[tuple[Invocation, str]]:
        rows = [(inv, at) for inv, at in self.rows if inv.skill == skill]
        assert rows, f"{skill} is not in the seed"
        return rows

    def expected_entry(self, skill: str) -> dict[str, Any]:
        """The `top_skills` entry that the wire protocol (docs/realtime/WEBSOCKET_SERVER.md) asks for, computed from the seed."""
        rows = self._rows(skill)
        window = [inv for inv, _ in rows if inv.age < 24 * H]
        done_window = [inv.duration for inv in window if inv.completed]
        done_all = [inv.duration for inv, _ in rows if inv.completed]
        return {
            "skill_name": skill,
            "last_invocation_at": min(rows, key=lambda r: r[0].age)[1],
            "invocation_count": len(window),
            "completed_count": len(done_window),
            "avg_duration": _mean(done_window),
            "total_invocations": len(rows),
            "completion_rate": len(done_all) / len(rows),
            "avg_duration_seconds": _mean(done_all),
            "invocation_count_1h": sum(1 for inv, _ in rows if inv.age < H),
            "is_anomalous": False,
        }

    def expected_metrics(self, skill: str) -> dict[str, Any]:
        """The `metrics_response.data` that the wire protocol (docs/realtime/WEBSOCKET_SERVER.md) asks for, computed from the seed."""
        e = self.expected_entry(skill)
        return {
            "skill_name": skill,
            "total_invocations": e["total_invocations"],
            "completed_invocations": round(e["completion_rate"] * e["total_invocations"]),
            "completion_rate": e["completion_rate"],
            "avg_duration_seconds": e["avg_duration_seconds"],
            "last_invocation_at": e["last_invocation_at"],
            "invocation_count_1h": e["invocation_count_1h"],
            "invocation_count_24h": e["invocation_count"],
            "is_anomalous": False,
        }


def create_db(path: Path) -> Path:
    """A fully migrated (V1-V4), empty skills database at `path`."""
    from session_buddy.storage.migrations.base import MigrationManager

    path.parent.mkdir(parents=True, exist_ok=True)
    MigrationManager(path).migrate()
    return path


def store_invocation(
    path: Path,
    skill: str,
    invoked_at: str | datetime,
    *,
    completed: bool = True,
    duration: float | None = 1.0,
    session_id: str = "test-session",
) -> int:
    """Write one invocation the way session-buddy does, through SkillsStorage."""
    from session_buddy.storage import SkillsStorage

    with SkillsStorage(path) as storage:
        return storage.store_invocation(
            skill_name=skill,
            invoked_at=invoked_at,
            session_id=session_id,
            completed=completed,
            duration_seconds=duration if completed else None,
        )


def seed_db(path: Path, now: datetime | None = None, seed: tuple[Invocation, ...] = SEED) -> SeededDB:
    """Create and fill a DB with `seed`, ages taken relative to `now`."""
    from session_buddy.storage import SkillsStorage

    create_db(path)
    now = now or utc_now()
    now = now.replace(microsecond=now.microsecond // 1000 * 1000)
    db = SeededDB(path=path, now=now)
    with SkillsStorage(path) as storage:
        # Insert oldest first, like a real log; the server must not depend on it anyway.
        for inv in sorted(seed, key=lambda i: -i.age):
            invoked_at = iso_ms(now - inv.age)
            storage.store_invocation(
                skill_name=inv.skill,
                invoked_at=invoked_at,
                session_id="seed-session",
                completed=inv.completed,
                duration_seconds=inv.duration,
            )
            db.rows.append((inv, invoked_at))
    return db


def insert_anomaly(
    path: Path,
    skill: str,
    anomaly_type: str,
    baseline: float,
    observed: float,
    deviation: float,
    detected_at: datetime | str | None = None,
    resolved_at: datetime | str | None = None,
) -> str:
    """Write a row into skill_anomalies directly, as another tool would. Returns detected_at."""
    if detected_at is None:
        detected_at = utc_now()
    if isinstance(detected_at, datetime):
        detected_at = iso_ms(detected_at)
    if isinstance(resolved_at, datetime):
        resolved_at = iso_ms(resolved_at)
    con = sqlite3.connect(path, timeout=10)
    try:
        with con:
            con.execute(
                "INSERT INTO skill_anomalies (skill_name, detected_at, anomaly_type, baseline_value,"
                " observed_value, deviation_score, resolved_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (skill, detected_at, anomaly_type, baseline, observed, deviation, resolved_at),
            )
    finally:
        con.close()
    return detected_at


def insert_invocation_raw(
    path: Path,
    skill: str,
    invoked_at: str,
    *,
    completed: bool = True,
    duration: float | None = 1.0,
    session_id: str = "raw-session",
) -> int:
    """INSERT into skill_invocation with sqlite3, keeping `invoked_at` text exactly as given
    (other tools write other ISO 8601 forms). The V1 trigger maintains skill_metrics."""
    con = sqlite3.connect(path, timeout=10)
    try:
        with con:
            cur = con.execute(
                "INSERT INTO skill_invocation (skill_name, invoked_at, session_id, completed,"
                " duration_seconds, created_at) VALUES (?, ?, ?, ?, ?, ?)",
                (skill, invoked_at, session_id, completed, duration if completed else None,
                 iso_ms(utc_now())),
            )
            return int(cur.lastrowid)
    finally:
        con.close()
