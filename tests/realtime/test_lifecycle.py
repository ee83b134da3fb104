"""Server lifecycle: idempotent start/stop, no leaks over many cycles, bind failures, two servers."""

from __future__ import annotations

import asyncio
import errno
import gc
import logging
import socket
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.client import connect

from session_buddy.realtime import RealTimeMetricsServer

from protocol_checks import assert_connected, top_names
from skills_seed import Invocation, seed_db
from wsutil import (
    CONNECT_KWARGS,
    client_url,
    expect_close,
    free_port,
    open_client,
    open_fd_count,
    recv_type,
    recv_updates,
    thread_counts,
    wait_until,
)

LOGGER = "session_buddy.realtime"


def _warnings(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name.startswith(LOGGER) and r.levelno == logging.WARNING]


async def _assert_serves(server: RealTimeMetricsServer) -> None:
    ws, hello = await open_client(client_url(server))
    try:
        assert_connected(hello)
        await recv_type(ws, "metrics_update")
    finally:
        await ws.close()


async def _assert_refused(url: str) -> None:
    with pytest.raises(OSError):
        await connect(url, open_timeout=5, **CONNECT_KWARGS)


# ---- idempotency -------------------------------------------------------------------


async def test_second_start_warns_and_changes_nothing(server, caplog) -> None:
    caplog.set_level(logging.WARNING, logger=LOGGER)
    port = server.port
    caplog.clear()
    await server.start()
    await wait_until(lambda: _warnings(caplog), timeout=5, message="a warning for the second start()")
    assert server.running is True
    assert server.port == port
    await _assert_serves(server)


async def test_second_stop_warns_and_returns(server_factory, caplog) -> None:
    caplog.set_level(logging.WARNING, logger=LOGGER)
    server = await server_factory()
    await server.stop()
    assert server.running is False
    caplog.clear()
    await asyncio.wait_for(server.stop(), 5)
    await wait_until(lambda: _warnings(caplog), timeout=5, message="a warning for the second stop()")
    assert server.running is False


async def test_stop_on_a_never_started_server_is_harmless(server_factory) -> None:
    server = await server_factory(start=False)
    await asyncio.wait_for(server.stop(), 5)
    assert server.running is False
    await server.start()  # and it can still start afterwards
    await _assert_serves(server)


async def test_restart_after_stop_serves_again(server_factory) -> None:
    server = await server_factory()
    await _assert_serves(server)
    await server.stop()
    await server.start()
    assert server.running is True
    await _assert_serves(server)


def _threads_at_most(before) -> bool:
    now = thread_counts()
    return now.os <= before.os and now.python <= before.python


# ---- no leaks ----------------------------------------------------------------------------


def _snapshot() -> tuple[int, int, int]:
    gc.collect()
    counts = thread_counts()
    return open_fd_count(), counts.python, counts.os


async def _assert_back_to(baseline: tuple[int, int, int], fd_slack: int = 2, os_slack: int = 1) -> None:
    fds0, py0, os0 = baseline

    def settled() -> bool:
        fds, py, os_threads = _snapshot()
        return fds <= fds0 + fd_slack and py <= py0 and os_threads <= os0 + os_slack

    try:
        await wait_until(settled, timeout=5, interval=0.05, message="resources to settle")
    except AssertionError:
        fds, py, os_threads = _snapshot()
        pytest.fail(
            f"leak: fds {fds0} -> {fds}, python threads {py0} -> {py}, OS threads {os0} -> {os_threads}"
        )


@pytest.mark.timeout(60)
@pytest.mark.parametrize("reuse", [True, False], ids=["same-object", "new-objects"])
async def test_200_start_stop_cycles_leak_no_fds_or_threads(seeded_db, warm_executor, reuse) -> None:
    def make() -> RealTimeMetricsServer:
        return RealTimeMetricsServer(port=0, db_path=seeded_db.path, update_interval=0.2)

    server = make()
    for _ in range(3):  # warm-up: lazily created things (executor thread, caches) appear here
        await server.start()
        await server.stop()
    baseline = _snapshot()

    started = time.monotonic()
    for i in range(200):
        if not reuse:
            server = make()
        await server.start()
        assert server.running is True, f"cycle {i}"
        assert server.port > 0
        await server.stop()
        assert server.running is False, f"cycle {i}"
    del server
    took = time.monotonic() - started

    await _assert_back_to(baseline)
    assert took < 45, f"200 cycles took {took:.1f} s"


