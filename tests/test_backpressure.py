"""Backpressure on real sockets: ``buffered_amount``, ``drain``, reading that
pauses when the peer or the application cannot keep up, and the slow-consumer
limit. Nothing an honest peer sends or is sent is lost."""

from __future__ import annotations

import asyncio
from typing import Any

import websockets

import wsserver as ws
from hardening_support import TIMEOUT, RawClient, client_frame

MESSAGE = b"m" * 65536


async def until(condition: Any, timeout: float = TIMEOUT) -> None:
    """Poll ``condition()`` every 10 ms until it holds (fail after ``timeout``)."""
    for _ in range(int(timeout / 0.01)):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("condition not reached in time")


async def test_slow_consumer_is_dropped_at_max_buffered_amount() -> None:
    events: list[Any] = []
    limit = 1024 * 1024
    async with ws.Server(host="127.0.0.1", port=0, max_buffered_amount=limit) as wss:
        peak = [0]
        watched: list[ws.WebSocketConnection] = []

        def on_connection(conn: ws.WebSocketConnection, request: ws.Request) -> None:
            if request.path == "/never-reads":
                watched.append(conn)
                conn.on("error", lambda error: events.append(error))
                conn.on("close", lambda code: events.append(code))

        wss.on("connection", on_connection)
        async with websockets.connect(f"ws://127.0.0.1:{wss.port}/", max_queue=None) as honest:
            reader = await RawClient.open(wss.port, "/never-reads", receive_buffer=4096)
            reader.stop_reading()
            # a broadcast feed, 64 KiB every 5 ms, that does not wait for drain
            for _ in range(200):
                wss.broadcast(MESSAGE)
                peak[0] = max([peak[0], *(conn.buffered_amount for conn in watched)])
                await asyncio.sleep(0.005)
            await until(lambda: len(events) == 2)
            assert isinstance(events[0], ws.SlowConsumer)
            assert events[1] == 1006
            # the server never held much more than the limit for that peer
            assert peak[0] <= limit + len(MESSAGE) + 16
            # the honest client, which reads, got every message
            for _ in range(200):
                assert await asyncio.wait_for(honest.recv(), TIMEOUT) == MESSAGE
            reader.close()


async def test_buffered_amount_drain_event_and_await_drain() -> None:
    ready: asyncio.Future[ws.WebSocketConnection] = asyncio.get_running_loop().create_future()
    async with ws.Server(host="127.0.0.1", port=0) as wss:
        wss.on("connection", ready.set_result)
        client = await RawClient.open(wss.port, receive_buffer=4096)
        client.stop_reading()
        conn = await ready
        drains: list[None] = []
        conn.on("drain", lambda: drains.append(None))
        assert conn.buffered_amount == 0
        for _ in range(64):  # 4 MiB
            conn.send(MESSAGE)
        assert conn.buffered_amount > 1024 * 1024
        waiter = asyncio.ensure_future(conn.drain())
        await asyncio.sleep(0.05)
        assert not waiter.done() and not drains  # the peer reads nothing: no drain
        client.resume_reading()
        await asyncio.wait_for(waiter, TIMEOUT)
        assert len(drains) == 1
        for _ in range(64):
            assert await client.read_frame() == (0x2, MESSAGE)
        await until(lambda: conn.buffered_amount == 0)
        await conn.drain()  # nothing buffered: returns at once
        client.close()


async def test_fast_sender_that_does_not_read_is_paused_not_buffered() -> None:
    ready: asyncio.Future[ws.WebSocketConnection] = asyncio.get_running_loop().create_future()
    async with ws.Server(host="127.0.0.1", port=0) as wss:

        def on_connection(conn: ws.WebSocketConnection) -> None:
            conn.on("message", lambda data: conn.send(data))
            ready.set_result(conn)

        wss.on("connection", on_connection)
        client = await RawClient.open(wss.port, receive_buffer=4096)
        client.stop_reading()
        conn = await ready
        frame = client_frame(0x2, MESSAGE)
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
        # what the server holds for this peer is bounded by one read's echoes
        assert peak < 2 * 1024 * 1024
        # once the peer reads, every message comes back: nothing was lost
        client.resume_reading()
        for _ in range(sent):
            assert await client.read_frame() == (0x2, MESSAGE)
        client.close()


