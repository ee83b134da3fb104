"""The command line: a real subprocess, real signals, a real client."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
from pathlib import Path

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

ROOT = Path(__file__).resolve().parents[2]


async def start_cli(*args: str, cwd: Path) -> tuple[asyncio.subprocess.Process, str]:
    """Run the CLI and return it with the URL it printed."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "session_buddy.realtime", *args, cwd=cwd, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    line = await asyncio.wait_for(proc.stdout.readline(), 20)
    assert line.startswith(b"serving ws://"), line
    return proc, line.split()[1].decode()


async def test_port_zero_prints_the_url_and_sigterm_stops_cleanly(tmp_path: Path) -> None:
    proc, url = await start_cli("--port", "0", "--interval", "0.2", "--db", str(tmp_path / "s.db"),
                                cwd=tmp_path)
    try:
        async with connect(url) as ws:
            assert '"type":"connected"' in await asyncio.wait_for(ws.recv(), 10)
            proc.send_signal(signal.SIGTERM)
            with pytest.raises(ConnectionClosed) as closed:
                while True:
                    await asyncio.wait_for(ws.recv(), 10)
            assert closed.value.rcvd is not None and closed.value.rcvd.code == 1001
        assert await asyncio.wait_for(proc.wait(), 15) == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


async def test_sigint_exits_zero_and_creates_the_default_db(tmp_path: Path) -> None:
    proc, _ = await start_cli("--port", "0", cwd=tmp_path)
    proc.send_signal(signal.SIGINT)
    assert await asyncio.wait_for(proc.wait(), 15) == 0
    assert (tmp_path / ".session-buddy" / "skills.db").is_file()
    stderr = (await proc.stderr.read()).decode()
    assert "Traceback" not in stderr


async def test_busy_port_is_one_line_and_nonzero(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "session_buddy.realtime", "--port", str(port), "--log-level", "ERROR",
            cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(ROOT)},
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )
        out, err = await asyncio.wait_for(proc.communicate(), 20)
    assert proc.returncode == 1
    lines = [line for line in err.decode().splitlines() if line.strip()]
    assert len(lines) == 1, lines
    assert f"cannot listen on localhost:{port}" in lines[0] and "in use" in lines[0]


@pytest.mark.parametrize("flag", [["--port", "70000"], ["--interval", "0"], ["--bogus"], ["--max-pending", "0"],
                                  ["--allowed-host", "dash.internal:8765"], ["--allowed-host", "http://x"]])
async def test_bad_flag_is_a_usage_error(tmp_path: Path, flag: list[str]) -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "session_buddy.realtime", *flag, cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    _, err = await asyncio.wait_for(proc.communicate(), 20)
    assert proc.returncode == 2
    assert err.decode().strip().splitlines()[-1].startswith("session-buddy-realtime: error:")


async def test_allowed_host_and_max_pending_reach_the_server(tmp_path: Path) -> None:
    """--allowed-host widens the Host check (the server is bound to localhost); --max-pending 1
    lets a second slow connection drop the first."""
    proc, url = await start_cli("--port", "0", "--db", str(tmp_path / "s.db"), "--allowed-host", "Dash.Internal",
                                "--allowed-host", "10.9.8.7", "--max-pending", "1", cwd=tmp_path)
    port = int(url.rsplit(":", 1)[1])
    try:
        for name, status in (("dash.internal:1234", b"200"), ("10.9.8.7", b"200"), ("evil.example", b"403")):
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(f"GET /healthz HTTP/1.1\r\nHost: {name}\r\nConnection: close\r\n\r\n".encode())
            head = await asyncio.wait_for(reader.readuntil(b"\r\n"), 10)
            writer.close()
            assert head.startswith(b"HTTP/1.1 " + status), (name, head)
        first_reader, first = await asyncio.open_connection("127.0.0.1", port)
        first.write(b"GET / HTTP/1.1\r\n")
        await first.drain()
        # Connected first, it is first in the kernel's accept queue, so it is the oldest.
        _, second = await asyncio.open_connection("127.0.0.1", port)
        second.write(b"GET / HTTP/1.1\r\n")
        await second.drain()
        assert await asyncio.wait_for(first_reader.read(), 10) == b""
        first.close()
        second.close()
    finally:
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), 15) == 0
