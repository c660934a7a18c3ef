"""permessage-deflate in the sans-I/O layer: negotiation, codec, limits.

The ``ServerConnection`` tests run on both parser paths (``parser_path``):
compressed frames always take the Python path, uncompressed ones around them
may take the C scan.
"""

from __future__ import annotations

import gc
import itertools
import os
import tracemalloc
import zlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from websockets.extensions.permessage_deflate import ClientPerMessageDeflateFactory
from websockets.typing import ExtensionParameter

from rawclient import build_frame, parse_frames
from wsserver.protocol.connection import CloseReceived, Failure, ServerConnection
from wsserver.protocol.deflate import (
    DeflateSettings,
    PerMessageDeflate,
    max_compressed_size,
    negotiate,
    parse_extensions,
)
from wsserver.protocol.errors import PayloadTooBig, ProtocolError
from wsserver.protocol.frames import OP_BINARY, OP_CLOSE, OP_CONTINUATION, OP_PING, OP_TEXT

TAIL = b"\x00\x00\xff\xff"
RSV1 = 4  # build_frame's rsv bits

pytestmark = pytest.mark.usefixtures("parser_path")


def client_compress(data: bytes, bits: int = 15, compressor: zlib._Compress | None = None) -> bytes:
    """What an RFC 7692 client sends: raw deflate, sync flush, tail stripped."""
    compressor = compressor or zlib.compressobj(wbits=-bits)
    out = compressor.compress(data) + compressor.flush(zlib.Z_SYNC_FLUSH)
    assert out.endswith(TAIL)
    return out[:-4]


def client_decompress(data: bytes, decompressor: zlib._Decompress | None = None) -> bytes:
    """What an RFC 7692 client does with our payload."""
    decompressor = decompressor or zlib.decompressobj(wbits=-15)
    return decompressor.decompress(data + TAIL)


