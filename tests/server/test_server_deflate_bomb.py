"""A real compression bomb against the server in its own process.

1 GiB of zeros compressed to about 1 MiB arrives in one compressed frame. The
server must close with 1009 once the inflated message passes maxPayload
(16 MiB by default) and its resident memory (VmRSS, and its peak VmHWM, read
from /proc) must stay near its baseline: inflating the whole frame would
cost a full GiB (2 GiB at the peak, measured with inflation unbounded).
"""

from __future__ import annotations

import asyncio
import os
import re
import sys
import zlib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

import wsserver
from helpers import wait
from rawclient import RawClient
from wsserver.protocol.frames import OP_BINARY, OP_TEXT

pytestmark = [
    pytest.mark.timeout(120),
    pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads /proc/PID/status (Linux)"),
]

MIB = 1 << 20
TAIL = b"\x00\x00\xff\xff"
RSV1 = 4  # build_frame's rsv bits
SRC = str(Path(wsserver.__file__).resolve().parent.parent)


def zeros_block() -> bytes:
    """1 MiB of zeros as raw deflate from a fresh compressor, sync-flushed: a
    literal zero then distance-1 matches, ending byte-aligned, so copies can be
    inflated back to back (about 1 KiB)."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    return compressor.compress(bytes(MIB)) + compressor.flush(zlib.Z_SYNC_FLUSH)


def test_the_bomb_block_repeats() -> None:
    """Three blocks back to back inflate to 3 MiB of zeros; so 1024 of them
    inflate to 1 GiB (inflating the whole GiB here would take seconds)."""
    block = zeros_block()
    assert block.endswith(TAIL) and len(block) < 2048
    assert zlib.decompressobj(wbits=-15).decompress(block * 3) == bytes(3 * MIB)


def memory_of(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM (peak RSS) of ``pid``, in bytes."""
    values = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, rest = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            values[name] = int(rest.split()[0]) * 1024
    return values


@pytest.fixture
async def server_process() -> AsyncIterator[tuple[asyncio.subprocess.Process, int]]:
    """``python -m wsserver --per-message-deflate`` in a subprocess: (process, port)."""
    env = dict(
        os.environ, PYTHONPATH=SRC + os.pathsep + os.environ.get("PYTHONPATH", ""), PYTHONUNBUFFERED="1"
    )
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        *("-m", "wsserver", "--host", "127.0.0.1", "--port", "0", "--per-message-deflate"),
        stdout=asyncio.subprocess.PIPE,
        env=env,
    )
    try:
        assert process.stdout is not None
        line = (await wait(process.stdout.readline(), 30)).decode()
        match = re.search(r":(\d+)/", line)
        assert match, line
        yield process, int(match.group(1))
    finally:
        if process.returncode is None:
            process.terminate()
            try:
                await wait(process.wait(), 10)
            except asyncio.TimeoutError:
                process.kill()
                await process.wait()


class DeflateClient:
    """A raw client that negotiated permessage-deflate, with its zlib contexts."""

    def __init__(self, raw: RawClient) -> None:
        self.raw = raw
        self.compressor = zlib.compressobj(wbits=-15)
        self.decompressor = zlib.decompressobj(wbits=-15)

    @classmethod
    async def connect(cls, port: int) -> DeflateClient:
        raw = await RawClient.connect(port)
        answer = await raw.handshake(headers=[("Sec-WebSocket-Extensions", "permessage-deflate")])
        assert answer.status == 101
        assert answer.header("Sec-WebSocket-Extensions") == "permessage-deflate"
        return cls(raw)

    async def echo(self, opcode: int, data: bytes) -> None:
        """Send ``data`` compressed; check that the server echoes it compressed."""
        payload = self.compressor.compress(data) + self.compressor.flush(zlib.Z_SYNC_FLUSH)
        self.raw.send_frame(opcode, payload[: -len(TAIL)], rsv=RSV1, key=os.urandom(4))
        frame = await self.raw.read_frame()
        assert (frame.opcode, frame.rsv) == (opcode, RSV1)
        assert self.decompressor.decompress(frame.payload + TAIL) == data


async def test_compression_bomb_closes_1009_and_memory_stays_bounded(
    server_process: tuple[asyncio.subprocess.Process, int],
) -> None:
    process, port = server_process
    bomb = (zeros_block() * 1024)[: -len(TAIL)]  # 1 GiB of zeros, the tail stripped
    assert len(bomb) < 2 * MIB

    client = await DeflateClient.connect(port)
    # warm up: a compressed message each way, so zlib and every code path are loaded
    await client.echo(OP_TEXT, b"warm up " * 1000)
    baseline = memory_of(process.pid)["VmRSS"]
    try:  # reset the peak (VmHWM) to the current RSS
        Path(f"/proc/{process.pid}/clear_refs").write_text("5")
        since = "since the warm-up"
    except OSError:
        since = "since the start"

    # three bombs, one after the other, each on a new connection
    for attempt in range(3):
        bomber = client if attempt == 0 else await DeflateClient.connect(port)
        bomber.raw.send_frame(OP_BINARY, bomb, rsv=RSV1, key=os.urandom(4))
        close = await bomber.raw.read_close(timeout=60)
        assert close.close_code == 1009
        await bomber.raw.close()
        await wait(bomber.raw.reader.read())  # the server closed its side: done with it

        memory = memory_of(process.pid)
        peak, after = memory["VmHWM"] - baseline, memory["VmRSS"] - baseline
        print(
            f"\nbomb {attempt + 1}: {len(bomb)} bytes -> 1 GiB; server RSS baseline {baseline / MIB:.1f} MiB, "
            f"peak +{peak / MIB:.1f} MiB ({since}), after +{after / MIB:.1f} MiB"
        )
        assert peak < 64 * MIB  # it would be +1 GiB (2 GiB at the peak) if unbounded
        assert after < 16 * MIB  # less than the one message it may inflate: nothing kept

    # the server is unharmed: a new connection still gets its echo
    other = await DeflateClient.connect(port)
    await other.echo(OP_BINARY, bytes(5000))
    await other.raw.close()
    assert process.returncode is None
