"""Connection methods: send, ping, pong (with mask), close, terminate, state, threads."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import aiohttp
import pytest

import wsserver
from helpers import Recorder, close_code_of, connect_ws, url, wait
from rawclient import RawClient

OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0x1, 0x2, 0x8, 0x9, 0xA


async def open_raw(wss: wsserver.Server, raw: Any) -> tuple[RawClient, wsserver.WebSocketConnection]:
    """A raw client through the handshake, and the server's connection for it."""
    connections = Recorder(wss, "connection")
    client = await raw(wss)
    assert (await client.handshake()).status == 101
    conn, _request = await connections.next("connection")
    return client, conn


@pytest.mark.parametrize(
    ("data", "opcode", "payload"),
    [
        ("text é", OP_TEXT, "text é".encode()),
        ("", OP_TEXT, b""),
        (b"\x00bytes", OP_BINARY, b"\x00bytes"),
        (bytearray(b"array"), OP_BINARY, b"array"),
        (memoryview(b"view"), OP_BINARY, b"view"),
        (memoryview(b"--sliced--")[2:8], OP_BINARY, b"sliced"),
    ],
)
async def test_send_picks_the_frame_type(make_server: Any, raw: Any, data: Any, opcode: int, payload: bytes) -> None:
    wss = await make_server()
    client, conn = await open_raw(wss, raw)
    conn.send(data)
    frame = await client.read_frame()
    assert (frame.fin, frame.rsv, frame.opcode, frame.masked, frame.payload) == (True, 0, opcode, False, payload)


@pytest.mark.parametrize("data", [42, None, 1.5, ["list"], {"a": 1}, object()])
async def test_send_rejects_other_types(make_server: Any, raw: Any, data: Any) -> None:
    wss = await make_server()
    _client, conn = await open_raw(wss, raw)
    with pytest.raises(TypeError):
        conn.send(data)


async def test_send_str_subclass_is_text(make_server: Any, raw: Any) -> None:
    class Name(str):
        pass

    wss = await make_server()
    client, conn = await open_raw(wss, raw)
    conn.send(Name("subclass"))
    frame = await client.read_frame()
    assert (frame.opcode, frame.payload) == (OP_TEXT, b"subclass")
    await asyncio.to_thread(conn.send, Name("from a thread"))
    frame = await client.read_frame()
    assert (frame.opcode, frame.payload) == (OP_TEXT, b"from a thread")


async def test_websockets_client_receives_text_and_binary(make_server: Any) -> None:
    wss = await make_server()
    connections = Recorder(wss, "connection")
    async with connect_ws(wss) as client:
        conn, _ = await connections.next("connection")
        conn.send("text")
        conn.send(b"binary")
        conn.send(b"x" * 100_000)
        assert await wait(client.recv()) == "text"
        assert await wait(client.recv()) == b"binary"
        assert await wait(client.recv()) == b"x" * 100_000


@pytest.mark.parametrize(
    ("method", "opcode", "data", "payload"),
    [
        ("send", OP_TEXT, "masked text", b"masked text"),
        ("send", OP_BINARY, b"\x00\x01masked binary" * 20, b"\x00\x01masked binary" * 20),
        ("ping", OP_PING, b"masked ping", b"masked ping"),
        ("pong", OP_PONG, b"masked pong", b"masked pong"),
    ],
)
async def test_mask_true_really_masks(make_server: Any, raw: Any, method: str, opcode: int, data: Any, payload: bytes) -> None:
    wss = await make_server()
    client, conn = await open_raw(wss, raw)
    getattr(conn, method)(data, True)
    frame = await client.read_frame()
    assert frame.opcode == opcode
    assert frame.masked and frame.mask_key is not None and len(frame.mask_key) == 4
    assert frame.payload == payload  # unmasked with the key in the frame
    if frame.mask_key != b"\x00\x00\x00\x00":
        assert frame.wire_payload != payload
    # and without the flag, nothing is masked
    getattr(conn, method)(data)
    plain = await client.read_frame()
    assert not plain.masked and plain.wire_payload == payload


async def test_mask_keys_differ_between_frames(make_server: Any, raw: Any) -> None:
    wss = await make_server()
    client, conn = await open_raw(wss, raw)
    for _ in range(8):
        conn.send("same", True)
    keys = {(await client.read_frame()).mask_key for _ in range(8)}
    assert len(keys) > 1


async def test_ping_and_pong_defaults_and_types(make_server: Any, raw: Any) -> None:
    wss = await make_server()
    client, conn = await open_raw(wss, raw)
    conn.ping()
    conn.pong("text payload")
    conn.ping(bytearray(b"ba"))
    assert [(f.opcode, f.payload) for f in [await client.read_frame() for _ in range(3)]] == [
        (OP_PING, b""),
        (OP_PONG, b"text payload"),
        (OP_PING, b"ba"),
    ]


