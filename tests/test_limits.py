"""Every limit of SPEC section 3 on real sockets: the peer gets the documented
answer, the server emits ``error`` on that connection only, others carry on."""

from __future__ import annotations

import asyncio
import struct
from typing import Any

import pytest
import websockets

import wsserver as ws
from hardening_support import TIMEOUT, RawClient, client_frame, frame_header_64, upgrade_request
from wsserver.options import ServerOptions


def echo_server(**options: Any) -> ws.Server:
    wss = ws.Server(host="127.0.0.1", port=0, **options)

    def on_connection(conn: ws.WebSocketConnection) -> None:
        conn.on("message", lambda data: conn.send(data))

    wss.on("connection", on_connection)
    return wss


def url(wss: ws.Server) -> str:
    return f"ws://127.0.0.1:{wss.port}/"


def test_every_limit_has_a_bounded_default() -> None:
    defaults = ServerOptions()
    assert defaults.handshake_timeout == 10.0
    assert defaults.close_timeout == 10.0
    assert defaults.max_header_size == 16 * 1024
    assert defaults.max_headers == 128
    assert defaults.max_payload == 16 * 1024 * 1024
    assert defaults.max_fragments == 100_000
    assert defaults.max_buffered_amount == 32 * 1024 * 1024
    assert defaults.max_listener_tasks == 16
    assert defaults.backlog == 10_000
    assert (defaults.ping_interval, defaults.ping_timeout) == (20.0, 20.0)
    # the unsent-bytes limit leaves room to echo a message of the largest size
    assert defaults.max_buffered_amount >= 2 * defaults.max_payload


def test_limits_reject_nonsense_values() -> None:
    with pytest.raises(ValueError):
        ws.Server(port=0, max_listener_tasks=0)
    with pytest.raises(ValueError):
        ws.Server(port=0, maxBufferedAmount=-1)


async def test_slowloris_gets_408_and_the_slot_back() -> None:
    async with echo_server(handshake_timeout=0.5, backlog=1) as wss:
        slow = await RawClient.connect(wss.port)
        request = upgrade_request()
        answer = asyncio.ensure_future(slow.read_head())
        for index in range(50):  # one byte every 100 ms: the head would take 20 s
            slow.send(request[index : index + 1])
            await asyncio.wait([answer], timeout=0.1)
            if answer.done():
                break
        status, _ = await answer
        assert status == 408
        assert await slow.read_to_eof() == b"Request Timeout\n"
        assert wss.refused[408] == 1
        # the one slot (backlog=1) is free again for an honest client
        async with websockets.connect(url(wss), open_timeout=TIMEOUT) as client:
            await client.send("hi")
            assert await client.recv() == "hi"


@pytest.mark.parametrize("split", [False, True])
async def test_oversized_request_head_gets_431(split: bool) -> None:
    async with echo_server(max_header_size=4096) as wss:
        client = await RawClient.connect(wss.port)
        request = upgrade_request(extra_headers="X-Padding: " + "a" * 8000 + "\r\n")
        if split:
            for start in range(0, len(request), 1000):
                client.send(request[start : start + 1000])
                await asyncio.sleep(0.01)
        else:
            client.send(request)
        status, _ = await client.read_head()
        assert status == 431
        await client.read_to_eof()
        assert wss.refused[431] == 1


async def test_too_many_headers_get_431() -> None:
    async with echo_server(max_headers=20) as wss:
        client = await RawClient.connect(wss.port)
        client.send(upgrade_request(extra_headers="".join(f"X-H{i}: v\r\n" for i in range(30))))
        status, _ = await client.read_head()
        assert status == 431


async def test_64_bit_length_is_refused_at_the_frame_header() -> None:
    errors: list[Exception] = []
    async with echo_server(max_payload=1024 * 1024) as wss:
        wss.on("connection", lambda conn: conn.on("error", errors.append))
        async with websockets.connect(url(wss)) as honest:
            attacker = await RawClient.open(wss.port)
            # announces 2**62 bytes and sends none of them: no allocation, 1009 at once
            attacker.send(frame_header_64(0x2, 2**62))
            assert await attacker.read_close_code() == 1009
            high_bit = await RawClient.open(wss.port)
            high_bit.send(frame_header_64(0x2, 2**63 + 5))
            assert await high_bit.read_close_code() == 1002
            await honest.send("still here")
            assert await honest.recv() == "still here"
    assert sorted(error.code for error in errors if isinstance(error, ws.ProtocolError)) == [1002, 1009]