@pytest.mark.timeout(60)
async def test_cycles_with_connected_clients_leak_nothing(seeded_db, warm_executor) -> None:
    server = RealTimeMetricsServer(port=0, db_path=seeded_db.path, update_interval=0.1)

    async def cycle() -> None:
        await server.start()
        clients = [(await open_client(client_url(server)))[0] for _ in range(2)]
        await asyncio.gather(*(recv_type(ws, "metrics_update") for ws in clients))
        closes = asyncio.gather(*(expect_close(ws) for ws in clients))
        await server.stop()
        assert await closes == [1001, 1001]
        await asyncio.gather(*(ws.wait_closed() for ws in clients))

    await cycle()
    baseline = _snapshot()
    for _ in range(30):
        await cycle()
    await _assert_back_to(baseline)


# ---- bind failures ---------------------------------------------------------------------


async def test_busy_port_raises_eaddrinuse_and_leaves_nothing_running(seeded_db, warm_executor) -> None:
    blocker = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        blocker.bind(("127.0.0.1", 0))
        blocker.listen()
        port = blocker.getsockname()[1]
        before = thread_counts()
        server = RealTimeMetricsServer(host="127.0.0.1", port=port, db_path=seeded_db.path,
                                       update_interval=0.2)
        with pytest.raises(OSError) as info:
            await server.start()
        assert info.value.errno == errno.EADDRINUSE, info.value
        assert server.running is False
        assert server._running is False
        assert server._server is None
        assert server._broadcast_task is None
        await wait_until(lambda: _threads_at_most(before), timeout=3,
                         message=f"threads back to {before}")
    finally:
        blocker.close()

    # The very same object starts once the port is free.
    try:
        await server.start()
        assert server.running is True
        assert server.port == port
        await _assert_serves(server)
    finally:
        await server.stop()


async def test_port_held_by_another_server(server_factory, client_factory) -> None:
    first = await server_factory(host="127.0.0.1")
    ws = await client_factory(first)
    second = await server_factory(host="127.0.0.1", port=first.port, start=False)
    with pytest.raises(OSError) as info:
        await second.start()
    assert info.value.errno == errno.EADDRINUSE
    assert second.running is False
    # The first server did not notice.
    seqs = [u["seq"] for u in await recv_updates(ws, 2)]
    assert seqs[0] < seqs[1]
    assert first.running is True


async def test_two_servers_in_one_process_serve_their_own_db(server_factory, client_factory,
                                                             tmp_path, seeded_db) -> None:
    other = seed_db(tmp_path / "other" / "skills.db",
                    seed=(Invocation("solo-skill", timedelta(hours=2), True, 1.0),))
    a = await server_factory()
    b = await server_factory(db_path=other.path)
    assert a.port != b.port
    wa = await client_factory(a)
    wb = await client_factory(b)
    ua, ub = await asyncio.gather(recv_type(wa, "metrics_update"), recv_type(wb, "metrics_update"))
    assert top_names(ua) == seeded_db.expected_order
    assert top_names(ub) == ["solo-skill"]

    # Stopping one leaves the other untouched.
    closes = asyncio.create_task(expect_close(wa))
    await a.stop()
    assert await closes == 1001
    before = (await recv_type(wb, "metrics_update"))["seq"]
    after = (await recv_type(wb, "metrics_update"))["seq"]
    assert after > before
    assert b.running is True
    await _assert_serves(b)
    await _assert_refused(client_url(a))


# ---- authentication without a secret (docs/realtime/SECURITY.md: no built-in default) -----------------


@pytest.mark.parametrize("env", [None, "true", "TRUE", "1", "yes", "On"])
async def test_auth_without_secret_refuses_to_start(seeded_db, monkeypatch, warm_executor, env) -> None:
    kwargs = {}
    if env is None:
        kwargs["require_auth"] = True
    else:
        monkeypatch.setenv("SESSION_BUDDY_AUTH_ENABLED", env)
    port = free_port()
    before = thread_counts()
    server = RealTimeMetricsServer(host="127.0.0.1", port=port, db_path=seeded_db.path,
                                   update_interval=0.2, **kwargs)
    if env is None:
        assert server.require_auth is True
    with pytest.raises(ValueError, match="SESSION_BUDDY_JWT_SECRET"):
        await server.start()
    assert server.running is False
    assert server._server is None
    assert server._broadcast_task is None
    await wait_until(lambda: _threads_at_most(before), timeout=3,
                     message=f"threads back to {before}")
    await _assert_refused(f"ws://127.0.0.1:{port}")