@pytest.mark.parametrize("method", ["ping", "pong"])
async def test_control_payload_over_125_bytes_is_a_value_error(make_server: Any, raw: Any, method: str) -> None:
    wss = await make_server()
    client, conn = await open_raw(wss, raw)
    with pytest.raises(ValueError):
        getattr(conn, method)(b"x" * 126)
    with pytest.raises(ValueError):
        getattr(conn, method)("é" * 63)  # 126 bytes in UTF-8
    with pytest.raises(TypeError):
        getattr(conn, method)(12)
    getattr(conn, method)(b"y" * 125)
    assert (await client.read_frame()).payload == b"y" * 125


async def test_client_ping_gets_a_pong(make_server: Any, raw: Any) -> None:
    wss = await make_server()
    client, conn = await open_raw(wss, raw)
    pings = Recorder(conn, "ping")
    client.send_frame(OP_PING, b"hello?")
    frame = await client.read_frame()
    assert (frame.opcode, frame.payload, frame.masked) == (OP_PONG, b"hello?", False)
    assert await pings.next("ping") == (b"hello?",)


@pytest.mark.parametrize("options", [{"autoPong": False}, {"auto_pong": False}])
async def test_auto_pong_off_emits_ping_without_answering(make_server: Any, raw: Any, options: dict[str, Any]) -> None:
    wss = await make_server(options)
    client, conn = await open_raw(wss, raw)
    pings = Recorder(conn, "ping")
    conn.on("message", lambda data: conn.send(data))
    client.send_frame(OP_PING, b"no answer")
    client.send_frame(OP_TEXT, "marker")
    assert await pings.next("ping") == (b"no answer",)
    frame = await client.read_frame()
    assert (frame.opcode, frame.payload) == (OP_TEXT, b"marker")  # no pong came before it
    conn.pong(b"manual")
    assert (await client.read_frame()).payload == b"manual"


async def test_close_with_code_and_reason(make_server: Any) -> None:
    wss = await make_server()
    connections = Recorder(wss, "connection")
    async with connect_ws(wss) as client:
        conn, _ = await connections.next("connection")
        closes = Recorder(conn, "close")
        assert conn.ready_state == wsserver.OPEN == conn.OPEN == 1
        conn.close(4321, "bye now")
        assert conn.ready_state == wsserver.CLOSING
        assert await close_code_of(client) == 4321
        assert client.close_reason == "bye now"
        assert await closes.next("close") == (4321, "bye now")
        assert conn.ready_state == wsserver.CLOSED


async def test_close_defaults_to_1000(make_server: Any) -> None:
    wss = await make_server()
    connections = Recorder(wss, "connection")
    async with connect_ws(wss) as client:
        conn, _ = await connections.next("connection")
        conn.close()
        assert await close_code_of(client) == 1000


@pytest.mark.parametrize("code", [0, 999, 1004, 1005, 1006, 1010, 1015, 2999, 5000])
async def test_close_with_an_invalid_code_is_a_value_error(make_server: Any, raw: Any, code: int) -> None:
    wss = await make_server()
    _client, conn = await open_raw(wss, raw)
    with pytest.raises(ValueError):
        conn.close(code)
    assert conn.ready_state == wsserver.OPEN


async def test_close_reason_over_123_bytes_is_a_value_error(make_server: Any, raw: Any) -> None:
    wss = await make_server()
    _client, conn = await open_raw(wss, raw)
    with pytest.raises(ValueError):
        conn.close(1000, "é" * 62)
    conn.close(1000, "r" * 123)


async def test_close_timeout_drops_a_client_that_never_answers(make_server: Any, raw: Any) -> None:
    wss = await make_server(closeTimeout=0.3)
    client, conn = await open_raw(wss, raw)
    closes = Recorder(conn, "close")
    conn.close(1000, "please answer")
    frame = await client.read_close()
    assert (frame.close_code, frame.close_reason) == (1000, "please answer")
    # the client never sends its close frame: the server drops TCP
    assert await client.read_until_eof() == b""
    assert await closes.next("close") == (1006, "")
    assert conn.ready_state == wsserver.CLOSED


async def test_client_answering_the_close_gives_its_code(make_server: Any, raw: Any) -> None:
    wss = await make_server()
    client, conn = await open_raw(wss, raw)
    closes = Recorder(conn, "close")
    conn.close(4000)
    assert (await client.read_close()).close_code == 4000
    client.send_frame(OP_CLOSE, b"\x0f\xa0")
    assert await client.read_until_eof() == b""
    assert await closes.next("close") == (4000, "")


async def test_messages_after_close_are_dropped(make_server: Any, raw: Any) -> None:
    wss = await make_server()
    client, conn = await open_raw(wss, raw)
    conn.close(1000)
    conn.send("after close")
    conn.ping(b"after close")
    assert (await client.read_close()).close_code == 1000
    client.send_frame(OP_CLOSE, b"\x03\xe8")
    assert await client.read_until_eof() == b""


