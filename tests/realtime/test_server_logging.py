"""Logging: start, stop, connects and disconnects reach the `session_buddy.realtime` logger
(or the `logger=` given), and the C code never writes to stdout/stderr itself."""

from __future__ import annotations

import asyncio
import logging
import time

import pytest
from websockets.asyncio.client import connect

from session_buddy.realtime import RealTimeMetricsServer

from rawws import RawWebSocket
from wsutil import CONNECT_KWARGS, client_url, expect_close, open_client, recv_type, request, wait_until

LOGGER = "session_buddy.realtime"
CUSTOM = "tests.realtime.custom_logger"


def _from(caplog, name: str, since: int = 0) -> list[logging.LogRecord]:
    return [r for r in caplog.records[since:] if r.name == name or r.name.startswith(name + ".")]


async def _exercise(server: RealTimeMetricsServer, caplog, name: str) -> None:
    """start -> connect -> disconnect -> stop, checking that each step logs on `name`."""
    mark = len(caplog.records)
    await server.start()
    await wait_until(lambda: [r for r in _from(caplog, name, mark) if r.levelno >= logging.INFO],
                     timeout=5, message=f"a start record on {name}")

    mark = len(caplog.records)
    ws, _ = await open_client(client_url(server))
    try:
        await recv_type(ws, "metrics_update")
        await wait_until(
            lambda: [r for r in _from(caplog, name, mark) if "connect" in r.getMessage().lower()],
            timeout=5, message=f"a connect record on {name}",
        )
    finally:
        mark = len(caplog.records)
        await ws.close()
    await wait_until(
        lambda: [r for r in _from(caplog, name, mark)
                 if any(w in r.getMessage().lower() for w in ("disconnect", "closed", "left"))],
        timeout=5, message=f"a disconnect record on {name}",
    )

    mark = len(caplog.records)
    await server.stop()
    await wait_until(lambda: _from(caplog, name, mark), timeout=5, message=f"a stop record on {name}")


async def test_lifecycle_and_clients_are_logged(seeded_db, caplog) -> None:
    caplog.set_level(logging.INFO, logger=LOGGER)
    server = RealTimeMetricsServer(port=0, db_path=seeded_db.path, update_interval=0.2)
    try:
        await _exercise(server, caplog, LOGGER)
    finally:
        if server.running:
            await server.stop()


async def test_custom_logger_receives_everything(seeded_db, caplog) -> None:
    caplog.set_level(logging.INFO, logger=LOGGER)
    caplog.set_level(logging.INFO, logger=CUSTOM)
    custom = logging.getLogger(CUSTOM)
    server = RealTimeMetricsServer(port=0, db_path=seeded_db.path, update_interval=0.2, logger=custom)
    assert server.logger is custom
    try:
        await _exercise(server, caplog, CUSTOM)
        # Idempotency warnings go there too.
        mark = len(caplog.records)
        await server.stop()
        await wait_until(
            lambda: [r for r in _from(caplog, CUSTOM, mark) if r.levelno == logging.WARNING],
            timeout=5, message="the second stop() warning on the custom logger",
        )
    finally:
        if server.running:
            await server.stop()
    assert _from(caplog, LOGGER) == [], [r.getMessage() for r in _from(caplog, LOGGER)]


async def test_c_code_never_writes_to_stdout_or_stderr(seeded_db, caplog, capfd) -> None:
    caplog.set_level(logging.DEBUG, logger=LOGGER)
    server = RealTimeMetricsServer(port=0, db_path=seeded_db.path, update_interval=0.1)
    capfd.readouterr()
    await server.start()
    try:
        ws, _ = await open_client(client_url(server))
        await recv_type(ws, "metrics_update")
        assert (await request(ws, "not json"))["code"] == "invalid_json"
        await ws.close()
        raw = await RawWebSocket.connect("127.0.0.1", server.port)
        await raw.recv_json()
        await raw.send_text(b'{"type":"ping","x":"\xff"}')  # invalid UTF-8: close 1007
        await raw.read_close()
        await raw.aclose()
        await wait_until(lambda: len(server.clients) == 0, message="both clients gone")
    finally:
        await server.stop()
    out, err = capfd.readouterr()
    assert out == ""
    assert err == ""
    assert _from(caplog, LOGGER), "the server logged nothing at DEBUG level"


# ---- session-buddy's logger names ------------------------------------------------------------

SERVER = "session_buddy.realtime.websocket_server"
AUTH = "session_buddy.realtime.auth"
SECRET = "logging-test-secret-0123456789abcdef-0123456789abcdef-0123456789"


def _token(user: str, secret: str = SECRET) -> str:
    import jwt as pyjwt

    return pyjwt.encode({"user_id": user, "exp": int(time.time()) + 3600}, secret, algorithm="HS256")


