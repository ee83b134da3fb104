"""Constructor validation (TypeError / ValueError at construction) and the public attributes."""

from __future__ import annotations

import logging
import math
from pathlib import Path

import pytest

from session_buddy.realtime import RealTimeMetricsServer
from session_buddy.storage import SkillsStorage

from protocol_checks import assert_connected
from wsutil import client_url, open_client, recv_type


@pytest.mark.parametrize(
    "kwargs",
    [
        {"port": "80"},
        {"port": None},
        {"port": 8765.0},
        {"host": None},
        {"host": 123},
        {"update_interval": "1"},
        {"update_interval": None},
        {"db_path": 123},
        {"max_clients": "3"},
        {"max_message_size": "65536"},
        {"top_n": "10"},
        {"logger": object()},
    ],
    ids=lambda kw: ",".join(f"{k}={v!r}" for k, v in kw.items()),
)
def test_wrong_types_raise_type_error(tmp_path, kwargs) -> None:
    kwargs.setdefault("db_path", tmp_path / "skills.db")
    with pytest.raises(TypeError):
        RealTimeMetricsServer(**kwargs)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"port": -1},
        {"port": 65536},
        {"port": 70000},
        {"update_interval": 0},
        {"update_interval": 0.0},
        {"update_interval": -1.0},
        {"update_interval": math.nan},
        {"update_interval": math.inf},
        {"update_interval": -math.inf},
        {"max_clients": -1},
        {"max_message_size": 0},
        {"max_message_size": -5},
        {"top_n": 0},
        {"top_n": -1},
        {"anomaly_threshold": 0.0},
        {"anomaly_threshold": -2.0},
        {"anomaly_threshold": math.nan},
        {"anomaly_threshold": math.inf},
    ],
    ids=lambda kw: ",".join(f"{k}={v!r}" for k, v in kw.items()),
)
def test_bad_values_raise_value_error(tmp_path, kwargs) -> None:
    kwargs.setdefault("db_path", tmp_path / "skills.db")
    with pytest.raises(ValueError):
        RealTimeMetricsServer(**kwargs)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"port": 0},
        {"port": 65535},
        {"max_clients": 0},
        {"update_interval": 1},
        {"update_interval": 0.001},
        {"top_n": 1},
        {"max_message_size": 1},
    ],
    ids=lambda kw: ",".join(f"{k}={v!r}" for k, v in kw.items()),
)
def test_edge_values_are_accepted(tmp_path, kwargs) -> None:
    server = RealTimeMetricsServer(db_path=tmp_path / "skills.db", **kwargs)
    for key, value in kwargs.items():
        assert getattr(server, key) == value
    assert server.running is False


def test_positional_arguments_follow_the_legacy_order(tmp_path) -> None:
    db = tmp_path / "skills.db"
    server = RealTimeMetricsServer("127.0.0.1", 9999, str(db), 0.5, False)
    assert server.host == "127.0.0.1"
    assert server.port == 9999
    assert server.db_path == db
    assert server.update_interval == 0.5
    assert server.require_auth is False


def test_keyword_only_options_are_keyword_only(tmp_path) -> None:
    with pytest.raises(TypeError):
        RealTimeMetricsServer("localhost", 0, tmp_path / "x.db", 1.0, False, 100)


def test_defaults(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    server = RealTimeMetricsServer()
    assert server.host == "localhost"
    assert server.port == 8765
    assert server.db_path == Path.cwd() / ".session-buddy" / "skills.db"
    assert server.update_interval == 1.0
    assert isinstance(server.update_interval, float)
    assert server.require_auth is False
    assert server.running is False
    assert server._running is False
    assert server._server is None
    assert server._broadcast_task is None
    assert server.clients == set()
    assert server.logger is logging.getLogger("session_buddy.realtime")


@pytest.mark.parametrize("kind", ["str", "path", "pathlike"])
def test_db_path_is_kept_as_a_path(tmp_path, kind) -> None:
    target = tmp_path / "sub" / "skills.db"

    class PathLike:
        def __fspath__(self) -> str:
            return str(target)

    value = {"str": str(target), "path": target, "pathlike": PathLike()}[kind]
    server = RealTimeMetricsServer(port=0, db_path=value)
    assert isinstance(server.db_path, Path)
    assert server.db_path == target


def test_update_interval_is_a_float(tmp_path) -> None:
    server = RealTimeMetricsServer(db_path=tmp_path / "x.db", update_interval=2)
    assert server.update_interval == 2.0
    assert isinstance(server.update_interval, float)


def test_storage_is_a_skills_storage_on_db_path(seeded_db) -> None:
    server = RealTimeMetricsServer(port=0, db_path=seeded_db.path)
    assert isinstance(server.storage, SkillsStorage)
    assert Path(server.storage.db_path) == seeded_db.path
    assert server.storage.get_metrics("pytest-run") is not None


async def test_attributes_while_running(server_factory) -> None:
    server = await server_factory(host="127.0.0.1", update_interval=0.25)
    assert server.running is True
    assert server._running is True
    assert server._server is not None
    assert server._broadcast_task is not None
    assert server.host == "127.0.0.1"
    assert server.update_interval == 0.25
    assert server.url == f"ws://127.0.0.1:{server.port}"
    await server.stop()
    assert server._server is None
    assert server._broadcast_task is None


async def test_subclass_works(server_factory, seeded_db) -> None:
    class Custom(RealTimeMetricsServer):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.started_by_test = True

        def describe(self) -> str:
            return f"custom on {self.port}"

    server = await server_factory(cls=Custom)
    assert isinstance(server, RealTimeMetricsServer)
    assert server.started_by_test is True
    assert server.describe() == f"custom on {server.port}"
    ws, hello = await open_client(client_url(server))
    try:
        assert_connected(hello)
        await recv_type(ws, "metrics_update")
    finally:
        await ws.close()