async def test_terminate_drops_tcp_without_a_close_frame(make_server: Any, raw: Any) -> None:
    wss = await make_server()
    client, conn = await open_raw(wss, raw)
    closes = Recorder(conn, "close")
    conn.terminate()
    assert await client.read_until_eof() == b""
    assert await closes.next("close") == (1006, "")
    assert conn.ready_state == wsserver.CLOSED
    conn.send("ignored")  # no error on a closed connection
    conn.terminate()


async def test_properties(make_server: Any) -> None:
    wss = await make_server(acceptHandler=lambda protocols: "p2")
    connections = Recorder(wss, "connection")
    async with connect_ws(wss, "/path?q=1", subprotocols=["p1", "p2"]) as client:
        conn, request = await connections.next("connection")
        assert conn.protocol == "p2"
        assert conn.request is request and conn.request.path == "/path"
        assert conn.remote_address == client.local_address[:2]
        assert conn.server is wss
        assert conn.ready_state == wsserver.OPEN
        assert conn.buffered_amount == 0
        assert conn.extensions is None
        assert "/path" in repr(conn)


async def test_send_from_worker_threads(make_server: Any) -> None:
    wss = await make_server()
    connections = Recorder(wss, "connection")
    threads_count, per_thread = 4, 250
    async with connect_ws(wss, max_queue=None) as client:
        conn, _ = await connections.next("connection")
        start = threading.Barrier(threads_count)

        def worker(index: int) -> None:
            start.wait(timeout=5)
            for number in range(per_thread):
                if number % 2:
                    conn.send(f"t{index}:{number}:" + "x" * (number % 50))
                else:
                    conn.send(f"t{index}:{number}:".encode() + bytes(number % 300))

        threads = [threading.Thread(target=worker, args=(index,)) for index in range(threads_count)]
        for thread in threads:
            thread.start()
        received = [await wait(client.recv()) for _ in range(threads_count * per_thread)]
        for thread in threads:
            thread.join(5)
    by_thread: dict[int, list[int]] = {index: [] for index in range(threads_count)}
    for message in received:
        text = message if isinstance(message, str) else message.decode("latin-1")
        tag, number_text, rest = text.split(":", 2)
        number = int(number_text)
        if number % 2:
            assert isinstance(message, str) and rest == "x" * (number % 50)
        else:
            assert isinstance(message, bytes) and message.endswith(bytes(number % 300))
        by_thread[int(tag[1:])].append(number)
    for numbers in by_thread.values():
        assert numbers == list(range(per_thread))  # all there, each thread in its order


async def test_ping_and_close_from_a_worker_thread(make_server: Any) -> None:
    wss = await make_server()
    connections = Recorder(wss, "connection")
    async with connect_ws(wss) as client:
        conn, _ = await connections.next("connection")
        pongs = Recorder(conn, "pong")
        await asyncio.to_thread(conn.ping, b"from a thread")
        assert await pongs.next("pong") == (b"from a thread",)  # the client answered
        await asyncio.to_thread(conn.close, 4005, "thread")
        assert await close_code_of(client) == 4005


async def test_broadcast_reaches_every_client(make_server: Any) -> None:
    wss = await make_server()
    connections = Recorder(wss, "connection")
    async with connect_ws(wss) as one, connect_ws(wss) as two, connect_ws(wss) as three:
        for _ in range(3):
            await connections.next("connection")
        assert wss.broadcast("to all") == 3
        assert wss.broadcast(b"\x01\x02") == 3
        for client in (one, two, three):
            assert await wait(client.recv()) == "to all"
            assert await wait(client.recv()) == b"\x01\x02"
        with pytest.raises(TypeError):
            wss.broadcast(123)  # type: ignore[arg-type]


async def test_broadcast_with_exclude_and_from_a_thread(make_server: Any) -> None:
    wss = await make_server()
    connections = Recorder(wss, "connection")
    async with connect_ws(wss) as one, connect_ws(wss) as two:
        first, _ = await connections.next("connection")
        await connections.next("connection")
        assert wss.broadcast("not to the first", exclude=first) == 1
        assert await wait(two.recv()) == "not to the first"
        await asyncio.to_thread(wss.broadcast, "from a thread")
        assert await wait(one.recv()) == "from a thread"
        assert await wait(two.recv()) == "from a thread"


async def test_aiohttp_client_echo_and_close_code(make_server: Any) -> None:
    wss = await make_server()
    connections = Recorder(wss, "connection")

    def on_connection(conn: wsserver.WebSocketConnection) -> None:
        def on_message(data: str | bytes) -> None:
            if data == "close me":
                conn.close(4100, "as asked")
            else:
                conn.send(data)

        conn.on("message", on_message)

    wss.on("connection", on_connection)
    async with aiohttp.ClientSession() as session, session.ws_connect(url(wss)) as client:
        await connections.next("connection")
        await client.send_str("text")
        assert await wait(client.receive_str()) == "text"
        await client.send_bytes(b"bin")
        assert await wait(client.receive_bytes()) == b"bin"
        await client.send_str("close me")
        message = await wait(client.receive())
        assert message.type == aiohttp.WSMsgType.CLOSE
        assert message.data == 4100 and message.extra == "as asked"
