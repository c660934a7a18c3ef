"""The Redis broker: topics and broadcasts across processes and machines.

Each server process with ``broker='redis://host:port/db'`` keeps two Redis
connections (``redis`` package, asyncio):

* a **publisher** that sends every ``publish()``/``broadcast()`` as a Redis
  ``PUBLISH``, in the order they were made, pipelined in batches;
* a **subscriber** that ``SUBSCRIBE``\\s to the broadcast channel and to the
  channels of the topics this process has local subscribers for, and hands what
  other processes publish to the :class:`~wsserver.topics.TopicHub`.

The publishing process delivers to its own subscribers directly (and ignores
its own messages coming back from Redis), so local delivery never waits for, or
depends on, Redis.

When Redis is unreachable both connections reconnect with exponential backoff
(with jitter, at most ``max_delay`` apart) and the subscriber subscribes again;
the publisher, once reconnected, waits ``max_delay`` + 1 s (so that the other
processes are back too) before it sends what was published meanwhile. Publishes wait in a buffer
of at most ``buffer`` bytes (URL parameter, default 8 MiB; one message is
always accepted when the buffer is empty; the same bound holds while Redis is
up, where it only fills if publishes outrun Redis); publishes that do not fit are not
relayed (local subscribers still get them), counted in ``stats.dropped``, and
the server emits ``error`` with :class:`PublishDropped` once per episode.
Publishes written to a connection that dies before Redis acknowledged them are
not sent again (at most once: never a duplicate), counted in
``stats.unconfirmed``. Losing Redis emits ``error`` with
:class:`BrokerDisconnected` once per outage.

Channels are ``<prefix>topic:<topic>`` and ``<prefix>broadcast``; the prefix
is ``wsserver:`` unless the URL says ``?prefix=...`` (Redis pub/sub ignores the
database number, so the prefix is what separates applications sharing a Redis).
A message is ``b"\\xffws"``, the WebSocket opcode (1 text, 2 binary), an
8-byte id of the publishing process, then the payload; a message without that
header (published by another program) is delivered as text when it is valid
UTF-8, else as binary.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import random
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from redis.asyncio.connection import AbstractConnection, ConnectionPool
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from .protocol.errors import WebSocketError
from .protocol.frames import OP_BINARY, OP_TEXT

if TYPE_CHECKING:
    from .topics import TopicHub

__all__ = [
    "BrokerDisconnected",
    "BrokerError",
    "BrokerSettings",
    "BrokerStats",
    "PublishDropped",
    "RedisBroker",
    "parse_broker_url",
]

logger = logging.getLogger("wsserver")

_MAGIC = b"\xffws"
_ORIGIN_SIZE = 8
_HEADER_SIZE = len(_MAGIC) + 1 + _ORIGIN_SIZE
_CONNECTION_ERRORS = (RedisError, OSError, EOFError)
_BATCH_MESSAGES = 1024
_BATCH_BYTES = 1 << 20
_CHANNELS_PER_COMMAND = 1000


class BrokerError(WebSocketError):
    """Base class of the errors the broker reports on the server's ``error`` event."""


class BrokerDisconnected(BrokerError):
    """Redis is unreachable; the server reconnects with backoff."""


class PublishDropped(BrokerError):
    """Publishes were not relayed to other processes: the broker's buffer is full."""


@dataclass
class BrokerSettings:
    """What a ``broker`` URL says: the Redis URL proper and wsserver's parameters."""

    redis_url: str
    prefix: str = "wsserver:"
    buffer: int = 8 << 20


def parse_broker_url(url: str) -> BrokerSettings:
    """Split ``redis://host:port/db?prefix=app:&buffer=1048576`` into settings.

    Every other query parameter is left for the ``redis`` package.
    """
    parts = urlsplit(url)
    if parts.scheme not in ("redis", "rediss", "unix"):
        raise ValueError(f"broker URL must start with redis://, rediss:// or unix://, not {url!r}")
    settings = BrokerSettings(redis_url=url)
    rest = []
    for name, value in parse_qsl(parts.query, keep_blank_values=True):
        if name == "prefix":
            settings.prefix = value
        elif name == "buffer":
            if not value.isdigit():
                raise ValueError(f"broker URL: buffer must be a number of bytes, not {value!r}")
            settings.buffer = int(value)
        else:
            rest.append((name, value))
    settings.redis_url = urlunsplit(parts._replace(query=urlencode(rest)))
    return settings


