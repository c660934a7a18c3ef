"""Masking of frame payloads (RFC 6455 section 5.3).

``apply_mask`` XORs ``data`` with the 4-byte ``key`` repeated, starting at
byte ``offset`` of the key stream (so a payload can be unmasked in pieces as
it streams in). The compiled accelerator in ``_speedups`` is used when it was
built; the pure-Python fallback below is exact and tested the same way.
Set ``WSSERVER_NO_SPEEDUPS=1`` to force the fallback.
"""

from __future__ import annotations

from collections.abc import Callable

from ._accel import speedups

__all__ = ["apply_mask", "py_apply_mask", "HAVE_SPEEDUPS"]


def py_apply_mask(data: bytes | bytearray | memoryview, key: bytes, offset: int = 0) -> bytes:
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


#: whether the C accelerator is in use
HAVE_SPEEDUPS = speedups is not None
apply_mask: Callable[[bytes | bytearray | memoryview, bytes, int], bytes] = (
    speedups.apply_mask if speedups is not None else py_apply_mask
)