def zeros_bomb(mebibytes: int) -> bytes:
    """A compressed payload of ``mebibytes`` MiB of zeros: one sync-flushed
    block of 1 MiB of zeros (distance-1 matches only) repeated, ~1 KiB/MiB."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    block = compressor.compress(bytes(1 << 20)) + compressor.flush(zlib.Z_SYNC_FLUSH)
    return (block * mebibytes)[:-4]


def frame(opcode: int, payload: bytes, *, fin: bool = True, rsv1: bool = False) -> bytes:
    """A masked client frame (random key); RSV1 marks a compressed message."""
    return build_frame(opcode, payload, fin=fin, rsv=RSV1 if rsv1 else 0, key=os.urandom(4))


def accepted(offer: str, **settings: object) -> tuple[str, PerMessageDeflate]:
    result = negotiate([offer], DeflateSettings(**settings))  # type: ignore[arg-type]
    assert result is not None, offer
    return result


def declined(offer: str | list[str], **settings: object) -> bool:
    values = [offer] if isinstance(offer, str) else offer
    return negotiate(values, DeflateSettings(**settings)) is None  # type: ignore[arg-type]


def close_code(proto: ServerConnection) -> int | None:
    """The code of the close frame the state machine queued (the last frame)."""
    last = parse_frames(b"".join(proto.output))[-1]
    assert last.opcode == OP_CLOSE
    return last.close_code


# -- parsing the header -------------------------------------------------------


def test_parse_offers_in_order_across_header_values() -> None:
    offers = parse_extensions(
        [
            'permessage-deflate; client_max_window_bits, permessage-deflate; server_max_window_bits="10"',
            'x-foo; a="b;,c\\"d"; e, ,',
        ]
    )
    assert offers == [
        ("permessage-deflate", [("client_max_window_bits", None)]),
        ("permessage-deflate", [("server_max_window_bits", "10")]),
        ("x-foo", [("a", 'b;,c"d'), ("e", None)]),
    ]


def test_parse_marks_malformed_elements() -> None:
    assert parse_extensions(["permessage-deflate; =1"]) == [("permessage-deflate", None)]
    assert parse_extensions(["permessage-deflate;;"]) == [("permessage-deflate", None)]
    assert parse_extensions(["; x"]) == [("", None)]
    # an unbalanced quote spoils the rest of that header value
    assert parse_extensions(['foo; bar="x, permessage-deflate']) == [("", None)]
    assert parse_extensions(["", " , "]) == []


# -- negotiation: each parameter of RFC 7692 section 7 -------------------------


def test_plain_offer_default_settings() -> None:
    response, codec = accepted("permessage-deflate")
    assert response == "permessage-deflate"
    assert not codec.server_no_context_takeover and not codec.client_no_context_takeover
    assert codec.server_max_window_bits == 15 and codec.client_max_window_bits == 15
    assert codec.threshold == 1024


def test_server_no_context_takeover_offered_or_configured() -> None:
    response, codec = accepted("permessage-deflate; server_no_context_takeover")
    assert response == "permessage-deflate; server_no_context_takeover"
    assert codec.server_no_context_takeover
    response, codec = accepted("permessage-deflate", server_no_context_takeover=True)
    assert response == "permessage-deflate; server_no_context_takeover"
    assert codec.server_no_context_takeover


def test_client_no_context_takeover_offered_or_configured() -> None:
    response, codec = accepted("permessage-deflate; client_no_context_takeover")
    assert response == "permessage-deflate; client_no_context_takeover"
    assert codec.client_no_context_takeover
    response, codec = accepted("permessage-deflate", client_no_context_takeover=True)
    assert response == "permessage-deflate; client_no_context_takeover"
    assert codec.client_no_context_takeover


@pytest.mark.parametrize(
    ("offered", "configured", "agreed"),
    [(10, None, 10), (9, None, 9), (15, None, 15), (13, 11, 11), (9, 11, 9), (None, 11, 11)],
)
def test_server_max_window_bits(offered: int | None, configured: int | None, agreed: int) -> None:
    offer = "permessage-deflate" + (f"; server_max_window_bits={offered}" if offered else "")
    response, codec = accepted(offer, server_max_window_bits=configured)
    assert response == f"permessage-deflate; server_max_window_bits={agreed}"
    assert codec.server_max_window_bits == agreed


def test_server_max_window_bits_8_is_declined_zlib_cannot_compress_with_it() -> None:
    assert declined("permessage-deflate; server_max_window_bits=8")
    assert declined("permessage-deflate; server_max_window_bits=8", server_max_window_bits=12)
    # ... but the next offer is taken
    response, _ = accepted(
        "permessage-deflate; server_max_window_bits=8, permessage-deflate; server_max_window_bits=9"
    )
    assert response == "permessage-deflate; server_max_window_bits=9"


@pytest.mark.parametrize(
    ("offer", "configured", "response_bits", "agreed"),
    [
        ("client_max_window_bits", None, None, 15),  # no value, no cap: not in the response
        ("client_max_window_bits=10", None, 10, 10),  # a hint: echoed, smaller inflate window
        ("client_max_window_bits=8", None, 8, 8),  # inflated with 9 bits, a superset
        ("client_max_window_bits", 10, 10, 10),  # no value: the server picks
        ("client_max_window_bits=12", 10, 10, 10),
        ("client_max_window_bits=9", 10, 9, 9),
    ],
)
def test_client_max_window_bits(
    offer: str, configured: int | None, response_bits: int | None, agreed: int
) -> None:
    response, codec = accepted(f"permessage-deflate; {offer}", client_max_window_bits=configured)
    expected = "permessage-deflate"
    if response_bits is not None:
        expected += f"; client_max_window_bits={response_bits}"
    assert response == expected
    assert codec.client_max_window_bits == agreed


def test_client_max_window_bits_configured_declines_clients_that_cannot_be_capped() -> None:
    # RFC 7692 7.1.2.2: the response may carry it only if the offer did (as ws does)
    assert declined("permessage-deflate", client_max_window_bits=10)
    response, _ = accepted(
        "permessage-deflate, permessage-deflate; client_max_window_bits", client_max_window_bits=10
    )
    assert response == "permessage-deflate; client_max_window_bits=10"


def test_every_parameter_at_once() -> None:
    response, codec = accepted(
        "permessage-deflate; server_no_context_takeover; client_no_context_takeover;"
        " server_max_window_bits=10; client_max_window_bits=11"
    )
    assert response == (
        "permessage-deflate; server_no_context_takeover; client_no_context_takeover;"
        " server_max_window_bits=10; client_max_window_bits=11"
    )
    assert (codec.server_max_window_bits, codec.client_max_window_bits) == (10, 11)


@pytest.mark.parametrize(
    "params",
    [
        "; unknown_param",
        "; server_max_window_bits",  # needs a value
        "; server_max_window_bits=16",
        "; server_max_window_bits=7",
        "; server_max_window_bits=010",  # leading zero
        "; server_max_window_bits=ten",
        '; server_max_window_bits=""',
        "; client_max_window_bits=16",
        "; client_max_window_bits=0",
        "; server_no_context_takeover=1",
        '; client_no_context_takeover=""',
        "; server_no_context_takeover; server_no_context_takeover",  # repeated
        "; client_max_window_bits; client_max_window_bits=10",
        "; server_max_window_bits=10; server_max_window_bits=10",
        "; =10",  # malformed
        "; server_max_window_bits==10",
    ],
)
def test_invalid_offers_are_declined(params: str) -> None:
    assert declined("permessage-deflate" + params)
    # declining one offer does not decline the next one
    response, _ = accepted(f"permessage-deflate{params}, permessage-deflate")
    assert response == "permessage-deflate"


def test_quoted_values_names_case_and_other_extensions() -> None:
    response, codec = accepted('x-webkit-deflate-frame, PerMessage-Deflate; Server_Max_Window_Bits="11"')
    assert response == "permessage-deflate; server_max_window_bits=11"
    assert codec.server_max_window_bits == 11
    assert declined("x-webkit-deflate-frame; no_context_takeover")
    assert declined([])


def test_first_acceptable_offer_across_several_headers() -> None:
    result = negotiate(
        [
            "permessage-deflate; server_max_window_bits=8",
            "permessage-deflate; client_no_context_takeover, permessage-deflate",
        ],
        DeflateSettings(),
    )
    assert result is not None
    assert result[0] == "permessage-deflate; client_no_context_takeover"


@pytest.mark.parametrize(
    ("client", "settings"),
    [
        ({}, {}),
        ({"server_no_context_takeover": True, "client_no_context_takeover": True}, {}),
        ({"server_max_window_bits": 10, "client_max_window_bits": 9}, {}),
        ({"client_max_window_bits": True}, {"client_max_window_bits": 11, "server_max_window_bits": 12}),
        ({"server_max_window_bits": 14}, {"server_max_window_bits": 10}),
        ({}, {"server_no_context_takeover": True, "client_no_context_takeover": True}),
    ],
)
def test_response_verified_by_an_independent_client(
    client: dict[str, object], settings: dict[str, object]
) -> None:
    """websockets' client checks our response against its offer (RFC 7692 rules)."""
    factory = ClientPerMessageDeflateFactory(**client)  # type: ignore[arg-type]
    offer = "permessage-deflate" + "".join(
        f"; {name}" if value is None else f"; {name}={value}" for name, value in factory.get_request_params()
    )
    response, codec = accepted(offer, **settings)
    ((_, params),) = parse_extensions([response])
    response_params = [ExtensionParameter((key, value)) for key, value in params or []]
    extension = factory.process_response_params(response_params, [])
    # both sides agree on every parameter
    assert extension.local_no_context_takeover == codec.client_no_context_takeover
    assert extension.remote_no_context_takeover == codec.server_no_context_takeover
    assert extension.remote_max_window_bits == codec.server_max_window_bits
    assert extension.local_max_window_bits <= codec.client_max_window_bits


