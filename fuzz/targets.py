"""Fuzz targets of the sans-I/O parsers, shared by every engine in ``run.py``.

Each target takes one byte string from the fuzzer: the first bytes choose how
the rest is split into reads (and a limit), the rest is the input. A target
raises ``AssertionError`` when an invariant breaks; any other exception is a
crash too (``receive_data`` must never raise, ``RequestParser.feed`` may raise
only ``HandshakeError``).
"""

from __future__ import annotations

import os
import struct
from typing import Any

from wsserver.protocol.close_codes import PROTOCOL_ERROR
from wsserver.protocol.connection import CLOSED, CloseReceived, Failure, Ping, Pong, ServerConnection
from wsserver.protocol.errors import HandshakeError
from wsserver.protocol.frames import OP_BINARY, OP_CLOSE, OP_CONTINUATION, OP_PING, OP_TEXT, encode_frame
from wsserver.protocol.handshake import RequestParser

__all__ = ["TARGETS", "frames_target", "handshake_target", "seeds"]


def _layout(data: bytes) -> tuple[list[int], int, bytes]:
    """``(cut points, limit byte, input)`` from the fuzzer's bytes."""
    if len(data) < 2:
        return [], 0, data
    count = data[0] & 0x0F
    header = 2 + 2 * count
    cuts = [struct.unpack_from("!H", data, 2 + 2 * i)[0] for i in range(count) if 4 + 2 * i <= len(data)]
    return cuts, data[1], data[header:]


def split(data: bytes, cuts: list[int]) -> list[bytes]:
    """``data`` cut at the given positions (taken modulo its length)."""
    points = sorted({cut % (len(data) + 1) for cut in cuts})
    pieces, start = [], 0
    for point in [*points, len(data)]:
        pieces.append(data[start:point])
        start = point
    return pieces


def describe_event(event: Any) -> tuple[Any, ...]:
    """A ``ServerConnection`` event as a comparable tuple (the tests use it too)."""
    if isinstance(event, str):
        return ("text", event)
    if isinstance(event, bytes):
        return ("binary", event)
    if isinstance(event, Ping):
        return ("ping", event.data)
    if isinstance(event, Pong):
        return ("pong", event.data)
    if isinstance(event, CloseReceived):
        return ("close", event.code, event.reason)
    assert isinstance(event, Failure), f"unknown event {event!r}"
    return ("fail", event.error.code)


def _normalize(event: Any) -> tuple[Any, ...]:
    described = describe_event(event)
    if described[0] == "fail":
        assert described[1] in (1002, 1007, 1008, 1009), event.error
    return described


def _receive(pieces: list[bytes], max_payload: int, max_fragments: int) -> list[tuple[Any, ...]]:
    connection = ServerConnection(max_payload=max_payload, max_fragments=max_fragments)
    events: list[tuple[Any, ...]] = []
    for piece in pieces:
        events.extend(_normalize(event) for event in connection.receive_data(piece))
    ends = [index for index, event in enumerate(events) if event[0] in ("fail", "close")]
    assert ends in ([], [len(events) - 1]), f"events after the end: {events}"
    if ends:
        assert connection.state == CLOSED
        assert connection.receive_data(b"\x82\x80\x00\x00\x00\x00") == []
    if events and events[-1][0] == "fail":
        close = connection.output[-1]
        assert close[0] == 0x80 | OP_CLOSE and struct.unpack("!H", close[2:4])[0] == events[-1][1]
    return events


def frames_target(data: bytes) -> None:
    """``ServerConnection.receive_data``: never raises; a split changes nothing."""
    cuts, limit, stream = _layout(data)
    max_payload = 1 + limit * 64  # 1 .. 16321 bytes: the limit is reached often
    max_fragments = 1 + (limit & 0x0F)
    whole = _receive([stream], max_payload, max_fragments)
    pieces = _receive(split(stream, cuts), max_payload, max_fragments)
    assert pieces == whole, f"split {cuts} changed the events:\n{whole}\n{pieces}"


def _parse(pieces: list[bytes], max_header_size: int) -> tuple[Any, ...]:
    parser = RequestParser(max_header_size, 16)
    received = b""
    for piece in pieces:
        received += piece
        try:
            request = parser.feed(piece)
        except HandshakeError as error:
            assert error.status in (400, 414, 431), error
            return ("error", error.status)
        if request is not None:
            head = len(received) - len(parser.trailing) if parser.upgrade else None
            assert head is None or head <= max_header_size
            return ("request", request.method, request.target, tuple(request.headers.items()), parser.upgrade)
    return ("incomplete",)


def handshake_target(data: bytes) -> None:
    """``RequestParser.feed``: only ``HandshakeError``; a split changes nothing,
    except that a plain (non-upgrade) request's head is measured only up to
    the read that completes it, so a split can turn one over the limit into 431."""
    cuts, limit, request = _layout(data)
    max_header_size = 64 + limit * 16
    whole = _parse([request], max_header_size)
    pieces = _parse(split(request, cuts), max_header_size)
    if whole[0] == pieces[0] == "error":
        return  # 400, 414 or 431: which limit a bad head hits first may depend on the reads
    if whole != pieces:
        plain = [result for result in (whole, pieces) if result[0] == "request" and not result[-1]]
        assert plain and ("error", 431) in (whole, pieces), f"split {cuts} changed the result:\n{whole}\n{pieces}"


TARGETS = {"frames": frames_target, "handshake": handshake_target}


def _masked(opcode: int, payload: bytes, fin: bool = True) -> bytes:
    return encode_frame(opcode, payload, fin=fin, mask_key=os.urandom(4))


def seeds(target: str) -> list[bytes]:
    """Valid (and nearly valid) inputs to start from, with the split/limit prefix."""
    prefix = bytes((3, 200)) + struct.pack("!HHH", 1, 7, 30)
    if target == "frames":
        streams = [
            _masked(OP_TEXT, "héllo wörld €".encode()),
            _masked(OP_BINARY, bytes(range(256)) * 2),
            _masked(OP_TEXT, b"frag", fin=False) + _masked(OP_PING, b"p") + _masked(OP_CONTINUATION, b"ment"),
            _masked(OP_CLOSE, struct.pack("!H", 1000) + b"bye"),
            _masked(OP_TEXT, b"\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xed\xa0\x80"),
            _masked(OP_BINARY, b"x" * 70_000)[:200],
            _masked(OP_CLOSE, struct.pack("!H", PROTOCOL_ERROR)),
        ]
    else:
        streams = [
            b"GET /chat?room=1 HTTP/1.1\r\nHost: example\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n\x81\x80abcd",
            b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
            b"POST /form HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello",
            b"GET / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        ]
    return [prefix + stream for stream in streams]
