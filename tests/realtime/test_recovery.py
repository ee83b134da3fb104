"""Recovery (docs/realtime/WEBSOCKET_SERVER.md, "Recovery"): a client that reconnects with
`subscribe` + `since` gets every update it missed, in order, once each, in its subscription's
form, then the live stream; another epoch or a seq outside the window gives recovered:false and
the current update. Real servers on real SQLite files, real `websockets` clients."""

from __future__ import annotations

import asyncio
import json
import os
import resource
import socket
import sqlite3
from typing import Any

import pytest
from websockets.asyncio.client import connect
from websockets.asyncio.server import serve

from protocol_checks import assert_error, assert_stream_position
from skills_seed import iso_ms, store_invocation, utc_now
from wsutil import CONNECT_KWARGS, client_url, expect_close, open_client, recv_json, recv_type, request, wait_until

REPLAY_BEHIND = 1008


async def newest_seq_at_least(server: Any, seq: int) -> None:
    await wait_until(lambda: server.retention_stats()["newest_seq"] >= seq, timeout=30,
                     message=f"the server to build update {seq}")


def since(msg: dict[str, Any], seq: int | None = None) -> dict[str, Any]:
    return {"epoch": msg["epoch"], "seq": msg["seq"] if seq is None else seq}


async def read_until_seq(ws: Any, seq: int, timeout: float = 30) -> list[dict[str, Any]]:
    """Every metrics_update up to and including `seq`."""
    out: list[dict[str, Any]] = []
    while not out or out[-1]["seq"] < seq:
        out.append(await recv_type(ws, "metrics_update", timeout))
    return out


def assert_consecutive(updates: list[dict[str, Any]], first: int) -> None:
    seqs = [u["seq"] for u in updates]
    assert seqs == list(range(first, first + len(seqs))), seqs


