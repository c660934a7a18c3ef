"""permessage-deflate against real clients: websockets and aiohttp negotiate it
with every RFC 7692 parameter, messages round-trip, limits hold."""

from __future__ import annotations

import asyncio
import random
from typing import Any

import aiohttp
import pytest
from websockets.asyncio.client import ClientConnection
from websockets.extensions.permessage_deflate import ClientPerMessageDeflateFactory
from websockets.frames import Frame, Opcode

import wsserver as ws
from helpers import Recorder, close_code_of, connect_ws, echo, url, wait
from wsserver.protocol.deflate import PerMessageDeflate, max_compressed_size
from wsserver.protocol.frames import OP_BINARY

RSV1 = 4  # build_frame's rsv bits


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
        assert await wait(client.recv()) == message


async def codec_of(connections: Recorder) -> PerMessageDeflate:
    """The negotiated codec of the next connection the server reports."""
    conn, _request = await connections.next("connection")
    codec = conn._proto.deflate
    assert isinstance(codec, PerMessageDeflate)
    return codec


async def test_off_by_default(make_server: Any) -> None:
    wss = echo(await make_server())
    connections = Recorder(wss, "connection")
    async with connect_ws(wss, compression="deflate") as client:
        assert "Sec-WebSocket-Extensions" not in client.response.headers
        assert client.protocol.extensions == []
        await round_trip(client)
        conn, _ = await connections.next("connection")
        assert conn.extensions is None and conn._proto.deflate is None


async def test_websockets_default_offer(make_server: Any) -> None:
    wss = echo(await make_server(per_message_deflate=True))
    connections = Recorder(wss, "connection")
    async with connect_ws(wss, compression="deflate", max_size=None) as client:
        assert client.response.headers["Sec-WebSocket-Extensions"] == "permessage-deflate"
        conn, _ = await connections.next("connection")
        assert conn.extensions == "permessage-deflate"
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
async def test_websockets_client_offers_each_parameter(
    make_server: Any, offer: dict[str, Any], response: str
) -> None:
    wss = echo(await make_server(per_message_deflate=True))
    connections = Recorder(wss, "connection")
    factory = ClientPerMessageDeflateFactory(**offer)
    async with connect_ws(wss, extensions=[factory], max_size=None) as client:
        assert client.response.headers["Sec-WebSocket-Extensions"] == response
        (extension,) = client.protocol.extensions
        codec = await codec_of(connections)
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
async def test_server_settings_with_websockets_client(
    make_server: Any, settings: dict[str, Any], response: str
) -> None:
    wss = echo(await make_server(per_message_deflate=settings))
    connections = Recorder(wss, "connection")
    async with connect_ws(wss, compression="deflate", max_size=None) as client:
        assert client.response.headers["Sec-WebSocket-Extensions"] == response
        codec = await codec_of(connections)
        flags = record_rsv1(client)
        await round_trip(client)
        assert sum(flags) == 6
        if codec.server_no_context_takeover:
            assert codec._compressor is None  # released after each message
        if codec.client_no_context_takeover:
            assert codec._decompressor is None


async def test_client_that_cannot_limit_its_window_is_declined(make_server: Any) -> None:
    """With clientMaxWindowBits set, an offer without client_max_window_bits
    cannot be accepted (RFC 7692 7.1.2.2; ws does the same): no compression."""
    wss = echo(await make_server(per_message_deflate={"clientMaxWindowBits": 10}))
    factory = ClientPerMessageDeflateFactory(client_max_window_bits=None)
    async with connect_ws(wss, extensions=[factory]) as client:
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
async def test_aiohttp_client(make_server: Any, compress: int, settings: Any, response: str) -> None:
    wss = echo(await make_server(per_message_deflate=settings))
    connections = Recorder(wss, "connection")
    async with (
        aiohttp.ClientSession() as session,
        session.ws_connect(url(wss), compress=compress, max_msg_size=0) as client,
    ):
        assert client._response.headers["Sec-WebSocket-Extensions"] == response
        # aiohttp compresses with the client_max_window_bits of the response
        assert client.compress == (11 if "client_max_window_bits=11" in response else 15)
        await codec_of(connections)
        for message in messages():
            if isinstance(message, str):
                await client.send_str(message)
            else:
                await client.send_bytes(message)
            reply = await client.receive(timeout=5)
            assert reply.data == message


async def test_aiohttp_client_without_compression_gets_none(make_server: Any) -> None:
    wss = echo(await make_server(per_message_deflate=True))
    connections = Recorder(wss, "connection")
    async with aiohttp.ClientSession() as session, session.ws_connect(url(wss), compress=0) as client:
        assert "Sec-WebSocket-Extensions" not in client._response.headers
        await client.send_str("x" * 5000)
        assert (await client.receive(timeout=5)).data == "x" * 5000
        conn, _ = await connections.next("connection")
        assert conn._proto.deflate is None


