"""Raw-socket helpers for the hardening tests: a client that sends exactly the
bytes it is told (independent clients refuse to misbehave) and reads the
server's answers, every read bounded by a timeout."""

from __future__ import annotations

import asyncio
import base64
import os
import socket
import struct

from wsserver.protocol.frames import encode_frame

TIMEOUT = 5.0


def upgrade_request(path: str = "/", extra_headers: str = "") -> bytes:
    """A valid upgrade request with a fresh key."""
    key = base64.b64encode(os.urandom(16)).decode()
    return (
        f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n{extra_headers}\r\n"
    ).encode("latin-1")


def client_frame(opcode: int, payload: bytes | str = b"", fin: bool = True) -> bytes:
    """A masked frame as a client sends it."""
    data = payload.encode() if isinstance(payload, str) else payload
    return encode_frame(opcode, data, fin=fin, mask_key=os.urandom(4))


def frame_header_64(opcode: int, length: int) -> bytes:
    """A masked frame header announcing ``length`` bytes in the 64-bit form (no payload)."""
    return struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, length) + os.urandom(4)


class RawClient:
    """One TCP connection to the server."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def connect(cls, port: int, receive_buffer: int | None = None) -> RawClient:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if receive_buffer is not None:  # before connect, so the window stays small
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
        sock.setblocking(False)
        await asyncio.wait_for(asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", port)), TIMEOUT)
        reader, writer = await asyncio.open_connection(sock=sock, limit=2**24)
        return cls(reader, writer)

    @classmethod
    async def open(cls, port: int, path: str = "/", receive_buffer: int | None = None) -> RawClient:
        """Connect and complete the opening handshake."""
        client = await cls.connect(port, receive_buffer)
        client.send(upgrade_request(path))
        status, _ = await client.read_head()
        assert status == 101, status
        return client

    def send(self, data: bytes) -> None:
        self.writer.write(data)

    def stop_reading(self) -> None:
        """Stop taking bytes from the socket: the server's writes back up."""
        self.writer.transport.pause_reading()  # type: ignore[attr-defined]

    def resume_reading(self) -> None:
        self.writer.transport.resume_reading()  # type: ignore[attr-defined]

    async def read_head(self, timeout: float = TIMEOUT) -> tuple[int, bytes]:
        """``(status, head)`` of the server's HTTP response."""
        head = await asyncio.wait_for(self.reader.readuntil(b"\r\n\r\n"), timeout)
        return int(head.split(b" ", 2)[1]), head

    async def read_frame(self, timeout: float = TIMEOUT) -> tuple[int, bytes]:
        """``(opcode, payload)`` of the server's next frame."""

        async def read() -> tuple[int, bytes]:
            first, second = await self.reader.readexactly(2)
            length = second & 0x7F
            if length == 126:
                length = struct.unpack("!H", await self.reader.readexactly(2))[0]
            elif length == 127:
                length = struct.unpack("!Q", await self.reader.readexactly(8))[0]
            return first & 0x0F, await self.reader.readexactly(length)

        return await asyncio.wait_for(read(), timeout)

    async def read_close_code(self, timeout: float = TIMEOUT) -> int:
        """Skip frames up to the server's close frame; its code."""
        for _ in range(100_000):
            opcode, payload = await self.read_frame(timeout)
            if opcode == 0x8:
                return int(struct.unpack("!H", payload[:2])[0]) if payload else 1005
        raise AssertionError("no close frame")

    async def read_to_eof(self, timeout: float = TIMEOUT) -> bytes:
        """Everything until the server ends the TCP connection (a reset counts as
        the end); then close our side too, as a client does."""
        try:
            return await asyncio.wait_for(self.reader.read(), timeout)
        except ConnectionResetError:
            return b""
        finally:
            self.close()

    def close(self) -> None:
        self.writer.close()
