"""A deliberately minimal raw-socket WebSocket client for hostile-frame tests.

The `websockets` library refuses to send invalid UTF-8, odd fragmentations or
malformed frames. This client does the HTTP upgrade by hand (RFC 6455 section 4)
and then writes exactly the frames a test asks for.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import os
import struct
from dataclasses import dataclass
from typing import Any

__all__ = [
    "OP_BINARY",
    "OP_CLOSE",
    "OP_CONT",
    "OP_PING",
    "OP_PONG",
    "OP_TEXT",
    "Frame",
    "RawWebSocket",
    "encode_frame",
]

OP_CONT, OP_TEXT, OP_BINARY = 0x0, 0x1, 0x2
OP_CLOSE, OP_PING, OP_PONG = 0x8, 0x9, 0xA

_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


@dataclass
class Frame:
    fin: bool
    opcode: int
    payload: bytes
    masked: bool = False
    rsv: int = 0

    @property
    def close_code(self) -> int | None:
        if self.opcode != OP_CLOSE or len(self.payload) < 2:
            return None
        return struct.unpack("!H", self.payload[:2])[0]


def encode_frame(
    opcode: int,
    payload: bytes,
    *,
    fin: bool = True,
    mask: bool = True,
    rsv: int = 0,
    declared_length: int | None = None,
) -> bytes:
    """One frame. `declared_length` lets a test lie about the payload length."""
    length = len(payload) if declared_length is None else declared_length
    head = bytearray([(0x80 if fin else 0) | ((rsv & 7) << 4) | (opcode & 0xF)])
    mask_bit = 0x80 if mask else 0
    if length < 126:
        head.append(mask_bit | length)
    elif length < 1 << 16:
        head.append(mask_bit | 126)
        head += struct.pack("!H", length)
    else:
        head.append(mask_bit | 127)
        head += struct.pack("!Q", length)
    if not mask:
        return bytes(head) + payload
    key = os.urandom(4)
    masked = bytes(b ^ key[i % 4] for i, b in enumerate(payload))
    return bytes(head) + key + masked


class RawWebSocket:
    """One client connection over asyncio streams. Create with `await RawWebSocket.connect(...)`."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                 status: int, headers: dict[str, str]) -> None:
        self.reader = reader
        self.writer = writer
        self.status = status
        self.headers = headers

    @classmethod
    async def connect(
        cls,
        host: str,
        port: int,
        path: str = "/",
        extra_headers: dict[str, str] | None = None,
        timeout: float = 10.0,
    ) -> RawWebSocket:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout)
        key = base64.b64encode(os.urandom(16)).decode()
        lines = [
            f"GET {path} HTTP/1.1",
            f"Host: {host}:{port}",
            "Upgrade: websocket",
            "Connection: Upgrade",
            f"Sec-WebSocket-Key: {key}",
            "Sec-WebSocket-Version: 13",
        ]
        lines += [f"{k}: {v}" for k, v in (extra_headers or {}).items()]
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode())
        await writer.drain()
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout)
        status_line, *header_lines = head.decode("latin-1").split("\r\n")
        status = int(status_line.split()[1])
        headers = {}
        for line in header_lines:
            if ":" in line:
                name, value = line.split(":", 1)
                headers[name.strip().lower()] = value.strip()
        ws = cls(reader, writer, status, headers)
        if status != 101:
            ws.close()
            raise ConnectionError(f"handshake refused: {status_line}")
        expected = base64.b64encode(hashlib.sha1(key.encode() + _GUID).digest()).decode()
        if headers.get("sec-websocket-accept") != expected:
            ws.close()
            raise ConnectionError("bad Sec-WebSocket-Accept in the handshake reply")
        return ws

    # ---- sending -----------------------------------------------------------

    async def send_raw(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def send_frame(self, opcode: int, payload: bytes, **kwargs: Any) -> None:
        await self.send_raw(encode_frame(opcode, payload, **kwargs))

    async def send_text(self, payload: str | bytes) -> None:
        """A single text frame; bytes are sent verbatim, valid UTF-8 or not."""
        if isinstance(payload, str):
            payload = payload.encode()
        await self.send_frame(OP_TEXT, payload)

    async def send_binary(self, payload: bytes) -> None:
        await self.send_frame(OP_BINARY, payload)

    async def send_fragments(self, parts: list[bytes], opcode: int = OP_TEXT) -> None:
        """One message split into len(parts) frames: first `opcode`, then continuations."""
        for i, part in enumerate(parts):
            await self.send_frame(opcode if i == 0 else OP_CONT, part, fin=i == len(parts) - 1)

    async def send_json(self, obj: Any) -> None:
        await self.send_text(json.dumps(obj))

    # ---- receiving ---------------------------------------------------------

    async def read_frame(self, timeout: float = 10.0) -> Frame | None:
        """The next frame from the server, or None on EOF."""
        try:
            return await asyncio.wait_for(self._read_frame(), timeout)
        except (asyncio.IncompleteReadError, ConnectionError):
            return None

    async def _read_frame(self) -> Frame:
        b0, b1 = await self.reader.readexactly(2)
        length = b1 & 0x7F
        if length == 126:
            (length,) = struct.unpack("!H", await self.reader.readexactly(2))
        elif length == 127:
            (length,) = struct.unpack("!Q", await self.reader.readexactly(8))
        key = await self.reader.readexactly(4) if b1 & 0x80 else None
        payload = await self.reader.readexactly(length)
        if key is not None:
            payload = bytes(b ^ key[i % 4] for i, b in enumerate(payload))
        return Frame(bool(b0 & 0x80), b0 & 0x0F, payload, key is not None, (b0 >> 4) & 7)

    async def recv_message(self, timeout: float = 10.0) -> tuple[int, bytes] | None:
        """Next whole data message as (opcode, payload); pings are answered. None on close/EOF."""
        parts: list[bytes] = []
        opcode = None
        while True:
            frame = await self.read_frame(timeout)
            if frame is None or frame.opcode == OP_CLOSE:
                return None
            if frame.opcode == OP_PING:
                await self.send_frame(OP_PONG, frame.payload)
                continue
            if frame.opcode == OP_PONG:
                continue
            if frame.opcode != OP_CONT:
                opcode = frame.opcode
            parts.append(frame.payload)
            if frame.fin:
                assert opcode is not None
                return opcode, b"".join(parts)

    async def recv_json(self, timeout: float = 10.0) -> dict[str, Any]:
        msg = await self.recv_message(timeout)
        assert msg is not None, "connection closed while waiting for a message"
        return json.loads(msg[1].decode("utf-8"))

    async def recv_reply(self, timeout: float = 10.0) -> dict[str, Any]:
        """Next message that is not a metrics_update."""
        while True:
            msg = await self.recv_json(timeout)
            if msg.get("type") != "metrics_update":
                return msg

    async def read_close(self, timeout: float = 10.0, hang_up: bool = True) -> tuple[int | None, bool]:
        """Skip data until the server closes. Returns (close code or None, got_close_frame).

        After a close frame it echoes the close and, with `hang_up`, closes the TCP connection
        as a client does once the closing handshake is over."""
        while True:
            frame = await self.read_frame(timeout)
            if frame is None:
                return None, False
            if frame.opcode == OP_PING:
                try:
                    await self.send_frame(OP_PONG, frame.payload)
                except ConnectionError:
                    pass
            if frame.opcode == OP_CLOSE:
                code = frame.close_code
                try:  # echo the close, as a well-behaved client would
                    await self.send_frame(OP_CLOSE, frame.payload[:2])
                except ConnectionError:
                    pass
                if hang_up:
                    self.close()
                return code, True

    async def wait_eof(self, timeout: float = 10.0) -> bool:
        """True once the server has closed the TCP connection (any unread data is dropped)."""
        try:
            while await asyncio.wait_for(self.reader.read(65536), timeout):
                pass
        except ConnectionError:
            pass
        return True

    def close(self) -> None:
        if not self.writer.is_closing():
            self.writer.close()

    async def aclose(self) -> None:
        self.close()
        try:
            await asyncio.wait_for(self.writer.wait_closed(), 5)
        except (ConnectionError, asyncio.TimeoutError, TimeoutError):
            pass

    async def __aenter__(self) -> RawWebSocket:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()
