"""The server and its SQLite database: creation, default path, live writes, old schemas,
timestamp forms, and skill names that look like SQL."""

from __future__ import annotations

import logging
import shutil
import sqlite3
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

import session_buddy.storage.migrations as migrations_pkg
from session_buddy.storage.migrations.base import MigrationManager

from protocol_checks import assert_entry_matches, assert_metrics_data_matches, assert_metrics_update_shape, top_names
from skills_seed import create_db, insert_invocation_raw, iso_ms, store_invocation, utc_now
from wsutil import recv_type, recv_update_where, recv_updates, request, wait_until

LOGGER = "session_buddy.realtime"


def _count(db: Path, sql: str) -> int:
    con = sqlite3.connect(db, timeout=10)
    try:
        return con.execute(sql).fetchone()[0]
    finally:
        con.close()


def _tables(db: Path) -> set[str]:
    con = sqlite3.connect(db, timeout=10)
    try:
        return {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type IN ('table','view')")}
    finally:
        con.close()


async def test_missing_db_is_created_with_migrations(server_factory, client_factory, tmp_path) -> None:
    db = tmp_path / "not" / "there" / "yet" / "skills.db"
    assert not db.parent.exists()
    server = await server_factory(db_path=db)
    assert db.is_file()
    assert _count(db, "SELECT COUNT(*) FROM skill_migrations") == 4
    assert {"skill_invocation", "skill_metrics", "skill_metrics_cache", "skill_anomalies",
            "session_skills", "v_realtime_skill_dashboard"} <= _tables(db)

    ws = await client_factory(server)
    update = await recv_type(ws, "metrics_update")
    assert_metrics_update_shape(update)
    assert update["data"]["top_skills"] == []
    assert update["data"]["anomalies"] == []


async def test_db_path_none_means_cwd_session_buddy(server_factory, client_factory, tmp_path,
                                                    monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    server = await server_factory(db_path=None, start=False)
    expected = Path.cwd() / ".session-buddy" / "skills.db"
    assert server.db_path == expected
    await server.start()
    assert expected.is_file()
    assert _count(expected, "SELECT COUNT(*) FROM skill_migrations") == 4

    ws = await client_factory(server)
    assert (await recv_type(ws, "metrics_update"))["data"]["top_skills"] == []
    store_invocation(expected, "from-cwd", iso_ms(utc_now()))
    update = await recv_update_where(ws, lambda u: top_names(u) == ["from-cwd"],
                                     what="the row written to ./.session-buddy/skills.db")
    assert update["data"]["top_skills"][0]["total_invocations"] == 1


async def test_rows_written_while_running_appear_in_the_next_update(server, client, seeded_db) -> None:
    await recv_type(client, "metrics_update")
    now = utc_now()
    store_invocation(seeded_db.path, "pytest-run", iso_ms(now - timedelta(minutes=1)),
                     completed=True, duration=2.0)
    fresh_at = iso_ms(now)
    store_invocation(seeded_db.path, "fresh-skill", fresh_at, completed=False)

    # Allow for one update already built before the write: it must show by the second.
    updates = await recv_updates(client, 2)
    latest = updates[-1]
    names = top_names(latest)
    assert names == ["pytest-run", "ruff-check", "mypy", "alpha-lint", "black", "fresh-skill",
                     "old-skill"], names
    entries = {e["skill_name"]: e for e in latest["data"]["top_skills"]}
    assert entries["pytest-run"]["invocation_count"] == 7
    assert entries["pytest-run"]["total_invocations"] == 9
    assert entries["pytest-run"]["invocation_count_1h"] == 2
    assert_entry_matches(entries["fresh-skill"], {
        "skill_name": "fresh-skill", "last_invocation_at": fresh_at, "invocation_count": 1,
        "completed_count": 0, "avg_duration": None, "total_invocations": 1,
        "completion_rate": 0.0, "avg_duration_seconds": None, "invocation_count_1h": 1,
    })

    reply = await request(client, {"type": "get_metrics", "skill_name": "fresh-skill"})
    assert reply["type"] == "metrics_response"
    assert_metrics_data_matches(reply["data"], {
        "skill_name": "fresh-skill", "total_invocations": 1, "completed_invocations": 0,
        "completion_rate": 0.0, "avg_duration_seconds": None, "last_invocation_at": fresh_at,
        "invocation_count_1h": 1, "invocation_count_24h": 1,
    })


async def test_pre_v4_database_is_served(server_factory, client_factory, tmp_path) -> None:
    source = Path(migrations_pkg.__file__).resolve().parent
    only_v1 = tmp_path / "v1-migrations"
    only_v1.mkdir()
    v1_files = sorted(source.glob("V1__*.sql"))
    assert v1_files, f"no V1 migration files in {source}"
    for f in v1_files:
        shutil.copy(f, only_v1 / f.name)
    db = tmp_path / "old" / "skills.db"
    db.parent.mkdir()
    MigrationManager(db, migration_dir=only_v1).migrate()
    assert "skill_anomalies" not in _tables(db)

    now = utc_now()
    insert_invocation_raw(db, "legacy-skill", iso_ms(now - timedelta(hours=2)), duration=3.0)
    insert_invocation_raw(db, "legacy-skill", iso_ms(now - timedelta(hours=3)), completed=False)

    server = await server_factory(db_path=db)
    ws = await client_factory(server)
    update = await recv_type(ws, "metrics_update")
    assert_metrics_update_shape(update)
    assert top_names(update) == ["legacy-skill"]
    entry = update["data"]["top_skills"][0]
    assert entry["invocation_count"] == 2
    assert entry["completed_count"] == 1
    assert entry["total_invocations"] == 2
    assert entry["completion_rate"] == pytest.approx(0.5)
    assert update["data"]["anomalies"] == []


def _iso(dt: datetime, *, fraction: bool = True, zone: str | None = "Z", offset_hours: float = 0) -> str:
    tz = timezone(timedelta(hours=offset_hours))
    local = dt.astimezone(tz)
    text = local.strftime("%Y-%m-%dT%H:%M:%S")
    if fraction:
        text += f".{local.microsecond:06d}"
    if zone == "Z":
        return text + "Z"
    if zone == "offset":
        sign = "-" if offset_hours < 0 else "+"
        minutes = int(abs(offset_hours) * 60)
        return text + f"{sign}{minutes // 60:02d}:{minutes % 60:02d}"
    return text  # no zone: taken as UTC


@pytest.mark.parametrize("when", ["before-start", "while-running"])
async def test_invoked_at_forms(server_factory, client_factory, tmp_path, caplog, when) -> None:
    caplog.set_level(logging.WARNING, logger=LOGGER)
    now = utc_now().replace(microsecond=123000)
    db = tmp_path / "forms" / "skills.db"
    create_db(db)
    latest = now - timedelta(minutes=30)
    rows = [
        _iso(now - timedelta(minutes=31), fraction=False),                 # Z, whole seconds: 1 h
        _iso(latest, zone="offset", offset_hours=-5),                      # -05:00: 1 h
        _iso(now - timedelta(hours=2), zone="offset", offset_hours=0),     # +00:00: 24 h
        _iso(now - timedelta(hours=5), zone=None),                         # no zone: 24 h
        _iso(now - timedelta(hours=25), zone="offset", offset_hours=5.5),  # +05:30: too old
        "not a timestamp",                                                 # totals only
    ]

    def insert_all() -> None:
        for text in rows:
            insert_invocation_raw(db, "forms", text, duration=1.0)

    if when == "before-start":
        insert_all()
    server = await server_factory(db_path=db)
    ws = await client_factory(server)
    if when == "while-running":
        await recv_type(ws, "metrics_update")
        insert_all()

    update = await recv_update_where(
        ws, lambda u: top_names(u) == ["forms"] and u["data"]["top_skills"][0]["total_invocations"] == 6,
        what="all six rows counted",
    )
    entry = update["data"]["top_skills"][0]
    assert entry["invocation_count"] == 4, "24 h window"
    assert entry["invocation_count_1h"] == 2, "1 h window (an offset was ignored?)"
    assert entry["last_invocation_at"] == iso_ms(latest)

    def bad_time_warnings() -> list[logging.LogRecord]:
        return [r for r in caplog.records if r.name.startswith(LOGGER) and r.levelno == logging.WARNING]

    await wait_until(bad_time_warnings, message="a warning about the unparseable invoked_at")
    count = len(bad_time_warnings())
    await recv_updates(ws, 5)
    assert len(bad_time_warnings()) == count, "the warning must be logged once, not every tick"


async def test_skill_names_are_data_not_sql(server, client, seeded_db) -> None:
    evil = "x'); DROP TABLE skill_invocation; --"
    quoted = 'he said "hi" \\ back\n\ttab'
    store_invocation(seeded_db.path, evil, iso_ms(utc_now()))
    store_invocation(seeded_db.path, quoted, iso_ms(utc_now()))
    update = await recv_update_where(client, lambda u: evil in top_names(u) and quoted in top_names(u),
                                     what="both odd names listed")
    assert_metrics_update_shape(update)

    for name in (evil, quoted):
        reply = await request(client, {"type": "get_metrics", "skill_name": name})
        assert reply["type"] == "metrics_response", reply
        assert reply["data"]["skill_name"] == name
    reply = await request(client, {"type": "subscribe", "skill": evil})
    assert reply["skill"] == evil
    assert top_names(await recv_type(client, "metrics_update")) == [evil]
    reply = await request(client, {"type": "get_metrics", "skill_name": "nope' OR '1'='1"})
    assert reply["code"] == "unknown_skill"
    assert _count(seeded_db.path, "SELECT COUNT(*) FROM skill_invocation") == len(seeded_db.rows) + 2
