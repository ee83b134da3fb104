"""session_buddy.realtime.auth: tokens made and checked in Python, cross-checked with PyJWT, and
session-buddy's original module contract (get_authenticator, payload fields)."""

from __future__ import annotations

import importlib
import logging
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


def _reloaded(monkeypatch, **env: str | None):
    """The module re-read with env applied: its constants are read at import, as session-buddy's."""
    for name, value in env.items():
        if value is None:
            monkeypatch.delenv(name, raising=False)
        else:
            monkeypatch.setenv(name, value)
    return importlib.reload(auth)


@pytest.fixture(autouse=True)
def _restore_module_constants():
    """Tests below reload the module under a patched environment; leave it as the real one found it."""
    yield
    importlib.reload(auth)


def test_no_secret_is_an_error(monkeypatch) -> None:
    _reloaded(monkeypatch, SESSION_BUDDY_JWT_SECRET=None)
    assert auth.JWT_SECRET is None
    with pytest.raises(ValueError, match="SESSION_BUDDY_JWT_SECRET"):
        auth.generate_token("x")
    with pytest.raises(ValueError, match="secret"):
        auth.verify_token("a.b.c")
    _reloaded(monkeypatch, SESSION_BUDDY_JWT_SECRET="")
    assert auth.JWT_SECRET is None
    with pytest.raises(ValueError, match="secret"):
        auth.generate_token("x")


def test_environment_secret_and_expiry(monkeypatch) -> None:
    _reloaded(monkeypatch, SESSION_BUDDY_JWT_SECRET=SECRET, SESSION_BUDDY_TOKEN_EXPIRY="120")
    assert auth.JWT_SECRET == SECRET and auth.TOKEN_EXPIRY == 120
    payload = auth.verify_token(auth.generate_token("env-user"))
    assert payload["user_id"] == "env-user" and 110 <= payload["exp"] - time.time() <= 121
    # A bad value does not break the import (the server imports this module); making a token says why.
    _reloaded(monkeypatch, SESSION_BUDDY_TOKEN_EXPIRY="soon")
    assert auth.TOKEN_EXPIRY is None
    with pytest.raises(ValueError, match="SESSION_BUDDY_TOKEN_EXPIRY"):
        auth.generate_token("x")
    assert auth.verify_token(auth.generate_token("x", expires_in=60))["user_id"] == "x"


def test_constants_are_read_at_import_not_at_call(monkeypatch) -> None:
    _reloaded(monkeypatch, SESSION_BUDDY_AUTH_ENABLED="true", SESSION_BUDDY_JWT_SECRET=SECRET)
    monkeypatch.setenv("SESSION_BUDDY_AUTH_ENABLED", "false")
    monkeypatch.setenv("SESSION_BUDDY_JWT_SECRET", "changed-after-import")
    assert auth.AUTH_ENABLED is True and auth.JWT_SECRET == SECRET
    assert auth.get_authenticator() is not None
    token = auth.generate_token("x")
    assert pyjwt.decode(token, SECRET, algorithms=["HS256"])["user_id"] == "x"
    # ... while the parsing functions the server calls at start() see the environment as it is now.
    assert auth.auth_enabled() is False and auth.environment_secret() == "changed-after-import"


@pytest.mark.parametrize("word,enabled", [("true", True), ("TRUE", True), (" yes ", True), ("1", True),
                                          ("on", True), ("false", False), ("", False), ("2", False)])
def test_enabled_words(monkeypatch, word: str, enabled: bool) -> None:
    assert _reloaded(monkeypatch, SESSION_BUDDY_AUTH_ENABLED=word).AUTH_ENABLED is enabled


