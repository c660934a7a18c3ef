"""Hardening limits on real sockets (SPEC section 3, docs/security.md): what
tests/server does not already cover — the defaults, 64-bit lengths, the 503
over backlog that never waits for handshakeTimeout, the linger after a
refusal, and the close timeout after the peer's own close."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
import websockets

import wsserver as ws
from helpers import Recorder, connect_ws, echo, url, wait
from rawclient import build_frame, upgrade_request
from wsserver.options import ServerOptions


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


@pytest.mark.parametrize("value", [0, -1, 1.5])
def test_max_listener_tasks_must_be_a_positive_integer(value: Any) -> None:
    with pytest.raises(ValueError):
        ws.Server(port=0, maxListenerTasks=value)


async def test_64_bit_lengths_are_refused_at_the_header_and_others_carry_on(make_server: Any, raw: Any) -> None:
    wss = echo(await make_server(maxPayload=1024 * 1024))
    errors: list[Exception] = []
    wss.on("connection", lambda conn: conn.on("error", errors.append))
    async with connect_ws(wss) as honest:
        for length, code in ((2**62, 1009), (2**63 + 5, 1002)):
            attacker = await raw(wss)
            assert (await attacker.handshake()).status == 101
            # announces the length and sends nothing more: no allocation, answered at once
            attacker.send(build_frame(0x2, b"", length=length, width=64))
            assert (await attacker.read_close()).close_code == code
        await honest.send("still here")
        assert await wait(honest.recv()) == "still here"
    assert sorted(error.code for error in errors if isinstance(error, ws.ProtocolError)) == [1002, 1009]


async def test_over_backlog_gets_503_without_waiting_for_handshake_timeout(make_server: Any, raw: Any) -> None:
    # a long handshakeTimeout: the 503 must not wait for it
    wss = echo(await make_server(backlog=2, handshakeTimeout=60))
    async with connect_ws(wss) as first, connect_ws(wss) as second:
        with pytest.raises(websockets.InvalidStatus) as refused:
            await websockets.connect(url(wss), open_timeout=5, proxy=None)
        assert refused.value.response.status_code == 503
        assert refused.value.response.headers["Retry-After"] == "1"
        # over capacity and silent: answered 503 after the short grace, then dropped
        silent = await raw(wss)
        assert (await silent.read_response()).status == 503
        assert await silent.read_until_eof() == b""
        for client in (first, second):
            await client.send("x")
            assert await wait(client.recv()) == "x"
    assert wss.refused[503] == 2


async def test_a_refused_client_still_sending_gets_the_answer_not_a_reset(make_server: Any, raw: Any) -> None:
    wss = await make_server(maxHeaderSize=4096)
    client = await raw(wss)
    request = upgrade_request(headers=[("X-Padding", "a" * 60_000)])
    for start in range(0, len(request), 2048):  # keeps sending after the 431 is out
        client.send(request[start : start + 2048])
        await asyncio.sleep(0.005)
    # the server drained our input instead of closing on it: no reset ate the answer
    response = await client.read_response()
    assert response.status == 431
    assert await client.read_until_eof() == b""


async def test_peer_that_closes_then_stops_reading_is_dropped_after_close_timeout(make_server: Any, raw: Any) -> None:
    wss = await make_server(closeTimeout=0.3, pingInterval=None)
    connections = Recorder(wss, "connection")
    client = await raw(wss, receive_buffer=4096)
    assert (await client.handshake()).status == 101
    conn, _ = await connections.next("connection")
    closes = Recorder(conn, "close")
    conn.on("message", lambda data: conn.send(b"x" * (8 * 1024 * 1024)))  # more than socket buffers hold
    client.pause_reading()
    # asks for 8 MiB, closes, and never reads: the server's flush cannot finish
    client.send(build_frame(0x2, b"go") + build_frame(0x8, b"\x03\xe8"))
    assert await closes.next("close") == (1000, "")
    assert wss.clients is not None and conn not in wss.clients
