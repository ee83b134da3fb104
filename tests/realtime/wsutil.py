"""Await-an-event helpers shared by the realtime tests (no fixed sleeps anywhere).

Imported as a plain module: tests/conftest.py puts tests/realtime on sys.path.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import math
import os
import re
import socket
import threading
import time
from collections.abc import Awaitable, Callable
from datetime import datetime, timezone
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

__all__ = [
    "CONNECT_KWARGS",
    "DEFAULT_TIMEOUT",
    "TS_RE",
    "ThreadCounts",
    "client_url",
    "expect_close",
    "free_port",
    "is_number",
    "open_client",
    "open_fd_count",
    "parse_ts",
    "recv_json",
    "recv_reply",
    "recv_type",
    "recv_update_where",
    "recv_updates",
    "request",
    "thread_counts",
    "wait_until",
]

# Generous: the CI machine has two loaded cores.
DEFAULT_TIMEOUT = 10.0

TS_RE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")

# websockets >= 15 honours *_proxy environment variables unless told not to.
CONNECT_KWARGS: dict[str, Any] = (
    {"proxy": None} if "proxy" in inspect.signature(connect).parameters else {}
)


def parse_ts(text: str) -> datetime:
    """Parse a protocol timestamp (`2026-02-10T12:00:00.123Z`) into an aware datetime."""
    assert isinstance(text, str) and TS_RE.match(text), f"bad timestamp {text!r}"
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=timezone.utc)


def is_number(value: Any) -> bool:
    """A JSON number (int or float, never bool), finite."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def client_url(server: Any) -> str:
    """URL to dial a running server; 'localhost' binds 127.0.0.1 only, so dial that."""
    host = server.host
    if host in ("localhost", "0.0.0.0"):
        host = "127.0.0.1"
    elif host == "::":
        host = "[::1]"
    elif ":" in host:
        host = f"[{host}]"
    return f"ws://{host}:{server.port}"


def free_port() -> int:
    """An ephemeral TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


async def wait_until(
    predicate: Callable[[], Any | Awaitable[Any]],
    timeout: float = DEFAULT_TIMEOUT,
    interval: float = 0.02,
    message: str = "condition",
) -> Any:
    """Poll `predicate` (sync or async) until it returns a truthy value; return that value."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if inspect.isawaitable(value):
            value = await value
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {message}")
        await asyncio.sleep(interval)


async def recv_json(ws: Any, timeout: float = DEFAULT_TIMEOUT) -> dict[str, Any]:
    """Next message as a JSON object (fails on timeout or a non-object)."""
    try:
        raw = await asyncio.wait_for(ws.recv(), timeout)
    except (asyncio.TimeoutError, TimeoutError):
        raise AssertionError(f"no message within {timeout} s") from None
    msg = json.loads(raw)
    assert isinstance(msg, dict), f"server sent a non-object: {raw!r}"
    return msg


async def recv_type(
    ws: Any, type_: str, timeout: float = DEFAULT_TIMEOUT, skipped: list[dict] | None = None
) -> dict[str, Any]:
    """Read until a message of `type_` arrives; others are skipped (and collected in `skipped`)."""
    deadline = time.monotonic() + timeout
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise AssertionError(f"no {type_!r} message within {timeout} s")
        try:
            msg = await recv_json(ws, remaining)
        except AssertionError:
            raise AssertionError(f"no {type_!r} message within {timeout} s") from None
        if msg.get("type") == type_:
            return msg
        if skipped is not None:
            skipped.append(msg)


async def recv_reply(ws: Any, timeout: float = DEFAULT_TIMEOUT) -> dict[str, Any]:
    """The next message that is not a periodic `metrics_update` (i.e. a reply)."""
    deadline = time.monotonic() + timeout
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise AssertionError(f"no reply within {timeout} s")
        msg = await recv_json(ws, remaining)
        if msg.get("type") != "metrics_update":
            return msg


async def request(ws: Any, message: Any, timeout: float = DEFAULT_TIMEOUT) -> dict[str, Any]:
    """Send one message (dict -> JSON text, str/bytes as is) and return the reply."""
    if isinstance(message, dict):
        message = json.dumps(message)
    await ws.send(message)
    return await recv_reply(ws, timeout)


async def recv_updates(ws: Any, count: int, timeout: float = DEFAULT_TIMEOUT) -> list[dict[str, Any]]:
    """The next `count` metrics_update messages (other messages are skipped)."""
    deadline = time.monotonic() + timeout
    out = []
    while len(out) < count:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise AssertionError(f"got {len(out)} of {count} metrics_update within {timeout} s")
        out.append(await recv_type(ws, "metrics_update", remaining))
    return out


async def recv_update_where(
    ws: Any,
    predicate: Callable[[dict[str, Any]], bool],
    timeout: float = DEFAULT_TIMEOUT,
    what: str = "a matching metrics_update",
) -> dict[str, Any]:
    """Read metrics_update messages until one satisfies `predicate`; return it."""
    deadline = time.monotonic() + timeout
    last = None
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise AssertionError(f"no {what} within {timeout} s; last update: {last!r}")
        try:
            last = await recv_type(ws, "metrics_update", remaining)
        except AssertionError:
            raise AssertionError(f"no {what} within {timeout} s; last update: {last!r}") from None
        if predicate(last):
            return last


async def open_client(
    url: str, timeout: float = DEFAULT_TIMEOUT, **kwargs: Any
) -> tuple[ClientConnection, dict[str, Any]]:
    """Connect and read the first message, which must be `connected`."""
    ws = await asyncio.wait_for(connect(url, **{**CONNECT_KWARGS, **kwargs}), timeout)
    try:
        first = await recv_json(ws, timeout)
    except BaseException:
        await ws.close()
        raise
    assert first.get("type") == "connected", f"first message was {first!r}"
    return ws, first


async def expect_close(ws: Any, timeout: float = DEFAULT_TIMEOUT) -> int | None:
    """Read (and discard) messages until the server closes; return the close code received."""
    deadline = time.monotonic() + timeout
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise AssertionError(f"connection still open after {timeout} s")
        try:
            await asyncio.wait_for(ws.recv(), remaining)
        except ConnectionClosed as exc:
            rcvd = getattr(exc, "rcvd", None)
            return rcvd.code if rcvd is not None else ws.close_code
        except (asyncio.TimeoutError, TimeoutError):
            raise AssertionError(f"connection still open after {timeout} s") from None


class ThreadCounts:
    """Python threads and OS threads (C threads are invisible to `threading`)."""

    def __init__(self) -> None:
        self.python = threading.active_count()
        self.os = len(os.listdir("/proc/self/task"))

    def __repr__(self) -> str:
        return f"ThreadCounts(python={self.python}, os={self.os})"


def thread_counts() -> ThreadCounts:
    return ThreadCounts()


def open_fd_count() -> int:
    return len(os.listdir("/proc/self/fd"))

