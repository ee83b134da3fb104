"""/metrics carries session-buddy's own metric names, computed by the engine from a real DB.

Each test writes rows into a real SQLite file, lets the server tick, scrapes /metrics over HTTP and
reads it with prometheus_client's parser; prom_model computes what the rows should give.
"""

from __future__ import annotations

import asyncio
import math
import sqlite3
import urllib.request
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from prom_model import Row, expected, insert_rows, scrape_families, upstream_samples
from skills_seed import create_db, insert_anomaly, utc_now
from session_buddy.realtime.metrics_exporter import DURATION_BUCKETS

M = timedelta(minutes=1)
H = timedelta(hours=1)


def http_get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=30) as resp:
        assert resp.status == 200
        return resp.read().decode()


async def scrape(server: Any) -> str:
    await server.broadcast_metrics()  # returns once a tick read the rows written so far
    url = server.url.replace("ws://", "http://") + "/metrics"
    return await asyncio.get_running_loop().run_in_executor(None, http_get, url)


def startup_rows() -> list[Row]:
    now = utc_now()
    return [
        Row("pytest-run", now - 5 * M, True, 0.1, "execution"),      # on a bound: counted in le=0.1
        Row("pytest-run", now - 6 * M, True, 0.100001, "execution"),
        Row("pytest-run", now - 7 * M, False, 45.0, "execution"),
        Row("pytest-run", now - 3 * H, False, None, "execution"),    # no duration: counted, not observed
        Row("pytest-run", now - 2 * timedelta(days=3), True, 301.0, None),  # old, over every bound
        Row("pytest-run", now - 8 * M, True, 2.0, ""),                # empty phase: "unknown" too
        Row("ruff-check", now - 9 * M, True, 0.0, "setup"),
        Row("ruff-check", now - 10 * M, False, None, "setup"),
    ]


def assert_matches(text: str, rows: list[Row]) -> None:
    got = upstream_samples(text)
    want = expected(rows)
    assert got.keys() == want.keys(), sorted(got.keys() ^ want.keys())
    for key, value in want.items():
        assert got[key] == pytest.approx(value), key


async def test_startup_totals_then_new_rows(server_factory, tmp_path: Path) -> None:
    db = create_db(tmp_path / "prom" / "skills.db")
    rows = startup_rows()
    insert_rows(db, rows)
    server = await server_factory(db_path=db)

    text = await scrape(server)
    assert_matches(text, rows)  # the startup aggregate
    families = scrape_families(text)
    assert families["skill_invocations"].type == "counter"
    assert families["skill_duration_seconds"].type == "histogram"
    assert families["skill_completion_rate"].type == "gauge"
    assert families["active_sessions_total"].type == "gauge"
    les = [s.labels["le"] for s in families["skill_duration_seconds"].samples
           if s.name == "skill_duration_seconds_bucket" and s.labels["skill_name"] == "ruff-check"]
    assert les == [repr(b) for b in DURATION_BUCKETS] + ["+Inf"]  # session-buddy's buckets

    now = utc_now()
    more = [Row("pytest-run", now - M, True, 5.0, "execution"),
            Row("pytest-run", now - M, False, 600.0, "verification"),  # a new phase
            Row("mypy", now - 2 * M, True, 12.0, None),                # a new skill
            Row("ruff-check", now - 3 * H, True, 1.0, "setup")]        # out of time order
    insert_rows(db, more)
    assert_matches(await scrape(server), rows + more)  # the incremental path
    # A tick with nothing new changes nothing.
    assert_matches(await scrape(server), rows + more)


async def test_a_log_without_workflow_phase(server_factory, tmp_path: Path) -> None:
    """A pre-V3 log (no workflow_phase column): every invocation is in phase "unknown"."""
    db = tmp_path / "prom-v1.db"
    con = sqlite3.connect(db)
    con.execute("CREATE TABLE skill_invocation (id INTEGER PRIMARY KEY AUTOINCREMENT, skill_name TEXT,"
                " invoked_at TEXT, session_id TEXT, completed BOOLEAN, duration_seconds REAL)")
    con.commit()
    con.close()
    now = utc_now()
    rows = [Row("lint", now - M, True, 0.4, None), Row("lint", now - 2 * M, False, None, None)]
    insert_rows(db, rows, with_phase=False)
    server = await server_factory(db_path=db)
    assert_matches(await scrape(server), rows)
    more = [Row("lint", now, True, 3.0, None)]
    insert_rows(db, more, with_phase=False)
    assert_matches(await scrape(server), rows + more)


def active_sessions(text: str) -> float:
    [sample] = scrape_families(text)["active_sessions_total"].samples
    return sample.value


async def test_active_sessions_are_those_of_the_last_hour(server_factory, tmp_path: Path) -> None:
    db = create_db(tmp_path / "prom" / "skills.db")
    now = utc_now()
    insert_rows(db, [
        Row("a", now - 10 * M, session="recent-1"),
        Row("a", now - 20 * M, session="recent-1"),   # the same session twice
        Row("b", now - 30 * M, session="recent-2"),
        Row("a", now - 3 * H, session="idle"),         # last seen 3 h ago: not active
        Row("a", now - 2 * timedelta(days=2), session="old"),
        Row("a", "not a time", session="no-time"),     # cannot be aged: not counted
        Row("a", now - 5 * M, session=""),             # no session id
    ])
    server = await server_factory(db_path=db)
    assert active_sessions(await scrape(server)) == 2
    insert_rows(db, [Row("c", utc_now(), session="idle"), Row("c", utc_now(), session="new")])
    assert active_sessions(await scrape(server)) == 4
    # An old invocation arriving late does not make a session active.
    insert_rows(db, [Row("c", utc_now() - 5 * H, session="late")])
    assert active_sessions(await scrape(server)) == 4