class _Lines(logging.Handler):
    """What a root handler set up by logging.basicConfig() would print."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[tuple[str, str]] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append((record.name, record.getMessage()))


@pytest.fixture
def root_lines():
    handler = _Lines()
    root = logging.getLogger()
    root.addHandler(handler)
    yield handler.lines
    root.removeHandler(handler)


@pytest.mark.filterwarnings("ignore::jwt.warnings.InsecureKeyLengthWarning")
async def test_lines_go_to_session_buddys_logger_names_once_each(seeded_db, caplog, root_lines) -> None:
    caplog.set_level(logging.INFO, logger=LOGGER)
    server = RealTimeMetricsServer(port=0, db_path=seeded_db.path, update_interval=0.2, require_auth=True,
                                   jwt_secret=SECRET)
    await server.start()
    try:
        url = client_url(server)
        ws, hello = await open_client(url, additional_headers={"Authorization": f"Bearer {_token('lena')}"})
        assert hello["authenticated"] is True
        await ws.close()
        bad = _token("mallory", secret="wrong-secret-0123456789abcdef-0123456789abcdef-0123456789")
        async with connect(url, additional_headers={"Authorization": f"Bearer {bad}"}, **CONNECT_KWARGS) as rejected:
            assert await expect_close(rejected) == 4001
        await wait_until(lambda: len(server.clients) == 0, message="both clients gone")
    finally:
        await server.stop()

    def on(name: str, *words: str) -> list[str]:
        return [m for n, m in root_lines if n == name and all(w in m for w in words)]

    assert on(SERVER, "listening"), "start on websocket_server"
    assert on(SERVER, "stopped"), "stop on websocket_server"
    assert on(SERVER, "connected from", "lena"), "the connect on websocket_server"
    assert on(SERVER, "disconnected"), "the disconnect on websocket_server"
    assert on(AUTH, "authenticated as user 'lena'"), "the success on auth"
    assert on(AUTH, "authentication failed", "signature"), "the failure on auth"
    assert not [m for n, m in root_lines if n == LOGGER], "nothing on the parent itself: it would print twice"
    assert all(bad not in m for _, m in root_lines)
    ours = [line for line in root_lines if line[0].startswith(LOGGER)]
    assert len(ours) == len(set(ours)), "a line reached the root handler twice"


async def test_a_custom_logger_still_gets_every_topic(seeded_db, caplog) -> None:
    caplog.set_level(logging.INFO)
    custom = logging.getLogger(CUSTOM)
    server = RealTimeMetricsServer(port=0, db_path=seeded_db.path, update_interval=0.2, logger=custom,
                                   require_auth=True, jwt_secret=SECRET)
    await server.start()
    try:
        async with connect(client_url(server), additional_headers={"Authorization": "Bearer nope"},
                           **CONNECT_KWARGS) as rejected:
            assert await expect_close(rejected) == 4001
        await wait_until(lambda: [r for r in _from(caplog, CUSTOM) if "authentication failed" in r.getMessage()],
                         message="the auth failure on the custom logger")
    finally:
        await server.stop()
    assert _from(caplog, LOGGER) == []


# ---- libwebsockets' own lines, with two servers in one process ------------------------------------


async def _provoke_lws_line(server: RealTimeMetricsServer) -> None:
    """A request whose headers overflow lws's buffer: lws logs "Ran out of header data space"."""
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    try:
        writer.write(b"GET / HTTP/1.1\r\nHost: x\r\n" + b"X-Junk: " + b"a" * 20000 + b"\r\n\r\n")
        await writer.drain()
        await asyncio.wait_for(reader.read(), 15)
    except (ConnectionError, asyncio.TimeoutError):
        pass
    finally:
        writer.close()


def _lws_lines(caplog, name: str) -> list[str]:
    return [r.getMessage() for r in _from(caplog, name) if r.getMessage().startswith("libwebsockets:")]


async def test_each_of_two_servers_keeps_its_own_lws_lines(seeded_db, caplog) -> None:
    caplog.set_level(logging.INFO, logger="tests.realtime.lws_a")
    caplog.set_level(logging.INFO, logger="tests.realtime.lws_b")
    a = RealTimeMetricsServer(port=0, db_path=seeded_db.path, logger=logging.getLogger("tests.realtime.lws_a"))
    b = RealTimeMetricsServer(port=0, db_path=seeded_db.path, logger=logging.getLogger("tests.realtime.lws_b"))
    await a.start()
    try:
        await b.start()
        await _provoke_lws_line(a)  # while both run, a's line is a's
        await wait_until(lambda: _lws_lines(caplog, "tests.realtime.lws_a"), message="a's lws line")
        await b.stop()  # stopping the second server must not silence the first
        mark = len(_lws_lines(caplog, "tests.realtime.lws_a"))
        await _provoke_lws_line(a)
        await wait_until(lambda: len(_lws_lines(caplog, "tests.realtime.lws_a")) > mark,
                         message="a's lws line after b stopped")
        assert _lws_lines(caplog, "tests.realtime.lws_b") == [], "a's lines went to b"
    finally:
        if b.running:
            await b.stop()
        await a.stop()
