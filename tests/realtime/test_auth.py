"""JWT authentication over real sockets (docs/realtime/SECURITY.md): the three token sources, every kind of
bad token, the 5 s window, what gets logged, and the counters. A bystander keeps its updates."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from typing import Any

import jwt as pyjwt
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidMessage, InvalidStatus

from session_buddy.realtime.auth import generate_token
from test_http_routes import get, samples
from wsutil import expect_close, recv_json, recv_type, recv_updates, request, wait_until

SECRET = "test-secret-for-auth-tests-0123456789abcdef-0123456789abcdef-0123456789"
pytestmark = pytest.mark.filterwarnings("ignore::jwt.warnings.InsecureKeyLengthWarning")
AUTH_FAILED = 4001


def token_for(user: str = "alice", *, secret: str = SECRET, exp_in: float = 3600, alg: str = "HS256",
              **claims: Any) -> str:
    payload = {"user_id": user, "exp": int(time.time() + exp_in), **claims}
    return pyjwt.encode(payload, secret, algorithm=alg)


@pytest.fixture
async def auth_server(server_factory) -> Any:
    return await server_factory(require_auth=True, jwt_secret=SECRET)


@pytest.fixture
async def bystander(auth_server, client_factory) -> Any:
    ws = await client_factory(auth_server, additional_headers={"Authorization": f"Bearer {token_for('bystander')}"})
    await recv_type(ws, "metrics_update")
    return ws


async def assert_bystander_fine(ws: Any) -> None:
    seqs = [u["seq"] for u in await recv_updates(ws, 2)]
    assert seqs[0] < seqs[1]


def network_users(server: Any) -> list[str | None]:
    return sorted(c.user_id for c in server.clients)


# ---- the three sources ------------------------------------------------------------------


async def test_token_in_the_authorization_header(auth_server, client_factory) -> None:
    ws, hello = await client_factory.with_hello(auth_server, additional_headers={"Authorization": f"Bearer {token_for()}"})
    assert hello["authenticated"] is True
    assert (await recv_type(ws, "metrics_update"))["data"]["top_skills"]
    await wait_until(lambda: network_users(auth_server) == ["alice"], message="alice listed")


async def test_token_in_the_query_string(auth_server, client_factory) -> None:
    ws, hello = await client_factory.with_hello(f"ws://127.0.0.1:{auth_server.port}/?token={token_for('bob')}")
    assert hello["authenticated"] is True
    await recv_type(ws, "metrics_update")
    await wait_until(lambda: network_users(auth_server) == ["bob"], message="bob listed")


async def test_the_upstream_first_message_form_without_a_type(server_factory) -> None:
    """session-buddy's pure-Python server reads {"token": ...} as the first message."""
    server = await server_factory(require_auth=True, jwt_secret=SECRET, update_interval=60)
    async with connect(f"ws://127.0.0.1:{server.port}") as ws:
        await ws.send(json.dumps({"token": token_for("dora")}))
        hello = await recv_json(ws)
        assert (hello["type"], hello["authenticated"]) == ("connected", True)
        # Nothing unsolicited follows: the next frame is the reply to the next request.
        await ws.send(json.dumps({"type": "ping"}))
        assert (await recv_json(ws))["type"] == "pong"
        await wait_until(lambda: network_users(server) == ["dora"], message="dora listed")
        # Once authenticated, the form is a request like any other, and refused as such.
        reply = await request(ws, {"token": token_for("dora")})
        assert (reply["type"], reply["code"], reply["request_type"]) == ("error", "invalid_request", None)


async def test_a_typeless_message_without_a_token_string_is_refused(auth_server) -> None:
    async with connect(f"ws://127.0.0.1:{auth_server.port}") as ws:
        reply = await request(ws, {"token": 42})
        assert (reply["type"], reply["code"]) == ("error", "invalid_request")
        assert await expect_close(ws, timeout=15) == AUTH_FAILED


