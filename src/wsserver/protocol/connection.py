"""The WebSocket connection state machine, server side (RFC 6455 sections 5-7).

``ServerConnection`` takes the bytes a client sends and returns events; it
builds the bytes to send back. It never touches a socket, a clock or an event
loop, so every protocol decision is made (and tested) here.

Events returned by :meth:`ServerConnection.receive_data`:

* a ``str`` — a complete text message;
* a ``bytes`` — a complete binary message;
* :class:`Ping`, :class:`Pong` — control frames (a ping is not answered
  here: the caller sends the pong, in order with its other replies);
* :class:`CloseReceived` — the peer's close frame (the answer is already in
  :attr:`ServerConnection.output`; once it is sent, close TCP);
* :class:`Failure` — the peer broke the protocol; a close frame with the
  RFC's code is already in ``output``; send it, then close TCP.

Messages are delivered as plain ``str``/``bytes`` rather than wrapped in an
event object: they are the hot path and need no allocation beyond the data.
"""

from __future__ import annotations

from struct import Struct

from ._accel import speedups
from .close_codes import (
    INVALID_PAYLOAD,
    NO_STATUS_RECEIVED,
    POLICY_VIOLATION,
    PROTOCOL_ERROR,
)
from .deflate import PerMessageDeflate, max_compressed_size
from .errors import PayloadTooBig, ProtocolError
from .frames import (
    MAX_CONTROL_PAYLOAD,
    OP_BINARY,
    OP_CLOSE,
    OP_CONTINUATION,
    OP_PING,
    OP_PONG,
    OP_TEXT,
    encode_close_payload,
    encode_frame,
    parse_close_payload,
)
from .mask import apply_mask
from .utf8 import Utf8Decoder

__all__ = [
    "ServerConnection",
    "Ping",
    "Pong",
    "CloseReceived",
    "Failure",
    "Event",
    "CONNECTING",
    "OPEN",
    "CLOSING",
    "CLOSED",
]

CONNECTING = 0
OPEN = 1
CLOSING = 2
CLOSED = 3

# C fast path for frames that are whole messages by themselves (or None)
_scan_messages = speedups.scan_messages if speedups is not None else None

_U16 = Struct("!H")
_U64 = Struct("!Q")


class Ping:
    """A ping frame was received."""

    __slots__ = ("data",)

    def __init__(self, data: bytes) -> None:
        self.data = data

    def __repr__(self) -> str:
        return f"Ping({self.data!r})"


class Pong:
    """A pong frame was received."""

    __slots__ = ("data",)

    def __init__(self, data: bytes) -> None:
        self.data = data

    def __repr__(self) -> str:
        return f"Pong({self.data!r})"


class CloseReceived:
    """The peer's close frame: ``code`` is 1005 when it carried none."""

    __slots__ = ("code", "reason")

    def __init__(self, code: int, reason: str) -> None:
        self.code = code
        self.reason = reason

    def __repr__(self) -> str:
        return f"CloseReceived({self.code}, {self.reason!r})"


class Failure:
    """The connection was failed: ``error`` says why, with the close code sent."""

    __slots__ = ("error",)

    def __init__(self, error: ProtocolError) -> None:
        self.error = error

    def __repr__(self) -> str:
        return f"Failure({self.error!r})"


Event = str | bytes | Ping | Pong | CloseReceived | Failure


