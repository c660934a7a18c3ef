"""ServerConnection, sans I/O: frame parsing, reassembly and protocol violations."""

from __future__ import annotations

import functools
import struct

import pytest
from fuzz.targets import describe_event
from hypothesis import given, settings
from hypothesis import strategies as st

from rawclient import build_frame, parse_frames
from wsserver.protocol import (
    CLOSED,
    OPEN,
    Failure,
    PayloadTooBig,
    Ping,
    Pong,
    ProtocolError,
    ServerConnection,
    _speedups,
    encode_frame,
)
from wsserver.protocol import connection as protocol_connection
from wsserver.protocol.frames import OP_BINARY, OP_CLOSE, OP_CONTINUATION, OP_PING, OP_PONG, OP_TEXT

LENGTHS = [0, 1, 125, 126, 127, 65535, 65536, 70000]

pytestmark = pytest.mark.usefixtures("parser_path")


def failure_code(events: list[object]) -> int:
    """The close code of the single Failure that ends ``events``."""
    assert events, "no events"
    failure = events[-1]
    assert isinstance(failure, Failure), events
    return failure.error.code


def assert_failed_with(conn: ServerConnection, events: list[object], code: int) -> None:
    """``events`` end with a Failure of ``code``; one close frame with it was queued."""
    assert failure_code(events) == code
    assert conn.state == CLOSED
    assert conn.close_code == code
    frames = parse_frames(b"".join(conn.output))
    assert [frame.opcode for frame in frames] == [OP_CLOSE]
    assert frames[0].close_code == code
    assert not frames[0].masked


