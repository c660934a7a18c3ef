"""Protocol violations through raw sockets: the right close code, others carry on."""

from __future__ import annotations

import struct
from typing import Any

import pytest

import wsserver
from helpers import Recorder, connect_ws, echo, wait
from rawclient import build_frame

VIOLATIONS = {
    "unmasked": (build_frame(0x1, "x", mask=False), 1002),
    "rsv1": (build_frame(0x1, "x", rsv=4), 1002),
    "rsv2": (build_frame(0x2, b"x", rsv=2), 1002),
    "rsv3": (build_frame(0x2, b"x", rsv=1), 1002),
    "opcode-3": (build_frame(0x3, b"x"), 1002),
    "opcode-11": (build_frame(0xB, b"x"), 1002),
    "ping-126": (build_frame(0x9, b"p" * 126), 1002),
    "fragmented-ping": (build_frame(0x9, b"p", fin=False), 1002),
    "lone-continuation": (build_frame(0x0, b"x"), 1002),
    "new-message-mid-fragment": (build_frame(0x1, "a", fin=False) + build_frame(0x1, "b"), 1002),
    "close-1-byte": (build_frame(0x8, b"\x03"), 1002),
    "close-code-1005": (build_frame(0x8, struct.pack("!H", 1005)), 1002),
    "close-code-999": (build_frame(0x8, struct.pack("!H", 999)), 1002),
    "close-code-5000": (build_frame(0x8, struct.pack("!H", 5000)), 1002),
    "length-high-bit": (build_frame(0x2, b"", length=1 << 63, width=64), 1002),
    "invalid-utf8": (build_frame(0x1, b"\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xed\xa0\x80"), 1007),
    "invalid-utf8-fragmented": (build_frame(0x1, b"ok", fin=False) + build_frame(0x0, b"\xf4\x90\x80\x80"), 1007),
    "invalid-utf8-reason": (build_frame(0x8, struct.pack("!H", 1000) + b"\xff"), 1007),
    "too-big": (build_frame(0x2, b"", length=10_000_000), 1009),
    "too-big-fragmented": (build_frame(0x2, b"a" * 600, fin=False) + build_frame(0x0, b"b" * 600), 1009),
}


@pytest.mark.parametrize("name", sorted(VIOLATIONS))
async def test_violation_gets_its_close_code_and_others_carry_on(make_server: Any, raw: Any, name: str) -> None:
    data, code = VIOLATIONS[name]
    wss = echo(await make_server(maxPayload=1000))
    connections = Recorder(wss, "connection")
    async with connect_ws(wss) as honest:
        await connections.next("connection")
        client = await raw(wss)
        assert (await client.handshake()).status == 101
        conn, _ = await connections.next("connection")
        events = Recorder(conn, "error", "close")
        client.send(data)
        frame = await client.read_close()
        assert frame.close_code == code
        assert not frame.masked
        assert await client.read_until_eof() == b""  # then the server closes TCP
        (error,) = await events.next("error")
        assert isinstance(error, wsserver.ProtocolError) and error.code == code
        assert (await events.next("close"))[0] == code
        assert wss.clients is not None and conn not in wss.clients
        await honest.send("still echoing")
        assert await wait(honest.recv()) == "still echoing"
        await honest.send(b"\x00binary too")
        assert await wait(honest.recv()) == b"\x00binary too"


async def test_invalid_utf8_fails_before_the_frame_is_complete(make_server: Any, raw: Any) -> None:
    wss = echo(await make_server())
    client = await raw(wss)
    assert (await client.handshake()).status == 101
    payload = b"hello \xf4\x90\x80\x80" + b"x" * 1000
    frame = build_frame(0x1, payload)
    client.send(frame[: len(frame) - len(payload) + 8])  # the rest never comes
    assert (await client.read_close()).close_code == 1007


async def test_max_payload_fails_before_the_payload_is_sent(make_server: Any, raw: Any) -> None:
    wss = echo(await make_server(maxPayload=1000))
    client = await raw(wss)
    assert (await client.handshake()).status == 101
    client.send(build_frame(0x2, b"", length=1 << 40, width=64))  # only the header
    assert (await client.read_close()).close_code == 1009


async def test_max_fragments_gets_1008(make_server: Any, raw: Any) -> None:
    wss = echo(await make_server(maxFragments=4))
    client = await raw(wss)
    assert (await client.handshake()).status == 101
    frames = build_frame(0x1, "1", fin=False) + b"".join(build_frame(0x0, "n", fin=False) for _ in range(4))
    client.send(frames)
    assert (await client.read_close()).close_code == 1008


async def test_valid_close_from_raw_client_is_echoed(make_server: Any, raw: Any) -> None:
    wss = echo(await make_server())
    client = await raw(wss)
    assert (await client.handshake()).status == 101
    client.send_frame(0x8, struct.pack("!H", 4444) + b"reason")
    frame = await client.read_close()
    assert frame.close_code == 4444
    assert await client.read_until_eof() == b""


async def test_a_violation_in_the_same_read_as_good_frames(make_server: Any, raw: Any) -> None:
    wss = echo(await make_server())
    client = await raw(wss)
    assert (await client.handshake()).status == 101
    client.send(build_frame(0x1, "good") + build_frame(0x7, b"bad") + build_frame(0x1, "never"))
    first = await client.read_frame()
    assert first.payload == b"good"
    assert (await client.read_close()).close_code == 1002
    assert await client.read_until_eof() == b""


async def test_message_and_close_frame_in_one_read_are_both_answered(make_server: Any, raw: Any) -> None:
    wss = echo(await make_server())
    client = await raw(wss)
    assert (await client.handshake()).status == 101
    client.send(build_frame(0x1, "last words") + build_frame(0x8, struct.pack("!H", 1000)))
    reply = await client.read_frame()
    assert (reply.opcode, reply.payload) == (0x1, b"last words")
    assert (await client.read_close()).close_code == 1000
    assert await client.read_until_eof() == b""
