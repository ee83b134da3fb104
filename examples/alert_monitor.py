#!/usr/bin/env python3
"""alert_monitor.py - the API doc's "Example 3: Alert Integration", in Python with `websockets`.

Watches the metrics stream and raises one alert per (skill, anomaly type) when an anomaly
becomes active, and one "resolved" event when it is gone from the stream. Each event is:

- a JSON line on stdout, e.g.
  {"event": "alert", "severity": "WARNING", "skill": "mypy", "type": "performance_drop",
   "baseline": 0.9, "observed": 0.0, "deviation": -2.85, "detected_at": "...", "timestamp": "..."}
- a log line on stderr (WARNING for an alert, INFO when resolved);
- with --webhook URL, the same JSON POSTed to URL (stdlib urllib, no extra dependency).

    python examples/alert_monitor.py --url ws://localhost:8765
    python examples/alert_monitor.py --skill pytest-run --webhook http://localhost:9000/hooks/alerts
    python examples/alert_monitor.py --count 10          # stop after 10 updates (scripts, tests)

The server can now send these itself: `webhooks=` / `--webhook URL` POST signed, retried,
durable `anomaly.detected` / `anomaly.resolved` events (docs/realtime/WEBHOOKS.md), with no
process of your own. This script is still the better tool when the receiver cannot be reached
by HTTP from the server, when alerts should follow one client's subscription (--skill), or to
watch alerts in a terminal.

A lost connection is retried with backoff (0.5 s doubling to 10 s) and alerts still active are
not raised again. Failing to connect the first time is an error: one line, exit status 1.
Ctrl+C (or SIGTERM) closes the connection cleanly and exits 0.
"""

from __future__ import annotations

import argparse
import asyncio
import inspect
import json
import logging
import random
import signal
import sys
import urllib.error
import urllib.request
from typing import Any

try:
    from websockets.asyncio.client import connect
    from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidURI
except ImportError:  # pragma: no cover - said once, clearly
    sys.exit("alert_monitor: needs the websockets package >= 13: pip install websockets")

__all__ = ["AlertTracker", "main"]

log = logging.getLogger("session_buddy.alert_monitor")

BACKOFF_MIN, BACKOFF_MAX = 0.5, 10.0

# websockets >= 15 would route through an *_proxy environment variable; a local server never wants that.
CONNECT_KWARGS: dict[str, Any] = {"proxy": None} if "proxy" in inspect.signature(connect).parameters else {}


class AlertTracker:
    """Turns the anomaly list of each update into alert / resolved events, once per (skill, type)."""

    def __init__(self) -> None:
        self.active: dict[tuple[str, str], dict[str, Any]] = {}

    def update(self, message: dict[str, Any]) -> list[dict[str, Any]]:
        data = message.get("data") or {}
        now = {(a["skill_name"], a["anomaly_type"]): a for a in data.get("anomalies") or []}
        events = []
        for key, a in now.items():
            if key not in self.active:
                events.append(self._event("alert", "WARNING", a, message))
        for key, a in self.active.items():
            if key not in now:
                events.append(self._event("resolved", "INFO", a, message))
        self.active = now
        return events

    @staticmethod
    def _event(kind: str, severity: str, a: dict[str, Any], message: dict[str, Any]) -> dict[str, Any]:
        return {
            "event": kind,
            "severity": severity,
            "skill": a.get("skill_name"),
            "type": a.get("anomaly_type"),
            "baseline": a.get("baseline_value"),
            "observed": a.get("observed_value"),
            "deviation": a.get("deviation_score"),
            "detected_at": a.get("detected_at"),
            "timestamp": message.get("timestamp"),
        }


