"""permessage-deflate (SPEC section 8) over real sockets: what is negotiated, that every kind of
client decodes the shared compressed frames, that no connection keeps a zlib stream, and that
bad compressed input closes only the connection that sent it."""

from __future__ import annotations

import asyncio
import json
import shutil
import ssl
import zlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.client import connect
from websockets.extensions.permessage_deflate import ClientPerMessageDeflateFactory, PerMessageDeflate

from rawws import OP_CONT, OP_PONG, OP_TEXT, RawWebSocket
from skills_seed import create_db, store_invocation, utc_now
from wsutil import CONNECT_KWARGS, expect_close, recv_type, recv_updates, request, wait_until

TAIL = b"\x00\x00\xff\xff"  # what RFC 7692 has the sender drop from a sync flush
SKILL = "mypy"
NODE = shutil.which("node")


@pytest.fixture
async def wide_server(server_factory, tmp_path) -> Any:
    """A server whose updates repeat 1,000 random characters about 1,400 bytes apart: a frame
    compressed with a 15-bit window refers that far back, one within 9 or 10 bits cannot, so
    decoding with the agreed window catches a frame compressed with a larger one."""
    import random

    db = create_db(tmp_path / "wide" / "skills.db")
    prefix = "".join(random.Random(7).choice("abcdefghijklmnopqrstuvwxyz") for _ in range(1000))
    for i in range(8):
        store_invocation(db, f"{prefix}-{i}", utc_now())
    return await server_factory(db_path=db)


def zlib_streams() -> int:
    from session_buddy.realtime import _core

    return _core.zlib_streams()


def deflate(data: bytes, wbits: int = 15) -> bytes:
    """One message as a client compresses it: raw deflate, sync flush, tail dropped."""
    c = zlib.compressobj(6, zlib.DEFLATED, -wbits)
    out = c.compress(data) + c.flush(zlib.Z_SYNC_FLUSH)
    assert out.endswith(TAIL)
    return out[:-4]


def inflate(payload: bytes, wbits: int = 15) -> bytes:
    return zlib.decompressobj(-wbits).decompress(payload + TAIL)


def inflate_within(payload: bytes, wbits: int) -> bytes:
    """Inflate as a receiver that keeps only a 2**wbits window: output in 16-byte pieces, so a
    reference further back than the window fails ("invalid distance too far back").  (With one
    large output buffer zlib resolves it from the output, and the check would not bite.)"""
    d = zlib.decompressobj(-wbits)
    out, data = [], payload + TAIL
    while data:
        out.append(d.decompress(data, 16))
        data = d.unconsumed_tail
    return b"".join(out)


def pmd(ws: Any) -> PerMessageDeflate | None:
    return next((e for e in ws.protocol.extensions if isinstance(e, PerMessageDeflate)), None)


def extensions_reply(ws: Any) -> str | None:
    return ws.response.headers.get("Sec-WebSocket-Extensions")


class Reference:
    """A plain (uncompressed) client per subscription, recording every update by seq: what
    each compressed client must decode to."""

    def __init__(self) -> None:
        self.by_seq: dict[str | None, dict[int, dict]] = {}
        self.tasks: list[asyncio.Task] = []

    async def watch(self, url: str, skill: str | None, **kwargs: Any) -> None:
        ws = await connect(url, compression=None, **CONNECT_KWARGS, **kwargs)
        assert json.loads(await ws.recv())["type"] == "connected"
        if skill is not None:
            assert (await request(ws, {"type": "subscribe", "skill_name": skill}))["type"] == "subscription_confirmed"
        seen = self.by_seq.setdefault(skill, {})

        async def read() -> None:
            async with ws:
                async for raw in ws:
                    msg = json.loads(raw)
                    if msg["type"] == "metrics_update":
                        seen[msg["seq"]] = msg

        self.tasks.append(asyncio.create_task(read()))

    async def check(self, update: dict, skill: str | None = None) -> None:
        seen = self.by_seq[skill]
        await wait_until(lambda: update["seq"] in seen, message=f"the plain client's update {update['seq']}")
        assert update == seen[update["seq"]]

    async def close(self) -> None:
        for t in self.tasks:
            t.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)


