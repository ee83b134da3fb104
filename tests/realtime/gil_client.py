"""Subprocess client for the GIL test: one stdout line per message, stamped with time.monotonic().

    python gil_client.py ws://127.0.0.1:PORT SECONDS

Prints `CONNECTED <t>` for the `connected` message and `UPDATE <t> <seq>` for every
`metrics_update`, flushing each line, then exits after SECONDS (or when the server closes).
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


async def main(url: str, seconds: float) -> int:
    kwargs = {"proxy": None} if "proxy" in inspect.signature(connect).parameters else {}
    deadline = time.monotonic() + seconds
    async with connect(url, **kwargs) as ws:
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
            if msg.get("type") == "connected":
                print(f"CONNECTED {now:.6f}", flush=True)
            elif msg.get("type") == "metrics_update":
                print(f"UPDATE {now:.6f} {msg.get('seq')}", flush=True)


if __name__ == "__main__":
    sys.exit(asyncio.run(main(sys.argv[1], float(sys.argv[2]))))
