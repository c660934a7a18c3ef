"""Exceptions raised by the sans-I/O protocol layer."""

from __future__ import annotations

__all__ = ["HandshakeError", "WebSocketError", "ProtocolError", "PayloadTooBig"]


class WebSocketError(Exception):
    """Base class of every error wsserver raises or emits."""


class HandshakeError(WebSocketError):
    """The opening handshake is refused with an HTTP status.

    ``status`` is the HTTP status code sent to the client, ``headers`` extra
    response headers (for example ``Sec-WebSocket-Version`` on a 426).
    """

    def __init__(
        self, status: int, reason: str, headers: list[tuple[str, str]] | None = None
    ) -> None:
        super().__init__(f"{status}: {reason}")
        self.status = status
        self.reason = reason
        self.headers = headers or []


class ProtocolError(WebSocketError):
    """The peer broke RFC 6455; the connection is failed with close ``code``."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(f"{code}: {reason}")
        self.code = code
        self.reason = reason


class PayloadTooBig(ProtocolError):
    """A message exceeded ``maxPayload`` (close code 1009)."""

    def __init__(self, reason: str) -> None:
        super().__init__(1009, reason)