# -- settings ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("settings", "error"),
    [
        ({"server_max_window_bits": 8}, ValueError),
        ({"client_max_window_bits": 8}, ValueError),
        ({"server_max_window_bits": 16}, ValueError),
        ({"client_max_window_bits": "10"}, ValueError),
        ({"threshold": -1}, ValueError),
        ({"level": 10}, ValueError),
        ({"mem_level": 0}, ValueError),
        ({"server_no_context_takeover": "yes"}, TypeError),
        ({"window_bits": 10}, TypeError),
    ],
)
def test_invalid_settings(settings: dict[str, object], error: type[Exception]) -> None:
    with pytest.raises(error):
        DeflateSettings.from_mapping(settings)


def test_client_max_window_bits_true_means_no_cap() -> None:
    assert DeflateSettings(client_max_window_bits=True).client_max_window_bits is None


# -- the codec ----------------------------------------------------------------


def test_compress_round_trip_and_context_takeover() -> None:
    codec = PerMessageDeflate()
    decompressor = zlib.decompressobj(wbits=-15)
    message = b"the quick brown fox jumps over the lazy dog " * 40
    first = codec.compress(message)
    second = codec.compress(message)
    assert not first.endswith(TAIL)
    assert client_decompress(first, decompressor) == message
    assert client_decompress(second, decompressor) == message
    assert len(second) < len(first)  # the second refers back to the first
    assert codec._compressor is not None  # kept for the next message


