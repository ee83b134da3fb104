"""Hosts our C server in a plain Python process for the fan-out benchmark.

    python3 ours_server.py --port P --db PATH [--host 127.0.0.1] [--interval 1]

The same as `python -m session_buddy.realtime --max-clients 0 --log-level WARNING`, plus what
the harness needs: "LISTENING <port>" is printed once the first snapshot was built (so the
idle RSS includes the loaded analytics state), and stdin accepts "busy SECONDS", which runs
pure-Python CPU work on the main thread (the asyncio thread) for that long while the
service thread keeps serving: the GIL benchmark.

GraphQL clients (the load generator's --graphql) go through the package's own GraphQL handler
(`session_buddy/realtime/_graphql*.py`, graphql-core validation, then `gql_subscribe`).  Until
that handler is in the tree, a stand-in answers each subscribe with one fixed compiled
selection, the one the load generator's query compiles to (every field of a metrics_update);
"LISTENING <port> graphql=<handler|stand-in>" says which one ran.

Logging is at WARNING, so the per-connection INFO lines (50,000 connects) are not even queued:
they are not part of fan-out.  The pure-Python baseline runs with logging at WARNING too.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import pkgutil
import signal
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent.parent
sys.path.insert(0, str(ROOT))

import session_buddy.realtime  # noqa: E402
from session_buddy.realtime import RealTimeMetricsServer, _core  # noqa: E402

__all__ = ["main"]

# What loadgen.c's GQL_QUERY compiles to (GRAPHQL_CONTRACT part 2): keys in query order.
_SKILL_FIELDS = ("skillName", "lastInvocationAt", "invocationCount", "completedCount", "avgDuration",
                 "totalInvocations", "completedInvocations", "completionRate", "avgDurationSeconds",
                 "invocationCount1h", "invocationCount24h", "isAnomalous")
_ANOMALY_FIELDS = ("skillName", "anomalyType", "baselineValue", "observedValue", "deviationScore", "detectedAt")


def _leaves(names: tuple[str, ...]) -> str:
    return ",".join(f"{n}:{n}" for n in names)


LOADGEN_SELECTION = ("{metricsUpdate:metricsUpdate{seq:seq,epoch:epoch,timestamp:timestamp,stale:stale,"
                     f"topSkills:topSkills{{{_leaves(_SKILL_FIELDS)}}},"
                     f"anomalies:anomalies{{{_leaves(_ANOMALY_FIELDS)}}}}}}}")


def has_graphql_handler() -> bool:
    """The package's own GraphQL handler is in the tree (its modules are _graphql*)."""
    return any(m.name.startswith("_graphql") for m in pkgutil.iter_modules(session_buddy.realtime.__path__))


class StandInGraphQLServer(RealTimeMetricsServer):
    """STAND-IN for the package's GraphQL handler while it is absent: every subscribe gets
    LOADGEN_SELECTION, whatever its query says (only the load generator's query is sent)."""

    def take_events(self) -> list[tuple[int, int, int, str]]:
        events = []
        for event in super().take_events():
            if event[0] == _core.EV_GQL_OPERATION:
                op = json.loads(event[3])
                self.gql_subscribe(event[2], op["id"], None, LOADGEN_SELECTION, None, 0)
            else:
                events.append(event)
        return events


def busy_python(seconds: float) -> int:
    """Pure-Python CPU work holding the GIL; never yields to the event loop."""
    end = time.monotonic() + seconds
    n = 0
    while time.monotonic() < end:
        n += sum(i * i for i in range(200))
    return n


async def amain(args: argparse.Namespace) -> int:
    logger = logging.getLogger("bench.ours")
    logger.setLevel(logging.WARNING)
    real = has_graphql_handler()
    server_type = RealTimeMetricsServer if real else StandInGraphQLServer
    server = server_type(host=args.host, port=args.port, db_path=args.db,
                                   update_interval=args.interval, max_clients=0, logger=logger)
    loop = asyncio.get_running_loop()
    first = loop.create_future()

    def on_first(_payload: dict[str, Any]) -> None:
        if not first.done():
            first.set_result(None)

    server.register_metrics_subscriber(on_first)
    await server.start()
    await first
    server.unregister_metrics_subscriber(on_first)  # no Python work per tick from here on

    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)

    def on_line() -> None:
        line = sys.stdin.readline()
        if not line:
            loop.remove_reader(sys.stdin.fileno())
            return
        parts = line.split()
        if parts[:1] == ["busy"]:
            busy_python(float(parts[1]))
            print("BUSY_DONE", flush=True)

    try:
        loop.add_reader(sys.stdin.fileno(), on_line)
    except OSError:  # stdin is a regular file or /dev/null: no commands
        pass
    print(f"LISTENING {server.port} graphql={'handler' if real else 'stand-in'}", flush=True)
    await stop.wait()
    await server.stop()
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--db", type=Path, required=True)
    parser.add_argument("--interval", type=float, default=1.0)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    return asyncio.run(amain(args))


if __name__ == "__main__":
    sys.exit(main())
