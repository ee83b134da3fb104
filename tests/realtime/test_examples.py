"""The examples/ clients against a real server: the Node.js client and the Python alert script.
(The browser example runs in tests/realtime/test_dashboard_browser.py.)"""

from __future__ import annotations

import asyncio
import json
import shutil
import sys
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import pytest

from skills_seed import insert_anomaly

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
NODE = shutil.which("node")


async def run(*cmd: str, timeout: float = 60) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        *cmd, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await asyncio.wait_for(proc.communicate(), timeout)
    return proc.returncode, out.decode(), err.decode()


def node_has_ws() -> bool:
    return Path("/usr/share/nodejs/ws").exists()


needs_node = pytest.mark.skipif(not NODE or not node_has_ws(),
                                reason="needs node and Debian's node-ws (make setup installs them)")


@needs_node
async def test_node_client_prints_updates_and_exits(server, seeded_db) -> None:
    code, out, err = await run(NODE, str(EXAMPLES / "node_client.js"), server.url, "--count", "2")
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0] == f"connected to {server.url}"
    updates = [line for line in lines if line.startswith("#")]
    assert len(updates) == 2
    first_skill = seeded_db.expected_order[0]
    assert all(f" {first_skill} " in line for line in updates)


@needs_node
async def test_node_client_follows_one_skill(server) -> None:
    code, out, err = await run(NODE, str(EXAMPLES / "node_client.js"), server.url, "black", "--count", "2")
    assert code == 0, err
    updates = [line for line in out.splitlines() if line.startswith("#")]
    assert "subscribed to black" in out
    assert len(updates) == 2 and all(" black " in u and "pytest-run" not in u for u in updates)


@needs_node
async def test_node_client_reports_an_unreachable_server(unused_tcp_port) -> None:
    code, _, err = await run(NODE, str(EXAMPLES / "node_client.js"), f"ws://127.0.0.1:{unused_tcp_port}")
    assert code == 1
    assert "cannot talk to" in err and len(err.strip().splitlines()) == 1


class _Hook(BaseHTTPRequestHandler):
    received: list[dict] = []

    def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
        body = self.rfile.read(int(self.headers["Content-Length"]))
        type(self).received.append(json.loads(body))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


async def test_alert_script_alerts_once_per_active_anomaly_and_calls_the_webhook(server, seeded_db) -> None:
    insert_anomaly(seeded_db.path, "mypy", "performance_drop", 0.8, 0.3, -2.8)
    hook = HTTPServer(("127.0.0.1", 0), _Hook)
    _Hook.received = []
    thread = threading.Thread(target=hook.serve_forever, daemon=True)
    thread.start()
    try:
        code, out, err = await run(
            sys.executable, str(EXAMPLES / "alert_monitor.py"), "--url", server.url, "--updates", "5",
            "--webhook", f"http://127.0.0.1:{hook.server_port}/alert",
        )
    finally:
        hook.shutdown()
        hook.server_close()
    assert code == 0, err
    alerts = [json.loads(line) for line in out.splitlines()]
    # Five updates carry the anomaly (it may appear from the second on); it alerts once.
    assert len(alerts) == 1, alerts
    alert = alerts[0]
    assert (alert["severity"], alert["skill"], alert["type"]) == ("WARNING", "mypy", "performance_drop")
    assert alert["deviation"] == pytest.approx(-2.8)
    assert _Hook.received == alerts


async def test_alert_script_reports_an_unreachable_server(unused_tcp_port) -> None:
    code, out, err = await run(sys.executable, str(EXAMPLES / "alert_monitor.py"),
                               "--url", f"ws://127.0.0.1:{unused_tcp_port}")
    assert code == 1 and out == ""
    assert "cannot connect" in err
