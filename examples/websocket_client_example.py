"""Watch the real-time metrics stream.

Usage:
    python examples/websocket_client_example.py              # all skills
    python examples/websocket_client_example.py pytest-run   # one skill, plus its get_metrics
    python examples/websocket_client_example.py --test-ping  # one ping, prints the round trip
Options: --url ws://localhost:8765, --count N (exit after N updates).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed


def fmt_seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}s"


def fmt_rate(value: float | None) -> str:
    return "-" if value is None else f"{value:.0%}"


def print_update(message: dict[str, Any]) -> None:
    data = message["data"]
    stale = "  (STALE: database unreadable)" if data.get("stale") else ""
    print(f"\n#{message['seq']}  {message['timestamp']}{stale}")
    skills = data["top_skills"]
    if not skills:
        print("  no skills yet")
    else:
        print(f"  {'skill':<24} {'24h':>6} {'done':>6} {'avg':>8} {'total':>7} {'rate':>5} {'1h':>5}")
        for s in skills:
            flag = "  <- anomaly" if s["is_anomalous"] else ""
            print(f"  {s['skill_name'][:24]:<24} {s['invocation_count']:>6} {s['completed_count']:>6} "
                  f"{fmt_seconds(s['avg_duration']):>8} {s['total_invocations']:>7} "
                  f"{fmt_rate(s['completion_rate']):>5} {s['invocation_count_1h']:>5}{flag}")
    for a in data["anomalies"]:
        print(f"  ANOMALY {a['skill_name']}: {a['anomaly_type']} "
              f"{a['baseline_value']:.3g} -> {a['observed_value']:.3g} (z={a['deviation_score']:+.2f})")


async def receive(ws: ClientConnection) -> dict[str, Any]:
    return json.loads(await ws.recv())


async def test_ping(ws: ClientConnection) -> None:
    started = time.perf_counter()
    await ws.send(json.dumps({"type": "ping"}))
    while True:
        message = await receive(ws)
        if message["type"] == "pong":
            print(f"pong at {message['timestamp']}: round trip {(time.perf_counter() - started) * 1000:.2f} ms")
            return


async def watch(ws: ClientConnection, skill: str | None, count: int | None) -> None:
    if skill is not None:
        await ws.send(json.dumps({"type": "subscribe", "skill_name": skill}))
        await ws.send(json.dumps({"type": "get_metrics", "skill_name": skill}))
    seen = 0
    confirmed = skill is None  # updates sent before the subscription took effect cover all skills
    while count is None or seen < count:
        message = await receive(ws)
        kind = message["type"]
        if kind == "metrics_update" and confirmed:
            print_update(message)
            seen += 1
        elif kind == "metrics_response":
            print("metrics_response:", json.dumps(message["data"], indent=2))
        elif kind == "error":
            print(f"server error {message['code']}: {message['message']}")
        elif kind == "subscription_confirmed":
            confirmed = True
            print(message["message"])


async def run(args: argparse.Namespace) -> int:
    try:
        ws = await connect(args.url, open_timeout=5)
    except (OSError, asyncio.TimeoutError) as exc:
        print(f"cannot connect to {args.url}: {exc}. Is the server running? Start it with `make run`.",
              file=sys.stderr)
        return 1
    async with ws:
        hello = await receive(ws)
        print(f"{hello['message']} (protocol {hello['protocol_version']})")
        try:
            if args.test_ping:
                await test_ping(ws)
            else:
                await watch(ws, args.skill, args.count)
        except ConnectionClosed as exc:
            print(f"connection closed by the server: {exc.rcvd.code if exc.rcvd else 'no close frame'}")
            return 1
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description="Print the session-buddy real-time metrics stream.")
    parser.add_argument("skill", nargs="?", help="watch only this skill")
    parser.add_argument("--url", default="ws://localhost:8765", help="default: ws://localhost:8765")
    parser.add_argument("--count", type=int, default=None, help="exit after this many updates")
    parser.add_argument("--test-ping", action="store_true", help="send one ping, print the round trip, exit")
    args = parser.parse_args()
    try:
        return asyncio.run(run(args))
    except KeyboardInterrupt:
        return 0


if __name__ == "__main__":
    sys.exit(main())
