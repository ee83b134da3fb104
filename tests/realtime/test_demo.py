"""The --demo traffic generator on a real SQLite file."""

from __future__ import annotations

import sqlite3
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

from session_buddy.realtime.demo import PROFILES, DemoTraffic


def rows(db: Path, sql: str, *args: object) -> list[tuple]:
    with sqlite3.connect(db) as conn:
        return conn.execute(sql, args).fetchall()


def wait_for(predicate, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.05)


def test_backfill_stays_out_of_the_last_hour_and_live_rows_follow(tmp_path: Path) -> None:
    db = tmp_path / "skills.db"
    demo = DemoTraffic(db, drop_after=3600, seed=1)
    started = datetime.now(timezone.utc)
    demo.start()
    try:
        wait_for(lambda: demo.written > 0)  # the DB and its tables exist from here on
        wait_for(lambda: rows(db, "SELECT COUNT(*) FROM skill_invocation "
                                                  "WHERE invoked_at >= ?", started.isoformat())[0][0] >= 3)
    finally:
        demo.stop()
    hour_ago = (started - timedelta(hours=1)).isoformat()
    day_ago = (started - timedelta(hours=24, seconds=5)).isoformat()
    backfill = rows(db, "SELECT COUNT(*) FROM skill_invocation WHERE invoked_at < ?", started.isoformat())[0][0]
    assert backfill >= 200
    assert rows(db, "SELECT COUNT(*) FROM skill_invocation WHERE invoked_at >= ? AND invoked_at < ?",
                hour_ago, started.isoformat())[0][0] == 0
    assert rows(db, "SELECT COUNT(*) FROM skill_invocation WHERE invoked_at < ?", day_ago)[0][0] == 0
    names = {r[0] for r in rows(db, "SELECT DISTINCT skill_name FROM skill_invocation")}
    assert names == {p.name for p in PROFILES}
    for (when,) in rows(db, "SELECT invoked_at FROM skill_invocation"):
        assert when.endswith("Z") and len(when) == 24


def test_second_start_does_not_backfill_again(tmp_path: Path) -> None:
    db = tmp_path / "skills.db"
    for _ in range(2):
        demo = DemoTraffic(db, drop_after=3600, seed=2)
        demo.start()
        wait_for(lambda: demo.written > 0)
        demo.stop()
    history = rows(db, "SELECT COUNT(*) FROM skill_invocation WHERE invoked_at < ?",
                   (datetime.now(timezone.utc) - timedelta(minutes=5)).isoformat())[0][0]
    assert 200 <= history < 400, history  # one backfill, not two


def test_the_victim_fails_after_the_drop(tmp_path: Path) -> None:
    db = tmp_path / "skills.db"
    demo = DemoTraffic(db, drop_after=0.5, seed=3)
    started = datetime.now(timezone.utc) + timedelta(seconds=1)
    demo.start()
    try:
        wait_for(lambda: demo.written > 0)  # the DB and its tables exist from here on
        wait_for(lambda: rows(
            db, "SELECT COUNT(*) FROM skill_invocation WHERE skill_name='pytest-run' AND invoked_at >= ?",
            started.isoformat())[0][0] >= 8, timeout=40)
    finally:
        t0 = time.monotonic()
        demo.stop()
        assert time.monotonic() - t0 < 2
    done, total = rows(db, "SELECT SUM(completed), COUNT(*) FROM skill_invocation "
                           "WHERE skill_name='pytest-run' AND invoked_at >= ?", started.isoformat())[0]
    assert done / total < 0.4
