"""JWT (HS256) tokens for the real-time server (SPEC section 4).

    from session_buddy.realtime.auth import generate_token, verify_token

    token = generate_token("alice")          # signed with SESSION_BUDDY_JWT_SECRET
    payload = verify_token(token)            # the claims, or None when refused

Tokens are verified by the same C code the server runs on every handshake:
alg pinned to HS256, the signature compared in constant time, `exp` required
and `exp`/`nbf` checked with 30 s of leeway. There is no built-in secret: a
missing one raises ValueError.

Environment (read at call time):
- SESSION_BUDDY_AUTH_ENABLED: "true" makes every server require authentication.
- SESSION_BUDDY_JWT_SECRET: the shared secret.
- SESSION_BUDDY_TOKEN_EXPIRY: default lifetime of generated tokens, in seconds (3600).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import time
from collections.abc import Iterable
from typing import Any

from session_buddy.realtime._core import verify_jwt

__all__ = [
    "AuthenticationError",
    "Authenticator",
    "auth_enabled",
    "decode_token",
    "generate_token",
    "get_authenticator",
    "verify_token",
]

DEFAULT_PERMISSIONS = ("session-buddy:read",)
DEFAULT_EXPIRY_S = 3600
_TRUE_WORDS = {"1", "true", "yes", "on"}


class AuthenticationError(ValueError):
    """A token was refused; the message says why (never the token)."""


def auth_enabled() -> bool:
    """True when SESSION_BUDDY_AUTH_ENABLED asks every server to require authentication."""
    return os.environ.get("SESSION_BUDDY_AUTH_ENABLED", "").strip().lower() in _TRUE_WORDS


def _secret(secret: str | bytes | None) -> bytes:
    if secret is None:
        secret = os.environ.get("SESSION_BUDDY_JWT_SECRET", "")
    if isinstance(secret, str):
        secret = secret.encode()
    if not isinstance(secret, bytes):
        raise TypeError(f"secret must be a str or bytes, not {type(secret).__name__}")
    if not secret:
        raise ValueError("no JWT secret: pass secret= or set SESSION_BUDDY_JWT_SECRET")
    return secret


def _default_expiry() -> int:
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
    """A signed HS256 token for user_id, valid for expires_in seconds
    (default SESSION_BUDDY_TOKEN_EXPIRY, else 3600)."""
    if not isinstance(user_id, str) or not user_id:
        raise ValueError("user_id must be a non-empty str")
    if expires_in is None:
        expires_in = _default_expiry()
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
    except AuthenticationError:
        return None


class Authenticator:
    """Token issuing and checking bound to one secret (session-buddy's `get_authenticator()`)."""

    def __init__(self, secret: str | bytes, expiry: int = DEFAULT_EXPIRY_S) -> None:
        self._secret = _secret(secret)
        self.expiry = expiry

    def __repr__(self) -> str:
        return f"Authenticator(expiry={self.expiry})"

    def create_token(self, claims: dict[str, Any]) -> str:
        """Sign claims, adding iat and exp (now + expiry) unless given."""
        now = int(time.time())
        full = {"iat": now, "exp": now + self.expiry, **claims}
        return _sign(full, self._secret)

    def verify_token(self, token: str) -> dict[str, Any] | None:
        return verify_token(token, secret=self._secret)


def get_authenticator() -> Authenticator | None:
    """An Authenticator from the environment when authentication is enabled, else None."""
    if not auth_enabled():
        return None
    return Authenticator(_secret(None), _default_expiry())
