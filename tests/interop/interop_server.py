"""The server side of the interoperability matrix.

wsserver runs in a thread of its own (with the event loop ``wsserver.run``
would use), so every client — asyncio, threaded, a Node.js process, a
browser — talks to it over a real socket exactly as it would in production.

The interop application:

* ``acceptHandler``: chooses ``chat.v2`` over ``chat.v1`` (the server's
  preference, not the client's order); refuses (401) a client that offers only
  unknown subprotocols; accepts a client that offers none.
* text ``cmd:ping:<data>``: the server pings with ``<data>``; when the pong
  comes back it sends the text ``pong:<data>``.
* text ``cmd:close:<code>:<reason>``: the server closes with that code and reason.
* anything else comes back as it came (text as text, binary as binary).

A plain HTTP ``GET /`` gets an empty HTML page: Chromium runs its scenarios
in a page served by the server it talks to (a page from elsewhere, even
``about:blank``, may not reach a loopback address under Chromium's local
network access checks).

Each client puts ``?id=<unique>`` in its URL; the server records what it saw
of that connection (subprotocol, extensions, close code and reason).
"""

from __future__ import annotations

import asyncio
import threading
from dataclasses import dataclass, field
from typing import Any

import wsserver as ws
from wsserver.runner import new_event_loop

KNOWN_PROTOCOLS = ("chat.v2", "chat.v1")  # in the server's order of preference
TIMEOUT = 10.0


@dataclass
class Seen:
    """What the server saw of one connection."""

    protocol: str | None = None
    extensions: str | None = None
    close: tuple[int, str] | None = None
    closed: threading.Event = field(default_factory=threading.Event)

    def wait_closed(self) -> tuple[int, str]:
        assert self.closed.wait(TIMEOUT), "the server saw no close"
        assert self.close is not None
        return self.close


def choose_protocol(protocols: list[str]) -> str | bool:
    if not protocols:
        return True
    for known in KNOWN_PROTOCOLS:
        if known in protocols:
            return known
    return False


def blank_page(request: ws.Request) -> ws.HTTPResponse | None:
    if request.path != "/":
        return None
    return ws.HTTPResponse(200, "<!doctype html><title>interop</title>", content_type="text/html; charset=utf-8")


def interop_app(wss: ws.Server, seen: dict[str, Seen]) -> None:
    @wss.on("connection")
    def on_connection(conn: ws.WebSocketConnection, request: ws.Request) -> None:
        record = seen.setdefault(request.params.get("id", ["?"])[0], Seen())
        record.protocol = conn.protocol
        record.extensions = conn.extensions

        def on_message(data: str | bytes) -> None:
            if isinstance(data, str) and data.startswith("cmd:ping:"):
                conn.ping(data.removeprefix("cmd:ping:"))
            elif isinstance(data, str) and data.startswith("cmd:close:"):
                code, _, reason = data.removeprefix("cmd:close:").partition(":")
                conn.close(int(code), reason)
            else:
                conn.send(data)

        def on_close(code: int, reason: str) -> None:
            record.close = (code, reason)
            record.closed.set()

        conn.on("message", on_message)
        conn.on("pong", lambda data: conn.send("pong:" + data.decode()))
        conn.on("close", on_close)


class ServerThread:
    """A wsserver ``Server`` running the interop app in a thread."""

    def __init__(self, **options: Any) -> None:
        self.seen: dict[str, Seen] = {}
        self._options = options
        self._ready = threading.Event()
        self._loop = new_event_loop()
        self._stop: asyncio.Future[None] | None = None
        self.server: ws.Server | None = None
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="wsserver-interop", daemon=True)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        try:
            self._loop.run_until_complete(self._serve())
        except BaseException as exc:  # reported by start()
            self.error = exc
            self._ready.set()
        finally:
            self._loop.close()

    async def _serve(self) -> None:
        self._stop = self._loop.create_future()
        async with ws.Server(
            host="127.0.0.1", port=0, accept_handler=choose_protocol, http_handler=blank_page, **self._options
        ) as wss:
            interop_app(wss, self.seen)
            self.server = wss
            self._ready.set()
            await self._stop

    def start(self) -> ServerThread:
        self._thread.start()
        assert self._ready.wait(TIMEOUT), "the interop server did not start"
        if self.error is not None:
            raise self.error
        return self

    def stop(self) -> None:
        if self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set_result, None)
        self._thread.join(TIMEOUT + 5)

    @property
    def port(self) -> int:
        assert self.server is not None and self.server.port is not None
        return self.server.port

    def stats(self) -> ws.ServerStats:
        assert self.server is not None
        return asyncio.run_coroutine_threadsafe(self._stats(), self._loop).result(TIMEOUT)

    async def _stats(self) -> ws.ServerStats:
        assert self.server is not None
        return self.server.stats()
