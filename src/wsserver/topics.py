"""Topics: publish once, deliver to every subscribed connection.

``conn.subscribe(topic)``, ``conn.unsubscribe(topic)``, ``conn.topics`` and
``wss.publish(topic, data, exclude=None)`` are thin methods that delegate to the
server's :class:`TopicHub`, created on first use. A message is framed once per
process however many connections receive it. With the ``broker`` option the hub
also hands every publish (and every ``broadcast()``) to a
:class:`~wsserver.broker.RedisBroker`, which brings the publishes of other
processes back to :meth:`TopicHub.deliver_remote`.

A connection's topics are kept here, not on the connection, so a connection
that never subscribes costs nothing; the hub forgets a connection when it
closes.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from .connection import WebSocketConnection
from .protocol.connection import OPEN
from .protocol.frames import encode_frame

if TYPE_CHECKING:
    from .broker import RedisBroker
    from .server import Server

__all__ = ["TopicHub"]


class TopicHub:
    """The topic subscriptions of one server, and delivery to them."""

    __slots__ = ("_batch_held", "_subscribers", "_topics_of", "broker", "server")

    def __init__(self, server: Server) -> None:
        #: the server whose connections subscribe here
        self.server = server
        #: topic -> its open local subscribers
        self._subscribers: dict[str, set[WebSocketConnection]] = {}
        #: connection -> the topics it subscribed to (only connections that did)
        self._topics_of: dict[WebSocketConnection, set[str]] = {}
        #: the broker that carries publishes between processes, if any
        self.broker: RedisBroker | None = None
        self._batch_held = False

    @staticmethod
    def check_topic(topic: object) -> str:
        """``topic`` if it is a ``str``, else ``TypeError``."""
        if type(topic) is not str:
            raise TypeError(f"a topic is a str, not {type(topic).__name__}")
        return topic

    def start_broker(self, url: str) -> None:
        """Relay publishes and broadcasts through the Redis at ``url``."""
        from .broker import RedisBroker  # needs the optional 'redis' package

        if self.broker is None:
            self.broker = RedisBroker(url, self)
            self.broker.start()

    # -- subscriptions ---------------------------------------------------

    @property
    def topics(self) -> frozenset[str]:
        """The topics with at least one local subscriber."""
        return frozenset(self._subscribers)

    def has_subscribers(self, topic: str) -> bool:
        """Whether ``topic`` has at least one local subscriber."""
        return topic in self._subscribers

    def subscribe(self, connection: WebSocketConnection, topic: str) -> None:
        """Subscribe ``connection`` to ``topic`` (idempotent)."""
        if connection._closed:
            return  # it will never be unsubscribed by a close
        subscribers = self._subscribers.get(topic)
        if subscribers is None:
            subscribers = self._subscribers[topic] = set()
            if self.broker is not None:
                self.broker.topic_changed(topic)
        subscribers.add(connection)
        topics = self._topics_of.get(connection)
        if topics is None:
            self._topics_of[connection] = {topic}
        else:
            topics.add(topic)

    def unsubscribe(self, connection: WebSocketConnection, topic: str) -> None:
        """Unsubscribe ``connection`` from ``topic`` (no error if it was not)."""
        topics = self._topics_of.get(connection)
        if topics is None or topic not in topics:
            return
        topics.discard(topic)
        if not topics:
            del self._topics_of[connection]
        self._drop_subscriber(topic, connection)

    def topics_of(self, connection: WebSocketConnection) -> frozenset[str]:
        """The topics ``connection`` is subscribed to."""
        topics = self._topics_of.get(connection)
        return frozenset(topics) if topics else frozenset()

    def connection_closed(self, connection: WebSocketConnection) -> None:
        """Forget every subscription of a closed connection."""
        topics = self._topics_of.pop(connection, None)
        if topics:
            for topic in topics:
                self._drop_subscriber(topic, connection)

    def _drop_subscriber(self, topic: str, connection: WebSocketConnection) -> None:
        subscribers = self._subscribers[topic]
        subscribers.discard(connection)
        if not subscribers:
            del self._subscribers[topic]
            if self.broker is not None:
                self.broker.topic_changed(topic)

    # -- publishing ------------------------------------------------------

    def publish(self, topic: str, payload: bytes, opcode: int, exclude: WebSocketConnection | None) -> int:
        """Deliver to the local subscribers, relay through the broker; local deliveries."""
        count = self.deliver(topic, encode_frame(opcode, payload), exclude) if topic in self._subscribers else 0
        if self.broker is not None:
            self.broker.publish(topic, payload, opcode)
        return count

    def broadcast_published(self, payload: bytes, opcode: int) -> None:
        """``Server.broadcast()`` was called: relay it to the other processes."""
        if self.broker is not None:
            self.broker.publish(None, payload, opcode)

    def deliver(self, topic: str, frame: bytes, exclude: WebSocketConnection | None) -> int:
        """Write ``frame`` to every open local subscriber of ``topic``; how many."""
        subscribers = self._subscribers.get(topic)
        if not subscribers:
            return 0
        count = 0
        for connection in subscribers:
            if connection is not exclude and connection._proto.state == OPEN:
                connection._write(frame)
                count += 1
        return count

    def deliver_remote(self, topic: str | None, payload: bytes | memoryview, opcode: int) -> None:
        """A message another process published (``topic=None``: a broadcast).

        Writes are batched until the end of the current event loop iteration,
        so a burst of messages read from the broker in one go costs one write
        per connection.
        """
        server = self.server
        if topic is None:
            if server._clients:
                self._hold_batch()
                server._broadcast_frame(encode_frame(opcode, payload), None)
        elif topic in self._subscribers:
            self._hold_batch()
            self.deliver(topic, encode_frame(opcode, payload), None)

    def _hold_batch(self) -> None:
        if not self._batch_held:
            self._batch_held = True
            self.server._batch_depth += 1
            asyncio.get_running_loop().call_soon(self._release_batch)

    def _release_batch(self) -> None:
        self._batch_held = False
        server = self.server
        server._batch_depth -= 1
        if not server._batch_depth:
            server._flush_dirty()

    # -- lifecycle -------------------------------------------------------

    async def synced(self) -> None:
        """Wait until the broker has every subscription change made so far."""
        if self.broker is not None:
            await self.broker.synced()

    async def close(self) -> None:
        """Stop the broker, if any."""
        if self.broker is not None:
            await self.broker.close()
