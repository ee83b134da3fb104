"""The `webhooks=` argument of RealTimeMetricsServer, checked once at construction: each entry
becomes a WebhookEndpoint, or TypeError / ValueError names the entry and what is wrong with it."""

from __future__ import annotations

import base64
import binascii
import hashlib
import math
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

__all__ = [
    "ANOMALY_DETECTED", "ANOMALY_RESOLVED", "EVENTS", "FORMATS", "TEST_EVENT", "WebhookEndpoint",
    "parse_secret", "validate_url", "webhook_endpoints",
]

ANOMALY_DETECTED = "anomaly.detected"
ANOMALY_RESOLVED = "anomaly.resolved"
TEST_EVENT = "webhook.test"
EVENTS = (ANOMALY_DETECTED, ANOMALY_RESOLVED)
FORMATS = ("standard", "slack")

_KEYS = {"url", "secret", "events", "format", "max_queue", "retry_base", "max_age"}
_SECRET_PREFIX = "whsec_"


@dataclass(frozen=True)
class WebhookEndpoint:
    """One endpoint: where to POST, how to sign, which events, and its delivery bounds.

    `retry_base` is the first retry's delay in seconds (it doubles per attempt); `max_age` is
    how long an event is retried before it is dropped; `max_queue` bounds the undelivered events
    kept for this endpoint (past it the oldest is dropped)."""

    url: str = field(repr=False)
    secret: bytes | None = field(repr=False)
    events: frozenset[str]
    format: str
    max_queue: int = 10_000
    retry_base: float = 1.0
    max_age: float = 86_400.0

    @property
    def key(self) -> str:
        """A short hash of the URL: the endpoint's name in the store, in /metrics and in logs,
        which must not show the URL (a Slack URL is itself a secret)."""
        return hashlib.sha256(self.url.encode()).hexdigest()[:12]

    def __repr__(self) -> str:
        return f"WebhookEndpoint({self.key}, format={self.format!r}, events={sorted(self.events)})"


def validate_url(url: Any, where: str = "url") -> str:
    """An absolute http(s) URL with a host, else TypeError / ValueError."""
    if not isinstance(url, str):
        raise TypeError(f"{where} must be a str, not {type(url).__name__}")
    if not url or any(c.isspace() or ord(c) < 0x20 or ord(c) == 0x7F for c in url):
        raise ValueError(f"{where} must be an http:// or https:// URL without spaces or control characters")
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a bad port
    except ValueError as exc:
        raise ValueError(f"{where} is not a valid URL: {exc}") from None
    if parts.scheme not in ("http", "https"):
        raise ValueError(f"{where} must use http or https, not {parts.scheme or 'no scheme'!r}")
    if not parts.hostname:
        raise ValueError(f"{where} has no host")
    return url


def parse_secret(secret: Any, where: str = "secret") -> bytes:
    """The signing key of a Standard Webhooks secret: `whsec_` followed by base64 (as the
    specification and its libraries print them), or plain base64; 24 to 64 bytes once decoded.
    bytes are taken as the key itself."""
    if isinstance(secret, bytes):
        key = secret
    elif isinstance(secret, str):
        text = secret[len(_SECRET_PREFIX):] if secret.startswith(_SECRET_PREFIX) else secret
        try:
            key = base64.b64decode(text, validate=True)
        except (binascii.Error, ValueError):
            raise ValueError(f"{where} must be 'whsec_' followed by base64 (Standard Webhooks)") from None
    else:
        raise TypeError(f"{where} must be a str or bytes, not {type(secret).__name__}")
    if not 24 <= len(key) <= 64:
        raise ValueError(f"{where} must decode to 24..64 bytes, not {len(key)}")
    return key


def _events(value: Any, where: str) -> frozenset[str]:
    if value is None:
        return frozenset(EVENTS)
    if isinstance(value, str) or not isinstance(value, (list, tuple, set, frozenset)):
        raise TypeError(f"{where} must be a list of event names, not {type(value).__name__}")
    if not value:
        raise ValueError(f"{where} must name at least one event: {', '.join(EVENTS)}")
    for name in value:
        if name not in EVENTS:
            raise ValueError(f"{where} holds an unknown event {name!r}; known: {', '.join(EVENTS)}")
    return frozenset(value)


def _number(value: Any, where: str, integer: bool) -> Any:
    kinds = (int,) if integer else (int, float)
    if isinstance(value, bool) or not isinstance(value, kinds):
        raise TypeError(f"{where} must be {'an int' if integer else 'a number'}, not {type(value).__name__}")
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"{where} must be > 0, got {value!r}")
    return value


def _endpoint(entry: Any, i: int) -> WebhookEndpoint:
    where = f"webhooks[{i}]"
    if not isinstance(entry, dict):
        raise TypeError(f"{where} must be a dict with url, secret, events and format, not {type(entry).__name__}")
    unknown = set(entry) - _KEYS
    if unknown:
        raise ValueError(f"{where} has unknown keys: {', '.join(sorted(map(str, unknown)))}")
    if "url" not in entry:
        raise ValueError(f"{where} needs a url")
    url = validate_url(entry["url"], f"{where}.url")
    fmt = entry.get("format", "standard")
    if fmt not in FORMATS:
        raise ValueError(f"{where}.format must be one of {', '.join(FORMATS)}, not {fmt!r}")
    secret = entry.get("secret")
    if secret is None and fmt == "standard":
        raise ValueError(f"{where}.secret is required for the standard format (whsec_… base64)")
    key = parse_secret(secret, f"{where}.secret") if secret is not None else None
    return WebhookEndpoint(
        url=url, secret=key, events=_events(entry.get("events"), f"{where}.events"), format=fmt,
        max_queue=_number(entry.get("max_queue", 10_000), f"{where}.max_queue", True),
        retry_base=float(_number(entry.get("retry_base", 1.0), f"{where}.retry_base", False)),
        max_age=float(_number(entry.get("max_age", 86_400.0), f"{where}.max_age", False)),
    )


def webhook_endpoints(webhooks: Any) -> tuple[WebhookEndpoint, ...]:
    """Validate the constructor's `webhooks=`: None or a list of dicts."""
    if webhooks is None:
        return ()
    if isinstance(webhooks, (str, bytes, dict)) or not isinstance(webhooks, (list, tuple)):
        raise TypeError(f"webhooks must be a list of dicts or None, not {type(webhooks).__name__}")
    endpoints = tuple(_endpoint(entry, i) for i, entry in enumerate(webhooks))
    keys = [e.key for e in endpoints]
    if len(set(keys)) != len(keys):
        raise ValueError("webhooks lists the same url twice")
    return endpoints
