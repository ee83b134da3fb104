"""Broadcasting: seq ordering across clients, per-skill filtering of entries and anomalies,
unsubscribe/subscribe, pacing, and anomalies written by other tools."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from datetime import timedelta

import pytest

from session_buddy.realtime import NetworkClient

from protocol_checks import assert_anomaly_shape, assert_entry_matches, assert_metrics_update_shape, top_names
from skills_seed import insert_anomaly, iso_ms, store_invocation, utc_now
from wsutil import parse_ts, recv_reply, recv_type, recv_update_where, recv_updates, request, wait_until


def _kinds(update: dict) -> list[tuple[str, str]]:
    return [(a["skill_name"], a["anomaly_type"]) for a in update["data"]["anomalies"]]


def _assert_anomaly(anomaly: dict, skill: str, type_: str, baseline: float, observed: float,
                    deviation: float, detected_at: str) -> None:
    assert_anomaly_shape(anomaly)
    assert anomaly["skill_name"] == skill
    assert anomaly["anomaly_type"] == type_
    assert anomaly["baseline_value"] == pytest.approx(baseline, abs=1e-6)
    assert anomaly["observed_value"] == pytest.approx(observed, abs=1e-6)
    assert anomaly["deviation_score"] == pytest.approx(deviation, abs=1e-6)
    assert anomaly["detected_at"] == detected_at


async def test_every_client_sees_increasing_seq_and_identical_snapshots(server, client_factory,
                                                                        seeded_db) -> None:
    clients = await asyncio.gather(*(client_factory(server) for _ in range(4)))
    batches = await asyncio.gather(*(recv_updates(ws, 5) for ws in clients))
    by_seq: dict[int, dict] = {}
    for updates in batches:
        seqs = [u["seq"] for u in updates]
        assert seqs == sorted(set(seqs)), f"seq must strictly increase: {seqs}"
        stamps = [parse_ts(u["timestamp"]) for u in updates]
        assert stamps == sorted(stamps), "timestamps went backwards"
        for update in updates:
            assert_metrics_update_shape(update)
            assert top_names(update) == seeded_db.expected_order
            # One server-wide counter: the same seq means the same snapshot for everybody.
            if update["seq"] in by_seq:
                assert by_seq[update["seq"]] == update
            else:
                by_seq[update["seq"]] = update
    all_seqs = [set(u["seq"] for u in updates) for updates in batches]
    assert set.intersection(*all_seqs), f"clients saw disjoint snapshots: {all_seqs}"


async def test_updates_follow_the_interval(server_factory, client_factory) -> None:
    server = await server_factory(update_interval=0.25)
    ws = await client_factory(server)
    await recv_type(ws, "metrics_update")
    started = time.monotonic()
    updates = await recv_updates(ws, 6)
    took = time.monotonic() - started
    # Six updates need about 1.25-1.5 s; far less means the server floods its clients.
    assert took >= 1.0, f"6 updates in {took:.2f} s at a 0.25 s interval"
    assert took < 8.0, f"6 updates took {took:.2f} s at a 0.25 s interval"
    span = (parse_ts(updates[-1]["timestamp"]) - parse_ts(updates[0]["timestamp"])).total_seconds()
    assert 0.9 <= span <= 7.0, f"timestamps span {span:.2f} s over 5 intervals of 0.25 s"


async def test_skill_subscriber_gets_only_its_skill_and_its_anomalies(server_factory, client_factory,
                                                                      seeded_db) -> None:
    server = await server_factory(top_n=2)
    everyone = await client_factory(server)
    watcher = await client_factory(server)  # black ranks 5th: outside the global top 2
    reply = await request(watcher, {"type": "subscribe", "skill_name": "black"})
    assert reply["type"] == "subscription_confirmed"

    now = utc_now()
    db = seeded_db.path
    # Rows that must stay out go in first, so they are committed before the last visible one.
    insert_anomaly(db, "ruff-check", "performance_spike", 0.2, 0.9, 4.0, now - timedelta(hours=2))
    insert_anomaly(db, "alpha-lint", "performance_drop", 0.9, 0.1, -5.0, now, resolved_at=now)
    insert_anomaly(db, "mypy", "performance_drop", 0.8, 0.3, -2.8, now - timedelta(seconds=30))
    insert_anomaly(db, "mypy", "performance_drop", 0.8, 0.3, -2.8, now)  # same (skill, type)
    mypy_at = insert_anomaly(db, "mypy", "pattern_shift", 10.0, 31.0, 3.5, now)
    black_at = insert_anomaly(db, "black", "performance_drop", 0.95, 0.40, -2.5, now)

    full = await recv_update_where(everyone, lambda u: len(u["data"]["anomalies"]) >= 3,
                                   what="an update with the inserted anomalies")
    assert_metrics_update_shape(full)
    assert top_names(full) == seeded_db.expected_order[:2]
    # Sorted by |deviation_score|; de-duplicated; old and resolved rows left out.
    assert _kinds(full) == [("mypy", "pattern_shift"), ("mypy", "performance_drop"),
                            ("black", "performance_drop")]
    _assert_anomaly(full["data"]["anomalies"][0], "mypy", "pattern_shift", 10.0, 31.0, 3.5, mypy_at)

    mine = await recv_update_where(watcher, lambda u: u["data"]["anomalies"] != [],
                                   what="the watcher's anomaly")
    for update in [mine, *await recv_updates(watcher, 2)]:
        assert_metrics_update_shape(update)
        assert top_names(update) == ["black"]
        assert_entry_matches(update["data"]["top_skills"][0],
                             {k: v for k, v in seeded_db.expected_entry("black").items()
                              if k != "is_anomalous"})
        assert len(update["data"]["anomalies"]) == 1
        _assert_anomaly(update["data"]["anomalies"][0], "black", "performance_drop",
                        0.95, 0.40, -2.5, black_at)


async def test_resolved_anomaly_leaves_the_broadcast(server, client, seeded_db) -> None:
    detected = insert_anomaly(seeded_db.path, "mypy", "performance_drop", 0.9, 0.2, -3.0)
    await recv_update_where(client, lambda u: _kinds(u) == [("mypy", "performance_drop")],
                            what="the inserted anomaly")
    con = sqlite3.connect(seeded_db.path, timeout=10)
    try:
        with con:
            con.execute("UPDATE skill_anomalies SET resolved_at = ? WHERE detected_at = ?",
                        (iso_ms(utc_now()), detected))
    finally:
        con.close()
    await recv_update_where(client, lambda u: u["data"]["anomalies"] == [],
                            what="an update without the resolved anomaly")


async def test_unsubscribe_stops_updates_and_subscribe_resumes(server, client_factory, seeded_db) -> None:
    control = await client_factory(server)
    ws = await client_factory(server)
    last = (await recv_type(ws, "metrics_update"))["seq"]

    reply = await request(ws, {"type": "unsubscribe"})
    assert reply["type"] == "unsubscribed"
    await wait_until(
        lambda: any(isinstance(c, NetworkClient) and not c.subscribed for c in server.clients),
        message="the client listed as unsubscribed",
    )

    # Three more snapshots go out to the control client...
    first = (await recv_type(control, "metrics_update"))["seq"]
    await recv_update_where(control, lambda u: u["seq"] >= first + 2, what="three more snapshots")
    # ...while the unsubscribed client gets nothing but the reply to its ping.
    await ws.send('{"type": "ping"}')
    msg = await recv_reply(ws)
    assert msg["type"] == "pong", f"expected only a pong after unsubscribe, got {msg}"
    try:
        extra = await asyncio.wait_for(ws.recv(), 0.6)  # 3 intervals of 0.2 s
    except (asyncio.TimeoutError, TimeoutError):
        extra = None
    assert extra is None, f"a message arrived after unsubscribe: {extra}"

    # Subscribing again resumes, for one skill...
    reply = await request(ws, {"type": "subscribe", "skill": "mypy"})
    assert reply["type"] == "subscription_confirmed"
    update = await recv_type(ws, "metrics_update")
    assert update["seq"] > last
    assert top_names(update) == ["mypy"]
    # ...or for all of them.
    await request(ws, {"type": "subscribe"})
    assert top_names(await recv_type(ws, "metrics_update")) == seeded_db.expected_order


async def test_skill_subscriber_sees_its_first_invocation_arrive(server, client, seeded_db) -> None:
    await request(client, {"type": "subscribe", "skill_name": "newcomer"})
    assert (await recv_type(client, "metrics_update"))["data"]["top_skills"] == []
    invoked_at = iso_ms(utc_now() - timedelta(minutes=5))
    store_invocation(seeded_db.path, "newcomer", invoked_at, completed=True, duration=4.0)
    update = await recv_update_where(client, lambda u: u["data"]["top_skills"] != [],
                                     what="the newcomer's entry")
    assert_entry_matches(update["data"]["top_skills"][0], {
        "skill_name": "newcomer", "last_invocation_at": invoked_at, "invocation_count": 1,
        "completed_count": 1, "avg_duration": 4.0, "total_invocations": 1,
        "completion_rate": 1.0, "avg_duration_seconds": 4.0, "invocation_count_1h": 1,
        "is_anomalous": False,
    })


async def test_hundreds_of_clients_each_see_every_update(server_factory, client_factory) -> None:
    """Fan-out at some scale, mixing the two write paths: plain clients are written to straight
    from the tick, compressed ones through lws's writable callback.  A client that reads has
    room in its socket, so nothing may be conflated: every client sees consecutive seqs."""
    server = await server_factory(update_interval=0.5, max_clients=250)
    plain = [await client_factory(server, compression=None) for _ in range(150)]
    deflate = [await client_factory(server) for _ in range(50)]  # websockets offers deflate
    assert all(ws.response.headers.get("Sec-WebSocket-Extensions") is None for ws in plain)
    assert all("permessage-deflate" in ws.response.headers["Sec-WebSocket-Extensions"] for ws in deflate)
    batches = await asyncio.gather(*(recv_updates(ws, 4, timeout=30) for ws in plain + deflate))
    for updates in batches:
        seqs = [u["seq"] for u in updates]
        assert seqs == list(range(seqs[0], seqs[0] + 4)), f"a client missed an update: {seqs}"
    assert len({u["seq"] for updates in batches for u in updates}) >= 4
