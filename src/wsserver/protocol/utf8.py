"""Incremental UTF-8 decoding that fails at the first invalid byte.

CPython's incremental decoder already rejects an invalid continuation byte as
soon as it arrives, with one exception: after ``ED`` it waits for the third
byte before rejecting a surrogate (``ED A0``..``ED BF``). ``Utf8Decoder``
closes that gap so a text message fails while its frame is still streaming in.
"""

from __future__ import annotations

import codecs

__all__ = ["Utf8Decoder"]

_IncrementalDecoder = codecs.getincrementaldecoder("utf-8")


class Utf8Decoder:
    """Decode a text message piece by piece; raise ``UnicodeDecodeError`` early."""

    __slots__ = ("_decoder",)

    def __init__(self) -> None:
        self._decoder = _IncrementalDecoder("strict")

    def decode(self, data: bytes, final: bool = False) -> str:
        """Decode ``data``; with ``final`` the message must end on a character."""
        text = self._decoder.decode(data, final)
        if not final:
            pending = self._decoder.getstate()[0]
            if len(pending) >= 2 and pending[0] == 0xED and pending[1] >= 0xA0:
                raise UnicodeDecodeError(
                    "utf-8", pending, 0, 2, "UTF-16 surrogate code point"
                )
        return text
