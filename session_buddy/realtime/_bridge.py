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
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from session_buddy.realtime import auth
from session_buddy.realtime._mount_auth import AuthRefused, authenticate_mounted
from session_buddy.realtime._network_policy import host_check_names, validate_allowed_hosts

__all__ = ["NetworkClient", "ServerState"]

LOGGER_NAME = "session_buddy.realtime"
# With the default logger, lines go to the two loggers session-buddy's pure-Python server used
# (its modules' names), both children of LOGGER_NAME: handlers and levels set on LOGGER_NAME
# keep working, and each line is still one record, so nothing prints twice.
SERVER_LOGGER_NAME = LOGGER_NAME + ".websocket_server"
AUTH_LOGGER_NAME = LOGGER_NAME + ".auth"
# The topic a log event carries as its value (csrc/log.h, enum sb_log_topic).
TOPIC_SERVER, TOPIC_AUTH = 0, 1
_TOPIC_LOGGERS = {TOPIC_SERVER: SERVER_LOGGER_NAME, TOPIC_AUTH: AUTH_LOGGER_NAME}

# Event kinds posted by csrc/event_queue.h.
EV_LOG, EV_SNAPSHOT, EV_TICK_DONE, EV_STOPPED = 1, 2, 3, 4

# In-process clients are held to the network path's slow-consumer bounds: one unsent
# metrics_update at most (a newer one replaces it), and replies up to this many bytes.
MAX_QUEUED_REPLY_BYTES = 64 * 1024
# A client dropped for not reading gets this long to take its close frame.
CLOSE_GRACE_S = 5.0

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
    """An in-process client and what waits to be sent to it, by one sender task at a time."""

    obj: Any
    subscribed: bool = True
    skill: str | None = None
    user_id: str | None = None
    update: str | None = None  # the latest unsent metrics_update
    # (text, its UTF-8 bytes, a future resolved once it is sent or given up, or None)
    replies: deque[tuple[str, int, asyncio.Future[None] | None]] = field(default_factory=deque)
    reply_bytes: int = 0
    sender: asyncio.Task[None] | None = None
    dropped: bool = False  # closed by the server for not reading
    closing: asyncio.Task[None] | None = None  # that close, while it runs


@dataclass(eq=False)
class _Subscriber:
    """A metrics subscriber; an async one runs one call at a time and gets the latest payload."""

    callback: Callable[[dict[str, Any]], Any]
    pending: dict[str, Any] | None = None
    running: asyncio.Task[None] | None = None


class ServerState:
    """Python-side state of one server; only touched on the asyncio thread."""

    def __init__(self) -> None:
        self.loop: asyncio.AbstractEventLoop | None = None
        self.fd: int | None = None
        self.inprocess: dict[int, _InProcessClient] = {}
        self.subscribers: list[_Subscriber] = []
        self.tick_waiters: list[tuple[int, asyncio.Future[None]]] = []
        self.starting: asyncio.Future[None] | None = None
        self.first_snapshot: asyncio.Future[None] | None = None
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


def topic_logger(server: Any, topic: int) -> logging.Logger | logging.LoggerAdapter[Any]:
    """Where a line of this topic goes: the `logger=` given gets everything; the default
    `session_buddy.realtime` hands each topic to its session-buddy name below it."""
    if server.logger is logging.getLogger(LOGGER_NAME):
        return logging.getLogger(_TOPIC_LOGGERS.get(topic, SERVER_LOGGER_NAME))
    return server.logger


def _server_log(server: Any) -> logging.Logger | logging.LoggerAdapter[Any]:
    return topic_logger(server, TOPIC_SERVER)


def _auth_log(server: Any) -> logging.Logger | logging.LoggerAdapter[Any]:
    return topic_logger(server, TOPIC_AUTH)


