"""Untrusted text (docs/realtime/SECURITY.md): bytes that a peer or the DB controls never break the event
path, never reach Python as text it cannot decode, and never forge a log line."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import os
import sqlite3
import urllib.request
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from session_buddy.realtime.auth import generate_token

from protocol_checks import assert_error
from skills_seed import SEED, insert_invocation_raw, iso_ms, utc_now
from wsutil import client_url, open_client, recv_type, request, wait_until

LOGGER = "session_buddy.realtime"
SECRET = "untrusted-text-secret"
SEED_SKILLS = {inv.skill for inv in SEED}


def server_records(caplog: pytest.LogCaptureFixture, since: int = 0) -> list[logging.LogRecord]:
    return [r for r in caplog.records[since:] if r.name == LOGGER or r.name.startswith(LOGGER + ".")]


def assert_no_decode_errors(caplog: pytest.LogCaptureFixture) -> None:
    """A UnicodeDecodeError anywhere (asyncio logs a failed reader callback) means a batch was lost."""
    for r in caplog.records:
        assert not (r.exc_info and isinstance(r.exc_info[1], UnicodeDecodeError)), r.getMessage()
        assert "UnicodeDecodeError" not in r.getMessage()


def assert_log_safe(record: logging.LogRecord) -> None:
    text = record.getMessage()
    bad = [c for c in text if ord(c) < 0x20 or 0x7F <= ord(c) <= 0x9F or c in "\u2028\u2029"]
    assert not bad, f"raw control characters in a log line: {text!r}"


async def handshake_status(server: Any, extra_headers: bytes) -> int:
    """Send an upgrade request with raw header bytes; return the HTTP status of the answer."""
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    try:
        key = base64.b64encode(os.urandom(16))
        writer.write(b"GET / HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nUpgrade: websocket\r\n"
                     b"Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n"
                     % (server.port, key) + extra_headers + b"\r\n")
        await writer.drain()
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
        return int(head.split()[1])
    finally:
        writer.close()


async def http_body(server: Any, path: str) -> bytes:
    url = f"http://127.0.0.1:{server.port}{path}"

    def fetch() -> bytes:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.read()

    return await asyncio.get_running_loop().run_in_executor(None, fetch)


# ---- defect 1: text that is not UTF-8, or cut in the middle of a character --------------------

LONG_ORIGIN = "https://x" + "é" * 60  # 129 bytes: a cut at 100 falls inside an "é"


@pytest.mark.parametrize(
    "origin, shown",
    [
        (b"\xff\xfe", "\\xff\\xfe"),
        # Cut at 99 bytes, before the character that byte 100 falls in, never inside it.
        (LONG_ORIGIN.encode(), "Origin https://x" + "é" * 45 + "... not allowed"),
        (b"https://a\x1b[2Jb", "https://a\\x1b[2Jb"),
    ],
    ids=["invalid-utf8", "cut-mid-character", "terminal-escape"],
)
async def test_a_hostile_origin_is_logged_escaped_and_events_keep_flowing(
    server_factory, caplog, origin: bytes, shown: str
) -> None:
    caplog.set_level(logging.INFO, logger=LOGGER)
    server = await server_factory(allowed_origins=["https://dash.example.com"])
    got: list[dict] = []
    server.register_metrics_subscriber(got.append)
    mark = len(caplog.records)
    for _ in range(3):
        assert await handshake_status(server, b"Origin: " + origin + b"\r\n") == 403
    # The rejection lines arrive: the batch that carried them was not lost.
    rejected = await wait_until(
        lambda: [r for r in server_records(caplog, mark) if "Origin" in r.getMessage()][2:],
        message="the three rejection log lines",
    )
    assert shown in rejected[0].getMessage()
    for r in server_records(caplog, mark):
        assert_log_safe(r)
    # Snapshots and on-demand ticks still get through.
    before = len(got)
    await asyncio.wait_for(server.broadcast_metrics(), 10)
    assert len(got) > before
    assert_no_decode_errors(caplog)


async def test_user_ids_reach_clients_as_valid_text_and_logs_escaped(server_factory, caplog) -> None:
    caplog.set_level(logging.INFO, logger=LOGGER)
    server = await server_factory(require_auth=True, jwt_secret=SECRET)
    users = {
        "é" * 100: "é" * 63,                     # cut at 127 bytes, on a character boundary
        "\ud800x": "\ufffd\ufffd\ufffdx",        # a lone surrogate (escaped in the JSON)
        "eve\nINFO admin logged in": "eve\nINFO admin logged in",  # data keeps its newline
    }
    mark = len(caplog.records)
    opened = []
    try:
        for user in users:
            token = generate_token(user, secret=SECRET)
            ws, hello = await open_client(client_url(server), 10,
                                          additional_headers={"Authorization": f"Bearer {token}"})
            opened.append(ws)
            assert hello["authenticated"] is True
        clients = await wait_until(
            lambda: {c.user_id for c in server.clients} if len(server.clients) == 3 else None,
            message="three authenticated clients",
        )
        assert clients == set(users.values())
        connected = await wait_until(
            lambda: [r for r in server_records(caplog, mark) if "as user" in r.getMessage()][2:] or None,
            message="three connect lines",
        )
        assert any("'eve\\nINFO admin logged in'" in r.getMessage() for r in connected)
        for r in server_records(caplog, mark):
            assert_log_safe(r)
            assert "\n" not in r.getMessage()
    finally:
        await asyncio.gather(*(ws.close() for ws in opened))
    assert_no_decode_errors(caplog)


# ---- defect 10: skill names longer than 1 KiB ---------------------------------------------------


@pytest.mark.parametrize("request_type", ["subscribe", "get_metrics"])
async def test_a_skill_name_over_1_kib_in_a_request_is_invalid(client, request_type: str) -> None:
    for name in ("x" * 22_000, "é" * 513):  # 22,000 bytes; 1,026 bytes in 513 characters
        reply = await request(client, {"type": request_type, "skill_name": name})
        assert_error(reply, "invalid_request", request_type)
        assert "1024 bytes" in reply["message"]
    # The client is still served, and a name of exactly 1 KiB is a name like any other.
    assert (await request(client, {"type": "ping"}))["type"] == "pong"
    reply = await request(client, {"type": request_type, "skill_name": "y" * 1024})
    assert reply["type"] in ("subscription_confirmed", "metrics_response", "error"), reply
    assert reply.get("code") != "invalid_request", reply


async def test_a_long_skill_name_in_the_db_is_skipped_with_one_warning(
    seeded_db, server_factory, client_factory, caplog
) -> None:
    caplog.set_level(logging.WARNING, logger=LOGGER)
    huge = "h" * 1_000_000
    for name in (huge, "k" * 1025):
        insert_invocation_raw(seeded_db.path, name, iso_ms(utc_now()))
    server = await server_factory()
    ws = await client_factory(server)
    for _ in range(3):  # several ticks, each of which reads the names again
        await server.broadcast_metrics()
    update = await recv_type(ws, "metrics_update")
    names = {s["skill_name"] for s in update["data"]["top_skills"]}
    assert names and not any(len(n) > 1024 for n in names)
    assert len(json.dumps(update)) < 64 * 1024
    reply = await request(ws, {"type": "get_metrics", "skill_name": "k" * 1024})
    assert reply["type"] == "error"  # no such skill: the 1,025-byte one was not cut to 1,024
    warnings = [r for r in server_records(caplog) if "longer than 1024 bytes" in r.getMessage()]
    assert len(warnings) == 1, [r.getMessage()[:200] for r in warnings]


# ---- defect 11: skill names that are not valid label values -------------------------------------


async def test_metrics_label_values_always_parse(seeded_db, server_factory) -> None:
    con = sqlite3.connect(seeded_db.path)
    with con:
        for raw in (b"bad\xff\xfename", b"nul\x00name", b"cut\xc3", b'q"b\\n\nx'):
            con.execute("INSERT INTO skill_invocation (skill_name, invoked_at, session_id, completed,"
                        " duration_seconds, created_at) VALUES (CAST(? AS TEXT), ?, 's', 1, 1.0, ?)",
                        (raw, iso_ms(utc_now()), iso_ms(utc_now())))
    con.close()
    server = await server_factory()
    await server.broadcast_metrics()
    body = await http_body(server, "/metrics")
    text = body.decode("utf-8")  # strict: a scraper refuses a page that is not UTF-8
    labels = set()
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == "session_buddy_skill_invocations_total":
                labels.add(s.labels["skill"])
    expected = {"bad\ufffd\ufffdname", "nul\ufffdname", "cut\ufffd", 'q"b\\n\nx'}
    assert expected <= labels, labels
    assert set(SEED_SKILLS) <= labels
