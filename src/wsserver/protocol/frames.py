"""Frame opcodes and frame building (RFC 6455 section 5.2).

Parsing lives in :mod:`wsserver.protocol.connection`, where it is fused with
reassembly and validation; this module builds frames, which both the
connection state machine and ``Server.broadcast`` (frame once, send to many)
need.
"""

from __future__ import annotations

from struct import Struct

from .close_codes import NO_STATUS_RECEIVED, PROTOCOL_ERROR, is_valid_on_wire
from .errors import ProtocolError
from .mask import apply_mask

__all__ = [
    "OP_CONTINUATION",
    "OP_TEXT",
    "OP_BINARY",
    "OP_CLOSE",
    "OP_PING",
    "OP_PONG",
    "encode_frame",
    "encode_close_payload",
    "parse_close_payload",
]

OP_CONTINUATION = 0x0
OP_TEXT = 0x1
OP_BINARY = 0x2
OP_CLOSE = 0x8
OP_PING = 0x9
OP_PONG = 0xA

FIN = 0x80
RSV1 = 0x40
MASK_BIT = 0x80
MAX_CONTROL_PAYLOAD = 125

# Ready-made 2-byte headers of unmasked final frames shorter than 126 bytes,
# indexed [opcode][length]: the common case of encode_frame without arithmetic.
SHORT_HEADERS = [[bytes((FIN | opcode, length)) for length in range(126)] for opcode in range(16)]

_HEADER_16 = Struct("!BBH")
_HEADER_64 = Struct("!BBQ")
_CLOSE_CODE = Struct("!H")


def encode_frame(
    opcode: int,
    payload: bytes | bytearray | memoryview,
    *,
    fin: bool = True,
    rsv1: bool = False,
    mask_key: bytes | None = None,
) -> bytes:
    """One frame carrying ``payload``; masked with ``mask_key`` when given."""
    length = len(payload)
    if length < 126 and fin and mask_key is None and not rsv1:
        return SHORT_HEADERS[opcode][length] + payload
    first = opcode | (FIN if fin else 0) | (RSV1 if rsv1 else 0)
    mask_bit = MASK_BIT if mask_key is not None else 0
    if length < 126:
        header = bytes((first, length | mask_bit))
    elif length < 65536:
        header = _HEADER_16.pack(first, 126 | mask_bit, length)
    else:
        header = _HEADER_64.pack(first, 127 | mask_bit, length)
    if mask_key is not None:
        return header + mask_key + apply_mask(payload, mask_key, 0)
    return header + payload


def encode_close_payload(code: int | None, reason: str = "") -> bytes:
    """The payload of a close frame: the code then the UTF-8 reason (or nothing)."""
    if code is None or code == NO_STATUS_RECEIVED:
        return b""
    return _CLOSE_CODE.pack(code) + reason.encode("utf-8")


def parse_close_payload(payload: bytes) -> tuple[int, str]:
    """``(code, reason)`` of a received close frame; 1005 when it carries no code.

    Raises :class:`ProtocolError` (1002 for a bad length or code, 1007 for a
    reason that is not UTF-8).
    """
    if not payload:
        return NO_STATUS_RECEIVED, ""
    if len(payload) == 1:
        raise ProtocolError(PROTOCOL_ERROR, "close frame payload of 1 byte")
    code = _CLOSE_CODE.unpack_from(payload)[0]
    if not is_valid_on_wire(code):
        raise ProtocolError(PROTOCOL_ERROR, f"invalid close code {code}")
    try:
        reason = payload[2:].decode("utf-8")
    except UnicodeDecodeError:
        raise ProtocolError(1007, "close reason is not valid UTF-8") from None
    return code, reason
