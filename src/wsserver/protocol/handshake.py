"""The opening handshake (RFC 6455 section 4): HTTP request in, response out.

The HTTP/1.1 request is parsed by ``httptools`` (the llhttp parser behind
Node.js); this module adds the limits (header bytes and count), the checks
RFC 6455 section 4.2.1 asks of a server, and the responses.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Iterable, Iterator
from http import HTTPStatus
from urllib.parse import parse_qs

import httptools

from .errors import HandshakeError

__all__ = [
    "Headers",
    "Request",
    "RequestParser",
    "UpgradeRequest",
    "validate_upgrade",
    "accept_key",
    "switching_protocols_response",
    "http_response",
    "split_header_tokens",
]

_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


class Headers:
    """Request headers: case-insensitive lookup, order and repeats kept."""

    __slots__ = ("_items",)

    def __init__(self, items: Iterable[tuple[str, str]] = ()) -> None:
        self._items: list[tuple[str, str]] = list(items)

    def get(self, name: str, default: str | None = None) -> str | None:
        """The first value of header ``name``, or ``default``."""
        name = name.lower()
        for key, value in self._items:
            if key.lower() == name:
                return value
        return default

    def get_all(self, name: str) -> list[str]:
        """Every value of header ``name``, in order."""
        name = name.lower()
        return [value for key, value in self._items if key.lower() == name]

    def __getitem__(self, name: str) -> str:
        value = self.get(name)
        if value is None:
            raise KeyError(name)
        return value

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self.get(name) is not None

    def __iter__(self) -> Iterator[str]:
        return (key for key, _ in self._items)

    def __len__(self) -> int:
        return len(self._items)

    def items(self) -> list[tuple[str, str]]:
        """``(name, value)`` pairs as received."""
        return list(self._items)

    def __repr__(self) -> str:
        return f"Headers({self._items!r})"


class Request:
    """An HTTP request as received: the upgrade request, or a plain one."""

    __slots__ = ("method", "target", "path", "query", "headers", "http_version", "remote_address")

    def __init__(
        self,
        method: str,
        target: str,
        headers: Headers,
        http_version: str = "1.1",
        remote_address: tuple[str, int] | None = None,
    ) -> None:
        self.method = method
        #: the request target as sent, e.g. ``/chat?room=1``
        self.target = target
        path, _, query = target.partition("?")
        #: the path without the query, e.g. ``/chat``
        self.path = path
        #: the raw query string without ``?``, e.g. ``room=1``
        self.query = query
        self.headers = headers
        self.http_version = http_version
        #: ``(host, port)`` of the peer
        self.remote_address = remote_address

    @property
    def params(self) -> dict[str, list[str]]:
        """The query string parsed into lists of values."""
        return parse_qs(self.query)

    def __repr__(self) -> str:
        return f"<Request {self.method} {self.target} from {self.remote_address}>"


class _ParserCallbacks:
    """Collects what httptools reports, within the limits.

    The head is measured as it is parsed, so a head over the limit is refused
    even when it arrives complete in a single read.
    """

    __slots__ = ("url", "headers", "header_bytes", "max_header_size", "max_headers", "headers_done")

    def __init__(self, max_header_size: int, max_headers: int) -> None:
        self.url = b""
        self.headers: list[tuple[str, str]] = []
        self.header_bytes = 0
        self.max_header_size = max_header_size
        self.max_headers = max_headers
        self.headers_done = False

    def on_url(self, url: bytes) -> None:
        self.url += url
        if len(self.url) > self.max_header_size:
            raise HandshakeError(414, "request target too long")

    def on_header(self, name: bytes, value: bytes) -> None:
        if len(self.headers) >= self.max_headers:
            raise HandshakeError(431, "too many request headers")
        self.header_bytes += len(name) + len(value) + 4  # ": " and CRLF
        if len(self.url) + self.header_bytes > self.max_header_size:
            raise HandshakeError(431, "request header too large")
        self.headers.append((name.decode("latin-1"), value.decode("latin-1")))

    def on_headers_complete(self) -> None:
        self.headers_done = True


class RequestParser:
    """Feed bytes until the request head is complete.

    ``feed`` returns ``None`` while more bytes are needed, then the
    :class:`Request`; ``trailing`` holds the bytes received after the head (a
    client may send frames right behind its upgrade request). Raises
    :class:`HandshakeError` with 400 for malformed HTTP, 431 when the head
    exceeds ``max_header_size`` bytes or ``max_headers`` headers, 414 when the
    request target alone does. The head is measured by its content (target
    and headers) and by the bytes received: exactly for an upgrade request,
    however it is split into reads; for a plain request up to the read that
    completes it (it is answered and closed, so that read is all it holds).
    """

    __slots__ = ("_callbacks", "_parser", "_received", "_max_header_size", "trailing", "upgrade")

    def __init__(self, max_header_size: int = 16384, max_headers: int = 128) -> None:
        self._callbacks = _ParserCallbacks(max_header_size, max_headers)
        self._parser = httptools.HttpRequestParser(self._callbacks)
        self._received = 0
        self._max_header_size = max_header_size
        self.trailing = b""
        #: whether the request asked for a protocol upgrade
        self.upgrade = False

    def feed(self, data: bytes) -> Request | None:
        """Parse ``data``; the request once its head is complete."""
        callbacks = self._callbacks
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade as upgrade:
            offset = upgrade.args[0]
            self.trailing = data[offset:]
            self.upgrade = True
        except httptools.HttpParserCallbackError as exc:
            if isinstance(exc.__context__, HandshakeError):
                raise exc.__context__ from None
            raise HandshakeError(400, "malformed HTTP request") from None
        except httptools.HttpParserError:
            if not callbacks.headers_done:
                raise HandshakeError(400, "malformed HTTP request") from None
        if self.upgrade:  # the head's exact size, however it was split into reads
            self._received += len(data) - len(self.trailing)
        elif not callbacks.headers_done:
            self._received += len(data)
        if self._received > self._max_header_size:
            raise HandshakeError(431, "request header too large")
        if not callbacks.headers_done:
            return None
        return Request(
            self._parser.get_method().decode("ascii", "replace"),
            callbacks.url.decode("latin-1"),
            Headers(callbacks.headers),
            self._parser.get_http_version(),
        )


def split_header_tokens(values: Iterable[str]) -> list[str]:
    """The comma-separated tokens of one or more header values, stripped."""
    return [token.strip() for value in values for token in value.split(",") if token.strip()]


class UpgradeRequest:
    """What a valid upgrade request asks for."""

    __slots__ = ("key", "protocols", "extensions")

    def __init__(self, key: str, protocols: list[str], extensions: list[str]) -> None:
        self.key = key
        #: subprotocols offered, in the client's order of preference
        self.protocols = protocols
        #: raw ``Sec-WebSocket-Extensions`` header values
        self.extensions = extensions


def validate_upgrade(request: Request) -> UpgradeRequest:
    """Check ``request`` against RFC 6455 section 4.2.1.

    Raises :class:`HandshakeError`: 405 for a method other than GET, 426 (with
    ``Sec-WebSocket-Version: 13``) for a missing or other version, 400 for
    anything else that is wrong.
    """
    if request.method != "GET":
        raise HandshakeError(405, "the upgrade request must use GET", [("Allow", "GET")])
    if request.http_version in ("1.0", "0.9"):
        raise HandshakeError(400, "the upgrade request must use HTTP/1.1 or later")
    # one pass over the headers, collecting the values of the ones that matter
    found: dict[str, list[str]] = {name: [] for name in _HANDSHAKE_HEADERS}
    for name, value in request.headers._items:
        values = found.get(name.lower())
        if values is not None:
            values.append(value)
    if "websocket" not in _lower_tokens(found["upgrade"]):
        raise HandshakeError(400, "missing or invalid Upgrade header")
    if "upgrade" not in _lower_tokens(found["connection"]):
        raise HandshakeError(400, "missing or invalid Connection header")
    if not found["host"]:
        raise HandshakeError(400, "missing Host header")
    versions = found["sec-websocket-version"]
    if len(versions) != 1 or versions[0].strip() != "13":
        raise HandshakeError(
            426, "unsupported WebSocket version", [("Sec-WebSocket-Version", "13")]
        )
    keys = found["sec-websocket-key"]
    if len(keys) != 1:
        raise HandshakeError(400, "missing or repeated Sec-WebSocket-Key header")
    key = keys[0].strip()
    try:
        raw_key = base64.b64decode(key.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError):
        raw_key = b""
    if len(raw_key) != 16:
        raise HandshakeError(400, "Sec-WebSocket-Key is not 16 bytes in base64")
    protocols = split_header_tokens(found["sec-websocket-protocol"])
    return UpgradeRequest(key, protocols, found["sec-websocket-extensions"])


_HANDSHAKE_HEADERS = (
    "upgrade",
    "connection",
    "host",
    "sec-websocket-version",
    "sec-websocket-key",
    "sec-websocket-protocol",
    "sec-websocket-extensions",
)


def _lower_tokens(values: list[str]) -> list[str]:
    return [token.lower() for token in split_header_tokens(values)]


def accept_key(key: str) -> str:
    """The ``Sec-WebSocket-Accept`` value for a ``Sec-WebSocket-Key``."""
    return base64.b64encode(hashlib.sha1(key.encode("ascii") + _GUID).digest()).decode("ascii")


def switching_protocols_response(
    key: str, protocol: str | None = None, extensions: str | None = None
) -> bytes:
    """The 101 response that completes the handshake."""
    lines = [
        "HTTP/1.1 101 Switching Protocols",
        "Upgrade: websocket",
        "Connection: Upgrade",
        f"Sec-WebSocket-Accept: {accept_key(key)}",
    ]
    if protocol:
        lines.append(f"Sec-WebSocket-Protocol: {protocol}")
    if extensions:
        lines.append(f"Sec-WebSocket-Extensions: {extensions}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def http_response(
    status: int,
    body: bytes | str = b"",
    headers: Iterable[tuple[str, str]] = (),
    content_type: str = "text/plain; charset=utf-8",
    keep_alive: bool = False,
) -> bytes:
    """A complete HTTP/1.1 response with ``Content-Length``."""
    if isinstance(body, str):
        body = body.encode("utf-8")
    try:
        phrase = HTTPStatus(status).phrase
    except ValueError:
        phrase = "Unknown"
    lines = [f"HTTP/1.1 {status} {phrase}"]
    names = set()
    for name, value in headers:
        names.add(name.lower())
        lines.append(f"{name}: {value}")
    if body and "content-type" not in names:
        lines.append(f"Content-Type: {content_type}")
    lines.append(f"Content-Length: {len(body)}")
    if "connection" not in names:
        lines.append("Connection: keep-alive" if keep_alive else "Connection: close")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body
