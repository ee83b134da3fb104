"""The asyncio side of the C server: coroutines, event draining, in-process clients.

`RealTimeMetricsServer` (in `_core`, written in C) owns the sockets and the
threads. Everything that needs Python objects lives here and runs on the
asyncio thread only: the coroutines behind `start()`/`stop()`, the reader that
drains the extension's event queue into `logging`, the in-process clients of
`register_client`/`client_handler`, and the metrics subscribers.
"""

from __future__ import annotations

import asyncio
import errno
import inspect
import ipaddress
import json
import logging
import os
import resource
import socket
import ssl
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from session_buddy.realtime._network_policy import host_check_names, validate_allowed_hosts

__all__ = ["NetworkClient", "ServerState"]

LOGGER_NAME = "session_buddy.realtime"

# Event kinds posted by csrc/event_queue.h.
EV_LOG, EV_SNAPSHOT, EV_TICK_DONE, EV_STOPPED = 1, 2, 3, 4

_TRUE_WORDS = {"1", "true", "yes", "on"}

# Served over HTTP at / on the WebSocket port (loaded into memory at start()).
DASHBOARD_DIR = Path(__file__).resolve().parent / "dashboard"


@dataclass(frozen=True)
class NetworkClient:
    """A client connected over the network, as seen in `server.clients`."""

    id: int
    remote_address: str
    subscribed: bool
    subscription_skill: str | None
    user_id: str | None = None


@dataclass(eq=False)
class _InProcessClient:
    obj: Any
    subscribed: bool = True
    skill: str | None = None


class ServerState:
    """Python-side state of one server; only touched on the asyncio thread."""

    def __init__(self) -> None:
        self.loop: asyncio.AbstractEventLoop | None = None
        self.fd: int | None = None
        self.inprocess: dict[int, _InProcessClient] = {}
        self.subscribers: list[Callable[[dict[str, Any]], Any]] = []
        self.tick_waiters: list[tuple[int, asyncio.Future[None]]] = []
        self.stopped: asyncio.Future[None] | None = None
        self.stopping = False
        self.tasks: set[asyncio.Task[Any]] = set()


# ---- construction helpers -------------------------------------------------


def normalize_db_path(db_path: Any) -> Path:
    """None -> ./.session-buddy/skills.db; str or PathLike -> Path; else TypeError."""
    if db_path is None:
        return Path.cwd() / ".session-buddy" / "skills.db"
    if isinstance(db_path, (str, os.PathLike)):
        path = Path(os.fspath(db_path))
        if not str(path) or str(path) == ".":
            raise ValueError("db_path must name a file")
        return path
    raise TypeError(f"db_path must be a str, PathLike or None, not {type(db_path).__name__}")


def resolve_logger(logger: Any) -> logging.Logger | logging.LoggerAdapter[Any]:
    if logger is None:
        return logging.getLogger(LOGGER_NAME)
    if not callable(getattr(logger, "log", None)):
        raise TypeError("logger must be a logging.Logger (or have a log() method)")
    return logger


def open_storage(db_path: Path) -> Any:
    from session_buddy.storage import SkillsStorage

    return SkillsStorage(db_path)


@dataclass(frozen=True)
class SecurityOptions:
    """The validated security arguments of one server (SPEC section 4)."""

    allowed_origins: tuple[str, ...] | None
    ssl_certfile: Path | None
    ssl_keyfile: Path | None
    jwt_secret: bytes | None = field(repr=False)


def _optional_path(value: Any, name: str) -> Path | None:
    if value is None:
        return None
    if not isinstance(value, (str, os.PathLike)):
        raise TypeError(f"{name} must be a str, PathLike or None, not {type(value).__name__}")
    path = Path(os.fspath(value))
    if not str(path) or str(path) == ".":
        raise ValueError(f"{name} must name a file")
    return path


def security_options(allowed_origins: Any, ssl_certfile: Any, ssl_keyfile: Any, jwt_secret: Any) -> SecurityOptions:
    """Validate the security keyword arguments; TypeError/ValueError name the bad one."""
    origins: tuple[str, ...] | None = None
    if allowed_origins is not None:
        if isinstance(allowed_origins, (str, bytes)):
            raise TypeError("allowed_origins must be a list of origins, not a single string")
        try:
            origins = tuple(allowed_origins)
        except TypeError:
            raise TypeError(
                f"allowed_origins must be an iterable of str or None, not {type(allowed_origins).__name__}"
            ) from None
        for origin in origins:
            if not isinstance(origin, str):
                raise TypeError(f"allowed_origins must hold str, not {type(origin).__name__}")
            if not origin or origin != origin.strip() or any(c in origin for c in "\r\n\0"):
                raise ValueError(f"allowed_origins holds an invalid origin: {origin!r}")
    cert = _optional_path(ssl_certfile, "ssl_certfile")
    key = _optional_path(ssl_keyfile, "ssl_keyfile")
    if (cert is None) != (key is None):
        raise ValueError("ssl_certfile and ssl_keyfile must be given together")
    secret: bytes | None = None
    if jwt_secret is not None:
        if isinstance(jwt_secret, str):
            secret = jwt_secret.encode()
        elif isinstance(jwt_secret, bytes):
            secret = jwt_secret
        else:
            raise TypeError(f"jwt_secret must be a str, bytes or None, not {type(jwt_secret).__name__}")
        if not secret:
            raise ValueError("jwt_secret must not be empty")
    return SecurityOptions(origins, cert, key, secret)


