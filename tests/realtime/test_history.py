"""get_history (docs/realtime/WEBSOCKET_SERVER.md, "History"): buckets aligned to the step in
UTC, oldest first, empty ones included, equal to counts computed here from the rows written to
the real SQLite file, at bucket edges to the millisecond, with rows written out of time order,
both read at startup and ingested while running; and its errors."""

from __future__ import annotations

import math
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from websockets.asyncio.server import serve

from protocol_checks import assert_error
from skills_seed import create_db, insert_invocation_raw, iso_ms
from wsutil import TS_RE, open_client, parse_ts, request, wait_until

# (skill, seconds before the reference minute, completed, duration): edges of 60 s and 10 s
# buckets, written in this (shuffled) order.
EDGE_ROWS = [
    ("alpha", 0.0, True, 2.0),      # first ms of a bucket
    ("alpha", 0.001, True, 4.0),    # last ms of the bucket before
    ("alpha", 60.0, False, None),   # first ms of that one (60 s steps)
    ("beta", 59.999, True, 8.0),    # still the bucket before that
    ("alpha", 3599.0, True, 1.5),
    ("beta", 10.0, True, None),     # completed without a duration
    ("alpha", 0.5, True, 3.0),
    ("beta", 7200.0, True, 5.0),    # 2 h back: only in a longer window
    ("alpha", 30.0, False, None),
]


def write_rows(db: Any, reference: datetime, rows: list[tuple[str, float, bool, float | None]]) -> list[tuple[str, datetime, bool, float | None]]:
    written = []
    for skill, back, completed, duration in rows:
        at = reference - timedelta(seconds=back)
        insert_invocation_raw(db, skill, iso_ms(at), completed=completed, duration=duration)
        written.append((skill, at, completed, duration))
    return written


def expected_points(rows: list[tuple[str, datetime, bool, float | None]], skill: str | None, points: list[dict[str, Any]], step: int) -> list[dict[str, Any]]:
    """The buckets of `points` (their t values) computed from the rows alone."""
    out = []
    for p in points:
        start = parse_ts(p["t"])
        end = start + timedelta(seconds=step)
        inside = [r for r in rows if (skill is None or r[0] == skill) and start <= r[1] < end]
        durations = [r[3] for r in inside if r[2] and r[3] is not None]
        out.append({
            "t": p["t"],
            "invocation_count": len(inside),
            "completed_count": sum(1 for r in inside if r[2]),
            "avg_duration": sum(durations) / len(durations) if durations else None,
        })
    return out


def assert_points(points: list[dict[str, Any]], expected: list[dict[str, Any]]) -> None:
    assert len(points) == len(expected)
    for got, want in zip(points, expected):
        assert set(got) == {"t", "invocation_count", "completed_count", "avg_duration"}, got
        assert (got["t"], got["invocation_count"], got["completed_count"]) == (
            want["t"], want["invocation_count"], want["completed_count"]), (got, want)
        if want["avg_duration"] is None:
            assert got["avg_duration"] is None, (got, want)
        else:
            assert got["avg_duration"] == pytest.approx(want["avg_duration"], rel=1e-9), (got, want)


def assert_aligned(reply: dict[str, Any], window: int, step: int) -> None:
    points = reply["points"]
    assert len(points) == math.ceil(window / step)
    starts = [parse_ts(p["t"]) for p in points]
    assert all(TS_RE.match(p["t"]) for p in points)
    assert all(int(t.timestamp()) % step == 0 and t.microsecond == 0 for t in starts)
    assert starts == sorted(starts) and all((b - a).total_seconds() == step for a, b in zip(starts, starts[1:]))
    now = datetime.now(timezone.utc)
    assert starts[-1] <= now < starts[-1] + timedelta(seconds=step + 5)  # the last holds now


def reference_minute() -> datetime:
    """A whole minute at least 90 s ago, so that every edge row is in the past."""
    now = datetime.now(timezone.utc) - timedelta(seconds=90)
    return now.replace(second=0, microsecond=0)


async def get_history(ws: Any, **fields: Any) -> dict[str, Any]:
    reply = await request(ws, {"type": "get_history", **fields})
    if reply["type"] == "history_response":
        assert reply["skill_name"] == fields.get("skill_name")
        assert set(reply) == {"type", "skill_name", "window", "step", "points", "timestamp"}
    return reply