def _min_log_level(server: Any) -> int:
    """The lowest level any topic's logger takes: the C side drops lines below it."""
    levels = [
        lg.getEffectiveLevel()
        for lg in (_server_log(server), _auth_log(server))
        if callable(getattr(lg, "getEffectiveLevel", None))
    ]
    return min(levels) if len(levels) == 2 else 0


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
    return bool(server.require_auth) or auth.auth_enabled()


def _effective_secret(server: Any) -> bytes | None:
    """The JWT secret when authentication is on; ValueError when it is on without one."""
    if not _auth_requested(server):
        return None
    secret = server._security.jwt_secret
    if secret is None:
        env_secret = auth.environment_secret()
        secret = None if env_secret is None else env_secret.encode()
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
            _server_log(server).debug("could not raise the open-file limit from %d: %s", soft, exc)
            return
        _server_log(server).debug("raised the open-file limit from %d to %d", soft, wanted)


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
    if server.running or state.starting is not None:
        _server_log(server).warning("start() called on a server that is already running")
        return
    loop = asyncio.get_running_loop()
    # stop() called while this start is under way waits for it, then stops what it started.
    state.starting = loop.create_future()
    try:
        await _start(server, state, loop)
    finally:
        state.starting.set_result(None)
        state.starting = None


async def _start(server: Any, state: ServerState, loop: asyncio.AbstractEventLoop) -> None:
    secret = _effective_secret(server)
    use_poll = _use_poll_loop()
    _check_tls_files(server)
    _raise_fd_limit(server)
    iface, disable_ipv6 = _bind_address(server.host)
    await loop.run_in_executor(None, _ensure_database, server.db_path)
    security: SecurityOptions = server._security
    cert, key = security.ssl_certfile, security.ssl_keyfile
    server._start_core(
        iface, disable_ipv6, use_poll, _min_log_level(server), str(DASHBOARD_DIR), secret,
        security.allowed_origins, None if cert is None else str(cert), None if key is None else str(key),
        host_check_names(server.host, iface, server.allowed_hosts),
    )
    state.loop = loop
    state.stopping = False
    state.stopped = loop.create_future()
    state.first_snapshot = loop.create_future()
    state.fd = server._event_fd
    loop.add_reader(state.fd, _drain_events, server)
    _server_log(server).info(
        "real-time metrics server listening on %s (db %s, interval %.3gs, authentication %s)",
        server.url, server.db_path, server.update_interval, "on" if secret else "off",
    )
    # Ready once the startup tick is built: a client that connects after start() returned then
    # hears nothing but its replies until the next tick (csrc/ws_protocol.c, session_admit).
    try:
        await asyncio.shield(state.first_snapshot)
    except asyncio.CancelledError:
        await _stop(server, state)  # a cancelled start leaves nothing running
        raise


async def stop(server: Any) -> None:
    state: ServerState = server._state
    if not server.running and state.starting is None:
        # `create_task(server.start())` then `await server.stop()`: that start has not begun yet.
        # Its task is ahead of this one in the loop's queue, so one turn lets it register.
        await asyncio.sleep(0)
    if state.starting is not None:
        await asyncio.shield(state.starting)
        if not server.running:
            return  # that start failed or was cancelled, and its caller was told
    if not server.running or state.stopping:
        _server_log(server).warning("stop() called on a server that is not running")
        return
    await _stop(server, state)