def anomaly_counts(text: str) -> dict[tuple[str, str], float]:
    family = scrape_families(text).get("anomalies_detected")
    return {} if family is None else {
        (s.labels["anomaly_type"], s.labels["skill_name"]): s.value
        for s in family.samples if s.name == "anomalies_detected_total"}


async def test_anomalies_count_each_time_one_becomes_active(server_factory, tmp_path: Path) -> None:
    db = create_db(tmp_path / "prom" / "skills.db")
    insert_rows(db, [Row("pytest-run", utc_now() - M)])
    server = await server_factory(db_path=db)
    assert anomaly_counts(await scrape(server)) == {}

    insert_anomaly(db, "pytest-run", "performance_drop", 0.9, 0.2, -3.5)
    assert anomaly_counts(await scrape(server)) == {("performance_drop", "pytest-run"): 1}
    # Still active on the next ticks: not counted again.
    assert anomaly_counts(await scrape(server)) == {("performance_drop", "pytest-run"): 1}
    insert_anomaly(db, "ruff-check", "pattern_shift", 1.0, 4.0, 2.5)
    assert anomaly_counts(await scrape(server)) == {("performance_drop", "pytest-run"): 1,
                                                    ("pattern_shift", "ruff-check"): 1}
    with sqlite3.connect(db) as con:
        con.execute("UPDATE skill_anomalies SET resolved_at = ? WHERE skill_name = 'pytest-run'",
                    (utc_now().isoformat(),))
    assert anomaly_counts(await scrape(server))[("performance_drop", "pytest-run")] == 1  # a counter stays
    insert_anomaly(db, "pytest-run", "performance_drop", 0.9, 0.1, -4.0)
    assert anomaly_counts(await scrape(server)) == {("performance_drop", "pytest-run"): 2,
                                                    ("pattern_shift", "ruff-check"): 1}


async def test_the_engines_own_detection_is_counted(server_factory, tmp_path: Path) -> None:
    """A skill that always completed and starts failing: the engine's performance_drop is counted."""
    db = create_db(tmp_path / "prom" / "skills.db")
    now = utc_now()
    rows = [Row("deploy", now - (2 + i) * H, True, 1.0) for i in range(8)]
    rows += [Row("deploy", now - (5 + i) * M, False, None) for i in range(3)]
    insert_rows(db, rows)
    server = await server_factory(db_path=db)
    text = await scrape(server)
    assert anomaly_counts(text) == {("performance_drop", "deploy"): 1}
    assert anomaly_counts(await scrape(server)) == {("performance_drop", "deploy"): 1}


async def test_label_values_are_escaped(server_factory, tmp_path: Path) -> None:
    db = create_db(tmp_path / "prom" / "skills.db")
    now = utc_now()
    rows = [Row('quote"d', now - M, True, 1.0, 'ph"ase'),
            Row("back\\slash", now - M, False, 2.0, "a\\b"),
            Row("new\nline", now - M, True, None, "x\ny"),
            Row("ünïcödé ✓", now - M, True, 0.2, "phase ✓")]
    insert_rows(db, rows)
    server = await server_factory(db_path=db)
    assert_matches(await scrape(server), rows)  # parsed back to the very same names


async def test_cache_last_update_follows_db_reads(server_factory, tmp_path: Path) -> None:
    db = create_db(tmp_path / "prom" / "skills.db")
    server = await server_factory(db_path=db)
    before = utc_now().timestamp()
    text = await scrape(server)
    [sample] = scrape_families(text)["skill_metrics_cache_last_update"].samples
    assert before - 1 <= sample.value <= utc_now().timestamp() + 1
    assert math.isfinite(sample.value)


async def test_startup_with_many_groups_then_a_replaced_file(server_factory, tmp_path: Path) -> None:
    """A new file at the same path is read from scratch: its totals, not a sum with the old one's."""
    db = create_db(tmp_path / "prom" / "skills.db")
    now = utc_now()
    rows = [Row(f"skill-{i % 40}", now - (i % 90) * M, i % 3 != 0, (i % 17) * 7.5 if i % 5 else None,
                ("setup", "execution", None)[i % 3], f"s{i % 13}") for i in range(2000)]
    insert_rows(db, rows)
    server = await server_factory(db_path=db)
    text = await scrape(server)
    assert_matches(text, rows)
    assert active_sessions(text) == len({r.session for r in rows if r.invoked_at > now - H})

    replacement = create_db(tmp_path / "other" / "skills.db")
    other = [Row("fresh", utc_now(), True, 3.0, "execution", "z")]
    insert_rows(replacement, other)
    replacement.replace(db)
    text = await scrape(server)  # every tick checks the file's identity before reading
    assert_matches(text, other)
    assert active_sessions(text) == 1


async def test_an_infinite_duration_keeps_the_scrape_parseable(server_factory, tmp_path: Path) -> None:
    """SQLite stores 1e999 as +Inf: the sum is written as the text format's +Inf, not JSON's null."""
    db = create_db(tmp_path / "prom" / "skills.db")
    rows = [Row("odd", utc_now() - M, True, math.inf), Row("odd", utc_now() - M, True, 2.0)]
    insert_rows(db, rows)
    server = await server_factory(db_path=db)
    text = await scrape(server)
    assert 'skill_duration_seconds_sum{skill_name="odd",workflow_phase="execution"} +Inf' in text
    assert_matches(text, rows)
