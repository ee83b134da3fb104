"""The GIL: a main thread busy in pure Python must not delay updates to network clients.

The client runs in a subprocess (tests/realtime/gil_client.py), so its timing does not depend
on this process's GIL, and stamps every update with the system-wide monotonic clock.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from pathlib import Path

import pytest

from wsutil import client_url

GIL_CLIENT = Path(__file__).resolve().parent / "gil_client.py"
INTERVAL = 0.2
BUSY_SECONDS = 3.0
MAX_GAP = INTERVAL + 0.25


async def _read_line(proc: asyncio.subprocess.Process, timeout: float) -> str:
    assert proc.stdout is not None
    line = await asyncio.wait_for(proc.stdout.readline(), timeout)
    if not line:
        err = (await proc.stderr.read()).decode(errors="replace") if proc.stderr else ""
        pytest.fail(f"client subprocess ended early: {err[-2000:]}")
    return line.decode().strip()


def _busy_python(seconds: float) -> int:
    """Pure-Python CPU work holding the GIL; never yields to the event loop."""
    end = time.monotonic() + seconds
    n = 0
    while time.monotonic() < end:
        n += sum(i * i for i in range(200))
    return n


@pytest.mark.timeout(60)
async def test_busy_main_thread_does_not_delay_updates(server_factory) -> None:
    server = await server_factory(update_interval=INTERVAL)
    await _check_updates_flow_while_busy(client_url(server))




@pytest.mark.timeout(60)
async def test_busy_main_thread_does_not_delay_graphql_updates(server_factory) -> None:
    """The same for a GraphQL subscriber: Python validates its subscribe once, and from then on
    the C fan-out serves the operation without the GIL."""
    server = await server_factory(update_interval=INTERVAL)
    await _check_updates_flow_while_busy(client_url(server), graphql=True)


@pytest.mark.timeout(90)
async def test_busy_main_thread_does_not_delay_an_edge(tmp_path: Path) -> None:
    """The same on an edge: its Redis client runs on the service thread, not on the GIL's."""
    from redis_fixture import RedisServer
    from skills_seed import seed_db
    from wsutil import free_port

    from session_buddy.realtime import RealTimeMetricsServer

    redis = RedisServer(tmp_path)
    redis.start()
    port = free_port()
    publisher = subprocess.Popen(
        [sys.executable, "-m", "session_buddy.realtime", "--role", "publisher", "--redis", redis.url,
         "--db", str(seed_db(tmp_path / "skills.db").path), "--port", str(port),
         "--interval", str(INTERVAL)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    edge = RealTimeMetricsServer(port=0, db_path=tmp_path / "unused.db", role="edge",
                                 redis_url=redis.url, update_interval=INTERVAL)
    try:
        await edge.start()
        await _check_updates_flow_while_busy(client_url(edge))
    finally:
        await edge.stop()
        publisher.terminate()
        publisher.wait(20)
        redis.stop()


async def _check_updates_flow_while_busy(url: str, *, graphql: bool = False) -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, str(GIL_CLIENT), url, "20", *(["graphql"] if graphql else []),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    try:
        first = await _read_line(proc, 20)
        assert first.startswith("CONNECTED"), first
        stamps: list[float] = []
        seqs: list[int] = []

        async def take_update(timeout: float) -> float:
            line = await _read_line(proc, timeout)
            assert line.startswith("UPDATE "), line
            _, stamp, seq = line.split()
            stamps.append(float(stamp))
            seqs.append(int(seq))
            return stamps[-1]

        for _ in range(3):  # the stream is flowing before the GIL gets busy
            await take_update(10)

        busy_from = time.monotonic()
        _busy_python(BUSY_SECONDS)  # no await in here: the loop is blocked throughout
        busy_to = time.monotonic()

        # Everything the client printed meanwhile waits in the pipe; read past the window.
        while await take_update(10) < busy_to + INTERVAL:
            pass
    finally:
        if proc.returncode is None:
            proc.kill()
        await proc.wait()

    assert seqs == sorted(set(seqs)), f"seq not increasing: {seqs}"
    # The gaps that overlap the busy window, including the ones across its edges.
    start = max(i for i, t in enumerate(stamps) if t <= busy_from)
    end = min(i for i, t in enumerate(stamps) if t >= busy_to)
    window = stamps[start:end + 1]
    gaps = [b - a for a, b in zip(window, window[1:])]
    inside = [t for t in stamps if busy_from <= t <= busy_to]
    assert len(inside) >= int(BUSY_SECONDS / INTERVAL) // 2, (
        f"only {len(inside)} updates during {BUSY_SECONDS} s of busy Python"
    )
    assert max(gaps) <= MAX_GAP, (
        f"largest gap between updates while the GIL was busy: {max(gaps):.3f} s "
        f"(allowed {MAX_GAP:.2f} s); gaps: {[round(g, 3) for g in gaps]}"
    )
