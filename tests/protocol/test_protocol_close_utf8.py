"""ServerConnection, sans I/O: the closing handshake and fail-fast UTF-8."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rawclient import build_frame, parse_frames
from wsserver.protocol import CLOSED, CLOSING, OPEN, CloseReceived, Failure, ServerConnection
from wsserver.protocol.frames import OP_BINARY, OP_CLOSE, OP_CONTINUATION, OP_PING, OP_TEXT
from wsserver.protocol.utf8 import Utf8Decoder

pytestmark = pytest.mark.usefixtures("parser_path")


def close_frame(code: int | None, reason: bytes = b"") -> bytes:
    payload = b"" if code is None else struct.pack("!H", code) + reason
    return build_frame(OP_CLOSE, payload)


def sent_frames(conn: ServerConnection) -> list:  # type: ignore[type-arg]
    return parse_frames(b"".join(conn.output))


# -- closing handshake --------------------------------------------------------


@pytest.mark.parametrize("code", [1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014, 3000, 3999, 4000, 4999])
def test_valid_close_code_is_reported_and_echoed(code: int) -> None:
    conn = ServerConnection()
    (event,) = conn.receive_data(close_frame(code, "bye é".encode()))
    assert isinstance(event, CloseReceived)
    assert (event.code, event.reason) == (code, "bye é")
    (echo,) = sent_frames(conn)
    assert echo.opcode == OP_CLOSE and echo.close_code == code
    assert conn.state == CLOSED
    assert (conn.close_code, conn.close_reason) == (code, "bye é")


def test_empty_close_is_1005_and_echoed_empty() -> None:
    conn = ServerConnection()
    (event,) = conn.receive_data(close_frame(None))
    assert isinstance(event, CloseReceived) and event.code == 1005 and event.reason == ""
    (echo,) = sent_frames(conn)
    assert echo.opcode == OP_CLOSE and echo.payload == b""


def test_close_payload_of_one_byte_fails_with_1002() -> None:
    conn = ServerConnection()
    events = conn.receive_data(build_frame(OP_CLOSE, b"\x03"))
    assert isinstance(events[-1], Failure) and events[-1].error.code == 1002
    assert sent_frames(conn)[0].close_code == 1002


@pytest.mark.parametrize("code", [0, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535])
def test_invalid_close_code_fails_with_1002(code: int) -> None:
    conn = ServerConnection()
    events = conn.receive_data(close_frame(code))
    assert len(events) == 1 and isinstance(events[0], Failure)
    assert events[0].error.code == 1002
    (frame,) = sent_frames(conn)
    assert frame.close_code == 1002


@pytest.mark.parametrize("reason", [b"\xff", b"ok\xc0\xaf", b"\xed\xa0\x80", b"\xf4\x90\x80\x80", b"\xe2\x82"])
def test_close_reason_that_is_not_utf8_fails_with_1007(reason: bytes) -> None:
    conn = ServerConnection()
    events = conn.receive_data(close_frame(1000, reason))
    assert len(events) == 1 and isinstance(events[0], Failure)
    assert events[0].error.code == 1007
    assert sent_frames(conn)[0].close_code == 1007


def test_server_initiated_close_then_the_echo() -> None:
    conn = ServerConnection()
    conn.send_close(1001, "going away")
    assert conn.state == CLOSING
    (frame,) = sent_frames(conn)
    assert (frame.close_code, frame.close_reason) == (1001, "going away")
    conn.output.clear()
    # messages still arrive while closing
    assert conn.receive_data(build_frame(OP_TEXT, "late")) == ["late"]
    (event,) = conn.receive_data(close_frame(1001))
    assert isinstance(event, CloseReceived) and event.code == 1001
    assert conn.state == CLOSED
    assert conn.output == []  # the close frame is not sent twice


def test_send_close_twice_sends_one_frame() -> None:
    conn = ServerConnection()
    conn.send_close(1000)
    conn.send_close(4000)
    assert len(sent_frames(conn)) == 1


def test_send_close_without_code_sends_an_empty_close_frame() -> None:
    conn = ServerConnection()
    conn.send_close(None)
    assert sent_frames(conn)[0].payload == b""


def test_bytes_after_the_close_frame_are_ignored() -> None:
    conn = ServerConnection()
    events = conn.receive_data(close_frame(1000) + build_frame(OP_TEXT, "after close"))
    assert len(events) == 1 and isinstance(events[0], CloseReceived)
    assert conn.receive_data(build_frame(OP_TEXT, "later")) == []
    assert len(sent_frames(conn)) == 1


# -- UTF-8 ------------------------------------------------------------------------

INVALID_TEXT = [b"\xff", b"\xc0\xaf", b"abc\xed\xa0\x80", b"\xf4\x90\x80\x80", b"\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xed\xa0\x80edited", b"\xe2\x82"]


@pytest.mark.parametrize("payload", INVALID_TEXT)
def test_invalid_utf8_text_message_fails_with_1007(payload: bytes) -> None:
    conn = ServerConnection()
    events = conn.receive_data(build_frame(OP_TEXT, payload))
    assert len(events) == 1 and isinstance(events[0], Failure) and events[0].error.code == 1007
    assert sent_frames(conn)[0].close_code == 1007


@pytest.mark.parametrize("payload", INVALID_TEXT)
def test_invalid_utf8_in_a_fragmented_message_fails_with_1007(payload: bytes) -> None:
    conn = ServerConnection()
    data = build_frame(OP_TEXT, b"ok ", fin=False) + build_frame(OP_CONTINUATION, payload)
    events = conn.receive_data(data)
    assert isinstance(events[-1], Failure) and events[-1].error.code == 1007


def test_binary_message_is_not_utf8_checked() -> None:
    conn = ServerConnection()
    assert conn.receive_data(build_frame(OP_BINARY, b"\xff\xed\xa0\x80")) == [b"\xff\xed\xa0\x80"]


@pytest.mark.parametrize("bad", [b"\xf4\x90", b"\xed\xa0", b"\xc0", b"\xf5", b"\xf8", b"\xe0\x80", b"\xf0\x80"])
def test_invalid_utf8_fails_while_the_frame_is_still_arriving(bad: bytes) -> None:
    """Autobahn 6.4.*: the Failure comes before the rest of the frame does."""
    conn = ServerConnection()
    prefix = b"valid prefix \xce\xba" + bad
    payload = prefix + b"\x80\x80" + b"tail" * 100
    frame = build_frame(OP_TEXT, payload)
    cut = len(frame) - len(payload) + len(prefix)  # header, key, then the prefix only
    events = conn.receive_data(frame[:cut])
    assert len(events) == 1 and isinstance(events[0], Failure), events
    assert events[0].error.code == 1007
    assert conn.receive_data(frame[cut:]) == []


def test_invalid_utf8_fails_early_in_a_streaming_continuation_frame() -> None:
    conn = ServerConnection()
    assert conn.receive_data(build_frame(OP_TEXT, "start ", fin=False)) == []
    payload = b"more \xed\xa0\x80 and more" * 10
    frame = build_frame(OP_CONTINUATION, payload)
    events = conn.receive_data(frame[: len(frame) - len(payload) + 7])  # up to "more \xed\xa0"
    assert len(events) == 1 and isinstance(events[0], Failure) and events[0].error.code == 1007


def test_incomplete_character_at_the_end_of_a_partial_frame_is_not_an_error() -> None:
    text = "😀€é" * 20
    frame = build_frame(OP_TEXT, text)
    conn = ServerConnection()
    assert conn.receive_data(frame[:7]) == []  # header + key + the first byte of 😀
    assert conn.state == OPEN
    assert conn.receive_data(frame[7:9]) == []
    assert conn.receive_data(frame[9:]) == [text]


def test_a_message_ending_inside_a_character_fails_with_1007() -> None:
    conn = ServerConnection()
    data = build_frame(OP_TEXT, b"ok \xf0\x9f", fin=False) + build_frame(OP_CONTINUATION, b"")
    events = conn.receive_data(data)
    assert isinstance(events[-1], Failure) and events[-1].error.code == 1007


def test_streamed_text_then_ping_then_more_messages() -> None:
    conn = ServerConnection()
    frame = build_frame(OP_TEXT, "é" * 100)
    assert conn.receive_data(frame[:50]) == []
    events = conn.receive_data(frame[50:] + build_frame(OP_PING, b"p") + build_frame(OP_TEXT, "next"))
    assert events[0] == "é" * 100
    assert events[2] == "next"


@settings(max_examples=60, deadline=None)
@given(
    st.text(min_size=0, max_size=300),
    st.lists(st.integers(min_value=1, max_value=40), max_size=30),
    st.integers(min_value=1, max_value=4),
)
def test_valid_text_survives_any_split_and_fragmentation(text: str, cuts: list[int], pieces: int) -> None:
    encoded = text.encode("utf-8", "surrogatepass")
    try:
        encoded.decode("utf-8")
    except UnicodeDecodeError:  # hypothesis may produce lone surrogates
        return
    step = max(1, len(encoded) // pieces)
    parts = [encoded[i : i + step] for i in range(0, len(encoded), step)] or [b""]
    data = b"".join(
        build_frame(OP_TEXT if index == 0 else OP_CONTINUATION, part, fin=index == len(parts) - 1)
        for index, part in enumerate(parts)
    )
    conn = ServerConnection()
    events: list[object] = []
    pos = 0
    for cut in cuts:
        events += conn.receive_data(data[pos : pos + cut])
        pos += cut
    events += conn.receive_data(data[pos:])
    assert events == [text]


@pytest.mark.parametrize("bad", [b"\xed\xa0", b"\xed\xbf", b"\xf4\x90", b"\xc0", b"\xe0\x80", b"\xf0\x8f"])
def test_utf8_decoder_fails_at_the_first_invalid_byte(bad: bytes) -> None:
    decoder = Utf8Decoder()
    assert decoder.decode(b"abc") == "abc"
    with pytest.raises(UnicodeDecodeError):
        decoder.decode(bad)


@pytest.mark.parametrize("good", [b"\xed\x9f", b"\xf4\x8f", b"\xe0\xa0", b"\xf0\x90"])
def test_utf8_decoder_waits_for_valid_prefixes(good: bytes) -> None:
    decoder = Utf8Decoder()
    assert decoder.decode(good) == ""
    with pytest.raises(UnicodeDecodeError):
        decoder.decode(b"", final=True)
