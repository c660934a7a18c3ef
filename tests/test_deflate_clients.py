"""permessage-deflate against real clients: websockets and aiohttp negotiate it
with every RFC 7692 parameter, messages round-trip, limits hold."""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
import websockets
from websockets.asyncio.client import ClientConnection
from websockets.extensions.permessage_deflate import ClientPerMessageDeflateFactory
from websockets.frames import Frame, Opcode

import wsserver as ws
from wsserver.protocol.deflate import PerMessageDeflate, max_compressed_size

pytestmark = pytest.mark.timeout(60)


@contextlib.asynccontextmanager
async def echo_server(**options: Any) -> AsyncIterator[tuple[ws.Server, list[ws.WebSocketConnection], str]]:
    """An echo server on 127.0.0.1; yields it, its connections and its URL."""
    wss = ws.Server({"host": "127.0.0.1", "port": 0, **options})
    connections: list[ws.WebSocketConnection] = []

    def on_connection(conn: ws.WebSocketConnection) -> None:
        connections.append(conn)
        conn.on("message", lambda data: conn.send(data))

    wss.on("connection", on_connection)
    await wss.start()
    try:
        yield wss, connections, f"ws://127.0.0.1:{wss.port}/"
    finally:
        await asyncio.wait_for(wss.close(), 15)


def record_rsv1(client: ClientConnection) -> list[bool]:
    """RSV1 of each data frame the websockets client receives from now on."""
    flags: list[bool] = []
    (extension,) = client.protocol.extensions
    decode = extension.decode

    def recording_decode(frame: Frame, *, max_size: int | None = None) -> Frame:
        if frame.opcode in (Opcode.TEXT, Opcode.BINARY):
            flags.append(frame.rsv1)
        return decode(frame, max_size=max_size)

    extension.decode = recording_decode  # type: ignore[method-assign]
    return flags


def messages() -> list[str | bytes]:
    """Messages that catch a wrong window or a wrong context on either side:
    repeats within one message at a distance of ~2 KiB (past a 10-bit
    window), and the same message twice (context takeover refers back)."""
    rng = random.Random(7)
    chunk = rng.randbytes(600)
    far = chunk + rng.randbytes(2000) + chunk
    text = "the quick brown fox jumps over the lazy dog; " * 300
    return [text, text, far, far, "tiny", b"", rng.randbytes(50_000), text + "!"]


async def round_trip(client: ClientConnection) -> None:
    for message in messages():
        await client.send(message)
        assert await asyncio.wait_for(client.recv(), 10) == message


async def test_off_by_default() -> None:
    async with (
        echo_server() as (_, connections, url),
        websockets.connect(url, compression="deflate") as client,
    ):
        assert "Sec-WebSocket-Extensions" not in client.response.headers
        assert client.protocol.extensions == []
        await round_trip(client)
        assert connections[0].extensions is None


async def test_websockets_default_offer() -> None:
    async with (
        echo_server(per_message_deflate=True) as (_, connections, url),
        websockets.connect(url, compression="deflate", max_size=None) as client,
    ):
        assert client.response.headers["Sec-WebSocket-Extensions"] == "permessage-deflate"
        assert connections[0].extensions == "permessage-deflate"
        flags = record_rsv1(client)
        await round_trip(client)
        # the threshold (1024 bytes, as in ws): "tiny" and b"" go uncompressed
        assert flags == [True, True, True, True, False, False, True, True]


_ALL = dict(
    server_no_context_takeover=True,
    client_no_context_takeover=True,
    server_max_window_bits=10,
    client_max_window_bits=9,
)


