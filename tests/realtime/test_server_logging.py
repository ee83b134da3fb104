"""Logging: start, stop, connects and disconnects reach the `session_buddy.realtime` logger
(or the `logger=` given), and the C code never writes to stdout/stderr itself."""

from __future__ import annotations

import logging

from session_buddy.realtime import RealTimeMetricsServer

from rawws import RawWebSocket
from wsutil import client_url, open_client, recv_type, request, wait_until

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