@pytest.mark.parametrize("length", LENGTHS)
def test_binary_message_of_every_length_class(length: int) -> None:
    payload = bytes(range(256)) * (length // 256) + bytes(range(length % 256))
    conn = ServerConnection()
    assert conn.receive_data(build_frame(OP_BINARY, payload)) == [payload]
    assert conn.output == []


@pytest.mark.parametrize("length", LENGTHS)
def test_text_message_of_every_length_class(length: int) -> None:
    text = ("aé€😀" * (length // 10 + 1)).encode("utf-8")[:length].decode("utf-8", "ignore")
    conn = ServerConnection()
    assert conn.receive_data(build_frame(OP_TEXT, text)) == [text]


@pytest.mark.parametrize(("length", "header_size"), [(0, 2), (125, 2), (126, 4), (65535, 4), (65536, 10)])
def test_encode_frame_uses_7_16_and_64_bit_lengths(length: int, header_size: int) -> None:
    frame = encode_frame(OP_BINARY, b"x" * length)
    assert len(frame) == header_size + length
    (parsed,) = parse_frames(frame)
    assert (parsed.fin, parsed.rsv, parsed.opcode, parsed.masked) == (True, 0, OP_BINARY, False)
    assert parsed.payload == b"x" * length


def test_encode_frame_with_mask_key_masks_the_payload() -> None:
    frame = encode_frame(OP_TEXT, b"hello", mask_key=b"\x01\x02\x03\x04")
    (parsed,) = parse_frames(frame)
    assert parsed.masked and parsed.mask_key == b"\x01\x02\x03\x04"
    assert parsed.wire_payload != b"hello"
    assert parsed.payload == b"hello"


def test_several_messages_in_one_read() -> None:
    conn = ServerConnection()
    data = build_frame(OP_TEXT, "one") + build_frame(OP_BINARY, b"two") + build_frame(OP_TEXT, "")
    assert conn.receive_data(data) == ["one", b"two", ""]


@pytest.mark.parametrize("rsv", [1, 2, 4, 7])
def test_rsv_bits_without_extension_fail_with_1002(rsv: int) -> None:
    conn = ServerConnection()
    events = conn.receive_data(build_frame(OP_TEXT, "x", rsv=rsv))
    assert_failed_with(conn, events, 1002)


@pytest.mark.parametrize("opcode", [OP_PING, OP_PONG, OP_CLOSE])
def test_rsv1_on_a_control_frame_fails_with_1002(opcode: int) -> None:
    conn = ServerConnection()
    assert_failed_with(conn, conn.receive_data(build_frame(opcode, b"", rsv=4)), 1002)


@pytest.mark.parametrize("opcode", [3, 4, 5, 6, 7, 0xB, 0xC, 0xD, 0xE, 0xF])
def test_reserved_opcodes_fail_with_1002(opcode: int) -> None:
    conn = ServerConnection()
    assert_failed_with(conn, conn.receive_data(build_frame(opcode, b"abc")), 1002)


@pytest.mark.parametrize("opcode", [OP_TEXT, OP_BINARY, OP_PING, OP_CLOSE])
def test_unmasked_client_frame_fails_with_1002(opcode: int) -> None:
    conn = ServerConnection()
    assert_failed_with(conn, conn.receive_data(build_frame(opcode, b"", mask=False)), 1002)


def test_unmasked_frame_fails_before_its_payload_arrives() -> None:
    conn = ServerConnection()
    start = build_frame(OP_BINARY, b"x" * 1000, mask=False)[:8]  # header and 4 payload bytes
    assert_failed_with(conn, conn.receive_data(start), 1002)


@pytest.mark.parametrize("opcode", [OP_PING, OP_PONG, OP_CLOSE])
def test_control_frame_over_125_bytes_fails_with_1002(opcode: int) -> None:
    conn = ServerConnection()
    payload = b"\x03\xe8" + b"x" * 124 if opcode == OP_CLOSE else b"x" * 126
    assert_failed_with(conn, conn.receive_data(build_frame(opcode, payload)), 1002)


def test_control_frame_of_exactly_125_bytes_is_fine() -> None:
    conn = ServerConnection()
    (event,) = conn.receive_data(build_frame(OP_PING, b"p" * 125))
    assert isinstance(event, Ping) and event.data == b"p" * 125
    assert conn.state == OPEN


@pytest.mark.parametrize("opcode", [OP_PING, OP_PONG, OP_CLOSE])
def test_fragmented_control_frame_fails_with_1002(opcode: int) -> None:
    conn = ServerConnection()
    assert_failed_with(conn, conn.receive_data(build_frame(opcode, b"", fin=False)), 1002)


def test_control_frames_interleaved_in_a_fragmented_message() -> None:
    conn = ServerConnection()
    data = (
        build_frame(OP_TEXT, "Hel", fin=False)
        + build_frame(OP_PING, b"ping-1")
        + build_frame(OP_CONTINUATION, "lo, ", fin=False)
        + build_frame(OP_PONG, b"pong-1")
        + build_frame(OP_CONTINUATION, "world")
    )
    events = conn.receive_data(data)
    assert len(events) == 3
    assert isinstance(events[0], Ping) and events[0].data == b"ping-1"
    assert isinstance(events[1], Pong) and events[1].data == b"pong-1"
    assert events[2] == "Hello, world"
    assert conn.output == []  # the caller answers pings, in order with its replies


def test_fragmented_binary_message_is_reassembled() -> None:
    conn = ServerConnection()
    assert conn.receive_data(build_frame(OP_BINARY, b"ab", fin=False)) == []
    assert conn.receive_data(build_frame(OP_CONTINUATION, b"", fin=False)) == []
    assert conn.receive_data(build_frame(OP_CONTINUATION, b"cd", fin=False)) == []
    assert conn.receive_data(build_frame(OP_CONTINUATION, b"ef")) == [b"abcdef"]
    # the next message starts from scratch
    assert conn.receive_data(build_frame(OP_BINARY, b"gh")) == [b"gh"]


def test_fragmented_text_with_a_character_split_across_fragments() -> None:
    encoded = "é€😀".encode()
    conn = ServerConnection()
    data = b"".join(
        build_frame(OP_TEXT if index == 0 else OP_CONTINUATION, encoded[index : index + 1], fin=index == len(encoded) - 1)
        for index in range(len(encoded))
    )
    assert conn.receive_data(data) == ["é€😀"]


def test_empty_fragmented_text_message() -> None:
    conn = ServerConnection()
    data = build_frame(OP_TEXT, b"", fin=False) + build_frame(OP_CONTINUATION, b"")
    assert conn.receive_data(data) == [""]


def test_continuation_without_a_message_fails_with_1002() -> None:
    conn = ServerConnection()
    assert_failed_with(conn, conn.receive_data(build_frame(OP_CONTINUATION, b"x")), 1002)


def test_continuation_after_a_complete_message_fails_with_1002() -> None:
    conn = ServerConnection()
    events = conn.receive_data(build_frame(OP_TEXT, "done") + build_frame(OP_CONTINUATION, "more"))
    assert events[0] == "done"
    assert_failed_with(conn, events, 1002)


@pytest.mark.parametrize("second", [OP_TEXT, OP_BINARY])
def test_new_message_in_the_middle_of_a_fragmented_one_fails_with_1002(second: int) -> None:
    conn = ServerConnection()
    data = build_frame(OP_BINARY, b"start", fin=False) + build_frame(second, b"other")
    assert_failed_with(conn, conn.receive_data(data), 1002)


def test_64_bit_length_with_the_high_bit_set_fails_with_1002() -> None:
    conn = ServerConnection()
    header = build_frame(OP_BINARY, b"", length=1 << 63, width=64)
    assert_failed_with(conn, conn.receive_data(header), 1002)


def test_max_payload_fails_with_1009_from_the_header_alone() -> None:
    conn = ServerConnection(max_payload=1000)
    header = build_frame(OP_BINARY, b"", length=1 << 40, width=64)  # header + key, no payload
    events = conn.receive_data(header)
    assert_failed_with(conn, events, 1009)
    assert isinstance(events[-1], Failure)
    assert isinstance(events[-1].error, PayloadTooBig)


def test_max_payload_counts_the_whole_fragmented_message() -> None:
    conn = ServerConnection(max_payload=1000)
    assert conn.receive_data(build_frame(OP_TEXT, "a" * 600, fin=False)) == []
    header = build_frame(OP_CONTINUATION, b"", length=401)
    assert_failed_with(conn, conn.receive_data(header), 1009)


def test_max_payload_exactly_reached_is_fine() -> None:
    conn = ServerConnection(max_payload=1000)
    data = build_frame(OP_BINARY, b"a" * 600, fin=False) + build_frame(OP_CONTINUATION, b"b" * 400)
    assert conn.receive_data(data) == [b"a" * 600 + b"b" * 400]
    assert conn.receive_data(build_frame(OP_TEXT, "c" * 1000)) == ["c" * 1000]


def test_max_payload_does_not_count_control_frames() -> None:
    conn = ServerConnection(max_payload=10)
    events = conn.receive_data(build_frame(OP_PING, b"p" * 100))
    assert isinstance(events[0], Ping)
    assert conn.state == OPEN


def test_max_fragments_fails_with_1008() -> None:
    conn = ServerConnection(max_fragments=3)
    ok = (
        build_frame(OP_BINARY, b"1", fin=False)
        + build_frame(OP_CONTINUATION, b"2", fin=False)
        + build_frame(OP_CONTINUATION, b"3")
    )
    assert conn.receive_data(ok) == [b"123"]
    too_many = (
        build_frame(OP_BINARY, b"1", fin=False)
        + build_frame(OP_CONTINUATION, b"2", fin=False)
        + build_frame(OP_CONTINUATION, b"3", fin=False)
        + build_frame(OP_CONTINUATION, b"4")
    )
    assert_failed_with(conn, conn.receive_data(too_many), 1008)


def test_ping_is_reported_with_its_payload_and_left_to_the_caller() -> None:
    conn = ServerConnection()
    (event,) = conn.receive_data(build_frame(OP_PING, b"are you there"))
    assert isinstance(event, Ping) and event.data == b"are you there"
    assert conn.output == []


def test_pong_is_reported_and_not_answered() -> None:
    conn = ServerConnection()
    (event,) = conn.receive_data(build_frame(OP_PONG, b"unsolicited"))
    assert isinstance(event, Pong) and event.data == b"unsolicited"
    assert conn.output == []


def test_nothing_is_parsed_after_a_failure() -> None:
    conn = ServerConnection()
    events = conn.receive_data(build_frame(OP_CONTINUATION, b"x") + build_frame(OP_TEXT, "after"))
    assert len(events) == 1 and isinstance(events[0], Failure)
    assert conn.receive_data(build_frame(OP_TEXT, "later")) == []
    assert len(parse_frames(b"".join(conn.output))) == 1


def test_fail_from_outside_queues_one_close_frame() -> None:
    conn = ServerConnection()
    (event,) = conn.fail(ProtocolError(1011, "server bug"))
    assert isinstance(event, Failure) and event.error.code == 1011
    (frame,) = parse_frames(b"".join(conn.output))
    assert (frame.close_code, frame.close_reason) == (1011, "server bug")
    assert conn.fail(ProtocolError(1002, "again")) == []


@functools.cache
def _stream() -> bytes:
    """A stream exercising every kind of frame, ending with a close frame."""
    return b"".join(
        [
            build_frame(OP_TEXT, "héllo wörld €😀" * 3),
            build_frame(OP_BINARY, bytes(range(200))),
            build_frame(OP_TEXT, "frag-é", fin=False),
            build_frame(OP_PING, b"mid"),
            build_frame(OP_CONTINUATION, "mént-😀" * 30, fin=False),
            build_frame(OP_CONTINUATION, "end"),
            build_frame(OP_BINARY, b"z" * 70000),
            build_frame(OP_PONG, b""),
            build_frame(OP_TEXT, ""),
            build_frame(OP_CLOSE, struct.pack("!H", 4000) + "bye €".encode()),
        ]
    )


def _describe(events: list[object]) -> list[object]:
    return [describe_event(event) for event in events]


def _feed(chunks: list[bytes]) -> tuple[list[object], bytes]:
    conn = ServerConnection()
    events: list[object] = []
    for chunk in chunks:
        events += conn.receive_data(chunk)
    return _describe(events), b"".join(conn.output)


@functools.cache
def _one_shot() -> tuple[list[object], bytes]:
    return _feed([_stream()])


def test_byte_by_byte_feeding_equals_one_shot() -> None:
    data = _stream()
    one_shot = _feed([data])
    assert one_shot[0][-1] == ("close", 4000, "bye €")
    assert len(one_shot[0]) == 8
    assert _feed([data[i : i + 1] for i in range(len(data))]) == one_shot


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(min_value=1, max_value=300), min_size=1, max_size=40))
def test_any_split_equals_one_shot(sizes: list[int]) -> None:
    data = _stream()
    chunks = []
    pos = 0
    for size in sizes:
        chunks.append(data[pos : pos + size])
        pos += size
    chunks.append(data[pos:])
    assert _feed(chunks) == _one_shot()


def test_c_scan_takes_whole_messages_and_leaves_the_rest(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[int, int]] = []

    def spy(buf: bytes, pos: int, max_payload: int, out: list[object]) -> int:
        new_pos = int(_speedups.scan_messages(buf, pos, max_payload, out))
        calls.append((pos, new_pos))
        return new_pos

    monkeypatch.setattr(protocol_connection, "_scan_messages", spy)
    whole = build_frame(OP_TEXT, "é") + build_frame(OP_BINARY, b"b" * 300)
    rest = build_frame(OP_PING, b"p") + build_frame(OP_TEXT, "c", fin=False) + build_frame(OP_CONTINUATION, "d")
    conn = ServerConnection(max_payload=1000)
    events = conn.receive_data(whole + rest)
    assert calls[0] == (0, len(whole))
    assert events[:2] == ["é", b"b" * 300]
    assert isinstance(events[2], Ping) and events[3] == "cd"
    # too big or invalid: left to the Python parser, which fails the connection
    for bad, code in ((build_frame(OP_BINARY, b"x" * 1001), 1009), (build_frame(OP_TEXT, b"\xff"), 1007)):
        conn = ServerConnection(max_payload=1000)
        assert failure_code(conn.receive_data(bad)) == code