async def resume(server: Any, client_factory: Any, subscribe: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
    ws = await client_factory(server)
    reply = await request(ws, {"type": "subscribe", **subscribe})
    assert reply["type"] == "subscription_confirmed", reply
    assert_stream_position(reply)
    return ws, reply


@pytest.mark.parametrize("skill", [None, "mypy"], ids=["all-skills", "one-skill"])
async def test_dropped_updates_come_back_in_order_once_each(server_factory, client_factory, seeded_db, skill) -> None:
    server = await server_factory()
    form = {"skill_name": skill}
    # A reference client stays connected in the same form: what the resumed client must get.
    reference = await client_factory(server)
    await request(reference, {"type": "subscribe", **form})
    leaving = await client_factory(server)
    await request(leaving, {"type": "subscribe", **form})
    last = (await recv_type(leaving, "metrics_update"))
    await leaving.close()
    # While it is away the data changes, so that each missed update differs.
    for i in range(3):
        store_invocation(seeded_db.path, skill or "pytest-run", iso_ms(utc_now()), duration=1.0 + i)
        await server.broadcast_metrics()
    missed = 6
    await newest_seq_at_least(server, last["seq"] + missed)

    ws, reply = await resume(server, client_factory, {**form, "since": since(last)})
    assert reply["recovered"] is True and reply["epoch"] == last["epoch"]
    assert reply["skill_name"] == skill
    got = await read_until_seq(ws, reply["seq"] + 2)  # the replay, then live updates
    assert_consecutive(got, last["seq"] + 1)
    seen = {u["seq"]: u for u in await read_until_seq(reference, got[-1]["seq"])}
    for update in got:
        if update["seq"] in seen:  # the reference saw it live (it may have been conflated)
            assert update["data"] == seen[update["seq"]]["data"], update["seq"]
        if skill is not None:
            assert {e["skill_name"] for e in update["data"]["top_skills"]} == {skill}
            assert all(a["skill_name"] == skill for a in update["data"]["anomalies"])


async def test_disconnect_mid_tick_loses_nothing(server_factory, client_factory) -> None:
    """The connection is cut while a tick is being written to it: the resumed client gets that
    update and everything after it, from the last one it read."""
    server = await server_factory(update_interval=3600)  # only the ticks asked for
    ws = await client_factory(server)
    await request(ws, {"type": "subscribe"})
    last = await recv_type(ws, "metrics_update")
    tick = asyncio.ensure_future(server.broadcast_metrics())
    ws.transport.abort()  # the tick's update is in flight, or not yet written
    await tick
    await server.broadcast_metrics()
    await newest_seq_at_least(server, last["seq"] + 2)

    ws2, reply = await resume(server, client_factory, {"since": since(last)})
    assert reply["recovered"] is True
    got = await read_until_seq(ws2, last["seq"] + 2)
    assert_consecutive(got, last["seq"] + 1)


async def test_resume_from_connected_and_from_the_newest(server_factory, client_factory) -> None:
    server = await server_factory(update_interval=3600)
    ws, hello = await client_factory.with_hello(server)
    assert_stream_position(hello)
    await ws.close()
    await server.broadcast_metrics()
    ws2, reply = await resume(server, client_factory, {"since": since(hello)})
    assert reply["recovered"] is True
    assert [u["seq"] for u in await read_until_seq(ws2, hello["seq"] + 1)] == [hello["seq"] + 1]
    # Resuming at the newest seq replays nothing: the next update is the next tick's.
    ws3, reply = await resume(server, client_factory, {"since": since(hello, hello["seq"] + 1)})
    assert reply["recovered"] is True
    await server.broadcast_metrics()
    assert (await recv_type(ws3, "metrics_update"))["seq"] == hello["seq"] + 2


async def test_another_epoch_after_a_restart_is_not_recovered(server_factory, client_factory) -> None:
    first = await server_factory()
    ws = await client_factory(first)
    await request(ws, {"type": "subscribe"})
    last = await recv_type(ws, "metrics_update")
    old_epoch = first.epoch
    assert last["epoch"] == old_epoch
    await first.stop()
    assert first.epoch == old_epoch  # kept after stop
    await first.start()
    assert first.epoch != old_epoch and len(first.epoch) == 16

    ws2, reply = await resume(first, client_factory, {"since": since(last)})
    assert reply["recovered"] is False and reply["epoch"] == first.epoch
    update = await recv_type(ws2, "metrics_update")  # the current one, at once
    assert update["epoch"] == first.epoch and update["seq"] == reply["seq"]


async def test_seq_outside_the_window_is_not_recovered(server_factory, client_factory) -> None:
    server = await server_factory(update_interval=0.1, recovery_window=0.5)
    ws = await client_factory(server)
    await request(ws, {"type": "subscribe", "skill_name": "mypy"})
    last = await recv_type(ws, "metrics_update")
    await ws.close()
    await wait_until(lambda: server.retention_stats()["oldest_seq"] > last["seq"] + 1, timeout=30,
                     message="the update after the client's to leave the window")
    ws2, reply = await resume(server, client_factory, {"skill_name": "mypy", "since": since(last)})
    assert reply["recovered"] is False
    update = await recv_json(ws2)
    assert update["type"] == "metrics_update" and update["seq"] >= reply["seq"]
    assert [e["skill_name"] for e in update["data"]["top_skills"]] == ["mypy"]
    # A seq from the future is not recovered either.
    ws3, reply = await resume(server, client_factory, {"since": since(last, last["seq"] + 10**6)})
    assert reply["recovered"] is False


async def test_no_window_recovers_nothing(server_factory, client_factory) -> None:
    server = await server_factory(recovery_window=0)
    ws, hello = await client_factory.with_hello(server)
    reply = await request(ws, {"type": "subscribe", "since": since(hello)})
    assert reply["recovered"] is False


@pytest.mark.parametrize("bad", [
    "yes", 3, [], {"epoch": "abc"}, {"seq": 1}, {"epoch": 1, "seq": 1}, {"epoch": "e", "seq": -1},
    {"epoch": "e", "seq": 1.5}, {"epoch": "e", "seq": "1"}, {"epoch": "e" * 65, "seq": 1},
])
async def test_bad_since_is_invalid_request(client, bad) -> None:
    reply = await request(client, {"type": "subscribe", "since": bad})
    assert_error(reply, "invalid_request", "subscribe")


async def test_since_null_is_a_plain_subscribe(client) -> None:
    reply = await request(client, {"type": "subscribe", "since": None})
    assert reply["type"] == "subscription_confirmed" and "recovered" not in reply


def many_skills_db(path: Any, n: int, name_len: int) -> Any:
    """A DB with n skills of long names, one invocation each now: large all-skills updates."""
    from skills_seed import create_db

    db = create_db(path)
    now = iso_ms(utc_now())
    con = sqlite3.connect(db)
    with con:
        con.executemany(
            "INSERT INTO skill_invocation (skill_name, invoked_at, session_id, completed,"
            " duration_seconds, created_at) VALUES (?, ?, 's', 1, 1.0, ?)",
            [(f"skill-{i:04d}-".ljust(name_len, "x"), now, now) for i in range(n)],
        )
    con.close()
    return db


async def slow_client(server: Any, client_factory: Any) -> Any:
    """A client that stops reading its socket once one message waits (max_queue=1), with a
    fixed 64 KiB receive buffer (no autotuning to tens of MB) and without compression (which
    would shrink the repetitive test updates to nothing), its `connected` read."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
    sock.connect(("127.0.0.1", server.port))
    ws = client_factory.track(await connect(client_url(server), sock=sock,
                                            **{**CONNECT_KWARGS, "max_queue": 1, "compression": None}))
    assert (await recv_json(ws))["type"] == "connected"
    return ws


def rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize()


async def test_a_slow_reader_is_paced_not_buffered(server_factory, client_factory, tmp_path) -> None:
    """A resumed client owed hundreds of large updates that does not read: the server writes
    what its socket takes and holds one frame, so its memory does not grow by what is owed,
    and other clients' updates keep coming. Once it reads, every update arrives, in order."""
    db = many_skills_db(tmp_path / "many" / "skills.db", 150, 50)
    server = await server_factory(db_path=db, update_interval=0.05, top_n=150, recovery_window=60)
    ws, hello = await client_factory.with_hello(server)
    await ws.close()
    await newest_seq_at_least(server, hello["seq"] + 200)
    owed = server.retention_stats()["newest_seq"] - hello["seq"]
    frame = len(server.metrics_update(None) or "")
    assert frame > 30_000, frame  # so that buffering what is owed would show

    slow = await slow_client(server, client_factory)
    before = rss_bytes()
    await slow.send(json.dumps({"type": "subscribe", "since": since(hello)}))
    other = await client_factory(server)
    for _ in range(10):  # other clients are not held up meanwhile
        await recv_type(other, "metrics_update", timeout=5)
    grown = rss_bytes() - before
    # Under `make asan` freed frames sit in ASan's quarantine, so RSS says nothing there.
    if "libasan" not in os.environ.get("LD_PRELOAD", ""):
        assert grown < owed * frame / 4, (grown, owed, frame)

    reply = await recv_json(slow)
    assert reply["type"] == "subscription_confirmed" and reply["recovered"] is True
    got = await read_until_seq(slow, hello["seq"] + owed)
    assert_consecutive(got, hello["seq"] + 1)


async def test_a_replay_that_falls_out_of_the_window_is_closed(server_factory, client_factory, tmp_path) -> None:
    # 40 updates of about 200 KB in the window: more than the socket buffers can take.
    db = many_skills_db(tmp_path / "many" / "skills.db", 600, 60)
    server = await server_factory(db_path=db, update_interval=0.05, top_n=600, recovery_window=2)
    ws, hello = await client_factory.with_hello(server)
    await ws.close()
    await newest_seq_at_least(server, hello["seq"] + 20)
    slow = await slow_client(server, client_factory)
    await slow.send(json.dumps({"type": "subscribe", "since": since(hello)}))
    # It does not read for longer than the window: what it is owed leaves the window, beyond
    # the ~25 updates the socket buffers (4 MB of send buffer at most) may have taken.
    await wait_until(lambda: server.retention_stats()["oldest_seq"] > hello["seq"] + 100, timeout=30,
                     message="the window to move past the replay")
    assert await expect_close(slow, timeout=30) == REPLAY_BEHIND


async def test_in_process_clients_replay_too(server_factory) -> None:
    """client_handler mounted on a `websockets` server: the same replay through dispatch.c."""
    server = await server_factory(update_interval=3600)
    async with serve(server.client_handler, "127.0.0.1", 0) as app:
        url = f"ws://127.0.0.1:{app.sockets[0].getsockname()[1]}"
        ws, hello = await open_client(url)
        await ws.close()
        for _ in range(4):
            await server.broadcast_metrics()
        ws, _ = await open_client(url)
        reply = await request(ws, {"type": "subscribe", "skill_name": "mypy", "since": since(hello)})
        assert reply["recovered"] is True
        got = await read_until_seq(ws, hello["seq"] + 4)
        assert_consecutive(got, hello["seq"] + 1)
        assert all([e["skill_name"] for e in u["data"]["top_skills"]] == ["mypy"] for u in got)
        await server.broadcast_metrics()
        assert (await recv_type(ws, "metrics_update"))["seq"] == hello["seq"] + 5
        await ws.close()


async def test_updates_since_for_metrics_subscribers(server_factory) -> None:
    server = await server_factory(update_interval=3600)
    payloads: list[dict[str, Any]] = []
    server.register_metrics_subscriber(payloads.append)
    await server.broadcast_metrics()
    first = payloads[-1]
    for _ in range(3):
        await server.broadcast_metrics()
    later = server.updates_since(first["seq"])
    assert later is not None
    assert [p["seq"] for p in later] == [first["seq"] + 1, first["seq"] + 2, first["seq"] + 3]
    assert later == payloads[-3:]
    assert server.updates_since(later[-1]["seq"]) == []
    one = server.updates_since(first["seq"], "mypy")
    assert one is not None and all([e["skill_name"] for e in p["data"]["top_skills"]] == ["mypy"] for p in one)
    assert server.updates_since(first["seq"], epoch="0" * 16) is None
    assert server.updates_since(10**9) is None
    with pytest.raises(TypeError):
        server.updates_since("1")
    with pytest.raises(ValueError):
        server.updates_since(-1)
    await server.stop()
    with pytest.raises(RuntimeError):
        server.updates_since(0)


@pytest.mark.parametrize("value, exc", [("600", TypeError), (True, TypeError), (-1, ValueError),
                                        (86401, ValueError), (float("nan"), ValueError)])
def test_recovery_window_is_checked_at_construction(value, exc, tmp_path) -> None:
    from session_buddy.realtime import RealTimeMetricsServer

    with pytest.raises(exc, match="recovery_window"):
        RealTimeMetricsServer(port=0, db_path=tmp_path / "x.db", recovery_window=value)
    assert RealTimeMetricsServer(port=0, db_path=tmp_path / "x.db").recovery_window == 600.0
    assert RealTimeMetricsServer(port=0, db_path=tmp_path / "x.db").epoch is None  # not started yet


def test_recovery_window_flag() -> None:
    from session_buddy.realtime.cli import build_parser

    parser = build_parser()
    assert parser.parse_args([]).recovery_window == 600.0
    assert parser.parse_args(["--recovery-window", "30"]).recovery_window == 30.0
    for bad in ("-1", "x", "86401"):
        with pytest.raises(SystemExit):
            parser.parse_args(["--recovery-window", bad])