def test_server_no_context_takeover_releases_the_compressor() -> None:
    codec = PerMessageDeflate(server_no_context_takeover=True, server_max_window_bits=9)
    assert codec._compressor is None  # created lazily
    message = os.urandom(100) * 30
    for _ in range(3):
        payload = codec.compress(message)
        assert codec._compressor is None
        # every message stands alone: a fresh decompressor with a 9-bit window reads it
        assert client_decompress(payload, zlib.decompressobj(wbits=-9)) == message


def test_empty_message() -> None:
    codec = PerMessageDeflate()
    assert client_decompress(codec.compress(b"")) == b""
    assert codec.decompress(client_compress(b""), True, 100) == b""
    assert codec.decompress(b"\x00", True, 100) == b""  # RFC 7692 7.2.3.6


def test_decompress_context_takeover_and_fragments() -> None:
    codec = PerMessageDeflate()
    compressor = zlib.compressobj(wbits=-15)
    message = b"abcdefgh" * 500
    for _ in range(3):
        payload = client_compress(message, compressor=compressor)
        parts = [payload[i : i + 7] for i in range(0, len(payload), 7)]
        out = b"".join(codec.decompress(part, i == len(parts) - 1, 10**6) for i, part in enumerate(parts))
        assert out == message
    assert codec._decompressor is not None  # the client keeps its context: so do we


def test_client_no_context_takeover_releases_the_decompressor() -> None:
    codec = PerMessageDeflate(client_no_context_takeover=True)
    data = client_compress(b"hello " * 100)
    assert codec.decompress(data[:5], False, 10**6)
    assert codec._decompressor is not None  # mid-message
    codec.decompress(data[5:], True, 10**6)
    assert codec._decompressor is None


def test_client_window_8_is_inflated() -> None:
    codec = PerMessageDeflate(client_max_window_bits=8)
    message = os.urandom(200) * 10
    assert codec.decompress(client_compress(message, bits=9), True, 10**6) == message


def test_final_block_ends_the_stream() -> None:
    """A client may end a message with a BFINAL block (RFC 7692 7.2.3.4)."""
    codec = PerMessageDeflate()
    for message in (b"first message " * 10, b"second message " * 10):
        compressor = zlib.compressobj(wbits=-15)
        payload = compressor.compress(message) + compressor.flush(zlib.Z_FINISH)
        assert codec.decompress(payload, True, 10**6) == message
    compressor = zlib.compressobj(wbits=-15)
    payload = compressor.compress(b"x" * 50) + compressor.flush(zlib.Z_FINISH)
    assert codec.decompress(payload, False, 10**6) == b"x" * 50
    with pytest.raises(ProtocolError) as info:
        codec.decompress(b"more", True, 10**6)
    assert info.value.code == 1007
    with pytest.raises(ProtocolError) as info:
        PerMessageDeflate().decompress(payload + b"junk", True, 10**6)
    assert info.value.code == 1007


def test_invalid_data_is_1007() -> None:
    with pytest.raises(ProtocolError) as info:
        PerMessageDeflate().decompress(b"\xff\xff\xff\xff", True, 10**6)
    assert info.value.code == 1007


@pytest.mark.parametrize("limit", [0, 1, 999, 1000, 1001])
def test_limit_is_exact(limit: int) -> None:
    payload = client_compress(b"a" * 1000)
    if limit >= 1000:
        assert PerMessageDeflate().decompress(payload, True, limit) == b"a" * 1000
    else:
        with pytest.raises(PayloadTooBig) as info:
            PerMessageDeflate().decompress(payload, True, limit)
        assert info.value.code == 1009


