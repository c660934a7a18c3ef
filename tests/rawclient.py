"""A raw-socket WebSocket client for tests: it sends exactly the bytes it is told.

Independent client libraries refuse to send malformed input, so tests of
protocol violations, masking and bad handshakes use this instead. It builds
frames by hand (masked or not, any RSV bits, any opcode, any announced length),
parses the server's frames including the mask bit, and reads HTTP responses.
Every read is bounded by a timeout.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import socket
import struct
from dataclasses import dataclass, field

__all__ = [
    "DEFAULT_KEY",
    "SAMPLE_WS_KEY",
    "Frame",
    "HttpResponse",
    "RawClient",
    "build_frame",
    "parse_frames",
    "random_key",
    "unmask",
    "upgrade_request",
]

#: masking key used by ``build_frame`` unless told otherwise
DEFAULT_KEY = b"\x37\xfa\x21\x3d"
#: the example key of RFC 6455 section 1.3
SAMPLE_WS_KEY = "dGhlIHNhbXBsZSBub25jZQ=="
READ_TIMEOUT = 5.0


def unmask(data: bytes, key: bytes) -> bytes:
    """XOR ``data`` with ``key`` byte by byte (an independent reference)."""
    return bytes(byte ^ key[index % 4] for index, byte in enumerate(data))


def build_frame(
    opcode: int,
    payload: bytes | str = b"",
    *,
    fin: bool = True,
    rsv: int = 0,
    mask: bool = True,
    key: bytes = DEFAULT_KEY,
    length: int | None = None,
    width: int | None = None,
) -> bytes:
    """A frame as a client sends it (masked by default).

    ``rsv`` is the three RSV bits as a number 0-7 (4 = RSV1). ``length``
    overrides the announced payload length and ``width`` forces its encoding
    (7, 16 or 64 bits), so malformed frames can be built too.
    """
    if isinstance(payload, str):
        payload = payload.encode("utf-8")
    announced = len(payload) if length is None else length
    if width is None:
        width = 7 if announced < 126 else 16 if announced < 65536 else 64
    first = (0x80 if fin else 0) | (rsv & 7) << 4 | opcode & 0x0F
    mask_bit = 0x80 if mask else 0
    if width == 7:
        header = bytes((first, mask_bit | announced))
    elif width == 16:
        header = struct.pack("!BBH", first, mask_bit | 126, announced)
    else:
        header = struct.pack("!BBQ", first, mask_bit | 127, announced)
    if mask:
        return header + key + unmask(payload, key)
    return header + payload


@dataclass
class Frame:
    """A frame the server sent, as seen on the wire."""

    fin: bool
    rsv: int
    opcode: int
    masked: bool
    mask_key: bytes | None
    #: the payload as it travelled (still masked when ``masked``)
    wire_payload: bytes
    #: the payload after unmasking
    payload: bytes

    @property
    def close_code(self) -> int | None:
        """The status code of a close frame (``None`` when it carries none)."""
        if len(self.payload) < 2:
            return None
        return int(struct.unpack("!H", self.payload[:2])[0])

    @property
    def close_reason(self) -> str:
        """The reason text of a close frame."""
        return self.payload[2:].decode("utf-8")


def _parse_one(data: bytes, pos: int) -> tuple[Frame, int] | None:
    """The frame at ``pos`` of ``data`` and the position after it, or ``None``."""
    if len(data) - pos < 2:
        return None
    first, second = data[pos], data[pos + 1]
    length = second & 0x7F
    pos += 2
    if length == 126:
        if len(data) - pos < 2:
            return None
        length = struct.unpack_from("!H", data, pos)[0]
        pos += 2
    elif length == 127:
        if len(data) - pos < 8:
            return None
        length = struct.unpack_from("!Q", data, pos)[0]
        pos += 8
    masked = bool(second & 0x80)
    key = None
    if masked:
        if len(data) - pos < 4:
            return None
        key = data[pos : pos + 4]
        pos += 4
    if len(data) - pos < length:
        return None
    wire = data[pos : pos + length]
    frame = Frame(
        fin=bool(first & 0x80),
        rsv=(first >> 4) & 7,
        opcode=first & 0x0F,
        masked=masked,
        mask_key=key,
        wire_payload=wire,
        payload=unmask(wire, key) if key is not None else wire,
    )
    return frame, pos + length


def parse_frames(data: bytes) -> list[Frame]:
    """Every complete frame in ``data``; raises ``ValueError`` on leftover bytes."""
    frames = []
    pos = 0
    while pos < len(data):
        parsed = _parse_one(data, pos)
        if parsed is None:
            raise ValueError(f"incomplete frame at byte {pos} of {len(data)}")
        frame, pos = parsed
        frames.append(frame)
    return frames


def upgrade_request(
    path: str = "/",
    *,
    host: str = "127.0.0.1",
    key: str = SAMPLE_WS_KEY,
    headers: list[tuple[str, str]] | None = None,
    method: str = "GET",
    version: str = "HTTP/1.1",
    omit: tuple[str, ...] = (),
) -> bytes:
    """A valid upgrade request; ``headers`` are added, ``omit`` names headers to leave out."""
    base = [
        ("Host", host),
        ("Upgrade", "websocket"),
        ("Connection", "Upgrade"),
        ("Sec-WebSocket-Key", key),
        ("Sec-WebSocket-Version", "13"),
    ]
    lines = [f"{method} {path} {version}"]
    lines += [f"{name}: {value}" for name, value in base if name not in omit]
    lines += [f"{name}: {value}" for name, value in headers or []]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


@dataclass
class HttpResponse:
    """An HTTP response head (and body, for refusals)."""

    status: int
    reason: str
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""

    def header(self, name: str) -> str | None:
        """The first value of header ``name`` (case-insensitive)."""
        for key, value in self.headers:
            if key.lower() == name.lower():
                return value
        return None


class RawClient:
    """One TCP connection to the server, driven byte by byte."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def connect(cls, port: int, host: str = "127.0.0.1", receive_buffer: int | None = None) -> RawClient:
        """Connect; ``receive_buffer`` sets a small SO_RCVBUF first, so that a
        client that stops reading makes the server's writes back up soon."""
        if receive_buffer is None:
            reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), READ_TIMEOUT)
            return cls(reader, writer)
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
        sock.setblocking(False)
        try:
            await asyncio.wait_for(asyncio.get_running_loop().sock_connect(sock, (host, port)), READ_TIMEOUT)
        except BaseException:
            sock.close()
            raise
        reader, writer = await asyncio.open_connection(sock=sock)
        return cls(reader, writer)

    @property
    def local_address(self) -> tuple[str, int]:
        address = self.writer.get_extra_info("sockname")
        return address[0], address[1]

    def send(self, data: bytes) -> None:
        """Send ``data`` as it is."""
        self.writer.write(data)

    def pause_reading(self) -> None:
        """Stop taking bytes from the socket, as a peer that does not read."""
        self.writer.transport.pause_reading()  # type: ignore[attr-defined]

    def resume_reading(self) -> None:
        self.writer.transport.resume_reading()  # type: ignore[attr-defined]

    def send_frame(self, opcode: int, payload: bytes | str = b"", **options: object) -> None:
        """Send one frame built by :func:`build_frame`."""
        self.writer.write(build_frame(opcode, payload, **options))  # type: ignore[arg-type]

    async def read_head(self, timeout: float = READ_TIMEOUT) -> HttpResponse:
        """Read an HTTP response head (status line and headers)."""
        head = await asyncio.wait_for(self.reader.readuntil(b"\r\n\r\n"), timeout)
        lines = head.decode("latin-1").split("\r\n")
        _version, status, *reason = lines[0].split(" ", 2)
        headers = []
        for line in lines[1:]:
            if line:
                name, _, value = line.partition(":")
                headers.append((name.strip(), value.strip()))
        return HttpResponse(int(status), reason[0] if reason else "", headers)

    async def read_response(self, timeout: float = READ_TIMEOUT) -> HttpResponse:
        """Read a whole HTTP response: the head, then the body by Content-Length."""
        response = await self.read_head(timeout)
        length = int(response.header("Content-Length") or 0)
        if length:
            response.body = await asyncio.wait_for(self.reader.readexactly(length), timeout)
        return response

    async def handshake(
        self, path: str = "/", *, extra: bytes = b"", **request_options: object
    ) -> HttpResponse:
        """Send an upgrade request (and ``extra`` bytes in the same write); read the answer's head."""
        self.writer.write(upgrade_request(path, **request_options) + extra)  # type: ignore[arg-type]
        return await self.read_head()

    async def read_frame(self, timeout: float = READ_TIMEOUT) -> Frame:
        """Read one frame from the server."""

        async def read() -> Frame:
            head = await self.reader.readexactly(2)
            length = head[1] & 0x7F
            extended = b""
            if length == 126:
                extended = await self.reader.readexactly(2)
                length = struct.unpack("!H", extended)[0]
            elif length == 127:
                extended = await self.reader.readexactly(8)
                length = struct.unpack("!Q", extended)[0]
            key = await self.reader.readexactly(4) if head[1] & 0x80 else b""
            body = await self.reader.readexactly(length)
            parsed = _parse_one(head + extended + key + body, 0)
            assert parsed is not None
            return parsed[0]

        return await asyncio.wait_for(read(), timeout)

    async def read_close(self, timeout: float = READ_TIMEOUT) -> Frame:
        """Read the next frame, which must be a close frame."""
        frame = await self.read_frame(timeout)
        assert frame.opcode == 0x8, f"expected a close frame, got {frame}"
        return frame

    async def read_until_close(self, timeout: float = READ_TIMEOUT) -> Frame:
        """Skip data and control frames up to the server's close frame; that frame."""
        for _ in range(1_000_000):
            frame = await self.read_frame(timeout)
            if frame.opcode == 0x8:
                return frame
        raise AssertionError("no close frame in a million frames")

    async def read_until_eof(self, timeout: float = READ_TIMEOUT) -> bytes:
        """Everything the server sends until it closes the TCP connection."""
        return await asyncio.wait_for(self.reader.read(), timeout)

    async def read_until_end(self, timeout: float = READ_TIMEOUT) -> bytes:
        """Like :meth:`read_until_eof`, but a reset (a dropped connection) ends it too."""
        try:
            return await asyncio.wait_for(self.reader.read(), timeout)
        except ConnectionResetError:
            return b""

    async def close(self) -> None:
        """Close the TCP connection (no closing handshake)."""
        if not self.writer.is_closing():
            self.writer.close()
        with contextlib.suppress(ConnectionError, asyncio.TimeoutError):
            await asyncio.wait_for(self.writer.wait_closed(), READ_TIMEOUT)


def random_key() -> str:
    """A fresh ``Sec-WebSocket-Key``."""
    return base64.b64encode(os.urandom(16)).decode("ascii")
