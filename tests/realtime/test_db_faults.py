"""The DB failing under a running server: locked, deleted, replaced by garbage, without V4 tables."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import shutil
import sqlite3
import threading
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

from session_buddy.storage import MigrationManager, SkillsStorage
from session_buddy.storage.migrations.base import MIGRATION_DIR

from wsutil import recv_type

LOGGER = "session_buddy.realtime"


async def next_update(ws, pred=lambda m: True, timeout: float = 15.0) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        msg = await recv_type(ws, "metrics_update", max(0.1, deadline - time.monotonic()))
        if pred(msg):
            return msg


def records(caplog, level: int, text: str) -> int:
    return sum(1 for r in caplog.records if r.name.startswith(LOGGER) and r.levelno == level and text in r.getMessage())


async def test_exclusive_lock_pings_stay_fast_and_updates_go_stale(server_factory, client_factory, seeded_db, caplog) -> None:
    caplog.set_level(logging.INFO, logger=LOGGER)
    # WAL lets readers through any writer; a rollback-journal DB is the one a writer can lock.
    with sqlite3.connect(seeded_db.path) as conn:
        conn.execute("PRAGMA journal_mode=DELETE")
    server = await server_factory(update_interval=0.2)
    ws = await client_factory(server)
    await next_update(ws, lambda m: m["data"]["top_skills"] and not m["data"]["stale"])
    locked, release = threading.Event(), threading.Event()

    def hold_lock() -> None:
        conn = sqlite3.connect(seeded_db.path, isolation_level=None, timeout=10)
        conn.execute("BEGIN EXCLUSIVE")
        locked.set()
        release.wait(10)  # about 3 s: the test releases it after its pings
        conn.execute("COMMIT")
        conn.close()

    holder = threading.Thread(target=hold_lock)
    holder.start()
    try:
        await asyncio.get_running_loop().run_in_executor(None, locked.wait, 10)
        stale = await next_update(ws, lambda m: m["data"]["stale"])
        assert stale["data"]["top_skills"], "the last good figures are still served"
        worst = 0.0
        for _ in range(10):
            started = time.perf_counter()
            await ws.send(json.dumps({"type": "ping"}))
            await recv_type(ws, "pong", 5)
            worst = max(worst, time.perf_counter() - started)
        assert worst < 0.1, f"a ping took {worst * 1000:.0f} ms while the DB was locked"
    finally:
        release.set()
        holder.join()
    await next_update(ws, lambda m: not m["data"]["stale"])
    assert records(caplog, logging.ERROR, "database unreadable") == 1
    assert records(caplog, logging.INFO, "readable again") == 1


async def test_deleted_then_corrupt_file(server_factory, client_factory, tmp_path, caplog) -> None:
    caplog.set_level(logging.INFO, logger=LOGGER)
    db = tmp_path / "faults" / "skills.db"
    with SkillsStorage(db) as s:
        s.store_invocation("ruff", datetime.now(timezone.utc), "s", completed=True)
    server = await server_factory(db_path=db)
    ws = await client_factory(server)
    await next_update(ws, lambda m: m["data"]["top_skills"])
    os.remove(db)
    gone = await next_update(ws, lambda m: m["data"]["stale"])
    assert [s["skill_name"] for s in gone["data"]["top_skills"]] == ["ruff"]
    with SkillsStorage(db) as s:  # a new, different database at the same path
        s.store_invocation("mypy", datetime.now(timezone.utc), "s", completed=True)
    fresh = await next_update(ws, lambda m: not m["data"]["stale"])
    assert [s["skill_name"] for s in fresh["data"]["top_skills"]] == ["mypy"]
    (tmp_path / "garbage").write_bytes(b"not a database" * 500)
    os.replace(tmp_path / "garbage", db)
    corrupt = await next_update(ws, lambda m: m["data"]["stale"])
    assert [s["skill_name"] for s in corrupt["data"]["top_skills"]] == ["mypy"]
    await ws.send(json.dumps({"type": "ping"}))
    await recv_type(ws, "pong", 5)
    assert records(caplog, logging.ERROR, "database unreadable") == 2
    assert records(caplog, logging.INFO, "readable again") == 1


async def test_pre_v4_db_still_gets_anomalies(server_factory, client_factory, tmp_path, caplog) -> None:
    caplog.set_level(logging.INFO, logger=LOGGER)
    v3 = tmp_path / "v3"
    v3.mkdir()
    for path in MIGRATION_DIR.glob("V[123]__*.sql"):
        shutil.copy(path, v3)
    db = tmp_path / "old.db"
    MigrationManager(db, migration_dir=v3).migrate()
    now = datetime.now(timezone.utc)
    with sqlite3.connect(db) as conn:
        rows = [("pytest-run", (now - timedelta(hours=3, minutes=i)).isoformat(), "s", 1) for i in range(10)]
        rows += [("pytest-run", (now - timedelta(minutes=5 + i)).isoformat(), "s", 0) for i in range(3)]
        conn.executemany("INSERT INTO skill_invocation (skill_name, invoked_at, session_id, completed)"
                         " VALUES (?, ?, ?, ?)", rows)
    server = await server_factory(db_path=db)
    ws = await client_factory(server)
    msg = await next_update(ws, lambda m: m["data"]["anomalies"])
    anomaly = msg["data"]["anomalies"][0]
    assert anomaly["skill_name"] == "pytest-run" and anomaly["anomaly_type"] == "performance_drop"
    assert anomaly["deviation_score"] == -100.0  # (0 - 1) / the 0.01 floor
    assert msg["data"]["stale"] is False
    await next_update(ws)
    assert records(caplog, logging.WARNING, "pre-V4") == 1
    with sqlite3.connect(db) as conn:
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert "skill_anomalies" not in tables
