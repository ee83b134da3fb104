"""The examples as a user runs them: real subprocesses against a real server on a real SQLite file."""

from __future__ import annotations

import asyncio
import json
import math
import os
import shutil
import signal
import sys
import threading
from collections.abc import Iterator
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from skills_seed import EXPECTED_ORDER, create_db, store_invocation, utc_now
from tcp_proxy import TcpProxy
from wsutil import client_url, free_port

ROOT = Path(__file__).resolve().parents[2]
NODE_CLIENT = ROOT / "examples" / "node_client.js"
ALERT_MONITOR = ROOT / "examples" / "alert_monitor.py"
NODE = shutil.which("node")
RUN_TIMEOUT = 30.0

# The drop test_analytics uses: a 9-in-10 baseline three hours ago, then three failures now.
DROP_Z = (0.0 - 0.9) / math.sqrt(10 * 0.9 * 0.1 / 9)


async def run(*argv: str | Path, timeout: float = RUN_TIMEOUT) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        *map(str, argv), cwd=ROOT, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout)
    except (asyncio.TimeoutError, TimeoutError):
        proc.kill()
        await proc.wait()
        raise AssertionError(f"{argv} still running after {timeout} s") from None
    return proc.returncode, out.decode(), err.decode()


async def run_node(*args: str) -> tuple[int, str, str]:
    if NODE is None:
        pytest.skip("node is not installed")
    rc, out, err = await run(NODE, NODE_CLIENT, *args)
    if rc == 2 and "'ws' package is missing" in err:
        pytest.skip("the Node 'ws' package is not installed (npm install ws, or apt install node-ws)")
    return rc, out, err


def update_lines(out: str) -> list[str]:
    return [line for line in out.splitlines() if line.startswith("#")]


async def test_node_client_prints_count_updates_and_exits_zero(server, seeded_db) -> None:
    rc, out, err = await run_node(client_url(server), "--count", "2")
    assert rc == 0, err
    assert out.splitlines()[0].startswith(f"connected to {client_url(server)} (protocol 1.1)")
    lines = update_lines(out)
    assert len(lines) == 2, out
    seqs = [int(line.split()[0][1:]) for line in lines]
    assert seqs[0] < seqs[1]
    for line in lines:
        parts = line.split("  ", 1)[1].split(" | ")
        assert [p.split()[0] for p in parts] == EXPECTED_ORDER
        e = seeded_db.expected_entry("pytest-run")  # 6 in 24 h, 5 of them completed, 2.6 s mean
        rate = round(e["completed_count"] / e["invocation_count"] * 100)
        assert parts[0] == f"pytest-run {e['invocation_count']}/24h {rate}% {e['avg_duration']:.1f}s"


async def test_node_client_watches_one_skill(server, seeded_db) -> None:
    rc, out, err = await run_node(client_url(server), "mypy", "--count", "2")
    assert rc == 0, err
    assert "watching mypy" in out
    lines = update_lines(out)
    assert len(lines) == 2
    for line in lines:  # only mypy, never the all-skills form sent before the confirmation
        assert line.split("  ", 1)[1] == "mypy 4/24h 75% 10.0s"


async def test_node_client_connection_failure_is_one_line_and_nonzero() -> None:
    rc, out, err = await run_node(f"ws://127.0.0.1:{free_port()}", "--count", "1")
    assert rc == 1
    assert err.strip().splitlines() == [err.strip()]
    assert err.startswith("node_client: cannot connect to ws://127.0.0.1:")


def baseline_db(path: Path) -> Path:
    """mypy's baseline three hours ago: 9 of 10 completed. No anomaly yet."""
    create_db(path)
    now = utc_now()
    for i in range(10):
        store_invocation(path, "mypy", now - timedelta(hours=3, minutes=i), completed=i != 0, duration=3.0)
    return path


def open_drop(path: Path) -> None:
    """Three failures now: a performance_drop of mypy opens (z = DROP_Z)."""
    now = utc_now()
    for i in range(3):
        store_invocation(path, "mypy", now - timedelta(minutes=2 + i), completed=False)


def close_drop(path: Path) -> None:
    """Enough completed runs to bring the current mean back to the baseline: the drop resolves."""
    now = utc_now()
    for i in range(30):
        store_invocation(path, "mypy", now - timedelta(seconds=i), completed=True, duration=3.0)


