"""The HTTP phase of a TCP connection: read the request, answer it, upgrade.

``HttpProtocol`` is the ``asyncio.Protocol`` of every accepted connection
until its handshake succeeds; it then hands the transport to a new
:class:`~wsserver.connection.WebSocketConnection` (``transport.set_protocol``).
Plain HTTP requests go to the ``httpHandler`` option (default: 426).

A connection over ``backlog`` gets ``503`` as soon as its request head is in,
or after ``LINGER`` seconds if it sends none: it never waits for
``handshakeTimeout``. Every refusal (4xx/5xx) is followed by a short linger:
the server half-closes, discards what the client is still sending until it
closes too, and drops the connection after ``LINGER`` seconds at most. Closing
at once on unread input would make the kernel reset the connection under the
response.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, cast

from .connection import WebSocketConnection
from .emitter import _positional_capacity
from .protocol.connection import ServerConnection
from .protocol.errors import HandshakeError
from .protocol.handshake import (
    Request,
    RequestParser,
    UpgradeRequest,
    http_response,
    switching_protocols_response,
    validate_upgrade,
)

if TYPE_CHECKING:
    from .protocol.deflate import PerMessageDeflate
    from .server import Server

__all__ = ["HttpProtocol", "HTTPResponse"]

logger = logging.getLogger("wsserver")


@dataclass
class HTTPResponse:
    """What an ``httpHandler`` returns for a plain (non-upgrade) request."""

    status: int = 200
    body: bytes | str = b""
    headers: Iterable[tuple[str, str]] = field(default_factory=list)
    content_type: str = "text/plain; charset=utf-8"

    def encode(self) -> bytes:
        """The response as bytes, with ``Content-Length`` and ``Connection: close``."""
        return http_response(self.status, self.body, self.headers, self.content_type)


#: seconds a refused connection is kept after its response, to drain the client's input
LINGER = 1.0

SERVICE_UNAVAILABLE = HTTPResponse(503, "Service Unavailable: too many connections\n", [("Retry-After", "1")])

UPGRADE_REQUIRED = HTTPResponse(
    426,
    "Upgrade Required: this is a WebSocket server\n",
    [("Upgrade", "websocket"), ("Sec-WebSocket-Version", "13")],
)


def _as_response(result: Any) -> HTTPResponse | None:
    if result is None or isinstance(result, HTTPResponse):
        return result
    if isinstance(result, tuple) and len(result) == 2:
        return HTTPResponse(result[0], result[1])
    if isinstance(result, tuple) and len(result) == 3:
        headers = result[1].items() if isinstance(result[1], dict) else result[1]
        return HTTPResponse(result[0], result[2], list(headers))
    raise TypeError(
        "httpHandler must return an HTTPResponse, (status, body), "
        f"(status, headers, body) or None, not {type(result).__name__}"
    )


class HttpProtocol(asyncio.Protocol):
    """Runs the opening handshake of one accepted connection."""

    __slots__ = (
        "_server", "_transport", "_parser", "_timer", "_held", "_request", "_over_capacity",
        "_handed_over", "_lingering",
    )

    def __init__(self, server: Server) -> None:
        self._server = server
        self._transport: asyncio.Transport | None = None
        self._parser = RequestParser(server.options.max_header_size, server.options.max_headers)
        self._timer: asyncio.TimerHandle | None = None
        self._held = b""  # bytes received while an async handler runs
        self._request: Request | None = None
        self._over_capacity = False
        self._handed_over = False
        self._lingering = False  # responded; discarding input until the client closes

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)
        server = self._server
        if not server._handshake_started():
            # over backlog: 503 as soon as the request head is in, or after LINGER at most
            self._over_capacity = True
            grace = min(LINGER, server.options.handshake_timeout)
            self._timer = server._loop.call_later(grace, self._turn_away)
            return
        self._timer = server._loop.call_later(server.options.handshake_timeout, self._timed_out)

    def _turn_away(self) -> None:
        server = self._server
        server._count_refusal(503)
        logger.info("over backlog (%d): 503 to %s", server.options.backlog, self._peer())
        self._respond(SERVICE_UNAVAILABLE)

    def data_received(self, data: bytes) -> None:
        if self._lingering:
            return
        if self._request is not None:
            self._held += data
            return
        try:
            request = self._parser.feed(data)
        except HandshakeError as error:
            if self._over_capacity:
                self._turn_away()
            else:
                self._refuse(error)
            return
        if self._over_capacity:
            if request is not None:
                self._turn_away()
            return
        if request is not None:
            self._request = request
            peer = self._transport.get_extra_info("peername") if self._transport else None
            request.remote_address = (peer[0], peer[1]) if peer else None
            self._handle(request)

    def eof_received(self) -> bool:
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_timer()
        self._release_slot()

    def _release_slot(self) -> None:
        """Give the connection's place in ``backlog`` back (once)."""
        if not self._handed_over:
            self._handed_over = True
            self._server._handshake_finished(self._over_capacity)

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _timed_out(self) -> None:
        self._timer = None
        self._server._count_refusal(408)
        logger.info("handshake timeout from %s", self._peer())
        self._respond(HTTPResponse(408, "Request Timeout\n"))

    def _peer(self) -> Any:
        return self._transport.get_extra_info("peername") if self._transport else None

    def _respond(self, response: HTTPResponse) -> None:
        """Send ``response``, half-close, and linger (see the module docstring)."""
        self._cancel_timer()
        transport = self._transport
        if transport is None or transport.is_closing() or self._lingering:
            return
        self._release_slot()  # answered: what is left is a short, bounded linger
        transport.write(response.encode())
        if not transport.can_write_eof():  # TLS: close_notify after the response
            transport.close()
            return
        transport.write_eof()
        transport.resume_reading()  # an async handler may have paused it
        self._lingering = True
        linger = min(LINGER, self._server.options.handshake_timeout)
        self._timer = self._server._loop.call_later(linger, transport.abort)

    def _refuse(self, error: HandshakeError) -> None:
        self._server._count_refusal(error.status)
        logger.info("refused handshake from %s: %s", self._peer(), error)
        self._respond(
            HTTPResponse(error.status, error.reason + "\n", list(error.headers))
        )

    def _later(
        self,
        awaitable: Awaitable[Any],
        on_result: Callable[[Any], None],
        on_error: Callable[[Exception], None],
    ) -> None:
        """Wait for an async handler without reading meanwhile, then pass its
        result to ``on_result``, or its exception (cancellation included) to
        ``on_error``."""
        assert self._transport is not None
        self._transport.pause_reading()
        task = asyncio.ensure_future(awaitable)

        def done(task: asyncio.Future[Any]) -> None:
            if self._transport is None or self._transport.is_closing():
                return
            self._transport.resume_reading()
            if task.cancelled():
                on_error(RuntimeError("the handler was cancelled"))
                return
            exc = task.exception()
            if exc is None:
                on_result(task.result())
            else:
                on_error(exc if isinstance(exc, Exception) else RuntimeError(repr(exc)))

        task.add_done_callback(done)

    # -- dispatch ----------------------------------------------------------

    def _handle(self, request: Request) -> None:
        server = self._server
        options = server.options
        if not self._parser.upgrade:
            self._plain_http(request)
            return
        if options.path is not None and request.path != options.path:
            self._refuse(HandshakeError(404, f"no WebSocket endpoint at {request.path}"))
            return
        try:
            upgrade = validate_upgrade(request)
            extensions, deflate = server._negotiate_extensions(upgrade)
        except HandshakeError as error:
            self._refuse(error)
            return
        handler = options.accept_handler
        if handler is None:
            self._accept(request, upgrade, upgrade.protocols[0] if upgrade.protocols else None, extensions, deflate)
            return
        try:
            nargs = _positional_capacity(handler)
            result = handler(upgrade.protocols) if nargs == 1 else handler(upgrade.protocols, request)
        except Exception as exc:
            self._handler_failed(exc)
            return
        if inspect.isawaitable(result):
            self._later(
                result,
                lambda answer: self._decide(answer, request, upgrade, extensions, deflate),
                self._handler_failed,
            )
        else:
            self._decide(result, request, upgrade, extensions, deflate)

    def _decide(self, result: Any, request: Request, upgrade: UpgradeRequest, extensions: str | None, deflate: PerMessageDeflate | None) -> None:
        """Apply the acceptHandler's answer (SPEC section 1)."""
        if result is True:
            self._accept(request, upgrade, None, extensions, deflate)
        elif result is False or result is None:
            self._refuse(HandshakeError(401, "connection refused by acceptHandler"))
        elif isinstance(result, str) and result in upgrade.protocols:
            self._accept(request, upgrade, result, extensions, deflate)
        elif isinstance(result, str):
            self._handler_failed(
                ValueError(f"acceptHandler returned {result!r}, which the client did not offer ({upgrade.protocols})")
            )
        else:
            self._handler_failed(
                TypeError(f"acceptHandler must return an offered protocol, True, False or None, not {result!r}")
            )

    def _handler_failed(self, exc: Exception) -> None:
        logger.error("acceptHandler failed", exc_info=exc)
        self._refuse(HandshakeError(500, "internal server error in acceptHandler"))
        self._server.emit("error", exc)

    def _accept(self, request: Request, upgrade: UpgradeRequest, protocol: str | None, extensions: str | None, deflate: PerMessageDeflate | None) -> None:
        transport = self._transport
        if transport is None or transport.is_closing():
            return
        server = self._server
        if server._state != "listening":  # wss.close() began during this handshake
            self._refuse(HandshakeError(503, "the server is shutting down", [("Retry-After", "1")]))
            return
        self._cancel_timer()
        options = server.options
        transport.write(switching_protocols_response(upgrade.key, protocol, extensions))
        proto = ServerConnection(
            max_payload=options.max_payload,
            max_fragments=options.max_fragments,
            deflate=deflate,
        )
        connection = WebSocketConnection(server, transport, request, proto, protocol, extensions)
        self._handed_over = True
        transport.set_protocol(connection)
        self._transport = None
        server._connection_opened(connection, self._over_capacity)
        server.emit("connection", connection, request)
        trailing = self._parser.trailing + self._held
        if trailing and not connection._closed:
            connection.data_received(trailing)

    def _plain_http(self, request: Request) -> None:
        handler = self._server.options.http_handler
        if handler is None:
            self._server._count_refusal(426)
            self._respond(UPGRADE_REQUIRED)
            return
        try:
            result = handler(request)
        except Exception as exc:
            self._http_handler_failed(exc)
            return
        if inspect.isawaitable(result):
            self._later(result, self._send_plain, self._http_handler_failed)
        else:
            self._send_plain(result)

    def _send_plain(self, result: Any) -> None:
        try:
            response = _as_response(result)
        except TypeError as exc:
            self._http_handler_failed(exc)
            return
        self._respond(response if response is not None else UPGRADE_REQUIRED)

    def _http_handler_failed(self, exc: Exception) -> None:
        logger.error("httpHandler failed", exc_info=exc)
        self._respond(HTTPResponse(500, "Internal Server Error\n"))
        self._server.emit("error", exc)
