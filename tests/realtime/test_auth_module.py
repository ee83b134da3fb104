"""session_buddy.realtime.auth: tokens made and checked in Python, cross-checked with PyJWT, and
session-buddy's original module contract (get_authenticator, payload fields)."""

from __future__ import annotations

import time

import jwt as pyjwt
import pytest

from session_buddy.realtime import auth

SECRET = "module-test-secret-0123456789abcdef-0123456789abcdef-0123456789abcdef"
pytestmark = pytest.mark.filterwarnings("ignore::jwt.warnings.InsecureKeyLengthWarning")


def test_roundtrip_and_default_claims() -> None:
    token = auth.generate_token("user-123", secret=SECRET)
    payload = auth.verify_token(token, secret=SECRET)
    assert payload is not None
    assert payload["user_id"] == "user-123"
    assert payload["permissions"] == ["session-buddy:read"]
    assert 3590 <= payload["exp"] - time.time() <= 3601


def test_pyjwt_reads_ours_and_we_read_pyjwts() -> None:
    ours = auth.generate_token("u", ["a", "b"], 60, secret=SECRET)
    assert pyjwt.decode(ours, SECRET, algorithms=["HS256"])["permissions"] == ["a", "b"]
    theirs = pyjwt.encode({"user_id": "v", "exp": int(time.time()) + 60, "extra": {"k": [1]}}, SECRET, algorithm="HS256")
    assert auth.verify_token(theirs, secret=SECRET)["extra"] == {"k": [1]}


@pytest.mark.parametrize("token", [
    pyjwt.encode({"user_id": "x", "exp": int(time.time()) - 120}, SECRET, algorithm="HS256"),
    pyjwt.encode({"user_id": "x", "exp": int(time.time()) + 60}, None, algorithm="none"),
    pyjwt.encode({"user_id": "x", "exp": int(time.time()) + 60}, SECRET, algorithm="HS512"),
    pyjwt.encode({"user_id": "x", "exp": int(time.time()) + 60}, "other-secret-0123456789abcdef-0123456789", algorithm="HS256"),
    "a.b.c", "", "....",
], ids=["expired", "alg-none", "HS512", "other-secret", "junk", "empty", "dots"])
def test_refused_tokens(token: str) -> None:
    assert auth.verify_token(token, secret=SECRET) is None
    with pytest.raises(auth.AuthenticationError):
        auth.decode_token(token, secret=SECRET)


def test_tampered_token_is_refused() -> None:
    head, _, sig = auth.generate_token("alice", secret=SECRET).split(".")
    forged_payload = auth.generate_token("admin", secret=SECRET).split(".")[1]
    assert auth.verify_token(f"{head}.{forged_payload}.{sig}", secret=SECRET) is None


def test_reasons_are_precise() -> None:
    expired = pyjwt.encode({"exp": int(time.time()) - 120}, SECRET, algorithm="HS256")
    with pytest.raises(auth.AuthenticationError, match="expired"):
        auth.decode_token(expired, secret=SECRET)
    with pytest.raises(auth.AuthenticationError, match="HS256"):
        auth.decode_token(pyjwt.encode({"exp": 1}, SECRET, algorithm="HS384"), secret=SECRET)


def test_no_secret_is_an_error(monkeypatch) -> None:
    monkeypatch.delenv("SESSION_BUDDY_JWT_SECRET", raising=False)
    with pytest.raises(ValueError, match="secret"):
        auth.generate_token("x")
    with pytest.raises(ValueError, match="secret"):
        auth.verify_token("a.b.c")


def test_environment_secret_and_expiry(monkeypatch) -> None:
    monkeypatch.setenv("SESSION_BUDDY_JWT_SECRET", SECRET)
    monkeypatch.setenv("SESSION_BUDDY_TOKEN_EXPIRY", "120")
    payload = auth.verify_token(auth.generate_token("env-user"))
    assert payload["user_id"] == "env-user" and 110 <= payload["exp"] - time.time() <= 121
    monkeypatch.setenv("SESSION_BUDDY_TOKEN_EXPIRY", "soon")
    with pytest.raises(ValueError, match="SESSION_BUDDY_TOKEN_EXPIRY"):
        auth.generate_token("x")


def test_get_authenticator_follows_the_environment(monkeypatch) -> None:
    monkeypatch.delenv("SESSION_BUDDY_AUTH_ENABLED", raising=False)
    assert auth.get_authenticator() is None
    monkeypatch.setenv("SESSION_BUDDY_AUTH_ENABLED", "true")
    monkeypatch.setenv("SESSION_BUDDY_JWT_SECRET", SECRET)
    authenticator = auth.get_authenticator()
    assert authenticator is not None and SECRET not in repr(authenticator)
    token = authenticator.create_token({"user_id": "x"})
    assert auth.verify_token(token)["user_id"] == "x"
    monkeypatch.delenv("SESSION_BUDDY_JWT_SECRET")
    with pytest.raises(ValueError):
        auth.get_authenticator()


@pytest.mark.parametrize("kwargs", [{"user_id": ""}, {"user_id": "x", "expires_in": 0}, {"user_id": "x", "expires_in": True}])
def test_bad_arguments(kwargs) -> None:
    with pytest.raises(ValueError):
        auth.generate_token(**kwargs, secret=SECRET)
