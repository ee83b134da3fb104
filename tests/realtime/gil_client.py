"""Subprocess client for the GIL test: one stdout line per message, stamped with time.monotonic().

    python gil_client.py ws://127.0.0.1:PORT SECONDS [graphql]

Prints `CONNECTED <t>` for the `connected` message and `UPDATE <t> <seq>` for every
`metrics_update`, flushing each line, then exits after SECONDS (or when the server closes).
With `graphql` it speaks graphql-transport-ws instead: `CONNECTED` for connection_ack, then one
metricsUpdate subscription, and `UPDATE` for each of its `next` messages.
CLOCK_MONOTONIC is system-wide on Linux, so the parent can compare these stamps with its own.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import sys
import time

from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed


GRAPHQL_SUBSCRIBE = json.dumps({"id": "gil", "type": "subscribe",
                                "payload": {"query": "subscription { metricsUpdate { seq epoch } }"}})


async def main(url: str, seconds: float, graphql: bool) -> int:
    kwargs: dict[str, object] = {"proxy": None} if "proxy" in inspect.signature(connect).parameters else {}
    if graphql:
        kwargs["subprotocols"] = ["graphql-transport-ws"]
    deadline = time.monotonic() + seconds
    async with connect(url, **kwargs) as ws:  # type: ignore[arg-type]
        if graphql:
            await ws.send('{"type":"connection_init"}')
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return 0
            try:
                raw = await asyncio.wait_for(ws.recv(), remaining)
            except (asyncio.TimeoutError, TimeoutError):
                return 0
            except ConnectionClosed:
                print("CLOSED", flush=True)
                return 0
            now = time.monotonic()
            msg = json.loads(raw)
            if msg.get("type") in ("connected", "connection_ack"):
                print(f"CONNECTED {now:.6f}", flush=True)
                if graphql:
                    await ws.send(GRAPHQL_SUBSCRIBE)
            elif msg.get("type") == "metrics_update":
                print(f"UPDATE {now:.6f} {msg.get('seq')}", flush=True)
            elif msg.get("type") == "next":
                print(f"UPDATE {now:.6f} {msg['payload']['data']['metricsUpdate']['seq']}", flush=True)
            elif graphql:
                print(f"UNEXPECTED {now:.6f} {raw!r}", flush=True)


if __name__ == "__main__":
    sys.exit(asyncio.run(main(sys.argv[1], float(sys.argv[2]), sys.argv[3:4] == ["graphql"])))
