"""Turn anomalies into alerts: seed Example 3 ("Alert Integration"), in Python.

Every anomaly in the stream raises one WARNING alert per (skill, anomaly type) while it stays
active, and one INFO "resolved" alert when it disappears. Alerts are printed as JSON lines on
stdout and, with --webhook, POSTed as JSON to that URL (standard library only).

Usage:
    python examples/alert_monitor.py                                  # ws://localhost:8765
    python examples/alert_monitor.py --url ws://host:8765 --webhook https://hooks.example/alert
    python examples/alert_monitor.py --updates 30                     # stop after 30 updates

Exit status: 0 after --updates or Ctrl+C; 1 when the server cannot be reached or goes away.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
import urllib.request
from typing import Any

from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidURI

log = logging.getLogger("alert_monitor")


def send_alert(alert: dict[str, Any], webhook: str | None) -> None:
    """The seed's sendAlert(): one JSON line, plus a webhook POST when configured."""
    print(json.dumps(alert), flush=True)
    if webhook is None:
        return
    request = urllib.request.Request(
        webhook, data=json.dumps(alert).encode(), headers={"Content-Type": "application/json"}, method="POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            response.read()
    except OSError as exc:  # a failing webhook must not stop the monitor
        log.warning("webhook %s failed: %s", webhook, exc)


class AlertTracker:
    """Which anomalies are active, so that each raises one alert, not one per update."""

    def __init__(self) -> None:
        self.active: dict[tuple[str, str], dict[str, Any]] = {}

    def update(self, message: dict[str, Any]) -> list[dict[str, Any]]:
        alerts = []
        seen = set()
        for anomaly in message["data"]["anomalies"]:
            key = (anomaly["skill_name"], anomaly["anomaly_type"])
            seen.add(key)
            if key not in self.active:
                self.active[key] = anomaly
                alerts.append({
                    "severity": "WARNING",
                    "skill": anomaly["skill_name"],
                    "type": anomaly["anomaly_type"],
                    "deviation": anomaly["deviation_score"],
                    "baseline": anomaly["baseline_value"],
                    "observed": anomaly["observed_value"],
                    "timestamp": message["timestamp"],
                })
        for key in [k for k in self.active if k not in seen]:
            del self.active[key]
            alerts.append({"severity": "INFO", "skill": key[0], "type": key[1], "status": "resolved",
                           "timestamp": message["timestamp"]})
        return alerts


async def monitor(url: str, webhook: str | None, max_updates: int | None) -> int:
    tracker = AlertTracker()
    updates = 0
    try:
        async with connect(url) as ws:
            log.info("watching %s for anomalies", url)
            async for raw in ws:
                message = json.loads(raw)
                if message.get("type") != "metrics_update":
                    continue
                for alert in tracker.update(message):
                    await asyncio.to_thread(send_alert, alert, webhook)
                updates += 1
                if max_updates is not None and updates >= max_updates:
                    return 0
    except (OSError, InvalidHandshake, InvalidURI) as exc:
        log.error("cannot connect to %s: %s", url, exc)
        return 1
    except ConnectionClosed as exc:
        log.error("the server closed the connection: %s", exc)
        return 1
    log.error("the server closed the connection")
    return 1


def main() -> int:
    parser = argparse.ArgumentParser(description="Alert on anomalies from the session-buddy real-time server.")
    parser.add_argument("--url", default="ws://localhost:8765")
    parser.add_argument("--webhook", default=None, help="POST every alert as JSON to this URL")
    parser.add_argument("--updates", type=int, default=None, metavar="N", help="stop after N updates")
    args = parser.parse_args()
    if args.updates is not None and args.updates < 1:
        parser.error("--updates must be >= 1")
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(levelname)s %(message)s")
    try:
        return asyncio.run(monitor(args.url, args.webhook, args.updates))
    except KeyboardInterrupt:
        return 0


if __name__ == "__main__":
    sys.exit(main())