def anomaly_db(path: Path) -> Path:
    baseline_db(path)
    open_drop(path)
    return path


def has_drop(update: dict[str, Any]) -> bool:
    return any((a["skill_name"], a["anomaly_type"]) == ("mypy", "performance_drop") for a in update["data"]["anomalies"])


async def next_update(updates: asyncio.Queue[dict[str, Any]], predicate: Any) -> dict[str, Any]:
    """The first snapshot the server broadcasts from now on that satisfies predicate."""
    async def wait() -> dict[str, Any]:
        while not predicate(update := await updates.get()):
            pass
        return update

    return await asyncio.wait_for(wait(), RUN_TIMEOUT)


async def line_containing(stream: asyncio.StreamReader, text: str) -> str:
    """Read stream line by line until one contains text; return that line."""
    async def wait() -> str:
        while line := (await stream.readline()).decode():
            if text in line:
                return line
        raise AssertionError(f"the stream ended before a line with {text!r}")

    return await asyncio.wait_for(wait(), RUN_TIMEOUT)


def events(out: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in out.splitlines() if line.strip()]


async def test_alert_monitor_alerts_once_per_active_anomaly(server_factory, tmp_path: Path) -> None:
    server = await server_factory(db_path=anomaly_db(tmp_path / "own" / "skills.db"))
    rc, out, err = await run(sys.executable, ALERT_MONITOR, "--url", client_url(server), "--count", "4")
    assert rc == 0, err
    got = events(out)
    assert len(got) == 1, got  # four updates carry the anomaly; one alert
    alert = got[0]
    assert {k: alert[k] for k in ("event", "severity", "skill", "type")} == {
        "event": "alert", "severity": "WARNING", "skill": "mypy", "type": "performance_drop"}
    assert math.isclose(alert["deviation"], DROP_Z, rel_tol=1e-9)
    assert math.isclose(alert["baseline"], 0.9, rel_tol=1e-9) and alert["observed"] == 0
    assert alert["detected_at"].endswith("Z") and alert["timestamp"].endswith("Z")
    assert "WARNING ANOMALY mypy performance_drop: baseline 0.9 -> observed 0 (z=-2.85)" in err


class _Hook(BaseHTTPRequestHandler):
    received: list[dict[str, Any]]

    def do_POST(self) -> None:  # noqa: N802 - http.server's naming
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.server.received.append(  # type: ignore[attr-defined]
            {"content_type": self.headers.get("Content-Type"), "event": json.loads(body)})
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def webhook() -> Iterator[ThreadingHTTPServer]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Hook)
    httpd.received = []  # type: ignore[attr-defined]
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield httpd
    httpd.shutdown()
    httpd.server_close()