@pytest.mark.parametrize("env", ["false", "0", "", "no"])
async def test_auth_env_false_values_do_not_enable_auth(server_factory, monkeypatch, env) -> None:
    monkeypatch.setenv("SESSION_BUDDY_AUTH_ENABLED", env)
    server = await server_factory()
    assert server.running is True
    ws, hello = await open_client(client_url(server))
    try:
        assert hello["authenticated"] is False
    finally:
        await ws.close()


async def test_stop_during_a_tick_logs_no_database_error(tmp_path, caplog) -> None:
    """stop() interrupts a DB read in progress; that is no outage and must not log one."""
    import random
    import sqlite3

    from session_buddy.realtime import RealTimeMetricsServer
    from skills_seed import create_db, iso_ms, utc_now

    db = create_db(tmp_path / "big.db")
    now = iso_ms(utc_now())
    con = sqlite3.connect(db)
    with con:
        con.executemany(
            "INSERT INTO skill_invocation (skill_name, invoked_at, session_id, completed, duration_seconds,"
            " created_at) VALUES (?, ?, 's', 1, 1.0, ?)",
            ((f"skill-{i % 50}", now, now) for i in range(200_000)),
        )
    con.close()
    caplog.set_level(logging.WARNING, logger="session_buddy.realtime")
    rng = random.Random(7)
    for _ in range(12):
        server = RealTimeMetricsServer(host="127.0.0.1", port=0, db_path=db, update_interval=0.05)
        await server.start()
        await asyncio.sleep(rng.uniform(0, 0.6))
        await server.stop()
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert errors == []


# ---- start() and stop() racing -------------------------------------------------------------


async def test_stop_right_after_create_task_start_stops_it(seeded_db, warm_executor) -> None:
    port = free_port()
    before = thread_counts()
    server = RealTimeMetricsServer(host="127.0.0.1", port=port, db_path=seeded_db.path, update_interval=0.2)
    task = asyncio.create_task(server.start())
    await server.stop()  # the start is still under way
    await task
    assert server.running is False
    assert server._server is None
    await _assert_refused(f"ws://127.0.0.1:{port}")
    await wait_until(lambda: _threads_at_most(before), timeout=5, message=f"threads back to {before}")
    # And it still starts (and stops) normally afterwards.
    await server.start()
    await _assert_serves(server)
    await server.stop()


async def test_a_start_that_meets_a_start_under_way_returns_once_the_server_is_up(seeded_db) -> None:
    server = RealTimeMetricsServer(port=0, db_path=seeded_db.path, update_interval=0.2)
    try:
        first = asyncio.create_task(server.start())
        await asyncio.sleep(0)  # the first start() is now under way
        await server.start()
        # This caller may use the server at once, as the first caller will.
        assert server.running is True
        assert server.port != 0
        await _assert_serves(server)
        await first
    finally:
        await server.stop()


async def test_a_stop_that_meets_a_stop_under_way_returns_once_the_server_is_down(seeded_db) -> None:
    port = free_port()
    server = RealTimeMetricsServer(host="127.0.0.1", port=port, db_path=seeded_db.path, update_interval=0.2)
    await server.start()
    first = asyncio.create_task(server.stop())
    await asyncio.sleep(0)  # the first stop() is now under way
    await asyncio.wait_for(server.stop(), 10)
    # The port is released and the threads are joined when this call returns, not later.
    assert server.running is False
    await _assert_refused(f"ws://127.0.0.1:{port}")
    await first
    # And it starts again on the same port.
    await server.start()
    await _assert_serves(server)
    await server.stop()


async def test_a_second_start_during_a_start_is_a_warning(seeded_db, caplog) -> None:
    caplog.set_level(logging.WARNING, logger=LOGGER)
    server = RealTimeMetricsServer(port=0, db_path=seeded_db.path, update_interval=0.2)
    try:
        first = asyncio.create_task(server.start())
        await server.start()
        await first
        assert server.running is True
        assert any("already running" in r.getMessage() for r in _warnings(caplog))
        await _assert_serves(server)
    finally:
        await server.stop()


