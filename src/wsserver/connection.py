"""``WebSocketConnection``: one client, on asyncio transports.

The connection object is itself the ``asyncio.Protocol`` the transport talks to
after the handshake, so an open connection costs one Python object plus its
sans-I/O state machine. Frames produced while the server handles one read are
written together: sends are batched while any connection of the server is
handling a read, and flushed once that read is done.

Reading pauses while the peer does not read what we send (the transport is
above its high-water mark) and while ``maxListenerTasks`` async listener calls
are running; a peer that lets more than ``maxBufferedAmount`` bytes pile up
is dropped (see docs/security.md).
"""

from __future__ import annotations

import asyncio
import logging
import os
from threading import get_ident
from typing import TYPE_CHECKING, Any

from .emitter import EventEmitter
from .protocol.close_codes import ABNORMAL_CLOSURE, is_valid_to_send
from .protocol.connection import (
    CLOSED,
    CLOSING,
    CONNECTING,
    OPEN,
    CloseReceived,
    Failure,
    Ping,
    Pong,
    ServerConnection,
)
from .protocol.errors import WebSocketError
from .protocol.frames import (
    MAX_CONTROL_PAYLOAD,
    OP_BINARY,
    OP_PING,
    OP_PONG,
    OP_TEXT,
    SHORT_HEADERS,
    encode_frame,
)
from .protocol.handshake import Request

if TYPE_CHECKING:
    from .server import Server

__all__ = ["WebSocketConnection", "ConnectionDropped", "SlowConsumer"]

logger = logging.getLogger("wsserver")


class ConnectionDropped(WebSocketError):
    """The server dropped the TCP connection (timeout or limit), see the message."""


class SlowConsumer(ConnectionDropped):
    """The peer read too slowly: unsent bytes passed ``maxBufferedAmount``."""


def _payload_of(data: Any, what: str) -> tuple[bytes, int]:
    """``(payload, opcode)``: ``str`` is text, a bytes-like object is binary."""
    if type(data) is str:
        return data.encode("utf-8"), OP_TEXT
    if type(data) is bytes:
        return data, OP_BINARY
    if isinstance(data, (bytearray, memoryview)):
        return bytes(data), OP_BINARY
    if isinstance(data, bytes):
        return bytes(data), OP_BINARY
    if isinstance(data, str):  # a str subclass (e.g. a StrEnum member) is text too
        return str.encode(data, "utf-8"), OP_TEXT
    raise TypeError(f"{what} takes str or a bytes-like object, not {type(data).__name__}")


