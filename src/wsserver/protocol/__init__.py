"""The sans-I/O WebSocket protocol: bytes in, events and bytes out.

Nothing here touches a socket, an event loop or a clock; the asyncio layer in
``wsserver`` drives it.
"""

from __future__ import annotations

from .connection import (
    CLOSED,
    CLOSING,
    CONNECTING,
    OPEN,
    CloseReceived,
    Event,
    Failure,
    Ping,
    Pong,
    ServerConnection,
)
from .errors import HandshakeError, PayloadTooBig, ProtocolError, WebSocketError
from .frames import encode_frame
from .handshake import Headers, Request, RequestParser, validate_upgrade

__all__ = [
    "ServerConnection",
    "Event",
    "Ping",
    "Pong",
    "CloseReceived",
    "Failure",
    "CONNECTING",
    "OPEN",
    "CLOSING",
    "CLOSED",
    "HandshakeError",
    "PayloadTooBig",
    "ProtocolError",
    "WebSocketError",
    "encode_frame",
    "Headers",
    "Request",
    "RequestParser",
    "validate_upgrade",
]
