"""Frames the `websockets` client will not send: invalid UTF-8, odd fragmentation, broken framing.

Uses the raw-socket client of tests/realtime/rawws.py. Whatever a client sends, the server
answers by the protocol (or closes that one connection) and everybody else carries on.
"""

from __future__ import annotations

import asyncio
import json
import socket
import struct

import pytest

from protocol_checks import assert_connected
from rawws import OP_BINARY, OP_CLOSE, OP_CONT, OP_PING, OP_PONG, OP_TEXT, RawWebSocket, encode_frame
from wsutil import recv_type, recv_updates, wait_until

PING = b'{"type":"ping"}'


@pytest.fixture
async def raw_factory():
    opened: list[RawWebSocket] = []

    async def make(server, *, consume_hello: bool = True) -> RawWebSocket:
        ws = await RawWebSocket.connect("127.0.0.1", server.port)
        opened.append(ws)
        if consume_hello:
            hello = await ws.recv_json()
            assert_connected(hello)
        return ws

    yield make
    await asyncio.gather(*(ws.aclose() for ws in opened), return_exceptions=True)


@pytest.fixture
async def bystander(server, client_factory):
    """A well-behaved client connected before the hostile one."""
    ws = await client_factory(server)
    await recv_type(ws, "metrics_update")
    return ws


async def _assert_healthy(server, client_factory, bystander) -> None:
    """The bystander keeps getting updates and a new client gets served."""
    seqs = [u["seq"] for u in await recv_updates(bystander, 2)]
    assert seqs[0] < seqs[1]
    fresh = await client_factory(server)
    await recv_type(fresh, "metrics_update")
    assert server.running is True


# ---- what the server sends -------------------------------------------------------------


async def test_server_frames_are_unmasked_text_with_one_json_object(server, raw_factory) -> None:
    ws = await raw_factory(server, consume_hello=False)
    frame = await ws.read_frame()
    assert frame is not None
    assert frame.opcode == OP_TEXT
    assert frame.masked is False
    assert frame.rsv == 0
    assert json.loads(frame.payload.decode("utf-8"))["type"] == "connected"


async def test_ws_ping_control_frame_gets_pong_with_same_payload(server, raw_factory) -> None:
    ws = await raw_factory(server)
    await ws.send_frame(OP_PING, b"are-you-there")
    while True:
        frame = await ws.read_frame()
        assert frame is not None and frame.opcode != OP_CLOSE
        if frame.opcode == OP_PONG:
            assert frame.payload == b"are-you-there"
            break


async def test_client_close_is_echoed_and_the_client_leaves(server, raw_factory) -> None:
    ws = await raw_factory(server)
    await wait_until(lambda: len(server.clients) == 1, message="the raw client listed")
    await ws.send_frame(OP_CLOSE, struct.pack("!H", 1000) + b"bye")
    code, got_frame = await ws.read_close()
    assert got_frame and code == 1000
    await wait_until(lambda: len(server.clients) == 0, message="the raw client to leave")


# ---- UTF-8 -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "bad",
    [b"\xff\xfe", b"\xc0\xaf", b"\xed\xa0\x80", b"\xf4\x90\x80\x80", b"\xc3(", b"\xe2\x82"],
    ids=["ff-fe", "overlong", "surrogate", "above-max", "truncated-2", "truncated-3"],
)
async def test_invalid_utf8_in_text_frame_closes_1007(server, raw_factory, client_factory,
                                                      bystander, bad) -> None:
    ws = await raw_factory(server)
    await ws.send_text(b'{"type":"ping","x":"' + bad + b'"}')
    code, got_frame = await ws.read_close()
    assert got_frame, "no close frame, only EOF"
    assert code == 1007
    await _assert_healthy(server, client_factory, bystander)


async def test_invalid_utf8_in_a_later_fragment_closes_1007(server, raw_factory) -> None:
    ws = await raw_factory(server)
    await ws.send_fragments([b'{"type":"ping",', b'"x":"\xc3', b'("}'])
    code, got_frame = await ws.read_close()
    assert got_frame and code == 1007


