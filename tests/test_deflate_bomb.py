"""A real compression bomb against the server in its own process.

1 GiB of zeros compressed to about 1 MiB arrives in one compressed frame. The
server must close with 1009 once the inflated message passes maxPayload
(16 MiB by default) and its resident memory (VmRSS and its peak VmHWM, read
from /proc) must stay near its baseline: inflating the whole frame would
cost a full GiB.
"""

from __future__ import annotations

import os
import re
import select
import socket
import subprocess
import sys
import zlib
from collections.abc import Iterator
from pathlib import Path

import pytest

import wsserver
from wsserver.protocol.frames import OP_BINARY, OP_CLOSE, OP_TEXT, encode_frame, parse_close_payload

pytestmark = [
    pytest.mark.timeout(120),
    pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs Linux /proc"),
]

MIB = 1 << 20
TAIL = b"\x00\x00\xff\xff"


def zeros_block() -> bytes:
    """1 MiB of zeros as raw deflate from a fresh compressor, sync-flushed: a
    literal zero then distance-1 matches, ending byte-aligned, so it can be
    repeated and inflated back to back (about 1 KiB)."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    return compressor.compress(bytes(MIB)) + compressor.flush(zlib.Z_SYNC_FLUSH)


def test_the_bomb_block_repeats() -> None:
    """Three blocks back to back inflate to 3 MiB of zeros; so 1024 of them
    inflate to 1 GiB (inflating the whole GiB here would take seconds)."""
    block = zeros_block()
    assert block.endswith(TAIL) and len(block) < 2048
    assert zlib.decompressobj(wbits=-15).decompress(block * 3) == bytes(3 * MIB)


def proc_status(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM of ``pid`` in bytes."""
    values = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, rest = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            values[name] = int(rest.split()[0]) * 1024
    return values


@pytest.fixture
def server() -> Iterator[tuple[subprocess.Popen[str], int]]:
    """``python -m wsserver --per-message-deflate`` in a subprocess; (process, port)."""
    src = str(Path(wsserver.__file__).resolve().parent.parent)
    env = {**os.environ, "PYTHONPATH": src + os.pathsep + os.environ.get("PYTHONPATH", "")}
    process = subprocess.Popen(
        [sys.executable, "-m", "wsserver", "--host", "127.0.0.1", "--port", "0", "--per-message-deflate"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )
    try:
        assert process.stdout is not None
        ready, _, _ = select.select([process.stdout], [], [], 30)
        assert ready, "the server did not start within 30 s"
        line = process.stdout.readline()
        match = re.search(r":(\d+)/", line)
        assert match, line
        yield process, int(match.group(1))
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)


class RawClient:
    """A minimal blocking WebSocket client that offers permessage-deflate."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=30)
        self.sock.sendall(
            b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
            b"Sec-WebSocket-Extensions: permessage-deflate\r\n\r\n"
        )
        head = b""
        while b"\r\n\r\n" not in head and len(head) < 65536:
            chunk = self.sock.recv(4096)
            assert chunk, "connection closed during the handshake"
            head += chunk
        head, _, self.pending = head.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 101"), head
        assert b"Sec-WebSocket-Extensions: permessage-deflate" in head
        self.compressor = zlib.compressobj(wbits=-15)
        self.decompressor = zlib.decompressobj(wbits=-15)

    def send(self, opcode: int, payload: bytes, rsv1: bool) -> None:
        self.sock.sendall(encode_frame(opcode, payload, rsv1=rsv1, mask_key=os.urandom(4)))

    def send_compressed(self, opcode: int, data: bytes) -> None:
        payload = self.compressor.compress(data) + self.compressor.flush(zlib.Z_SYNC_FLUSH)
        self.send(opcode, payload[: -len(TAIL)], rsv1=True)

    def _read(self, size: int) -> bytes:
        while len(self.pending) < size:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("connection closed")
            self.pending += chunk
        data, self.pending = self.pending[:size], self.pending[size:]
        return data

    def receive(self) -> tuple[int, bool, bytes]:
        """One frame: (opcode, rsv1, payload)."""
        first, second = self._read(2)
        length = second & 0x7F
        if length == 126:
            length = int.from_bytes(self._read(2), "big")
        elif length == 127:
            length = int.from_bytes(self._read(8), "big")
        return first & 0x0F, bool(first & 0x40), self._read(length)

    def close(self) -> None:
        self.sock.close()


def test_compression_bomb_closes_1009_and_memory_stays_bounded(
    server: tuple[subprocess.Popen[str], int],
) -> None:
    process, port = server
    bomb = (zeros_block() * 1024)[: -len(TAIL)]  # 1 GiB of zeros, the tail stripped
    assert len(bomb) < 2 * MIB

    client = RawClient(port)
    # warm up: a compressed message each way, so zlib and every code path are loaded
    text = b"warm up " * 1000
    client.send_compressed(OP_TEXT, text)
    opcode, rsv1, payload = client.receive()
    assert (opcode, rsv1) == (OP_TEXT, True)
    assert client.decompressor.decompress(payload + TAIL) == text

    baseline = proc_status(process.pid)["VmRSS"]
    try:  # reset the peak (VmHWM) to the current RSS
        Path(f"/proc/{process.pid}/clear_refs").write_text("5")
        peak_reset = True
    except OSError:
        peak_reset = False

    client.send(OP_BINARY, bomb, rsv1=True)
    opcode, _, payload = client.receive()
    assert opcode == OP_CLOSE
    assert parse_close_payload(payload)[0] == 1009
    client.close()

    status = proc_status(process.pid)
    growth_peak = status["VmHWM"] - baseline
    growth_after = status["VmRSS"] - baseline
    print(
        f"\nbomb: {len(bomb)} bytes -> 1 GiB; server RSS baseline {baseline / MIB:.1f} MiB, "
        f"peak +{growth_peak / MIB:.1f} MiB{'' if peak_reset else ' (peak since start)'}, "
        f"after +{growth_after / MIB:.1f} MiB"
    )
    assert growth_peak < 64 * MIB
    assert growth_after < 64 * MIB

    # the server is unharmed: a new connection still echoes
    other = RawClient(port)
    other.send_compressed(OP_BINARY, bytes(5000))
    opcode, rsv1, payload = other.receive()
    assert (opcode, rsv1) == (OP_BINARY, True)
    assert other.decompressor.decompress(payload + TAIL) == bytes(5000)
    other.close()
    assert process.poll() is None
