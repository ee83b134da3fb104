"""RealTimeMetricsServer: the C core (`_core.ServerBase`) extended with the arguments, the
coroutines and the in-process consumers.

Calls go one way.  This class calls down into ServerBase (start the core, request and finish the
stop, take events, request a tick, list network clients); the core's threads never call Python,
they post events to a queue whose eventfd this class watches on its event loop.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

from session_buddy.realtime._core import ServerBase
from session_buddy.realtime._events import EventKind, LogTopic, min_log_level, topic_logger
from session_buddy.realtime._graphql import GraphQLHandler
from session_buddy.realtime._inprocess import InProcessClients
from session_buddy.realtime._options import AnyLogger, ServerOptions, server_options
from session_buddy.realtime._redis_check import check_redis
from session_buddy.realtime._startup import core_config, effective_secret, ensure_database, raise_fd_limit
from session_buddy.realtime._webhook_store import store_path
from session_buddy.realtime.webhooks import WebhookDispatcher

__all__ = ["NetworkClient", "RealTimeMetricsServer"]


@dataclass(frozen=True)
class NetworkClient:
    """A client connected over the network, as seen in `server.clients`."""

    id: int
    remote_address: str
    subscribed: bool
    subscription_skill: str | None
    user_id: str | None = None


class _Lifecycle:
    """Where start() and stop() are: only touched on the asyncio thread."""

    def __init__(self) -> None:
        self.loop: asyncio.AbstractEventLoop | None = None
        self.fd: int | None = None
        self.tick_waiters: list[tuple[int, asyncio.Future[None]]] = []
        self.starting: asyncio.Future[None] | None = None
        self.first_snapshot: asyncio.Future[None] | None = None
        self.stopped: asyncio.Future[None] | None = None
        # Set while a stop() is under way, so that a second stop() waits for it.
        self.stopping: asyncio.Future[None] | None = None


def _settle(fut: asyncio.Future[None] | None) -> None:
    if fut is not None and not fut.done():
        fut.set_result(None)


class RealTimeMetricsServer(ServerBase):
    """Real-time skill metrics over WebSocket; libwebsockets runs on its own thread.

    RealTimeMetricsServer(host='localhost', port=8765, db_path=None, update_interval=1.0,
    require_auth=False, *, max_clients=100, max_message_size=65536, allowed_origins=None,
    ssl_certfile=None, ssl_keyfile=None, jwt_secret=None, anomaly_threshold=2.0, top_n=10,
    record_anomalies=True, logger=None, allowed_hosts=None, max_pending=256,
    recovery_window=600.0, role='standalone', redis_url=None, redis_prefix='session_buddy',
    webhooks=None)
    """

    def __init__(
        self,
        host: str = "localhost",
        port: int = 8765,
        db_path: str | os.PathLike[str] | None = None,
        update_interval: float = 1.0,
        require_auth: bool = False,
        *,
        max_clients: int = 100,
        max_message_size: int = 65536,
        allowed_origins: Any = None,
        ssl_certfile: str | os.PathLike[str] | None = None,
        ssl_keyfile: str | os.PathLike[str] | None = None,
        jwt_secret: str | bytes | None = None,
        anomaly_threshold: float = 2.0,
        top_n: int = 10,
        record_anomalies: bool = True,
        logger: AnyLogger | None = None,
        allowed_hosts: Any = None,
        max_pending: int = 256,
        recovery_window: float = 600.0,
        role: str = "standalone",
        redis_url: str | None = None,
        redis_prefix: str = "session_buddy",
        webhooks: Any = None,
    ) -> None:
        if self.running:
            raise RuntimeError("cannot re-initialise a running server")
        super().__init__()
        self._options: ServerOptions = server_options(
            host, port, db_path, update_interval, require_auth, max_clients=max_clients,
            max_message_size=max_message_size, allowed_origins=allowed_origins,
            ssl_certfile=ssl_certfile, ssl_keyfile=ssl_keyfile, jwt_secret=jwt_secret,
            anomaly_threshold=anomaly_threshold, top_n=top_n, record_anomalies=record_anomalies,
            logger=logger, allowed_hosts=allowed_hosts, max_pending=max_pending,
            recovery_window=recovery_window, role=role, redis_url=redis_url,
            redis_prefix=redis_prefix, webhooks=webhooks,
        )
        self._port = self._options.port
        self._storage: Any = None
        self._state = _Lifecycle()
        self._inprocess = InProcessClients(self)
        self._graphql = GraphQLHandler(self)
        self._webhooks: WebhookDispatcher | None = None

    # ---- attributes ----

    @property
    def host(self) -> str:
        """Host the server binds."""
        return self._options.host

    @property
    def port(self) -> int:
        """Port: as configured, or the bound port once started."""
        return self._port

    @property
    def db_path(self) -> Path:
        """Path of the skills database."""
        return self._options.db_path

    @property
    def update_interval(self) -> float:
        """Seconds between broadcasts."""
        return self._options.update_interval

    @property
    def require_auth(self) -> bool:
        """Whether clients must authenticate (SESSION_BUDDY_AUTH_ENABLED=true also turns it on)."""
        return self._options.require_auth

    @property
    def allowed_origins(self) -> tuple[str, ...] | None:
        """Origins allowed to open a WebSocket, or None for all."""
        return self._options.allowed_origins

    @property
    def ssl_certfile(self) -> Path | None:
        """TLS certificate, or None."""
        return self._options.ssl_certfile

    @property
    def ssl_keyfile(self) -> Path | None:
        """TLS private key, or None."""
        return self._options.ssl_keyfile

    @property
    def max_clients(self) -> int:
        """Connection limit (0 = unlimited)."""
        return self._options.max_clients

    @property
    def max_message_size(self) -> int:
        """Largest accepted message in bytes."""
        return self._options.max_message_size

    @property
    def top_n(self) -> int:
        """Number of skills in top_skills."""
        return self._options.top_n

    @property
    def anomaly_threshold(self) -> float:
        """z-score threshold for anomalies."""
        return self._options.anomaly_threshold

    @property
    def record_anomalies(self) -> bool:
        """Whether anomalies are written to the DB."""
        return self._options.record_anomalies

    @property
    def logger(self) -> AnyLogger:
        """The logging.Logger the server reports to."""
        return self._options.logger

    @property
    def allowed_hosts(self) -> tuple[str, ...] | None:
        """Extra Host names accepted while bound to loopback, or None."""
        return self._options.allowed_hosts

    @property
    def max_pending(self) -> int:
        """Connections allowed to be still handshaking or authenticating at once."""
        return self._options.max_pending

    @property
    def role(self) -> str:
        """'standalone', 'publisher' (reads the DB, appends each tick to Redis) or 'edge'."""
        return self._options.role

    @property
    def recovery_window(self) -> float:
        """Seconds of updates kept for clients that resume with since (0: none)."""
        return self._options.recovery_window

    @property
    def webhooks(self) -> tuple[Any, ...]:
        """The webhook endpoints (WebhookEndpoint records; their repr shows no URL or secret)."""
        return self._options.webhooks

    @property
    def dashboard_url(self) -> str:
        """http://host:port/ (https:// with TLS): the dashboard that webhook events link to."""
        return self.url.replace("ws", "http", 1) + "/"

    @property
    def url(self) -> str:
        """ws://host:port (wss:// with TLS) of the server."""
        host = self.host
        if ":" in host and not host.startswith("["):
            host = f"[{host}]"
        scheme = "wss" if self.ssl_certfile is not None else "ws"
        return f"{scheme}://{host}:{self.port}"

    @property
    def storage(self) -> Any:
        """A SkillsStorage on db_path (opened on first use)."""
        if self._storage is None:
            from session_buddy.storage import SkillsStorage

            self._storage = SkillsStorage(self.db_path)
        return self._storage

    @property
    def clients(self) -> set[Any]:
        """A new set of the connected clients: in-process objects and NetworkClient records."""
        result: set[Any] = self._inprocess.objects()
        for client_id, address, subscribed, skill, user_id in self.network_clients():
            result.add(NetworkClient(client_id, address, subscribed, skill if subscribed else None, user_id or None))
        return result

    @property
    def _running(self) -> bool:
        """Compatibility alias of running."""
        return self.running

    @property
    def _server(self) -> tuple[str, int] | None:
        """Compatibility: (host, port) while running, else None."""
        return (self.host, self.port) if self.running else None

    @property
    def _broadcast_task(self) -> float | None:
        """Compatibility: the broadcast interval while running, else None (session-buddy's server
        kept its broadcast task here; the ticker thread does that work now)."""
        return self.update_interval if self.running else None

    def __repr__(self) -> str:
        return f"<RealTimeMetricsServer {self.host}:{self.port} {'running' if self.running else 'stopped'}>"

    def _log(self, topic: LogTopic = LogTopic.SERVER) -> AnyLogger:
        return topic_logger(self.logger, topic)

    # ---- lifecycle ----

    async def start(self) -> None:
        """Bind, start the service thread, and return once listening with the first snapshot built."""
        state = self._state
        if state.starting is not None:
            # Another task is starting it: return when it is up, as that task will.
            await asyncio.shield(state.starting)
            if not self.running:
                raise RuntimeError("the server failed to start in a concurrent start() call")
        if self.running:
            self._log().warning("start() called on a server that is already running")
            return
        loop = asyncio.get_running_loop()
        # stop() called while this start is under way waits for it, then stops what it started.
        state.starting = loop.create_future()
        try:
            await self._start(loop)
        finally:
            state.starting.set_result(None)
            state.starting = None

    async def _start(self, loop: asyncio.AbstractEventLoop) -> None:
        state = self._state
        secret = effective_secret(self._options)
        config = core_config(self._options, secret, min_log_level(self.logger))
        raise_fd_limit(self._log())
        if self._options.redis is not None:
            await loop.run_in_executor(None, check_redis, self._options.redis)
        if self._options.role != "edge":  # an edge has no DB
            await loop.run_in_executor(None, ensure_database, self.db_path)
        if self._options.webhooks:
            # Before the core starts, so that the first snapshot's anomaly set finds it open.
            self._webhooks = WebhookDispatcher(
                self._options.webhooks, store_path(self.db_path), self._log(), self.set_webhook_stats)
            self._webhooks.open()
        try:
            self._port = self.start_core(config)
        except BaseException:
            await self._close_webhooks()
            raise
        if self._webhooks is not None:
            self._webhooks.set_urls(self.url, self.dashboard_url)
            self._webhooks.publish_stats()  # the figures gathered before the core existed
        state.loop = loop
        state.stopped = loop.create_future()
        state.first_snapshot = loop.create_future()
        if self._options.role == "edge":
            # An edge serves what Redis holds as soon as its link has read it; it has no tick of
            # its own to wait for (and the stream may be empty until a publisher starts).
            state.first_snapshot.set_result(None)
        state.fd = self.event_fd
        assert state.fd is not None
        loop.add_reader(state.fd, self._drain_events)
        self._log().info(
            "real-time metrics server listening on %s (db %s, interval %.3gs, authentication %s)",
            self.url, self.db_path, self.update_interval, "on" if secret else "off",
        )
        # Ready once the startup tick is built: a client that connects after start() returned
        # then hears nothing but its replies until the next tick.
        try:
            await asyncio.shield(state.first_snapshot)
        except asyncio.CancelledError:
            await self._stop()  # a cancelled start leaves nothing running
            raise

    async def stop(self) -> None:
        """Close every client with 1001, join the threads, release the port and the DB.  Idempotent."""
        state = self._state
        if not self.running and state.starting is None:
            # `create_task(server.start())` then `await server.stop()`: that start has not begun
            # yet.  Its task is ahead of this one in the loop's queue, so one turn lets it register.
            await asyncio.sleep(0)
        if state.starting is not None:
            await asyncio.shield(state.starting)
            if not self.running:
                return  # that start failed or was cancelled, and its caller was told
        if state.stopping is not None:
            # Another task is stopping it: return once it is down (port released, threads joined).
            await asyncio.shield(state.stopping)
        if not self.running:
            self._log().warning("stop() called on a server that is not running")
            return
        await self._stop()

    async def _stop(self) -> None:
        state = self._state
        assert state.loop is not None
        state.stopping = state.loop.create_future()
        try:
            if self._webhooks is not None:
                self._webhooks.cancel()  # attempts in flight must not hold stop() up
            self.request_stop()
            if state.stopped is not None:
                try:
                    await asyncio.wait_for(asyncio.shield(state.stopped), timeout=5.0)
                except asyncio.TimeoutError:
                    self._log().error("service thread did not confirm its stop in 5 s; joining anyway")
        finally:
            self._detach_reader()
            # Lines logged while the threads wound down (disconnects, say) come back here.
            for kind, level, value, text in self.finish_stop():
                if kind == EventKind.LOG:
                    topic_logger(self.logger, value).log(level, "%s", text)
                elif kind == EventKind.ANOMALIES and self._webhooks is not None:
                    self._webhooks.on_anomalies(value, self.epoch, text)
            await self._close_webhooks()
            for _, fut in state.tick_waiters:
                if not fut.done():
                    fut.set_exception(RuntimeError("server stopped"))
            state.tick_waiters.clear()
            _settle(state.stopping)
            state.stopping = None
            self._log().info("real-time metrics server stopped")

    async def __aenter__(self) -> RealTimeMetricsServer:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None = None,
        exc: BaseException | None = None,
        tb: TracebackType | None = None,
    ) -> None:
        await self.stop()

    async def _close_webhooks(self) -> None:
        if self._webhooks is not None:
            await self._webhooks.close()
            self._webhooks = None

    def _detach_reader(self) -> None:
        state = self._state
        if state.loop is not None and state.fd is not None and not state.loop.is_closed():
            state.loop.remove_reader(state.fd)
        state.fd = None

    def _drain_events(self) -> None:
        """add_reader callback: deliver everything the core's threads posted."""
        state = self._state
        new_snapshot = False
        tick_done = None
        for kind, level, value, text in self.take_events():
            if kind == EventKind.LOG:
                topic_logger(self.logger, value).log(level, "%s", text)
            elif kind == EventKind.SNAPSHOT:
                new_snapshot = True
                _settle(state.first_snapshot)
            elif kind == EventKind.TICK_DONE:
                tick_done = value
            elif kind == EventKind.ANOMALIES:
                if self._webhooks is not None:
                    self._webhooks.on_anomalies(value, self.epoch, text)
            elif kind == EventKind.STOPPED:
                _settle(state.stopped)
                _settle(state.first_snapshot)
            elif kind == EventKind.GQL_OPERATION:
                self._graphql.on_operation(value, text)
            elif kind == EventKind.GQL_HTTP:
                self._graphql.on_http(value, text)
        if new_snapshot and self.running:
            self._inprocess.hand_out_snapshot()
        if tick_done is not None:
            # broadcast_metrics() returns once in-process consumers have the snapshot queued too.
            remaining = []
            for wanted, fut in state.tick_waiters:
                if wanted <= tick_done:
                    _settle(fut)
                else:
                    remaining.append((wanted, fut))
            state.tick_waiters = remaining

    async def broadcast_metrics(self) -> None:
        """Build and broadcast a snapshot now; return once every consumer has it queued."""
        state = self._state
        if not self.running or state.loop is None:
            raise RuntimeError("server is not running")
        if self._options.role == "edge":
            return  # an edge broadcasts what the publisher appends; it builds nothing itself
        fut = state.loop.create_future()
        state.tick_waiters.append((self.request_tick(), fut))
        await fut

    # ---- in-process consumers ----

    def register_client(self, client: Any) -> None:
        """Add an in-process client (an object with async send(text))."""
        self._inprocess.register(client)

    def unregister_client(self, client: Any) -> None:
        """Remove an in-process client."""
        self._inprocess.unregister(client)

    def register_metrics_subscriber(self, callback: Callable[[dict[str, Any]], Awaitable[Any] | Any]) -> None:
        """Call callback(payload) (sync or async) with every snapshot."""
        self._inprocess.register_subscriber(callback)

    def unregister_metrics_subscriber(self, callback: Callable[[dict[str, Any]], Awaitable[Any] | Any]) -> None:
        """Stop calling callback."""
        self._inprocess.unregister_subscriber(callback)

    def updates_since(
        self, seq: int, skill: str | None = None, *, epoch: str | None = None
    ) -> list[dict[str, Any]] | None:
        """The retained metrics_update payloads after seq, oldest first, in the form of a
        subscription to skill (None: all skills, the form metrics subscribers get), or None
        when they cannot all be given: epoch (default: the current one) is another run's, or
        seq is outside the recovery window.  An empty list means seq is the newest.  A metrics
        subscriber that fell behind (an async one is conflated) or restarted calls this with the
        last seq it handled.  RuntimeError when the server is not running."""
        if isinstance(seq, bool) or not isinstance(seq, int):
            raise TypeError(f"seq must be an int, not {type(seq).__name__}")
        if seq < 0:
            raise ValueError(f"seq must be >= 0, got {seq!r}")
        if epoch is not None and not isinstance(epoch, str):
            raise TypeError(f"epoch must be a str or None, not {type(epoch).__name__}")
        texts = self.retained_updates(seq, skill, epoch)
        return None if texts is None else [json.loads(text) for text in texts]

    async def client_handler(self, ws: Any) -> None:
        """Serve a websocket-like object (async iteration and send) through the full protocol,
        authenticating it first when authentication is on."""
        await self._inprocess.client_handler(ws, effective_secret(self._options))

    async def handle_client_message(self, ws: Any, message: str | bytes) -> None:
        """Apply one protocol message from ws and send the reply."""
        await self._inprocess.apply_message(ws, message, True)

    async def handle_subscription(self, ws: Any, skill_name: str | None) -> None:
        """Set ws's subscription and confirm it."""
        await self._inprocess.handle_subscription(ws, skill_name)
