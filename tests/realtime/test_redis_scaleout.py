"""Scale-out through Redis (SPEC section 10): publishers and edges on a real redis-server.

Every server runs on its own service thread (in-process servers share nothing but the process;
the failover tests run publishers as `python -m session_buddy.realtime` subprocesses so that they
can be SIGKILLed and SIGSTOPped).  Clients are real `websockets` clients; Redis is Debian's
redis-server on a free loopback port, faults come from redis-cli and signals."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from redis_fixture import RedisServer
from skills_seed import seed_db, store_invocation, utc_now
from wsutil import free_port, open_client, recv_type, wait_until
from websockets.asyncio.client import ClientConnection

INTERVAL = 0.25
# Generous: two loaded cores, several servers per test.
WAIT = 20.0


@pytest.fixture
def redis(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path)
    server.start()
    yield server
    server.stop()


def _server(role: str, db: Path, redis_url: str, **kw: Any) -> Any:
    from session_buddy.realtime import RealTimeMetricsServer

    return RealTimeMetricsServer(port=0, db_path=db, update_interval=INTERVAL, role=role,
                                 redis_url=redis_url, **kw)


class Collector:
    """Reads every frame of one client in the background; keeps the metrics_update texts."""

    def __init__(self, ws: ClientConnection, hello: dict[str, Any]) -> None:
        self.ws = ws
        self.hello = hello
        self.updates: list[str] = []
        self.closed: BaseException | None = None
        self.task = asyncio.ensure_future(self._run())

    async def _run(self) -> None:
        try:
            async for frame in self.ws:
                msg = json.loads(frame)
                if msg.get("type") == "metrics_update":
                    self.updates.append(frame if isinstance(frame, str) else frame.decode())
        except BaseException as exc:  # noqa: BLE001 - recorded for the assertions
            self.closed = exc

    def positions(self) -> list[tuple[str, int]]:
        return [(m["epoch"], m["seq"]) for m in map(json.loads, self.updates)]

    def last_seq(self) -> int:
        return self.positions()[-1][1] if self.updates else 0

    async def close(self) -> None:
        await self.ws.close()
        await asyncio.wait_for(self.task, WAIT)


async def collector(port: int) -> Collector:
    ws, hello = await open_client(f"ws://localhost:{port}")
    return Collector(ws, hello)


def healthz(port: int) -> dict[str, Any]:
    try:
        with urllib.request.urlopen(f"http://localhost:{port}/healthz", timeout=5) as r:
            return json.loads(r.read())
    except urllib.error.HTTPError as err:  # 503 while degraded still carries the JSON
        return json.loads(err.read())


def assert_same_stream(collectors: list[Collector]) -> None:
    """Each client: consecutive seqs of one epoch, no gap, no duplicate; across clients: the same
    payload bytes for the same (epoch, seq)."""
    by_position: dict[tuple[str, int], str] = {}
    for c in collectors:
        pos = c.positions()
        assert pos, "a client received no update"
        for (e0, s0), (e1, s1) in zip(pos, pos[1:]):
            assert e1 == e0 and s1 == s0 + 1, f"gap or duplicate: {(e0, s0)} then {(e1, s1)} in {pos}"
        for p, text in zip(pos, c.updates):
            assert by_position.setdefault(p, text) == text, f"different bytes at {p}"


async def wait_for_seq(collectors: list[Collector], seq: int) -> None:
    await wait_until(lambda: all(c.last_seq() >= seq for c in collectors), WAIT,
                     message=f"every client at seq {seq}")


# ---- configuration ----

@pytest.mark.parametrize("url, text", [
    ("http://127.0.0.1:6379", "redis://"),
    ("rediss://127.0.0.1:6379", "TLS"),
    ("redis://127.0.0.1:notaport", "port"),
    ("redis:///0", "host"),
    ("redis://127.0.0.1:6379/x", "database"),
])
def test_bad_redis_url_is_a_value_error(tmp_path: Path, url: str, text: str) -> None:
    with pytest.raises(ValueError, match=text):
        _server("edge", tmp_path / "s.db", url)


def test_role_and_redis_url_go_together(tmp_path: Path) -> None:
    from session_buddy.realtime import RealTimeMetricsServer

    with pytest.raises(ValueError, match="needs redis_url"):
        RealTimeMetricsServer(port=0, db_path=tmp_path / "s.db", role="edge")
    with pytest.raises(ValueError, match="only for role"):
        RealTimeMetricsServer(port=0, db_path=tmp_path / "s.db", redis_url="redis://127.0.0.1")
    with pytest.raises(ValueError, match="role must be one of"):
        RealTimeMetricsServer(port=0, db_path=tmp_path / "s.db", role="leader")
    with pytest.raises(ValueError, match="webhooks go on the publisher"):
        RealTimeMetricsServer(port=0, db_path=tmp_path / "s.db", role="edge", redis_url="redis://127.0.0.1",
                              webhooks=[{"url": "http://127.0.0.1:9/hook", "format": "slack"}])


async def test_unreachable_redis_fails_start_with_nothing_started(tmp_path: Path) -> None:
    port = free_port()  # nothing listens there
    server = _server("edge", tmp_path / "s.db", f"redis://127.0.0.1:{port}/0")
    with pytest.raises(ConnectionRefusedError) as info:
        await server.start()
    assert info.value.filename == f"redis://127.0.0.1:{port}/0"
    assert not server.running
    assert not (tmp_path / "s.db").exists()  # an edge never creates a DB


async def test_wrong_password_is_a_permission_error(tmp_path: Path) -> None:
    redis = RedisServer(tmp_path, password="right-one")
    redis.start()
    try:
        server = _server("publisher", tmp_path / "s.db", f"redis://:wrong@127.0.0.1:{redis.port}/0")
        with pytest.raises(PermissionError, match="WRONGPASS|invalid"):
            await server.start()
        assert not server.running
        nopass = _server("publisher", tmp_path / "s.db", f"redis://127.0.0.1:{redis.port}/0")
        with pytest.raises(PermissionError, match="NOAUTH"):
            await nopass.start()
        good = _server("publisher", tmp_path / "s.db", redis.url)
        await good.start()
        try:
            await wait_until(lambda: healthz(good.port).get("holder"), WAIT, message="lease held")
        finally:
            await good.stop()
    finally:
        redis.stop()


# ---- one stream everywhere ----

@pytest.fixture
async def deployment(tmp_path: Path, redis: RedisServer) -> AsyncIterator[dict[str, Any]]:
    """1 Redis, 2 publishers on one DB, 3 edges."""
    db = seed_db(tmp_path / "skills.db").path
    publishers = [_server("publisher", db, redis.url) for _ in range(2)]
    edges = [_server("edge", tmp_path / "unused.db", redis.url) for _ in range(3)]
    started: list[Any] = []
    try:
        for s in publishers + edges:
            await s.start()
            started.append(s)
        yield {"publishers": publishers, "edges": edges, "db": db, "redis": redis}
    finally:
        for s in reversed(started):
            await s.stop()


def holder_of(publishers: list[Any]) -> Any:
    held = [p for p in publishers if healthz(p.port).get("holder")]
    return held[0] if len(held) == 1 else None


async def test_edges_and_publisher_send_the_same_bytes(deployment: dict[str, Any]) -> None:
    holder = await wait_until(lambda: holder_of(deployment["publishers"]), WAIT, message="a holder")
    clients = [await collector(holder.port)] + [await collector(e.port) for e in deployment["edges"]]
    try:
        start = max(c.hello["seq"] for c in clients)
        store_invocation(deployment["db"], "fresh-skill", utc_now(), completed=True, duration=1.5)
        await wait_for_seq(clients, start + 8)
        assert_same_stream(clients)
        # The new skill's row reached the edges through Redis.
        assert any("fresh-skill" in u for u in clients[1].updates)
    finally:
        for c in clients:
            await c.close()
    for e in deployment["edges"]:
        h = healthz(e.port)
        assert h["role"] == "edge" and h["redis"] == "up" and not h["stale"] and h["gaps"] == 0


async def test_edge_serves_skill_subscriptions_and_get_metrics(deployment: dict[str, Any]) -> None:
    edge = deployment["edges"][0]
    await wait_until(lambda: healthz(edge.port).get("seq", 0) > 0, WAIT, message="edge has state")
    ws, _ = await open_client(f"ws://localhost:{edge.port}")
    try:
        await ws.send(json.dumps({"type": "get_metrics", "skill_name": "old-skill"}))
        reply = await recv_type(ws, "metrics_response", WAIT)
        assert reply["data"]["total_invocations"] == 3
        await ws.send(json.dumps({"type": "subscribe", "skill_name": "old-skill"}))
        await recv_type(ws, "subscription_confirmed", WAIT)
        update = json.loads(await asyncio.wait_for(ws.recv(), WAIT))
        assert [s["skill_name"] for s in update["data"]["top_skills"]] == ["old-skill"]
    finally:
        await ws.close()


async def test_late_edge_recovers_a_client_from_another_edge(deployment: dict[str, Any],
                                                             tmp_path: Path) -> None:
    first = await collector(deployment["edges"][0].port)
    try:
        await wait_for_seq([first], first.hello["seq"] + 4)
    finally:
        await first.close()
    epoch, seen = first.positions()[-1]
    # A new edge, started now, serves the retained stream at once: the client resumes there.
    late = _server("edge", tmp_path / "unused.db", deployment["redis"].url)
    await late.start()
    try:
        ws, _ = await open_client(f"ws://localhost:{late.port}")
        try:
            await ws.send(json.dumps({"type": "subscribe", "since": {"epoch": epoch, "seq": seen - 3}}))
            confirmed = await recv_type(ws, "subscription_confirmed", WAIT)
            assert confirmed["recovered"] is True
            raw = [await asyncio.wait_for(ws.recv(), WAIT) for _ in range(4)]
            replay = [json.loads(r) for r in raw]
            assert [(m["epoch"], m["seq"]) for m in replay] == [(epoch, s) for s in range(seen - 2, seen + 2)]
            # The same bytes the first edge sent for the updates both sent.
            sent_before = dict(zip(first.positions(), first.updates))
            for m, r in zip(replay[:3], raw[:3]):
                assert r == sent_before.get((epoch, m["seq"])), first.positions()
        finally:
            await ws.close()
    finally:
        await late.stop()


# ---- Redis faults: clients stay connected, edges resume in order ----

async def _through_fault(deployment: dict[str, Any], fault: Any, expect_stale: bool) -> None:
    clients = [await collector(e.port) for e in deployment["edges"]]
    try:
        await wait_for_seq(clients, max(c.hello["seq"] for c in clients) + 2)
        before = max(c.last_seq() for c in clients)
        await fault()
        if expect_stale:
            await wait_until(lambda: all(healthz(e.port).get("stale") for e in deployment["edges"]),
                             WAIT, message="edges stale")
        await wait_for_seq(clients, before + 12)
        assert all(c.closed is None for c in clients), "a client was disconnected"
        assert_same_stream(clients)
        await wait_until(lambda: not any(healthz(e.port).get("stale") for e in deployment["edges"]),
                         WAIT, message="edges fresh again")
    finally:
        for c in clients:
            await c.close()


async def test_redis_restarted_empty_starts_a_new_epoch(deployment: dict[str, Any]) -> None:
    """SPEC section 10: Redis restarted empty gives a new epoch (made anew with the meta hash,
    numbered from seq 1); clients stay connected and see the old epoch's updates in order, then
    the new one's in order; a client resuming with the old epoch is told recovered:false; ServerBase.epoch follows on
    every role."""
    redis: RedisServer = deployment["redis"]
    edges = deployment["edges"]
    holder = await wait_until(lambda: holder_of(deployment["publishers"]), WAIT, message="a holder")
    clients = [await collector(e.port) for e in edges]
    try:
        await wait_for_seq(clients, max(c.hello["seq"] for c in clients) + 2)
        old_epoch, old_seq = clients[0].positions()[-1]
        assert {e.epoch for e in edges} == {holder.epoch} == {old_epoch}
        redis.kill()
        await wait_until(lambda: all(healthz(e.port).get("stale") for e in edges), WAIT,
                         message="edges stale")
        redis.start()  # the same port, empty
        await wait_until(lambda: all(c.positions()[-1][0] != old_epoch and c.last_seq() >= 4
                                     for c in clients), WAIT, message="clients in a new epoch")
        new_epoch = clients[0].positions()[-1][0]
        by_position: dict[tuple[str, int], str] = {}
        for c in clients:
            pos = c.positions()
            split = next(i for i, (e, _) in enumerate(pos) if e != old_epoch)
            assert [s for _, s in pos[:split]] == list(range(pos[0][1], pos[split - 1][1] + 1))
            # An edge that reconnects after the publisher appended a few ticks hands a client of
            # the old epoch the newest state of the new one, then every update in order.
            first_new = pos[split][1]
            assert pos[split:] == [(new_epoch, s) for s in range(first_new, first_new + len(pos) - split)]
            for p, text in zip(pos, c.updates):
                assert by_position.setdefault(p, text) == text, f"different bytes at {p}"
        assert all(c.closed is None for c in clients), "a client was disconnected"
        assert {e.epoch for e in edges} == {holder.epoch} == {new_epoch}
        # The default epoch of retained_updates is the new one, numbered from 1.
        assert json.loads(edges[0].retained_updates(0)[0])["seq"] == 1
        assert edges[0].retained_updates(old_seq - 1, None, old_epoch) is None
        ws, _ = await open_client(f"ws://localhost:{edges[1].port}")
        try:
            await ws.send(json.dumps({"type": "subscribe",
                                      "since": {"epoch": old_epoch, "seq": old_seq}}))
            confirmed = await recv_type(ws, "subscription_confirmed", WAIT)
            assert confirmed["recovered"] is False and confirmed["epoch"] == new_epoch
        finally:
            await ws.close()
    finally:
        for c in clients:
            await c.close()
    for e in edges:
        assert healthz(e.port)["reconnects"] >= 1


async def test_client_kill_edges_reconnect_in_order(deployment: dict[str, Any]) -> None:
    async def kill_clients() -> None:
        deployment["redis"].cli("CLIENT", "KILL", "TYPE", "normal")

    await _through_fault(deployment, kill_clients, expect_stale=False)


async def test_client_pause_edges_mark_stale_and_resume(deployment: dict[str, Any]) -> None:
    async def pause() -> None:
        deployment["redis"].cli("CLIENT", "PAUSE", "5000", "ALL")

    await _through_fault(deployment, pause, expect_stale=True)


# ---- HA publishers: subprocesses, so that they can be killed and stopped ----

class PublisherProcess:
    """python -m session_buddy.realtime --role publisher on the shared DB."""

    def __init__(self, db: Path, redis_url: str, log: Path) -> None:
        self.port = free_port()
        self.log = log.open("wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "session_buddy.realtime", "--role", "publisher", "--redis", redis_url,
             "--db", str(db), "--port", str(self.port), "--interval", str(INTERVAL)],
            stdout=self.log, stderr=subprocess.STDOUT)

    def health(self) -> dict[str, Any]:
        try:
            return healthz(self.port)
        except OSError:
            return {}

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(15)
        self.log.close()


@pytest.fixture
async def ha(tmp_path: Path, redis: RedisServer) -> AsyncIterator[dict[str, Any]]:
    db = seed_db(tmp_path / "skills.db").path
    pubs = [PublisherProcess(db, redis.url, tmp_path / f"pub{i}.log") for i in range(2)]
    edges = [_server("edge", tmp_path / "unused.db", redis.url) for _ in range(3)]
    try:
        for e in edges:
            await e.start()
        await wait_until(lambda: all(p.health().get("role") == "publisher" for p in pubs), WAIT,
                         message="publishers up")
        yield {"pubs": pubs, "edges": edges, "redis": redis}
    finally:
        for e in edges:
            await e.stop()
        for p in pubs:
            p.close()


def _holder(pubs: list[PublisherProcess]) -> PublisherProcess | None:
    held = [p for p in pubs if p.proc.poll() is None and p.health().get("holder")]
    return held[0] if len(held) == 1 else None


def _longest_silence(arrivals: list[float]) -> float:
    return max(b - a for a, b in zip(arrivals, arrivals[1:]))


class TimedCollector(Collector):
    """Also records when each update arrived."""

    def __init__(self, ws: ClientConnection, hello: dict[str, Any]) -> None:
        self.arrivals: list[float] = []
        super().__init__(ws, hello)

    async def _run(self) -> None:
        try:
            async for frame in self.ws:
                if json.loads(frame).get("type") == "metrics_update":
                    self.arrivals.append(time.monotonic())
                    self.updates.append(frame if isinstance(frame, str) else frame.decode())
        except BaseException as exc:  # noqa: BLE001
            self.closed = exc


async def timed_collector(port: int) -> TimedCollector:
    ws, hello = await open_client(f"ws://localhost:{port}")
    return TimedCollector(ws, hello)


async def test_sigkill_of_the_holder_another_takes_over_within_3s(ha: dict[str, Any]) -> None:
    holder = await wait_until(lambda: _holder(ha["pubs"]), WAIT, message="a holder")
    clients = [await timed_collector(e.port) for e in ha["edges"]]
    try:
        await wait_for_seq(clients, max(c.hello["seq"] for c in clients) + 4)
        killed_at = time.monotonic()
        holder.proc.kill()
        holder.proc.wait(10)
        other = [p for p in ha["pubs"] if p is not holder][0]
        await wait_until(lambda: other.health().get("holder"), WAIT, message="the standby holds")
        n = [len(c.updates) for c in clients]
        await wait_until(lambda: all(len(c.updates) >= k + 8 for c, k in zip(clients, n)), WAIT,
                         message="updates flowing again")
        # One stream across the takeover: same epoch, every seq once, the same bytes everywhere.
        assert_same_stream(clients)
        for c in clients:
            assert c.closed is None
            gap = _longest_silence([t for t in c.arrivals if t >= killed_at - 1])
            assert gap <= 3.0 + INTERVAL + 1.0, f"failover gap {gap:.2f} s"
    finally:
        for c in clients:
            await c.close()


async def test_sigstopped_holder_is_fenced_and_never_appends(ha: dict[str, Any]) -> None:
    holder = await wait_until(lambda: _holder(ha["pubs"]), WAIT, message="a holder")
    other = [p for p in ha["pubs"] if p is not holder][0]
    clients = [await collector(e.port) for e in ha["edges"]]
    try:
        await wait_for_seq(clients, max(c.hello["seq"] for c in clients) + 2)
        old_epoch = clients[0].positions()[-1][0]
        holder.proc.send_signal(signal.SIGSTOP)
        await wait_until(lambda: other.health().get("holder"), WAIT, message="the standby holds")
        holder.proc.send_signal(signal.SIGCONT)
        await wait_until(lambda: holder.health().get("holder") is False, WAIT,
                         message="the paused holder knows it is fenced")
        n = [len(c.updates) for c in clients]
        await wait_until(lambda: all(len(c.updates) >= k + 8 for c, k in zip(clients, n)), WAIT,
                         message="updates flowing")
        # The standby went on with the stream's numbering, and the fenced holder, which still
        # numbers on from where it was paused, wrote nothing: no seq twice, no gap, one epoch.
        assert_same_stream(clients)
        assert clients[0].positions()[-1][0] == old_epoch
        assert int(ha["redis"].cli("XLEN", "session_buddy:stream")) > 0
        assert ha["redis"].cli("GET", "session_buddy:lease").strip() == other.health()["lease_holder"]
    finally:
        for c in clients:
            await c.close()


def test_cli_role_and_redis_go_together(capsys: pytest.CaptureFixture[str]) -> None:
    from session_buddy.realtime.cli import main

    with pytest.raises(SystemExit) as info:
        main(["--role", "edge"])
    assert info.value.code == 2 and "--redis" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["--role", "edge", "--redis", "rediss://127.0.0.1:6379"])
    assert "TLS" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["--role", "edge", "--redis", "redis://127.0.0.1:6379", "--webhook", "http://127.0.0.1:9/hook",
              "--webhook-format", "slack"])
    assert "--webhook goes on the publisher" in capsys.readouterr().err


def test_cli_edge_with_unreachable_redis_says_so_and_exits_1(tmp_path: Path) -> None:
    port = free_port()
    proc = subprocess.run(
        [sys.executable, "-m", "session_buddy.realtime", "--role", "edge", "--redis",
         f"redis://127.0.0.1:{port}/0", "--port", "0"],
        capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert proc.returncode == 1
    assert f"cannot use Redis at redis://127.0.0.1:{port}/0" in proc.stderr


def _metrics(port: int) -> dict[str, float]:
    from prometheus_client.parser import text_string_to_metric_families

    with urllib.request.urlopen(f"http://localhost:{port}/metrics", timeout=5) as r:
        text = r.read().decode()
    return {s.name: s.value for f in text_string_to_metric_families(text) for s in f.samples}


async def test_metrics_report_role_link_lag_and_lease(deployment: dict[str, Any]) -> None:
    holder = await wait_until(lambda: holder_of(deployment["publishers"]), WAIT, message="a holder")
    standby = [p for p in deployment["publishers"] if p is not holder][0]
    edge = deployment["edges"][0]
    await wait_until(lambda: _metrics(edge.port).get("session_buddy_redis_seq", 0) >= 3, WAIT,
                     message="the edge follows")
    e = _metrics(edge.port)
    assert e["session_buddy_redis_up"] == 1 and e["session_buddy_redis_stale"] == 0
    assert 0 <= e["session_buddy_redis_lag_seconds"] < 5 and e["session_buddy_redis_gaps_total"] == 0
    # The standby tries once it has waited a lease period, and is refused.
    await wait_until(lambda: _metrics(standby.port).get("session_buddy_redis_fenced_total", 0) >= 1,
                     WAIT, message="the standby fenced")
    h, s = _metrics(holder.port), _metrics(standby.port)
    assert h["session_buddy_redis_lease_holder"] == 1 and s["session_buddy_redis_lease_holder"] == 0
    assert h["session_buddy_redis_appended_total"] >= 3
    assert healthz(standby.port)["lease_holder"] == healthz(holder.port)["lease_holder"]


async def test_a_burst_of_broadcasts_reaches_the_edges_whole(deployment: dict[str, Any]) -> None:
    holder = await wait_until(lambda: holder_of(deployment["publishers"]), WAIT, message="a holder")
    clients = [await collector(e.port) for e in deployment["edges"]]
    try:
        start = max(c.hello["seq"] for c in clients)
        for _ in range(5):  # ticks on demand, faster than the interval
            await asyncio.gather(*(holder.broadcast_metrics() for _ in range(10)))
        await wait_for_seq(clients, start + 12)
        assert_same_stream(clients)
    finally:
        for c in clients:
            await c.close()


# ---- get_history on an edge: the publisher's buckets, copied through P:history ----

async def _history(port: int, **fields: Any) -> dict[str, Any]:
    ws, _ = await open_client(f"ws://localhost:{port}")
    try:
        await ws.send(json.dumps({"type": "get_history", **fields}))
        reply = await recv_type(ws, "history_response", WAIT)
    finally:
        await ws.close()
    reply.pop("timestamp")
    return reply


async def test_edge_answers_get_history_like_the_publisher(deployment: dict[str, Any],
                                                           tmp_path: Path) -> None:
    holder = await wait_until(lambda: holder_of(deployment["publishers"]), WAIT, message="a holder")
    await wait_until(lambda: healthz(holder.port).get("seq", 0) > 8, WAIT, message="a while")
    late = _server("edge", tmp_path / "unused.db", deployment["redis"].url)
    await late.start()
    try:
        edges = [deployment["edges"][0], late]
        requests = [{"skill_name": None, "window": 86400, "step": 600},
                    {"skill_name": "mypy", "window": 86400, "step": 3600},
                    {"skill_name": None, "window": 600, "step": 10}]

        async def all_equal() -> bool:
            for req in requests:
                want = await _history(holder.port, **req)
                for e in edges:
                    if await _history(e.port, **req) != want:
                        return False
            return True

        async def wait_equal(what: str) -> None:
            deadline = time.monotonic() + WAIT
            while not await all_equal():
                assert time.monotonic() < deadline, f"edges' history differs from the holder's: {what}"
                await asyncio.sleep(0.2)

        await wait_equal("seeded rows")
        seeded = await _history(holder.port, **requests[1])
        assert sum(p["invocation_count"] for p in seeded["points"]) == 4  # a copy, not two empty stores
        store_invocation(deployment["db"], "new-skill", utc_now(), completed=True, duration=2.5)
        deadline = time.monotonic() + WAIT
        while sum(p["invocation_count"] for p in (await _history(late.port, **requests[2]))["points"]) == 0:
            assert time.monotonic() < deadline, "the new row never reached the late edge's history"
            await asyncio.sleep(0.2)
        await wait_equal("a new row")
        one = await _history(late.port, skill_name="new-skill", window=600, step=10)
        assert sum(p["invocation_count"] for p in one["points"]) == 1
    finally:
        await late.stop()