def format_url(server: Any) -> str:
    host = server.host
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    scheme = "wss" if server.ssl_certfile is not None else "ws"
    return f"{scheme}://{host}:{server.port}"


def _auth_requested(server: Any) -> bool:
    env = os.environ.get("SESSION_BUDDY_AUTH_ENABLED", "")
    return bool(server.require_auth) or env.strip().lower() in _TRUE_WORDS


def _effective_secret(server: Any) -> bytes | None:
    """The JWT secret when authentication is on; ValueError when it is on without one."""
    if not _auth_requested(server):
        return None
    secret = server._security.jwt_secret
    if secret is None:
        secret = os.environ.get("SESSION_BUDDY_JWT_SECRET", "").encode() or None
    if secret is None:
        raise ValueError(
            "authentication is enabled (require_auth=True or SESSION_BUDDY_AUTH_ENABLED) but no "
            "secret is set: pass jwt_secret= or set SESSION_BUDDY_JWT_SECRET"
        )
    return secret


# The soft limit set when the hard one is unlimited (the kernel caps it at fs.nr_open anyway).
_FD_LIMIT_WHEN_UNLIMITED = 1 << 20


def _raise_fd_limit(server: Any) -> None:
    """Lift the soft RLIMIT_NOFILE as far as the hard one allows: lws sizes its fd table from
    this limit when the context is created, and connections that are not clients yet (max_pending
    of them) need descriptors besides the max_clients clients. A low soft limit is what an
    attacker exhausts first; the hard limit is the operator's real choice."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = _FD_LIMIT_WHEN_UNLIMITED if hard == resource.RLIM_INFINITY else hard
    if soft != resource.RLIM_INFINITY and soft < wanted:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
        except (ValueError, OSError) as exc:  # an unlimited hard limit above fs.nr_open
            server.logger.debug("could not raise the open-file limit from %d: %s", soft, exc)
            return
        server.logger.debug("raised the open-file limit from %d to %d", soft, wanted)


def _use_poll_loop() -> bool:
    """SESSION_BUDDY_EVENT_LOOP: "libev" (the default: epoll) or "poll" (lws's own poll(2) loop,
    a fallback for diagnosis; it costs O(clients) per wake-up)."""
    name = os.environ.get("SESSION_BUDDY_EVENT_LOOP", "").strip().lower() or "libev"
    if name not in ("libev", "poll"):
        raise ValueError(f"SESSION_BUDDY_EVENT_LOOP must be 'libev' or 'poll', not {name!r}")
    return name == "poll"


def _check_tls_files(server: Any) -> None:
    """Load the certificate and key once with Python's ssl module, so that a bad file raises a
    precise FileNotFoundError / ssl.SSLError from start() instead of a generic failure."""
    cert, key = server.ssl_certfile, server.ssl_keyfile
    if cert is None:
        return
    for path, what in ((cert, "certificate"), (key, "private key")):
        if not path.is_file():
            raise FileNotFoundError(errno.ENOENT, f"TLS {what} not found", str(path))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        context.load_cert_chain(cert, key)
    except ssl.SSLError as exc:
        raise ssl.SSLError(exc.errno, f"TLS certificate {cert} or key {key} is unusable: {exc.reason or exc}") from None


def _bind_address(host: str) -> tuple[str | None, bool]:
    """(numeric interface address or None for all, disable_ipv6) for a host string."""
    if host == "localhost":
        return "127.0.0.1", True
    if host == "0.0.0.0":
        return None, True
    if host == "::":
        return None, False
    try:
        addr = ipaddress.ip_address(host)
    except ValueError:
        try:
            infos = socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)
        except socket.gaierror as exc:
            raise OSError(exc.errno, f"cannot resolve host {host!r}: {exc.strerror}") from None
        addr = ipaddress.ip_address(infos[0][4][0])
    if addr.version == 4:
        return str(addr), True
    return str(addr), False


def _ensure_database(path: Path) -> None:
    """Create a missing DB (and its folders) with the migrations applied; leave existing files alone."""
    if path.exists():
        return
    from session_buddy.storage.migrations.base import MigrationManager

    MigrationManager(path).migrate()


# ---- lifecycle ------------------------------------------------------------


async def start(server: Any) -> None:
    state: ServerState = server._state
    if server.running:
        server.logger.warning("start() called on a server that is already running")
        return
    secret = _effective_secret(server)
    use_poll = _use_poll_loop()
    _check_tls_files(server)
    _raise_fd_limit(server)
    loop = asyncio.get_running_loop()
    iface, disable_ipv6 = _bind_address(server.host)
    await loop.run_in_executor(None, _ensure_database, server.db_path)
    level = server.logger.getEffectiveLevel() if hasattr(server.logger, "getEffectiveLevel") else 0
    security: SecurityOptions = server._security
    cert, key = security.ssl_certfile, security.ssl_keyfile
    server._start_core(
        iface, disable_ipv6, use_poll, level, str(DASHBOARD_DIR), secret, security.allowed_origins,
        None if cert is None else str(cert), None if key is None else str(key),
        host_check_names(server.host, iface, server.allowed_hosts),
    )
    state.loop = loop
    state.stopping = False
    state.stopped = loop.create_future()
    state.fd = server._event_fd
    loop.add_reader(state.fd, _drain_events, server)
    server.logger.info(
        "real-time metrics server listening on %s (db %s, interval %.3gs, authentication %s)",
        server.url, server.db_path, server.update_interval, "on" if secret else "off",
    )


async def stop(server: Any) -> None:
    state: ServerState = server._state
    if not server.running or state.stopping:
        server.logger.warning("stop() called on a server that is not running")
        return
    state.stopping = True
    try:
        server._request_stop()
        if state.stopped is not None:
            try:
                await asyncio.wait_for(asyncio.shield(state.stopped), timeout=5.0)
            except asyncio.TimeoutError:
                server.logger.error("service thread did not confirm its stop in 5 s; joining anyway")
    finally:
        _detach_reader(state)
        # Lines logged while the threads wound down (disconnects, say) come back here.
        for kind, level, _value, text in server._finish_stop():
            if kind == EV_LOG:
                server.logger.log(level, "%s", text)
        for _, fut in state.tick_waiters:
            if not fut.done():
                fut.set_exception(RuntimeError("server stopped"))
        state.tick_waiters.clear()
        state.stopping = False
        server.logger.info("real-time metrics server stopped")


async def aenter(server: Any) -> Any:
    await start(server)
    return server


def _detach_reader(state: ServerState) -> None:
    if state.loop is not None and state.fd is not None and not state.loop.is_closed():
        state.loop.remove_reader(state.fd)
    state.fd = None


def _drain_events(server: Any) -> None:
    """add_reader callback: deliver everything the extension's threads posted."""
    state: ServerState = server._state
    new_snapshot = False
    tick_done = None
    for kind, level, value, text in server._take_events():
        if kind == EV_LOG:
            server.logger.log(level, "%s", text)
        elif kind == EV_SNAPSHOT:
            new_snapshot = True
        elif kind == EV_TICK_DONE:
            tick_done = value
        elif kind == EV_STOPPED:
            if state.stopped is not None and not state.stopped.done():
                state.stopped.set_result(None)
    delivery = None
    if new_snapshot and (state.inprocess or state.subscribers):
        delivery = _spawn(state, _deliver_snapshot(server))
    if tick_done is not None:
        # broadcast_metrics() returns only after in-process consumers had the snapshot too.
        if delivery is None:
            _resolve_tick_waiters(state, tick_done)
        else:
            delivery.add_done_callback(lambda _task: _resolve_tick_waiters(state, tick_done))