@pytest.fixture
async def reference() -> AsyncIterator[Reference]:
    ref = Reference()
    yield ref
    await ref.close()


async def raw_client(server: Any, offer: str | None = "permessage-deflate") -> RawWebSocket:
    headers = {"Sec-WebSocket-Extensions": offer} if offer else {}
    ws = await RawWebSocket.connect("127.0.0.1", server.port, extra_headers=headers)
    hello = await ws.read_frame()
    assert hello is not None and hello.rsv == 0 and json.loads(hello.payload)["type"] == "connected"
    return ws


async def raw_update(ws: RawWebSocket) -> tuple[int, bytes]:
    """(RSV bits, payload) of the next metrics_update frame, replies skipped."""
    while True:
        frame = await ws.read_frame()
        assert frame is not None, "closed while waiting for an update"
        data = inflate(frame.payload) if frame.rsv & 4 else frame.payload
        if json.loads(data)["type"] == "metrics_update":
            return frame.rsv, frame.payload


# ---- negotiation -------------------------------------------------------------------------


async def test_default_client_gets_no_context_takeover_and_decodes(server, reference) -> None:
    await reference.watch(server.url, None)
    async with connect(server.url, **CONNECT_KWARGS) as ws:  # websockets' default: deflate
        assert extensions_reply(ws) == (
            "permessage-deflate; server_no_context_takeover; client_no_context_takeover")
        ext = pmd(ws)
        assert ext is not None and ext.local_no_context_takeover and ext.remote_no_context_takeover
        assert json.loads(await ws.recv())["type"] == "connected"
        for update in await recv_updates(ws, 2):
            assert update["data"]["top_skills"]
            await reference.check(update)
        # websockets compresses what it sends: the server inflates it, message by message.
        for size in (10, 20000):
            reply = await request(ws, {"type": "ping", "padding": "y" * size})
            assert reply["type"] == "pong"


async def test_no_extension_when_the_client_does_not_offer_it(server) -> None:
    async with connect(server.url, compression=None, **CONNECT_KWARGS) as ws:
        assert ws.protocol.extensions == [] and extensions_reply(ws) is None
        assert json.loads(await ws.recv())["type"] == "connected"
        assert (await recv_type(ws, "metrics_update"))["data"]["top_skills"]


@pytest.mark.parametrize(
    ("factory", "reply_window"),
    [
        (ClientPerMessageDeflateFactory(server_max_window_bits=9), 9),
        (ClientPerMessageDeflateFactory(server_max_window_bits=10), 10),
        (ClientPerMessageDeflateFactory(server_max_window_bits=14), 14),
        (ClientPerMessageDeflateFactory(client_max_window_bits=9), None),
        (ClientPerMessageDeflateFactory(client_max_window_bits=True), None),
        (ClientPerMessageDeflateFactory(server_max_window_bits=11, client_max_window_bits=9), 11),
    ],
    ids=["server9", "server10", "server14", "client9", "client-any", "server11-client9"],
)
async def test_window_limits_are_honoured(wide_server, reference, factory, reply_window) -> None:
    """A client that limits the server's window decodes with that window only: a frame
    compressed with a larger one would fail to inflate ("invalid distance too far back")."""
    server = wide_server
    await reference.watch(server.url, None)
    async with connect(server.url, compression=None, extensions=[factory], **CONNECT_KWARGS) as ws:
        reply = extensions_reply(ws)
        assert reply is not None and reply.startswith("permessage-deflate; ")
        ext = pmd(ws)
        assert ext is not None
        if reply_window is not None:
            assert f"server_max_window_bits={reply_window}" in reply
            assert ext.remote_max_window_bits == reply_window
        else:
            assert "server_max_window_bits" not in reply
        assert json.loads(await ws.recv())["type"] == "connected"
        for update in await recv_updates(ws, 2):
            await reference.check(update)
        assert (await request(ws, {"type": "ping", "padding": "z" * 5000}))["type"] == "pong"


