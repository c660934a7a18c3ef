"""Small helpers shared by the server tests."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Any, TypeVar

import websockets
from websockets.asyncio.client import ClientConnection, connect

import wsserver

__all__ = ["TIMEOUT", "Recorder", "close_code_of", "connect_ws", "echo", "url", "wait"]

#: upper bound of any single wait in the tests
TIMEOUT = 5.0

T = TypeVar("T")


async def wait(awaitable: Awaitable[T], timeout: float = TIMEOUT) -> T:
    """``awaitable``'s result, or ``TimeoutError`` after ``timeout`` seconds."""
    return await asyncio.wait_for(awaitable, timeout)


def url(server: wsserver.Server, path: str = "/") -> str:
    """The ``ws://`` URL of ``server`` (which listens on 127.0.0.1)."""
    assert server.port is not None
    return f"ws://127.0.0.1:{server.port}{path}"


def connect_ws(server: wsserver.Server, path: str = "/", **options: Any) -> connect:
    """A ``websockets`` client for ``server``: ``async with connect_ws(wss) as ws:``."""
    options.setdefault("proxy", None)
    options.setdefault("ping_interval", None)
    options.setdefault("compression", None)
    options.setdefault("open_timeout", TIMEOUT)
    options.setdefault("close_timeout", TIMEOUT)
    return connect(url(server, path), **options)


async def close_code_of(client: ClientConnection) -> int | None:
    """Wait until ``client`` is closed; the close code the server sent."""
    try:
        while True:
            await wait(client.recv())
    except websockets.ConnectionClosed as closed:
        return closed.rcvd.code if closed.rcvd is not None else None


def echo(wss: wsserver.Server) -> wsserver.Server:
    """Make every connection of ``wss`` echo what it receives."""

    def on_connection(conn: wsserver.WebSocketConnection) -> None:
        conn.on("message", lambda data: conn.send(data))

    wss.on("connection", on_connection)
    return wss


class Recorder:
    """Records the arguments of events of an emitter, one queue per event name.

    ``await recorder.next('message')`` waits for the next one; ``recorder.all``
    keeps every call so tests can check counts once things have settled.
    """

    def __init__(self, emitter: wsserver.EventEmitter, *names: str) -> None:
        self.queues: dict[str, asyncio.Queue[tuple[Any, ...]]] = {}
        self.all: dict[str, list[tuple[Any, ...]]] = {}
        for name in names:
            self.queues[name] = asyncio.Queue()
            self.all[name] = []
            emitter.on(name, self._listener(name))

    def _listener(self, name: str) -> Any:
        def listener(*args: Any) -> None:
            self.all[name].append(args)
            self.queues[name].put_nowait(args)

        return listener

    async def next(self, name: str, timeout: float = TIMEOUT) -> tuple[Any, ...]:
        """The arguments of the next ``name`` event."""
        return await wait(self.queues[name].get(), timeout)

    def count(self, name: str) -> int:
        """How many ``name`` events were emitted so far."""
        return len(self.all[name])
