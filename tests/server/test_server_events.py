"""Events of the server and its connections, and the EventEmitter rules."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest

import wsserver
from helpers import Recorder, connect_ws, echo, wait


async def test_listening_and_close_events() -> None:
    wss = wsserver.Server(port=0, host="127.0.0.1")
    events = Recorder(wss, "listening", "close")
    await wait(wss.start())
    assert events.count("listening") == 1
    assert events.all["listening"] == [()]
    assert events.count("close") == 0
    await wait(wss.close())
    assert events.count("close") == 1
    await wait(wss.close())  # idempotent
    assert events.count("close") == 1
    assert events.count("listening") == 1


async def test_close_event_of_a_server_that_never_started() -> None:
    wss = wsserver.Server(port=0, host="127.0.0.1")
    events = Recorder(wss, "close")
    await wait(wss.close())
    assert events.count("close") == 1


async def test_connection_event_carries_the_connection_and_the_request(make_server: Any) -> None:
    wss = await make_server()
    events = Recorder(wss, "connection")
    async with connect_ws(wss, "/chat/room?name=ann&x=1", additional_headers={"X-Token": "abc"}) as client:
        conn, request = await events.next("connection")
        assert isinstance(conn, wsserver.WebSocketConnection)
        assert isinstance(request, wsserver.Request)
        assert request.method == "GET"
        assert request.path == "/chat/room"
        assert request.query == "name=ann&x=1"
        assert request.params == {"name": ["ann"], "x": ["1"]}
        assert request.headers["X-Token"] == "abc"
        assert request.headers["x-token"] == "abc"
        assert request.headers["Upgrade"].lower() == "websocket"
        local = client.local_address
        assert request.remote_address == (local[0], local[1])
        assert conn.request is request
        assert conn.remote_address == request.remote_address


async def test_message_event_gives_str_for_text_and_bytes_for_binary(make_server: Any) -> None:
    wss = await make_server()
    connections = Recorder(wss, "connection")
    async with connect_ws(wss) as client:
        conn, _ = await connections.next("connection")
        messages = Recorder(conn, "message")
        await client.send("héllo")
        await client.send(b"\x00\xffbin")
        await client.send("")
        await client.send(b"")
        assert await messages.next("message") == ("héllo", False)
        data, is_binary = await messages.next("message")
        assert data == b"\x00\xffbin" and type(data) is bytes and is_binary is True
        assert await messages.next("message") == ("", False)
        assert await messages.next("message") == (b"", True)


async def test_fragmented_messages_arrive_whole(make_server: Any) -> None:
    wss = await make_server()
    connections = Recorder(wss, "connection")
    async with connect_ws(wss) as client:
        conn, _ = await connections.next("connection")
        messages = Recorder(conn, "message")
        await client.send(["part one, ", "part two"])
        await client.send([b"a", b"b", b"c"])
        assert await messages.next("message") == ("part one, part two", False)
        assert await messages.next("message") == (b"abc", True)


async def test_ping_and_pong_events(make_server: Any) -> None:
    wss = await make_server()
    connections = Recorder(wss, "connection")
    async with connect_ws(wss) as client:
        conn, _ = await connections.next("connection")
        events = Recorder(conn, "ping", "pong")
        pong_waiter = await client.ping(b"ping data")
        await wait(pong_waiter)  # auto-pong answered it
        assert await events.next("ping") == (b"ping data",)
        await client.pong(b"pong data")
        assert await events.next("pong") == (b"pong data",)


async def close_event_of(wss: wsserver.Server, act: Any) -> list[tuple[Any, ...]]:
    """Connect, run ``act(client)``, wait for the server's close event; every close event."""
    connections = Recorder(wss, "connection")
    async with connect_ws(wss) as client:
        conn, _ = await connections.next("connection")
        closes = Recorder(conn, "close")
        await act(client)
        await closes.next("close")
    # more close events would be queued by now: the connection is gone
    await asyncio.sleep(0.05)
    conn.close()
    conn.terminate()
    await asyncio.sleep(0.05)
    assert conn.ready_state == wsserver.CLOSED
    return closes.all["close"]


async def test_close_event_with_1000(make_server: Any) -> None:
    wss = await make_server()
    assert await close_event_of(wss, lambda client: client.close()) == [(1000, "")]


async def test_close_event_with_4000_and_a_reason(make_server: Any) -> None:
    wss = await make_server()
    assert await close_event_of(wss, lambda client: client.close(4000, "custom reason é")) == [(4000, "custom reason é")]


