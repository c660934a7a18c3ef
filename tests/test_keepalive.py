"""Keepalive on real sockets: idle peers are pinged every ``pingInterval``; a
peer that does not answer within ``pingTimeout`` is dropped; ``None`` turns
either off."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
import websockets

import wsserver as ws
from hardening_support import TIMEOUT, RawClient


async def test_silent_peer_is_dropped_and_answering_peer_kept() -> None:
    events: dict[str, list[Any]] = {"/mute": [], "/": []}
    async with ws.Server(host="127.0.0.1", port=0, ping_interval=0.2, ping_timeout=0.2) as wss:

        def on_connection(conn: ws.WebSocketConnection, request: ws.Request) -> None:
            conn.on("error", events[request.path].append)
            conn.on("close", events[request.path].append)
            conn.on("message", lambda data: conn.send(data))

        wss.on("connection", on_connection)
        # websockets answers pings by itself (its own keepalive is off)
        async with websockets.connect(f"ws://127.0.0.1:{wss.port}/", ping_interval=None) as answering:
            mute = await RawClient.open(wss.port, "/mute")
            opcode, _ = await mute.read_frame()  # reads, but never answers
            assert opcode == 0x9
            await mute.read_to_eof()  # then the server drops it
            for _ in range(100):
                if len(events["/mute"]) == 2:
                    break
                await asyncio.sleep(0.02)
            error, code = events["/mute"]
            assert isinstance(error, ws.ConnectionDropped) and "pingTimeout" in str(error)
            assert code == 1006
            # the idle peer that answers pings was pinged too and is still open
            await answering.send("alive")
            assert await asyncio.wait_for(answering.recv(), TIMEOUT) == "alive"
            assert events["/"] == []


async def test_no_keepalive_with_none() -> None:
    async with ws.Server(host="127.0.0.1", port=0, ping_interval=None) as wss:
        quiet = await RawClient.open(wss.port)
        with pytest.raises(asyncio.TimeoutError):
            await quiet.read_frame(timeout=0.6)
        assert len(wss.clients or ()) == 1
        quiet.close()


async def test_ping_timeout_none_pings_but_never_drops() -> None:
    async with ws.Server(host="127.0.0.1", port=0, ping_interval=0.1, ping_timeout=None) as wss:
        mute = await RawClient.open(wss.port)
        for _ in range(3):
            assert (await mute.read_frame())[0] == 0x9
        assert len(wss.clients or ()) == 1
        mute.close()


async def test_peer_paused_by_slow_async_listeners_is_not_dropped() -> None:
    async with ws.Server(
        host="127.0.0.1", port=0, ping_interval=0.1, ping_timeout=0.1, max_listener_tasks=1
    ) as wss:

        def on_connection(conn: ws.WebSocketConnection) -> None:
            async def on_message(data: str) -> None:
                await asyncio.sleep(0.6)  # several keepalive rounds
                conn.send(data)

            conn.on("message", on_message)

        wss.on("connection", on_connection)
        async with websockets.connect(f"ws://127.0.0.1:{wss.port}/", ping_interval=None) as client:
            await client.send("one")
            await client.send("two")  # held: reading is paused meanwhile
            assert await asyncio.wait_for(client.recv(), TIMEOUT) == "one"
            assert await asyncio.wait_for(client.recv(), TIMEOUT) == "two"
