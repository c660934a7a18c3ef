"""Micro-benchmark of the per-message Python work on the echo hot path.

Feeds one read's worth of masked client frames (64 frames x 64 B, as in the
pipe-small scenario) to a connection whose transport only counts bytes, and
prints the messages per second of parse + dispatch + echo framing + batched
write. No sockets: it isolates the code that the server's CPU time goes to.

    python benchmarks/micro_hotpath.py [--text] [--seconds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time
from threading import get_ident
from typing import Any

import wsserver as ws
from wsserver.connection import WebSocketConnection
from wsserver.protocol.connection import ServerConnection
from wsserver.protocol.frames import OP_BINARY, OP_TEXT, encode_frame
from wsserver.protocol.handshake import Headers, Request
from wsserver.protocol.mask import HAVE_SPEEDUPS


class CountingTransport:
    """Just enough of an asyncio transport: counts written bytes."""

    def __init__(self) -> None:
        self.written = 0
        self.writes = 0

    def write(self, data: bytes) -> None:
        self.written += len(data)
        self.writes += 1

    def is_closing(self) -> bool:
        return False

    def get_write_buffer_size(self) -> int:
        return 0

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return default


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--text", action="store_true")
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--frames", type=int, default=64)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument(
        "--reads", type=int, default=0,
        help="a fixed number of reads instead of --seconds (for instruction counts under callgrind)",
    )
    args = parser.parse_args()

    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    server = ws.Server(port=0)
    server._loop = loop
    server._thread_id = get_ident()
    transport = CountingTransport()
    request = Request("GET", "/", Headers([("Host", "x")]), "1.1", ("127.0.0.1", 1))
    conn = WebSocketConnection(server, transport, request, ServerConnection())  # type: ignore[arg-type]
    conn.on("message", lambda data: conn.send(data))

    opcode = OP_TEXT if args.text else OP_BINARY
    payload = b"x" * args.size
    read = b"".join(
        encode_frame(opcode, payload, mask_key=os.urandom(4)) for _ in range(args.frames)
    )
    deadline = time.perf_counter() + args.seconds
    reads = 0
    start = time.perf_counter()
    if args.reads:
        for _ in range(args.reads):
            conn.data_received(read)
        reads = args.reads
    while not args.reads and time.perf_counter() < deadline:
        for _ in range(100):
            conn.data_received(read)
        reads += 100
    elapsed = time.perf_counter() - start
    messages = reads * args.frames
    print(
        f"{'text' if args.text else 'binary'} {args.size} B x {args.frames}/read: "
        f"{messages / elapsed / 1000:.0f}k msgs/s ({elapsed / messages * 1e9:.0f} ns/msg), "
        f"{transport.writes / reads:.2f} writes/read, speedups={HAVE_SPEEDUPS}"
    )


if __name__ == "__main__":
    main()
