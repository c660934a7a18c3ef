"""``wss.stats()`` and its Prometheus rendering, against real clients."""

from __future__ import annotations

import asyncio
import socket

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

import wsserver as ws
from wsserver.metrics import prometheus_text

TIMEOUT = 10


def client_frame_size(payload_length: int) -> int:
    """Bytes of one masked client frame (payload < 126 bytes)."""
    return 2 + 4 + payload_length


def server_frame_size(payload_length: int) -> int:
    """Bytes of one unmasked server frame (payload < 126 bytes)."""
    return 2 + payload_length


async def wait_for(condition: object, what: str) -> None:
    for _ in range(200):
        if callable(condition) and condition():
            return
        await asyncio.sleep(0.025)
    raise AssertionError(f"timed out waiting for {what}")


async def test_stats_count_messages_bytes_and_close_codes() -> None:
    async with ws.Server(host="127.0.0.1", port=0) as wss:
        wss.on("connection", lambda conn: conn.on("message", lambda data: conn.send(data)))
        assert wss.stats() == {
            "connections_open": 0, "connections_total": 0, "messages_in": 0, "messages_out": 0,
            "bytes_in": 0, "bytes_out": 0, "handshakes_refused": {}, "close_codes": {},
        }
        messages = ["one", "two", b"\x00\x01", "ü" * 10]
        sizes = [len(m.encode() if isinstance(m, str) else m) for m in messages]
        async with connect(f"ws://127.0.0.1:{wss.port}", compression=None, open_timeout=TIMEOUT) as client:
            for message in messages:
                await client.send(message)
                assert await asyncio.wait_for(client.recv(), TIMEOUT) == message
            pong = await client.ping(b"ping!")
            await asyncio.wait_for(pong, TIMEOUT)
            during = wss.stats()
            assert during["connections_open"] == 1
            await client.close(4001, "bye")
        await wait_for(lambda: wss.stats()["close_codes"], "the close to be counted")
        stats = wss.stats()
        assert stats["connections_open"] == 0
        assert stats["connections_total"] == 1
        assert stats["messages_in"] == len(messages)  # the ping and the close are not messages
        assert stats["messages_out"] == len(messages)  # nor the pong and the close reply
        close_payload = 2 + len("bye")
        assert stats["bytes_in"] == (
            sum(map(client_frame_size, sizes)) + client_frame_size(5) + client_frame_size(close_payload)
        )
        # the reply to the close frame carries the code only, as ws' does
        assert stats["bytes_out"] == sum(map(server_frame_size, sizes)) + server_frame_size(5) + server_frame_size(2)
        assert stats["close_codes"] == {4001: 1}
        assert stats["handshakes_refused"] == {}


async def test_stats_count_refusals_and_dropped_connections() -> None:
    async with ws.Server(host="127.0.0.1", port=0, path="/ws", accept_handler=lambda protocols: "ok" in protocols and "ok") as wss:
        url = f"ws://127.0.0.1:{wss.port}"
        with pytest.raises(InvalidStatus):  # wrong path: 404
            await connect(url + "/elsewhere", subprotocols=["ok"], open_timeout=TIMEOUT)
        with pytest.raises(InvalidStatus):  # acceptHandler says no: 401
            await connect(url + "/ws", subprotocols=["nope"], open_timeout=TIMEOUT)
        reader, writer = await asyncio.open_connection("127.0.0.1", wss.port)  # plain HTTP: 426
        writer.write(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        assert (await asyncio.wait_for(reader.read(), TIMEOUT)).startswith(b"HTTP/1.1 426")
        writer.close()
        # a client that vanishes without a close frame: 1006
        async with connect(url + "/ws", subprotocols=["ok"], open_timeout=TIMEOUT) as client:
            transport = client.transport
            sock = transport.get_extra_info("socket")
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
            transport.abort()
        await wait_for(lambda: wss.stats()["close_codes"], "the drop to be counted")
        stats = wss.stats()
        assert stats["handshakes_refused"] == {404: 1, 401: 1, 426: 1}
        assert stats["close_codes"] == {1006: 1}
        assert stats["connections_total"] == 1
        text = prometheus_text(stats)
        assert 'wsserver_handshakes_refused_total{status="401"} 1\n' in text
        assert 'wsserver_handshakes_refused_total{status="404"} 1\n' in text
        assert 'wsserver_closes_total{code="1006"} 1\n' in text
        assert "wsserver_connections_total 1\n" in text
        assert "# TYPE wsserver_connections_open gauge\n" in text


async def test_broadcast_counts_one_message_per_recipient() -> None:
    async with ws.Server(host="127.0.0.1", port=0) as wss:
        url = f"ws://127.0.0.1:{wss.port}"
        async with connect(url, open_timeout=TIMEOUT) as first, connect(url, open_timeout=TIMEOUT) as second:
            await wait_for(lambda: len(wss.clients or ()) == 2, "two clients")
            assert wss.broadcast("tick") == 2
            assert await asyncio.wait_for(first.recv(), TIMEOUT) == "tick"
            assert await asyncio.wait_for(second.recv(), TIMEOUT) == "tick"
            stats = wss.stats()
            assert stats["messages_out"] == 2
            assert stats["bytes_out"] == 2 * server_frame_size(4)
            assert stats["connections_open"] == 2