async def test_a_cancelled_start_leaves_nothing_listening(seeded_db, warm_executor) -> None:
    port = free_port()
    server = RealTimeMetricsServer(host="127.0.0.1", port=port, db_path=seeded_db.path, update_interval=0.2)
    task = asyncio.create_task(server.start())
    await asyncio.sleep(0)  # the start begins, and waits for its first executor job
    assert server._state.starting is not None
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await wait_until(lambda: not server.running, message="the server to be down")
    await _assert_refused(f"ws://127.0.0.1:{port}")


# ---- the C start path frees what it took on its error paths ------------------------------------


def _blocks_allocated_in_start_core(snapshot: Any) -> int:
    """Blocks still allocated whose innermost Python frame is start()'s start_core call."""
    import session_buddy.realtime.server as server_module

    source = Path(server_module.__file__).read_text().splitlines()
    line = next(i for i, text in enumerate(source, 1) if "self.start_core(" in text)
    return sum(
        stat.count for stat in snapshot.statistics("lineno")
        if stat.traceback[0].filename == server_module.__file__ and stat.traceback[0].lineno == line
    )


async def test_a_failed_bind_leaks_nothing(seeded_db, warm_executor) -> None:
    """The OSError's argument tuple must be released (PyErr_SetObject takes no reference)."""
    import tracemalloc

    blocker = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    blocker.bind(("127.0.0.1", 0))
    blocker.listen()
    server = RealTimeMetricsServer(host="127.0.0.1", port=blocker.getsockname()[1], db_path=seeded_db.path)
    try:
        for _ in range(3):  # warm-up
            with pytest.raises(OSError):
                await server.start()
        tracemalloc.start(1)
        try:
            gc.collect()
            before = _blocks_allocated_in_start_core(tracemalloc.take_snapshot())
            for _ in range(60):
                with pytest.raises(OSError) as info:
                    await server.start()
                assert info.value.errno == errno.EADDRINUSE
            del info
            gc.collect()
            after = _blocks_allocated_in_start_core(tracemalloc.take_snapshot())
        finally:
            tracemalloc.stop()
    finally:
        blocker.close()
    assert after - before < 10, f"{after - before} blocks from 60 failed binds were never freed"


def _config(**changes: Any) -> Any:
    from dataclasses import replace

    from session_buddy.realtime._startup import CoreConfig

    base = CoreConfig(
        db_path="/nonexistent/skills.db", iface="127.0.0.1", disable_ipv6=True, use_poll=False, port=0,
        interval_s=1.0, recovery_window_s=600.0, top_n=10, anomaly_threshold=2.0, record_anomalies=True, max_clients=100,
        max_message_size=65536, max_pending=256, min_log_level=0, static_dir=None, ssl_certfile=None,
        ssl_keyfile=None, allowed_origins=tuple(f"https://site{i}.example" for i in range(200)),
        allowed_hosts=None, jwt_secret=None,
    )
    return replace(base, **changes)


async def test_start_core_on_a_running_server_is_refused(server) -> None:
    with pytest.raises(RuntimeError, match="already running"):
        server.start_core(_config())
    assert server.running is True
    await _assert_serves(server)


@pytest.mark.parametrize(
    "changes, error",
    [
        ({"allowed_hosts": ("ok.example", 5)}, TypeError),  # after the origins were converted
        ({"jwt_secret": "not bytes"}, TypeError),
        ({"port": 70000}, ValueError),
        ({"ssl_certfile": "/x.pem"}, ValueError),
        ({"db_path": "a\0b"}, ValueError),
    ],
    ids=["hosts", "secret", "port", "tls-pair", "nul-path"],
)
def test_a_refused_core_config_leaks_nothing(tmp_path, changes, error) -> None:
    """Every field is type-checked in C, and what the conversion held is released on refusal."""
    import tracemalloc

    server = RealTimeMetricsServer(port=0, db_path=tmp_path / "x.db")
    config = _config(**changes)
    for _ in range(3):
        with pytest.raises(error):
            server.start_core(config)
    tracemalloc.start(1)
    try:
        before = tracemalloc.get_traced_memory()[0]
        for _ in range(500):
            with pytest.raises(error):
                server.start_core(config)
        grown = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert grown < 100_000, f"{grown} bytes kept over 500 refused calls"
    assert server.running is False