async def test_multibyte_characters_split_across_fragments_are_fine(server, raw_factory) -> None:
    ws = await raw_factory(server)
    # "é" (c3 a9) and "☃" (e2 98 83) each cut in the middle.
    await ws.send_fragments([b'{"type":"ping","x":"\xc3', b'\xa9\xe2\x98', b'\x83"}'])
    reply = await ws.recv_reply()
    assert reply["type"] == "pong"


async def test_unknown_skill_name_with_unicode_is_echoed_intact(server, raw_factory) -> None:
    ws = await raw_factory(server)
    await ws.send_text('{"type":"get_metrics","skill_name":"snow☃man \\u00e9"}')
    reply = await ws.recv_reply()
    assert reply["type"] == "error"
    assert reply["code"] == "unknown_skill"
    assert reply["message"] == "Invalid skill name: snow☃man é"


async def test_invalid_utf8_in_binary_frame_does_not_hurt_the_server(server, raw_factory,
                                                                     client_factory, bystander) -> None:
    """Not specified beyond 'binary frames holding UTF-8 JSON are accepted': either an
    invalid_json error (connection kept) or a close 1007 is acceptable."""
    ws = await raw_factory(server)
    await ws.send_binary(b'{"type":"ping","x":"\xff"}')
    msg = await ws.recv_message()
    if msg is not None:
        reply = json.loads(msg[1].decode("utf-8"))
        while reply.get("type") == "metrics_update":
            reply = await ws.recv_json()
        assert reply["type"] == "error" and reply["code"] == "invalid_json", reply
    await _assert_healthy(server, client_factory, bystander)


# ---- fragmentation and framing --------------------------------------------------------------


async def test_raw_fragmented_text_message(server, raw_factory) -> None:
    ws = await raw_factory(server)
    await ws.send_fragments([b'{"ty', b'pe":"pi', b'ng"}'])
    assert (await ws.recv_reply())["type"] == "pong"


async def test_raw_fragmented_binary_message(server, raw_factory) -> None:
    ws = await raw_factory(server)
    await ws.send_fragments([b'{"type":', b'"ping"}'], opcode=OP_BINARY)
    assert (await ws.recv_reply())["type"] == "pong"


async def test_control_frame_between_fragments(server, raw_factory) -> None:
    ws = await raw_factory(server)
    await ws.send_frame(OP_TEXT, b'{"type":', fin=False)
    await ws.send_frame(OP_PING, b"mid")
    await ws.send_frame(OP_CONT, b'"ping"}', fin=True)
    got_pong_frame = False
    while True:
        frame = await ws.read_frame()
        assert frame is not None and frame.opcode != OP_CLOSE
        if frame.opcode == OP_PONG:
            got_pong_frame = True
        elif frame.opcode == OP_TEXT and json.loads(frame.payload)["type"] == "pong":
            break
    assert got_pong_frame


async def test_many_empty_fragments(server, raw_factory) -> None:
    ws = await raw_factory(server)
    parts = [b""] * 20 + [PING] + [b""] * 20
    await ws.send_fragments(parts)
    assert (await ws.recv_reply())["type"] == "pong"


async def test_two_messages_in_one_tcp_write(server, raw_factory) -> None:
    ws = await raw_factory(server)
    await ws.send_raw(encode_frame(OP_TEXT, PING) + encode_frame(OP_TEXT, PING))
    assert (await ws.recv_reply())["type"] == "pong"
    assert (await ws.recv_reply())["type"] == "pong"


async def test_frame_written_one_byte_at_a_time(server, raw_factory) -> None:
    ws = await raw_factory(server)
    for byte in encode_frame(OP_TEXT, PING):
        await ws.send_raw(bytes([byte]))
    assert (await ws.recv_reply())["type"] == "pong"