class WebSocketConnection(EventEmitter, asyncio.Protocol):
    """One WebSocket client of a :class:`~wsserver.Server`.

    Events: ``message(data, is_binary)``, ``ping(data)``, ``pong(data)``,
    ``close(code, reason)`` (exactly once), ``error(exc)``, ``drain()``.
    """

    CONNECTING = CONNECTING
    OPEN = OPEN
    CLOSING = CLOSING
    CLOSED = CLOSED

    __slots__ = (
        "_server",
        "_transport",
        "_proto",
        "request",
        "protocol",
        "extensions",
        "_pending",
        "_close_timer",
        "_closed",
        "_write_paused",
        "_drain_waiters",
        "_active",
        "_halted",
        "_held_events",
        "_listener_tasks",
        "_replying",
        "__weakref__",
    )

    def __init__(
        self,
        server: Server,
        transport: asyncio.Transport,
        request: Request,
        proto: ServerConnection,
        protocol: str | None = None,
        extensions: str | None = None,
    ) -> None:
        EventEmitter.__init__(self)
        self._server = server
        self._transport = transport
        self._proto = proto
        #: the HTTP upgrade request (path, query, headers, remote_address)
        self.request = request
        #: the subprotocol selected in the handshake, or ``None``
        self.protocol = protocol
        #: the ``Sec-WebSocket-Extensions`` value accepted, or ``None``
        self.extensions = extensions
        self._pending: list[bytes] | None = None  # frames held for the batched write
        self._close_timer: asyncio.TimerHandle | None = None
        self._closed = False
        self._write_paused = False
        self._drain_waiters: list[asyncio.Future[None]] | None = None
        self._active = True  # received something since the last keepalive sweep
        # stop dispatching events: closed, or maxListenerTasks async listeners running
        self._halted = False
        self._held_events: list[Any] | None = None  # events of a read not dispatched yet
        self._listener_tasks = 0  # async listener calls running
        # True while dispatching the messages that came before a close or a
        # protocol error in the same read: replies to them still go out,
        # ahead of the close frame
        self._replying = False

    # -- properties ------------------------------------------------------

    @property
    def ready_state(self) -> int:
        """CONNECTING (0), OPEN (1), CLOSING (2) or CLOSED (3)."""
        if self._closed:
            return CLOSED
        return self._proto.state if self._proto.state != CLOSED else CLOSING

    @property
    def remote_address(self) -> tuple[str, int] | None:
        """``(host, port)`` of the client."""
        return self.request.remote_address

    @property
    def buffered_amount(self) -> int:
        """Bytes passed to ``send`` and friends that the kernel has not taken yet."""
        pending = sum(map(len, self._pending)) if self._pending else 0
        if self._closed:
            return pending
        return pending + self._transport.get_write_buffer_size()

    @property
    def server(self) -> Server:
        """The server this connection belongs to."""
        return self._server

    # -- topics (wsserver.topics) ------------------------------------------

    def subscribe(self, topic: str) -> None:
        """Receive what ``wss.publish(topic, ...)`` sends (from every process
        with the ``broker`` option) until :meth:`unsubscribe` or the close.
        Safe from any thread."""
        hub = self._server._topic_hub()
        hub.check_topic(topic)
        if get_ident() != self._server._thread_id:
            self._server._call_soon_threadsafe(hub.subscribe, self, topic)
            return
        hub.subscribe(self, topic)

    def unsubscribe(self, topic: str) -> None:
        """Stop receiving ``topic`` (nothing happens if not subscribed). Safe from any thread."""
        hub = self._server._topic_hub()
        hub.check_topic(topic)
        if get_ident() != self._server._thread_id:
            self._server._call_soon_threadsafe(hub.unsubscribe, self, topic)
            return
        hub.unsubscribe(self, topic)

    @property
    def topics(self) -> frozenset[str]:
        """The topics this connection is subscribed to."""
        hub = self._server._topics
        return hub.topics_of(self) if hub is not None else frozenset()

    # -- sending ---------------------------------------------------------

    def send(self, data: str | bytes | bytearray | memoryview, mask: bool = False, compress: bool | None = None) -> None:
        """Send a message: ``str`` as a text frame, bytes-like as a binary frame.

        ``mask=True`` masks the frame as the seed's API allows; RFC 6455
        clients must reject masked server frames, so it is a testing aid.
        ``compress`` overrides the permessage-deflate threshold for this
        message. Sends on a connection that is no longer open are dropped, as
        in ``ws``. Safe to call from any thread.
        """
        kind = type(data)
        if kind is bytes:
            payload, opcode = data, OP_BINARY
        elif kind is str:
            payload, opcode = data.encode("utf-8"), OP_TEXT  # type: ignore[union-attr]
        else:
            payload, opcode = _payload_of(data, "send()")
        if get_ident() != self._server._thread_id:
            # hand over immutable data: the str itself, or the bytes copied above
            self._server._call_soon_threadsafe(
                self.send, data if opcode == OP_TEXT else payload, mask, compress
            )
            return
        proto = self._proto
        if proto.state != OPEN and not self._replying:
            return
        if proto.deflate is None and not mask:
            # encode_frame and _write inlined: the echo hot path (measured with
            # benchmarks/instructions.sh: 20% fewer instructions per message)
            length = len(payload)
            frame = SHORT_HEADERS[opcode][length] + payload if length < 126 else encode_frame(opcode, payload)
            server = self._server
            if server._batch_depth:
                pending = self._pending
                if pending is None:
                    self._pending = [frame]
                    server._dirty.append(self)
                else:
                    pending.append(frame)
            else:
                self._write(frame)
        else:
            self._write(proto.encode_message(opcode, payload, compress, os.urandom(4) if mask else None))

    def ping(self, data: str | bytes | bytearray | memoryview = b"", mask: bool = False) -> None:
        """Send a ping (payload of at most 125 bytes). Safe from any thread."""
        self._control(OP_PING, data, mask, "ping()")

    def pong(self, data: str | bytes | bytearray | memoryview = b"", mask: bool = False) -> None:
        """Send an unsolicited pong (at most 125 bytes). Safe from any thread."""
        self._control(OP_PONG, data, mask, "pong()")

    def _control(self, opcode: int, data: Any, mask: bool, what: str) -> None:
        payload, _ = _payload_of(data, what)
        if len(payload) > MAX_CONTROL_PAYLOAD:
            raise ValueError(f"{what} payload is {len(payload)} bytes; at most 125 are allowed")
        if get_ident() != self._server._thread_id:
            self._server._call_soon_threadsafe(self._send_control, opcode, payload, mask)
            return
        self._send_control(opcode, payload, mask)

    def _send_control(self, opcode: int, payload: bytes, mask: bool) -> None:
        if self._proto.state == OPEN or self._replying:
            self._write(encode_frame(opcode, payload, mask_key=os.urandom(4) if mask else None))

    def close(self, code: int = 1000, reason: str = "") -> None:
        """Start the closing handshake; the TCP connection is dropped if the
        client does not answer within ``closeTimeout``. Safe from any thread."""
        if not is_valid_to_send(code):
            raise ValueError(f"invalid close code {code}")
        if len(reason.encode("utf-8")) > MAX_CONTROL_PAYLOAD - 2:
            raise ValueError("close reason is over 123 bytes in UTF-8")
        if get_ident() != self._server._thread_id:
            self._server._call_soon_threadsafe(self._start_close, code, reason)
            return
        self._start_close(code, reason)

    def _start_close(self, code: int, reason: str) -> None:
        if self._proto.state != OPEN or self._closed:
            return
        self._proto.send_close(code, reason)
        self._write_output()
        self._arm_close_timer()

    def _finish(self) -> None:
        """The close frames are exchanged, or the connection failed: send what is
        queued and close TCP, dropping it if the flush takes over
        ``closeTimeout`` (a peer that stops reading cannot hold it open)."""
        self._flush()
        self._transport.close()
        self._arm_close_timer()

    def _arm_close_timer(self) -> None:
        """Drop the TCP connection if it is not gone within ``closeTimeout``."""
        if self._close_timer is None:
            self._close_timer = self._server._loop.call_later(
                self._server.options.close_timeout, self._close_timed_out
            )

    def _close_timed_out(self) -> None:
        self._close_timer = None
        if not self._closed:
            logger.debug("%s: not closed within closeTimeout; dropping", self.remote_address)
            self._drop()

    def terminate(self) -> None:
        """Drop the TCP connection at once, without a closing handshake."""
        if get_ident() != self._server._thread_id:
            self._server._call_soon_threadsafe(self.terminate)
            return
        if not self._closed:
            self._drop()

    def _drop(self) -> None:
        """Abort the TCP connection; later sends are dropped, 'close' follows (1006)."""
        self._proto.state = CLOSED
        self._pending = None
        self._transport.abort()

    async def drain(self) -> None:
        """Wait until the transport's buffer is below its high-water mark."""
        if not self._write_paused or self._closed:
            return
        waiter: asyncio.Future[None] = self._server._loop.create_future()
        if self._drain_waiters is None:
            self._drain_waiters = []
        self._drain_waiters.append(waiter)
        await waiter

    # -- writing ---------------------------------------------------------

    def _write(self, frame: bytes) -> None:
        """Queue ``frame``: batched while the server handles a read, else written."""
        server = self._server
        if server._batch_depth:
            pending = self._pending
            if pending is None:
                self._pending = [frame]
                server._dirty.append(self)
            else:
                pending.append(frame)
        else:
            self._transport.write(frame)
            if self._write_paused:
                self._check_buffer_limit()

    def _flush(self) -> None:
        """Write the frames batched for this connection in one call."""
        pending = self._pending
        if pending is None:
            return
        self._pending = None
        if self._closed or self._transport.is_closing():
            return
        self._transport.write(pending[0] if len(pending) == 1 else b"".join(pending))
        if self._write_paused:
            self._check_buffer_limit()

    def _write_output(self) -> None:
        """Queue the frames the state machine produced (pongs, close frames)."""
        output = self._proto.output
        if output:
            for frame in output:
                self._write(frame)
            output.clear()

    def _check_buffer_limit(self) -> None:
        if self._transport.get_write_buffer_size() > self._server.options.max_buffered_amount:
            error = SlowConsumer(
                f"over maxBufferedAmount ({self._server.options.max_buffered_amount} bytes) unsent"
            )
            logger.info("%s: %s; dropping the connection", self.remote_address, error)
            self._drop()
            self.emit("error", error)

    # -- asyncio.Protocol --------------------------------------------------

    def data_received(self, data: bytes) -> None:
        self._active = True
        server = self._server
        proto = self._proto
        server._batch_depth += 1
        try:
            was_open = proto.state == OPEN
            events = proto.receive_data(data)
            if events:
                self._replying = was_open and proto.state != OPEN
                self._dispatch(events)
                self._replying = False
            if proto.output:
                self._write_output()
            if proto.state == CLOSED and not self._transport.is_closing():
                self._finish()
        finally:
            server._batch_depth -= 1
            if not server._batch_depth:
                server._flush_dirty()

    def _dispatch(self, events: list[Any]) -> None:
        listeners = self._events
        remaining = iter(events)
        for event in remaining:
            kind = type(event)
            if kind is bytes or kind is str:
                entries = listeners.get("message")
                if entries is None:
                    continue
                entry = entries[0]
                if entry.plain and len(entries) == 1:
                    # the common case, one plain listener: call it without emit()
                    try:
                        if entry.nargs == 1:
                            entry.listener(event)
                        elif entry.nargs:
                            entry.listener(event, kind is bytes)
                        else:
                            entry.listener()
                    except Exception as exc:
                        self._listener_failed("message", exc)
                else:
                    self.emit("message", event, kind is bytes)
            elif kind is Ping:
                if self._server.options.auto_pong:
                    # answered here, in order with the replies to earlier messages
                    self._send_control(OP_PONG, event.data, False)
                self.emit("ping", event.data)
            elif kind is Pong:
                self.emit("pong", event.data)
            elif kind is Failure:
                self._replying = False
                error = event.error
                logger.info("%s: protocol error: %s", self.remote_address, error)
                self.emit("error", error)
            else:  # CloseReceived: 'close' is emitted once the TCP connection is gone
                self._replying = False
            if self._halted:
                if not self._closed:
                    self._held_events = list(remaining)
                return

    def eof_received(self) -> bool:
        return False  # close our side too

    def pause_writing(self) -> None:
        self._write_paused = True
        # ws' backpressure: stop reading from a peer that does not read from us
        self._update_reading()
        self._check_buffer_limit()

    def resume_writing(self) -> None:
        self._write_paused = False
        self._update_reading()
        self._wake_drain_waiters()
        self.emit("drain")

    def _update_reading(self) -> None:
        """Read only while the peer reads from us and the listeners keep up."""
        transport = self._transport
        if self._closed or transport.is_closing():
            return
        if self._write_paused or self._halted:
            transport.pause_reading()
        else:
            transport.resume_reading()

    # -- async listeners ---------------------------------------------------

    def _run_coroutine(self, event: str, coroutine: Any) -> asyncio.Future[Any]:
        """Run an async listener call, counted: at ``maxListenerTasks`` running,
        the rest of the read is held and reading pauses until half are done."""
        task = super()._run_coroutine(event, coroutine)
        self._listener_tasks += 1
        task.add_done_callback(self._listener_task_done)
        if self._listener_tasks >= self._server.options.max_listener_tasks and not self._closed:
            self._halted = True
            self._update_reading()
        return task

    def _listener_task_done(self, task: asyncio.Future[Any]) -> None:
        self._listener_tasks -= 1
        if not self._halted or self._closed:
            return
        if self._listener_tasks > self._server.options.max_listener_tasks // 2:
            return
        self._halted = False
        held = self._held_events
        if held:
            self._held_events = None
            self._dispatch(held)
        self._update_reading()

    def _wake_drain_waiters(self) -> None:
        waiters = self._drain_waiters
        if waiters:
            self._drain_waiters = None
            for waiter in waiters:
                if not waiter.done():
                    waiter.set_result(None)

    def connection_lost(self, exc: Exception | None) -> None:
        if self._closed:
            return
        self._closed = True
        self._pending = None
        held = self._held_events
        if held:
            # messages the peer sent before it went away are still delivered
            self._held_events = None
            self._halted = False
            self._dispatch(held)
        self._halted = True
        if self._close_timer is not None:
            self._close_timer.cancel()
            self._close_timer = None
        self._wake_drain_waiters()
        proto = self._proto
        proto.state = CLOSED
        code = proto.close_code if proto.close_code is not None else ABNORMAL_CLOSURE
        reason = proto.close_reason if proto.close_code is not None else ""
        self._server._connection_closed(self)
        logger.debug(
            "closed %s path=%s protocol=%s code=%s",
            self.remote_address,
            self.request.path,
            self.protocol,
            code,
        )
        self.emit("close", code, reason)

    def __repr__(self) -> str:
        states = ("CONNECTING", "OPEN", "CLOSING", "CLOSED")
        return f"<WebSocketConnection {self.remote_address} {self.request.path} {states[self.ready_state]}>"
