"""A real loopback TCP proxy whose connections a test can cut, to drop a client's connection
from the network's side while the server and the client both keep running.

    proxy = await TcpProxy(server.port).start()     # listens on 127.0.0.1:proxy.port
    ...client connects to proxy.port...
    await proxy.cut()        # abort every open connection; new ones wait (the network is down)
    ...the server keeps broadcasting, the client retries...
    proxy.restore()          # the waiting connections go through, new ones too
    await proxy.close()

Bytes pass through unchanged in both directions (WebSocket frames, compressed or not, TLS).
A cut aborts both sockets of each pair, so the client sees the connection die (close 1006)
rather than a clean close. While cut, a new connection is accepted but held: it is connected
upstream only when `restore()` is called, so a retrying client waits instead of spinning
through refused attempts, and the test decides exactly when the network is back.

Everything runs on the asyncio loop that called `start()`. Imported as a plain module
(tests/conftest.py puts tests/realtime on sys.path).
"""

from __future__ import annotations

import asyncio
import contextlib

__all__ = ["TcpProxy"]

CHUNK = 65536


class TcpProxy:
    """Forward every connection accepted on 127.0.0.1:`port` to 127.0.0.1:`target_port`."""

    def __init__(self, target_port: int, *, target_host: str = "127.0.0.1") -> None:
        self.target = (target_host, target_port)
        self.accepted = 0  # connections accepted since start, held ones included
        self._listener: asyncio.Server | None = None
        self._up = asyncio.Event()
        self._up.set()
        self._pairs: set[tuple[asyncio.StreamWriter, asyncio.StreamWriter]] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self, port: int = 0) -> TcpProxy:
        self._listener = await asyncio.start_server(self._accept, "127.0.0.1", port)
        return self

    @property
    def port(self) -> int:
        assert self._listener is not None, "start() first"
        return int(self._listener.sockets[0].getsockname()[1])

    @property
    def open_connections(self) -> int:
        """Pairs currently forwarding bytes."""
        return len(self._pairs)

    @property
    def is_cut(self) -> bool:
        return not self._up.is_set()

    async def cut(self) -> int:
        """Take the network down: abort every forwarding pair, hold new connections until
        `restore()`. Returns how many pairs were aborted."""
        self._up.clear()
        pairs, self._pairs = list(self._pairs), set()
        for client, upstream in pairs:
            client.transport.abort()
            upstream.transport.abort()
        return len(pairs)

    def restore(self) -> None:
        """Bring the network back: held connections are forwarded, as are new ones."""
        self._up.set()

    async def close(self) -> None:
        """Stop listening and abort everything still open or held. Idempotent."""
        if self._listener is not None:
            self._listener.close()
            await self._listener.wait_closed()
            self._listener = None
        await self.cut()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.accepted += 1
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            await self._up.wait()
            try:
                up_reader, up_writer = await asyncio.open_connection(*self.target)
            except OSError:
                writer.transport.abort()  # the server is gone: the client sees a reset, as it would
                return
            pair = (writer, up_writer)
            self._pairs.add(pair)
            try:
                await asyncio.gather(_pump(reader, up_writer), _pump(up_reader, writer))
            finally:
                self._pairs.discard(pair)
                up_writer.close()
        finally:
            writer.close()
            self._tasks.discard(task)


async def _pump(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
    """Copy source to sink until either side ends; then close the sink (after what it still
    buffers), which ends the other direction too."""
    with contextlib.suppress(OSError):
        while chunk := await source.read(CHUNK):
            sink.write(chunk)
            await sink.drain()
    sink.close()
