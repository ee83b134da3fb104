"""In-process consumers of one server: clients served by client_handler or registered with
register_client, and metrics subscribers.

The protocol itself (what a message asks for, the subscription it sets, the metrics_update text
of each tick) is decided in C by `_core.InProcessSession`, the dispatcher network sessions run.
What lives here is delivery, which needs coroutines: each client has one sender task at most,
which sends its queued replies and then its latest update; a newer snapshot replaces an update
that is still unsent, and replies are bounded.  Nothing here awaits a consumer, so a client
whose send() never returns holds one task and one message and delays no one.  Everything runs on
the asyncio thread of the server's loop.
"""

from __future__ import annotations

import asyncio
import inspect
import json
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from session_buddy.realtime._core import (
    CLOSE_BAD_TOKEN,
    CLOSE_GRACE_S,
    CLOSE_REPLAY_BEHIND,
    CLOSE_SLOW_CONSUMER,
    MAX_QUEUED_REPLY_BYTES,
    InProcessSession,
)
from session_buddy.realtime._events import LogTopic, topic_logger
from session_buddy.realtime._mount_auth import AuthRefused, authenticate_mounted
from session_buddy.realtime._options import AnyLogger

if TYPE_CHECKING:
    from session_buddy.realtime.server import RealTimeMetricsServer

__all__ = ["InProcessClients"]

# In-process clients are held to the network path's slow-consumer bounds, taken from the C
# side's one table: no metrics_update is held for them (the sender takes the newest one owed
# from the session when it is ready to send, so a newer one replaces what was not sent yet; a
# resumed session's replay comes one update per send), replies until they reach
# MAX_QUEUED_REPLY_BYTES (so at most that plus one reply, which may be larger by itself), then
# CLOSE_SLOW_CONSUMER with CLOSE_GRACE_S to take the close frame.


@dataclass(eq=False)
class _Client:
    """A registered in-process client and what waits to be sent to it."""

    obj: Any
    session: InProcessSession
    user_id: str | None = None
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


def describe(obj: Any) -> str:
    """A client's address for log lines, or its type when it has none."""
    address = getattr(obj, "remote_address", None)
    if isinstance(address, tuple) and len(address) >= 2:
        host, port = address[0], address[1]
        return f"[{host}]:{port}" if ":" in str(host) else f"{host}:{port}"
    return str(address) if address else type(obj).__name__


def settle(fut: asyncio.Future[None] | None) -> None:
    if fut is not None and not fut.done():
        fut.set_result(None)


def is_connection_closed(exc: BaseException) -> bool:
    return type(exc).__name__.startswith("ConnectionClosed")


async def close_quietly(ws: Any, code: int, reason: str, timeout: float | None = None) -> None:
    try:
        await asyncio.wait_for(ws.close(code=code, reason=reason), timeout)
    except Exception:  # already closed, or a close that never finishes: nothing more to do
        pass