async def test_token_in_a_first_auth_message(auth_server, client_factory) -> None:
    async with connect(f"ws://127.0.0.1:{auth_server.port}") as ws:
        # Nothing arrives before authentication, and other messages are refused.
        reply = await request(ws, {"type": "ping"})
        assert (reply["type"], reply["code"], reply["request_type"]) == ("error", "auth_required", "ping")
        assert auth_server.clients == set()
        await ws.send(json.dumps({"type": "auth", "token": token_for("carol")}))
        hello = await recv_json(ws)
        assert hello["type"] == "connected" and hello["authenticated"] is True
        await recv_type(ws, "metrics_update")
        await wait_until(lambda: network_users(auth_server) == ["carol"], message="carol listed")


async def test_the_header_wins_over_the_query_string(auth_server, client_factory) -> None:
    ws, hello = await client_factory.with_hello(
        f"ws://127.0.0.1:{auth_server.port}/?token=not-a-token",
        additional_headers={"Authorization": f"Bearer {token_for('dave')}"})
    assert hello["authenticated"] is True


async def test_tokens_made_by_the_auth_module_are_accepted(auth_server, client_factory) -> None:
    token = generate_token("erin", secret=SECRET)
    _, hello = await client_factory.with_hello(auth_server, additional_headers={"Authorization": f"Bearer {token}"})
    assert hello["authenticated"] is True


async def test_environment_turns_authentication_on(server_factory, client_factory, monkeypatch) -> None:
    monkeypatch.setenv("SESSION_BUDDY_AUTH_ENABLED", "true")
    monkeypatch.setenv("SESSION_BUDDY_JWT_SECRET", SECRET)
    server = await server_factory()
    async with connect(f"ws://127.0.0.1:{server.port}") as ws:
        assert (await request(ws, {"type": "ping"}))["code"] == "auth_required"
    _, hello = await client_factory.with_hello(server, additional_headers={"Authorization": f"Bearer {token_for()}"})
    assert hello["authenticated"] is True


async def test_without_authentication_clients_are_not_authenticated(server, client_factory) -> None:
    _, hello = await client_factory.with_hello(server)
    assert hello["authenticated"] is False


# ---- refusals -----------------------------------------------------------------------------


def _bad_tokens() -> dict[str, str]:
    good = token_for()
    head, payload, sig = good.split(".")
    return {
        "expired": token_for(exp_in=-31 - 5),
        "not-yet-valid": token_for(nbf=int(time.time()) + 120),
        "wrong-signature": token_for(secret="some-other-secret-0123456789abcdef"),
        "alg-none": pyjwt.encode({"user_id": "x", "exp": int(time.time()) + 60}, None, algorithm="none"),
        "alg-HS512": token_for(alg="HS512"),
        "malformed-base64": f"{head}.{payload[:-2]}!!.{sig}",
        "missing-exp": pyjwt.encode({"user_id": "x"}, SECRET, algorithm="HS256"),
        "garbage": "this is not a token",
        "tampered-payload": f"{head}.{token_for('admin').split('.')[1]}.{sig}",
    }


BAD = _bad_tokens()


@pytest.mark.parametrize("how", ["header", "query", "message"])
@pytest.mark.parametrize("kind", sorted(BAD))
async def test_bad_tokens_close_4001(auth_server, bystander, kind, how, caplog) -> None:
    caplog.set_level(logging.WARNING, logger="session_buddy.realtime")
    token = BAD[kind]
    url = f"ws://127.0.0.1:{auth_server.port}"
    kwargs: dict[str, Any] = {}
    if how == "header":
        kwargs["additional_headers"] = {"Authorization": f"Bearer {token}"}
    elif how == "query":
        url += "/?token=" + token.replace(" ", "%20").replace("!", "%21")
    async with connect(url, **kwargs) as ws:
        if how == "message":
            await ws.send(json.dumps({"type": "auth", "token": token}))
        with pytest.raises(ConnectionClosed) as closed:
            await asyncio.wait_for(ws.recv(), 10)  # no `connected`: the close comes first
        assert closed.value.rcvd.code == AUTH_FAILED
        assert closed.value.rcvd.reason == "Authentication failed"
    await wait_until(lambda: any("authentication failed" in r.getMessage() for r in caplog.records),
                     message="the warning")
    signature = token.split(".")[-1]
    for record in caplog.records:
        assert token not in record.getMessage()
        assert len(signature) < 8 or signature not in record.getMessage()
    await assert_bystander_fine(bystander)
    assert network_users(auth_server) == ["bystander"]


