"""wsserver: a WebSocket server with the API of Node.js' ``ws`` module.

    import wsserver as ws

    wss = ws.Server({'port': 8080})

    def on_connection(conn, request):
        conn.on('message', lambda data: conn.send(data))

    wss.on('connection', on_connection)
    ws.run()
"""

from __future__ import annotations

from .connection import ConnectionDropped, SlowConsumer, WebSocketConnection
from .emitter import EventEmitter
from .options import ServerOptions
from .protocol.connection import CLOSED, CLOSING, CONNECTING, OPEN
from .protocol.errors import HandshakeError, PayloadTooBig, ProtocolError, WebSocketError
from .protocol.handshake import Headers, Request
from .runner import run, serve
from .server import Server
from .upgrade import HTTPResponse
from .workers import WorkerBootError, run_workers

__version__ = "0.1.0"

#: alias for the seed's name of the connection class
WebSocket = WebSocketConnection

__all__ = [
    "Server",
    "WebSocketConnection",
    "WebSocket",
    "EventEmitter",
    "ServerOptions",
    "Request",
    "Headers",
    "HTTPResponse",
    "run",
    "serve",
    "run_workers",
    "WorkerBootError",
    "CONNECTING",
    "OPEN",
    "CLOSING",
    "CLOSED",
    "WebSocketError",
    "ProtocolError",
    "PayloadTooBig",
    "HandshakeError",
    "ConnectionDropped",
    "SlowConsumer",
    "__version__",
]