async def test_close_event_1005_when_no_code_was_sent(make_server: Any, raw: Any) -> None:
    wss = await make_server()
    connections = Recorder(wss, "connection")
    client = await raw(wss)
    assert (await client.handshake()).status == 101
    conn, _ = await connections.next("connection")
    closes = Recorder(conn, "close")
    client.send_frame(0x8, b"")
    echo_frame = await client.read_close()
    assert echo_frame.payload == b""
    assert await closes.next("close") == (1005, "")
    assert await client.read_until_eof() == b""


async def test_close_event_1006_when_tcp_drops(make_server: Any, raw: Any) -> None:
    wss = await make_server()
    connections = Recorder(wss, "connection")
    client = await raw(wss)
    assert (await client.handshake()).status == 101
    conn, _ = await connections.next("connection")
    closes = Recorder(conn, "close")
    await client.close()
    assert await closes.next("close") == (1006, "")
    await asyncio.sleep(0.05)
    assert closes.count("close") == 1


async def test_close_event_carries_the_failure_code_on_a_protocol_violation(make_server: Any, raw: Any) -> None:
    wss = await make_server()
    connections = Recorder(wss, "connection")
    client = await raw(wss)
    assert (await client.handshake()).status == 101
    conn, _ = await connections.next("connection")
    events = Recorder(conn, "close", "error")
    client.send_frame(0x1, b"\xff\xfe")
    assert (await client.read_close()).close_code == 1007
    (error,) = await events.next("error")
    assert isinstance(error, wsserver.ProtocolError) and error.code == 1007
    code, _reason = await events.next("close")
    assert code == 1007
    await asyncio.sleep(0.05)
    assert events.count("close") == 1


async def test_close_event_once_when_the_server_closes(make_server: Any) -> None:
    wss = await make_server()
    connections = Recorder(wss, "connection")
    async with connect_ws(wss) as client:
        conn, _ = await connections.next("connection")
        closes = Recorder(conn, "close")
        conn.close(4001, "server says bye")
        conn.close(4002, "twice")
        await closes.next("close")
        assert client.close_code == 4001
    await asyncio.sleep(0.05)
    assert closes.all["close"] == [(4001, "server says bye")]


# -- listeners --------------------------------------------------------------------


async def test_listeners_may_take_fewer_arguments(make_server: Any) -> None:
    wss = await make_server()
    calls: list[Any] = []
    wss.on("connection", lambda: calls.append("connection/0"))

    def on_connection(conn: wsserver.WebSocketConnection) -> None:
        calls.append("connection/1")
        conn.on("message", lambda: calls.append("message/0"))
        conn.on("message", lambda data: calls.append(("message/1", data)))
        conn.on("message", lambda data, is_binary: calls.append(("message/2", data, is_binary)))
        conn.on("message", lambda *args: calls.append(("message/*", args)))
        conn.on("message", lambda data, is_binary, extra=None: calls.append(("message/default", extra)))
        conn.on("close", lambda code: calls.append(("close/1", code)))
        conn.on("close", lambda: calls.append("close/0"))
        conn.on("message", lambda data: conn.send(data))

    wss.on("connection", on_connection)
    async with connect_ws(wss) as client:
        await client.send("m")
        assert await wait(client.recv()) == "m"
    for _ in range(100):
        if "close/0" in calls:
            break
        await asyncio.sleep(0.01)
    assert calls == [
        "connection/0",
        "connection/1",
        "message/0",
        ("message/1", "m"),
        ("message/2", "m", False),
        ("message/*", ("m", False)),
        ("message/default", None),
        ("close/1", 1000),
        "close/0",
    ]


async def test_async_listeners_run(make_server: Any) -> None:
    wss = await make_server()

    async def on_connection(conn: wsserver.WebSocketConnection, request: wsserver.Request) -> None:
        await asyncio.sleep(0)

        async def on_message(data: str | bytes) -> None:
            await asyncio.sleep(0.01)
            conn.send(f"async echo: {data!s}")

        conn.on("message", on_message)

    wss.on("connection", on_connection)
    async with connect_ws(wss) as client:
        await asyncio.sleep(0.05)  # let the async connection listener register
        await client.send("x")
        assert await wait(client.recv()) == "async echo: x"


