"""Server memory per connection, with and without permessage-deflate.

For each configuration, starts an echo server in a subprocess, opens N
connections from this process (raw sockets; each offers
``permessage-deflate; client_max_window_bits`` as browsers do) and reads the
server's VmRSS from /proc:

1. baseline: after one warm-up connection has exchanged a compressed
   message and closed (imports, zlib and every code path loaded);
2. idle: the N connections open, handshake done, nothing sent yet;
3. after traffic: each connection sent one compressed JSON-like message
   (4 KiB by default) and got the (compressed) echo, then went idle again.

It prints KiB per connection for phases 2 and 3 (RSS growth / N). Linux only.

    python benchmarks/deflate_memory.py [--connections 500] [--message-size 4096] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import socket
import subprocess
import sys
import time
import zlib
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve()
SRC = HERE.parent.parent / "src"
TAIL = b"\x00\x00\xff\xff"

#: name -> the server's perMessageDeflate option
CONFIGS: dict[str, Any] = {
    "off": False,
    "default (ws' defaults)": True,
    "windows 12 + memLevel 5 (websockets' defaults)": {
        "serverMaxWindowBits": 12,
        "clientMaxWindowBits": 12,
        "memLevel": 5,
    },
    "server_no_context_takeover + windows 10": {
        "serverNoContextTakeover": True,
        "serverMaxWindowBits": 10,
        "clientMaxWindowBits": 10,
    },
    "both no_context_takeover + windows 10": {
        "serverNoContextTakeover": True,
        "clientNoContextTakeover": True,
        "serverMaxWindowBits": 10,
        "clientMaxWindowBits": 10,
    },
}


def json_message(size: int) -> bytes:
    """``size`` bytes that compress like typical JSON traffic (about 5:1)."""
    items = [
        {"id": i, "user": f"user{i * 7919 % 1009}", "text": "hello world " * (i % 5), "ok": i % 3 == 0}
        for i in range(size // 40 + 1)
    ]
    return json.dumps(items).encode()[:size]


# -- the server (child process) --------------------------------------------------------


def serve(deflate: Any) -> None:
    """Run an echo server on 127.0.0.1; print its port; stop when stdin closes."""
    import wsserver as ws

    async def main() -> None:
        wss = ws.Server(host="127.0.0.1", port=0, per_message_deflate=deflate, ping_interval=None)
        wss.on("connection", lambda conn: conn.on("message", lambda data: conn.send(data)))
        await wss.start()
        print(wss.port, flush=True)
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, sys.stdin.read)  # until the parent closes stdin
        await wss.close()

    asyncio.run(main())


# -- the client side (this process) ----------------------------------------------------


def vm_rss(pid: int) -> int:
    """Resident set size of ``pid`` in bytes."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS")


def connect(port: int) -> tuple[socket.socket, int]:
    """Open a WebSocket connection offering permessage-deflate; the socket and
    the window (bits) the server lets this client compress with."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=30)
    sock.sendall(
        b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
        b"Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n\r\n"
    )
    head = b""
    while not head.endswith(b"\r\n\r\n"):
        byte = sock.recv(1)
        if not byte:
            raise ConnectionError("closed during the handshake")
        head += byte
    if not head.startswith(b"HTTP/1.1 101"):
        raise ConnectionError(head.decode("latin-1"))
    match = re.search(rb"client_max_window_bits=(\d+)", head)
    return sock, int(match.group(1)) if match else 15


def client_frame(payload: bytes, compressed: bool) -> bytes:
    """A masked binary frame (the mask is all zeros: the payload goes as is)."""
    first = 0x82 | (0x40 if compressed else 0)
    length = len(payload)
    if length < 126:
        header = bytes((first, 0x80 | length))
    elif length < 65536:
        header = bytes((first, 0x80 | 126)) + length.to_bytes(2, "big")
    else:
        header = bytes((first, 0x80 | 127)) + length.to_bytes(8, "big")
    return header + b"\x00\x00\x00\x00" + payload


def read_frame(sock: socket.socket) -> tuple[bool, bytes]:
    """One unmasked server frame: (rsv1, payload)."""

    def exactly(size: int) -> bytes:
        data = b""
        while len(data) < size:
            chunk = sock.recv(size - len(data))
            if not chunk:
                raise ConnectionError("closed")
            data += chunk
        return data

    first, second = exactly(2)
    length = second & 0x7F
    if length == 126:
        length = int.from_bytes(exactly(2), "big")
    elif length == 127:
        length = int.from_bytes(exactly(8), "big")
    return bool(first & 0x40), exactly(length)


def measure(name: str, deflate: Any, connections: int, message: bytes) -> dict[str, Any]:
    """Start a server with ``deflate``; the KiB per idle connection before and after traffic."""
    env = {**os.environ, "PYTHONPATH": f"{SRC}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    server = subprocess.Popen(
        [sys.executable, str(HERE), "--serve", json.dumps(deflate)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    assert server.stdin is not None and server.stdout is not None
    socks: list[socket.socket] = []
    try:
        port = int(server.stdout.readline())
        warm, client_bits = connect(port)
        compressor = zlib.compressobj(wbits=-client_bits)
        compressed = compressor.compress(message) + compressor.flush(zlib.Z_SYNC_FLUSH)
        compressed = compressed[: -len(TAIL)]

        def exchange(sock: socket.socket) -> bool:
            sock.sendall(client_frame(compressed if deflate else message, bool(deflate)))
            rsv1, payload = read_frame(sock)
            if rsv1:
                payload = zlib.decompressobj(wbits=-15).decompress(payload + TAIL)
            if payload != message:
                raise AssertionError("bad echo")
            return rsv1

        exchange(warm)
        warm.close()
        time.sleep(0.5)
        baseline = vm_rss(server.pid)

        for _ in range(connections):
            socks.append(connect(port)[0])
        time.sleep(0.5)
        idle = vm_rss(server.pid)

        compressed_replies = sum(exchange(sock) for sock in socks)
        time.sleep(0.5)
        after = vm_rss(server.pid)
    finally:
        for sock in socks:
            sock.close()
        server.stdin.close()
        try:
            server.wait(30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(10)
    return {
        "config": name,
        "connections": connections,
        "message_bytes": len(message),
        "baseline_mib": round(baseline / 2**20, 1),
        "idle_kib_per_connection": round((idle - baseline) / 1024 / connections, 1),
        "after_traffic_kib_per_connection": round((after - baseline) / 1024 / connections, 1),
        "replies_compressed": compressed_replies,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--connections", type=int, default=500)
    parser.add_argument("--message-size", type=int, default=4096, help="bytes per message (default 4096)")
    parser.add_argument("--json", action="store_true", help="print JSON lines instead of a table")
    parser.add_argument("--serve", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve is not None:
        serve(json.loads(args.serve))
        return
    if not args.json:
        print(f"{'configuration':48} {'idle KiB/conn':>14} {'after traffic KiB/conn':>23}")
    for name, deflate in CONFIGS.items():
        result = measure(name, deflate, args.connections, json_message(args.message_size))
        if args.json:
            print(json.dumps(result))
        else:
            print(
                f"{name:48} {result['idle_kib_per_connection']:>14} "
                f"{result['after_traffic_kib_per_connection']:>23}"
            )


if __name__ == "__main__":
    main()
