"""An anomaly the server recorded is resolved once it no longer holds, even when the DB was
reloaded in between (the log shrank, or the file was replaced): it must not stay broadcast and
cached as anomalous until its row ages out an hour later."""

from __future__ import annotations

import os
import sqlite3
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from session_buddy.storage import SkillsStorage


def open_rows(db: Path) -> list[tuple[str, str | None]]:
    with sqlite3.connect(db) as conn:
        return conn.execute("SELECT anomaly_type, resolved_at FROM skill_anomalies").fetchall()


def cache_flag(db: Path) -> int:
    with sqlite3.connect(db) as conn:
        return conn.execute("SELECT is_anomalous FROM skill_metrics_cache WHERE skill_name='mypy'").fetchone()[0]


def drop_failing_runs(db: Path, first_failing_id: int) -> None:
    with sqlite3.connect(db) as conn:
        conn.execute("DELETE FROM skill_invocation WHERE id >= ?", (first_failing_id,))


@pytest.mark.parametrize("reload", ["log-shrinks", "file-replaced"])
async def test_an_anomaly_is_resolved_after_a_reload(server_factory, tmp_path: Path, reload: str) -> None:
    db = tmp_path / "own" / "skills.db"
    now = datetime.now(timezone.utc)
    with SkillsStorage(db) as s:
        for i in range(10):  # baseline: 9 of 10 completed
            s.store_invocation("mypy", now - timedelta(hours=3, minutes=i), "s", completed=i != 0)
        first_failing = None
        for i in range(4):   # the last hour: 1 of 4 completed -> performance_drop
            row = s.store_invocation("mypy", now - timedelta(minutes=5 + i), "s", completed=i == 0)
            first_failing = first_failing or row
    got: list[dict] = []
    server = await server_factory(db_path=db, update_interval=3600)
    server.register_metrics_subscriber(got.append)
    await server.broadcast_metrics()
    assert [a["anomaly_type"] for a in got[-1]["data"]["anomalies"]] == ["performance_drop"]
    assert open_rows(db) == [("performance_drop", None)] and cache_flag(db) == 1

    if reload == "log-shrinks":
        drop_failing_runs(db, first_failing)  # the newest id goes down: re-read from scratch
    else:
        copy = db.with_name("replacement.db")
        src, dst = sqlite3.connect(db), sqlite3.connect(copy)
        src.backup(dst)  # the anomaly row comes along, unresolved
        # A rollback journal, so that the old file's -wal cannot be taken for the new one's.
        dst.execute("PRAGMA journal_mode=DELETE")
        src.close()
        dst.close()
        drop_failing_runs(copy, first_failing)
        os.replace(copy, db)  # a new inode: re-read from scratch
    for _ in range(2):
        await server.broadcast_metrics()

    assert got[-1]["data"]["anomalies"] == []
    assert not any(s["is_anomalous"] for s in got[-1]["data"]["top_skills"])
    rows = open_rows(db)
    assert len(rows) == 1 and rows[0][1] is not None, rows
    assert cache_flag(db) == 0