class ServerConnection:
    """Server side of one WebSocket connection after the handshake.

    ``max_payload`` bounds one message in bytes (after reassembly and
    decompression); ``max_fragments`` bounds the frames of one message.
    ``deflate`` is the negotiated permessage-deflate extension, if any.
    Answering pings is left to the caller (it is a policy, ``autoPong``, and the
    pong must go out in order with the replies to the messages around it).
    """

    __slots__ = (
        "state",
        "output",
        "close_code",
        "close_reason",
        "close_sent",
        "max_payload",
        "max_fragments",
        "deflate",
        "_buffer",
        "_message_opcode",
        "_message_parts",
        "_message_size",
        "_message_fragments",
        "_message_compressed",
        "_compressed_size",
        "_decoder",
        "_streamed",
    )

    def __init__(
        self,
        *,
        max_payload: int = 16 * 1024 * 1024,
        max_fragments: int = 100_000,
        deflate: PerMessageDeflate | None = None,
    ) -> None:
        self.state = OPEN
        #: bytes to send, appended by receive_data (pongs, close frames) and send_*
        self.output: list[bytes] = []
        #: the peer's close code and reason, or the code we failed with
        self.close_code: int | None = None
        self.close_reason = ""
        self.close_sent = False
        self.max_payload = max_payload
        self.max_fragments = max_fragments
        self.deflate = deflate
        self._buffer = bytearray()
        self._message_opcode = 0  # opcode of the fragmented message in progress
        self._message_parts: list[bytes] | list[str] = []
        self._message_size = 0
        self._message_fragments = 0
        self._message_compressed = False
        self._compressed_size = 0  # compressed bytes of the message in progress
        self._decoder: Utf8Decoder | None = None
        self._streamed = 0  # payload bytes of the incomplete text frame already decoded

    # -- receiving -------------------------------------------------------

    def receive_data(self, data: bytes) -> list[Event]:
        """Parse ``data``; return the events it completes."""
        if self.state == CLOSED:
            return []
        buffer = self._buffer
        if buffer:
            buffer += data
            buf: bytes | bytearray = buffer
        else:
            buf = data
        events: list[Event] = []
        pos = 0
        end_of_data = len(buf)
        scan = _scan_messages
        try:
            while True:
                if scan is not None and not self._message_opcode and not self._streamed:
                    pos = scan(buf, pos, self.max_payload, events)
                if end_of_data - pos < 2:
                    break
                first = buf[pos]
                second = buf[pos + 1]
                length = second & 0x7F
                if length < 126:
                    start = pos + 6
                elif length == 126:
                    if end_of_data - pos < 8:
                        break
                    length = _U16.unpack_from(buf, pos + 2)[0]
                    start = pos + 8
                else:
                    if end_of_data - pos < 14:
                        break
                    length = _U64.unpack_from(buf, pos + 2)[0]
                    start = pos + 14
                    if length >> 63:
                        raise ProtocolError(PROTOCOL_ERROR, "64-bit length with the high bit set")
                if not second & 0x80:
                    raise ProtocolError(PROTOCOL_ERROR, "client frame is not masked")
                opcode = first & 0x0F
                if first & 0x70:
                    self._check_rsv(first, opcode)
                if opcode >= 8:
                    if opcode > OP_PONG:
                        raise ProtocolError(PROTOCOL_ERROR, f"reserved opcode {opcode}")
                    if length > MAX_CONTROL_PAYLOAD:
                        raise ProtocolError(PROTOCOL_ERROR, "control frame payload over 125 bytes")
                    if not first & 0x80:
                        raise ProtocolError(PROTOCOL_ERROR, "fragmented control frame")
                else:
                    if opcode > OP_BINARY:
                        raise ProtocolError(PROTOCOL_ERROR, f"reserved opcode {opcode}")
                    if opcode == OP_CONTINUATION:
                        if not self._message_opcode:
                            raise ProtocolError(
                                PROTOCOL_ERROR, "continuation frame without a message"
                            )
                    elif self._message_opcode:
                        raise ProtocolError(
                            PROTOCOL_ERROR, "new message before the previous one ended"
                        )
                    if first & 0x40 or self._message_compressed:
                        # maxPayload counts inflated bytes (checked as they are
                        # inflated); bound the compressed bytes buffered too
                        if self._compressed_size + length > max_compressed_size(
                            self.max_payload, self._message_fragments + 1
                        ):
                            raise PayloadTooBig(
                                f"compressed message over maxPayload ({self.max_payload} bytes)"
                            )
                    elif self._message_size + length > self.max_payload:
                        raise PayloadTooBig(f"message over maxPayload ({self.max_payload} bytes)")
                end = start + length
                if end > end_of_data:
                    if start < end_of_data and opcode < 8:
                        self._stream_partial(buf, first, opcode, start, end_of_data)
                    break
                payload = apply_mask(buf[start:end], buf[start - 4 : start], 0)
                pos = end
                if first & 0xC0 == 0x80 and opcode and not self._message_opcode:
                    # a whole, uncompressed message in one frame: the hot path
                    if opcode == OP_BINARY:
                        events.append(payload)
                    elif opcode == OP_TEXT:
                        if self._streamed:
                            events.append(self._finish_streamed_text(payload))
                        else:
                            try:
                                events.append(payload.decode("utf-8"))
                            except UnicodeDecodeError:
                                raise ProtocolError(
                                    INVALID_PAYLOAD, "text message is not valid UTF-8"
                                ) from None
                    else:
                        self._control_frame(opcode, payload, events)
                        if self.state == CLOSED:
                            self._buffer = bytearray()
                            return events
                elif opcode < 8:
                    message = self._data_frame(first, opcode, payload)
                    if message is not None:
                        events.append(message)
                else:
                    self._control_frame(opcode, payload, events)
                    if self.state == CLOSED:
                        self._buffer = bytearray()
                        return events
        except ProtocolError as error:
            self._fail(error, events)
            return events
        if pos < end_of_data:
            if buf is data:
                self._buffer = bytearray(memoryview(data)[pos:])
            elif pos:
                del buffer[:pos]
        elif buf is not data:
            self._buffer = bytearray()
        return events

    def _check_rsv(self, first: int, opcode: int) -> None:
        """RSV1 is allowed only on the first frame of a message, with deflate."""
        if first & 0x30 or self.deflate is None or opcode == OP_CONTINUATION or opcode >= 8:
            raise ProtocolError(PROTOCOL_ERROR, "reserved bits set without an extension")

    def _stream_partial(self, buf: bytes | bytearray, first: int, opcode: int, start: int, available: int) -> None:
        """Decode the arrived part of an incomplete text frame (fail-fast UTF-8)."""
        text = opcode == OP_TEXT or (opcode == OP_CONTINUATION and self._message_opcode == OP_TEXT)
        if not text or first & 0x40 or self._message_compressed:
            return
        if opcode == OP_CONTINUATION and self._message_fragments >= self.max_fragments:
            # fail as the frame's completion would, whatever its payload: the
            # events must not depend on how the bytes were split into reads
            raise self._too_many_fragments()
        done = self._streamed
        if available - start <= done:
            return
        piece = apply_mask(buf[start + done : available], buf[start - 4 : start], done)
        if self._decoder is None:
            self._decoder = Utf8Decoder()
        try:
            decoded = self._decoder.decode(piece)
        except UnicodeDecodeError:
            raise ProtocolError(INVALID_PAYLOAD, "text message is not valid UTF-8") from None
        self._message_parts.append(decoded)  # type: ignore[arg-type]
        self._streamed = available - start

    def _too_many_fragments(self) -> ProtocolError:
        return ProtocolError(POLICY_VIOLATION, f"message over {self.max_fragments} fragments")

    def _finish_streamed_text(self, payload: bytes) -> str:
        """Complete a single-frame text message whose start was already decoded."""
        self._message_opcode = OP_TEXT
        self._append_text(payload, True)
        return self._take_message()  # type: ignore[return-value]

    def _append_text(self, payload: bytes, fin: bool) -> None:
        if self._decoder is None:
            self._decoder = Utf8Decoder()
        rest = payload[self._streamed :] if self._streamed else payload
        self._streamed = 0
        try:
            decoded = self._decoder.decode(rest, fin)
        except UnicodeDecodeError:
            raise ProtocolError(INVALID_PAYLOAD, "text message is not valid UTF-8") from None
        self._message_parts.append(decoded)  # type: ignore[arg-type]

    def _take_message(self) -> str | bytes:
        parts = self._message_parts
        if self._message_opcode == OP_TEXT:
            message: str | bytes = "".join(parts)  # type: ignore[arg-type]
        else:
            message = b"".join(parts)  # type: ignore[arg-type]
        self._message_opcode = 0
        self._message_parts = []
        self._message_size = 0
        self._message_fragments = 0
        self._message_compressed = False
        self._compressed_size = 0
        self._decoder = None
        return message

    def _data_frame(self, first: int, opcode: int, payload: bytes) -> str | bytes | None:
        """A data frame that is not a whole uncompressed message by itself."""
        fin = bool(first & 0x80)
        if opcode == OP_CONTINUATION:
            self._message_fragments += 1
            if self._message_fragments > self.max_fragments:
                raise self._too_many_fragments()
        else:  # text or binary, starting a message (sequencing checked by the parser)
            self._message_opcode = opcode
            self._message_fragments = 1
            self._message_compressed = bool(first & 0x40)
        if self._message_compressed:
            assert self.deflate is not None
            self._compressed_size += len(payload)
            payload = self.deflate.decompress(
                payload, fin, self.max_payload - self._message_size
            )
        self._message_size += len(payload)
        if self._message_size > self.max_payload:
            raise PayloadTooBig(f"message over maxPayload ({self.max_payload} bytes)")
        if self._message_opcode == OP_TEXT:
            self._append_text(payload, fin)
        elif payload:
            self._message_parts.append(payload)  # type: ignore[arg-type]
        if fin:
            return self._take_message()
        return None

    def _control_frame(self, opcode: int, payload: bytes, events: list[Event]) -> None:
        if opcode == OP_PING:
            events.append(Ping(payload))
        elif opcode == OP_PONG:
            events.append(Pong(payload))
        elif opcode == OP_CLOSE:
            code, reason = parse_close_payload(payload)
            if not self.close_sent:
                # echo the code (RFC 6455 section 5.5.1); no reason needed
                echo = payload[:2] if code != NO_STATUS_RECEIVED else b""
                self.output.append(encode_frame(OP_CLOSE, echo))
                self.close_sent = True
            self.close_code = code
            self.close_reason = reason
            self.state = CLOSED
            events.append(CloseReceived(code, reason))

    def _fail(self, error: ProtocolError, events: list[Event]) -> None:
        """Fail the connection: queue a close frame with the error's code."""
        if not self.close_sent:
            self.output.append(
                encode_frame(OP_CLOSE, encode_close_payload(error.code, error.reason[:120]))
            )
            self.close_sent = True
        if self.close_code is None:
            self.close_code = error.code
            self.close_reason = error.reason
        self.state = CLOSED
        self._buffer = bytearray()
        self._message_parts = []
        # the traceback's frames hold the message's buffers (up to maxPayload,
        # inflated) and the events list this Failure goes into: a reference
        # cycle that would keep them alive until the cyclic GC runs
        error.__traceback__ = None
        events.append(Failure(error))

    # -- sending ---------------------------------------------------------

    def send_close(self, code: int | None = 1000, reason: str = "") -> None:
        """Start the closing handshake (queues the close frame in ``output``)."""
        if self.close_sent or self.state != OPEN:
            return
        self.output.append(encode_frame(OP_CLOSE, encode_close_payload(code, reason)))
        self.close_sent = True
        self.state = CLOSING

    def encode_message(
        self,
        opcode: int,
        payload: bytes,
        compress: bool | None = None,
        mask_key: bytes | None = None,
    ) -> bytes:
        """Frame one message, compressed when deflate was negotiated and
        ``compress`` is true (``None``: when it reaches the threshold)."""
        deflate = self.deflate
        if deflate is not None and (
            compress or (compress is None and len(payload) >= deflate.threshold)
        ):
            return encode_frame(opcode, deflate.compress(payload), rsv1=True, mask_key=mask_key)
        return encode_frame(opcode, payload, mask_key=mask_key)

    def fail(self, error: ProtocolError) -> list[Event]:
        """Fail the connection from outside the parser (e.g. a policy decision)."""
        events: list[Event] = []
        if self.state != CLOSED:
            self._fail(error, events)
        return events
