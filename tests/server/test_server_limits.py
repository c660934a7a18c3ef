"""Slow readers (maxBufferedAmount, drain), ssl, reusePort, handshakes during close."""

from __future__ import annotations

import asyncio
import ssl
from pathlib import Path
from typing import Any

from websockets.asyncio.client import connect

import wsserver
from helpers import Recorder, connect_ws, echo, wait
from rawclient import RawClient, upgrade_request


async def open_raw(wss: wsserver.Server, raw: Any) -> tuple[RawClient, wsserver.WebSocketConnection]:
    connections = Recorder(wss, "connection")
    client = await raw(wss)
    assert (await client.handshake()).status == 101
    conn, _request = await connections.next("connection")
    return client, conn


async def test_a_client_that_does_not_read_is_dropped_past_max_buffered_amount(make_server: Any, raw: Any) -> None:
    wss = await make_server(maxBufferedAmount=256 * 1024)
    client, conn = await open_raw(wss, raw)
    events = Recorder(conn, "error", "close")
    chunk = b"x" * 65536
    for _ in range(2000):  # at most 128 MiB; the kernel buffers hold a few MiB
        if conn.ready_state == wsserver.CLOSED or events.count("error"):
            break
        conn.send(chunk)
        await asyncio.sleep(0)
    (error,) = await events.next("error")
    assert isinstance(error, wsserver.SlowConsumer)
    assert await events.next("close") == (1006, "")
    assert wss.clients is not None and conn not in wss.clients
    del client


async def test_drain_event_and_await_drain(make_server: Any, raw: Any) -> None:
    wss = await make_server()
    client, conn = await open_raw(wss, raw)
    drains = Recorder(conn, "drain")
    chunk = b"y" * 65536
    sent = 0
    for _ in range(2000):
        conn.send(chunk)
        sent += 1
        await asyncio.sleep(0)
        if conn.buffered_amount > 0:
            break
    for _ in range(8):  # well past the transport's high-water mark
        conn.send(chunk)
        sent += 1
    assert conn.buffered_amount > 0
    waiting = asyncio.ensure_future(conn.drain())
    await asyncio.sleep(0.01)
    assert not waiting.done()
    received = 0
    for _ in range(sent * 2):
        frame = await client.read_frame()
        received += 1
        if received == sent:
            break
    assert received == sent and frame.payload == chunk
    await wait(waiting)
    await drains.next("drain")
    assert conn.buffered_amount == 0


async def test_ssl_serves_wss(make_server: Any, certificate: tuple[Path, Path]) -> None:
    cert, key = certificate
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_context.load_cert_chain(cert, key)
    client_context = ssl.create_default_context(cafile=str(cert))
    wss = echo(await make_server(ssl=server_context))
    uri = f"wss://127.0.0.1:{wss.port}/secure"
    async with connect(uri, ssl=client_context, proxy=None, ping_interval=None) as client:
        await client.send("over tls")
        assert await wait(client.recv()) == "over tls"
        await client.send(b"\x00" * 100_000)
        assert await wait(client.recv()) == b"\x00" * 100_000


async def test_reuse_port_lets_two_servers_share_a_port(make_server: Any) -> None:
    first = echo(await make_server(reusePort=True))
    second = echo(await make_server(reuse_port=True, port=first.port))
    assert second.port == first.port
    async with connect_ws(first) as client:
        await client.send("shared")
        assert await wait(client.recv()) == "shared"


async def test_a_handshake_finishing_after_close_is_refused(make_server: Any, raw: Any) -> None:
    wss = await make_server()
    connections = Recorder(wss, "connection")
    client = await raw(wss)
    request = upgrade_request()
    client.send(request[:20])
    await client.writer.drain()
    for _ in range(500):  # until the server has accepted the TCP connection
        if wss._handshaking:
            break
        await asyncio.sleep(0.01)
    assert wss._handshaking == 1
    await wait(wss.close())
    client.send(request[20:])
    response = await client.read_response()
    assert response.status == 503
    assert connections.count("connection") == 0
    assert wss.clients == set()


async def test_server_can_restart_on_the_same_port(make_server: Any) -> None:
    first = await make_server()
    port = first.port
    await wait(first.close())
    again = echo(await make_server(port=port))
    async with connect_ws(again) as client:
        await client.send("again")
        assert await wait(client.recv()) == "again"


async def test_refused_and_timed_out_handshakes_free_their_backlog_slot(make_server: Any, raw: Any) -> None:
    wss = echo(await make_server(backlog=1, handshakeTimeout=0.2))
    for request in (upgrade_request(method="POST"), upgrade_request(key="bad"), b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"):
        client = await raw(wss)
        client.send(request)
        assert (await client.read_response()).status in (400, 405, 426)
        assert await client.read_until_eof() == b""
    idle = await raw(wss)
    assert (await idle.read_response()).status == 408
    assert await idle.read_until_eof() == b""
    for _ in range(100):  # the refused connections are gone once the server saw the TCP close
        if not wss._handshaking:
            break
        await asyncio.sleep(0.01)
    async with connect_ws(wss) as client:
        await client.send("a slot was free")
        assert await wait(client.recv()) == "a slot was free"
    assert wss.refused[503] == 0


async def test_large_messages_round_trip(make_server: Any) -> None:
    wss = echo(await make_server())
    payload = bytes(range(256)) * (3 * 4096)  # 3 MiB
    text = "é€😀 " * 100_000
    async with connect_ws(wss, max_size=None) as client:
        await client.send(payload)
        assert await wait(client.recv(), 20) == payload
        await client.send(text)
        assert await wait(client.recv(), 20) == text
