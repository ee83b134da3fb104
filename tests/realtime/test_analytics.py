"""The live engine against a plain Python reference on the same DB, and the anomaly lifecycle."""

from __future__ import annotations

import asyncio
import math
import sqlite3
from datetime import datetime, timedelta, timezone
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from session_buddy.realtime import RealTimeMetricsServer
from session_buddy.storage import SkillsStorage

SKILLS = ["pytest-run", "ruff", "mypy", "caf\u00e9 \"q\""]


def parse(ts: str) -> datetime:
    return datetime.fromisoformat(ts.replace("Z", "+00:00"))


def reference(db: Path, now: datetime) -> dict[str, dict]:
    """The figures of the database rules (docs/realtime/WEBSOCKET_SERVER.md), computed in Python from the raw rows."""
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT skill_name, invoked_at, completed, duration_seconds FROM skill_invocation").fetchall()
    out: dict[str, dict] = {}
    for name, when, completed, duration in rows:
        t = datetime.fromisoformat(when)
        if t.tzinfo is None:
            t = t.replace(tzinfo=timezone.utc)
        r = out.setdefault(name, {"total": 0, "done": 0, "durs": [], "n24": 0, "c24": 0, "d24": [], "n1h": 0})
        r["total"] += 1
        r["done"] += bool(completed)
        if completed and duration is not None:
            r["durs"].append(duration)
        if now - timedelta(hours=24) <= t <= now:
            r["n24"] += 1
            r["c24"] += bool(completed)
            if completed and duration is not None:
                r["d24"].append(duration)
            if t >= now - timedelta(hours=1):
                r["n1h"] += 1
    return out


def mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None


def close(a: float | None, b: float | None) -> bool:
    return (a is None and b is None) or (a is not None and b is not None and math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-9))


invocation = st.tuples(
    st.sampled_from(SKILLS),
    st.integers(min_value=-30 * 3600, max_value=300),   # seconds from now: the last 30 h, a bit of future
    st.booleans(),
    st.one_of(st.none(), st.floats(min_value=0, max_value=500, allow_nan=False)),
    st.sampled_from(["Z", "+02:00", "", "-05:30"]),
)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(log=st.lists(invocation, min_size=1, max_size=60))
def test_engine_matches_a_reference(tmp_path_factory, log) -> None:
    db = tmp_path_factory.mktemp("prop") / "skills.db"
    base = datetime.now(timezone.utc)
    with SkillsStorage(db) as storage:
        for skill, offset, done, duration, zone in log:
            t = base + timedelta(seconds=offset)
            if zone in ("", "Z"):
                text = t.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + zone
            else:
                sign = 1 if zone[0] == "+" else -1
                delta = timedelta(hours=int(zone[1:3]), minutes=int(zone[4:6])) * sign
                text = (t + delta).replace(tzinfo=None).isoformat(timespec="milliseconds") + zone
            storage.store_invocation(skill, text, "s", completed=done, duration_seconds=duration)

    async def snapshot() -> dict:
        got: list[dict] = []
        server = RealTimeMetricsServer(port=0, db_path=db, update_interval=3600, top_n=100)
        server.register_metrics_subscriber(got.append)
        await server.start()
        try:
            await server.broadcast_metrics()
        finally:
            await server.stop()
        return got[-1]

    message = asyncio.run(snapshot())
    now = parse(message["timestamp"])
    expected = reference(db, now)
    entries = {e["skill_name"]: e for e in message["data"]["top_skills"]}
    assert set(entries) == set(expected)
    for name, r in expected.items():
        e = entries[name]
        assert e["total_invocations"] == r["total"]
        assert e["invocation_count"] == r["n24"], name
        assert e["completed_count"] == r["c24"]
        assert e["invocation_count_1h"] == r["n1h"]
        assert close(e["completion_rate"], r["done"] / r["total"])
        assert close(e["avg_duration"], mean(r["d24"]))
        assert close(e["avg_duration_seconds"], mean(r["durs"]))


