"""/healthz and /metrics on the WebSocket port, read with a real HTTP client and Prometheus's parser."""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from wsutil import recv_type


def http_get(url: str) -> tuple[int, str, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=10) as r:
            return r.status, r.headers.get("content-type", ""), r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers.get("content-type", ""), e.read()


async def get(server: Any, path: str) -> tuple[int, str, bytes]:
    url = server.url.replace("ws://", "http://") + path
    return await asyncio.get_running_loop().run_in_executor(None, http_get, url)


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


async def test_healthz_ok(server, client_factory) -> None:
    await client_factory(server)
    await server.broadcast_metrics()
    status, ctype, body = await get(server, "/healthz")
    data = json.loads(body)
    assert status == 200 and ctype.startswith("application/json")
    assert data["status"] == "ok" and data["db"] == "ok" and data["clients"] == 1
    assert data["uptime_s"] >= 0 and data["last_tick_at"].endswith("Z")


async def test_healthz_503_while_the_db_is_unreadable(server_factory, tmp_path: Path) -> None:
    db = tmp_path / "gone" / "skills.db"
    server = await server_factory(db_path=db)
    await server.broadcast_metrics()
    os.remove(db)
    await server.broadcast_metrics()
    status, _, body = await get(server, "/healthz")
    assert status == 503
    assert json.loads(body)["status"] == "degraded" and json.loads(body)["db"] == "error"


async def test_metrics_match_what_the_test_did(server, client_factory, seeded_db) -> None:
    clients = [await client_factory(server) for _ in range(3)]
    for ws in clients:
        # Received means written, so each of these is already counted.
        await recv_type(ws, "metrics_update", 10)
        await ws.send(json.dumps({"type": "ping"}))
        await recv_type(ws, "pong", 10)
    await clients[0].close()
    await server.broadcast_metrics()
    status, ctype, body = await get(server, "/metrics")
    assert status == 200 and ctype.startswith("text/plain; version=0.0.4")
    text = body.decode()
    # Our own names carry the session_buddy_ prefix; session-buddy's exporter names do not
    # (tests/realtime/test_prom_metrics.py covers those).
    upstream = ("skill_invocations_total{", "skill_duration_seconds_", "skill_completion_rate{",
                "anomalies_detected_total{", "active_sessions_total ", "skill_metrics_cache_last_update ")
    for line in text.splitlines():
        if not line.startswith("#"):
            assert line.startswith("session_buddy_") or line.startswith(upstream), line
    assert "# HELP session_buddy_clients_connected" in text and "# TYPE session_buddy_clients_connected gauge" in text
    s = samples(text)
    assert s[("session_buddy_connections_total", ())] == 3
    assert s[("session_buddy_messages_received_total", ())] == 3
    assert s[("session_buddy_messages_sent_total", ())] >= 3 * 2 + 3  # connected + >=1 update + pong each
    assert s[("session_buddy_connections_rejected_total", (("reason", "server_full"),))] == 0
    assert s[("session_buddy_tick_duration_seconds_count", ())] >= 1
    assert s[("session_buddy_db_errors_total", ())] == 0
    with sqlite3.connect(seeded_db.path) as conn:
        expected = dict(conn.execute("SELECT skill_name, COUNT(*) FROM skill_invocation GROUP BY skill_name"))
    for skill, count in expected.items():
        assert s[("session_buddy_skill_invocations_total", (("skill", skill),))] == count
    connected = s[("session_buddy_clients_connected", ())]
    assert connected in (2, 3)  # the closed one may still be finishing its close handshake


async def test_unknown_path_is_404(server) -> None:
    status, _, _ = await get(server, "/no-such-page")
    assert status == 404
