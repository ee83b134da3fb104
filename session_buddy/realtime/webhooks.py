"""Webhooks on anomalies (SPEC.md section 11): turns the C core's EV_ANOMALIES reports into
`anomaly.detected` / `anomaly.resolved` events, queues them durably per endpoint
(_webhook_store.py) and POSTs them with httpx, one worker task per endpoint.

Why it is here and not in C: the stream never waits for it.  The ticker posts the active set
to the event queue and moves on; everything below runs on the asyncio thread, so a busy host
Python can delay webhook sends, never an update.  An endpoint that hangs holds up only its own
worker (each has its own connection pool), and stop() cancels the attempts in flight: their
events stay queued and are sent again after a restart, with the same webhook-id.

Delivery: at least once, in order per endpoint (the oldest undelivered event blocks those behind
it), retried on any error, timeout or status >= 300 after
`min(600, retry_base * 2**(attempt-1)) * uniform(0.5, 1)` seconds, for up to `max_age` (24 h);
then dropped with one ERROR line.  Log lines name an endpoint by WebhookEndpoint.key (a hash of
its URL), never by the URL, a secret or a signature.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import logging
import random
import sqlite3
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import httpx

from session_buddy.realtime._webhook_config import (
    ANOMALY_DETECTED, ANOMALY_RESOLVED, TEST_EVENT, WebhookEndpoint,
)
from session_buddy.realtime._webhook_store import Delivery, WebhookStore

__all__ = ["EndpointStats", "WebhookDispatcher", "event_body", "send_test", "standard_headers"]

ATTEMPT_TIMEOUT_S = 10.0
MAX_RETRY_DELAY_S = 600.0
USER_AGENT = "session-buddy-realtime-webhooks"


@dataclass
class EndpointStats:
    """What /metrics shows for one endpoint (counters since this start)."""

    deliveries: int = 0
    failures: int = 0          # failed attempts
    retries: int = 0           # attempts after an event's first
    expired: int = 0           # dropped after max_age
    overflowed: int = 0        # dropped past max_queue
    depth: int = 0
    oldest_created: float = 0.0  # unix time of the oldest queued event, 0 when empty


def _iso(t: float) -> str:
    return datetime.fromtimestamp(t, timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def retry_delay(base: float, attempts: int) -> float:
    """Seconds before the next attempt, after `attempts` failed ones: exponential with jitter."""
    return min(MAX_RETRY_DELAY_S, base * 2.0 ** (attempts - 1)) * random.uniform(0.5, 1.0)


def event_body(ep: WebhookEndpoint, event: str, data: dict[str, Any], now: float) -> str:
    """The POST body of an event for an endpoint's format."""
    if ep.format == "slack":
        return json.dumps({"text": _slack_text(event, data)})
    return json.dumps({"type": event, "timestamp": _iso(now), "data": data})


def _slack_escape(text: str) -> str:
    # Slack's mrkdwn gives &, < and > meaning (<!channel>, <url|label>): a name is only text.
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _fmt(x: Any) -> str:
    return f"{x:.3g}" if isinstance(x, (int, float)) else "?"


def _slack_text(event: str, data: dict[str, Any]) -> str:
    dashboard = data.get("dashboard_url", "")
    link = f"<{dashboard}|dashboard>" if dashboard else ""
    if event == TEST_EVENT:
        return f"session-buddy webhook test from {_slack_escape(str(data.get('url', '')))} {link}".strip()
    head = "Anomaly resolved" if event == ANOMALY_RESOLVED else "Anomaly detected"
    skill = _slack_escape(str(data.get("skill_name", ""))).replace("\n", " ").replace("`", "'")
    kind = _slack_escape(str(data.get("anomaly_type", "")))
    return (f"{head}: `{skill}` {kind}, {_fmt(data.get('baseline_value'))} → "
            f"{_fmt(data.get('observed_value'))} (z = {_fmt(data.get('deviation_score'))}) {link}").strip()


def standard_headers(key: bytes, msg_id: str, timestamp: int, body: str) -> dict[str, str]:
    """The Standard Webhooks headers: the signature is base64 HMAC-SHA256 of `id.timestamp.body`."""
    signed = f"{msg_id}.{timestamp}.{body}".encode()
    signature = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
    return {"webhook-id": msg_id, "webhook-timestamp": str(timestamp), "webhook-signature": f"v1,{signature}"}