def test_get_authenticator_follows_the_environment(monkeypatch, caplog) -> None:
    _reloaded(monkeypatch, SESSION_BUDDY_AUTH_ENABLED=None, SESSION_BUDDY_JWT_SECRET=SECRET)
    with caplog.at_level(logging.INFO, logger="session_buddy.realtime.auth"):
        assert auth.get_authenticator() is None
    assert any(r.name == "session_buddy.realtime.auth" and "disabled" in r.getMessage() for r in caplog.records)
    _reloaded(monkeypatch, SESSION_BUDDY_AUTH_ENABLED="true", SESSION_BUDDY_TOKEN_EXPIRY="1800")
    authenticator = auth.get_authenticator()
    assert authenticator is not None and SECRET not in repr(authenticator)
    assert authenticator.token_expiry == 1800 and authenticator.algorithm == "HS256"
    token = authenticator.create_token({"user_id": "x"})
    claims = auth.verify_token(token)
    assert claims["user_id"] == "x" and 1790 <= claims["exp"] - time.time() <= 1801
    assert authenticator.verify_token(token)["user_id"] == "x"
    _reloaded(monkeypatch, SESSION_BUDDY_JWT_SECRET=None)
    with pytest.raises(ValueError, match="no default secret"):
        auth.get_authenticator()


def test_authenticate_connection_checks_permissions(caplog) -> None:
    authenticator = auth.Authenticator(SECRET)
    token = auth.generate_token("ops", ["session-buddy:read", "session-buddy:admin"], secret=SECRET)
    assert authenticator.authenticate_connection(token)["user_id"] == "ops"
    assert authenticator.authenticate_connection(token, ["session-buddy:admin"])["user_id"] == "ops"
    assert authenticator.authenticate_connection(token, []) is not None
    with caplog.at_level(logging.WARNING, logger="session_buddy.realtime.auth"):
        assert authenticator.authenticate_connection(token, ["session-buddy:write"]) is None
        no_list = pyjwt.encode({"user_id": "y", "exp": int(time.time()) + 60, "permissions": "session-buddy:admin"},
                               SECRET, algorithm="HS256")
        assert authenticator.authenticate_connection(no_list, ["session-buddy:admin"]) is None
        assert authenticator.authenticate_connection("a.b.c") is None
        other = auth.generate_token("ops", secret="another-secret-0123456789abcdef-0123456789")
        assert authenticator.authenticate_connection(other) is None
    messages = [r.getMessage() for r in caplog.records if r.name == "session_buddy.realtime.auth"]
    assert any("session-buddy:write" in m for m in messages)
    assert len(messages) == 4 and not any(token in m or other in m for m in messages)


def test_authenticator_arguments() -> None:
    with pytest.raises(ValueError, match="HS256"):
        auth.Authenticator(SECRET, algorithm="HS512")
    with pytest.raises(ValueError):
        auth.Authenticator(SECRET, token_expiry=0)
    with pytest.raises(ValueError, match="secret"):
        auth.Authenticator("")
    with pytest.raises(TypeError):
        auth.Authenticator(SECRET).create_token("user")  # type: ignore[arg-type]
    claims = {"user_id": "z", "exp": int(time.time()) + 30}
    token = auth.Authenticator(SECRET).create_token(claims)
    assert claims == {"user_id": "z", "exp": claims["exp"]}  # not modified
    assert auth.verify_token(token, secret=SECRET)["exp"] == claims["exp"]


@pytest.mark.parametrize("kwargs", [{"user_id": ""}, {"user_id": "x", "expires_in": 0}, {"user_id": "x", "expires_in": True}])
def test_bad_arguments(kwargs) -> None:
    with pytest.raises(ValueError):
        auth.generate_token(**kwargs, secret=SECRET)


async def test_upstream_style_setup_authenticates_over_the_network(monkeypatch, server_factory, client_factory) -> None:
    """session-buddy's way: the environment turns auth on, get_authenticator() mints the token;
    a server started from the same environment accepts it; another secret's token is refused."""
    _reloaded(monkeypatch, SESSION_BUDDY_AUTH_ENABLED="true", SESSION_BUDDY_JWT_SECRET=SECRET)
    authenticator = auth.get_authenticator()
    assert authenticator is not None
    server = await server_factory()  # no require_auth, no jwt_secret: the environment only
    token = authenticator.create_token({"user_id": "ops", "permissions": ["session-buddy:read"]})
    _, hello = await client_factory.with_hello(server, additional_headers={"Authorization": f"Bearer {token}"})
    assert hello["authenticated"] is True
    assert authenticator.authenticate_connection(token, ["session-buddy:read"])["user_id"] == "ops"
    forged = auth.Authenticator("not-the-server-secret-0123456789abcdef").create_token({"user_id": "ops"})
    assert authenticator.authenticate_connection(forged) is None