async def _stop(server: Any, state: ServerState) -> None:
    state.stopping = True
    try:
        server._request_stop()
        if state.stopped is not None:
            try:
                await asyncio.wait_for(asyncio.shield(state.stopped), timeout=5.0)
            except asyncio.TimeoutError:
                _server_log(server).error("service thread did not confirm its stop in 5 s; joining anyway")
    finally:
        _detach_reader(state)
        # Lines logged while the threads wound down (disconnects, say) come back here.
        for kind, level, value, text in server._finish_stop():
            if kind == EV_LOG:
                topic_logger(server, value).log(level, "%s", text)
        for _, fut in state.tick_waiters:
            if not fut.done():
                fut.set_exception(RuntimeError("server stopped"))
        state.tick_waiters.clear()
        state.stopping = False
        _server_log(server).info("real-time metrics server stopped")


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
            topic_logger(server, value).log(level, "%s", text)
        elif kind == EV_SNAPSHOT:
            new_snapshot = True
            _settle(state.first_snapshot)
        elif kind == EV_TICK_DONE:
            tick_done = value
        elif kind == EV_STOPPED:
            _settle(state.stopped)
            _settle(state.first_snapshot)
    if new_snapshot and server.running:
        _hand_out_snapshot(server)
    if tick_done is not None:
        # broadcast_metrics() returns once in-process consumers have the snapshot queued too.
        _resolve_tick_waiters(state, tick_done)


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
#
# Nothing here awaits a consumer.  Each in-process client has one sender task at most, which
# sends its queued replies and then its latest update; a newer snapshot replaces an update that
# is still unsent.  So a client whose send() never returns holds one task and one message, and
# delays no one: not the other clients, not the subscribers, not broadcast_metrics().


def _hand_out_snapshot(server: Any) -> None:
    state: ServerState = server._state
    messages: dict[str | None, str | None] = {}

    def message_for(skill: str | None) -> str | None:
        if skill not in messages:
            messages[skill] = server._update_message(skill)
        return messages[skill]

    for client in list(state.inprocess.values()):
        if client.subscribed:
            text = message_for(client.skill)
            if text is not None:
                _queue_update(server, client, text)
    if state.subscribers:
        full = message_for(None)
        if full is not None:
            for subscriber in list(state.subscribers):
                _notify_subscriber(server, subscriber, json.loads(full))


def _queue_update(server: Any, client: _InProcessClient, text: str) -> None:
    client.update = text  # replaces an unsent older one
    _kick_sender(server, client)


def _queue_reply(server: Any, client: _InProcessClient, text: str, sent: asyncio.Future[None] | None = None) -> None:
    size = len(text.encode("utf-8", "surrogatepass"))
    if client.reply_bytes + size > MAX_QUEUED_REPLY_BYTES:
        _server_log(server).warning(
            "in-process client %s is not reading its replies: closing", _describe(client.obj)
        )
        _drop(server, client, 1008, "reply queue full")
        _settle(sent)
        return
    client.replies.append((text, size, sent))
    client.reply_bytes += size
    _kick_sender(server, client)


def _settle(fut: asyncio.Future[None] | None) -> None:
    if fut is not None and not fut.done():
        fut.set_result(None)


def _discard_queue(client: _InProcessClient) -> None:
    client.update = None
    while client.replies:
        _settle(client.replies.popleft()[2])
    client.reply_bytes = 0


def _kick_sender(server: Any, client: _InProcessClient) -> None:
    if client.sender is None or client.sender.done():
        client.sender = _spawn(server._state, _send_queued(server, client))


async def _send_queued(server: Any, client: _InProcessClient) -> None:
    """Replies first, in order, then the latest update: the network path's order."""
    while not client.dropped:
        sent = None
        if client.replies:
            text, size, sent = client.replies.popleft()
            client.reply_bytes -= size
        elif client.update is not None:
            text, client.update = client.update, None
        else:
            return
        try:
            await client.obj.send(text)
        except Exception as exc:  # a broken in-process client must not stop broadcasting
            if _is_connection_closed(exc):
                _server_log(server).info("in-process client %s disconnected", _describe(client.obj))
            else:
                _server_log(server).warning(
                    "in-process client %s failed to receive a message: %s", _describe(client.obj), exc
                )
            unregister_client(server, client.obj)
            _discard_queue(client)
            return
        finally:
            _settle(sent)