async def test_a_raising_listener_is_logged_and_emitted_as_error_on_that_connection(
    make_server: Any, caplog: pytest.LogCaptureFixture
) -> None:
    wss = await make_server()
    connections = Recorder(wss, "connection")
    errors: list[tuple[Any, Exception]] = []

    def on_connection(conn: wsserver.WebSocketConnection) -> None:
        def on_message(data: str | bytes) -> None:
            if data == "boom":
                raise ZeroDivisionError("listener bug")
            conn.send(data)

        conn.on("message", on_message)
        conn.on("error", lambda error: errors.append((conn, error)))

    wss.on("connection", on_connection)
    with caplog.at_level(logging.ERROR, logger="wsserver"):
        async with connect_ws(wss) as client, connect_ws(wss) as other:
            conn, _ = await connections.next("connection")
            await client.send("boom")
            await client.send("after")
            assert await wait(client.recv()) == "after"  # the same connection goes on
            await other.send("other")
            assert await wait(other.recv()) == "other"
    assert len(errors) == 1
    assert errors[0][0] is conn
    assert isinstance(errors[0][1], ZeroDivisionError)
    assert "listener bug" in caplog.text
    assert any(record.exc_info for record in caplog.records)


async def test_a_raising_async_listener_is_emitted_as_error(make_server: Any) -> None:
    wss = await make_server()
    connections = Recorder(wss, "connection")
    async with connect_ws(wss) as client:
        conn, _ = await connections.next("connection")
        errors = Recorder(conn, "error")

        async def on_message(data: str) -> None:
            await asyncio.sleep(0)
            raise KeyError(data)

        conn.on("message", on_message)
        conn.on("message", lambda data: conn.send(data))
        await client.send("k")
        assert await wait(client.recv()) == "k"
        (error,) = await errors.next("error")
        assert isinstance(error, KeyError)


async def test_a_raising_connection_listener_is_a_server_error(make_server: Any) -> None:
    wss = await make_server()
    errors = Recorder(wss, "error")

    def bad(conn: wsserver.WebSocketConnection) -> None:
        raise RuntimeError("connection listener bug")

    wss.on("connection", bad)
    echo(wss)
    async with connect_ws(wss) as client:
        await client.send("still echoes")
        assert await wait(client.recv()) == "still echoes"
    (error,) = await errors.next("error")
    assert str(error) == "connection listener bug"


async def test_decorator_once_and_off(make_server: Any) -> None:
    wss = await make_server()
    seen: list[str] = []

    @wss.on("connection")
    def on_connection(conn: wsserver.WebSocketConnection) -> None:
        seen.append("on")
        conn.on("message", lambda data: conn.send(data))

    @wss.once("connection")
    def first_only(conn: wsserver.WebSocketConnection) -> None:
        seen.append("once")

    def removed(conn: wsserver.WebSocketConnection) -> None:
        seen.append("removed")

    wss.on("connection", removed)
    wss.off("connection", removed)
    assert on_connection.__name__ == "on_connection"  # the decorator returns the function
    assert wss.listeners("connection") == [on_connection, first_only]
    for _ in range(2):
        async with connect_ws(wss) as client:
            await client.send("x")
            assert await wait(client.recv()) == "x"
    assert seen == ["on", "once", "on"]
    assert wss.listeners("connection") == [on_connection]


def test_emitter_once_removes_its_own_registration() -> None:
    emitter = wsserver.EventEmitter()
    calls: list[str] = []

    def listener() -> None:
        calls.append("x")

    emitter.on("event", listener)
    emitter.once("event", listener)
    emitter.emit("event")
    emitter.emit("event")
    emitter.emit("event")
    assert calls == ["x", "x", "x", "x"]
    assert emitter.listener_count("event") == 1


def test_emitter_basics() -> None:
    emitter = wsserver.EventEmitter()
    calls: list[Any] = []
    assert emitter.emit("nothing") is False

    def first(value: int) -> None:
        calls.append(("first", value))

    def second(value: int) -> None:
        calls.append(("second", value))
        emitter.off("event", first)  # removing during emit does not skip anyone

    emitter.on("event", first)
    emitter.on("event", second)
    assert emitter.emit("event", 1) is True
    emitter.emit("event", 2)
    assert calls == [("first", 1), ("second", 1), ("second", 2)]
    emitter.remove_all_listeners("event")
    assert emitter.emit("event", 3) is False
    with pytest.raises(TypeError):
        emitter.on("event", "not callable")  # type: ignore[call-overload]


def test_emitter_error_from_a_listener_goes_to_error_listeners() -> None:
    emitter = wsserver.EventEmitter()
    errors: list[Exception] = []
    emitter.on("error", errors.append)
    emitter.on("event", lambda: 1 / 0)
    emitter.emit("event")
    assert len(errors) == 1 and isinstance(errors[0], ZeroDivisionError)



def test_emitter_off_removes_the_most_recent_registration() -> None:
    emitter = wsserver.EventEmitter()
    calls: list[str] = []

    def listener() -> None:
        calls.append("x")

    emitter.on("event", listener)
    emitter.once("event", listener)
    emitter.off("event", listener)  # removes the once registration, as Node.js does
    emitter.emit("event")
    emitter.emit("event")
    assert calls == ["x", "x"]