@pytest.mark.parametrize(
    ("offer", "response"),
    [
        ({"server_no_context_takeover": True}, "permessage-deflate; server_no_context_takeover"),
        ({"client_no_context_takeover": True}, "permessage-deflate; client_no_context_takeover"),
        ({"server_max_window_bits": 10}, "permessage-deflate; server_max_window_bits=10"),
        ({"server_max_window_bits": 9}, "permessage-deflate; server_max_window_bits=9"),
        ({"client_max_window_bits": 10}, "permessage-deflate; client_max_window_bits=10"),
        ({"client_max_window_bits": True}, "permessage-deflate"),
        ({"client_max_window_bits": None}, "permessage-deflate"),
        (
            _ALL,
            "permessage-deflate; server_no_context_takeover; client_no_context_takeover;"
            " server_max_window_bits=10; client_max_window_bits=9",
        ),
    ],
    ids=[
        "server_no_context_takeover",
        "client_no_context_takeover",
        "server_max_window_bits=10",
        "server_max_window_bits=9",
        "client_max_window_bits=10",
        "client_max_window_bits",
        "no-client_max_window_bits",
        "all",
    ],
)
async def test_websockets_client_offers_each_parameter(offer: dict[str, Any], response: str) -> None:
    factory = ClientPerMessageDeflateFactory(**offer)
    async with (
        echo_server(per_message_deflate=True) as (_, connections, url),
        websockets.connect(url, extensions=[factory], compression=None, max_size=None) as client,
    ):
        assert client.response.headers["Sec-WebSocket-Extensions"] == response
        (extension,) = client.protocol.extensions
        codec = connections[0]._proto.deflate
        assert isinstance(codec, PerMessageDeflate)
        # both ends agree (the client already checked the response)
        assert codec.server_no_context_takeover == extension.remote_no_context_takeover
        assert codec.client_no_context_takeover == extension.local_no_context_takeover
        assert codec.server_max_window_bits == extension.remote_max_window_bits
        assert codec.client_max_window_bits >= extension.local_max_window_bits
        flags = record_rsv1(client)
        await round_trip(client)
        assert sum(flags) == 6  # compressed both ways, with the agreed windows and contexts


@pytest.mark.parametrize(
    ("settings", "response"),
    [
        ({"serverNoContextTakeover": True}, "permessage-deflate; server_no_context_takeover"),
        ({"client_no_context_takeover": True}, "permessage-deflate; client_no_context_takeover"),
        ({"serverMaxWindowBits": 10}, "permessage-deflate; server_max_window_bits=10"),
        ({"client_max_window_bits": 10}, "permessage-deflate; client_max_window_bits=10"),
        (
            {
                "serverNoContextTakeover": True,
                "serverMaxWindowBits": 9,
                "clientMaxWindowBits": 9,
                "memLevel": 1,
                "level": 1,
            },
            "permessage-deflate; server_no_context_takeover; server_max_window_bits=9; client_max_window_bits=9",
        ),
    ],
)
async def test_server_settings_with_websockets_client(settings: dict[str, Any], response: str) -> None:
    async with (
        echo_server(per_message_deflate=settings) as (_, connections, url),
        websockets.connect(url, compression="deflate", max_size=None) as client,
    ):
        assert client.response.headers["Sec-WebSocket-Extensions"] == response
        flags = record_rsv1(client)
        await round_trip(client)
        assert sum(flags) == 6
        codec = connections[0]._proto.deflate
        assert codec is not None
        if codec.server_no_context_takeover:
            assert codec._compressor is None  # released after each message
        if codec.client_no_context_takeover:
            assert codec._decompressor is None


async def test_client_that_cannot_limit_its_window_is_declined() -> None:
    """With clientMaxWindowBits set, an offer without client_max_window_bits
    cannot be accepted (RFC 7692 7.1.2.2; ws does the same): no compression."""
    factory = ClientPerMessageDeflateFactory(client_max_window_bits=None)
    async with (
        echo_server(per_message_deflate={"clientMaxWindowBits": 10}) as (_, _c, url),
        websockets.connect(url, extensions=[factory], compression=None) as client,
    ):
        assert "Sec-WebSocket-Extensions" not in client.response.headers
        await round_trip(client)


@pytest.mark.parametrize(
    ("compress", "settings", "response"),
    [
        (15, True, "permessage-deflate"),
        (10, True, "permessage-deflate; server_max_window_bits=10"),
        (15, {"serverNoContextTakeover": True}, "permessage-deflate; server_no_context_takeover"),
        (15, {"clientNoContextTakeover": True}, "permessage-deflate; client_no_context_takeover"),
        (15, {"clientMaxWindowBits": 11}, "permessage-deflate; client_max_window_bits=11"),
    ],
)
async def test_aiohttp_client(compress: int, settings: Any, response: str) -> None:
    async with (
        echo_server(per_message_deflate=settings) as (_, connections, url),
        aiohttp.ClientSession() as session,
        session.ws_connect(url, compress=compress, max_msg_size=0) as client,
    ):
        assert client._response.headers["Sec-WebSocket-Extensions"] == response
        # aiohttp compresses with the client_max_window_bits of the response
        assert client.compress == (11 if "client_max_window_bits=11" in response else 15)
        assert connections[0]._proto.deflate is not None
        for message in messages():
            if isinstance(message, str):
                await client.send_str(message)
            else:
                await client.send_bytes(message)
            reply = await client.receive(timeout=10)
            assert reply.data == message