@pytest.mark.parametrize("when", ["before start", "while running"])
async def test_buckets_equal_counts_from_the_rows(server_factory, client_factory, tmp_path, when) -> None:
    db = create_db(tmp_path / "h" / "skills.db")
    ref = reference_minute()
    rows: list[Any] = []
    if when == "before start":
        rows = write_rows(db, ref, EDGE_ROWS)
    server = await server_factory(db_path=db, update_interval=3600)
    if when == "while running":
        rows = write_rows(db, ref, EDGE_ROWS)
        await server.broadcast_metrics()  # the tick that ingests them
    ws = await client_factory(server)
    for skill in ("alpha", "beta", None):
        for window, step in ((3600, 60), (600, 10), (10800, 3600), (86400, 60), (95, 30)):
            reply = await get_history(ws, skill_name=skill, window=window, step=step)
            assert reply["type"] == "history_response", reply
            assert (reply["window"], reply["step"]) == (window, step)
            assert_aligned(reply, window, step)
            assert_points(reply["points"], expected_points(rows, skill, reply["points"], step))
    # The edge rows really are split across buckets, so the comparison above can fail: at 10 s,
    # 12:00:00.000 | 11:59:59.999 and 11:59:59.500 | 11:59:30.000 | 11:59:00.000.
    reply = await get_history(ws, skill_name="alpha", window=600, step=10)
    counts = [p["invocation_count"] for p in reply["points"] if p["invocation_count"]]
    assert counts == [1, 1, 2, 1], counts


async def test_defaults_and_the_all_skills_form(server_factory, client_factory, tmp_path) -> None:
    db = create_db(tmp_path / "h" / "skills.db")
    rows = write_rows(db, reference_minute(), EDGE_ROWS)
    server = await server_factory(db_path=db, update_interval=3600)
    ws = await client_factory(server)
    reply = await get_history(ws)  # skill_name absent: all skills; window 3600, step 60
    assert (reply["window"], reply["step"], len(reply["points"])) == (3600, 60, 60)
    assert_points(reply["points"], expected_points(rows, None, reply["points"], 60))
    reply = await get_history(ws, skill_name=None, skill=None, step=600)
    assert (reply["window"], len(reply["points"])) == (3600, 6)


@pytest.mark.parametrize("fields", [
    {"window": 0}, {"window": 86401}, {"window": -60}, {"window": 3600.5}, {"window": "3600"},
    {"step": 5}, {"step": 15}, {"step": 3601}, {"step": None}, {"window": 86400, "step": 50},
    {"skill_name": 3}, {"skill": "a", "skill_name": "b"},
])
async def test_bad_window_or_step_is_invalid_request(client, fields) -> None:
    assert_error(await get_history(client, **fields), "invalid_request", "get_history")


async def test_a_skill_without_data_is_unknown(client) -> None:
    reply = await get_history(client, skill_name="never-ran")
    assert_error(reply, "unknown_skill", "get_history")
    assert reply["message"] == "Invalid skill name: never-ran"
    # A seeded skill is known, with or without rows in the window.
    assert (await get_history(client, skill_name="mypy", window=60, step=60))["type"] == "history_response"


async def test_a_day_at_one_minute_is_one_reply(server_factory, client_factory, tmp_path) -> None:
    """1440 points are larger than the reply queue's 64 KiB bound: one such reply still passes."""
    db = create_db(tmp_path / "h" / "skills.db")
    write_rows(db, reference_minute(), EDGE_ROWS)
    server = await server_factory(db_path=db, update_interval=3600)
    ws = await client_factory(server)
    reply = await get_history(ws, skill_name="alpha", window=86400, step=60)
    assert len(reply["points"]) == 1440
    assert sum(p["invocation_count"] for p in reply["points"]) == 6
    assert (await request(ws, {"type": "ping"}))["type"] == "pong"


async def test_in_process_clients_get_history_too(server_factory, tmp_path) -> None:
    db = create_db(tmp_path / "h" / "skills.db")
    rows = write_rows(db, reference_minute(), EDGE_ROWS)
    server = await server_factory(db_path=db, update_interval=3600)
    async with serve(server.client_handler, "127.0.0.1", 0) as app:
        ws, _ = await open_client(f"ws://127.0.0.1:{app.sockets[0].getsockname()[1]}")
        reply = await get_history(ws, skill_name="beta", window=10800, step=60)
        assert_points(reply["points"], expected_points(rows, "beta", reply["points"], 60))
        assert sum(p["invocation_count"] for p in reply["points"]) == 3
        assert_error(await get_history(ws, step=7), "invalid_request", "get_history")
        await ws.close()
