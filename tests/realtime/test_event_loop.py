"""The loop under the service thread: libev on epoll by default, lws's own poll(2) loop when
SESSION_BUDDY_EVENT_LOOP=poll; both serve clients alike, and neither takes the host's signals."""

from __future__ import annotations

import asyncio
import logging
import os
import signal

import pytest

from wsutil import recv_reply, recv_updates, request, wait_until

LOGGER = "session_buddy.realtime"


def _epoll_fds() -> int:
    count = 0
    for fd in os.listdir("/proc/self/fd"):
        try:
            count += "eventpoll" in os.readlink(f"/proc/self/fd/{fd}")
        except OSError:  # closed between listdir and readlink
            pass
    return count


@pytest.mark.parametrize(
    ("setting", "loop_name", "new_epoll_fds"),
    [(None, "libev (epoll)", 1), ("libev", "libev (epoll)", 1), ("poll", "poll(2)", 0)],
)
async def test_each_loop_serves_clients(setting, loop_name, new_epoll_fds, monkeypatch, caplog,
                                        server_factory, client_factory) -> None:
    if setting is None:
        monkeypatch.delenv("SESSION_BUDDY_EVENT_LOOP", raising=False)
    else:
        monkeypatch.setenv("SESSION_BUDDY_EVENT_LOOP", setting)
    caplog.set_level(logging.DEBUG, logger=LOGGER)
    before = _epoll_fds()
    server = await server_factory()
    await wait_until(lambda: any(r.getMessage() == f"event loop: {loop_name}" for r in caplog.records),
                     timeout=5, message=f"the 'event loop: {loop_name}' record")
    assert _epoll_fds() - before == new_epoll_fds

    clients = await asyncio.gather(*(client_factory(server) for _ in range(3)))
    for updates in await asyncio.gather(*(recv_updates(ws, 2) for ws in clients)):
        assert updates[0]["seq"] < updates[1]["seq"]
    assert (await request(clients[0], {"type": "ping"}))["type"] == "pong"
    await clients[1].send('{"type": "subscribe", "skill_name": "pytest-run"}')
    assert (await recv_reply(clients[1]))["type"] == "subscription_confirmed"

    await server.stop()
    assert _epoll_fds() == before, "the libev loop was not destroyed with the server"


async def test_unknown_loop_name_is_refused(monkeypatch, server_factory) -> None:
    monkeypatch.setenv("SESSION_BUDDY_EVENT_LOOP", "select")
    server = await server_factory(start=False)
    with pytest.raises(ValueError, match="SESSION_BUDDY_EVENT_LOOP must be 'libev' or 'poll'"):
        await server.start()
    assert not server.running


async def test_sigint_still_reaches_the_host_after_start(server_factory) -> None:
    """lws would install a SIGINT watcher on a libev loop of its own making; ours is not."""
    received: list[int] = []
    previous = signal.signal(signal.SIGINT, lambda signum, _frame: received.append(signum))
    try:
        await server_factory()
        os.kill(os.getpid(), signal.SIGINT)
        await wait_until(lambda: received, timeout=5, message="the host's SIGINT handler to run")
    finally:
        signal.signal(signal.SIGINT, previous)
    assert received == [signal.SIGINT]