async def test_aiohttp_client_without_compression_gets_none() -> None:
    async with (
        echo_server(per_message_deflate=True) as (_, connections, url),
        aiohttp.ClientSession() as session,
        session.ws_connect(url, compress=0) as client,
    ):
        assert "Sec-WebSocket-Extensions" not in client._response.headers
        await client.send_str("x" * 5000)
        assert (await client.receive(timeout=10)).data == "x" * 5000
        assert connections[0]._proto.deflate is None


async def test_send_compress_overrides_the_threshold() -> None:
    async with (
        echo_server(per_message_deflate={"threshold": 100}) as (_, connections, url),
        websockets.connect(url, compression="deflate") as client,
    ):
        flags = record_rsv1(client)
        conn = connections[0]
        conn.send("a" * 99)
        conn.send("a" * 100)
        conn.send("small but compressed", compress=True)
        conn.send(b"b" * 5000, compress=False)
        conn.send(b"c" * 5000, compress=None)
        received = [await asyncio.wait_for(client.recv(), 10) for _ in range(5)]
        assert received == ["a" * 99, "a" * 100, "small but compressed", b"b" * 5000, b"c" * 5000]
        assert flags == [False, True, True, False, True]


async def test_send_from_another_thread_is_compressed_in_order() -> None:
    async with (
        echo_server(per_message_deflate=True) as (_, connections, url),
        websockets.connect(url, compression="deflate") as client,
    ):
        flags = record_rsv1(client)
        conn = connections[0]
        sent = [f"message {i} " * 200 for i in range(20)]

        def send_all() -> None:
            for message in sent:
                conn.send(message)

        await asyncio.to_thread(send_all)
        assert [await asyncio.wait_for(client.recv(), 10) for _ in sent] == sent
        assert all(flags)


async def test_broadcast_on_deflate_connections_is_uncompressed() -> None:
    async with (
        echo_server(per_message_deflate=True) as (wss, _c, url),
        websockets.connect(url, compression="deflate") as first,
        websockets.connect(url, compression=None) as second,
    ):
        await first.send("hello")  # make sure both are registered
        await first.recv()
        await second.send("hello")
        await second.recv()
        flags = record_rsv1(first)
        assert wss.broadcast("x" * 5000) == 2
        assert await asyncio.wait_for(first.recv(), 10) == "x" * 5000
        assert await asyncio.wait_for(second.recv(), 10) == "x" * 5000
        assert flags == [False]


async def test_max_payload_counts_decompressed_bytes() -> None:
    errors: list[BaseException] = []
    async with (
        echo_server(per_message_deflate=True, max_payload=64 * 1024) as (_, connections, url),
        websockets.connect(url, compression="deflate", max_size=None) as client,
    ):
        connections[0].on("error", errors.append)
        await client.send(bytes(64 * 1024))  # at the limit: fine
        assert await asyncio.wait_for(client.recv(), 10) == bytes(64 * 1024)
        await client.send(bytes(1024 * 1024))  # ~1 KiB on the wire, 1 MiB inflated
        with pytest.raises(websockets.ConnectionClosedError) as info:
            await asyncio.wait_for(client.recv(), 10)
        assert info.value.rcvd is not None and info.value.rcvd.code == 1009
    assert len(errors) == 1 and isinstance(errors[0], ws.PayloadTooBig)


@contextlib.asynccontextmanager
async def raw_client(
    url: str, extensions: list[str]
) -> AsyncIterator[tuple[int, dict[str, str], asyncio.StreamReader, asyncio.StreamWriter]]:
    """Send an upgrade with the given extension headers; yields the status,
    the response headers and the streams."""
    host, port = url.removeprefix("ws://").rstrip("/").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        lines = [
            "GET / HTTP/1.1",
            f"Host: {host}:{port}",
            "Upgrade: websocket",
            "Connection: Upgrade",
            "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
            "Sec-WebSocket-Version: 13",
            *(f"Sec-WebSocket-Extensions: {value}" for value in extensions),
        ]
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode())
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
        status_line, *header_lines = head.decode("latin-1").split("\r\n")
        headers = dict(line.split(": ", 1) for line in header_lines if line)
        yield int(status_line.split()[1]), headers, reader, writer
    finally:
        writer.close()


