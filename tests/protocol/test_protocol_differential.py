"""Differential fuzzing: the C fast path and the pure-Python parser agree on any input."""

from __future__ import annotations

from typing import Any

from fuzz.targets import describe_event
from hypothesis import given, settings
from hypothesis import strategies as st

from rawclient import build_frame
from wsserver.protocol import ServerConnection, _speedups
from wsserver.protocol import connection as protocol_connection

TEXTS = st.text(max_size=40).map(lambda text: text.encode("utf-8", "surrogatepass"))
PAYLOADS = st.one_of(TEXTS, st.binary(max_size=300), st.sampled_from([b"\xed\xa0\x80", b"\xf4\x90\x80\x80", b"ok\xc3", b"\x03\xe8", b"\x03"]))
FRAMES = st.builds(
    lambda opcode, payload, fin, rsv, mask: build_frame(opcode, payload, fin=fin, rsv=rsv, mask=mask),
    opcode=st.sampled_from([0, 0, 1, 1, 2, 2, 8, 9, 10, 3, 11]),
    payload=PAYLOADS,
    fin=st.booleans() | st.just(True),
    rsv=st.sampled_from([0, 0, 0, 0, 0, 4, 2, 1]),
    mask=st.sampled_from([True] * 15 + [False]),
)


def describe(events: list[Any]) -> list[Any]:
    return [describe_event(event) for event in events]


def run(chunks: list[bytes], scan: Any, max_payload: int) -> tuple[list[Any], bytes, Any]:
    saved = protocol_connection._scan_messages
    protocol_connection._scan_messages = scan
    try:
        conn = ServerConnection(max_payload=max_payload, max_fragments=5)
        events: list[Any] = []
        for chunk in chunks:
            events += conn.receive_data(chunk)
        return describe(events), b"".join(conn.output), (conn.state, conn.close_code)
    finally:
        protocol_connection._scan_messages = saved


@settings(max_examples=300, deadline=None)
@given(
    st.lists(FRAMES, min_size=1, max_size=12),
    st.lists(st.integers(min_value=1, max_value=200), max_size=10),
    st.sampled_from([50, 200, 1 << 24]),
)
def test_c_scan_and_python_parser_agree(frames: list[bytes], cuts: list[int], max_payload: int) -> None:
    data = b"".join(frames)
    chunks = []
    pos = 0
    for cut in cuts:
        chunks.append(data[pos : pos + cut])
        pos += cut
    chunks.append(data[pos:])
    assert run(chunks, _speedups.scan_messages, max_payload) == run(chunks, None, max_payload)
    assert run([data], _speedups.scan_messages, max_payload) == run(chunks, None, max_payload)
