"""JWT (HS256) tokens for the real-time server, with session-buddy's module contract.

    from session_buddy.realtime.auth import generate_token, verify_token

    token = generate_token("alice")          # signed with SESSION_BUDDY_JWT_SECRET
    payload = verify_token(token)            # the claims, or None when refused

Tokens are verified by the same C code the server runs on every handshake:
alg pinned to HS256, the signature compared in constant time, `exp` required
and `exp`/`nbf` checked with 30 s of leeway.  There is no built-in secret:
making or checking a token without one raises ValueError.

Environment, as session-buddy reads it:
- SESSION_BUDDY_AUTH_ENABLED: "true" (or 1/yes/on) turns authentication on.
- SESSION_BUDDY_JWT_SECRET: the shared secret.
- SESSION_BUDDY_TOKEN_EXPIRY: lifetime of generated tokens, in seconds (3600).

The module-level `AUTH_ENABLED`, `JWT_SECRET` and `TOKEN_EXPIRY` are read once,
at import (again on `importlib.reload`), and the helpers below use them.  A
server reads the environment again when it starts, through the same parsing
functions (`auth_enabled()`, `environment_secret()`), so a variable set after
import still reaches it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import os
import time
from collections.abc import Iterable
from typing import Any

from session_buddy.realtime._core import verify_jwt

__all__ = [
    "AUTH_ENABLED",
    "JWT_SECRET",
    "TOKEN_EXPIRY",
    "AuthenticationError",
    "Authenticator",
    "auth_enabled",
    "decode_token",
    "environment_secret",
    "environment_token_expiry",
    "generate_token",
    "get_authenticator",
    "verify_token",
]

logger = logging.getLogger(__name__)

DEFAULT_PERMISSIONS = ("session-buddy:read",)
DEFAULT_EXPIRY_S = 3600
_TRUE_WORDS = {"1", "true", "yes", "on"}
_NO_SECRET = (
    "no JWT secret: set SESSION_BUDDY_JWT_SECRET (before importing session_buddy.realtime.auth, "
    "or reload it) or pass secret="
)


class AuthenticationError(ValueError):
    """A token was refused; the message says why (never the token)."""


# ---- the environment, parsed in one place ---------------------------------


def auth_enabled() -> bool:
    """True when SESSION_BUDDY_AUTH_ENABLED, as set now, turns authentication on."""
    return os.environ.get("SESSION_BUDDY_AUTH_ENABLED", "").strip().lower() in _TRUE_WORDS


def environment_secret() -> str | None:
    """SESSION_BUDDY_JWT_SECRET as set now, or None when unset or empty."""
    return os.environ.get("SESSION_BUDDY_JWT_SECRET", "") or None


def environment_token_expiry() -> int:
    """SESSION_BUDDY_TOKEN_EXPIRY as set now (default 3600); ValueError when it is not a
    positive whole number of seconds."""
    raw = os.environ.get("SESSION_BUDDY_TOKEN_EXPIRY", "")
    if not raw.strip():
        return DEFAULT_EXPIRY_S
    try:
        value = int(raw)
    except ValueError:
        raise ValueError(f"SESSION_BUDDY_TOKEN_EXPIRY must be a whole number of seconds, not {raw!r}") from None
    if value <= 0:
        raise ValueError(f"SESSION_BUDDY_TOKEN_EXPIRY must be > 0, not {value}")
    return value


def _expiry_at_import() -> tuple[int | None, str | None]:
    # A bad value must not make the package unimportable (the server imports this module):
    # it is reported when a token is made.
    try:
        return environment_token_expiry(), None
    except ValueError as exc:
        return None, str(exc)


AUTH_ENABLED: bool = auth_enabled()
JWT_SECRET: str | None = environment_secret()
TOKEN_EXPIRY: int | None
TOKEN_EXPIRY, _TOKEN_EXPIRY_ERROR = _expiry_at_import()


def _module_expiry() -> int:
    if TOKEN_EXPIRY is None:
        raise ValueError(_TOKEN_EXPIRY_ERROR or "SESSION_BUDDY_TOKEN_EXPIRY is not valid")
    return TOKEN_EXPIRY


def _secret(secret: str | bytes | None) -> bytes:
    if secret is None:
        secret = JWT_SECRET
    if secret is None:
        raise ValueError(_NO_SECRET)
    if isinstance(secret, str):
        secret = secret.encode()
    if not isinstance(secret, bytes):
        raise TypeError(f"secret must be a str or bytes, not {type(secret).__name__}")
    if not secret:
        raise ValueError(_NO_SECRET)
    return secret


# ---- tokens ---------------------------------------------------------------


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _sign(claims: dict[str, Any], secret: bytes) -> str:
    header = _b64url(json.dumps({"alg": "HS256", "typ": "JWT"}, separators=(",", ":")).encode())
    payload = _b64url(json.dumps(claims, separators=(",", ":")).encode())
    signing_input = f"{header}.{payload}".encode("ascii")
    signature = _b64url(hmac.new(secret, signing_input, hashlib.sha256).digest())
    return f"{header}.{payload}.{signature}"


def generate_token(
    user_id: str,
    permissions: Iterable[str] | None = None,
    expires_in: int | None = None,
    *,
    secret: str | bytes | None = None,
) -> str:
    """A signed HS256 token for user_id, valid for expires_in seconds (default TOKEN_EXPIRY),
    signed with secret (default JWT_SECRET; ValueError when there is none)."""
    if not isinstance(user_id, str) or not user_id:
        raise ValueError("user_id must be a non-empty str")
    if expires_in is None:
        expires_in = _module_expiry()
    if isinstance(expires_in, bool) or not isinstance(expires_in, int) or expires_in <= 0:
        raise ValueError(f"expires_in must be a positive number of seconds, not {expires_in!r}")
    perms = list(DEFAULT_PERMISSIONS if permissions is None else permissions)
    if not all(isinstance(p, str) for p in perms):
        raise TypeError("permissions must be strings")
    now = int(time.time())
    claims = {"user_id": user_id, "permissions": perms, "iat": now, "exp": now + expires_in}
    return _sign(claims, _secret(secret))


def decode_token(token: str, *, secret: str | bytes | None = None) -> dict[str, Any]:
    """The claims of a valid token; AuthenticationError says why a token is refused."""
    if not isinstance(token, str):
        raise TypeError(f"token must be a str, not {type(token).__name__}")
    key = _secret(secret)
    try:
        payload = verify_jwt(token, key, time.time())
    except ValueError as exc:
        raise AuthenticationError(str(exc)) from None
    claims = json.loads(payload)
    if not isinstance(claims, dict):  # the verifier already insists on an object
        raise AuthenticationError("malformed token")
    return claims


def verify_token(token: str, *, secret: str | bytes | None = None) -> dict[str, Any] | None:
    """The claims of a valid token, or None (session-buddy's original contract)."""
    try:
        return decode_token(token, secret=secret)
    except AuthenticationError as exc:
        logger.warning("token refused: %s", exc)
        return None


class Authenticator:
    """Token issuing and checking bound to one secret: what `get_authenticator()` returns,
    with the methods of session-buddy's WebSocketAuthenticator."""

    algorithm = "HS256"

    def __init__(self, secret: str | bytes, algorithm: str = "HS256",
                 token_expiry: int = DEFAULT_EXPIRY_S) -> None:
        if algorithm != "HS256":
            raise ValueError(f"only HS256 is supported, not {algorithm!r}")
        if isinstance(token_expiry, bool) or not isinstance(token_expiry, int) or token_expiry <= 0:
            raise ValueError(f"token_expiry must be a positive number of seconds, not {token_expiry!r}")
        self._secret = _secret(secret)
        self.token_expiry = token_expiry

    @property
    def expiry(self) -> int:
        """Alias of token_expiry."""
        return self.token_expiry

    def __repr__(self) -> str:
        return f"Authenticator(algorithm='HS256', token_expiry={self.token_expiry})"

    def create_token(self, payload: dict[str, Any]) -> str:
        """Sign payload (not modified), adding iat and exp (now + token_expiry) unless given."""
        if not isinstance(payload, dict):
            raise TypeError(f"payload must be a dict, not {type(payload).__name__}")
        now = int(time.time())
        return _sign({"iat": now, "exp": now + self.token_expiry, **payload}, self._secret)

    def verify_token(self, token: str) -> dict[str, Any] | None:
        """The claims of a valid token, or None (the reason is logged, never the token)."""
        return verify_token(token, secret=self._secret)

    def authenticate_connection(
        self, token: str, required_permissions: Iterable[str] | None = None
    ) -> dict[str, Any] | None:
        """The claims when token is valid and its `permissions` list holds every one of
        required_permissions; else None, with the reason logged."""
        payload = self.verify_token(token)
        if payload is None:
            return None
        required = list(required_permissions or ())
        if required:
            granted = payload.get("permissions")
            granted = granted if isinstance(granted, list) else []
            missing = [p for p in required if p not in granted]
            if missing:
                logger.warning("token refused: missing permissions %s", missing)
                return None
        return payload


def get_authenticator() -> Authenticator | None:
    """None when AUTH_ENABLED is false; else an Authenticator on JWT_SECRET and TOKEN_EXPIRY.
    ValueError when authentication is enabled without a secret (there is no default)."""
    if not AUTH_ENABLED:
        logger.info("WebSocket authentication disabled (SESSION_BUDDY_AUTH_ENABLED is not true)")
        return None
    if JWT_SECRET is None:
        raise ValueError(
            "SESSION_BUDDY_AUTH_ENABLED is true but SESSION_BUDDY_JWT_SECRET is not set: "
            "there is no default secret; set one (before importing session_buddy.realtime.auth, "
            "or reload it)"
        )
    return Authenticator(JWT_SECRET, token_expiry=_module_expiry())