async def test_frames_are_compressed_within_the_window_asked_for(wide_server) -> None:
    """On the wire: RSV1 set, and the payload inflates with exactly the agreed window."""
    server = wide_server
    plain = await raw_client(server, None)
    small = await raw_client(server, "permessage-deflate; server_max_window_bits=9")
    full = await raw_client(server, "permessage-deflate")
    try:
        assert "server_max_window_bits=9" in small.headers["sec-websocket-extensions"]
        rsv, text = await raw_update(plain)
        assert rsv == 0 and len(text) > 8 * 1000
        rsv, payload = await raw_update(small)
        assert rsv == 4 and json.loads(inflate_within(payload, 9))["type"] == "metrics_update"
        rsv, payload = await raw_update(full)
        assert rsv == 4 and len(payload) < len(text) * 0.5
        with pytest.raises(zlib.error):  # what the window-9 client is spared
            inflate_within(payload, 9)
    finally:
        for ws in (plain, small, full):
            await ws.aclose()


async def test_clients_of_one_group_get_the_same_frame_bytes(server) -> None:
    a, b = await raw_client(server), await raw_client(server)
    try:
        frames = [await raw_update(a), await raw_update(b)]
        while json.loads(inflate(frames[0][1]))["seq"] != json.loads(inflate(frames[1][1]))["seq"]:
            i = 0 if json.loads(inflate(frames[0][1]))["seq"] < json.loads(inflate(frames[1][1]))["seq"] else 1
            frames[i] = await raw_update((a, b)[i])
        assert frames[0] == frames[1]
    finally:
        await a.aclose()
        await b.aclose()


@pytest.mark.parametrize(
    "offer",
    [
        "permessage-deflate; server_max_window_bits=8",   # zlib cannot compress within 8 bits
        "permessage-deflate; server_max_window_bits",     # a value is required
        "permessage-deflate; server_max_window_bits=16",
        "permessage-deflate; client_max_window_bits=7",
        "permessage-deflate; x_unknown_parameter",
        "permessage-deflate; server_no_context_takeover; server_no_context_takeover",
    ],
)
async def test_offers_that_cannot_be_honoured_fall_back_to_plain_frames(server, offer) -> None:
    ws = await raw_client(server, offer)
    try:
        assert "sec-websocket-extensions" not in ws.headers
        rsv, text = await raw_update(ws)
        assert rsv == 0 and json.loads(text)["type"] == "metrics_update"
    finally:
        await ws.aclose()


async def test_a_second_offer_is_taken_when_the_first_cannot_be(server) -> None:
    ws = await raw_client(server, "permessage-deflate; server_max_window_bits=8, permessage-deflate")
    try:
        assert ws.headers["sec-websocket-extensions"].startswith("permessage-deflate; ")
        rsv, payload = await raw_update(ws)
        assert rsv == 4 and json.loads(inflate(payload))["type"] == "metrics_update"
    finally:
        await ws.aclose()


async def test_websockets_client_asking_for_8_bits_goes_uncompressed(server) -> None:
    factory = ClientPerMessageDeflateFactory(server_max_window_bits=8)
    async with connect(server.url, compression=None, extensions=[factory], **CONNECT_KWARGS) as ws:
        assert ws.protocol.extensions == []
        assert json.loads(await ws.recv())["type"] == "connected"
        assert (await recv_type(ws, "metrics_update"))["data"]["top_skills"]


# ---- every kind of client in one server ----------------------------------------------------