async def test_token_within_the_leeway_is_accepted(auth_server, client_factory) -> None:
    _, hello = await client_factory.with_hello(
        auth_server, additional_headers={"Authorization": f"Bearer {token_for(exp_in=-20, nbf=int(time.time()) + 20)}"})
    assert hello["authenticated"] is True


async def test_no_token_within_5_s_closes_4001(auth_server, bystander) -> None:
    async with connect(f"ws://127.0.0.1:{auth_server.port}") as ws:
        started = time.monotonic()
        code = await expect_close(ws, 15)
        waited = time.monotonic() - started
    assert code == AUTH_FAILED
    assert 4.0 <= waited <= 12.0, waited
    await assert_bystander_fine(bystander)


async def test_auth_message_after_the_window_finds_the_connection_closed(auth_server) -> None:
    async with connect(f"ws://127.0.0.1:{auth_server.port}") as ws:
        await asyncio.sleep(6)
        with pytest.raises(ConnectionClosed) as closed:
            await ws.send(json.dumps({"type": "auth", "token": token_for()}))
            await asyncio.wait_for(ws.recv(), 10)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == AUTH_FAILED


async def test_a_second_auth_message_is_an_invalid_request(auth_server, client_factory) -> None:
    ws = await client_factory(auth_server, additional_headers={"Authorization": f"Bearer {token_for()}"})
    reply = await request(ws, {"type": "auth", "token": token_for()})
    assert (reply["type"], reply["code"]) == ("error", "invalid_request")


async def test_a_token_inside_a_10_kb_header_is_refused_cleanly(auth_server, bystander) -> None:
    """lws limits header data (4 KiB by default): the handshake is refused before any token is
    looked at. Nobody else notices."""
    huge = token_for(padding="p" * 10_000)
    assert len(huge) > 10_000
    outcome = None
    try:
        async with connect(f"ws://127.0.0.1:{auth_server.port}",
                           additional_headers={"Authorization": f"Bearer {huge}"}, open_timeout=10) as ws:
            outcome = await expect_close(ws, 10)
    except (InvalidStatus, InvalidMessage, OSError, EOFError) as exc:
        outcome = type(exc).__name__
    # lws 4.1.6 drops the connection without an HTTP answer (InvalidMessage on the client).
    assert outcome in ("InvalidMessage", "InvalidStatus", "ConnectionResetError", AUTH_FAILED), outcome
    await assert_bystander_fine(bystander)
    assert network_users(auth_server) == ["bystander"]


async def test_start_without_a_secret_raises(server_factory) -> None:
    server = await server_factory(require_auth=True, start=False)
    with pytest.raises(ValueError, match="no secret"):
        await server.start()
    assert server.running is False


async def test_auth_failures_are_counted(auth_server) -> None:
    for token in (BAD["expired"], BAD["alg-none"]):
        async with connect(f"ws://127.0.0.1:{auth_server.port}",
                           additional_headers={"Authorization": f"Bearer {token}"}) as ws:
            assert await expect_close(ws) == AUTH_FAILED
    _, _, body = await get(auth_server, f"/metrics?token={token_for('prometheus')}")  # /metrics needs a token too
    s = samples(body.decode())
    assert s[("session_buddy_connections_rejected_total", (("reason", "auth_failed"),))] == 2
