"""permessage-deflate (RFC 7692): negotiation and the codec, sans-I/O.

:func:`negotiate` reads the client's ``Sec-WebSocket-Extensions`` offers and
returns the response value with a :class:`PerMessageDeflate` codec, or
``None`` when no offer is acceptable (the connection then runs uncompressed).

The codec keeps memory small and bounded:

* the zlib compressor and decompressor are created on first use, so an
  idle connection that never sent or received a compressed message holds
  neither;
* when a side's context is not kept (``*_no_context_takeover``), its zlib
  object is dropped after every message instead of being kept idle;
* :meth:`PerMessageDeflate.decompress` never inflates past the limit it is
  given: it asks zlib for at most ``limit + 1`` bytes and raises
  :class:`PayloadTooBig` (close 1009) as soon as they appear, so a small
  compressed frame cannot inflate into memory (a "compression bomb").

zlib cannot compress with an LZ77 window of 8 bits (a raw deflate stream
rejects ``wbits=8``), so the server never agrees to compress with 8; it
inflates a client's 8-bit-window stream with a 9-bit window, which decodes
anything a 256-byte window can produce.
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Iterable, Mapping
from typing import Any

from .close_codes import INVALID_PAYLOAD
from .errors import PayloadTooBig, ProtocolError

__all__ = [
    "DEFAULT_THRESHOLD",
    "EXTENSION_NAME",
    "DeflateSettings",
    "PerMessageDeflate",
    "max_compressed_size",
    "negotiate",
    "parse_extensions",
]

EXTENSION_NAME = "permessage-deflate"
#: messages shorter than this many bytes are sent uncompressed (as in ``ws``)
DEFAULT_THRESHOLD = 1024

# The empty stored block that ends every compressed message (RFC 7692 7.2.1):
# the sender strips it, the receiver appends it back.
_TAIL = b"\x00\x00\xff\xff"

_SETTING_NAMES = (
    "server_no_context_takeover",
    "client_no_context_takeover",
    "server_max_window_bits",
    "client_max_window_bits",
    "threshold",
    "level",
    "mem_level",
)

# RFC 7230 token and quoted-string; RFC 6455 section 9.1 extension grammar.
_TOKEN = r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+"
_QUOTED = r'"(?:[^"\\]|\\.)*"'
# an element of a list (or a part of an element) up to the next separator
# outside quoted-strings
_UP_TO = {sep: re.compile(rf'(?:{_QUOTED}|[^{sep}"])*') for sep in ",;"}
_PARAM = re.compile(rf"\s*({_TOKEN})\s*(?:=\s*({_TOKEN}|{_QUOTED})\s*)?")
_NAME = re.compile(rf"\s*({_TOKEN})\s*")
_ESCAPE = re.compile(r"\\(.)")
# "a decimal integer value without leading zeroes between 8 to 15" (RFC 7692 7.1.2)
_WINDOW_BITS = re.compile(r"[89]|1[0-5]")

#: one parsed extension offer: its name and its ``(name, value)`` parameters
#: (``value`` is ``None`` for a parameter without one); ``None`` parameters
#: mark an element that does not follow the grammar
Extension = tuple[str, "list[tuple[str, str | None]] | None"]


def _split(text: str, separator: str) -> list[str] | None:
    """``text`` split at ``separator`` outside quoted-strings; ``None`` on a stray quote."""
    up_to = _UP_TO[separator]
    parts = []
    pos = 0
    while True:
        match = up_to.match(text, pos)
        assert match is not None  # the pattern matches the empty string
        end = match.end()
        parts.append(text[pos:end])
        if end == len(text):
            return parts
        if text[end] != separator:
            return None
        pos = end + 1


def _parse_params(parts: list[str]) -> list[tuple[str, str | None]] | None:
    """``name[=value]`` parameters, unquoted; ``None`` if one is malformed."""
    params: list[tuple[str, str | None]] = []
    for part in parts:
        param = _PARAM.fullmatch(part)
        if param is None:
            return None
        value = param.group(2)
        if value is not None and value.startswith('"'):
            value = _ESCAPE.sub(r"\1", value[1:-1])
        params.append((param.group(1).lower(), value))
    return params


def parse_extensions(values: Iterable[str]) -> list[Extension]:
    """Parse ``Sec-WebSocket-Extensions`` header values into offers.

    Offers appear in order across all values. An element that breaks the
    grammar is kept with parameters ``None`` (so it alone can be declined)
    and a name of ``""`` when even its name is unreadable; an unbalanced
    quote ends the parsing of that header value.
    """
    offers: list[Extension] = []
    for value in values:
        elements = _split(value, ",")
        if elements is None:
            offers.append(("", None))
            continue
        for element in elements:
            if not element.strip():
                continue  # the list grammar allows empty elements: "a, , b"
            parts = _split(element, ";")
            name_match = _NAME.fullmatch(parts[0]) if parts else None
            if parts is None or name_match is None:
                offers.append(("", None))
                continue
            offers.append((name_match.group(1).lower(), _parse_params(parts[1:])))
    return offers


def max_compressed_size(size: int, frames: int) -> int:
    """The most compressed bytes a message of ``size`` bytes in ``frames``
    frames may take: deflate's worst case is fixed Huffman codes at 9 bits
    per byte (+1/8), plus a little per flushed frame and per message."""
    return size + (size >> 3) + 16 * frames + 1024


class DeflateSettings:
    """The server's ``perMessageDeflate`` settings, validated.

    ``server_max_window_bits`` (9-15) and ``client_max_window_bits`` (9-15)
    cap the LZ77 windows (``None``: no cap of our own; a client that cannot
    be capped is declined when ``client_max_window_bits`` is set, as in
    ``ws``); ``*_no_context_takeover`` ask for a fresh context per message;
    ``threshold`` is the smallest message compressed by default; ``level``
    (-1 to 9, -1 = zlib's default) and ``mem_level`` (1-9) tune zlib.
    """

    __slots__ = _SETTING_NAMES

    def __init__(
        self,
        *,
        server_no_context_takeover: bool = False,
        client_no_context_takeover: bool = False,
        server_max_window_bits: int | None = None,
        client_max_window_bits: int | bool | None = None,
        threshold: int = DEFAULT_THRESHOLD,
        level: int = zlib.Z_DEFAULT_COMPRESSION,
        mem_level: int = 8,
    ) -> None:
        for name, flag in (
            ("server_no_context_takeover", server_no_context_takeover),
            ("client_no_context_takeover", client_no_context_takeover),
        ):
            if not isinstance(flag, bool):
                raise TypeError(f"perMessageDeflate {name} must be a bool, not {flag!r}")
        if client_max_window_bits is True:
            client_max_window_bits = None  # ws' spelling of "no cap of our own"
        for name, bits in (
            ("server_max_window_bits", server_max_window_bits),
            ("client_max_window_bits", client_max_window_bits),
        ):
            if bits is not None and (type(bits) is not int or not 9 <= bits <= 15):
                raise ValueError(
                    f"perMessageDeflate {name} must be 9 to 15 or None, not {bits!r} "
                    "(zlib cannot compress with an 8-bit window)"
                )
        if type(threshold) is not int or threshold < 0:
            raise ValueError(f"perMessageDeflate threshold must be an int >= 0, not {threshold!r}")
        if type(level) is not int or not -1 <= level <= 9:
            raise ValueError(f"perMessageDeflate level must be -1 to 9, not {level!r}")
        if type(mem_level) is not int or not 1 <= mem_level <= 9:
            raise ValueError(f"perMessageDeflate mem_level must be 1 to 9, not {mem_level!r}")
        self.server_no_context_takeover = server_no_context_takeover
        self.client_no_context_takeover = client_no_context_takeover
        self.server_max_window_bits: int | None = server_max_window_bits
        self.client_max_window_bits: int | None = client_max_window_bits
        self.threshold = threshold
        self.level = level
        self.mem_level = mem_level

    @classmethod
    def from_mapping(cls, settings: Mapping[str, Any]) -> DeflateSettings:
        """Settings from a dict with snake_case keys; unknown keys are a ``TypeError``."""
        unknown = set(settings) - set(_SETTING_NAMES)
        if unknown:
            raise TypeError(f"unknown perMessageDeflate setting(s): {', '.join(sorted(unknown))}")
        return cls(**settings)

    def __repr__(self) -> str:
        fields = ", ".join(f"{name}={getattr(self, name)!r}" for name in _SETTING_NAMES)
        return f"DeflateSettings({fields})"


class _Declined(Exception):
    """An offer this server cannot accept (it moves on to the next one)."""


def negotiate(
    header_values: Iterable[str], settings: DeflateSettings
) -> tuple[str, PerMessageDeflate] | None:
    """Accept the first acceptable permessage-deflate offer.

    Returns the ``Sec-WebSocket-Extensions`` response value and the codec,
    or ``None`` when no offer can be accepted (RFC 7692 section 7: offers
    with unknown, repeated or invalid parameters are declined, as are those
    asking for a window zlib cannot use). Other extensions are ignored.
    """
    for name, params in parse_extensions(header_values):
        if name != EXTENSION_NAME or params is None:
            continue
        try:
            return _accept(params, settings)
        except _Declined:
            continue
    return None


def _accept(params: list[tuple[str, str | None]], settings: DeflateSettings) -> tuple[str, PerMessageDeflate]:
    """The response to one offer and its codec; :class:`_Declined` if unacceptable."""
    offered: dict[str, str | None] = {}
    for name, value in params:
        if name in offered:
            raise _Declined(f"{name} repeated")
        offered[name] = value
        if name in ("server_no_context_takeover", "client_no_context_takeover"):
            if value is not None:
                raise _Declined(f"{name} takes no value")
        elif name == "server_max_window_bits":
            if value is None or not _WINDOW_BITS.fullmatch(value):
                raise _Declined(f"{name} must be 8 to 15")
        elif name == "client_max_window_bits":
            if value is not None and not _WINDOW_BITS.fullmatch(value):
                raise _Declined(f"{name} must be 8 to 15")
        else:
            raise _Declined(f"unknown parameter {name}")

    server_no_context_takeover = (
        "server_no_context_takeover" in offered or settings.server_no_context_takeover
    )
    # a hint the client will reset its context anyway: accept it to free our
    # decompressor between messages
    client_no_context_takeover = (
        "client_no_context_takeover" in offered or settings.client_no_context_takeover
    )

    server_bits: int | None = settings.server_max_window_bits
    offered_server_bits = offered.get("server_max_window_bits")
    if offered_server_bits is not None:
        server_bits = min(int(offered_server_bits), server_bits or 15)
        if server_bits < 9:
            raise _Declined("zlib cannot compress with an 8-bit window")

    client_bits: int | None = settings.client_max_window_bits
    if "client_max_window_bits" in offered:
        offered_client_bits = offered["client_max_window_bits"]
        if offered_client_bits is not None:
            client_bits = min(int(offered_client_bits), client_bits or 15)
    elif client_bits is not None:
        # the response may carry client_max_window_bits only if offered
        raise _Declined("the client cannot limit its window")

    response = [EXTENSION_NAME]
    if server_no_context_takeover:
        response.append("server_no_context_takeover")
    if client_no_context_takeover:
        response.append("client_no_context_takeover")
    if server_bits is not None:
        response.append(f"server_max_window_bits={server_bits}")
    if client_bits is not None:
        response.append(f"client_max_window_bits={client_bits}")
    codec = PerMessageDeflate(
        server_no_context_takeover=server_no_context_takeover,
        client_no_context_takeover=client_no_context_takeover,
        server_max_window_bits=server_bits or 15,
        client_max_window_bits=client_bits or 15,
        threshold=settings.threshold,
        level=settings.level,
        mem_level=settings.mem_level,
    )
    return "; ".join(response), codec


class PerMessageDeflate:
    """The negotiated codec of one connection (server side).

    ``compress`` deflates an outgoing message; ``decompress`` inflates an
    incoming one frame by frame, within a byte limit. zlib objects are made
    on first use and dropped after each message whose context is not kept.
    """

    __slots__ = (
        "_compressor",
        "_decompressor",
        "client_max_window_bits",
        "client_no_context_takeover",
        "level",
        "mem_level",
        "server_max_window_bits",
        "server_no_context_takeover",
        "threshold",
    )

    def __init__(
        self,
        *,
        server_no_context_takeover: bool = False,
        client_no_context_takeover: bool = False,
        server_max_window_bits: int = 15,
        client_max_window_bits: int = 15,
        threshold: int = DEFAULT_THRESHOLD,
        level: int = zlib.Z_DEFAULT_COMPRESSION,
        mem_level: int = 8,
    ) -> None:
        if not 9 <= server_max_window_bits <= 15:
            raise ValueError("server_max_window_bits must be 9 to 15 (zlib cannot use 8)")
        if not 8 <= client_max_window_bits <= 15:
            raise ValueError("client_max_window_bits must be 8 to 15")
        self.server_no_context_takeover = server_no_context_takeover
        self.client_no_context_takeover = client_no_context_takeover
        self.server_max_window_bits = server_max_window_bits
        self.client_max_window_bits = client_max_window_bits
        #: messages shorter than this are sent uncompressed unless asked otherwise
        self.threshold = threshold
        self.level = level
        self.mem_level = mem_level
        self._compressor: zlib._Compress | None = None
        self._decompressor: zlib._Decompress | None = None

    # -- sending ---------------------------------------------------------

    def compress(self, payload: bytes) -> bytes:
        """The compressed payload of one whole message (RFC 7692 7.2.1)."""
        compressor = self._compressor
        if compressor is None:
            compressor = zlib.compressobj(
                self.level, zlib.DEFLATED, -self.server_max_window_bits, self.mem_level
            )
        data = compressor.compress(payload) + compressor.flush(zlib.Z_SYNC_FLUSH)
        # keep the context for the next message, or let it go
        self._compressor = None if self.server_no_context_takeover else compressor
        # a sync flush always ends with the empty stored block; strip it
        return data[:-4] if data.endswith(_TAIL) else data

    # -- receiving -------------------------------------------------------

    def decompress(self, data: bytes, fin: bool, limit: int) -> bytes:
        """Inflate one frame's payload of a compressed message.

        ``fin`` marks the message's last frame; ``limit`` is how many more
        bytes the message may have. Raises :class:`PayloadTooBig` as soon as
        the output would pass ``limit`` (never producing more than
        ``limit + 1`` bytes), and :class:`ProtocolError` (1007) for data that
        is not a valid deflate stream.
        """
        decompressor = self._decompressor
        if decompressor is None:
            decompressor = self._decompressor = zlib.decompressobj(wbits=-max(9, self.client_max_window_bits))
        try:
            if decompressor.eof:
                # a final deflate block already ended this message's stream
                if data:
                    raise self._invalid("data after the final deflate block")
                output = b""
            else:
                output = decompressor.decompress(data, limit + 1)
                if decompressor.unused_data:
                    raise self._invalid("data after the final deflate block")
                if len(output) > limit:
                    raise self._too_big(limit)
                if fin and not decompressor.eof:
                    tail = decompressor.decompress(_TAIL, limit + 1 - len(output))
                    if tail:
                        if len(output) + len(tail) > limit:
                            raise self._too_big(limit)
                        output += tail
        except zlib.error as exc:
            raise self._invalid(f"invalid compressed data ({exc})") from None
        if fin and (self.client_no_context_takeover or decompressor.eof):
            # the next message starts a new stream: free the window now
            self._decompressor = None
        return output

    def _too_big(self, limit: int) -> PayloadTooBig:
        self._decompressor = None  # the connection fails; free the window at once
        return PayloadTooBig(f"message over maxPayload (inflated past {limit} more bytes)")

    def _invalid(self, reason: str) -> ProtocolError:
        self._decompressor = None
        return ProtocolError(INVALID_PAYLOAD, reason)

    def __repr__(self) -> str:
        return (
            f"PerMessageDeflate(server_no_context_takeover={self.server_no_context_takeover}, "
            f"client_no_context_takeover={self.client_no_context_takeover}, "
            f"server_max_window_bits={self.server_max_window_bits}, "
            f"client_max_window_bits={self.client_max_window_bits})"
        )
