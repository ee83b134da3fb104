"""Authentication of a stream mounted with client_handler(ws), by the network path's rules.

The token comes from the handshake of the app that accepted the connection ("Authorization:
Bearer", then ?token=), else from a first message within AUTH_TIMEOUT_S; it is checked by the
same C verifier the server's own port runs.  Nothing here sends data or logs: the caller does.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from session_buddy.realtime._core import verify_jwt_user

__all__ = ["AUTH_TIMEOUT_S", "AuthRefused", "authenticate_mounted"]

# As on the network path (csrc/ws_protocol.c): a token within this time, and an Authorization
# header shorter than this.
AUTH_TIMEOUT_S = 5.0
MAX_HEADER_VALUE = 4096


class AuthRefused(Exception):
    """Authentication failed; the message says why, never with the token."""


def _request_parts(ws: Any) -> tuple[Any, str | None]:
    """(headers, the ?token= value) of the handshake, from the shapes client_handler knows:
    websockets' ServerConnection (`request.headers`, `request.path`), its legacy server
    protocol (`request_headers`, `path`), and Starlette's WebSocket (`headers`, and
    `query_params` or `url`).  (None, None) for an object that has none of them."""
    request = getattr(ws, "request", None)
    if request is not None and hasattr(request, "headers"):
        return request.headers, _query_token(urlsplit(str(getattr(request, "path", "") or "")).query)
    if hasattr(ws, "request_headers"):
        return ws.request_headers, _query_token(urlsplit(str(getattr(ws, "path", "") or "")).query)
    headers = getattr(ws, "headers", None)
    params = getattr(ws, "query_params", None)
    if params is not None:
        token = params.get("token")
        return headers, token if isinstance(token, str) and token else None
    url = getattr(ws, "url", None)
    if url is not None:
        query = getattr(url, "query", None)
        return headers, _query_token(query if isinstance(query, str) else urlsplit(str(url)).query)
    return headers, None


def _query_token(query: str) -> str | None:
    """The first token= argument, URL-decoded; None when absent or empty (as lws reads it)."""
    for key, value in parse_qsl(query, keep_blank_values=True):
        if key == "token":
            return value or None
    return None


def _header(headers: Any, name: str) -> str | None:
    if headers is None:
        return None
    value = headers.get(name)
    if value is None:
        value = headers.get(name.lower())
    return value if isinstance(value, str) else None


def handshake_token(ws: Any) -> tuple[str | None, str | None]:
    """(token, None), (None, None) when the handshake carries none, or (None, why) when it is
    refused outright.  The network path's order: "Authorization: Bearer", then ?token=."""
    headers, query_token = _request_parts(ws)
    authorization = _header(headers, "Authorization")
    if authorization:
        if len(authorization.encode("utf-8", "surrogateescape")) >= MAX_HEADER_VALUE:
            return None, "Authorization header too long"
        if authorization[:7].lower() == "bearer ":
            return authorization[7:], None
    return query_token, None


def _verify(token: str, secret: bytes, source: str) -> tuple[str, dict[str, Any], str]:
    try:
        user_id, payload = verify_jwt_user(token, secret, time.time())
    except ValueError as exc:
        raise AuthRefused(f"{exc} (token from the {source})") from None
    return user_id, json.loads(payload), source


async def authenticate_mounted(
    ws: Any, messages: Any, secret: bytes, dispatch: Callable[[Any], tuple[str | None, str | None]]
) -> tuple[str, dict[str, Any], str]:
    """(user_id, claims, where the token came from) once ws has authenticated; AuthRefused says
    why it has not.  messages: ws's async iterator, which a first message is read from.
    dispatch: the client's `InProcessSession.dispatch_before_auth`, which returns (reply, token)
    and answers other messages meanwhile with `auth_required` as the network path does.  A closed connection raises what ws raises."""
    token, refused = handshake_token(ws)
    if refused is not None:
        raise AuthRefused(refused)
    if token is not None:
        return _verify(token, secret, "handshake")
    loop = asyncio.get_running_loop()
    deadline = loop.time() + AUTH_TIMEOUT_S
    try:
        while True:
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise asyncio.TimeoutError
            message = await asyncio.wait_for(messages.__anext__(), remaining)
            reply, token = dispatch(message)
            if token is not None:
                return _verify(token, secret, "auth message")
            if reply is not None:
                await asyncio.wait_for(ws.send(reply), max(deadline - loop.time(), 0.001))
    except asyncio.TimeoutError:
        raise AuthRefused(f"no token within {AUTH_TIMEOUT_S:g} s") from None
    except StopAsyncIteration:
        raise AuthRefused("closed before authenticating") from None
