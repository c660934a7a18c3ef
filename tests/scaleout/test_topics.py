"""Topics in one process (no broker): subscribe, unsubscribe, publish, exclude, close."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable

import pytest
import scaleout_app
import websockets

import wsserver
import wsserver.topics


@pytest.fixture
async def wss(make_server: Callable[..., Awaitable[wsserver.Server]]) -> wsserver.Server:
    server = await make_server()
    scaleout_app.setup(server)
    return server


def url(server: wsserver.Server) -> str:
    return f"ws://127.0.0.1:{server.port}/"


async def subscribe(client: websockets.ClientConnection, topic: str) -> None:
    await client.send(f"sub {topic}")
    assert await asyncio.wait_for(client.recv(), 5) == f"subscribed {topic}"


async def test_publish_reaches_subscribers_of_that_topic_only(wss: wsserver.Server) -> None:
    async with (
        websockets.connect(url(wss)) as on_t,
        websockets.connect(url(wss)) as on_u,
        websockets.connect(url(wss)) as publisher,
    ):
        await subscribe(on_t, "t")
        await subscribe(on_u, "u")
        for i in range(50):
            await publisher.send(f"pub t t{i}")
            await publisher.send(f"pub u u{i}")
        await publisher.send("pub t end")
        await publisher.send("pub u end")
        for client, topic in ((on_t, "t"), (on_u, "u")):
            received = []
            for _ in range(51):
                received.append(await asyncio.wait_for(client.recv(), 5))
            assert received == [f"{topic}{i}" for i in range(50)] + ["end"]
        # the publisher subscribed to nothing, so it received nothing
        await publisher.send("topics")
        assert await asyncio.wait_for(publisher.recv(), 5) == "topics "


async def test_binary_publish_stays_binary(wss: wsserver.Server) -> None:
    async with websockets.connect(url(wss)) as subscriber, websockets.connect(url(wss)) as publisher:
        await subscribe(subscriber, "bin")
        await publisher.send("bin bin 00ff10")
        assert await asyncio.wait_for(subscriber.recv(), 5) == b"\x00\xff\x10"


async def test_exclude_skips_the_sender(wss: wsserver.Server) -> None:
    async with websockets.connect(url(wss)) as sender, websockets.connect(url(wss)) as other:
        await subscribe(sender, "room")
        await subscribe(other, "room")
        await sender.send("pubx room hello")
        await sender.send("count room ping")
        assert await asyncio.wait_for(other.recv(), 5) == "hello"
        assert await asyncio.wait_for(other.recv(), 5) == "ping"
        # the sender's next frame is its own "ping" (published without exclude), not "hello"
        assert await asyncio.wait_for(sender.recv(), 5) == "ping"
        assert await asyncio.wait_for(sender.recv(), 5) == "count 2"


async def test_unsubscribe_and_topics(wss: wsserver.Server) -> None:
    async with websockets.connect(url(wss)) as client, websockets.connect(url(wss)) as publisher:
        await subscribe(client, "a")
        await subscribe(client, "b")
        await client.send("topics")
        assert await asyncio.wait_for(client.recv(), 5) == "topics a,b"
        await client.send("unsub a")
        assert await asyncio.wait_for(client.recv(), 5) == "unsubscribed a"
        await client.send("unsub never-subscribed")  # no error
        assert await asyncio.wait_for(client.recv(), 5) == "unsubscribed never-subscribed"
        await publisher.send("pub a lost")
        await publisher.send("pub b kept")
        assert await asyncio.wait_for(client.recv(), 5) == "kept"
        await client.send("topics")
        assert await asyncio.wait_for(client.recv(), 5) == "topics b"


async def test_close_unsubscribes(wss: wsserver.Server) -> None:
    async with websockets.connect(url(wss)) as publisher:
        async with websockets.connect(url(wss)) as client:
            await subscribe(client, "gone")
            await publisher.send("count gone x")
            assert await asyncio.wait_for(publisher.recv(), 5) == "count 1"
        for _ in range(100):  # the server sees the close shortly after the client
            if wss.clients is not None and len(wss.clients) == 1:
                break
            await asyncio.sleep(0.02)
        await publisher.send("count gone y")
        assert await asyncio.wait_for(publisher.recv(), 5) == "count 0"
    assert wss._topics is not None
    assert wss._topics.topics == frozenset()
    assert wss._topics._topics_of == {}


async def test_framed_once_per_publish(wss: wsserver.Server, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []
    real = wsserver.topics.encode_frame

    def counting(opcode: int, payload: bytes) -> bytes:
        calls.append(payload)
        return real(opcode, payload)

    monkeypatch.setattr(wsserver.topics, "encode_frame", counting)
    clients = [await websockets.connect(url(wss)) for _ in range(5)]
    try:
        for client in clients:
            await subscribe(client, "many")
        await clients[0].send("pub many once")
        for client in clients:
            assert await asyncio.wait_for(client.recv(), 5) == "once"
        assert calls == [b"once"]
    finally:
        for client in clients:
            await client.close()


async def test_publish_from_another_thread(wss: wsserver.Server) -> None:
    async with websockets.connect(url(wss)) as client:
        await subscribe(client, "thread")
        thread = threading.Thread(target=wss.publish, args=("thread", "from a thread"))
        thread.start()
        thread.join(5)
        assert await asyncio.wait_for(client.recv(), 5) == "from a thread"


async def test_topic_must_be_str(wss: wsserver.Server) -> None:
    with pytest.raises(TypeError):
        wss.publish(b"t", "x")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        wss.publish("t", 42)  # type: ignore[arg-type]
    connected: asyncio.Future[wsserver.WebSocketConnection] = asyncio.get_running_loop().create_future()
    wss.on("connection", connected.set_result)
    async with websockets.connect(url(wss)):
        conn = await asyncio.wait_for(connected, 5)
        with pytest.raises(TypeError):
            conn.subscribe(1)  # type: ignore[arg-type]
        assert conn.topics == frozenset()


async def test_no_broker_topics_synced_returns(wss: wsserver.Server) -> None:
    await asyncio.wait_for(wss.topics_synced(), 1)
    assert wss.publish("nobody", "x") == 0
