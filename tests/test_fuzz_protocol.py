"""Property-based tests of the sans-I/O layer (hypothesis).

* Any split of a valid client byte stream into reads gives the same events,
  and they are the messages and control frames that were sent.
* Arbitrary bytes (raw, or frames with random header bits) never make
  ``receive_data`` raise: a protocol violation is a ``Failure`` event, the
  last one, with its close frame queued; and any split gives the same events.
* ``RequestParser.feed`` raises nothing but ``HandshakeError``, and a valid
  request parses the same however it is split.
"""

from __future__ import annotations

import os
import struct
from typing import Any

from fuzz.targets import describe_event, split
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from wsserver.protocol.close_codes import is_valid_on_wire
from wsserver.protocol.connection import (
    CLOSED,
    ServerConnection,
)
from wsserver.protocol.errors import HandshakeError
from wsserver.protocol.frames import encode_frame
from wsserver.protocol.handshake import Request, RequestParser, validate_upgrade

#: WSSERVER_FUZZ_EXAMPLES=5000 for a deeper run
SETTINGS = settings(
    max_examples=int(os.environ.get("WSSERVER_FUZZ_EXAMPLES", "150")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
MAX_PAYLOAD = 4096
MAX_FRAGMENTS = 16


def run(pieces: list[bytes]) -> tuple[list[tuple[Any, ...]], ServerConnection]:
    """Feed ``pieces`` one read at a time; every event, normalized."""
    connection = ServerConnection(max_payload=MAX_PAYLOAD, max_fragments=MAX_FRAGMENTS)
    events: list[tuple[Any, ...]] = []
    for piece in pieces:
        events.extend(describe_event(event) for event in connection.receive_data(piece))
    return events, connection


# -- valid streams -------------------------------------------------------------

masks = st.binary(min_size=4, max_size=4)
control_payloads = st.binary(max_size=125)


@st.composite
def message_frames(draw: st.DrawFn) -> tuple[list[bytes], list[tuple[Any, ...]]]:
    """One message (text or binary, maybe fragmented, maybe with control frames
    between its fragments): its frames and the events it must produce."""
    if draw(st.booleans()):
        text = draw(st.text(max_size=300))
        payload, opcode, expected = text.encode("utf-8"), 0x1, ("text", text)
    else:
        payload = draw(st.binary(max_size=300))
        opcode, expected = 0x2, ("binary", payload)
    cuts = draw(st.lists(st.integers(0, len(payload)), max_size=MAX_FRAGMENTS - 1))
    pieces = split(payload, cuts)  # may cut a UTF-8 sequence: allowed across frames
    frames: list[bytes] = []
    events: list[tuple[Any, ...]] = []
    for index, piece in enumerate(pieces):
        last = index == len(pieces) - 1
        frames.append(encode_frame(opcode if index == 0 else 0x0, piece, fin=last, mask_key=draw(masks)))
        if not last and draw(st.booleans()):  # a control frame between fragments
            data = draw(control_payloads)
            kind = draw(st.sampled_from([0x9, 0xA]))
            frames.append(encode_frame(kind, data, mask_key=draw(masks)))
            events.append(("ping" if kind == 0x9 else "pong", data))
    events.append(expected)
    return frames, events


close_codes = st.integers(1000, 4999).filter(is_valid_on_wire)


@st.composite
def valid_streams(draw: st.DrawFn) -> tuple[bytes, list[tuple[Any, ...]]]:
    frames: list[bytes] = []
    events: list[tuple[Any, ...]] = []
    for message, expected in draw(st.lists(message_frames(), max_size=6)):
        frames += message
        events += expected
    if draw(st.booleans()):
        code = draw(close_codes)
        reason = draw(st.text(max_size=30).filter(lambda text: len(text.encode()) <= 123))
        frames.append(encode_frame(0x8, struct.pack("!H", code) + reason.encode(), mask_key=draw(masks)))
        events.append(("close", code, reason))
    return b"".join(frames), events


@SETTINGS
@given(valid_streams(), st.lists(st.integers(0, 10_000), max_size=30))
def test_any_split_of_a_valid_stream_gives_the_same_events(
    stream: tuple[bytes, list[tuple[Any, ...]]], cuts: list[int]
) -> None:
    data, expected = stream
    whole, _ = run([data])
    assert whole == expected
    pieces, _ = run(split(data, cuts))
    assert pieces == expected
    one_byte_at_a_time, _ = run([data[index : index + 1] for index in range(len(data))])
    assert one_byte_at_a_time == expected


# -- arbitrary input -----------------------------------------------------------


@st.composite
def random_frames(draw: st.DrawFn) -> bytes:
    """A frame with random header bits, length encoding and payload."""
    first = draw(st.integers(0, 255))
    masked = draw(st.integers(0, 9)) > 0  # mostly masked, as clients must
    payload = draw(
        st.one_of(
            st.binary(max_size=200),
            st.text(max_size=60).map(lambda text: text.encode()),
            st.just(b"\xed\xa0\x80"),  # a UTF-16 surrogate in UTF-8
            st.builds(lambda code, rest: struct.pack("!H", code) + rest, st.integers(0, 65535), st.binary(max_size=8)),
        )
    )
    length = len(payload)
    width = draw(st.sampled_from(["natural", "16", "64", "lie"]))
    mask_bit = 0x80 if masked else 0
    if width == "lie":  # announce another length, even huge ones
        announced = draw(st.one_of(st.integers(0, 70_000), st.integers(2**62, 2**64 - 1)))
        header = struct.pack("!BBQ", first, mask_bit | 127, announced)
    elif width == "64" or (width == "natural" and length >= 65536):
        header = struct.pack("!BBQ", first, mask_bit | 127, length)
    elif width == "16" or length >= 126:
        header = struct.pack("!BBH", first, mask_bit | 126, length)
    else:
        header = bytes((first, mask_bit | length))
    if not masked:
        return header + payload
    key = draw(masks)
    return header + key + bytes(byte ^ key[index % 4] for index, byte in enumerate(payload))


garbage = st.one_of(
    st.binary(max_size=2000),
    st.lists(random_frames(), max_size=8).map(b"".join),
    st.tuples(valid_streams(), st.lists(random_frames(), max_size=4)).map(
        lambda parts: parts[0][0] + b"".join(parts[1])
    ),
)


def check_failure_contract(events: list[tuple[Any, ...]], connection: ServerConnection) -> None:
    failures = [index for index, event in enumerate(events) if event[0] == "fail"]
    if failures:
        assert failures == [len(events) - 1], "a Failure is the last event"
        assert connection.state == CLOSED
        close_frames = [frame for frame in connection.output if frame[0] & 0x0F == 0x8]
        assert len(close_frames) <= 1
        if close_frames:
            assert struct.unpack("!H", close_frames[0][2:4])[0] == events[-1][1]
    closes = [index for index, event in enumerate(events) if event[0] == "close"]
    if closes:
        assert closes == [len(events) - 1]
        assert connection.state == CLOSED
    if connection.state == CLOSED:
        assert connection.receive_data(b"\x81\x80\x00\x00\x00\x00") == []


@SETTINGS
@given(garbage, st.lists(st.integers(0, 10_000), max_size=20))
def test_arbitrary_bytes_never_raise_and_any_split_agrees(data: bytes, cuts: list[int]) -> None:
    whole, connection = run([data])  # must not raise
    check_failure_contract(whole, connection)
    for event in whole:
        if event[0] == "fail":
            assert event[1] in (1002, 1007, 1008, 1009)
    pieces, connection = run(split(data, cuts))
    check_failure_contract(pieces, connection)
    assert pieces == whole


# -- the HTTP request parser ---------------------------------------------------

tokens = st.text(alphabet="abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-", min_size=1, max_size=20)
values = st.text(alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7E), max_size=40)
paths = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789/-_.~%?=&", max_size=60).map(lambda path: "/" + path)


@st.composite
def upgrade_requests(draw: st.DrawFn) -> tuple[bytes, str, list[tuple[str, str]]]:
    path = draw(paths)
    headers = [
        ("Host", "127.0.0.1"),
        ("Upgrade", "websocket"),
        ("Connection", "Upgrade"),
        ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="),
        ("Sec-WebSocket-Version", "13"),
    ]
    headers += draw(st.lists(st.tuples(tokens.map(lambda name: "X-" + name), values), max_size=10))
    head = f"GET {path} HTTP/1.1\r\n" + "".join(f"{name}: {value}\r\n" for name, value in headers) + "\r\n"
    return head.encode("latin-1"), path, headers


def parse(pieces: list[bytes], max_header_size: int = 16384) -> tuple[str, Any]:
    """``('request', (request, trailing))``, ``('error', status)`` or ``('incomplete', None)``."""
    parser = RequestParser(max_header_size, 128)
    for piece in pieces:
        try:
            request = parser.feed(piece)
        except HandshakeError as error:
            return "error", error.status
        if request is not None:
            return "request", (request, parser.trailing)
    return "incomplete", None


def describe(request: Request) -> tuple[Any, ...]:
    return request.method, request.target, request.headers.items(), request.http_version


@SETTINGS
@given(upgrade_requests(), st.binary(max_size=40), st.lists(st.integers(0, 10_000), max_size=20))
def test_a_valid_request_parses_the_same_however_split(
    built: tuple[bytes, str, list[tuple[str, str]]], trailing: bytes, cuts: list[int]
) -> None:
    head, path, headers = built
    kind, result = parse([head + trailing])
    assert kind == "request"
    request, rest = result
    assert describe(request) == ("GET", path, headers, "1.1")
    validate_upgrade(request)
    assert rest == trailing
    # split reads: the trailing bytes may arrive after the head, in later reads
    parser = RequestParser()
    parsed = None
    pieces = split(head + trailing, cuts)
    for index, piece in enumerate(pieces):
        parsed = parser.feed(piece)
        if parsed is not None:
            assert parser.trailing + b"".join(pieces[index + 1 :]) == trailing
            break
    assert parsed is not None and describe(parsed) == describe(request)


@SETTINGS
@given(upgrade_requests(), st.integers(200, 1200), st.lists(st.integers(0, 10_000), max_size=20))
def test_the_header_size_limit_does_not_depend_on_reads(
    built: tuple[bytes, str, list[tuple[str, str]]], limit: int, cuts: list[int]
) -> None:
    head = built[0]
    whole = parse([head], limit)
    expected = "error" if len(head) > limit else "request"
    assert whole[0] == expected
    assert parse(split(head, cuts), limit)[0] == expected


@SETTINGS
@given(
    st.one_of(
        st.binary(max_size=3000),
        st.tuples(upgrade_requests(), st.binary(max_size=200)).map(lambda parts: parts[0][0][: len(parts[1])] + parts[1]),
    ),
    st.lists(st.integers(0, 10_000), max_size=20),
)
def test_arbitrary_bytes_only_raise_handshake_error(data: bytes, cuts: list[int]) -> None:
    for pieces in ([data], split(data, cuts)):
        kind, result = parse(pieces)  # HandshakeError is caught there; anything else fails
        if kind == "error":
            assert result in (400, 414, 431)


def test_fragment_limit_wins_over_utf8_however_split() -> None:
    """Found by the fuzzer: a continuation frame over ``max_fragments`` with bad
    UTF-8 failed with 1007 when its payload streamed in, 1008 when whole."""
    stream = encode_frame(0x1, b"ok", fin=False, mask_key=b"abcd") + encode_frame(
        0x0, b"\xb1\xf2\x46\xce", mask_key=b"efgh"
    )
    for cut in range(len(stream) + 1):
        connection = ServerConnection(max_fragments=1)
        events = connection.receive_data(stream[:cut]) + connection.receive_data(stream[cut:])
        assert [describe_event(event) for event in events] == [("fail", 1008)], cut