def test_bomb_never_inflates_past_the_limit() -> None:
    """64 MiB of zeros in a ~64 KiB payload: zlib is stopped at limit + 1."""
    payload = zeros_bomb(64)
    assert len(payload) < 100_000
    codec = PerMessageDeflate()
    limit = 1 << 20
    tracemalloc.start()
    try:
        with pytest.raises(PayloadTooBig):
            codec.decompress(payload, True, limit)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 3 * limit  # not 64 MiB
    assert codec._decompressor is None  # released at once


# -- in the connection state machine ----------------------------------------------


def deflate_connection(max_payload: int = 1 << 20, **params: object) -> ServerConnection:
    return ServerConnection(max_payload=max_payload, deflate=PerMessageDeflate(**params))  # type: ignore[arg-type]


def test_compressed_messages_single_and_fragmented() -> None:
    proto = deflate_connection()
    compressor = zlib.compressobj(wbits=-15)
    text = "héllo wörld " * 200
    events = proto.receive_data(
        frame(OP_TEXT, client_compress(text.encode(), compressor=compressor), rsv1=True)
    )
    assert events == [text]
    payload = client_compress(bytes(range(256)) * 20, compressor=compressor)
    data = (
        frame(OP_BINARY, payload[:10], fin=False, rsv1=True)
        + frame(OP_PING, b"p")
        + frame(OP_CONTINUATION, payload[10:20], fin=False)
        + frame(OP_CONTINUATION, payload[20:])
    )
    events = proto.receive_data(data)
    assert len(events) == 2 and events[1] == bytes(range(256)) * 20
    # an uncompressed message is still fine on a deflate connection
    assert proto.receive_data(frame(OP_TEXT, b"plain")) == ["plain"]


def test_compressed_message_byte_by_byte() -> None:
    proto = deflate_connection()
    message = "streamed " * 300
    data = frame(OP_TEXT, client_compress(message.encode()), rsv1=True)
    events = []
    for i in range(len(data)):
        events += proto.receive_data(data[i : i + 1])
    assert events == [message]


def test_compressed_invalid_utf8_is_1007() -> None:
    proto = deflate_connection()
    events = proto.receive_data(frame(OP_TEXT, client_compress(b"ok \xff\xfe"), rsv1=True))
    assert isinstance(events[-1], Failure) and events[-1].error.code == 1007
    assert close_code(proto) == 1007


@pytest.mark.parametrize(
    "data",
    [
        frame(OP_TEXT, b"x", fin=False) + frame(OP_CONTINUATION, client_compress(b"y"), rsv1=True),
        frame(OP_PING, b"x", rsv1=True),
    ],
    ids=["rsv1-on-continuation", "rsv1-on-control"],
)
def test_rsv1_where_it_is_not_allowed(data: bytes) -> None:
    proto = deflate_connection()
    events = proto.receive_data(data)
    assert isinstance(events[-1], Failure) and events[-1].error.code == 1002


def test_rsv1_without_deflate_is_1002() -> None:
    proto = ServerConnection()
    events = proto.receive_data(frame(OP_TEXT, client_compress(b"hi"), rsv1=True))
    assert isinstance(events[-1], Failure) and events[-1].error.code == 1002


def test_max_payload_counts_inflated_bytes() -> None:
    proto = deflate_connection(max_payload=10_000)
    assert proto.receive_data(frame(OP_BINARY, client_compress(bytes(10_000)), rsv1=True)) == [bytes(10_000)]
    events = proto.receive_data(frame(OP_BINARY, client_compress(bytes(10_001)), rsv1=True))
    assert isinstance(events[-1], Failure) and events[-1].error.code == 1009
    assert close_code(proto) == 1009


def test_a_failure_keeps_no_message_buffers_alive() -> None:
    """The Failure's error carries no traceback: its frames would hold the
    inflated bytes in a reference cycle with the events list until the cyclic
    GC ran (measured with the GC off)."""
    payload = client_compress(bytes(4 << 20))
    gc.disable()
    tracemalloc.start()
    try:
        proto = deflate_connection(max_payload=1 << 20)
        events = proto.receive_data(frame(OP_BINARY, payload, rsv1=True))
        current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
        gc.enable()
    assert isinstance(events[-1], Failure) and events[-1].error.code == 1009
    assert events[-1].error.__traceback__ is None
    assert peak > 1 << 20  # it did inflate up to the limit...
    assert current < 256 * 1024  # ...and let it all go


