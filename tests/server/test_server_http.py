"""The HTTP phase through real sockets: every refusal's status, path, httpHandler."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import pytest

import wsserver
from helpers import Recorder, connect_ws, echo, wait
from rawclient import SAMPLE_WS_KEY, build_frame, upgrade_request


async def respond(wss: wsserver.Server, raw: Any, request: bytes) -> Any:
    client = await raw(wss)
    client.send(request)
    response = await client.read_response()
    assert await client.read_until_eof() == b""  # the server closes after a refusal
    return response


async def test_valid_handshake_gets_101_with_the_accept_key(make_server: Any, raw: Any) -> None:
    wss = await make_server()
    client = await raw(wss)
    response = await client.handshake()
    assert response.status == 101
    assert response.header("Sec-WebSocket-Accept") == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
    assert response.header("Upgrade").lower() == "websocket"
    assert response.header("Connection").lower() == "upgrade"
    assert response.header("Sec-WebSocket-Protocol") is None


@pytest.mark.parametrize(
    ("request_bytes", "status"),
    [
        (upgrade_request(method="POST"), 405),
        (upgrade_request(method="PUT"), 405),
        (upgrade_request(key="short"), 400),
        (upgrade_request(key="dGhlIHNhbXBsZSBub25j"), 400),
        (upgrade_request(omit=("Sec-WebSocket-Key",)), 400),
        (upgrade_request(omit=("Host",)), 400),
        (upgrade_request(omit=("Upgrade",), headers=[("Upgrade", "h2c")]), 400),
        (upgrade_request(omit=("Sec-WebSocket-Version",), headers=[("Sec-WebSocket-Version", "8")]), 426),
        (upgrade_request(omit=("Sec-WebSocket-Version",)), 426),
        (upgrade_request(version="HTTP/1.0"), 400),
        (b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", 426),
        (b"GET /index.html HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n\r\n", 426),
        (b"NOT HTTP AT ALL\r\n\r\n", 400),
        (b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + b"\x00" * 64, 400),  # a TLS hello
        (upgrade_request(headers=[("X-Big", "a" * 20000)]), 431),
        (upgrade_request(headers=[(f"X-H{i}", "v") for i in range(200)]), 431),
        (upgrade_request("/" + "p" * 20000), 414),
        (upgrade_request(key="\xe9" * 24), 400),
        (upgrade_request(headers=[("Bad Header Name", "x")]), 400),
        (upgrade_request().replace(b"GET / ", b"GET /\x00 "), 400),
        (upgrade_request(omit=("Sec-WebSocket-Version",), headers=[("Sec-WebSocket-Version", "\xb913")]), 426),
    ],
    ids=[
        "POST",
        "PUT",
        "short-key",
        "15-byte-key",
        "no-key",
        "no-host",
        "bad-upgrade",
        "version-8",
        "no-version",
        "http-1.0",
        "plain-http",
        "upgrade-without-connection",
        "garbage",
        "tls-hello",
        "huge-header",
        "many-headers",
        "huge-target",
        "non-ascii-key",
        "bad-header-name",
        "nul-in-target",
        "non-ascii-version",
    ],
)
async def test_bad_handshakes_get_the_right_status(make_server: Any, raw: Any, request_bytes: bytes, status: int) -> None:
    wss = await make_server()
    connections = Recorder(wss, "connection")
    response = await respond(wss, raw, request_bytes)
    assert response.status == status
    assert wss.refused[status] == 1
    assert connections.count("connection") == 0
    if status == 426:
        assert response.header("Sec-WebSocket-Version") == "13"
    if status == 405:
        assert response.header("Allow") == "GET"


async def test_huge_header_trickled_in_is_431(make_server: Any, raw: Any) -> None:
    wss = await make_server(maxHeaderSize=2048)
    client = await raw(wss)
    start = b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: "
    client.send(start)
    for _ in range((2048 - len(start)) // 100):  # up to just under the limit, read by read
        client.send(b"a" * 100)
        await client.writer.drain()
        await asyncio.sleep(0.005)
    client.send(b"a" * 100)  # this one crosses it
    response = await client.read_response()
    assert response.status == 431


async def test_wrong_path_is_404(make_server: Any, raw: Any) -> None:
    wss = echo(await make_server(path="/ws"))
    response = await respond(wss, raw, upgrade_request("/other"))
    assert response.status == 404
    async with connect_ws(wss, "/ws?query=ok") as client:
        await client.send("right path")
        assert await wait(client.recv()) == "right path"


async def test_handshake_timeout_is_408(make_server: Any, raw: Any) -> None:
    wss = await make_server(handshakeTimeout=0.2)
    client = await raw(wss)
    client.send(b"GET / HTTP/1.1\r\n")  # and nothing more
    response = await client.read_response()
    assert response.status == 408
    assert await client.read_until_eof() == b""
    assert wss.refused[408] == 1


async def test_handshake_timeout_does_not_touch_open_connections(make_server: Any) -> None:
    wss = echo(await make_server(handshake_timeout=0.5))
    async with connect_ws(wss) as client:
        await asyncio.sleep(0.7)
        await client.send("still open")
        assert await wait(client.recv()) == "still open"


async def test_data_right_behind_the_handshake_is_processed(make_server: Any, raw: Any) -> None:
    wss = echo(await make_server())
    client = await raw(wss)
    frames = build_frame(0x1, "first") + build_frame(0x2, b"second") + build_frame(0x9, b"ping")
    response = await client.handshake(extra=frames)
    assert response.status == 101
    assert [(f.opcode, f.payload) for f in [await client.read_frame() for _ in range(3)]] == [
        (0x1, b"first"),
        (0x2, b"second"),
        (0xA, b"ping"),
    ]


async def test_handshake_split_into_single_bytes(make_server: Any, raw: Any) -> None:
    wss = echo(await make_server())
    client = await raw(wss)
    for byte in upgrade_request():
        client.send(bytes((byte,)))
        await client.writer.drain()
    assert (await client.read_head()).status == 101
    client.send_frame(0x1, "trickled")
    assert (await client.read_frame()).payload == b"trickled"


async def test_key_is_accepted_with_surrounding_whitespace(make_server: Any, raw: Any) -> None:
    wss = await make_server()
    client = await raw(wss)
    response = await client.handshake(omit=("Sec-WebSocket-Key",), headers=[("Sec-WebSocket-Key", f"  {SAMPLE_WS_KEY} ")])
    assert response.status == 101


@pytest.mark.parametrize("kind", ["response", "tuple2", "tuple3", "async", "none"])
async def test_http_handler(make_server: Any, raw: Any, kind: str) -> None:
    seen: list[wsserver.Request] = []

    def handler(request: wsserver.Request) -> Any:
        seen.append(request)
        if kind == "response":
            return wsserver.HTTPResponse(200, "<h1>hi</h1>", [("X-Served-By", "test")], "text/html")
        if kind == "tuple2":
            return (201, "created")
        if kind == "tuple3":
            return (202, {"X-Served-By": "tuple"}, b"accepted")
        return None

    async def async_handler(request: wsserver.Request) -> Any:
        await asyncio.sleep(0.01)
        seen.append(request)
        return wsserver.HTTPResponse(203, b"async body")

    wss = echo(await make_server(httpHandler=async_handler if kind == "async" else handler))
    response = await respond(wss, raw, b"GET /page?x=1 HTTP/1.1\r\nHost: h\r\n\r\n")
    assert seen[0].path == "/page" and seen[0].query == "x=1" and seen[0].method == "GET"
    expected = {
        "response": (200, b"<h1>hi</h1>"),
        "tuple2": (201, b"created"),
        "tuple3": (202, b"accepted"),
        "async": (203, b"async body"),
        "none": (426, None),
    }[kind]
    assert response.status == expected[0]
    if expected[1] is not None:
        assert response.body == expected[1]
    if kind == "response":
        assert response.header("Content-Type") == "text/html"
        assert response.header("X-Served-By") == "test"
    if kind == "tuple3":
        assert response.header("X-Served-By") == "tuple"
    # WebSocket upgrades still work next to the handler
    async with connect_ws(wss) as client:
        await client.send("ws")
        assert await wait(client.recv()) == "ws"


@pytest.mark.parametrize("failure", ["raise", "bad-type", "async-raise"])
async def test_http_handler_failure_is_500_and_a_server_error(make_server: Any, raw: Any, failure: str) -> None:
    def handler(request: wsserver.Request) -> Any:
        if failure == "raise":
            raise RuntimeError("http handler bug")
        return 12345

    async def async_handler(request: wsserver.Request) -> Any:
        raise RuntimeError("async http handler bug")

    wss = await make_server(http_handler=async_handler if failure == "async-raise" else handler)
    errors = Recorder(wss, "error")
    response = await respond(wss, raw, b"GET / HTTP/1.1\r\nHost: h\r\n\r\n")
    assert response.status == 500
    (error,) = await errors.next("error")
    assert isinstance(error, (RuntimeError, TypeError))


async def test_aiohttp_plain_get(make_server: Any) -> None:
    wss = await make_server(httpHandler=lambda request: (200, f"path={request.path}"))
    async with aiohttp.ClientSession() as session, session.get(f"http://127.0.0.1:{wss.port}/hello") as response:
        assert response.status == 200
        assert await response.text() == "path=/hello"


async def test_aiohttp_plain_get_without_handler_is_426(make_server: Any) -> None:
    wss = await make_server()
    async with aiohttp.ClientSession() as session, session.get(f"http://127.0.0.1:{wss.port}/") as response:
        assert response.status == 426
        assert response.headers["Sec-WebSocket-Version"] == "13"


@pytest.mark.parametrize(
    ("upgrade", "connection"),
    [("websocket", "keep-alive, Upgrade"), ("WebSocket", "Upgrade"), ("websocket", "upgrade,keep-alive"), ("WEBSOCKET", "UPGRADE")],
)
async def test_browser_style_upgrade_headers_are_accepted(make_server: Any, raw: Any, upgrade: str, connection: str) -> None:
    wss = echo(await make_server())
    client = await raw(wss)
    response = await client.handshake(omit=("Upgrade", "Connection"), headers=[("Upgrade", upgrade), ("Connection", connection)])
    assert response.status == 101
    client.send_frame(0x1, "firefox says hi")
    assert (await client.read_frame()).payload == b"firefox says hi"
