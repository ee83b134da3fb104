"""The `session-buddy-realtime` command (also `python -m session_buddy.realtime`)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import os
import re
import ssl
import sys
from pathlib import Path
from typing import Any

from session_buddy.realtime.server import RealTimeMetricsServer
from session_buddy.realtime._network_policy import validate_allowed_hosts
from session_buddy.realtime._webhook_config import FORMATS, webhook_endpoints
from session_buddy.realtime._options import MAX_RECOVERY_WINDOW, ROLES, parse_redis_url

__all__ = ["build_parser", "main"]

log = logging.getLogger("session_buddy.realtime.cli")

DESCRIPTION = """\
Stream live skill metrics from a session-buddy database over WebSocket.

Clients connect to ws://HOST:PORT and receive a JSON `metrics_update` every
interval (see docs/realtime/WEBSOCKET_SERVER.md for the protocol). The same port
serves a live dashboard at http://HOST:PORT/, /healthz and /metrics (Prometheus).
SIGINT (Ctrl+C) or SIGTERM stops the server cleanly.
"""

EPILOG = """\
examples:
  session-buddy-realtime                        serve .session-buddy/skills.db on ws://localhost:8765
  session-buddy-realtime --port 0               pick a free port; the URL is printed
  session-buddy-realtime --demo                 write synthetic traffic, with an anomaly after a minute
  session-buddy-realtime --host 0.0.0.0 --db ~/.session-buddy/skills.db --interval 2
  session-buddy-realtime --host 0.0.0.0 --auth --tls-cert cert.pem --tls-key key.pem
                                                wss:// for clients with a JWT signed with
                                                SESSION_BUDDY_JWT_SECRET
  session-buddy-realtime --webhook https://hooks.example.com/sb
                                                POST anomaly.detected / anomaly.resolved there,
                                                signed with SESSION_BUDDY_WEBHOOK_SECRET
  session-buddy-realtime webhook-test https://hooks.example.com/sb
                                                send one webhook.test event and report the answer

