"""Backpressure on real sockets (docs/security.md): reading pauses when the
peer or the application cannot keep up, async listeners are bounded, a slow
consumer of a broadcast is dropped without touching the others, and nothing an
honest peer sends is lost. (tests/server covers drain and the basic
slow-consumer drop.)"""

from __future__ import annotations

import asyncio
from typing import Any

import wsserver as ws
from helpers import Recorder, connect_ws, echo, wait
from rawclient import build_frame

MESSAGE = b"m" * 65536


async def until(condition: Any, timeout: float = 5.0) -> None:
    """Poll ``condition()`` every 10 ms until it holds (fail after ``timeout``)."""
    for _ in range(int(timeout / 0.01)):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("condition not reached in time")


async def open_conn(wss: ws.Server, raw: Any, **options: Any) -> tuple[Any, ws.WebSocketConnection]:
    connections = Recorder(wss, "connection")
    client = await raw(wss, **options)
    assert (await client.handshake()).status == 101
    conn, _ = await connections.next("connection")
    return client, conn


async def test_slow_consumer_of_a_broadcast_is_dropped_and_the_others_get_everything(
    make_server: Any, raw: Any
) -> None:
    limit = 1024 * 1024
    wss = await make_server(maxBufferedAmount=limit)
    async with connect_ws(wss, max_queue=None) as honest:
        client, slow = await open_conn(wss, raw, receive_buffer=4096)
        events = Recorder(slow, "error", "close")
        client.pause_reading()
        peak = 0
        for _ in range(200):  # a feed: 64 KiB every 5 ms, not waiting for drain
            wss.broadcast(MESSAGE)
            peak = max(peak, slow.buffered_amount)
            await asyncio.sleep(0.005)
        (error,) = await events.next("error")
        assert isinstance(error, ws.SlowConsumer)
        assert await events.next("close") == (1006, "")
        assert peak <= limit + len(MESSAGE) + 16  # never much more than the limit held
        for _ in range(200):  # the client that reads got every message
            assert await wait(honest.recv()) == MESSAGE


async def test_fast_sender_that_does_not_read_is_paused_not_buffered(make_server: Any, raw: Any) -> None:
    wss = echo(await make_server())
    client, conn = await open_conn(wss, raw, receive_buffer=4096)
    client.pause_reading()
    frame = build_frame(0x2, MESSAGE)
    sent = 0
    peak = 0
    for _ in range(2000):  # up to 125 MiB, but the server stops reading long before
        client.send(frame)
        sent += 1
        await asyncio.sleep(0)
        peak = max(peak, conn.buffered_amount)
        if client.writer.transport.get_write_buffer_size() > 8 * 1024 * 1024:
            break
    assert sent < 2000, "the server kept reading from a peer that does not read"
    assert not conn._transport.is_reading()  # type: ignore[attr-defined]
    assert peak < 2 * 1024 * 1024  # what it holds for this peer: about one read's echoes
    client.resume_reading()  # once the peer reads, every message comes back
    for _ in range(sent):
        assert (await client.read_frame()).payload == MESSAGE


async def test_async_listeners_are_bounded_and_lose_nothing(make_server: Any) -> None:
    wss = await make_server(maxListenerTasks=4, pingInterval=None)
    release = asyncio.Event()
    started: list[int] = []
    connections = Recorder(wss, "connection")
    async with connect_ws(wss) as client:
        conn, _ = await connections.next("connection")

        async def on_message(data: str) -> None:
            started.append(int(data))
            await release.wait()
            conn.send(data)

        conn.on("message", on_message)
        for number in range(1000):
            await client.send(str(number))
        await asyncio.sleep(0.2)
        # 1000 messages sent, 4 listener calls running, and the server stopped reading
        assert started == [0, 1, 2, 3]
        assert not conn._transport.is_reading()  # type: ignore[attr-defined]
        release.set()
        received = [await wait(client.recv()) for _ in range(1000)]
        assert sorted(map(int, received)) == list(range(1000))
        assert started == list(range(1000))  # every message, in order
        assert conn._transport.is_reading()  # type: ignore[attr-defined]


async def test_held_messages_are_delivered_before_close(make_server: Any, raw: Any) -> None:
    wss = await make_server(maxListenerTasks=2)
    client, conn = await open_conn(wss, raw)
    release = asyncio.Event()
    log: list[Any] = []
    handled: list[str] = []

    async def on_message(data: str) -> None:
        await release.wait()
        handled.append(data)

    conn.on("message", log.append)  # the order of the events
    conn.on("message", on_message)
    conn.on("close", lambda code: log.append(("close", code)))
    # 50 messages and the close frame in one write: most are held by the bound
    client.send(b"".join(build_frame(0x1, str(n)) for n in range(50)) + build_frame(0x8, b"\x03\xe8"))
    assert (await client.read_close()).close_code == 1000
    await until(lambda: ("close", 1000) in log)
    assert log == [str(n) for n in range(50)] + [("close", 1000)]
    release.set()
    await until(lambda: len(handled) == 50)


async def test_ping_flood_from_a_peer_that_does_not_read_is_bounded(make_server: Any, raw: Any) -> None:
    wss = await make_server()
    client, conn = await open_conn(wss, raw, receive_buffer=4096)
    client.pause_reading()
    burst = build_frame(0x9, b"p" * 125) * 1000
    for _ in range(200):  # up to 200 x 1000 pings of 125 bytes
        if client.writer.transport.get_write_buffer_size() < 1024 * 1024:
            client.send(burst)
        await asyncio.sleep(0.005)
        if not conn._transport.is_reading():  # type: ignore[attr-defined]
            break
    # the server stopped reading pings it cannot answer: pongs pile up only to the pause
    assert not conn._transport.is_reading()  # type: ignore[attr-defined]
    assert conn.buffered_amount < 2 * 1024 * 1024
