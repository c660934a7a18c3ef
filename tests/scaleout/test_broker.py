"""The Redis broker, against a real redis-server started by the tests.

Two servers in this process, each with its own broker (its own Redis
connections and process id on the wire), stand for two processes; the worker
tests (test_workers.py) do the same with real processes.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import AsyncIterator

import pytest
import redis.asyncio
import scaleout_app
import websockets
from scaleout_helpers import RedisProcess

import wsserver
from wsserver.broker import BrokerDisconnected, PublishDropped, RedisBroker, parse_broker_url


class Pair:
    """Servers A and B on one Redis, each with the test application."""

    def __init__(self, broker_url: str) -> None:
        self.errors: list[Exception] = []
        self.servers = []
        for _ in range(2):
            server = wsserver.Server(port=0, host="127.0.0.1", broker=broker_url)
            scaleout_app.setup(server)
            server.on("error", self.errors.append)
            self.servers.append(server)
        self.a, self.b = self.servers

    async def start(self) -> None:
        for server in self.servers:
            await server.start()
        await self.synced()

    async def synced(self) -> None:
        await asyncio.wait_for(asyncio.gather(*(server.topics_synced() for server in self.servers)), 30)

    async def close(self) -> None:
        await asyncio.gather(*(server.close() for server in self.servers))


def url(server: wsserver.Server) -> str:
    return f"ws://127.0.0.1:{server.port}/"


def broker(server: wsserver.Server) -> RedisBroker:
    assert server._topics is not None and server._topics.broker is not None
    return server._topics.broker


async def subscribe(client: websockets.ClientConnection, topic: str) -> None:
    await client.send(f"sub {topic}")
    assert await asyncio.wait_for(client.recv(), 30) == f"subscribed {topic}"


async def receive_until(client: websockets.ClientConnection, last: str, limit: int) -> list[str | bytes]:
    """Messages up to and including ``last`` (at most ``limit``)."""
    received: list[str | bytes] = []
    while len(received) < limit:
        message = await asyncio.wait_for(client.recv(), 30)
        received.append(message)
        if message == last:
            break
    return received


def is_subsequence(items: list[str | bytes], sequence: list[str]) -> bool:
    """``items`` appear in ``sequence`` in the same order, each at most once."""
    remaining = iter(sequence)
    return all(any(item == candidate for candidate in remaining) for item in items)


@pytest.fixture
async def pair(redis_server: RedisProcess) -> AsyncIterator[Pair]:
    servers = Pair(redis_server.url)
    await servers.start()
    yield servers
    await servers.close()


async def test_publish_on_b_reaches_subscriber_on_a_of_that_topic_only(pair: Pair) -> None:
    count = 2000
    async with (
        websockets.connect(url(pair.a)) as on_a,
        websockets.connect(url(pair.b)) as local_on_b,
        websockets.connect(url(pair.b)) as publisher,
    ):
        await subscribe(on_a, "t")
        await subscribe(local_on_b, "t")
        for i in range(count):
            await publisher.send(f"pub t m{i}")
            await publisher.send(f"pub u x{i}")
        await publisher.send("pub t end")
        expected = [f"m{i}" for i in range(count)] + ["end"]
        # per-publisher order is kept, and u arrives nowhere (it would come before "end")
        assert await receive_until(on_a, "end", count + 1) == expected
        assert await receive_until(local_on_b, "end", count + 1) == expected
    # end to end: every publish of B acknowledged by Redis, every t message delivered on A
    assert broker(pair.b).stats.published == 2 * count + 1
    assert broker(pair.a).stats.received == count + 1  # A subscribed to t only: u never reached it
    assert broker(pair.b).stats.dropped == broker(pair.b).stats.unconfirmed == 0
    assert pair.errors == []


async def test_a_process_subscribes_in_redis_only_to_its_topics(pair: Pair, redis_server: RedisProcess) -> None:
    client = redis.asyncio.Redis.from_url(redis_server.url)
    try:
        async with websockets.connect(url(pair.a)) as on_a:
            await subscribe(on_a, "only-a")
            counts = dict(await client.pubsub_numsub("wsserver:topic:only-a", "wsserver:topic:none"))
            assert counts == {b"wsserver:topic:only-a": 1, b"wsserver:topic:none": 0}
            await on_a.send("unsub only-a")
            assert await asyncio.wait_for(on_a.recv(), 30) == "unsubscribed only-a"
            counts = dict(await client.pubsub_numsub("wsserver:topic:only-a"))
            assert counts == {b"wsserver:topic:only-a": 0}
            await subscribe(on_a, "again")
        # the client's close unsubscribes it; the process then leaves the channel
        for _ in range(200):
            counts = dict(await client.pubsub_numsub("wsserver:topic:again"))
            if counts[b"wsserver:topic:again"] == 0:
                break
            await asyncio.sleep(0.05)
        assert counts == {b"wsserver:topic:again": 0}
    finally:
        await client.aclose()


async def test_binary_and_external_publishers(pair: Pair, redis_server: RedisProcess) -> None:
    client = redis.asyncio.Redis.from_url(redis_server.url)
    try:
        async with websockets.connect(url(pair.a)) as on_a, websockets.connect(url(pair.b)) as publisher:
            await subscribe(on_a, "mixed")
            await publisher.send("bin mixed 00ff")
            assert await asyncio.wait_for(on_a.recv(), 30) == b"\x00\xff"
            # another program publishing straight to Redis: text if UTF-8, else binary
            await client.publish("wsserver:topic:mixed", "from a backend é")
            assert await asyncio.wait_for(on_a.recv(), 30) == "from a backend é"
            await client.publish("wsserver:topic:mixed", b"\xfe\x00")
            assert await asyncio.wait_for(on_a.recv(), 30) == b"\xfe\x00"
    finally:
        await client.aclose()


async def test_broadcast_reaches_every_client_of_every_process(pair: Pair) -> None:
    async with (
        websockets.connect(url(pair.a)) as on_a,
        websockets.connect(url(pair.b)) as on_b,
        websockets.connect(url(pair.b)) as sender,
    ):
        await sender.send("bcast hello all")
        assert await asyncio.wait_for(on_a.recv(), 30) == "hello all"
        assert await asyncio.wait_for(on_b.recv(), 30) == "hello all"
        assert await asyncio.wait_for(sender.recv(), 30) == "hello all"


async def test_prefix_separates_applications(redis_server: RedisProcess) -> None:
    first = Pair(redis_server.url + "?prefix=one:")
    second = Pair(redis_server.url + "?prefix=two:")
    await first.start()
    await second.start()
    try:
        async with (
            websockets.connect(url(first.a)) as one,
            websockets.connect(url(second.a)) as two,
            websockets.connect(url(first.b)) as publisher,
        ):
            await subscribe(one, "t")
            await subscribe(two, "t")
            await publisher.send("pub t for-one")
            await publisher.send("bcast for-one-too")
            assert await asyncio.wait_for(one.recv(), 30) == "for-one"
            assert await asyncio.wait_for(one.recv(), 30) == "for-one-too"
            await two.send("topics")  # the first frame two gets is this reply, not a publish of "one"
            assert await asyncio.wait_for(two.recv(), 30) == "topics t"
    finally:
        await first.close()
        await second.close()


def test_broker_url_parameters() -> None:
    settings = parse_broker_url("redis://h:1/2?prefix=app:&buffer=10&socket_timeout=3")
    assert (settings.prefix, settings.buffer) == ("app:", 10)
    assert settings.redis_url == "redis://h:1/2?socket_timeout=3"
    with pytest.raises(ValueError):
        parse_broker_url("http://h:1")
    with pytest.raises(ValueError):
        wsserver.Server(port=0, broker="http://localhost")


async def test_redis_restart_during_traffic(redis_server: RedisProcess) -> None:
    """Stop Redis mid-traffic, publish through the outage, start it again.

    Local delivery carries on; outage publishes beyond the 20000-byte buffer
    are dropped (counted, one PublishDropped error); after the restart both
    processes resubscribe and cross-process delivery resumes; order is kept
    and nothing arrives twice.
    """
    pair = Pair(redis_server.url + "?buffer=20000")  # holds the 300 publishes before, not the 600 during
    await pair.start()
    for server in pair.servers:
        broker(server).max_delay = 0.5  # reconnect attempts at most 0.5 s apart
    try:
        async with (
            websockets.connect(url(pair.a)) as on_a,
            websockets.connect(url(pair.b)) as local_on_b,
            websockets.connect(url(pair.b)) as publisher,
        ):
            await subscribe(on_a, "t")
            await subscribe(local_on_b, "t")
            sent: list[str] = []

            async def publish(label: str, count: int) -> None:
                for i in range(count):
                    message = f"{label}{i:04d}-" + "x" * 40
                    sent.append(message)
                    await publisher.send(f"pub t {message}")

            # before: zero loss
            await publish("before", 300)
            await publisher.send("pub t mark1")
            before_a = await receive_until(on_a, "mark1", 1000)
            before_b = await receive_until(local_on_b, "mark1", 1000)
            assert before_a == before_b == [*sent, "mark1"]

            # outage
            redis_server.stop()
            for _ in range(300):
                if sum(isinstance(error, BrokerDisconnected) for error in pair.errors) == 2:
                    break
                await asyncio.sleep(0.02)
            assert sum(isinstance(error, BrokerDisconnected) for error in pair.errors) == 2
            outage_start = len(sent)
            await publish("outage", 600)
            await publisher.send("pub t mark2")
            during_b = await receive_until(local_on_b, "mark2", 1000)
            assert during_b == [*sent[outage_start:], "mark2"]  # local delivery carried on
            stats_b = broker(pair.b).stats
            assert stats_b.dropped > 0
            assert sum(isinstance(error, PublishDropped) for error in pair.errors) == 1
            dropped_in_outage = stats_b.dropped
            buffered = 600 + 1 - dropped_in_outage

            # restart: both processes reconnect and resubscribe
            redis_server.start()
            restarted = asyncio.get_running_loop().time()
            await pair.synced()
            # probes until one crosses from B to A: B's publisher is back too
            loop = asyncio.get_running_loop()
            deadline = loop.time() + 30
            probes = 0
            arrived: list[str | bytes] = []
            while loop.time() < deadline and not any(str(m).startswith("probe") for m in arrived):
                await publisher.send(f"pub t probe{probes}")
                probes += 1
                with contextlib.suppress(asyncio.TimeoutError):
                    while len(arrived) < 5000:
                        arrived.append(await asyncio.wait_for(on_a.recv(), 0.2))
                        if str(arrived[-1]).startswith("probe"):
                            break
            assert any(str(m).startswith("probe") for m in arrived)
            resumed_after = asyncio.get_running_loop().time() - restarted
            after_start = len(sent)
            await publish("after", 300)
            await publisher.send("pub t mark3")
            rest = await receive_until(on_a, "mark3", 2000)
            after_a = arrived + rest
            # after the restart: every publish crosses again, in order
            assert [m for m in after_a if str(m).startswith("after")] == sent[after_start:]
            # what A got from the outage: buffered publishes, in order, never twice, never a dropped one
            from_outage = [m for m in after_a if str(m).startswith("outage") or m == "mark2"]
            outage_sent = [*sent[outage_start:after_start], "mark2"]
            assert is_subsequence(from_outage, outage_sent)
            assert len(from_outage) <= buffered
            await local_on_b.send("topics")
            print(
                f"\nredis restart: {len(outage_sent)} publishes during the outage, {dropped_in_outage} dropped "
                f"(buffer full), {buffered} buffered, {len(from_outage)} of them reached A after the restart; "
                f"B to A delivery resumed {resumed_after:.2f} s after Redis was back; "
                f"B stats {broker(pair.b).stats}; A stats {broker(pair.a).stats}"
            )
            # every publish of B is accounted for exactly once, once the queue is empty
            for _ in range(200):
                if not broker(pair.b)._queue:
                    break
                await asyncio.sleep(0.02)
            total = len(sent) + 3 + probes
            stats_b = broker(pair.b).stats
            assert stats_b.published + stats_b.dropped + stats_b.unconfirmed == total
            assert stats_b.reconnects == 1 and broker(pair.a).stats.reconnects == 1
    finally:
        await pair.close()


async def test_hung_redis_is_detected_by_the_ping(
    redis_server: RedisProcess, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A Redis that keeps the connection open but answers nothing (SIGSTOP)."""
    monkeypatch.setattr(RedisBroker, "health_interval", 0.2)
    monkeypatch.setattr(RedisBroker, "max_delay", 0.2)
    pair = Pair(redis_server.url)
    await pair.start()
    assert redis_server.process is not None
    try:
        async with websockets.connect(url(pair.a)) as on_a, websockets.connect(url(pair.b)) as publisher:
            await subscribe(on_a, "t")
            redis_server.process.send_signal(signal.SIGSTOP)
            try:
                for _ in range(250):
                    if any(isinstance(error, BrokerDisconnected) for error in pair.errors):
                        break
                    await asyncio.sleep(0.02)
                assert any(isinstance(error, BrokerDisconnected) for error in pair.errors)
            finally:
                redis_server.process.send_signal(signal.SIGCONT)
            await pair.synced()
            loop = asyncio.get_running_loop()
            deadline = loop.time() + 30
            arrived = None
            while arrived is None and loop.time() < deadline:
                await publisher.send("pub t back")
                with contextlib.suppress(asyncio.TimeoutError):
                    arrived = await asyncio.wait_for(on_a.recv(), 0.3)
            assert arrived == "back"
    finally:
        await pair.close()