def _drop(server: Any, client: _InProcessClient, code: int, reason: str) -> None:
    """Unregister a client that does not read, stop its sender, and close it if it can be."""
    client.dropped = True
    _discard_queue(client)
    unregister_client(server, client.obj)
    if client.sender is not None and not client.sender.done() and client.sender is not asyncio.current_task():
        client.sender.cancel()
    if callable(getattr(client.obj, "close", None)):
        client.closing = _spawn(server._state, _close(client.obj, code, reason, CLOSE_GRACE_S))


async def _close(ws: Any, code: int, reason: str, timeout: float | None = None) -> None:
    try:
        await asyncio.wait_for(ws.close(code=code, reason=reason), timeout)
    except Exception:  # already closed, or a close that never finishes: nothing more to do
        pass


def _notify_subscriber(server: Any, subscriber: _Subscriber, payload: dict[str, Any]) -> None:
    if subscriber.running is not None and not subscriber.running.done():
        subscriber.pending = payload  # the previous call still runs: it gets the latest next
        return
    try:
        result = subscriber.callback(payload)
    except Exception:
        _server_log(server).exception("metrics subscriber %r raised", subscriber.callback)
        return
    if inspect.isawaitable(result):
        subscriber.running = _spawn(server._state, _await_subscriber(server, subscriber, result))


async def _await_subscriber(server: Any, subscriber: _Subscriber, result: Any) -> None:
    while True:
        try:
            await result
        except Exception:
            _server_log(server).exception("metrics subscriber %r raised", subscriber.callback)
        payload, subscriber.pending = subscriber.pending, None
        if payload is None or subscriber not in server._state.subscribers:
            return
        try:
            result = subscriber.callback(payload)
        except Exception:
            _server_log(server).exception("metrics subscriber %r raised", subscriber.callback)
            return
        if not inspect.isawaitable(result):
            return


async def broadcast_metrics(server: Any) -> None:
    state: ServerState = server._state
    if not server.running or state.loop is None:
        raise RuntimeError("server is not running")
    fut = state.loop.create_future()
    state.tick_waiters.append((server._request_tick(), fut))
    await fut


# ---- in-process clients -----------------------------------------------------


def _describe(obj: Any) -> str:
    address = getattr(obj, "remote_address", None)
    if isinstance(address, tuple) and len(address) >= 2:
        host, port = address[0], address[1]
        return f"[{host}]:{port}" if ":" in str(host) else f"{host}:{port}"
    return str(address) if address else type(obj).__name__


def _register(server: Any, obj: Any) -> _InProcessClient:
    if not callable(getattr(obj, "send", None)):
        raise TypeError("a client needs an async send(text) method")
    state: ServerState = server._state
    client = state.inprocess.get(id(obj))
    if client is not None:
        return client
    skill = getattr(obj, "subscription_skill", None)
    client = _InProcessClient(obj, True, skill if isinstance(skill, str) else None)
    state.inprocess[id(obj)] = client
    _server_log(server).info(
        "in-process client registered: %s (%d clients)", _describe(obj), len(clients(server))
    )
    return client


def register_client(server: Any, obj: Any) -> None:
    _register(server, obj)


def unregister_client(server: Any, obj: Any) -> None:
    state: ServerState = server._state
    if state.inprocess.pop(id(obj), None) is not None:
        _server_log(server).info("in-process client unregistered: %s", _describe(obj))


def register_metrics_subscriber(server: Any, callback: Any) -> None:
    if not callable(callback):
        raise TypeError("a metrics subscriber must be callable")
    state: ServerState = server._state
    if not any(s.callback == callback for s in state.subscribers):
        state.subscribers.append(_Subscriber(callback))


def unregister_metrics_subscriber(server: Any, callback: Any) -> None:
    state: ServerState = server._state
    state.subscribers = [s for s in state.subscribers if s.callback != callback]


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
        client.update = None  # an unsent update in the old form is no longer wanted
    try:
        ws.subscription_skill = skill
    except (AttributeError, TypeError):
        pass  # objects without settable attributes keep their state in ServerState only


