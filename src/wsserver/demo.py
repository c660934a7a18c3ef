"""The demo application of ``python -m wsserver``: a web page, an echo and a chat.

* ``GET /`` (plain HTTP) serves ``static/index.html``: a page with an echo box
  and a chat room, plain HTML and JavaScript.
* WebSocket ``/chat``: a broadcast chat room, the topic ``chat``. A client
  sends text; every member of the room (the sender too) receives it as JSON
  ``{"type": "message", "name": ..., "text": ...}``; joins and leaves are
  announced as ``{"type": "join"|"leave", "name": ..., "online": n}``, where
  ``online`` counts the members connected to this process. With ``--workers``
  and ``--broker`` the room spans every worker. The
  name comes from the query (``/chat?name=ada``), else ``guest-N``. Binary
  messages close the connection with 1003, text over
  :data:`MAX_CHAT_MESSAGE` characters with 1009.
* WebSocket on any other path: echo. Text comes back as text, binary as
  binary, so conformance suites and benchmarks can run against the demo.

Any other plain HTTP request goes to the ``httpHandler`` the server had
before (if any), else gets the library's 426 Upgrade Required.
"""

from __future__ import annotations

import itertools
import json
from functools import cache
from importlib import resources
from typing import Any

from .connection import WebSocketConnection
from .protocol.close_codes import MESSAGE_TOO_BIG, UNSUPPORTED_DATA
from .protocol.handshake import Request
from .server import Server
from .upgrade import HTTPResponse

__all__ = ["CHAT_PATH", "CHAT_TOPIC", "MAX_CHAT_MESSAGE", "MAX_NAME_LENGTH", "echo", "page", "setup"]

#: the WebSocket path of the chat room
CHAT_PATH = "/chat"
#: the topic its messages are published on
CHAT_TOPIC = "chat"
#: chat names are cut to this many characters
MAX_NAME_LENGTH = 32
#: longest chat message relayed, in characters
MAX_CHAT_MESSAGE = 4096


@cache
def page() -> bytes:
    """The demo page, as shipped in the package (``wsserver/static/index.html``)."""
    return resources.files("wsserver").joinpath("static", "index.html").read_bytes()


def echo(conn: WebSocketConnection) -> None:
    """Send every message of ``conn`` back as it came (text as text, binary as binary)."""
    # not conn.on("message", conn.send): the second argument of 'message'
    # (is_binary) would land in send()'s ``mask`` parameter
    conn.on("message", lambda data: conn.send(data))


def setup(wss: Server) -> None:
    """Install the demo on ``wss``: the page on ``GET /``, the chat on
    :data:`CHAT_PATH`, echo on every other WebSocket path."""
    members: set[WebSocketConnection] = set()
    guest_numbers = itertools.count(1)
    previous_http_handler = wss.options.http_handler

    def tell_members(event: dict[str, Any]) -> None:
        wss.publish(CHAT_TOPIC, json.dumps(event))  # framed once; every worker with a broker

    def join_chat(conn: WebSocketConnection, request: Request) -> None:
        names = request.params.get("name")
        name = (names[0].strip() if names else "")[:MAX_NAME_LENGTH] or f"guest-{next(guest_numbers)}"
        members.add(conn)
        conn.subscribe(CHAT_TOPIC)
        tell_members({"type": "join", "name": name, "online": len(members)})

        def on_message(data: str | bytes, is_binary: bool) -> None:
            if is_binary:
                conn.close(UNSUPPORTED_DATA, "the chat takes text messages")
            elif len(data) > MAX_CHAT_MESSAGE:
                conn.close(MESSAGE_TOO_BIG, f"chat messages are at most {MAX_CHAT_MESSAGE} characters")
            else:
                tell_members({"type": "message", "name": name, "text": data})

        def on_close() -> None:
            members.discard(conn)
            tell_members({"type": "leave", "name": name, "online": len(members)})

        conn.on("message", on_message)
        conn.on("close", on_close)

    def on_connection(conn: WebSocketConnection, request: Request) -> None:
        if request.path == CHAT_PATH:
            join_chat(conn, request)
        else:
            echo(conn)

    def http_handler(request: Request) -> Any:
        if request.method == "GET" and request.path in ("/", "/index.html"):
            return HTTPResponse(
                200, page(), [("Cache-Control", "no-cache")], content_type="text/html; charset=utf-8"
            )
        if previous_http_handler is not None:
            return previous_http_handler(request)
        return None  # 426 Upgrade Required: every other path is a WebSocket endpoint

    wss.on("connection", on_connection)
    wss.options.http_handler = http_handler