async def test_alert_monitor_resolves_posts_the_webhook_and_stops_on_ctrl_c(
    server_factory, tmp_path: Path, webhook: ThreadingHTTPServer
) -> None:
    db = anomaly_db(tmp_path / "own" / "skills.db")
    server = await server_factory(db_path=db)
    hook_url = f"http://127.0.0.1:{webhook.server_address[1]}/alerts"
    proc = await asyncio.create_subprocess_exec(
        sys.executable, str(ALERT_MONITOR), "--url", client_url(server), "--webhook", hook_url, cwd=ROOT,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    try:
        first = json.loads(await asyncio.wait_for(proc.stdout.readline(), RUN_TIMEOUT))
        assert (first["event"], first["skill"], first["type"]) == ("alert", "mypy", "performance_drop")

        close_drop(db)
        second = json.loads(await asyncio.wait_for(proc.stdout.readline(), RUN_TIMEOUT))
        assert (second["event"], second["severity"], second["skill"], second["type"]) == (
            "resolved", "INFO", "mypy", "performance_drop")

        proc.send_signal(signal.SIGINT)
        assert await asyncio.wait_for(proc.wait(), RUN_TIMEOUT) == 0
        rest = (await proc.stdout.read()).decode()
        err = (await proc.stderr.read()).decode()
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert rest == ""  # nothing raised twice
    assert "Traceback" not in err and "INFO resolved mypy performance_drop" in err
    # emit() awaits each POST before the monitor looks at the stop signal, so both are in by now.
    assert [r["event"] for r in webhook.received] == [first, second]  # type: ignore[attr-defined]
    assert {r["content_type"] for r in webhook.received} == {"application/json"}  # type: ignore[attr-defined]


async def test_alert_monitor_resumes_a_cut_connection_and_reports_the_anomaly_it_missed(
    server_factory, tmp_path: Path
) -> None:
    """The connection dies; meanwhile an anomaly opens and resolves. The monitor reconnects with
    `since`, the server replays the missed updates, and both events come out, stamped with the
    updates that carried them."""
    db = baseline_db(tmp_path / "own" / "skills.db")
    server = await server_factory(db_path=db)
    updates: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    server.register_metrics_subscriber(updates.put_nowait)  # every snapshot, in order
    proxy = await TcpProxy(server.port).start()
    proc = await asyncio.create_subprocess_exec(
        sys.executable, str(ALERT_MONITOR), "--url", f"ws://127.0.0.1:{proxy.port}", cwd=ROOT,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    try:
        started = await line_containing(proc.stderr, "watching all skills from seq")
        assert await proxy.cut() == 1  # the monitor's connection dies; its retries wait

        open_drop(db)
        await next_update(updates, has_drop)
        close_drop(db)
        await next_update(updates, lambda u: not has_drop(u))
        proxy.restore()

        alert = json.loads(await asyncio.wait_for(proc.stdout.readline(), RUN_TIMEOUT))
        resolved = json.loads(await asyncio.wait_for(proc.stdout.readline(), RUN_TIMEOUT))
        resumed = await line_containing(proc.stderr, "resumed after seq")
        proc.send_signal(signal.SIGINT)
        assert await asyncio.wait_for(proc.wait(), RUN_TIMEOUT) == 0
        rest = (await proc.stdout.read()).decode()
        err = (await proc.stderr.read()).decode()
        # Every snapshot since the monitor started (a subscriber may be conflated, these are not).
        broadcast = server.updates_since(int(started.split()[-1]))
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        await proxy.close()
    opened = next(u for u in broadcast if has_drop(u))
    resolved_at = next(u for u in broadcast if u["seq"] > opened["seq"] and not has_drop(u))
    assert (alert["event"], alert["skill"], alert["type"]) == ("alert", "mypy", "performance_drop")
    assert math.isclose(alert["deviation"], DROP_Z, rel_tol=1e-9)
    assert (resolved["event"], resolved["skill"], resolved["type"]) == ("resolved", "mypy", "performance_drop")
    # Replayed, not seen live: each event carries the timestamp of the snapshot that opened or
    # closed the anomaly while the connection was down.
    assert alert["timestamp"] == opened["timestamp"] and resolved["timestamp"] == resolved_at["timestamp"]
    missed = int(resumed.split(", ")[-1].split()[0])
    assert missed >= resolved_at["seq"] - opened["seq"] + 1, resumed
    assert rest == "" and "Traceback" not in err  # nothing twice, no gap
    assert proxy.accepted >= 2


async def test_alert_monitor_reports_a_gap_when_the_server_restarted(server_factory, tmp_path: Path) -> None:
    """A new server on the same port has a new epoch: nothing can be replayed, and the monitor
    says since when updates are lost instead of pretending it saw everything."""
    db = baseline_db(tmp_path / "own" / "skills.db")
    first = await server_factory(db_path=db)
    port = first.port
    proc = await asyncio.create_subprocess_exec(
        sys.executable, str(ALERT_MONITOR), "--url", f"ws://127.0.0.1:{port}", cwd=ROOT,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    try:
        started = await line_containing(proc.stderr, "watching all skills from seq")
        old_epoch = first.epoch
        await first.stop()
        second = await server_factory(db_path=db, port=port)
        assert second.epoch != old_epoch
        gap = json.loads(await asyncio.wait_for(proc.stdout.readline(), RUN_TIMEOUT))
        proc.send_signal(signal.SIGINT)
        assert await asyncio.wait_for(proc.wait(), RUN_TIMEOUT) == 0
        err = (await proc.stderr.read()).decode()
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert (gap["event"], gap["severity"], gap["epoch"], gap["new_epoch"]) == ("gap", "WARNING", old_epoch, second.epoch)
    # Where it stood: its `connected`, or a later update it saw.
    assert isinstance(gap["after_seq"], int) and gap["after_seq"] >= int(started.split()[-1])
    assert "WARNING GAP: the updates after seq" in err
