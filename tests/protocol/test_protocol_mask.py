"""Masking: the C accelerator and the pure-Python fallback agree everywhere."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rawclient import unmask
from wsserver.protocol import _speedups, mask

IMPLEMENTATIONS = {"c": _speedups.apply_mask, "python": mask.py_apply_mask}
KEYS = [b"\x00\x00\x00\x00", b"\xff\xff\xff\xff", b"\x01\x02\x03\x04", b"\x37\xfa\x21\x3d"]


def reference(data: bytes, key: bytes, offset: int) -> bytes:
    rotated = bytes(key[(offset + index) % 4] for index in range(4))
    return unmask(data, rotated)


@pytest.mark.parametrize("name", sorted(IMPLEMENTATIONS))
@pytest.mark.parametrize("key", KEYS)
def test_every_length_and_offset_matches_the_reference(name: str, key: bytes) -> None:
    apply_mask = IMPLEMENTATIONS[name]
    data = os.urandom(80)
    for length in range(0, 41):
        for offset in range(0, 9):
            assert apply_mask(data[:length], key, offset) == reference(data[:length], key, offset), (length, offset)


@pytest.mark.parametrize("length", [0, 1, 7, 8, 9, 125, 126, 4095, 65536, 1 << 20])
def test_c_and_python_agree_on_large_payloads(length: int) -> None:
    data = os.urandom(length)
    key = os.urandom(4)
    for offset in (0, 1, 2, 3):
        assert _speedups.apply_mask(data, key, offset) == mask.py_apply_mask(data, key, offset)


@pytest.mark.parametrize("name", sorted(IMPLEMENTATIONS))
def test_accepts_bytearray_and_memoryview(name: str) -> None:
    apply_mask = IMPLEMENTATIONS[name]
    data = b"hello, masked world"
    key = b"\x11\x22\x33\x44"
    expected = reference(data, key, 0)
    assert apply_mask(bytearray(data), key, 0) == expected
    assert apply_mask(memoryview(data), bytearray(key), 0) == expected
    assert apply_mask(memoryview(b"xx" + data)[2:], key, 0) == expected


@pytest.mark.parametrize("name", sorted(IMPLEMENTATIONS))
def test_masking_twice_gives_the_data_back(name: str) -> None:
    apply_mask = IMPLEMENTATIONS[name]
    data = os.urandom(1000)
    key = os.urandom(4)
    assert apply_mask(apply_mask(data, key, 3), key, 3) == data


def test_unmasking_in_pieces_with_offsets_equals_at_once() -> None:
    data = os.urandom(1001)
    key = os.urandom(4)
    whole = mask.apply_mask(data, key, 0)
    pieces = b"".join(mask.apply_mask(data[start : start + 37], key, start) for start in range(0, len(data), 37))
    assert pieces == whole


def test_c_accelerator_rejects_a_bad_key() -> None:
    with pytest.raises(ValueError):
        _speedups.apply_mask(b"data", b"abc", 0)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=300), st.binary(min_size=4, max_size=4), st.integers(min_value=0, max_value=1000))
def test_c_and_python_agree_on_random_input(data: bytes, key: bytes, offset: int) -> None:
    assert _speedups.apply_mask(data, key, offset) == mask.py_apply_mask(data, key, offset) == reference(data, key, offset)


@pytest.mark.parametrize(("value", "expect_c"), [("1", False), ("0", True), ("", True)])
def test_wsserver_no_speedups_selects_the_implementation(value: str, expect_c: bool) -> None:
    env = dict(os.environ, WSSERVER_NO_SPEEDUPS=value, PYTHONPATH=os.pathsep.join(sys.path))
    code = (
        "from wsserver.protocol import mask, _speedups;"
        "print(mask.HAVE_SPEEDUPS, mask.apply_mask is _speedups.apply_mask, mask.apply_mask is mask.py_apply_mask)"
    )
    output = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=30, check=True)
    assert output.stdout.split() == [str(expect_c), str(expect_c), str(not expect_c)]
