"""Logging: the 'wsserver' logger is quiet by default and, at DEBUG, logs
one line per connection with its address, path, subprotocol and close code."""

from __future__ import annotations

import asyncio
import logging

import pytest
from websockets.asyncio.client import connect

import wsserver as ws

TIMEOUT = 10


async def session(port: int) -> tuple[str, int]:
    """One connection that exchanges a message and closes with 4002; its local address."""
    async with connect(
        f"ws://127.0.0.1:{port}/room?x=1", subprotocols=["chat.v1"], open_timeout=TIMEOUT
    ) as client:
        await client.send("hi")
        assert await asyncio.wait_for(client.recv(), TIMEOUT) == "hi"
        host, local_port = client.local_address[:2]
        await client.close(4002, "done")
    return host, local_port


async def serve_one_session(closed: asyncio.Event) -> tuple[str, int]:
    async with ws.Server(host="127.0.0.1", port=0, accept_handler=lambda protocols: protocols[0]) as wss:

        @wss.on("connection")
        def on_connection(conn: ws.WebSocketConnection) -> None:
            conn.on("message", lambda data: conn.send(data))
            conn.on("close", closed.set)

        address = await session(wss.port or 0)
        await asyncio.wait_for(closed.wait(), TIMEOUT)
    return address


async def test_one_debug_line_per_connection(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="wsserver")
    host, port = await serve_one_session(asyncio.Event())
    lines = [record.getMessage() for record in caplog.records if str(port) in record.getMessage()]
    assert len(lines) == 1, lines
    line = lines[0]
    assert f"('{host}', {port})" in line
    assert "path=/room" in line
    assert "protocol=chat.v1" in line
    assert "code=4002" in line
    assert all(record.name == "wsserver" for record in caplog.records)


async def test_quiet_by_default(caplog: pytest.LogCaptureFixture) -> None:
    logger = logging.getLogger("wsserver")
    assert not logger.handlers, "the library must not install handlers"
    saved = logger.level
    logger.setLevel(logging.NOTSET)  # as configured by nobody (another test may have set it)
    caplog.set_level(logging.WARNING)  # what the root logger shows unless configured otherwise
    try:
        await serve_one_session(asyncio.Event())
    finally:
        logger.setLevel(saved)
    assert [record for record in caplog.records if record.name.startswith("wsserver")] == []
