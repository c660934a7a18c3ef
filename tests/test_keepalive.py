"""Keepalive beyond tests/server: ``pingTimeout=None`` pings but never drops,
and a peer whose reading the server paused (busy async listeners) is not
counted as silent."""

from __future__ import annotations

import asyncio
from typing import Any

from helpers import Recorder, connect_ws, wait


async def test_ping_timeout_none_pings_but_never_drops(make_server: Any, raw: Any) -> None:
    wss = await make_server(pingInterval=0.1, pingTimeout=None)
    mute = await raw(wss)
    assert (await mute.handshake()).status == 101
    for _ in range(3):  # reads the pings, never answers
        assert (await mute.read_frame()).opcode == 0x9
    assert len(wss.clients or ()) == 1


async def test_peer_paused_by_slow_async_listeners_is_not_dropped(make_server: Any) -> None:
    wss = await make_server(pingInterval=0.1, pingTimeout=0.1, maxListenerTasks=1)
    connections = Recorder(wss, "connection")
    async with connect_ws(wss) as client:
        conn, _ = await connections.next("connection")
        closes = Recorder(conn, "close")

        async def on_message(data: str) -> None:
            await asyncio.sleep(0.6)  # several keepalive rounds
            conn.send(data)

        conn.on("message", on_message)
        await client.send("one")
        await client.send("two")  # held: reading is paused meanwhile
        assert await wait(client.recv()) == "one"
        assert await wait(client.recv()) == "two"
        assert closes.count("close") == 0
