"""The network defaults of docs/realtime/SECURITY.md over real sockets: HTTP methods, /metrics behind auth,
the Host check against DNS rebinding, the default origin policy, invalid close frames, HTTP/1.0
upgrades, pending connections (bounded in time and number) and seats kept for clients."""

from __future__ import annotations

import asyncio
import struct
import time
from typing import Any

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from rawws import OP_CLOSE, RawWebSocket
from test_auth import SECRET, token_for
from test_limits import counter, metrics_text
from wsutil import CONNECT_KWARGS, expect_close, recv_type

pytestmark = pytest.mark.filterwarnings("ignore::jwt.warnings.InsecureKeyLengthWarning")

_KEY = "dGhlIHNhbXBsZSBub25jZQ=="


async def exchange(port: int, data: bytes, timeout: float = 15.0) -> bytes:
    """Send data on a fresh connection and read until the server closes it."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(data)
        await writer.drain()
        out = b""
        deadline = time.monotonic() + timeout
        while chunk := await asyncio.wait_for(reader.read(65536), max(0.01, deadline - time.monotonic())):
            out += chunk
        return out
    finally:
        writer.close()


def split_responses(data: bytes, head_only: set[int] = frozenset()) -> list[tuple[bytes, dict[str, str], bytes]]:
    """Parse consecutive HTTP/1.1 responses by their content-length; responses whose index is in
    head_only carry no body (answers to HEAD)."""
    out = []
    while data:
        head, sep, rest = data.partition(b"\r\n\r\n")
        assert sep, f"truncated response: {data[:200]!r}"
        status, *lines = head.decode("latin-1").split("\r\n")
        headers = {k.strip().lower(): v.strip() for k, v in (line.split(":", 1) for line in lines)}
        length = 0 if len(out) in head_only else int(headers.get("content-length", "0"))
        out.append((status.encode(), headers, rest[:length]))
        data = rest[length:]
    return out


def host(server: Any) -> str:
    return f"Host: 127.0.0.1:{server.port}\r\n"


# ---- HTTP methods ----------------------------------------------------------------------------


async def test_head_sends_the_headers_of_get_and_no_body(server) -> None:
    """Pipelined HEAD then GET: each answer parses by its own content-length, so they stay in step."""
    raw = await exchange(server.port, (f"HEAD /healthz HTTP/1.1\r\n{host(server)}\r\n"
                                       f"GET /healthz HTTP/1.1\r\n{host(server)}Connection: close\r\n\r\n").encode())
    (s1, h1, b1), (s2, h2, b2) = split_responses(raw, head_only={0})
    assert s1.startswith(b"HTTP/1.1 200") and s2.startswith(b"HTTP/1.1 200")
    assert b1 == b"" and b2.startswith(b'{"status":"ok"')
    assert h1["content-type"] == h2["content-type"] == "application/json"
    assert abs(int(h1["content-length"]) - int(h2["content-length"])) <= 3  # uptime_s may gain digits


# lws 4.1.6 refuses methods it does not know (TRACE, BREW...) itself, with a 403, before any
# callback; these are the ones it parses.
@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH", "DELETE", "OPTIONS"])
async def test_other_methods_get_405_with_allow_and_the_connection_stays_usable(server, method) -> None:
    body = b"x=1&y=2"
    raw = await exchange(server.port, f"{method} /metrics HTTP/1.1\r\n{host(server)}Content-Length: {len(body)}\r\n\r\n".encode()
                         + body + f"GET /healthz HTTP/1.1\r\n{host(server)}Connection: close\r\n\r\n".encode())
    (s1, h1, b1), (s2, _, b2) = split_responses(raw)
    assert s1.startswith(b"HTTP/1.1 405"), s1
    assert h1["allow"] == "GET, HEAD"
    assert b"session_buddy_" not in b1
    assert s2.startswith(b"HTTP/1.1 200") and b'"status":"ok"' in b2


async def test_a_request_body_trickled_forever_is_dropped_at_the_request_deadline(server) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    started = time.monotonic()
    try:
        writer.write(f"POST / HTTP/1.1\r\n{host(server)}Content-Length: 1000000000\r\n\r\n".encode())
        await writer.drain()

        async def trickle() -> None:
            while True:
                writer.write(b"x")
                await writer.drain()
                await asyncio.sleep(1)

        feeder = asyncio.create_task(trickle())
        try:
            data = b""
            while chunk := await asyncio.wait_for(reader.read(65536), 30):
                data += chunk
        except ConnectionError:
            pass
        finally:
            feeder.cancel()
        waited = time.monotonic() - started
    finally:
        writer.close()
    assert data.startswith(b"HTTP/1.1 405")
    assert 8 <= waited <= 20, f"dropped after {waited:.1f} s; a whole request has 10 s"
    assert counter(await metrics_text(server), "connections_rejected_total", "pending_timeout") == 1


# ---- /metrics behind auth --------------------------------------------------------------------


async def test_with_auth_on_metrics_needs_the_token_and_healthz_stays_open(server_factory) -> None:
    server = await server_factory(require_auth=True, jwt_secret=SECRET)
    get = f"GET {{}} HTTP/1.1\r\n{host(server)}{{}}Connection: close\r\n\r\n"
    for path, extra in (("/metrics", ""), ("/metrics?token=nope", ""),
                        ("/metrics", "Authorization: Bearer nope\r\n"),
                        ("/metrics", f"Authorization: Bearer {token_for(secret='other-secret' * 4)}\r\n")):
        (status, headers, body), = split_responses(await exchange(server.port, get.format(path, extra).encode()))
        assert status.startswith(b"HTTP/1.1 401"), (path, extra, status)
        assert headers["www-authenticate"] == "Bearer"
        assert b"session_buddy_" not in body and b"skill" not in body
    # Skill samples exist from the first tick on: wait for one.
    async with connect(f"ws://127.0.0.1:{server.port}", additional_headers={"Authorization": f"Bearer {token_for()}"},
                       **CONNECT_KWARGS) as ws:
        await recv_type(ws, "metrics_update")
    for path, extra in ((f"/metrics?token={token_for()}", ""), ("/metrics", f"Authorization: Bearer {token_for()}\r\n")):
        (status, _, body), = split_responses(await exchange(server.port, get.format(path, extra).encode()))
        assert status.startswith(b"HTTP/1.1 200")
        assert b"session_buddy_skill_invocations_total{" in body
    (status, _, body), = split_responses(await exchange(server.port, get.format("/healthz", "").encode()))
    assert status.startswith(b"HTTP/1.1 200") and b'"status":"ok"' in body and b"skill" not in body


# ---- the Host check --------------------------------------------------------------------------


def upgrade(host_line: str, origin: str | None = None, version: str = "HTTP/1.1") -> bytes:
    origin_line = f"Origin: {origin}\r\n" if origin else ""
    return (f"GET / {version}\r\n{host_line}Upgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {_KEY}\r\nSec-WebSocket-Version: 13\r\n{origin_line}\r\n").encode()


async def handshake_status(port: int, request: bytes) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(request)
        await writer.drain()
        return (await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 15)).split(b"\r\n")[0]
    finally:
        writer.close()


@pytest.mark.parametrize("name", ["evil.example", "evil.example:8765", "127.0.0.1.evil.example",
                                  "localhost.evil.example:80", ""])
async def test_a_foreign_host_gets_403_while_bound_to_loopback(server, name) -> None:
    line = f"Host: {name}\r\n" if name else ""
    (status, _, body), = split_responses(await exchange(
        server.port, f"GET /metrics HTTP/1.1\r\n{line}Connection: close\r\n\r\n".encode()))
    assert status.startswith(b"HTTP/1.1 403"), status
    assert b"session_buddy_" not in body
    assert (await handshake_status(server.port, upgrade(line))).startswith(b"HTTP/1.1 403")
    assert counter(await metrics_text(server), "connections_rejected_total", "host") == 2


@pytest.mark.parametrize("name", ["localhost", "LOCALHOST:1234", "127.0.0.1", "127.0.0.1:9", "[::1]", "[::1]:8765"])
async def test_local_hosts_pass_on_any_port(server, name) -> None:
    (status, _, _), = split_responses(await exchange(
        server.port, f"GET /healthz HTTP/1.1\r\nHost: {name}\r\nConnection: close\r\n\r\n".encode()))
    assert status.startswith(b"HTTP/1.1 200")
    assert (await handshake_status(server.port, upgrade(f"Host: {name}\r\n"))).startswith(b"HTTP/1.1 101")


async def test_allowed_hosts_widens_the_list(server_factory) -> None:
    server = await server_factory(allowed_hosts=["Dash.Internal", "10.1.2.3"])
    assert server.allowed_hosts == ("dash.internal", "10.1.2.3")
    for name in ("dash.internal:8765", "10.1.2.3", "localhost"):
        (status, _, _), = split_responses(await exchange(
            server.port, f"GET /healthz HTTP/1.1\r\nHost: {name}\r\nConnection: close\r\n\r\n".encode()))
        assert status.startswith(b"HTTP/1.1 200"), name
    assert (await handshake_status(server.port, upgrade("Host: other.internal\r\n"))).startswith(b"HTTP/1.1 403")


async def test_no_host_check_when_bound_to_every_interface(server_factory) -> None:
    server = await server_factory(host="0.0.0.0")
    (status, _, _), = split_responses(await exchange(
        server.port, b"GET /healthz HTTP/1.1\r\nHost: metrics.example.com\r\nConnection: close\r\n\r\n"))
    assert status.startswith(b"HTTP/1.1 200")


@pytest.mark.parametrize(("value", "error"), [
    ("localhost", TypeError), (b"localhost", TypeError), (42, TypeError), ([42], TypeError),
    ([""], ValueError), (["evil.example:80"], ValueError), (["http://x"], ValueError),
    (["a b"], ValueError), (["x\n"], ValueError), ([" x"], ValueError), (["[::1"], ValueError),
])
def test_allowed_hosts_is_validated(value, error) -> None:
    from session_buddy.realtime import RealTimeMetricsServer

    with pytest.raises(error, match="allowed_hosts"):
        RealTimeMetricsServer(allowed_hosts=value)


@pytest.mark.parametrize(("value", "error"), [(0, ValueError), (-1, ValueError), (True, TypeError),
                                              (2.5, TypeError), ("8", TypeError)])
def test_max_pending_is_validated(value, error) -> None:
    from session_buddy.realtime import RealTimeMetricsServer

    with pytest.raises(error, match="max_pending"):
        RealTimeMetricsServer(max_pending=value)
    assert RealTimeMetricsServer().max_pending == 256
    assert RealTimeMetricsServer(max_pending=3, allowed_hosts=["::1"]).allowed_hosts == ("[::1]",)


# ---- the default origin policy ---------------------------------------------------------------


async def _origin_status(server: Any, origin: str) -> int:
    try:
        async with connect(f"ws://127.0.0.1:{server.port}", origin=origin, **CONNECT_KWARGS) as ws:
            await recv_type(ws, "connected")
            return 101
    except InvalidStatus as exc:
        return exc.response.status_code


async def test_default_origin_policy_allows_local_pages_and_its_own_only(server) -> None:
    own = f"http://127.0.0.1:{server.port}"
    for origin in (own, "http://localhost", "http://localhost:3000", "https://localhost:8443",
                   "http://127.0.0.1:5500", "https://127.0.0.1", "http://[::1]:8080", "HTTP://LOCALHOST:1"):
        assert await _origin_status(server, origin) == 101, origin
    for origin in ("https://evil.example", "null", "file://", "http://localhost.evil.example",
                   "http://127.0.0.1.evil.example:80", f"https://127.0.0.1:{server.port}x",
                   "http://localhost:80abc", "ws://localhost"):
        assert await _origin_status(server, origin) == 403, origin
    # Non-browser clients send no Origin at all.
    async with connect(f"ws://127.0.0.1:{server.port}", **CONNECT_KWARGS) as ws:
        await recv_type(ws, "connected")


async def test_star_allows_every_origin_and_null_must_be_listed(server_factory) -> None:
    star = await server_factory(allowed_origins=["*"])
    assert await _origin_status(star, "https://evil.example") == 101
    assert await _origin_status(star, "null") == 101
    null = await server_factory(allowed_origins=["null"])
    assert await _origin_status(null, "null") == 101
    assert await _origin_status(null, "http://localhost:3000") == 403


# ---- closing handshake and version -----------------------------------------------------------


@pytest.mark.parametrize("payload", [b"\x03", struct.pack("!H", 5000), struct.pack("!H", 65535),
                                     struct.pack("!H", 5000) + b"bye"],
                         ids=["one-byte", "5000", "65535", "5000-with-reason"])
async def test_an_invalid_close_frame_gets_a_protocol_error_close(server, payload) -> None:
    async with await RawWebSocket.connect("127.0.0.1", server.port) as ws:
        await recv_type_raw(ws, "connected")
        await ws.send_frame(OP_CLOSE, payload)
        code, got_frame = await ws.read_close()
    assert got_frame and code == 1002


@pytest.mark.parametrize("code", [1000, 1001, 3000, 4999])
async def test_a_valid_close_code_is_echoed(server, code) -> None:
    async with await RawWebSocket.connect("127.0.0.1", server.port) as ws:
        await recv_type_raw(ws, "connected")
        await ws.send_frame(OP_CLOSE, struct.pack("!H", code))
        assert await ws.read_close() == (code, True)


async def recv_type_raw(ws: RawWebSocket, kind: str) -> dict[str, Any]:
    while True:
        msg = await ws.recv_json()
        if msg["type"] == kind:
            return msg


async def test_an_http_1_0_upgrade_gets_400(server) -> None:
    status = await handshake_status(server.port, upgrade(host(server), version="HTTP/1.0"))
    assert status.startswith(b"HTTP/1.1 400"), status
    assert (await handshake_status(server.port, upgrade(host(server)))).startswith(b"HTTP/1.1 101")


# ---- pending connections and seats -----------------------------------------------------------


async def test_connections_still_authenticating_take_no_seat(server_factory) -> None:
    """With max_clients 2, four connections that never send a token do not lock out clients with
    a valid one; a third valid client finds the server full."""
    server = await server_factory(require_auth=True, jwt_secret=SECRET, max_clients=2)
    waiting = [await RawWebSocket.connect("127.0.0.1", server.port) for _ in range(4)]
    try:
        url = f"ws://127.0.0.1:{server.port}"
        header = {"Authorization": f"Bearer {token_for('bob')}"}
        admitted = []
        for _ in range(2):
            ws = await asyncio.wait_for(connect(url, additional_headers=header, **CONNECT_KWARGS), 10)
            admitted.append(ws)
            assert (await recv_type(ws, "connected"))["authenticated"] is True
        extra = await asyncio.wait_for(connect(url, additional_headers=header, **CONNECT_KWARGS), 10)
        assert await expect_close(extra) == 1013
        # The waiting ones still run into their own 5 s limit.
        for ws in waiting:
            assert (await ws.read_close(timeout=15))[0] == 4001
        for ws in admitted:
            await ws.close()
    finally:
        for ws in waiting:
            await ws.aclose()


async def _partial_request(port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(f"GET / HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n".encode())
    await writer.drain()
    return reader, writer


async def test_max_pending_drops_the_oldest_pending_connection(server_factory) -> None:
    server = await server_factory(max_pending=3)
    conns = [await _partial_request(server.port) for _ in range(3)]
    try:
        # Each connection is accepted before the next: the first is the oldest.
        for reader, _ in conns:
            assert not reader.at_eof()
        conns.append(await _partial_request(server.port))
        assert await asyncio.wait_for(conns[0][0].read(), 10) == b""
        # The others are still served: one finishes its handshake.
        reader, writer = conns[3]
        writer.write(f"Connection: Upgrade\r\nSec-WebSocket-Key: {_KEY}\r\nSec-WebSocket-Version: 13\r\n\r\n".encode())
        await writer.drain()
        assert (await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)).startswith(b"HTTP/1.1 101")
        # A client that completes its handshake at once is never the oldest.
        async with connect(f"ws://127.0.0.1:{server.port}", **CONNECT_KWARGS) as ws:
            await recv_type(ws, "connected")
        assert counter(await metrics_text(server), "connections_rejected_total", "pending_full") >= 1
    finally:
        for _, writer in conns:
            writer.close()