async def _reply(server: Any, ws: Any, text: str, wait: bool) -> None:
    """Anyone's reply is sent now, except a registered client's: that one joins the client's
    queue, behind what is already on its way to it.  wait: return only once it is sent (or the
    client is gone), as a caller of the public coroutines expects."""
    client = server._state.inprocess.get(id(ws))
    if client is None:
        await ws.send(text)
        return
    sent = asyncio.get_running_loop().create_future() if wait else None
    _queue_reply(server, client, text, sent)
    if sent is not None:
        await sent


async def handle_subscription(server: Any, ws: Any, skill_name: str | None) -> None:
    if skill_name is not None and not isinstance(skill_name, str):
        raise TypeError("skill_name must be a str or None")
    _record_subscription(server, ws, True, skill_name)
    await _reply(server, ws, server._subscribed_message(skill_name), True)


async def handle_client_message(server: Any, ws: Any, message: str | bytes) -> None:
    await _apply_message(server, ws, message, True)


async def _apply_message(server: Any, ws: Any, message: str | bytes, wait: bool) -> None:
    """One protocol message from ws.  wait=False (client_handler's own reading loop): replies are
    queued, so a client that sends without reading meets the reply bound instead of stalling."""
    reply, action, value = server._dispatch(message)
    if action == "subscribe":
        _record_subscription(server, ws, True, value)
    elif action == "unsubscribe":
        _record_subscription(server, ws, False, None)
    if reply is not None:
        await _reply(server, ws, reply, wait)
    client = server._state.inprocess.get(id(ws))
    if action == "subscribe" and server.running and client is not None:
        update = server._update_message(value)
        if update is not None:
            _queue_update(server, client, update)  # right after the confirmation


def _is_connection_closed(exc: BaseException) -> bool:
    return type(exc).__name__.startswith("ConnectionClosed")


# ---- client_handler: the stream mounted in another web app -----------------------------------


def _auth_failed(server: Any, ws: Any, why: str) -> None:
    _auth_log(server).warning("in-process client %s: authentication failed: %s", _describe(ws), why)


async def _authenticate(server: Any, ws: Any, messages: Any, secret: bytes) -> tuple[str, dict[str, Any]] | None:
    """(user_id, claims) once ws has authenticated as on the network path, else None (logged)."""
    try:
        user_id, claims, source = await authenticate_mounted(ws, messages, secret, server._dispatch)
    except AuthRefused as refused:
        _auth_failed(server, ws, str(refused))
        return None
    except Exception as exc:
        if not _is_connection_closed(exc):
            raise
        _auth_failed(server, ws, "closed before authenticating")
        return None
    _auth_log(server).info(
        "in-process client %s authenticated as user '%s' (token from the %s)", _describe(ws), user_id, source
    )
    return user_id, claims


def _attach_user(ws: Any, client: _InProcessClient, user_id: str, claims: dict[str, Any]) -> None:
    client.user_id = user_id
    for name, value in (("user_id", user_id), ("user", claims)):  # `user`: as session-buddy sets it
        try:
            setattr(ws, name, value)
        except (AttributeError, TypeError):
            pass


async def client_handler(server: Any, ws: Any) -> None:
    messages = aiter(ws)
    secret = _effective_secret(server)
    user = None
    if secret is not None:
        user = await _authenticate(server, ws, messages, secret)
        if user is None:
            await _close(ws, 4001, "Authentication failed")
            return
    client = _register(server, ws)
    if user is not None:
        _attach_user(ws, client, *user)
    try:
        _queue_reply(server, client, server._connected_message(user is not None))
        async for message in messages:
            await _apply_message(server, ws, message, False)
            if client.dropped:
                break
    except Exception as exc:
        if not _is_connection_closed(exc):
            raise
    finally:
        unregister_client(server, ws)
    if client.closing is not None:
        await client.closing  # the app would otherwise close the connection first, with 1000