def _spawn(state: ServerState, coro: Any) -> asyncio.Task[Any]:
    task = asyncio.ensure_future(coro)
    state.tasks.add(task)
    task.add_done_callback(state.tasks.discard)
    return task


def _resolve_tick_waiters(state: ServerState, done_id: int) -> None:
    remaining = []
    for wanted, fut in state.tick_waiters:
        if wanted <= done_id:
            if not fut.done():
                fut.set_result(None)
        else:
            remaining.append((wanted, fut))
    state.tick_waiters = remaining


# ---- broadcasting to Python consumers ---------------------------------------


async def _deliver_snapshot(server: Any) -> None:
    state: ServerState = server._state
    if not server.running:
        return
    messages: dict[str | None, str | None] = {}

    def message_for(skill: str | None) -> str | None:
        if skill not in messages:
            messages[skill] = server._update_message(skill)
        return messages[skill]

    sends = []
    for client in list(state.inprocess.values()):
        if not client.subscribed:
            continue
        text = message_for(client.skill)
        if text is not None:
            sends.append(_send_quietly(server, client.obj, text))
    full = message_for(None) if state.subscribers else None
    if full is not None:
        payload = json.loads(full)
        for callback in list(state.subscribers):
            sends.append(_call_subscriber(server, callback, payload))
    if sends:
        await asyncio.gather(*sends)


