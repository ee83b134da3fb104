"""SkillsStorage on real SQLite files: writes, the aggregate triggers, reads, argument checks."""

from __future__ import annotations

import sqlite3
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from session_buddy.storage import SkillsStorage


@pytest.fixture
def storage(tmp_path: Path):
    with SkillsStorage(tmp_path / "skills.db") as s:
        yield s


def test_trigger_maintains_skill_metrics(storage: SkillsStorage) -> None:
    t = datetime(2026, 2, 10, 12, 0, tzinfo=timezone.utc)
    storage.store_invocation("pytest-run", t, "s1", completed=True, duration_seconds=2.0, workflow_path="quick")
    storage.store_invocation("pytest-run", t + timedelta(minutes=1), "s1", completed=True, duration_seconds=4.0,
                             workflow_path="quick")
    storage.store_invocation("pytest-run", t + timedelta(minutes=2), "s2", completed=False, error_type="timeout")
    m = storage.get_metrics("pytest-run")
    assert m is not None
    assert (m["total_invocations"], m["completed_invocations"], m["abandoned_invocations"]) == (3, 2, 1)
    assert m["total_duration_seconds"] == pytest.approx(6.0)
    assert m["avg_duration_seconds"] == pytest.approx(3.0)       # completed only
    assert m["completion_rate"] == pytest.approx(100 * 2 / 3)   # session-buddy stores a percentage
    assert m["first_invoked"] == "2026-02-10T12:00:00.000Z"
    assert m["last_invoked"] == "2026-02-10T12:02:00.000Z"
    assert m["workflow_paths"] == '{"quick":2}'
    assert m["common_errors"] == '{"timeout":1}'


def test_store_returns_increasing_ids_and_keeps_strings_as_given(storage: SkillsStorage) -> None:
    a = storage.store_invocation("ruff", "2026-02-10T12:00:00+01:00", "s")
    b = storage.store_invocation("ruff", "2026-02-10 12:00:00", "s", alternatives_considered=["mypy", "black"])
    assert b == a + 1
    with sqlite3.connect(storage.db_path) as conn:
        rows = conn.execute("SELECT invoked_at, alternatives_considered FROM skill_invocation ORDER BY id").fetchall()
    assert rows == [("2026-02-10T12:00:00+01:00", None), ("2026-02-10 12:00:00", '["mypy", "black"]')]


def test_skill_names_are_data_not_sql(storage: SkillsStorage) -> None:
    hostile = "x'); DROP TABLE skill_invocation; --\"quoted\""
    storage.store_invocation(hostile, "2026-02-10T12:00:00Z", "s", completed=True, error_type='a"b')
    assert storage.get_metrics(hostile)["total_invocations"] == 1
    assert storage.get_top_skills(5)[0]["skill_name"] == hostile


def test_fts_stays_in_sync(storage: SkillsStorage) -> None:
    storage.store_invocation("mypy", "2026-02-10T12:00:00Z", "s", user_query="type errors in the parser")
    storage.store_invocation("ruff", "2026-02-10T12:00:00Z", "s", user_query="lint the tests")
    with sqlite3.connect(storage.db_path) as conn:
        hits = conn.execute(
            "SELECT skill_name FROM skill_invocation WHERE id IN "
            "(SELECT rowid FROM skill_invocation_fts WHERE skill_invocation_fts MATCH 'parser')"
        ).fetchall()
    assert hits == [("mypy",)]


def test_top_skills_order_and_limit(storage: SkillsStorage) -> None:
    for name, n in (("b", 2), ("a", 2), ("c", 5), ("d", 1)):
        for _ in range(n):
            storage.store_invocation(name, "2026-02-10T12:00:00Z", "s")
    assert [r["skill_name"] for r in storage.get_top_skills(3)] == ["c", "a", "b"]
    assert storage.get_top_skills(0) == []
    assert storage.get_metrics("never-used") is None


@pytest.mark.parametrize(
    "kwargs,exc",
    [
        ({"skill_name": 5}, TypeError),
        ({"skill_name": ""}, ValueError),
        ({"session_id": None}, TypeError),
        ({"invoked_at": 12345}, TypeError),
        ({"duration_seconds": -1.0}, ValueError),
        ({"duration_seconds": float("nan")}, ValueError),
        ({"duration_seconds": "3"}, TypeError),
        ({"selection_rank": 1.5}, TypeError),
        ({"alternatives_considered": 7}, TypeError),
        ({"embedding": "not bytes"}, TypeError),
    ],
)
def test_invalid_arguments_raise(storage: SkillsStorage, kwargs: dict, exc: type[Exception]) -> None:
    args = {"skill_name": "ruff", "invoked_at": "2026-02-10T12:00:00Z", "session_id": "s"}
    args.update(kwargs)
    with pytest.raises(exc):
        storage.store_invocation(**args)


def test_closed_storage_raises(tmp_path: Path) -> None:
    storage = SkillsStorage(tmp_path / "skills.db")
    storage.close()
    storage.close()  # idempotent
    with pytest.raises(sqlite3.ProgrammingError, match="closed"):
        storage.get_top_skills()


def test_wal_mode_is_enabled(storage: SkillsStorage) -> None:
    with sqlite3.connect(storage.db_path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