@pytest.mark.parametrize("tls", [False, True], ids=["ws", "wss"])
async def test_plain_deflate_per_skill_and_tls_clients_decode_the_same_updates(
        server_factory, reference, cert, tls) -> None:
    kwargs: dict[str, Any] = {}
    if tls:
        server = await server_factory(host="127.0.0.1", ssl_certfile=cert[0], ssl_keyfile=cert[1],
                                      update_interval=0.3)
        kwargs["ssl"] = ssl.create_default_context(cafile=str(cert[0]))
    else:
        server = await server_factory(update_interval=0.3)
    await reference.watch(server.url, None, **kwargs)
    await reference.watch(server.url, SKILL, **kwargs)
    kinds = [
        (None, {}),
        (None, {"compression": None, "extensions": [ClientPerMessageDeflateFactory(server_max_window_bits=10)]}),
        (None, {"compression": None, "extensions": [ClientPerMessageDeflateFactory(server_max_window_bits=12)]}),
        (SKILL, {}),
        (SKILL, {"compression": None, "extensions": [ClientPerMessageDeflateFactory(server_max_window_bits=9)]}),
    ]
    clients = []
    try:
        for skill, extra in kinds:
            ws = await connect(server.url, **CONNECT_KWARGS, **kwargs, **extra)
            clients.append((skill, ws))
            assert pmd(ws) is not None
            assert json.loads(await ws.recv())["type"] == "connected"
            if skill is not None:
                await request(ws, {"type": "subscribe", "skill_name": skill})
        for skill, ws in clients:
            for update in await recv_updates(ws, 3):
                if skill is not None:
                    assert [e["skill_name"] for e in update["data"]["top_skills"]] == [skill]
                await reference.check(update, skill)
    finally:
        for _, ws in clients:
            await ws.close()


@pytest.mark.skipif(NODE is None, reason="node is not installed")
async def test_node_ws_with_per_message_deflate_decodes(server, reference, tmp_path) -> None:
    await reference.watch(server.url, None)
    script = tmp_path / "deflate_client.js"
    script.write_text(r"""
let WebSocket;
try { WebSocket = require("ws"); } catch (e) { WebSocket = require("/usr/share/nodejs/ws"); }
const ws = new WebSocket(process.argv[2], { perMessageDeflate: true });
const updates = [];
let pong = false;
ws.on("message", (data) => {
  const m = JSON.parse(data.toString());
  // Over ws's 1 KiB threshold, so this one goes out compressed.
  if (m.type === "connected") ws.send(JSON.stringify({ type: "ping", padding: "n".repeat(5000) }));
  if (m.type === "pong") pong = true;
  if (m.type === "metrics_update") updates.push(m);
  if (pong && updates.length >= 2) {
    console.log(JSON.stringify({ extensions: ws.extensions, updates }));
    ws.close();
  }
});
ws.on("error", (e) => { console.error(e.message); process.exit(1); });
""")
    proc = await asyncio.create_subprocess_exec(
        NODE, str(script), server.url, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), 30)
    if proc.returncode and b"Cannot find module" in err:
        pytest.skip("the Node 'ws' package is not installed (apt install node-ws)")
    assert proc.returncode == 0, err.decode()
    result = json.loads(out)
    assert result["extensions"].startswith("permessage-deflate")
    for update in result["updates"]:
        await reference.check(update)


# ---- memory: no zlib stream belongs to a connection ---------------------------------------


async def test_no_connection_keeps_a_zlib_stream(server_factory) -> None:
    """40 compressing clients that have sent and received compressed messages hold no zlib
    stream between messages: the server has one deflater per window size in use, that is all."""
    server = await server_factory()
    assert zlib_streams() == 0
    full = [await connect(server.url, **CONNECT_KWARGS) for _ in range(30)]
    small = [await connect(server.url, compression=None, **CONNECT_KWARGS,
                           extensions=[ClientPerMessageDeflateFactory(server_max_window_bits=10)])
             for _ in range(10)]
    try:
        for ws in full + small:
            assert json.loads(await ws.recv())["type"] == "connected"
        for ws in full + small:
            assert (await request(ws, {"type": "ping", "padding": "p" * 3000}))["type"] == "pong"
            await recv_type(ws, "metrics_update")
        await wait_until(lambda: zlib_streams() == 2, message="two shared deflaters and nothing else")
        for ws in full + small:  # a few more ticks change nothing
            await recv_updates(ws, 2)
        assert zlib_streams() == 2
    finally:
        for ws in full + small:
            await ws.close()
    await server.stop()
    assert zlib_streams() == 0


