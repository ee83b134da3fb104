"""The boundary between Python and C: a typed base type that Python extends, a stub that
stubtest accepts, the C enums exported rather than copied, and the in-process protocol state
kept in C."""

from __future__ import annotations

import inspect
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from session_buddy.realtime import RealTimeMetricsServer, _core
from session_buddy.realtime._events import EventKind, LogTopic

REPO = Path(__file__).resolve().parents[2]


def test_stubtest_finds_no_error() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "mypy.stubtest", "session_buddy.realtime._core"],
        cwd=REPO, capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Success: no issues found" in result.stdout


@pytest.mark.parametrize("cls", [_core.ServerBase, _core.InProcessSession])
def test_every_c_method_has_a_signature(cls: type) -> None:
    methods = [v for k, v in vars(cls).items() if callable(v) and not k.startswith("__")]
    assert methods
    for method in methods:
        params = list(inspect.signature(method).parameters)
        assert params[0] == "self", method


def test_public_coroutines_have_their_signatures() -> None:
    assert list(inspect.signature(RealTimeMetricsServer.start).parameters) == ["self"]
    assert list(inspect.signature(RealTimeMetricsServer.handle_subscription).parameters) == [
        "self", "ws", "skill_name"]
    assert inspect.iscoroutinefunction(RealTimeMetricsServer.stop)


def test_server_is_the_c_base_type_extended(tmp_path) -> None:
    server = RealTimeMetricsServer(port=0, db_path=tmp_path / "x.db")
    assert isinstance(server, _core.ServerBase)
    assert RealTimeMetricsServer.__module__ == "session_buddy.realtime.server"


def test_event_kinds_and_topics_come_from_c() -> None:
    assert [int(k) for k in EventKind] == [_core.EV_LOG, _core.EV_SNAPSHOT, _core.EV_TICK_DONE, _core.EV_STOPPED,
                                          _core.EV_ANOMALIES, _core.EV_GQL_OPERATION, _core.EV_GQL_HTTP]
    assert len(set(EventKind)) == 7
    assert (LogTopic.SERVER, LogTopic.AUTH) == (_core.LOG_TOPIC_SERVER, _core.LOG_TOPIC_AUTH)
    source = (REPO / "csrc" / "event_queue.h").read_text()
    assert re.search(r"EV_LOG = 1,", source) and _core.EV_LOG == 1


def test_c_never_calls_python_by_name() -> None:
    pattern = re.compile(r"_bridge|PyObject_CallMethod|PyImport_ImportModule|PyImport_Import\b")
    hits = [
        f"{path.name}:{n}: {line.strip()}"
        for path in sorted((REPO / "csrc").glob("*.[ch]"))
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if pattern.search(line)
    ]
    assert hits == []


def test_session_keeps_the_subscription_in_c(tmp_path) -> None:
    server = RealTimeMetricsServer(port=0, db_path=tmp_path / "x.db")
    session = _core.InProcessSession(server, server.max_message_size)
    assert (session.subscribed, session.skill, session.generation) == (True, None, 0)
    reply, due = session.dispatch(json.dumps({"type": "subscribe", "skill": "pytest-run"}))
    assert json.loads(reply)["type"] == "subscription_confirmed"
    assert due is False  # not running: no snapshot to follow the confirmation
    assert (session.subscribed, session.skill, session.generation) == (True, "pytest-run", 1)
    reply, due = session.dispatch('{"type": "unsubscribe"}')
    assert json.loads(reply)["type"] == "unsubscribed"
    assert (session.subscribed, session.skill, session.generation) == (False, None, 2)
    reply, due = session.dispatch('{"type": "ping"}')
    assert json.loads(reply)["type"] == "pong" and session.generation == 2
    assert session.update() is None
    reply, token = session.dispatch_before_auth('{"type": "ping"}')
    assert json.loads(reply)["code"] == "auth_required"
    assert token is None
    assert session.dispatch_before_auth('{"type": "auth", "token": "abc"}') == (None, "abc")
    reply, _ = session.dispatch("x" * (server.max_message_size + 1))
    assert json.loads(reply)["type"] == "error"
    with pytest.raises(TypeError):
        _core.InProcessSession(object(), 10)
    with pytest.raises(TypeError):
        session.dispatch(3)


async def test_metrics_update_is_built_once_per_snapshot(server_factory) -> None:
    server = await server_factory(update_interval=3600)  # no tick but the ones asked for
    first = server.metrics_update(None)
    assert first is not None and json.loads(first)["type"] == "metrics_update"
    assert server.metrics_update(None) is first  # the same text, not rebuilt
    session = _core.InProcessSession(server, server.max_message_size)
    assert session.update() is first  # a session's update shares it
    skill = server.metrics_update("pytest-run")
    assert skill is not first and server.metrics_update("pytest-run") is skill
    await server.broadcast_metrics()  # a new snapshot: new text
    assert server.metrics_update(None) is not first
    reply, due = session.dispatch('{"type": "subscribe"}')
    assert due is True


async def test_start_core_takes_one_config_object(server) -> None:
    with pytest.raises(RuntimeError, match="already running"):
        server.start_core(object())
    fresh = RealTimeMetricsServer(port=0, db_path=server.db_path)
    with pytest.raises(AttributeError):
        fresh.start_core(object())  # a config without the fields
    assert fresh.running is False