async def test_send_compress_overrides_the_threshold(make_server: Any) -> None:
    wss = await make_server(per_message_deflate={"threshold": 100})
    connections = Recorder(wss, "connection")
    async with connect_ws(wss, compression="deflate") as client:
        flags = record_rsv1(client)
        conn, _ = await connections.next("connection")
        conn.send("a" * 99)
        conn.send("a" * 100)
        conn.send("small but compressed", compress=True)
        conn.send(b"b" * 5000, compress=False)
        conn.send(b"c" * 5000, compress=None)
        received = [await wait(client.recv()) for _ in range(5)]
        assert received == ["a" * 99, "a" * 100, "small but compressed", b"b" * 5000, b"c" * 5000]
        assert flags == [False, True, True, False, True]


async def test_send_from_another_thread_is_compressed_in_order(make_server: Any) -> None:
    wss = await make_server(per_message_deflate=True)
    connections = Recorder(wss, "connection")
    async with connect_ws(wss, compression="deflate") as client:
        flags = record_rsv1(client)
        conn, _ = await connections.next("connection")
        sent = [f"message {i} " * 200 for i in range(20)]

        def send_all() -> None:
            for message in sent:
                conn.send(message)

        await asyncio.to_thread(send_all)
        assert [await wait(client.recv()) for _ in sent] == sent
        assert all(flags)


async def test_broadcast_on_deflate_connections_is_uncompressed(make_server: Any) -> None:
    wss = echo(await make_server(per_message_deflate=True))
    connections = Recorder(wss, "connection")
    async with (
        connect_ws(wss, compression="deflate") as first,
        connect_ws(wss, compression=None) as second,
    ):
        await connections.next("connection")
        await connections.next("connection")
        flags = record_rsv1(first)
        assert wss.broadcast("x" * 5000) == 2
        assert await wait(first.recv()) == "x" * 5000
        assert await wait(second.recv()) == "x" * 5000
        assert flags == [False]


async def test_max_payload_counts_decompressed_bytes(make_server: Any) -> None:
    wss = echo(await make_server(per_message_deflate=True, max_payload=64 * 1024))
    connections = Recorder(wss, "connection")
    async with connect_ws(wss, compression="deflate", max_size=None) as client:
        conn, _ = await connections.next("connection")
        errors = Recorder(conn, "error")
        await client.send(bytes(64 * 1024))  # at the limit: fine
        assert await wait(client.recv()) == bytes(64 * 1024)
        await client.send(bytes(1024 * 1024))  # ~1 KiB on the wire, 1 MiB inflated
        assert await close_code_of(client) == 1009
        (error,) = await errors.next("error")
        assert isinstance(error, ws.PayloadTooBig)


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
async def test_offers_on_the_wire(
    make_server: Any, raw: Any, extensions: list[str], response: str | None
) -> None:
    """Unacceptable offers are declined (the handshake still succeeds)."""
    wss = await make_server(per_message_deflate=True)
    client = await raw(wss)
    answer = await client.handshake(headers=[("Sec-WebSocket-Extensions", value) for value in extensions])
    assert answer.status == 101
    assert answer.header("Sec-WebSocket-Extensions") == response


async def test_compressed_frame_longer_than_the_bound_is_refused_at_its_header(
    make_server: Any, raw: Any
) -> None:
    """maxPayload counts inflated bytes, but compressed bytes are bounded too:
    a compressed frame longer than deflate's worst case for maxPayload is
    refused (1009) on its header, before its payload is buffered."""
    wss = await make_server(per_message_deflate=True, max_payload=1 << 20)
    client = await raw(wss)
    answer = await client.handshake(headers=[("Sec-WebSocket-Extensions", "permessage-deflate")])
    assert answer.header("Sec-WebSocket-Extensions") == "permessage-deflate"
    announced = max_compressed_size(1 << 20, 1) + 1
    client.send_frame(OP_BINARY, bytes(1000), rsv=RSV1, length=announced)
    assert (await client.read_close()).close_code == 1009


async def test_option_spellings_and_errors(make_server: Any) -> None:
    for options in (
        {"perMessageDeflate": {"serverNoContextTakeover": True, "memLevel": 4, "threshold": 0}},
        {"per_message_deflate": {"server_no_context_takeover": True, "mem_level": 4, "threshold": 0}},
    ):
        wss = await make_server(options)
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


async def test_cli_flag_turns_it_on(make_server: Any) -> None:
    from wsserver.cli import build_parser, server_options

    options = server_options(build_parser().parse_args(["--per-message-deflate", "--port", "0"]))
    wss = echo(await make_server({**options, "host": "127.0.0.1"}))
    async with connect_ws(wss, compression="deflate") as client:
        assert client.response.headers["Sec-WebSocket-Extensions"] == "permessage-deflate"
        await round_trip(client)


async def test_many_messages_keep_context_in_step(make_server: Any) -> None:
    """A long conversation with context takeover both ways stays decodable."""
    rng = random.Random(3)
    words = [rng.randbytes(rng.randrange(3, 9)).hex() for _ in range(200)]
    wss = echo(await make_server(per_message_deflate={"threshold": 0}))
    async with connect_ws(wss, compression="deflate", max_size=None) as client:
        for _ in range(200):
            message = " ".join(rng.choices(words, k=rng.randrange(0, 400)))
            await client.send(message)
            assert await wait(client.recv()) == message
        await client.send(rng.randbytes(100_000))
        assert len(await wait(client.recv())) == 100_000
