"""The test helper tcp_proxy.TcpProxy, on real loopback sockets: it forwards bytes both ways,
a cut drops every open connection, and a connection made while cut waits for restore()."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from tcp_proxy import TcpProxy

TIMEOUT = 10.0


@pytest.fixture
async def echo_port() -> AsyncIterator[int]:
    async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
        writer.close()

    server = await asyncio.start_server(echo, "127.0.0.1", 0)
    yield server.sockets[0].getsockname()[1]
    server.close()
    await server.wait_closed()


@pytest.fixture
async def proxy(echo_port: int) -> AsyncIterator[TcpProxy]:
    p = await TcpProxy(echo_port).start()
    yield p
    await p.close()


async def roundtrip(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, data: bytes) -> bytes:
    writer.write(data)
    await writer.drain()
    return await asyncio.wait_for(reader.readexactly(len(data)), TIMEOUT)


async def test_bytes_pass_both_ways_unchanged(proxy: TcpProxy) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
    payload = bytes(range(256)) * 1024  # larger than one read, every byte value
    assert await roundtrip(reader, writer, payload) == payload
    assert proxy.open_connections == 1
    writer.close()
    await writer.wait_closed()


async def test_a_cut_drops_open_connections_and_holds_new_ones_until_restore(proxy: TcpProxy) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
    assert await roundtrip(reader, writer, b"before") == b"before"

    assert await proxy.cut() == 1
    assert proxy.is_cut
    with pytest.raises((ConnectionError, asyncio.IncompleteReadError)):
        await roundtrip(reader, writer, b"lost")  # the kernel reports the drop as EOF or reset
    writer.close()

    held_reader, held_writer = await asyncio.open_connection("127.0.0.1", proxy.port)
    held_writer.write(b"waiting")
    await held_writer.drain()
    read = asyncio.ensure_future(held_reader.readexactly(7))
    done, _ = await asyncio.wait({read}, timeout=0.3)
    assert not done and proxy.accepted == 2 and proxy.open_connections == 0  # nothing went through

    proxy.restore()
    assert await asyncio.wait_for(read, TIMEOUT) == b"waiting"  # what it sent while held arrives
    assert await roundtrip(held_reader, held_writer, b"after") == b"after"
    held_writer.close()
    await held_writer.wait_closed()