class _RedactEndpoints(logging.Filter):
    """httpx logs every request's URL at INFO ("HTTP Request: POST https://…"), and a webhook URL
    may carry its secret (a Slack URL is one).  Installed on the `httpx` logger, this rewrites
    each configured URL to its endpoint key before any handler sees the line."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: dict[str, str] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        if self.urls:
            message = record.getMessage()
            for url, key in self.urls.items():
                message = message.replace(url, f"<webhook {key}>")
            record.msg, record.args = message, ()
        return True


_REDACT = _RedactEndpoints()
logging.getLogger("httpx").addFilter(_REDACT)


def _new_msg_id() -> str:
    return f"msg_{uuid.uuid4().hex}"


def _client() -> httpx.AsyncClient:
    return httpx.AsyncClient(verify=True, follow_redirects=False, timeout=ATTEMPT_TIMEOUT_S,
                             headers={"user-agent": USER_AGENT})


async def _post(client: httpx.AsyncClient, ep: WebhookEndpoint, msg_id: str, body: str) -> str | None:
    """One attempt.  None on a 2xx; otherwise why it failed, in words fit for a log line (no URL:
    httpx's messages may carry it)."""
    headers = {"content-type": "application/json"}
    if ep.secret is not None and ep.format == "standard":
        headers.update(standard_headers(ep.secret, msg_id, int(time.time()), body))
    try:
        async with asyncio.timeout(ATTEMPT_TIMEOUT_S):  # the whole attempt, not each read
            response = await client.post(ep.url, content=body.encode(), headers=headers)
    except (TimeoutError, httpx.TimeoutException):
        return "timed out"
    except httpx.HTTPError as exc:
        return f"{type(exc).__name__}"
    if 200 <= response.status_code < 300:
        return None
    return f"status {response.status_code}"


class WebhookDispatcher:
    """The webhooks of one running server: open() before the core starts, close() on stop."""

    def __init__(self, endpoints: tuple[WebhookEndpoint, ...], path: Path, logger: Any,
                 publish: Callable[[list[tuple[str, int, int, int, int, int, int, float]]], None]) -> None:
        """publish(rows) receives every endpoint's figures after each change (for /metrics)."""
        self.endpoints = endpoints
        self._publish = publish
        self.path = path
        self._log = logger
        self._server_url = ""
        self._dashboard_url = ""
        self._store: WebhookStore | None = None
        self._active: dict[tuple[str, str], dict[str, Any]] = {}
        self._stats = {ep.key: EndpointStats() for ep in endpoints}
        self._wake = {ep.key: asyncio.Event() for ep in endpoints}
        self._tasks: list[asyncio.Task[None]] = []

    def open(self) -> None:
        """Open the queue and start one worker per endpoint (undelivered events go out at once)."""
        self._store = WebhookStore(self.path)
        _REDACT.urls.update({ep.url: ep.key for ep in self.endpoints})
        self._active = self._store.active_anomalies()
        for ep in self.endpoints:
            self._refresh(ep.key)
            self._tasks.append(asyncio.get_running_loop().create_task(self._worker(ep)))

    def set_urls(self, server_url: str, dashboard_url: str) -> None:
        """The server's URLs, which every event carries (known once the port is bound)."""
        self._server_url = server_url
        self._dashboard_url = dashboard_url

    def cancel(self) -> None:
        """Stop sending at once: an attempt in flight is abandoned, its event stays queued.
        Events reported after this are still queued, until close()."""
        for task in self._tasks:
            task.cancel()

    async def close(self) -> None:
        """cancel(), wait for the workers to finish, and close the queue."""
        self.cancel()
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=1.0)
        self._tasks.clear()
        if self._store is not None:
            self._store.close()
            self._store = None

    def on_anomalies(self, seq: int, epoch: str | None, text: str) -> None:
        """An EV_ANOMALIES report: the active set at snapshot `seq`.  Whatever differs from the
        set announced last (kept in the store, so across restarts) becomes events, queued for
        every endpoint that wants them in the same transaction that records the new set."""
        if self._store is None:
            return
        current = {(a["skill_name"], a["anomaly_type"]): a for a in json.loads(text)}
        now = time.time()
        changes: list[tuple[str, dict[str, Any]]] = []
        for key, fields in self._active.items():
            if key not in current:
                changes.append((ANOMALY_RESOLVED, {**fields, "resolved_at": _iso(now)}))
        for key, fields in current.items():
            if key not in self._active:
                changes.append((ANOMALY_DETECTED, dict(fields)))
        if not changes:
            return
        rows = []
        for event, fields in changes:
            data = {**fields, "epoch": epoch, "seq": seq, "url": self._server_url,
                    "dashboard_url": self._dashboard_url}
            msg_id = _new_msg_id()
            for ep in self.endpoints:
                if event in ep.events:
                    rows.append((ep.key, msg_id, event, event_body(ep, event, data, now)))
        try:
            dropped = self._store.accept(current, rows, {ep.key: ep.max_queue for ep in self.endpoints})
        except sqlite3.Error as exc:
            # Nothing was recorded: the announced set stays, and the next change is diffed against it.
            self._log.error("webhook queue %s: could not queue %d event(s): %s", self.path, len(changes), exc)
            return
        self._active = current
        for ep_key, n in dropped.items():
            self._stats[ep_key].overflowed += n
            self._log.warning("webhook %s: queue full, dropped the %d oldest undelivered event(s)", ep_key, n)
        for ep_key in {r[0] for r in rows}:
            self._refresh(ep_key)
            self._wake[ep_key].set()

    def _refresh(self, key: str) -> None:
        assert self._store is not None
        st = self._stats[key]
        st.depth, oldest = self._store.depth(key)
        st.oldest_created = oldest or 0.0
        self.publish_stats()

    def publish_stats(self) -> None:
        """Hand every endpoint's figures to publish()."""
        self._publish([(k, s.deliveries, s.failures, s.retries, s.expired, s.overflowed, s.depth,
                        s.oldest_created) for k, s in self._stats.items()])

    async def _worker(self, ep: WebhookEndpoint) -> None:
        async with _client() as client:
            while True:
                try:
                    await self._step(ep, client)
                except sqlite3.Error as exc:  # a locked or full disk: the queue itself is kept
                    self._log.error("webhook %s: queue %s failed (%s); trying again in %.1f s",
                                    ep.key, self.path, exc, ep.retry_base)
                    await asyncio.sleep(ep.retry_base)

    async def _step(self, ep: WebhookEndpoint, client: httpx.AsyncClient) -> None:
        """Wait for, expire or attempt the endpoint's oldest event."""
        assert self._store is not None
        d = self._store.head(ep.key)
        if d is None:
            self._wake[ep.key].clear()
            await self._wake[ep.key].wait()
            return
        now = time.time()
        if now - d.created > ep.max_age:
            self._expire(ep, d, now)
        elif d.next_at > now:
            await asyncio.sleep(d.next_at - now)
        else:
            await self._attempt(ep, client, d)

    def _expire(self, ep: WebhookEndpoint, d: Delivery, now: float) -> None:
        assert self._store is not None
        self._store.remove(d.id)
        self._stats[ep.key].expired += 1
        self._refresh(ep.key)
        self._log.error("webhook %s: dropped %s %s after %d failed attempt(s) over %.0f s",
                        ep.key, d.event, d.msg_id, d.attempts, now - d.created)

    async def _attempt(self, ep: WebhookEndpoint, client: httpx.AsyncClient, d: Delivery) -> None:
        st = self._stats[ep.key]
        if d.attempts:
            st.retries += 1
        failure = await _post(client, ep, d.msg_id, d.body)
        assert self._store is not None
        if failure is None:
            self._store.remove(d.id)
            st.deliveries += 1
        else:
            st.failures += 1
            delay = retry_delay(ep.retry_base, d.attempts + 1)
            self._store.reschedule(d.id, d.attempts + 1, time.time() + delay)
            level = logging.WARNING if d.attempts == 0 else logging.DEBUG
            self._log.log(level, "webhook %s: attempt %d of %s %s failed (%s); retrying in %.1f s",
                          ep.key, d.attempts + 1, d.event, d.msg_id, failure, delay)
        self._refresh(ep.key)


async def send_test(ep: WebhookEndpoint, server_url: str = "", dashboard_url: str = "") -> str | None:
    """POST one `webhook.test` event to ep, once.  None when it answered 2xx, else why not."""
    _REDACT.urls[ep.url] = ep.key
    now = time.time()
    data = {"message": "session-buddy webhook test", "url": server_url, "dashboard_url": dashboard_url}
    async with _client() as client:
        return await _post(client, ep, _new_msg_id(), event_body(ep, TEST_EVENT, data, now))