async def test_an_inflater_lives_only_while_a_message_arrives(server) -> None:
    ws = await raw_client(server)
    try:
        await raw_update(ws)  # the shared deflater exists from here on
        base = zlib_streams()
        body = deflate(json.dumps({"type": "ping", "padding": "q" * 4000}).encode())
        await ws.send_frame(OP_TEXT, body[:50], fin=False, rsv=4)
        await wait_until(lambda: zlib_streams() == base + 1, message="the message's inflater")
        await ws.send_frame(OP_PONG, b"between fragments")  # a control frame is not inflated
        await ws.send_frame(OP_CONT, body[50:], fin=True)
        assert (await ws.recv_reply())["type"] == "pong"
        assert zlib_streams() == base
    finally:
        await ws.aclose()


# ---- bad input ------------------------------------------------------------------------------


async def test_compressed_message_over_the_limit_closes_1009(server_factory) -> None:
    """5,000 bytes inflate from a few dozen: the limit applies to the inflated message."""
    server = await server_factory(max_message_size=4096)
    async with connect(server.url, close_timeout=2, **CONNECT_KWARGS) as ws:
        await ws.recv()
        await ws.send("x" * 5000)
        assert await expect_close(ws) == 1009


async def test_a_deflate_bomb_closes_1009_and_frees_its_inflater(server) -> None:
    """64 MiB of spaces in 64 KiB: inflating stops at max_message_size."""
    bystander = await raw_client(server)
    bomb = await raw_client(server)
    try:
        payload = deflate(b'{"type":"ping","padding":"' + b" " * (64 << 20) + b'"}')
        assert len(payload) < 70_000
        await bomb.send_frame(OP_TEXT, payload, rsv=4)
        code, _ = await bomb.read_close()
        assert code == 1009
        await raw_update(bystander)
        await wait_until(lambda: zlib_streams() == 1, message="the bomb's inflater freed")
    finally:
        await bomb.aclose()
        await bystander.aclose()


@pytest.mark.parametrize(
    ("payload", "code"),
    [
        (b"\xff" * 64, 1007),                                  # a reserved block type
        (deflate(b'{"type":"ping","x":"\xff\xfe"}'), 1007),    # inflates, but not to UTF-8
    ],
    ids=["not-deflate", "not-utf8"],
)
async def test_bad_compressed_data_closes_only_that_connection(server, payload, code) -> None:
    bystander = await raw_client(server)
    bad = await raw_client(server)
    try:
        await bad.send_frame(OP_TEXT, payload, rsv=4)
        assert (await bad.read_close())[0] == code
        rsv, frame = await raw_update(bystander)
        assert json.loads(inflate(frame))["type"] == "metrics_update"
        await wait_until(lambda: zlib_streams() == 1, message="no inflater left")
    finally:
        await bad.aclose()
        await bystander.aclose()


async def test_context_takeover_against_the_agreement_closes_1007(server) -> None:
    """The reply said client_no_context_takeover; a second message that refers back into the
    first cannot inflate on its own, and is refused rather than misread."""
    ws = await raw_client(server)
    try:
        c = zlib.compressobj(6, zlib.DEFLATED, -15)
        text = json.dumps({"type": "ping", "padding": "r" * 500}).encode()
        first = c.compress(text) + c.flush(zlib.Z_SYNC_FLUSH)
        second = c.compress(text) + c.flush(zlib.Z_SYNC_FLUSH)
        await ws.send_frame(OP_TEXT, first[:-4], rsv=4)
        assert (await ws.recv_reply())["type"] == "pong"
        await ws.send_frame(OP_TEXT, second[:-4], rsv=4)
        assert (await ws.read_close())[0] == 1007
    finally:
        await ws.aclose()


async def test_rsv1_without_the_extension_closes_1002(server) -> None:
    ws = await raw_client(server, None)
    try:
        await ws.send_frame(OP_TEXT, deflate(b'{"type":"ping"}'), rsv=4)
        assert (await ws.read_close())[0] == 1002
    finally:
        await ws.aclose()