async def test_huge_declared_length_is_not_trusted(server_factory, raw_factory, client_factory) -> None:
    """A header claiming 1 TiB must not make the server allocate it or wait for it."""
    server = await server_factory(max_message_size=1024)
    bystander = await client_factory(server)
    ws = await raw_factory(server)
    try:  # 16 KiB: well over the limit, and small enough to fit in the socket buffers
        await asyncio.wait_for(
            ws.send_raw(encode_frame(OP_TEXT, b"x" * 16384, declared_length=1 << 40)), 10)
    except ConnectionError:
        pass  # the server may already have closed
    code, got_frame = await ws.read_close()
    assert not got_frame or code == 1009, f"close code {code}"
    await _assert_healthy(server, client_factory, bystander)


async def _closed_or_still_usable(ws: RawWebSocket) -> bool:
    """After a protocol violation: True if the server closed the connection, False if it
    still answers a ping. Hanging, or answering garbage, fails the test."""
    try:
        await ws.send_text(PING)
    except ConnectionError:
        return True
    while True:
        frame = await ws.read_frame(timeout=10)
        if frame is None or frame.opcode == OP_CLOSE:
            ws.close()  # hang up, as a client does once the server has closed
            return True
        if frame.opcode == OP_TEXT and frame.fin:
            msg = json.loads(frame.payload.decode("utf-8"))
            if msg["type"] == "metrics_update":
                continue
            assert msg["type"] in ("pong", "error"), msg
            if msg["type"] == "pong":
                return False


@pytest.mark.parametrize(
    "data",
    [
        b"GARBAGE\r\n" * 8,
        encode_frame(OP_TEXT, PING, mask=False),
        encode_frame(0x3, PING),
        encode_frame(0xB, b"x"),
        encode_frame(OP_CONT, PING),
        encode_frame(OP_TEXT, PING, rsv=0b100),
        encode_frame(OP_PING, b"x" * 200),
        encode_frame(OP_PING, b"x", fin=False),
        encode_frame(OP_CLOSE, b"\x03"),
        encode_frame(OP_TEXT, b'{"ty', fin=False) + encode_frame(OP_TEXT, PING),
    ],
    ids=["garbage", "unmasked", "reserved-data-opcode", "reserved-control-opcode",
         "orphan-continuation", "rsv1-without-extension", "control-over-125",
         "fragmented-control", "close-1-byte-payload", "new-message-inside-fragmented"],
)
async def test_protocol_violations_hurt_only_that_connection(server, raw_factory, client_factory,
                                                             bystander, data) -> None:
    """RFC 6455 says to fail such connections; lws may tolerate some. Either way the server
    must neither hang that connection nor disturb anybody else."""
    ws = await raw_factory(server)
    try:
        await ws.send_raw(data)
    except ConnectionError:
        pass
    closed = await _closed_or_still_usable(ws)
    expected_clients = 1 if closed else 2
    await wait_until(lambda: len(server.clients) == expected_clients,
                     message=f"{expected_clients} clients listed")
    await _assert_healthy(server, client_factory, bystander)


async def test_truncated_frame_then_hangup(server, raw_factory, client_factory, bystander) -> None:
    ws = await raw_factory(server)
    frame = encode_frame(OP_TEXT, PING)
    await ws.send_raw(frame[: len(frame) // 2])
    await ws.aclose()
    await wait_until(lambda: len(server.clients) == 1, message="the hung-up client to leave")
    await _assert_healthy(server, client_factory, bystander)


@pytest.mark.parametrize("how", ["fin", "rst"])
async def test_hangup_without_close_frame(server, raw_factory, client_factory, bystander, how) -> None:
    ws = await raw_factory(server)
    await wait_until(lambda: len(server.clients) == 2, message="both clients listed")
    if how == "rst":
        sock = ws.writer.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    await ws.aclose()
    await wait_until(lambda: len(server.clients) == 1, message="the hung-up client to leave")
    await _assert_healthy(server, client_factory, bystander)


async def test_tcp_connection_that_never_handshakes(server, client_factory, bystander) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    try:
        writer.write(b"GET / HTTP/1.1\r\nHost: x\r\n")  # headers never finish
        await writer.drain()
        assert len(server.clients) == 1
        await _assert_healthy(server, client_factory, bystander)
    finally:
        writer.close()
