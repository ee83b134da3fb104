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

A lost connection is retried with backoff (0.5 s doubling to 10 s) and resumed where it broke
off: the subscribe carries `since` (the epoch and seq of the last update seen) and the server
replays every update missed meanwhile, so an anomaly that opened and closed while the script was
away is still reported, with the timestamps of the updates that carried it. When the server
cannot replay (it restarted, or the outage outlasted its recovery window, 600 s by default) the
script prints a "gap" event instead, saying since when updates are lost. Alerts still active are
never raised twice. Failing to connect the first time is an error: one line, exit status 1.
Ctrl+C (or SIGTERM) closes the connection cleanly and exits 0.

The server can also POST these events itself (`webhooks=`, `--webhook`: signed, retried for
24 h, queued durably across restarts). Prefer those for alerting that must not miss anything.
This script remains the better tool when you cannot configure or restart the server (it only
needs to reach the stream), when the receiver is reachable from where the script runs but not
from the server, when you want the events on stdout to pipe into a local command, or for a
quick look at one skill.
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

__all__ = ["AlertTracker", "StreamPosition", "main"]

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


class StreamPosition:
    """Where in the server's stream this script stands: the epoch and seq of the last update it
    applied, which a reconnect sends as `since` so the server replays what was missed."""

    def __init__(self) -> None:
        self.epoch: str | None = None
        self.seq: int | None = None
        self.timestamp: str | None = None  # of the last update applied

    @property
    def known(self) -> bool:
        return self.epoch is not None and self.seq is not None

    def start_at(self, connected: dict[str, Any]) -> None:
        """A first connection counts its `connected` message as seen (the next update follows it)."""
        if not self.known and isinstance(connected.get("epoch"), str) and isinstance(connected.get("seq"), int):
            self.epoch, self.seq = connected["epoch"], connected["seq"]

    def subscribe(self, skill: str | None) -> dict[str, Any]:
        request: dict[str, Any] = {"type": "subscribe", "skill_name": skill}
        if self.known:
            request["since"] = {"epoch": self.epoch, "seq": self.seq}
        return request

    def is_repeat(self, update: dict[str, Any]) -> bool:
        """An update already applied (never expected from a server that recovered, but cheap)."""
        seq = update.get("seq")
        return (self.epoch is not None and self.seq is not None and update.get("epoch") == self.epoch
                and isinstance(seq, int) and seq <= self.seq)

    def advance(self, update: dict[str, Any]) -> None:
        if isinstance(update.get("epoch"), str) and isinstance(update.get("seq"), int):
            self.epoch, self.seq = update["epoch"], update["seq"]
        self.timestamp = update.get("timestamp")

    def forget(self) -> None:
        self.epoch = self.seq = None


def gap_event(position: StreamPosition, confirmation: dict[str, Any]) -> dict[str, Any]:
    """The event for a resume the server refused: updates after the position are lost."""
    return {
        "event": "gap",
        "severity": "WARNING",
        "epoch": position.epoch,
        "after_seq": position.seq,
        "last_update_at": position.timestamp,
        "new_epoch": confirmation.get("epoch"),
        "timestamp": confirmation.get("timestamp"),
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
    elif event["event"] == "resolved":
        log.info("resolved %s", describe(event))
    else:
        log.warning("GAP: the updates after seq %s (last seen at %s) are lost; an anomaly that opened and "
                    "closed meanwhile is not reported", event["after_seq"], event["last_update_at"])
    if webhook:
        await asyncio.to_thread(post_webhook, webhook, event)


async def monitor(args: argparse.Namespace, stop: asyncio.Event) -> int:
    tracker = AlertTracker()
    position = StreamPosition()
    seen = 0
    attempt = 0
    connected_once = False
    while not stop.is_set():
        try:
            async with connect(args.url, open_timeout=10, **CONNECT_KWARGS) as ws:
                resuming = connected_once
                connected_once, attempt = True, 0
                since = None
                confirmed = False
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
                        if kind == "connected":
                            # Subscribe (also to all skills), from where this script stands.
                            position.start_at(message)
                            since = position.seq if position.known else None
                            await ws.send(json.dumps(position.subscribe(args.skill)))
                        elif kind == "subscription_confirmed":
                            confirmed = True
                            await resumed(message, position, since, resuming, args)
                        elif kind == "error":
                            log.error("server error %s: %s", message.get("code"), message.get("message"))
                        elif kind == "metrics_update" and confirmed and not position.is_repeat(message):
                            for event in tracker.update(message):
                                await emit(event, args.webhook)
                            position.advance(message)
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


async def resumed(confirmation: dict[str, Any], position: StreamPosition, since: int | None, resuming: bool,
                  args: argparse.Namespace) -> None:
    """Log how a (re)subscription went; a resume the server could not serve is a gap event."""
    watching = args.skill or "all skills"
    recovered = confirmation.get("recovered")
    if since is None or recovered is None:  # a server without recovery (protocol 1.0)
        log.info("connected to %s, watching %s", args.url, watching)
        return
    if recovered is True:
        missed = confirmation.get("seq", since) - since
        if resuming:
            log.info("reconnected to %s, watching %s: resumed after seq %d, %d missed update(s) replayed",
                     args.url, watching, since, missed)
        else:
            log.info("connected to %s, watching %s from seq %d", args.url, watching, since)
        return
    if resuming:
        await emit(gap_event(position, confirmation), args.webhook)
    else:
        log.info("connected to %s, watching %s", args.url, watching)
    position.forget()


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