class InProcessClients:
    """The in-process clients and metrics subscribers of one server."""

    def __init__(self, server: RealTimeMetricsServer) -> None:
        self._server = server
        self._clients: dict[int, _Client] = {}
        self._subscribers: list[_Subscriber] = []
        self._tasks: set[asyncio.Task[Any]] = set()

    # ---- bookkeeping ----

    def _log(self) -> AnyLogger:
        return topic_logger(self._server.logger, LogTopic.SERVER)

    def _auth_log(self) -> AnyLogger:
        return topic_logger(self._server.logger, LogTopic.AUTH)

    def _spawn(self, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def _session(self, skill: str | None = None) -> InProcessSession:
        return InProcessSession(self._server, self._server.max_message_size, skill)

    def objects(self) -> set[Any]:
        """The registered client objects."""
        return {c.obj for c in self._clients.values()}

    def register(self, obj: Any, session: InProcessSession | None = None) -> _Client:
        if not callable(getattr(obj, "send", None)):
            raise TypeError("a client needs an async send(text) method")
        client = self._clients.get(id(obj))
        if client is not None:
            return client
        if session is None:
            skill = getattr(obj, "subscription_skill", None)
            session = self._session(skill if isinstance(skill, str) else None)
        client = _Client(obj, session)
        self._clients[id(obj)] = client
        self._log().info(
            "in-process client registered: %s (%d clients)", describe(obj), len(self._server.clients)
        )
        return client

    def unregister(self, obj: Any) -> None:
        if self._clients.pop(id(obj), None) is not None:
            self._log().info("in-process client unregistered: %s", describe(obj))

    def register_subscriber(self, callback: Any) -> None:
        if not callable(callback):
            raise TypeError("a metrics subscriber must be callable")
        if not any(s.callback == callback for s in self._subscribers):
            self._subscribers.append(_Subscriber(callback))

    def unregister_subscriber(self, callback: Any) -> None:
        self._subscribers = [s for s in self._subscribers if s.callback != callback]

    # ---- a new snapshot ----

    def hand_out_snapshot(self) -> None:
        """Wake the sender of every subscribed client and call the subscribers.  The text for
        each subscription is built once per snapshot, in C, and shared."""
        for client in list(self._clients.values()):
            if client.session.subscribed:
                self._kick_sender(client)
        if self._subscribers:
            full = self._server.metrics_update(None)
            if full is not None:
                for subscriber in list(self._subscribers):
                    self._notify_subscriber(subscriber, json.loads(full))

    # ---- delivery ----

    def _queue_reply(self, client: _Client, text: str, sent: asyncio.Future[None] | None = None) -> None:
        size = len(text.encode("utf-8", "surrogatepass"))
        if client.reply_bytes >= MAX_QUEUED_REPLY_BYTES:
            self._log().warning("in-process client %s is not reading its replies: closing", describe(client.obj))
            self._drop(client, *CLOSE_SLOW_CONSUMER)
            settle(sent)
            return
        client.replies.append((text, size, sent))
        client.reply_bytes += size
        self._kick_sender(client)

    @staticmethod
    def _discard_queue(client: _Client) -> None:
        while client.replies:
            settle(client.replies.popleft()[2])
        client.reply_bytes = 0

    def _kick_sender(self, client: _Client) -> None:
        if client.sender is None or client.sender.done():
            client.sender = self._spawn(self._send_queued(client))

    async def _send_queued(self, client: _Client) -> None:
        """Replies first, in order, then the update owed: the network path's order."""
        while not client.dropped:
            sent = None
            if client.replies:
                text, size, sent = client.replies.popleft()
                client.reply_bytes -= size
            else:
                update, fell_behind = client.session.next_update()
                if fell_behind:
                    self._log().warning(
                        "in-process client %s read its replay too slowly: the updates it was owed "
                        "left the recovery window; closing", describe(client.obj),
                    )
                    self._drop(client, *CLOSE_REPLAY_BEHIND)
                    return
                if update is None:
                    return
                text = update
            try:
                await client.obj.send(text)
            except Exception as exc:  # a broken in-process client must not stop broadcasting
                if is_connection_closed(exc):
                    self._log().info("in-process client %s disconnected", describe(client.obj))
                else:
                    self._log().warning(
                        "in-process client %s failed to receive a message: %s", describe(client.obj), exc
                    )
                self.unregister(client.obj)
                self._discard_queue(client)
                return
            finally:
                settle(sent)

    def _drop(self, client: _Client, code: int, reason: str) -> None:
        """Unregister a client that does not read, stop its sender, and close it if it can be."""
        client.dropped = True
        self._discard_queue(client)
        self.unregister(client.obj)
        if client.sender is not None and not client.sender.done() and client.sender is not asyncio.current_task():
            client.sender.cancel()
        if callable(getattr(client.obj, "close", None)):
            client.closing = self._spawn(close_quietly(client.obj, code, reason, CLOSE_GRACE_S))

    def _notify_subscriber(self, subscriber: _Subscriber, payload: dict[str, Any]) -> None:
        if subscriber.running is not None and not subscriber.running.done():
            subscriber.pending = payload  # the previous call still runs: it gets the latest next
            return
        result = self._call_subscriber(subscriber, payload)
        if result is not None:
            subscriber.running = self._spawn(self._await_subscriber(subscriber, result))

    def _call_subscriber(self, subscriber: _Subscriber, payload: dict[str, Any]) -> Awaitable[Any] | None:
        """Call it once; its awaitable if it returned one, else None (exceptions are logged)."""
        try:
            result = subscriber.callback(payload)
        except Exception:
            self._log().exception("metrics subscriber %r raised", subscriber.callback)
            return None
        return result if inspect.isawaitable(result) else None

    async def _await_subscriber(self, subscriber: _Subscriber, result: Awaitable[Any]) -> None:
        """Await an async subscriber's call, then call it again with the latest payload that
        arrived meanwhile (one call at a time, conflated), until none is pending."""
        while True:
            try:
                await result
            except Exception:
                self._log().exception("metrics subscriber %r raised", subscriber.callback)
            payload, subscriber.pending = subscriber.pending, None
            if payload is None or subscriber not in self._subscribers:
                return
            next_result = self._call_subscriber(subscriber, payload)
            if next_result is None:
                return
            result = next_result

    # ---- protocol messages ----

    @staticmethod
    def _record_subscription(ws: Any, session: InProcessSession) -> None:
        """The subscription changed: ws.subscription_skill tells the app, as session-buddy's
        server set it (the session itself only hands out updates in the new form)."""
        try:
            ws.subscription_skill = session.skill
        except (AttributeError, TypeError):
            pass  # objects without settable attributes keep their state in the session only

    async def _reply(self, ws: Any, text: str, wait: bool) -> None:
        """Anyone's reply is sent now, except a registered client's: that one joins the client's
        queue, behind what is already on its way to it.  wait: return only once it is sent (or
        the client is gone), as a caller of the public coroutines expects."""
        client = self._clients.get(id(ws))
        if client is None:
            await ws.send(text)
            return
        sent = asyncio.get_running_loop().create_future() if wait else None
        self._queue_reply(client, text, sent)
        if sent is not None:
            await sent

    async def handle_subscription(self, ws: Any, skill_name: str | None) -> None:
        if skill_name is not None and not isinstance(skill_name, str):
            raise TypeError("skill_name must be a str or None")
        client = self._clients.get(id(ws))
        session = client.session if client is not None else self._session()
        confirmation = session.subscribe(skill_name)
        self._record_subscription(ws, session)
        await self._reply(ws, confirmation, True)

    async def apply_message(self, ws: Any, message: str | bytes, wait: bool) -> None:
        """One protocol message from ws.  wait=False (client_handler's own reading loop): replies
        are queued, so a client that sends without reading meets the reply bound instead of
        stalling."""
        client = self._clients.get(id(ws))
        session = client.session if client is not None else self._session()
        generation = session.generation
        reply, update_due = session.dispatch(message)
        if session.generation != generation:
            self._record_subscription(ws, session)
        if reply is not None:
            await self._reply(ws, reply, wait)
        if update_due and client is not None and self._clients.get(id(ws)) is client:
            self._kick_sender(client)  # the update (or the replay) right after the confirmation

    # ---- client_handler: the stream mounted in another web app ----

    def _auth_failed(self, ws: Any, why: str) -> None:
        self._auth_log().warning("in-process client %s: authentication failed: %s", describe(ws), why)

    async def _authenticate(
        self, ws: Any, messages: Any, secret: bytes, session: InProcessSession
    ) -> tuple[str, dict[str, Any]] | None:
        """(user_id, claims) once ws has authenticated as on the network path, else None (logged)."""
        try:
            user_id, claims, source = await authenticate_mounted(ws, messages, secret, session.dispatch_before_auth)
        except AuthRefused as refused:
            self._auth_failed(ws, str(refused))
            return None
        except Exception as exc:
            if not is_connection_closed(exc):
                raise
            self._auth_failed(ws, "closed before authenticating")
            return None
        self._auth_log().info(
            "in-process client %s authenticated as user '%s' (token from the %s)", describe(ws), user_id, source
        )
        return user_id, claims

    @staticmethod
    def _attach_user(ws: Any, client: _Client, user_id: str, claims: dict[str, Any]) -> None:
        client.user_id = user_id
        for name, value in (("user_id", user_id), ("user", claims)):  # `user`: as session-buddy sets it
            try:
                setattr(ws, name, value)
            except (AttributeError, TypeError):
                pass

    async def client_handler(self, ws: Any, secret: bytes | None) -> None:
        """Serve ws until it closes: authenticate when secret is set, greet, then apply every
        message it sends."""
        messages = aiter(ws)
        skill = getattr(ws, "subscription_skill", None)
        session = self._session(skill if isinstance(skill, str) else None)
        user = None
        if secret is not None:
            user = await self._authenticate(ws, messages, secret, session)
            if user is None:
                await close_quietly(ws, *CLOSE_BAD_TOKEN)
                return
        client = self.register(ws, session)
        if user is not None:
            self._attach_user(ws, client, *user)
        try:
            self._queue_reply(client, client.session.greeting(user is not None))
            async for message in messages:
                await self.apply_message(ws, message, False)
                if client.dropped:
                    break
        except Exception as exc:
            if not is_connection_closed(exc):
                raise
        finally:
            self.unregister(ws)
        if client.closing is not None:
            await client.closing  # the app would otherwise close the connection first, with 1000