@pytest.mark.parametrize(
    ("extensions", "response"),
    [
        (["permessage-deflate; unknown"], None),
        (["permessage-deflate; server_max_window_bits=16"], None),
        (["permessage-deflate; server_no_context_takeover; server_no_context_takeover"], None),
        (['permessage-deflate; x="unterminated'], None),
        (["permessage-deflate; server_max_window_bits=8"], None),
        (
            [
                "x-webkit-deflate-frame",
                "permessage-deflate; bogus, permessage-deflate; server_max_window_bits=11",
            ],
            "permessage-deflate; server_max_window_bits=11",
        ),
        (
            ['permessage-deflate; client_max_window_bits="12"'],
            "permessage-deflate; client_max_window_bits=12",
        ),
    ],
)
async def test_offers_on_the_wire(extensions: list[str], response: str | None) -> None:
    """Unacceptable offers are declined (the handshake still succeeds)."""
    async with (
        echo_server(per_message_deflate=True) as (_, _c, url),
        raw_client(url, extensions) as (
            status,
            headers,
            _r,
            _w,
        ),
    ):
        assert status == 101
        assert headers.get("Sec-WebSocket-Extensions") == response


async def test_compressed_frame_longer_than_the_bound_is_refused_at_its_header() -> None:
    """maxPayload counts inflated bytes, but compressed bytes are bounded too:
    a compressed frame longer than deflate's worst case for maxPayload is
    refused (1009) on its header, before its payload is buffered."""
    async with (
        echo_server(per_message_deflate=True, max_payload=1 << 20) as (_, _c, url),
        raw_client(url, ["permessage-deflate"]) as (status, _h, reader, writer),
    ):
        assert status == 101
        length = max_compressed_size(1 << 20, 1) + 1
        writer.write(bytes((0xC2, 0xFF)) + length.to_bytes(8, "big") + os.urandom(4) + bytes(1000))
        first, second = await asyncio.wait_for(reader.readexactly(2), 10)
        assert first == 0x88  # FIN + close
        payload = await asyncio.wait_for(reader.readexactly(second & 0x7F), 10)
        assert int.from_bytes(payload[:2], "big") == 1009


async def test_option_spellings_and_errors() -> None:
    for options in (
        {"perMessageDeflate": {"serverNoContextTakeover": True, "memLevel": 4, "threshold": 0}},
        {"per_message_deflate": {"server_no_context_takeover": True, "mem_level": 4, "threshold": 0}},
    ):
        async with ws.Server(options, host="127.0.0.1", port=0) as wss:
            settings = wss._deflate_settings
            assert settings is not None and settings.server_no_context_takeover
            assert settings.mem_level == 4 and settings.threshold == 0
    with pytest.raises(TypeError):
        ws.Server(port=0, per_message_deflate={"windowBits": 10})
    with pytest.raises(TypeError):
        ws.Server(port=0, per_message_deflate={"memLevel": 4, "mem_level": 4})
    with pytest.raises(TypeError):
        ws.Server(port=0, per_message_deflate="yes")
    with pytest.raises(ValueError, match="8-bit"):
        ws.Server(port=0, per_message_deflate={"serverMaxWindowBits": 8})


async def test_cli_flag_turns_it_on() -> None:
    from wsserver.cli import build_parser, server_options

    options = server_options(build_parser().parse_args(["--per-message-deflate", "--port", "0"]))
    async with (
        echo_server(**{**options, "host": "127.0.0.1"}) as (_, _c, url),
        websockets.connect(url, compression="deflate") as client,
    ):
        assert client.response.headers["Sec-WebSocket-Extensions"] == "permessage-deflate"
        await round_trip(client)


async def test_many_messages_keep_context_in_step() -> None:
    """A long conversation with context takeover both ways stays decodable."""
    rng = random.Random(3)
    words = [rng.randbytes(rng.randrange(3, 9)).hex() for _ in range(200)]
    async with (
        echo_server(per_message_deflate={"threshold": 0}) as (_, _c, url),
        websockets.connect(url, compression="deflate", max_size=None) as client,
    ):
        for _ in range(200):
            message = " ".join(rng.choices(words, k=rng.randrange(0, 400)))
            await client.send(message)
            assert await asyncio.wait_for(client.recv(), 10) == message
        await client.send(os.urandom(100_000))
        assert len(await asyncio.wait_for(client.recv(), 10)) == 100_000
