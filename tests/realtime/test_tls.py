"""TLS on the WebSocket port (docs/realtime/SECURITY.md): wss:// with a self-signed certificate made by the
openssl command, plain ws:// refused cleanly, and bad certificate files raising at start()."""

from __future__ import annotations

import asyncio
import json
import shutil
import ssl
import subprocess
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidMessage

from wsutil import recv_type, recv_updates

pytestmark = pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command")




def client_context(cert: Path) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(cert))
    return context


@pytest.fixture
async def tls_server(server_factory, cert) -> Any:
    return await server_factory(host="127.0.0.1", ssl_certfile=cert[0], ssl_keyfile=cert[1])


async def test_wss_client_connects_and_gets_updates(tls_server, cert) -> None:
    assert tls_server.url == f"wss://127.0.0.1:{tls_server.port}"
    async with connect(tls_server.url, ssl=client_context(cert[0])) as ws:
        hello = json.loads(await ws.recv())
        assert hello["type"] == "connected"
        first, second = await recv_updates(ws, 2)
        assert second["seq"] > first["seq"] and first["data"]["top_skills"]
        await ws.send(json.dumps({"type": "ping"}))
        assert (await recv_type(ws, "pong"))["type"] == "pong"


async def test_plain_ws_to_the_tls_port_fails_cleanly(tls_server, cert) -> None:
    with pytest.raises((InvalidMessage, OSError, EOFError)):
        async with connect(f"ws://127.0.0.1:{tls_server.port}", open_timeout=15):
            pass
    # ... and the server keeps serving TLS clients.
    async with connect(tls_server.url, ssl=client_context(cert[0])) as ws:
        assert json.loads(await ws.recv())["type"] == "connected"


async def test_wrong_certificate_authority_is_refused_by_the_client(tls_server) -> None:
    with pytest.raises(ssl.SSLCertVerificationError):
        async with connect(tls_server.url, ssl=ssl.create_default_context()):
            pass


async def test_https_routes_on_the_tls_port(tls_server, cert) -> None:
    def fetch() -> tuple[int, dict[str, Any]]:
        with urllib.request.urlopen(f"https://127.0.0.1:{tls_server.port}/healthz",
                                    context=client_context(cert[0]), timeout=10) as r:
            return r.status, json.loads(r.read())

    status, body = await asyncio.to_thread(fetch)
    assert status == 200 and body["status"] == "ok"


async def test_missing_certificate_raises_at_start(server_factory, tmp_path, cert) -> None:
    server = await server_factory(ssl_certfile=tmp_path / "nope.pem", ssl_keyfile=cert[1], start=False)
    with pytest.raises(FileNotFoundError, match="nope.pem"):
        await server.start()
    assert server.running is False


async def test_garbage_certificate_raises_ssl_error(server_factory, tmp_path, cert) -> None:
    junk = tmp_path / "junk.pem"
    junk.write_text("-----BEGIN CERTIFICATE-----\nnot base64 at all\n-----END CERTIFICATE-----\n")
    server = await server_factory(ssl_certfile=junk, ssl_keyfile=cert[1], start=False)
    with pytest.raises(ssl.SSLError):
        await server.start()
    assert server.running is False


async def test_key_that_does_not_match_the_certificate_raises(server_factory, tmp_path, cert) -> None:
    other_key = tmp_path / "other.pem"
    subprocess.run(["openssl", "genrsa", "-out", str(other_key), "2048"], check=True, capture_output=True)
    server = await server_factory(ssl_certfile=cert[0], ssl_keyfile=other_key, start=False)
    with pytest.raises(ssl.SSLError):
        await server.start()


def test_certificate_without_key_is_refused_at_construction(cert) -> None:
    from session_buddy.realtime import RealTimeMetricsServer

    with pytest.raises(ValueError, match="together"):
        RealTimeMetricsServer(ssl_certfile=cert[0])
    with pytest.raises(TypeError):
        RealTimeMetricsServer(ssl_certfile=42, ssl_keyfile=cert[1])