async def test_anomaly_lifecycle_in_the_db(server_factory, tmp_path: Path) -> None:
    db = tmp_path / "own" / "skills.db"  # tmp_path/skills.db is the seeded fixture's
    now = datetime.now(timezone.utc)
    with SkillsStorage(db) as s:
        for i in range(10):  # baseline 9/10 completed
            s.store_invocation("mypy", now - timedelta(hours=3, minutes=i), "s", completed=i != 0)
        for i in range(4):   # current 1/4 completed
            s.store_invocation("mypy", now - timedelta(minutes=5 + i), "s", completed=i == 0)
    got: list[dict] = []
    server = await server_factory(db_path=db, update_interval=3600)
    server.register_metrics_subscriber(got.append)
    for _ in range(3):
        await server.broadcast_metrics()
    anomalies = got[-1]["data"]["anomalies"]
    z = (0.25 - 0.9) / math.sqrt(10 * 0.9 * 0.1 / 9)
    assert len(anomalies) == 1 and anomalies[0]["anomaly_type"] == "performance_drop"
    assert math.isclose(anomalies[0]["deviation_score"], z, rel_tol=1e-9)
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT anomaly_type, resolved_at, deviation_score FROM skill_anomalies").fetchall()
        cache = conn.execute("SELECT is_anomalous, anomaly_score FROM skill_metrics_cache WHERE skill_name='mypy'").fetchone()
    assert len(rows) == 1 and rows[0][0] == "performance_drop" and rows[0][1] is None  # one row across 3 ticks
    assert cache[0] == 1 and math.isclose(cache[1], abs(z), rel_tol=1e-9)

    with SkillsStorage(db) as s:  # enough completed runs to pull the current mean back up
        for i in range(30):
            s.store_invocation("mypy", now - timedelta(minutes=1), "s", completed=True)
    await server.broadcast_metrics()
    assert got[-1]["data"]["anomalies"] == []
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT resolved_at FROM skill_anomalies").fetchall()
        cache = conn.execute("SELECT is_anomalous, anomaly_score FROM skill_metrics_cache WHERE skill_name='mypy'").fetchone()
    assert len(rows) == 1 and rows[0][0] is not None and rows[0][0].endswith("Z")
    assert cache == (0, None)


async def test_record_anomalies_off_writes_nothing_and_other_tools_rows_merge(server_factory, tmp_path: Path) -> None:
    db = tmp_path / "own" / "skills.db"  # tmp_path/skills.db is the seeded fixture's
    now = datetime.now(timezone.utc)
    with SkillsStorage(db) as s:
        for i in range(6):
            s.store_invocation("ruff", now - timedelta(hours=2, minutes=i), "s", completed=True)
        for i in range(2):
            s.store_invocation("ruff", now - timedelta(minutes=i), "s", completed=False)
    stamp = now.isoformat(timespec="milliseconds").replace("+00:00", "Z")
    with sqlite3.connect(db) as conn:  # another tool's rows: one duplicates the engine's, one is new
        conn.execute("INSERT INTO skill_anomalies (skill_name, detected_at, anomaly_type, baseline_value,"
                     " observed_value, deviation_score) VALUES ('ruff', ?, 'performance_drop', 1, 0, -9)", (stamp,))
        conn.execute("INSERT INTO skill_anomalies (skill_name, detected_at, anomaly_type, baseline_value,"
                     " observed_value, deviation_score) VALUES ('black', ?, 'pattern_shift', 2, 9, 3.5)", (stamp,))
    got: list[dict] = []
    server = await server_factory(db_path=db, update_interval=3600, record_anomalies=False)
    server.register_metrics_subscriber(got.append)
    await server.broadcast_metrics()
    anomalies = {(a["skill_name"], a["anomaly_type"]): a for a in got[-1]["data"]["anomalies"]}
    assert set(anomalies) == {("ruff", "performance_drop"), ("black", "pattern_shift")}
    assert anomalies[("ruff", "performance_drop")]["deviation_score"] == -100.0  # the engine's own wins
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT COUNT(*) FROM skill_anomalies").fetchone()[0] == 2
        assert conn.execute("SELECT is_anomalous FROM skill_metrics_cache WHERE skill_name='ruff'").fetchone()[0] == 0