async def test_flood_of_one_byte_fragments_gets_1008() -> None:
    async with echo_server(max_fragments=1000) as wss:
        attacker = await RawClient.open(wss.port)
        frames = [client_frame(0x2, b"x", fin=False)]
        frames += [client_frame(0x0, b"x", fin=False) for _ in range(2000)]
        attacker.send(b"".join(frames))
        assert await attacker.read_close_code() == 1008
        await attacker.read_to_eof()


async def test_fragments_up_to_the_limit_make_a_message() -> None:
    async with echo_server(max_fragments=1000) as wss:
        client = await RawClient.open(wss.port)
        frames = [client_frame(0x1, "a", fin=False)]
        frames += [client_frame(0x0, "b", fin=False) for _ in range(998)]
        frames.append(client_frame(0x0, "c"))
        client.send(b"".join(frames))
        opcode, payload = await client.read_frame()
        assert (opcode, payload) == (0x1, b"a" + b"b" * 998 + b"c")
        client.close()


async def test_invalid_utf8_gets_1007_and_others_carry_on() -> None:
    async with echo_server() as wss, websockets.connect(url(wss)) as honest:
        attacker = await RawClient.open(wss.port)
        attacker.send(client_frame(0x1, b"ok \xff\xfe"))
        assert await attacker.read_close_code() == 1007
        await honest.send("fine")
        assert await honest.recv() == "fine"


async def test_over_backlog_gets_503_at_once_and_is_not_held() -> None:
    # a long handshake timeout: the 503 must not wait for it
    async with echo_server(backlog=2, handshake_timeout=60) as wss:
        async with websockets.connect(url(wss)) as first, websockets.connect(url(wss)) as second:
            with pytest.raises(websockets.InvalidStatus) as refused:
                await websockets.connect(url(wss), open_timeout=TIMEOUT)
            assert refused.value.response.status_code == 503
            assert refused.value.response.headers["Retry-After"] == "1"
            # a connection over capacity that never sends its request gets the 503
            # and is dropped after the short grace, not after handshakeTimeout
            silent = await RawClient.connect(wss.port)
            status, _ = await silent.read_head()
            assert status == 503
            await silent.read_to_eof(timeout=TIMEOUT)
            for client in (first, second):
                await client.send("x")
                assert await client.recv() == "x"
        # the refused connections never took a slot: both slots are free again
        await asyncio.sleep(0.1)
        async with websockets.connect(url(wss)) as again, websockets.connect(url(wss)) as other:
            await again.send("y")
            await other.send("z")
            assert (await again.recv(), await other.recv()) == ("y", "z")
    assert wss.refused[503] == 2


async def test_close_timeout_drops_a_peer_that_never_answers_the_close() -> None:
    closed: asyncio.Future[tuple[int, str]] = asyncio.get_running_loop().create_future()
    async with ws.Server(host="127.0.0.1", port=0, close_timeout=0.3) as wss:

        def on_connection(conn: ws.WebSocketConnection) -> None:
            conn.on("close", lambda code, reason: closed.set_result((code, reason)))
            conn.close(1000, "bye")

        wss.on("connection", on_connection)
        mute = await RawClient.open(wss.port)
        assert await mute.read_close_code() == 1000
        # no close frame back: the server drops TCP after closeTimeout
        await mute.read_to_eof()
        assert await asyncio.wait_for(closed, TIMEOUT) == (1006, "")


async def test_peer_that_closes_then_stops_reading_is_dropped_after_close_timeout() -> None:
    closed: asyncio.Future[int] = asyncio.get_running_loop().create_future()
    async with ws.Server(host="127.0.0.1", port=0, close_timeout=0.3, ping_interval=None) as wss:

        def on_connection(conn: ws.WebSocketConnection) -> None:
            conn.on("close", lambda code: closed.set_result(code))

            def on_message(data: bytes) -> None:
                conn.send(b"x" * (8 * 1024 * 1024))  # far more than the socket buffers hold

            conn.on("message", on_message)

        wss.on("connection", on_connection)
        peer = await RawClient.open(wss.port, receive_buffer=4096)
        peer.stop_reading()
        # ask for 8 MiB, then close, and never read: the server's flush cannot finish
        peer.send(client_frame(0x2, b"go") + client_frame(0x8, struct.pack("!H", 1000)))
        assert await asyncio.wait_for(closed, TIMEOUT) == 1000
        assert not wss.clients