def test_max_payload_across_compressed_fragments() -> None:
    proto = deflate_connection(max_payload=10_000)
    compressor = zlib.compressobj(wbits=-15)
    first = compressor.compress(bytes(6000)) + compressor.flush(zlib.Z_SYNC_FLUSH)
    second = client_compress(bytes(6000), compressor=compressor)
    assert proto.receive_data(frame(OP_BINARY, first, fin=False, rsv1=True)) == []
    events = proto.receive_data(frame(OP_CONTINUATION, second))
    assert isinstance(events[-1], Failure) and events[-1].error.code == 1009


def test_compressed_wire_bytes_are_bounded_at_the_header() -> None:
    """A compressed frame longer than deflate's worst case for maxPayload is
    refused as soon as its header arrives, before its payload is buffered."""
    max_payload = 10_000
    proto = deflate_connection(max_payload=max_payload)
    length = max_compressed_size(max_payload, 1) + 1
    header = bytes((0x80 | 0x40 | OP_BINARY, 0x80 | 127)) + length.to_bytes(8, "big") + os.urandom(4)
    events = proto.receive_data(header)
    assert isinstance(events[-1], Failure) and events[-1].error.code == 1009
    # random data at maxPayload still fits: deflate's expansion is within the bound
    data = os.urandom(max_payload)
    payload = client_compress(data)
    assert len(payload) > max_payload
    proto = deflate_connection(max_payload=max_payload)
    assert proto.receive_data(frame(OP_BINARY, payload, rsv1=True)) == [data]


def test_encode_message_threshold_and_override() -> None:
    proto = deflate_connection()
    decompressor = zlib.decompressobj(wbits=-15)

    def sent(payload: bytes, compress: bool | None = None) -> tuple[bool, bytes]:
        data = proto.encode_message(OP_BINARY, payload, compress)
        length = data[1] & 0x7F
        start = 2 if length < 126 else 4 if length == 126 else 10
        body = data[start:]
        if data[0] & 0x40:
            return True, client_decompress(body, decompressor)
        return False, body

    assert sent(b"a" * 1023) == (False, b"a" * 1023)
    assert sent(b"a" * 1024) == (True, b"a" * 1024)
    assert sent(b"small", compress=True) == (True, b"small")
    assert sent(b"b" * 5000, compress=False) == (False, b"b" * 5000)
    assert sent(b"c" * 5000) == (True, b"c" * 5000)


def test_close_after_compressed_message() -> None:
    proto = deflate_connection()
    events = proto.receive_data(
        frame(OP_TEXT, client_compress(b"bye" * 10), rsv1=True) + frame(OP_CLOSE, b"\x03\xe8")
    )
    assert events[0] == "bye" * 10 and isinstance(events[1], CloseReceived)


@settings(max_examples=150, deadline=None)
@given(
    data=st.binary(max_size=5000)
    | st.builds(lambda n, b: b * n, st.integers(0, 3000), st.binary(min_size=1, max_size=4)),
    cuts=st.lists(st.integers(0, 6000), max_size=5),
    limit=st.integers(0, 12000),
    bits=st.integers(9, 15),
)
def test_decompress_is_exact_at_any_fragmentation(
    data: bytes, cuts: list[int], limit: int, bits: int
) -> None:
    """Whatever the frame boundaries, the message comes back whole if it fits
    in ``limit`` and fails with 1009 if not."""
    payload = client_compress(data, bits=bits)
    bounds = sorted({0, len(payload), *(cut for cut in cuts if cut < len(payload))})
    frames = [payload[a:b] for a, b in itertools.pairwise(bounds)] or [b""]
    codec = PerMessageDeflate(client_max_window_bits=bits)
    output = b""
    try:
        for i, part in enumerate(frames):
            output += codec.decompress(part, i == len(frames) - 1, limit - len(output))
    except PayloadTooBig:
        assert len(data) > limit
        assert len(output) <= limit
    else:
        assert len(data) <= limit
        assert output == data
