"""client_handler(ws) mounted in another web app: it authenticates as the network path does
(handshake header, ?token=, a first message within 5 s; 4001 on failure, no data before
success), on a `websockets` ServerConnection and on a Starlette-shaped adapter, over real
sockets. Also: nothing unsolicited after `connected`."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import jwt as pyjwt
import pytest
from websockets.asyncio.client import connect
from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed

from wsutil import CONNECT_KWARGS, recv_json, recv_type, request, wait_until

SECRET = "client-handler-secret-0123456789abcdef-0123456789abcdef-0123456789"
pytestmark = pytest.mark.filterwarnings("ignore::jwt.warnings.InsecureKeyLengthWarning")
AUTH_FAILED = 4001


def token_for(user: str = "alice", *, secret: str = SECRET, exp_in: float = 3600) -> str:
    return pyjwt.encode({"user_id": user, "exp": int(time.time() + exp_in)}, secret, algorithm="HS256")


class StarletteShaped:
    """The attribute shape of a Starlette WebSocket, bridged to what client_handler drives:
    `headers` (case-insensitive get), `query_params` (get), `url`, `client`, `send_text` /
    `receive_text` / `close(code, reason)`, plus the `send` and async iteration the mounted
    stream uses. Underneath: a real `websockets` server connection."""

    class _Headers:
        def __init__(self, raw: Any) -> None:
            self._items = {k.lower(): v for k, v in raw.raw_items()}

        def get(self, key: str, default: Any = None) -> Any:
            return self._items.get(key.lower(), default)

    class _QueryParams:
        def __init__(self, query: str) -> None:
            self._items = dict(parse_qsl(query, keep_blank_values=True))

        def get(self, key: str, default: Any = None) -> Any:
            return self._items.get(key, default)

    def __init__(self, connection: ServerConnection) -> None:
        self._ws = connection
        self.headers = self._Headers(connection.request.headers)
        self.url = f"ws://127.0.0.1{connection.request.path}"
        self.query_params = self._QueryParams(urlsplit(connection.request.path).query)
        self.client = connection.remote_address

    async def send_text(self, data: str) -> None:
        await self._ws.send(data)

    async def receive_text(self) -> str:
        message = await self._ws.recv()
        return message if isinstance(message, str) else message.decode()

    async def close(self, code: int = 1000, reason: str | None = None) -> None:
        await self._ws.close(code, reason or "")

    async def send(self, data: str) -> None:
        await self.send_text(data)

    async def __aiter__(self) -> AsyncIterator[str]:
        while True:
            try:
                yield await self.receive_text()
            except ConnectionClosed:
                return


@pytest.fixture
async def auth_server(server_factory) -> Any:
    # No scheduled tick during a test: every update it sees is one it asked for.
    return await server_factory(require_auth=True, jwt_secret=SECRET, update_interval=60)


class Mounted:
    """A real `websockets` app that mounts server.client_handler (optionally via the adapter)."""

    def __init__(self, server: Any, adapter: bool) -> None:
        self.server = server
        self.adapter = adapter
        self.errors: list[BaseException] = []
        self.handled: list[Any] = []

    async def handler(self, connection: ServerConnection) -> None:
        ws = StarletteShaped(connection) if self.adapter else connection
        self.handled.append(ws)
        try:
            await self.server.client_handler(ws)
        except BaseException as exc:  # recorded, so the test can fail on it
            self.errors.append(exc)
            raise


@pytest.fixture(params=[False, True], ids=["websockets", "starlette-shaped"])
async def mounted(request, auth_server) -> AsyncIterator[tuple[Mounted, str]]:
    app = Mounted(auth_server, request.param)
    async with serve(app.handler, "127.0.0.1", 0) as outer:
        port = next(iter(outer.sockets)).getsockname()[1]
        yield app, f"ws://127.0.0.1:{port}"
    assert app.errors == []


async def closed_with(ws: Any, timeout: float = 15) -> tuple[int | None, list[dict[str, Any]]]:
    """Read until the server closes; (close code, every message received before it)."""
    received: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout
    try:
        while True:
            remaining = deadline - time.monotonic()
            assert remaining > 0, f"not closed within {timeout} s; got {received}"
            received.append(json.loads(await asyncio.wait_for(ws.recv(), remaining)))
    except ConnectionClosed:
        pass
    return ws.close_code, received


def auth_warnings(caplog) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "session_buddy.realtime.auth" and r.levelno == logging.WARNING]


async def test_no_token_is_closed_4001_after_5_s_and_never_sees_metrics(mounted, caplog) -> None:
    caplog.set_level(logging.INFO, logger="session_buddy.realtime")
    app, url = mounted
    async with connect(url, **CONNECT_KWARGS) as ws:
        started = time.monotonic()
        code, received = await closed_with(ws)
        waited = time.monotonic() - started
    assert code == AUTH_FAILED
    assert ws.close_reason == "Authentication failed"
    assert [m["type"] for m in received] == [], received
    assert waited >= 4.5, f"closed after {waited:.2f} s: the first message has 5 s"
    assert app.server.clients == set()
    await wait_until(lambda: any("no token within 5 s" in r.getMessage() for r in auth_warnings(caplog)),
                     message="the timeout warning on the auth logger")


async def test_a_bad_token_is_closed_4001_and_not_logged(mounted, caplog) -> None:
    caplog.set_level(logging.INFO, logger="session_buddy.realtime")
    app, url = mounted
    bad = token_for(secret="another-secret-0123456789abcdef-0123456789abcdef-0123456789")
    async with connect(url, additional_headers={"Authorization": f"Bearer {bad}"}, **CONNECT_KWARGS) as ws:
        code, received = await closed_with(ws)
    assert code == AUTH_FAILED
    assert received == []
    await wait_until(lambda: auth_warnings(caplog), message="an authentication warning")
    assert any("signature" in r.getMessage() for r in auth_warnings(caplog))
    for record in caplog.records:
        assert bad not in record.getMessage()
        assert bad.split(".")[2] not in record.getMessage(), "a part of the token reached the log"


async def test_a_non_auth_first_message_is_refused_until_the_deadline(mounted) -> None:
    _, url = mounted
    async with connect(url, **CONNECT_KWARGS) as ws:
        reply = await request(ws, {"type": "subscribe"})
        assert (reply["type"], reply["code"]) == ("error", "auth_required")
        await ws.send(json.dumps({"type": "auth", "token": "not-a-jwt"}))
        code, received = await closed_with(ws)
    assert code == AUTH_FAILED
    assert received == []


async def _assert_admitted(app: Mounted, ws: Any, user: str) -> None:
    hello = await recv_json(ws)
    assert hello["type"] == "connected"
    assert hello["authenticated"] is True
    # The first frame after `connected` is the reply to the first request.
    await ws.send(json.dumps({"type": "ping"}))
    assert (await recv_json(ws))["type"] == "pong"
    await app.server.broadcast_metrics()
    update = await recv_json(ws)
    assert update["type"] == "metrics_update"
    assert update["data"]["top_skills"]
    mounted_ws = app.handled[-1]
    assert mounted_ws in app.server.clients
    assert mounted_ws.user_id == user
    assert mounted_ws.user["user_id"] == user


async def test_token_in_the_authorization_header(mounted) -> None:
    app, url = mounted
    async with connect(url, additional_headers={"Authorization": f"Bearer {token_for('hana')}"},
                       **CONNECT_KWARGS) as ws:
        await _assert_admitted(app, ws, "hana")


async def test_token_in_the_query_string(mounted) -> None:
    app, url = mounted
    async with connect(f"{url}/stream?token={token_for('ivo')}", **CONNECT_KWARGS) as ws:
        await _assert_admitted(app, ws, "ivo")


@pytest.mark.parametrize("form", ["typed", "upstream"])
async def test_token_in_a_first_message(mounted, form) -> None:
    app, url = mounted
    message = {"type": "auth", "token": token_for("jo")} if form == "typed" else {"token": token_for("jo")}
    async with connect(url, **CONNECT_KWARGS) as ws:
        await ws.send(json.dumps(message))
        await _assert_admitted(app, ws, "jo")


async def test_success_is_logged_on_the_auth_logger(mounted, caplog) -> None:
    caplog.set_level(logging.INFO, logger="session_buddy.realtime")
    app, url = mounted
    token = token_for("kim")
    async with connect(url, additional_headers={"Authorization": f"Bearer {token}"}, **CONNECT_KWARGS) as ws:
        await recv_json(ws)
    await wait_until(
        lambda: [r for r in caplog.records
                 if r.name == "session_buddy.realtime.auth" and "authenticated as user 'kim'" in r.getMessage()],
        message="the success line",
    )
    assert all(token not in r.getMessage() for r in caplog.records)


async def test_without_auth_nothing_follows_connected_but_replies(server_factory) -> None:
    server = await server_factory(update_interval=60)
    handled: list[Any] = []

    async def handler(connection: ServerConnection) -> None:
        handled.append(connection)
        await server.client_handler(connection)

    async with serve(handler, "127.0.0.1", 0) as outer:
        port = next(iter(outer.sockets)).getsockname()[1]
        async with connect(f"ws://127.0.0.1:{port}", **CONNECT_KWARGS) as ws:
            hello = await recv_json(ws)
            assert (hello["type"], hello["authenticated"]) == ("connected", False)
            await wait_until(lambda: handled and handled[0] in server.clients, message="the client listed")
            # The startup snapshot exists, yet the frame after `connected` is the first reply.
            await ws.send(json.dumps({"type": "ping"}))
            assert (await recv_json(ws))["type"] == "pong"
            await ws.send(json.dumps({"type": "subscribe", "skill": "mypy"}))
            assert (await recv_json(ws))["type"] == "subscription_confirmed"
            following = await recv_json(ws)
            assert following["type"] == "metrics_update", "subscribe is followed at once by an update"
            assert [e["skill_name"] for e in following["data"]["top_skills"]] == ["mypy"]