environment:
  SESSION_BUDDY_JWT_SECRET     the HS256 secret --auth verifies tokens with (required with --auth)
  SESSION_BUDDY_AUTH_ENABLED   "true" turns --auth on
  SESSION_BUDDY_EVENT_LOOP     "libev" (default, epoll) or "poll" (lws's own loop, for diagnosis)
  SESSION_BUDDY_WEBHOOK_SECRET the Standard Webhooks secret (whsec_...) --webhook signs with
"""


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a finite number > 0: {text!r}")
    return value


def _recovery_window(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not 0 <= value <= MAX_RECOVERY_WINDOW:
        raise argparse.ArgumentTypeError(f"must be 0..{MAX_RECOVERY_WINDOW:g} seconds: {text!r}")
    return value


def _redis_url(text: str) -> str:
    try:
        parse_redis_url(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def _port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a port number: {text!r}") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"must be 0..65535: {text!r}")
    return value


def _non_negative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0: {text!r}")
    return value


def _host_name(text: str) -> str:
    try:
        (name,) = validate_allowed_hosts([text]) or ()
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return name


def _positive_int(text: str) -> int:
    value = _non_negative_int(text)
    if value == 0:
        raise argparse.ArgumentTypeError(f"must be >= 1: {text!r}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="session-buddy-realtime", description=DESCRIPTION, epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--host", default="localhost",
                        help="address to bind: localhost (default), an IP address, 0.0.0.0 or ::")
    parser.add_argument("--port", type=_port, default=8765, help="TCP port, 0 for any free one (default 8765)")
    parser.add_argument("--db", type=Path, default=None, metavar="PATH",
                        help="skills database (default .session-buddy/skills.db; created if missing)")
    parser.add_argument("--interval", type=_positive_float, default=1.0, metavar="S",
                        help="seconds between updates (default 1.0)")
    parser.add_argument("--auth", action="store_true",
                        help="require a JWT (HS256, secret from SESSION_BUDDY_JWT_SECRET) from every client")
    parser.add_argument("--tls-cert", type=Path, default=None, metavar="F",
                        help="PEM certificate: serve wss:// (needs --tls-key)")
    parser.add_argument("--tls-key", type=Path, default=None, metavar="F", help="PEM private key of --tls-cert")
    parser.add_argument("--allowed-origin", action="append", default=None, metavar="O", dest="allowed_origins",
                        help="a browser Origin allowed to connect, e.g. https://dash.example.com; "
                             "repeat for more; '*' allows any, 'null' a page opened from disk "
                             "(default: no Origin, this server's own pages, and http(s)://localhost, "
                             "127.0.0.1 or [::1] on any port)")
    parser.add_argument("--allowed-host", action="append", type=_host_name, default=None, metavar="H",
                        dest="allowed_hosts",
                        help="while bound to loopback, another Host name requests may use, e.g. a "
                             "name in /etc/hosts; repeat for more (default: localhost, 127.0.0.1, [::1] "
                             "and the bound address)")
    parser.add_argument("--max-clients", type=_non_negative_int, default=100, metavar="N",
                        help="connections allowed at once, 0 = unlimited (default 100)")
    parser.add_argument("--max-pending", type=_positive_int, default=256, metavar="N",
                        help="connections still sending their request, handshaking or authenticating "
                             "at once; past it the oldest is dropped (default 256)")
    parser.add_argument("--recovery-window", type=_recovery_window, default=600.0, metavar="S",
                        help="seconds of updates kept so that a client that reconnects with "
                             "since={epoch, seq} misses nothing; 0 keeps none (default 600)")
    parser.add_argument("--role", choices=ROLES, default="standalone",
                        help="standalone (default); publisher: read the DB and append every tick to "
                             "Redis; edge: no DB, serve what the publisher appends (needs --redis)")
    parser.add_argument("--redis", type=_redis_url, default=None, metavar="URL",
                        help="redis://[:password@]host[:port][/db] for --role publisher or edge")
    parser.add_argument("--redis-prefix", default="session_buddy", metavar="P",
                        help="prefix of the Redis keys of this deployment (default session_buddy)")
    parser.add_argument("--log-level", default="INFO", type=str.upper,
                        choices=["DEBUG", "INFO", "WARNING", "ERROR"], help="default INFO")
    parser.add_argument("--webhook", action="append", default=None, metavar="URL", dest="webhooks",
                        help="POST anomaly.detected / anomaly.resolved events to URL (repeat for "
                             "more); signed with SESSION_BUDDY_WEBHOOK_SECRET unless --webhook-format slack")
    parser.add_argument("--webhook-format", choices=FORMATS, default="standard",
                        help="standard (Standard Webhooks, the default) or slack (an incoming-webhook URL)")
    parser.add_argument("--demo", action="store_true",
                        help="write realistic synthetic invocations into the database, and inject "
                             "a completion drop after a minute so an anomaly appears")
    return parser


def _webhooks(urls: list[str] | None, fmt: str) -> list[dict[str, Any]] | None:
    """--webhook URLs as the constructor's webhooks=."""
    if not urls:
        return None
    secret = os.environ.get("SESSION_BUDDY_WEBHOOK_SECRET") or None
    return [{"url": url, "secret": secret, "format": fmt} for url in urls]


async def _serve(args: argparse.Namespace) -> int:
    server = RealTimeMetricsServer(host=args.host, port=args.port, db_path=args.db,
                                   update_interval=args.interval, require_auth=args.auth,
                                   max_clients=args.max_clients, allowed_origins=args.allowed_origins,
                                   ssl_certfile=args.tls_cert, ssl_keyfile=args.tls_key,
                                   allowed_hosts=args.allowed_hosts, max_pending=args.max_pending,
                                   webhooks=_webhooks(args.webhooks, args.webhook_format),
                                   recovery_window=args.recovery_window, role=args.role,
                                   redis_url=args.redis, redis_prefix=args.redis_prefix)
    try:
        await server.start()
    except (FileNotFoundError, ssl.SSLError) as exc:
        print(f"session-buddy-realtime: TLS: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        if isinstance(exc.filename, str) and exc.filename.startswith("redis://"):
            print(f"session-buddy-realtime: cannot use Redis at {exc.filename}: {exc.strerror or exc}",
                  file=sys.stderr)
            return 1
        print(f"session-buddy-realtime: cannot listen on {args.host}:{args.port}: "
              f"{exc.strerror or exc}", file=sys.stderr)
        return 1
    except (ValueError, RuntimeError) as exc:
        print(f"session-buddy-realtime: {exc}", file=sys.stderr)
        return 1

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)

    demo = None
    if args.demo:
        from session_buddy.realtime.demo import DemoTraffic

        demo = DemoTraffic(server.db_path)
        demo.start()
    dashboard = server.url.replace("ws", "http", 1) + "/"
    print(f"serving {server.url} (database {server.db_path}; dashboard {dashboard})", flush=True)
    try:
        await stop.wait()
    finally:
        if demo is not None:
            demo.stop()
        await server.stop()
    return 0


def _cli_words(message: str) -> str:
    # The constructor names webhooks[i].secret; on the command line it comes from the environment.
    return re.sub(r"webhooks\[\d+\]\.secret", "SESSION_BUDDY_WEBHOOK_SECRET", message)


def build_test_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="session-buddy-realtime webhook-test",
        description="POST one webhook.test event to URL, as the server would send an anomaly, and "
                    "report the answer (exit 0 on a 2xx). The standard format signs it with "
                    "SESSION_BUDDY_WEBHOOK_SECRET.")
    parser.add_argument("url", metavar="URL")
    parser.add_argument("--format", choices=FORMATS, default="standard", help="default standard")
    return parser


def webhook_test(argv: list[str]) -> int:
    """`session-buddy-realtime webhook-test URL`: one attempt, its outcome on one line."""
    from session_buddy.realtime.webhooks import send_test

    args = build_test_parser().parse_args(argv)
    try:
        (endpoint,) = webhook_endpoints(_webhooks([args.url], args.format))
    except (TypeError, ValueError) as exc:
        print(f"session-buddy-realtime webhook-test: {_cli_words(str(exc))}", file=sys.stderr)
        return 2
    failure = asyncio.run(send_test(endpoint))
    if failure is not None:
        print(f"webhook-test: not delivered ({failure})", file=sys.stderr)
        return 1
    print("webhook-test: delivered", flush=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["webhook-test"]:
        return webhook_test(argv[1:])
    parser = build_parser()
    args = parser.parse_args(argv)  # a bad flag: one usage line, exit status 2
    if (args.tls_cert is None) != (args.tls_key is None):
        parser.error("--tls-cert and --tls-key go together")
    if (args.role == "standalone") != (args.redis is None):
        parser.error("--redis goes with --role publisher or edge, and they need it")
    if args.webhooks and args.role == "edge":
        parser.error("--webhook goes on the publisher, not on an edge")
    try:
        webhook_endpoints(_webhooks(args.webhooks, args.webhook_format))
    except (TypeError, ValueError) as exc:
        parser.error(f"--webhook: {_cli_words(str(exc))}")
    logging.basicConfig(level=args.log_level, stream=sys.stderr,
                        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s")
    return asyncio.run(_serve(args))


if __name__ == "__main__":
    sys.exit(main())
