"""Masking of frame payloads (RFC 6455 section 5.3).

``apply_mask`` XORs ``data`` with the 4-byte ``key`` repeated, starting at
byte ``offset`` of the key stream (so a payload can be unmasked in pieces as
it streams in). The compiled accelerator in ``_speedups`` is used when it was
built; the pure-Python fallback below is exact and tested the same way.
Set ``WSSERVER_NO_SPEEDUPS=1`` to force the fallback.
"""

from __future__ import annotations

import os
from collections.abc import Callable

__all__ = ["apply_mask", "py_apply_mask", "HAVE_SPEEDUPS"]


def py_apply_mask(data: bytes | bytearray | memoryview, key: bytes | bytearray, offset: int = 0) -> bytes:
    """Pure-Python XOR of ``data`` with ``key`` (big-integer XOR, no byte loop)."""
    n = len(data)
    if not n:
        return b""
    if offset & 3:
        shift = offset & 3
        key = key[shift:] + key[:shift]
    stream = key * ((n >> 2) + 1)
    return (
        int.from_bytes(data, "little") ^ int.from_bytes(stream[:n], "little")
    ).to_bytes(n, "little")


apply_mask: Callable[[bytes | bytearray | memoryview, bytes | bytearray, int], bytes]
HAVE_SPEEDUPS = False
if os.environ.get("WSSERVER_NO_SPEEDUPS", "") in ("", "0"):
    try:
        from ._speedups import apply_mask as _c_apply_mask
    except ImportError:  # not built: the pure-Python path is used
        apply_mask = py_apply_mask
    else:
        apply_mask = _c_apply_mask
        HAVE_SPEEDUPS = True
else:
    apply_mask = py_apply_mask