def post_webhook(url: str, event: dict[str, Any], timeout: float = 5.0) -> None:
    """POST one event as JSON; a failing hook is logged, never fatal."""
    body = json.dumps(event).encode()
    req = urllib.request.Request(url, data=body, method="POST",
                                 headers={"Content-Type": "application/json", "User-Agent": "session-buddy-alert-monitor"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            resp.read()
    except (urllib.error.URLError, OSError, ValueError) as exc:
        log.error("webhook %s failed: %s", url, exc)


def _num(value: Any, spec: str) -> str:
    return format(value, spec) if isinstance(value, (int, float)) else "?"


def describe(event: dict[str, Any]) -> str:
    return (f"{event['skill']} {event['type']}: baseline {_num(event['baseline'], '.3g')} -> observed "
            f"{_num(event['observed'], '.3g')} (z={_num(event['deviation'], '+.2f')})")


async def emit(event: dict[str, Any], webhook: str | None) -> None:
    print(json.dumps(event), flush=True)
    if event["event"] == "alert":
        log.warning("ANOMALY %s", describe(event))
    else:
        log.info("resolved %s", describe(event))
    if webhook:
        await asyncio.to_thread(post_webhook, webhook, event)


async def monitor(args: argparse.Namespace, stop: asyncio.Event) -> int:
    tracker = AlertTracker()
    seen = 0
    attempt = 0
    connected_once = False
    while not stop.is_set():
        try:
            async with connect(args.url, open_timeout=10, **CONNECT_KWARGS) as ws:
                connected_once, attempt = True, 0
                log.info("connected to %s, watching %s", args.url, args.skill or "all skills")
                confirmed = args.skill is None  # a new connection already streams all skills
                if args.skill is not None:
                    await ws.send(json.dumps({"type": "subscribe", "skill_name": args.skill}))
                stopper = asyncio.create_task(stop.wait())
                try:
                    while True:
                        receiver = asyncio.create_task(ws.recv())
                        finished, _ = await asyncio.wait({receiver, stopper}, return_when=asyncio.FIRST_COMPLETED)
                        if stopper in finished:
                            receiver.cancel()
                            await ws.close()
                            return 0
                        message = json.loads(receiver.result())
                        kind = message.get("type")
                        if kind == "subscription_confirmed":
                            confirmed = True
                        elif kind == "error":
                            log.error("server error %s: %s", message.get("code"), message.get("message"))
                        elif kind == "metrics_update" and confirmed:
                            for event in tracker.update(message):
                                await emit(event, args.webhook)
                            seen += 1
                            if args.count and seen >= args.count:
                                await ws.close()
                                return 0
                finally:
                    stopper.cancel()
        except (OSError, InvalidHandshake, asyncio.TimeoutError, TimeoutError) as exc:
            if not connected_once:
                print(f"alert_monitor: cannot connect to {args.url}: {exc}", file=sys.stderr)
                return 1
            reason = str(exc) or type(exc).__name__
        except ConnectionClosed as exc:
            reason = f"connection closed ({exc.rcvd.code if exc.rcvd else 'no close frame'})"
        delay = min(BACKOFF_MAX, BACKOFF_MIN * 2 ** attempt) * random.uniform(0.75, 1.25)
        attempt += 1
        log.warning("%s; reconnecting in %.1f s", reason, delay)
        try:
            await asyncio.wait_for(stop.wait(), delay)
        except (asyncio.TimeoutError, TimeoutError):
            pass
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="alert_monitor", description="Raise alerts for session-buddy skill anomalies.")
    p.add_argument("--url", default="ws://localhost:8765", help="server URL (default ws://localhost:8765)")
    p.add_argument("--skill", default=None, help="watch one skill only (default: all skills)")
    p.add_argument("--count", type=int, default=0, metavar="N", help="exit after N metrics updates (default: run until stopped)")
    p.add_argument("--webhook", default=None, metavar="URL", help="also POST every event as JSON to URL")
    p.add_argument("--log-level", default="INFO", type=str.upper, choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    return p


async def _main(args: argparse.Namespace) -> int:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(sig, stop.set)
        except (NotImplementedError, RuntimeError):  # not on this platform: Ctrl+C still ends asyncio.run
            pass
    return await monitor(args, stop)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.count < 0:
        build_parser().error("--count must be >= 0")
    logging.basicConfig(level=args.log_level, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(message)s")
    try:
        return asyncio.run(_main(args))
    except InvalidURI as exc:
        print(f"alert_monitor: bad --url: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 0


if __name__ == "__main__":
    sys.exit(main())