async def _send_quietly(server: Any, obj: Any, text: str) -> None:
    try:
        await obj.send(text)
    except Exception as exc:  # a broken in-process client must not stop broadcasting
        server.logger.warning("in-process client %r failed to receive an update: %s", obj, exc)
        unregister_client(server, obj)


async def _call_subscriber(server: Any, callback: Callable[..., Any], payload: dict[str, Any]) -> None:
    try:
        result = callback(payload)
        if inspect.isawaitable(result):
            await result
    except Exception:
        server.logger.exception("metrics subscriber %r raised", callback)


async def broadcast_metrics(server: Any) -> None:
    state: ServerState = server._state
    if not server.running or state.loop is None:
        raise RuntimeError("server is not running")
    fut = state.loop.create_future()
    state.tick_waiters.append((server._request_tick(), fut))
    await fut


# ---- in-process clients -----------------------------------------------------


def register_client(server: Any, obj: Any) -> None:
    if not callable(getattr(obj, "send", None)):
        raise TypeError("a client needs an async send(text) method")
    state: ServerState = server._state
    if id(obj) in state.inprocess:
        return
    skill = getattr(obj, "subscription_skill", None)
    state.inprocess[id(obj)] = _InProcessClient(obj, True, skill if isinstance(skill, str) else None)
    server.logger.info(
        "in-process client registered: %s (%d clients)",
        getattr(obj, "remote_address", None) or type(obj).__name__, len(clients(server)),
    )


def unregister_client(server: Any, obj: Any) -> None:
    state: ServerState = server._state
    if state.inprocess.pop(id(obj), None) is not None:
        server.logger.info(
            "in-process client unregistered: %s",
            getattr(obj, "remote_address", None) or type(obj).__name__,
        )


def register_metrics_subscriber(server: Any, callback: Any) -> None:
    if not callable(callback):
        raise TypeError("a metrics subscriber must be callable")
    state: ServerState = server._state
    if callback not in state.subscribers:
        state.subscribers.append(callback)


def unregister_metrics_subscriber(server: Any, callback: Any) -> None:
    state: ServerState = server._state
    if callback in state.subscribers:
        state.subscribers.remove(callback)


def clients(server: Any) -> set[Any]:
    state: ServerState = server._state
    result: set[Any] = {c.obj for c in state.inprocess.values()}
    for client_id, address, subscribed, skill, user_id in server._network_clients():
        result.add(
            NetworkClient(client_id, address, bool(subscribed), skill if subscribed else None, user_id or None)
        )
    return result


def _record_subscription(server: Any, ws: Any, subscribed: bool, skill: str | None) -> None:
    state: ServerState = server._state
    client = state.inprocess.get(id(ws))
    if client is not None:
        client.subscribed = subscribed
        client.skill = skill
    try:
        ws.subscription_skill = skill
    except (AttributeError, TypeError):
        pass  # objects without settable attributes keep their state in ServerState only


async def handle_subscription(server: Any, ws: Any, skill_name: str | None) -> None:
    if skill_name is not None and not isinstance(skill_name, str):
        raise TypeError("skill_name must be a str or None")
    _record_subscription(server, ws, True, skill_name)
    await ws.send(server._subscribed_message(skill_name))


async def handle_client_message(server: Any, ws: Any, message: str | bytes) -> None:
    reply, action, skill = server._dispatch(message)
    if action == "subscribe":
        _record_subscription(server, ws, True, skill)
    elif action == "unsubscribe":
        _record_subscription(server, ws, False, None)
    if reply is not None:
        await ws.send(reply)
    if action == "subscribe" and server.running and id(ws) in server._state.inprocess:
        update = server._update_message(skill)
        if update is not None:
            await ws.send(update)


def _is_connection_closed(exc: BaseException) -> bool:
    return type(exc).__name__.startswith("ConnectionClosed")


async def client_handler(server: Any, ws: Any) -> None:
    register_client(server, ws)
    try:
        await ws.send(server._connected_message())
        async for message in ws:
            await handle_client_message(server, ws, message)
    except Exception as exc:
        if not _is_connection_closed(exc):
            raise
    finally:
        unregister_client(server, ws)
