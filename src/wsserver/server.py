"""``Server``: the WebSocket server of the seed API, on asyncio."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections import Counter
from collections.abc import Callable, Mapping
from threading import get_ident
from typing import TYPE_CHECKING, Any, TypedDict

from .connection import ConnectionDropped, WebSocketConnection, _payload_of
from .emitter import EventEmitter
from .options import ServerOptions, deflate_settings, normalize_options
from .protocol.connection import OPEN
from .protocol.deflate import PerMessageDeflate, negotiate
from .protocol.frames import OP_PING, encode_frame
from .protocol.handshake import UpgradeRequest
from .upgrade import HttpProtocol

if TYPE_CHECKING:
    from .topics import TopicHub

__all__ = ["Server", "ServerStats"]

logger = logging.getLogger("wsserver")

# Servers created outside a running event loop, started by ``wsserver.run()``.
_unstarted: list[Server] = []


def take_unstarted() -> list[Server]:
    """The servers created outside an event loop and not started yet."""
    servers = [server for server in _unstarted if server._state == "new"]
    _unstarted.clear()
    return servers


class ServerStats(TypedDict):
    """What :meth:`Server.stats` returns; counts since the server was created.

    Messages are whole data messages (control frames are not counted);
    bytes are WebSocket bytes on the wire after the handshake (frame
    headers included, compressed size when compressed). A message sent to
    ``n`` clients (``broadcast``) counts ``n`` times.
    """

    #: connections open now
    connections_open: int
    #: connections accepted (handshake completed) in all
    connections_total: int
    #: messages received
    messages_in: int
    #: messages written to the network
    messages_out: int
    #: bytes received
    bytes_in: int
    #: bytes written to the network
    bytes_out: int
    #: handshakes refused, by HTTP status (401 acceptHandler, 404 path, 408 timeout,
    #: 426 plain HTTP without httpHandler, 503 over backlog, 400/405/431 bad requests)
    handshakes_refused: dict[int, int]
    #: close codes of ended connections (1005: none sent, 1006: TCP dropped)
    close_codes: dict[int, int]


class Server(EventEmitter):
    """A WebSocket server: ``Server({'port': 8080})`` or ``Server(port=8080)``.

    Created inside a running event loop it starts listening at once (as in
    Node.js); created in a plain script, ``wsserver.run()`` starts it. Events:
    ``listening()``, ``connection(conn, request)``, ``error(exc)``, ``close()``.
    """

    def __init__(self, options: Mapping[str, Any] | None = None, /, **kwargs: Any) -> None:
        super().__init__()
        #: the normalized options (snake_case attributes)
        self.options: ServerOptions = normalize_options(options, kwargs)
        self._deflate_settings = deflate_settings(self.options.per_message_deflate)
        #: ``(host, port)`` the server listens on, once listening
        self.address: tuple[str, int] | None = None
        self._loop: asyncio.AbstractEventLoop = None  # type: ignore[assignment]
        self._thread_id: int | None = None
        self._listener: asyncio.AbstractServer | None = None
        self._clients: set[WebSocketConnection] = set()
        self._handshaking = 0
        self._batch_depth = 0
        self._dirty: list[WebSocketConnection] = []
        self._state = "new"
        self._start_task: asyncio.Task[None] | None = None
        self._start_error: Exception | None = None
        self._close_task: asyncio.Task[None] | None = None
        self._closed: asyncio.Event | None = None
        self._clients_gone: asyncio.Event | None = None
        self._keepalive_timer: asyncio.TimerHandle | None = None
        self._topics: TopicHub | None = None  # created on first use (wsserver.topics)
        # clients pinged whose pingTimeout has not run out yet
        self._awaiting_pong: set[WebSocketConnection] = set()
        #: handshakes refused, by HTTP status
        self.refused: Counter[int] = Counter()
        #: close codes of the connections that ended (1006: the TCP connection dropped)
        self.close_codes: Counter[int] = Counter()
        # traffic counters behind stats(); updated once per read and per write,
        # control frames counted apart on their (rare) paths
        self._connections_total = 0
        self._bytes_in = 0
        self._events_in = 0  # messages and control frames received
        self._control_in = 0
        self._bytes_out = 0
        self._frames_out = 0  # messages and control frames written
        self._control_out = 0
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            _unstarted.append(self)
        else:
            self._start_task = loop.create_task(self._start_reporting_errors())

    # -- public API ---------------------------------------------------------

    @property
    def clients(self) -> set[WebSocketConnection] | None:
        """The open connections (``None`` when ``clientTracking`` is off)."""
        return self._clients if self.options.client_tracking else None

    @property
    def port(self) -> int | None:
        """The TCP port listened on."""
        return self.address[1] if self.address else None

    async def start(self) -> None:
        """Bind and start listening (idempotent); emits ``listening``.

        Raises ``OSError`` when the address cannot be bound, also for a server
        created inside a running loop, which started itself (and emitted
        ``error``).
        """
        if self._start_task is not None and self._start_task is not asyncio.current_task():
            await asyncio.shield(self._start_task)
            if self._start_error is not None:
                raise self._start_error
            return
        if self._state != "new":
            return
        self._state = "starting"
        loop = asyncio.get_running_loop()
        self._loop = loop
        self._thread_id = get_ident()
        self._closed = asyncio.Event()
        options = self.options
        try:
            if options.host is None:
                sock = self._dual_stack_socket()
                self._listener = await loop.create_server(
                    self._new_protocol, sock=sock, backlog=options.backlog, ssl=options.ssl,
                    ssl_handshake_timeout=options.handshake_timeout if options.ssl else None,
                )
            else:
                self._listener = await loop.create_server(
                    self._new_protocol, options.host, options.port, backlog=options.backlog,
                    ssl=options.ssl, reuse_port=options.reuse_port or None,
                    ssl_handshake_timeout=options.handshake_timeout if options.ssl else None,
                )
        except BaseException:
            self._state = "closed"
            self._closed.set()
            raise
        sockname = self._listener.sockets[0].getsockname()
        self.address = (sockname[0], sockname[1])
        self._state = "listening"
        if options.ping_interval is not None:
            self._keepalive_timer = loop.call_later(options.ping_interval, self._keepalive)
        if options.broker is not None:
            self._topic_hub().start_broker(options.broker)
        logger.debug("listening on %s", self.address)
        self.emit("listening")

    def close(self) -> asyncio.Future[None]:
        """Stop accepting, close every client with 1001 and wait for them
        (at most ``closeTimeout``); emits ``close``. Await the result to wait.

        Safe from any thread: from a thread running its own event loop the
        result can be awaited in that loop; from a plain thread the close is
        started and the result belongs to the server's loop.
        """
        if self._thread_id is not None and get_ident() != self._thread_id:
            done = asyncio.run_coroutine_threadsafe(self._close_once(), self._loop)
            try:
                asyncio.get_running_loop()
            except RuntimeError:  # a plain thread, without an event loop
                return asyncio.wrap_future(done, loop=self._loop)
            return asyncio.wrap_future(done)
        return self._close_in_loop()

    def _close_in_loop(self) -> asyncio.Future[None]:
        if self._close_task is None:
            self._close_task = asyncio.ensure_future(self._close())
        return self._close_task

    async def _close_once(self) -> None:
        await self._close_in_loop()

    async def wait_closed(self) -> None:
        """Wait until the server is closed."""
        if self._closed is None:
            await self.start()
        assert self._closed is not None
        await self._closed.wait()

    def stats(self) -> ServerStats:
        """Counters since the server was created (see :class:`ServerStats`)."""
        return ServerStats(
            connections_open=len(self._clients),
            connections_total=self._connections_total,
            messages_in=self._events_in - self._control_in,
            messages_out=self._frames_out - self._control_out,
            bytes_in=self._bytes_in,
            bytes_out=self._bytes_out,
            handshakes_refused=dict(self.refused),
            close_codes=dict(self.close_codes),
        )

    def broadcast(self, data: str | bytes | bytearray | memoryview, exclude: WebSocketConnection | None = None) -> int:
        """Send ``data`` to every open client (framed once); how many got it.

        With the ``broker`` option it also reaches every client of every other
        process on that Redis; the count is of this process's clients.
        """
        payload, opcode = _payload_of(data, "broadcast()")
        if self._thread_id is not None and get_ident() != self._thread_id:
            self._call_soon_threadsafe(self._broadcast_payload, payload, opcode, exclude)
            return len(self._clients)
        return self._broadcast_payload(payload, opcode, exclude)

    def publish(
        self, topic: str, data: str | bytes | bytearray | memoryview, exclude: WebSocketConnection | None = None
    ) -> int:
        """Send ``data`` to every connection subscribed to ``topic`` (framed once).

        With the ``broker`` option it also reaches the subscribers of every
        other process on that Redis. Returns how many local subscribers got it.
        Safe from any thread (the count is then the number of subscribers).
        """
        hub = self._topic_hub()
        hub.check_topic(topic)
        payload, opcode = _payload_of(data, "publish()")
        if self._thread_id is not None and get_ident() != self._thread_id:
            self._call_soon_threadsafe(hub.publish, topic, payload, opcode, exclude)
            return len(hub._subscribers.get(topic, ()))
        return hub.publish(topic, payload, opcode, exclude)

    async def topics_synced(self) -> None:
        """Wait until the broker has every subscribe/unsubscribe made so far
        (after it, other processes' publishes reach them). At once without a broker."""
        if self._topics is not None:
            await self._topics.synced()

    def _broadcast_payload(self, payload: bytes, opcode: int, exclude: WebSocketConnection | None) -> int:
        count = self._broadcast_frame(encode_frame(opcode, payload), exclude)
        if self._topics is not None:
            self._topics.broadcast_published(payload, opcode)
        return count

    def _broadcast_frame(self, frame: bytes, exclude: WebSocketConnection | None) -> int:
        count = 0
        queued = 0  # frames that went through _write (counted in stats there)
        for client in self._clients:
            if client is not exclude and client._proto.state == OPEN:
                if client._pending is None and not client._write_paused:
                    # nothing queued for this client: one frame, written at once
                    # (batching it would only add work, measured with the
                    # broadcast benchmark)
                    client._transport.write(frame)
                else:
                    client._write(frame)
                    queued += 1
                count += 1
        self._frames_out += count - queued
        self._bytes_out += (count - queued) * len(frame)
        return count

    async def __aenter__(self) -> Server:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self._close_in_loop()

    def __repr__(self) -> str:
        return f"<Server {self.address or self.options.port} {self._state} clients={len(self._clients)}>"

    # -- listening ------------------------------------------------------------

    async def _start_reporting_errors(self) -> None:
        try:
            await self.start()
        except Exception as exc:
            self._start_error = exc  # start() raises it too
            logger.error("server failed to start: %s", exc)
            self.emit("error", exc)

    def _dual_stack_socket(self) -> socket.socket:
        """A socket on every interface: IPv6 and IPv4 when the host has both."""
        port = self.options.port or 0
        if socket.has_ipv6:
            try:
                sock = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
                self._prepare(sock)
                sock.bind(("::", port))
                return sock
            except OSError:
                sock.close()
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._prepare(sock)
        sock.bind(("0.0.0.0", port))
        return sock

    def _prepare(self, sock: socket.socket) -> None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if self.options.reuse_port:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)

    def _new_protocol(self) -> HttpProtocol:
        return HttpProtocol(self)

    # -- bookkeeping used by HttpProtocol and WebSocketConnection -------------

    def _handshake_started(self) -> bool:
        """Count a new TCP connection; ``False`` when over ``backlog``."""
        if self._state != "listening" or self._handshaking + len(self._clients) >= self.options.backlog:
            return False
        self._handshaking += 1
        return True

    def _handshake_finished(self, over_capacity: bool) -> None:
        if not over_capacity:
            self._handshaking -= 1

    def _connection_opened(self, connection: WebSocketConnection, over_capacity: bool) -> None:
        if not over_capacity:
            self._handshaking -= 1
        self._clients.add(connection)
        self._connections_total += 1

    def _connection_closed(self, connection: WebSocketConnection) -> None:
        self._clients.discard(connection)
        if self._topics is not None:
            self._topics.connection_closed(connection)
        if not self._clients and self._clients_gone is not None:
            self._clients_gone.set()

    def _topic_hub(self) -> TopicHub:
        """The topic registry, created on first use."""
        hub = self._topics
        if hub is None:
            from .topics import TopicHub  # the layer above; imported only when topics are used

            hub = self._topics = TopicHub(self)
        return hub

    def _count_refusal(self, status: int) -> None:
        self.refused[status] += 1

    def _negotiate_extensions(self, upgrade: UpgradeRequest) -> tuple[str | None, PerMessageDeflate | None]:
        """The accepted ``Sec-WebSocket-Extensions`` value and its codec."""
        settings = self._deflate_settings
        if settings is None or not upgrade.extensions:
            return None, None
        return negotiate(upgrade.extensions, settings) or (None, None)

    def _flush_dirty(self) -> None:
        dirty = self._dirty
        if dirty:
            self._dirty = []
            for connection in dirty:
                connection._flush()

    def _call_soon_threadsafe(self, callback: Callable[..., Any], *args: Any) -> None:
        if self._thread_id is None:
            raise RuntimeError("the server is not running yet")
        self._loop.call_soon_threadsafe(callback, *args)

    # -- keepalive ------------------------------------------------------------

    def _keepalive(self) -> None:
        """Ping every client that sent nothing for a whole ``pingInterval``.

        A client whose reading is paused because async listeners are still
        busy is not pinged: its silence is the server's doing.
        """
        options = self.options
        assert options.ping_interval is not None
        pinged = []
        ping = encode_frame(OP_PING, b"")
        awaiting = self._awaiting_pong
        for client in self._clients:
            if client in awaiting:
                continue  # keep its _active flag for the pending _drop_silent
            if client._active or client._halted:
                client._active = False
            elif client._proto.state == OPEN:
                client._write(ping)
                pinged.append(client)
        self._control_out += len(pinged)
        if pinged and options.ping_timeout is not None:
            awaiting.update(pinged)
            self._loop.call_later(options.ping_timeout, self._drop_silent, pinged)
        self._keepalive_timer = self._loop.call_later(options.ping_interval, self._keepalive)

    def _drop_silent(self, pinged: list[WebSocketConnection]) -> None:
        """Drop the pinged clients that sent nothing since the ping."""
        for client in pinged:
            self._awaiting_pong.discard(client)
            if not client._active and not client._closed and not client._halted:
                error = ConnectionDropped("no pong within pingTimeout")
                logger.info("%s: %s; dropping the connection", client.remote_address, error)
                client.emit("error", error)
                client.terminate()

    # -- closing --------------------------------------------------------------

    async def _wait_clients_gone(self, timeout: float) -> None:
        assert self._clients_gone is not None
        if self._clients:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._clients_gone.wait(), timeout)

    async def _close(self) -> None:
        if self._state == "new":
            self._state = "closed"
            if self in _unstarted:
                _unstarted.remove(self)
            self.emit("close")
            return
        if self._start_task is not None and not self._start_task.done():
            await asyncio.wait([self._start_task])
        if self._state == "closed":
            return
        self._state = "closing"
        if self._keepalive_timer is not None:
            self._keepalive_timer.cancel()
        if self._listener is not None:
            self._listener.close()
        self._clients_gone = asyncio.Event()
        if self._clients:
            for client in list(self._clients):
                client.close(1001, "server shutting down")
            # each client drops itself after closeTimeout; the margin covers that
            await self._wait_clients_gone(self.options.close_timeout + 1.0)
            for client in list(self._clients):
                client.terminate()
            await self._wait_clients_gone(1.0)
        if self._topics is not None:
            await self._topics.close()
        self._state = "closed"
        assert self._closed is not None
        self._closed.set()
        logger.debug("server %s closed", self.address)
        self.emit("close")