@dataclass
class BrokerStats:
    """Counters of one broker since it started."""

    #: publishes (and broadcasts) Redis acknowledged
    published: int = 0
    #: messages from other processes handed to local connections
    received: int = 0
    #: publishes not relayed because the buffer was full
    dropped: int = 0
    #: publishes lost with a connection before Redis acknowledged them
    unconfirmed: int = 0
    #: outages recovered from
    reconnects: int = 0


class RedisBroker:
    """Relays a server's publishes through Redis pub/sub; see the module docs."""

    #: first reconnect delay, doubled per failed attempt up to ``max_delay`` (seconds)
    base_delay = 0.05
    max_delay = 2.0
    #: a silent subscriber connection is pinged after this long, dropped after twice it
    health_interval = 5.0
    #: how long Redis may take to acknowledge a batch of publishes before the connection is dropped
    reply_timeout = 10.0
    #: how long ``close()`` waits for queued publishes to reach Redis
    close_flush_timeout = 1.0

    def __init__(self, url: str, hub: TopicHub) -> None:
        settings = parse_broker_url(url)
        self._hub = hub
        self._pool = ConnectionPool.from_url(
            settings.redis_url, retry=Retry(NoBackoff(), 0), socket_connect_timeout=5.0, socket_timeout=5.0
        )
        self._topic_prefix = settings.prefix + "topic:"
        self._broadcast_channel = (settings.prefix + "broadcast").encode()
        self._buffer_limit = settings.buffer
        self._origin = os.urandom(_ORIGIN_SIZE)
        self._header = {opcode: _MAGIC + bytes((opcode,)) + self._origin for opcode in (OP_TEXT, OP_BINARY)}
        self.stats = BrokerStats()
        # publisher
        self._queue: deque[tuple[bytes, bytes]] = deque()
        self._queued_bytes = 0
        self._wakeup = asyncio.Event()
        self._publisher: AbstractConnection | None = None
        self._publisher_ready = False
        self._dropping = False
        # subscriber
        self._subscriber: AbstractConnection | None = None
        self._in_redis: dict[bytes, str | None] = {}  # channel -> topic (None: broadcast)
        self._changed: set[str] = set()  # topics whose local subscribers came or went
        self._resync = True  # subscribe to everything (a new connection)
        self._pending_acks = 0
        self._reads = 0
        self._sync_task: asyncio.Task[None] | None = None
        self._sync_waiters: list[asyncio.Future[None]] = []
        self._write_lock = asyncio.Lock()
        # both
        self._down: set[str] = set()
        self._outage = False
        self._tasks: list[asyncio.Task[None]] = []
        self._closing = False

    # -- API used by the TopicHub ------------------------------------------

    def start(self) -> None:
        """Connect in the background (the server does not wait for Redis)."""
        loop = asyncio.get_running_loop()
        self._tasks = [loop.create_task(self._run_publisher()), loop.create_task(self._run_subscriber())]

    def publish(self, topic: str | None, payload: bytes, opcode: int) -> None:
        """Queue a publish to ``topic`` (``None``: a broadcast) for Redis."""
        message = self._header[opcode] + payload
        size = len(message)
        if self._queued_bytes and self._queued_bytes + size > self._buffer_limit:
            self.stats.dropped += 1
            if not self._dropping:
                self._dropping = True
                error = PublishDropped(
                    f"broker buffer full ({self._buffer_limit} bytes): publishes reach local subscribers only"
                )
                logger.warning("%s", error)
                self._hub.server.emit("error", error)
            return
        channel = self._broadcast_channel if topic is None else (self._topic_prefix + topic).encode()
        self._queue.append((channel, message))
        self._queued_bytes += size
        self._wakeup.set()

    def topic_changed(self, topic: str) -> None:
        """``topic`` gained its first or lost its last local subscriber."""
        self._changed.add(topic)
        self._schedule_sync()

    def _schedule_sync(self) -> None:
        if self._subscriber is not None and (self._sync_task is None or self._sync_task.done()):
            self._sync_task = asyncio.get_running_loop().create_task(self._sync(self._subscriber))

    async def synced(self) -> None:
        """Wait until Redis has every subscription change made so far."""
        loop = asyncio.get_running_loop()
        while not self._is_synced():
            waiter: asyncio.Future[None] = loop.create_future()
            self._sync_waiters.append(waiter)
            await waiter

    async def close(self) -> None:
        """Send what is queued (briefly), then disconnect."""
        if self._closing:
            return
        if self._queue and self._publisher_ready:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._drained(), self.close_flush_timeout)
        self._closing = True
        tasks = [*self._tasks, *([self._sync_task] if self._sync_task else [])]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for waiter in self._sync_waiters:
            waiter.cancel()
        self._sync_waiters.clear()
        await self._pool.disconnect()

    # -- connecting --------------------------------------------------------

    async def _connect(self, role: str) -> AbstractConnection:
        """A connected Redis connection; retries with backoff until one works."""
        attempt = 0
        while True:
            connection: AbstractConnection = self._pool.make_connection()  # type: ignore[no-untyped-call]
            try:
                await connection.connect()  # type: ignore[no-untyped-call]
            except _CONNECTION_ERRORS as exc:
                await _disconnect(connection)
                self._connection_lost(role, exc)
                delay = min(self.max_delay, self.base_delay * 2**attempt) * random.uniform(0.5, 1.0)
                attempt += 1
                await asyncio.sleep(delay)
                continue
            self._down.discard(role)
            if self._outage and not self._down:
                self._outage = False
                self.stats.reconnects += 1
                logger.warning("broker: reconnected to Redis")
            return connection

    def _connection_lost(self, role: str, exc: BaseException) -> None:
        if self._closing or role in self._down:
            return
        self._down.add(role)
        if not self._outage:
            self._outage = True
            error = BrokerDisconnected(f"Redis unreachable ({exc}); reconnecting")
            logger.warning("broker: %s", error)
            self._hub.server.emit("error", error)

    # -- publisher ---------------------------------------------------------

    async def _run_publisher(self) -> None:
        reconnecting = False
        while True:
            connection = await self._connect("publisher")
            self._publisher = connection
            if reconnecting:
                # the other processes retry at most max_delay apart: give them the time to
                # be back and subscribed before sending what was published during the outage
                await asyncio.sleep(self.max_delay + 1.0)
            reconnecting = True
            self._publisher_ready = True
            try:
                await self._publish_queued(connection)
            except _CONNECTION_ERRORS as exc:
                self._connection_lost("publisher", exc)
            finally:
                self._publisher_ready = False
                self._publisher = None
                await _disconnect(connection)

    async def _publish_queued(self, connection: AbstractConnection) -> None:
        queue = self._queue
        stats = self.stats
        while True:
            if not queue:
                if self._dropping:
                    self._dropping = False
                    logger.warning("broker: relaying publishes again (%d dropped so far)", stats.dropped)
                self._wakeup.clear()
                await self._wakeup.wait()
                continue
            if not connection.is_connected:  # closed by _run_subscriber: Redis went away
                raise ConnectionError("the publisher's connection is closed")
            batch: list[tuple[bytes, bytes]] = []
            size = 0
            while queue and len(batch) < _BATCH_MESSAGES and size < _BATCH_BYTES:
                item = queue.popleft()
                batch.append(item)
                size += len(item[1])
            try:
                await connection.send_packed_command(_pack_publishes(batch), check_health=False)
                await asyncio.wait_for(_read_replies(connection, len(batch)), self.reply_timeout)
            except BaseException:
                stats.unconfirmed += len(batch)
                raise
            finally:
                self._queued_bytes -= size
            stats.published += len(batch)

    async def _drained(self) -> None:
        while self._queue or self._queued_bytes:
            await asyncio.sleep(0.01)

    # -- subscriber --------------------------------------------------------

    async def _run_subscriber(self) -> None:
        while True:
            connection = await self._connect("subscriber")
            self._subscriber = connection
            self._in_redis = {}
            self._resync = True
            self._pending_acks = 0
            watchdog = asyncio.get_running_loop().create_task(self._watch(connection))
            try:
                self._schedule_sync()
                await self._read_messages(connection)
            except _CONNECTION_ERRORS as exc:
                self._connection_lost("subscriber", exc)
                if self._publisher is not None:
                    # the same Redis: close the (idle) publisher's connection too, so that it
                    # keeps its queue instead of writing it into a dead connection
                    await _disconnect(self._publisher)
            finally:
                self._subscriber = None
                watchdog.cancel()
                if self._sync_task is not None:
                    self._sync_task.cancel()
                    self._sync_task = None
                await _disconnect(connection)

    async def _read_messages(self, connection: AbstractConnection) -> None:
        while True:
            response = await connection.read_response(timeout=math.inf, push_request=True)
            self._reads += 1
            if not isinstance(response, list):
                continue  # +PONG before the first SUBSCRIBE
            kind = response[0]
            if kind == b"message":
                self._on_message(response[1], response[2])
            elif kind == b"subscribe" or kind == b"unsubscribe":
                self._pending_acks -= 1
                if not self._pending_acks:
                    self._wake_sync_waiters()

    def _on_message(self, channel: bytes, data: bytes) -> None:
        if data[:3] == _MAGIC and len(data) >= _HEADER_SIZE:
            if data[4:_HEADER_SIZE] == self._origin:
                return  # delivered locally when it was published
            opcode = data[3]
            payload: bytes | memoryview = memoryview(data)[_HEADER_SIZE:]
        else:  # from another program
            try:
                data.decode("utf-8")
            except UnicodeDecodeError:
                opcode = OP_BINARY
            else:
                opcode = OP_TEXT
            payload = data
        if channel in self._in_redis:
            self.stats.received += 1
            self._hub.deliver_remote(self._in_redis[channel], payload, opcode)

    async def _sync(self, connection: AbstractConnection) -> None:
        """Make Redis's subscriptions match the topics with local subscribers."""
        try:
            while self._resync or self._changed:
                if self._resync:
                    self._resync = False
                    self._changed.clear()
                    changed: Iterable[str] = self._hub.topics
                    subscribe = [self._broadcast_channel]
                    self._in_redis[self._broadcast_channel] = None
                else:
                    changed, self._changed = self._changed, set()
                    subscribe = []
                unsubscribe = []
                for topic in changed:
                    channel = (self._topic_prefix + topic).encode()
                    if self._hub.has_subscribers(topic):
                        if channel not in self._in_redis:
                            subscribe.append(channel)
                            self._in_redis[channel] = topic
                    elif channel in self._in_redis:
                        unsubscribe.append(channel)
                        del self._in_redis[channel]
                commands = [*_chunked(b"SUBSCRIBE", subscribe), *_chunked(b"UNSUBSCRIBE", unsubscribe)]
                if commands:
                    self._pending_acks += len(subscribe) + len(unsubscribe)
                    await self._send(connection, commands)
        except _CONNECTION_ERRORS as exc:
            logger.debug("broker: subscribing failed: %s", exc)
            await _disconnect(connection)  # the reader notices and reconnects
        finally:
            if self._sync_task is asyncio.current_task():
                self._sync_task = None
        self._wake_sync_waiters()

    async def _send(self, connection: AbstractConnection, commands: Iterable[tuple[Any, ...]]) -> None:
        async with self._write_lock:
            await connection.send_packed_command(connection.pack_commands(commands), check_health=False)

    async def _watch(self, connection: AbstractConnection) -> None:
        """Ping a silent subscriber connection; drop it if the ping gets no answer."""
        seen = self._reads
        pinged = False
        while True:
            await asyncio.sleep(self.health_interval)
            if self._reads != seen:
                seen = self._reads
                pinged = False
            elif pinged:
                logger.warning("broker: Redis did not answer a ping; reconnecting")
                await _disconnect(connection)
                return
            else:
                pinged = True
                with contextlib.suppress(*_CONNECTION_ERRORS):
                    await self._send(connection, [(b"PING",)])

    def _is_synced(self) -> bool:
        return (
            self._subscriber is not None
            and not self._resync
            and not self._changed
            and self._sync_task is None
            and not self._pending_acks
        )

    def _wake_sync_waiters(self) -> None:
        if self._sync_waiters and self._is_synced():
            waiters, self._sync_waiters = self._sync_waiters, []
            for waiter in waiters:
                if not waiter.done():
                    waiter.set_result(None)


def _pack_publishes(batch: list[tuple[bytes, bytes]]) -> list[bytes]:
    """``PUBLISH channel message`` commands in RESP, the payloads not copied."""
    chunks = []
    for channel, message in batch:
        chunks.append(b"*3\r\n$7\r\nPUBLISH\r\n$%d\r\n%b\r\n$%d\r\n" % (len(channel), channel, len(message)))
        chunks.append(message)
        chunks.append(b"\r\n")
    return chunks


async def _read_replies(connection: AbstractConnection, count: int) -> None:
    for _ in range(count):
        await connection.read_response(timeout=math.inf)


def _chunked(command: bytes, channels: list[bytes]) -> list[tuple[bytes, ...]]:
    return [
        (command, *channels[start : start + _CHANNELS_PER_COMMAND])
        for start in range(0, len(channels), _CHANNELS_PER_COMMAND)
    ]


async def _disconnect(connection: AbstractConnection) -> None:
    with contextlib.suppress(*_CONNECTION_ERRORS, asyncio.TimeoutError):
        await connection.disconnect(nowait=True)