async def test_async_listeners_are_bounded_and_lose_nothing() -> None:
    release = asyncio.Event()
    started: list[int] = []
    finished: list[int] = []
    ready: asyncio.Future[ws.WebSocketConnection] = asyncio.get_running_loop().create_future()
    async with ws.Server(host="127.0.0.1", port=0, max_listener_tasks=4, ping_interval=None) as wss:

        def on_connection(conn: ws.WebSocketConnection) -> None:
            async def on_message(data: str) -> None:
                started.append(int(data))
                await release.wait()
                finished.append(int(data))
                conn.send(data)

            conn.on("message", on_message)
            ready.set_result(conn)

        wss.on("connection", on_connection)
        async with websockets.connect(f"ws://127.0.0.1:{wss.port}/") as client:
            conn = await ready
            for number in range(1000):
                await client.send(str(number))
            await asyncio.sleep(0.2)
            # 1000 messages sent, but only maxListenerTasks listener calls are running
            # and the server stopped reading
            assert started == [0, 1, 2, 3]
            assert not conn._transport.is_reading()  # type: ignore[attr-defined]
            release.set()
            received = [await asyncio.wait_for(client.recv(), TIMEOUT) for _ in range(1000)]
            assert sorted(map(int, received)) == list(range(1000))
            assert started == list(range(1000))  # every message, in order
            assert conn._transport.is_reading()  # type: ignore[attr-defined]


async def test_held_messages_are_delivered_before_close() -> None:
    release = asyncio.Event()
    log: list[Any] = []
    handled: list[str] = []
    async with ws.Server(host="127.0.0.1", port=0, max_listener_tasks=2) as wss:

        def on_connection(conn: ws.WebSocketConnection) -> None:
            async def on_message(data: str) -> None:
                await release.wait()
                handled.append(data)

            conn.on("message", log.append)  # records the order of the events
            conn.on("message", on_message)
            conn.on("close", lambda code: log.append(("close", code)))

        wss.on("connection", on_connection)
        client = await RawClient.open(wss.port)
        # 50 messages and the close frame in one write: most are held by the bound
        client.send(b"".join(client_frame(0x1, str(n)) for n in range(50)) + client_frame(0x8, b"\x03\xe8"))
        assert await client.read_close_code() == 1000
        await client.read_to_eof()
        await until(lambda: ("close", 1000) in log)
        assert log == [str(n) for n in range(50)] + [("close", 1000)]
        release.set()
        await until(lambda: len(handled) == 50)


async def test_replies_to_messages_before_the_peers_close_are_sent() -> None:
    async with ws.Server(host="127.0.0.1", port=0) as wss:
        wss.on("connection", lambda conn: conn.on("message", lambda data: conn.send(data)))
        client = await RawClient.open(wss.port)
        # requests and the close frame arrive in one read
        client.send(b"".join(client_frame(0x1, f"r{n}") for n in range(100)) + client_frame(0x8, b"\x03\xe8"))
        replies = [await client.read_frame() for _ in range(100)]
        assert replies == [(0x1, f"r{n}".encode()) for n in range(100)]
        assert await client.read_close_code() == 1000
        client.close()


async def test_ping_flood_from_a_peer_that_does_not_read_is_bounded() -> None:
    ready: asyncio.Future[ws.WebSocketConnection] = asyncio.get_running_loop().create_future()
    async with ws.Server(host="127.0.0.1", port=0) as wss:
        wss.on("connection", ready.set_result)
        client = await RawClient.open(wss.port, receive_buffer=4096)
        client.stop_reading()
        conn = await ready
        ping = client_frame(0x9, b"p" * 125)
        burst = ping * 1000
        for _ in range(200):  # up to 200 x 1000 pings of 125 bytes
            if client.writer.transport.get_write_buffer_size() < 1024 * 1024:
                client.send(burst)
            await asyncio.sleep(0.005)
            if not conn._transport.is_reading():  # type: ignore[attr-defined]
                break
        # the server stopped reading pings it cannot answer: pongs pile up only to the pause
        assert not conn._transport.is_reading()  # type: ignore[attr-defined]
        assert conn.buffered_amount < 2 * 1024 * 1024
        client.close()
