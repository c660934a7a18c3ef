"""acceptHandler: the SPEC section 1 semantics, sync and async, 1 or 2 arguments."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import pytest
import websockets

import wsserver
from helpers import Recorder, connect_ws, echo, url, wait
from rawclient import build_frame, upgrade_request


async def refused_status(wss: wsserver.Server, **options: Any) -> int:
    with pytest.raises(websockets.InvalidStatus) as refused:
        async with connect_ws(wss, **options):
            pass
    return refused.value.response.status_code


@pytest.mark.parametrize("spelling", ["acceptHandler", "accept_handler"])
async def test_returning_an_offered_protocol_selects_it(make_server: Any, spelling: str) -> None:
    seen: list[list[str]] = []

    def handler(protocols: list[str]) -> str:
        seen.append(list(protocols))
        return "superchat"

    wss = await make_server({spelling: handler})
    connections = Recorder(wss, "connection")
    async with connect_ws(wss, subprotocols=["chat", "superchat"]) as client:
        assert client.subprotocol == "superchat"
        conn, _request = await connections.next("connection")
        assert conn.protocol == "superchat"
    assert seen == [["chat", "superchat"]]


async def test_true_accepts_without_a_protocol(make_server: Any) -> None:
    wss = echo(await make_server(acceptHandler=lambda protocols: True))
    connections = Recorder(wss, "connection")
    async with connect_ws(wss, subprotocols=["chat"]) as client:
        assert client.subprotocol is None
        conn, _request = await connections.next("connection")
        assert conn.protocol is None
        await client.send("ok")
        assert await wait(client.recv()) == "ok"


async def test_true_accepts_a_client_that_offers_no_protocol(make_server: Any) -> None:
    wss = echo(await make_server(acceptHandler=lambda protocols: True))
    async with connect_ws(wss) as client:
        assert client.subprotocol is None


@pytest.mark.parametrize("answer", [False, None])
async def test_false_or_none_refuses_with_401(make_server: Any, answer: Any) -> None:
    wss = await make_server(acceptHandler=lambda protocols: answer)
    errors = Recorder(wss, "error")
    assert await refused_status(wss, subprotocols=["chat"]) == 401
    assert wss.refused[401] == 1
    assert errors.count("error") == 0


async def test_a_string_the_client_did_not_offer_is_500_and_a_server_error(make_server: Any) -> None:
    wss = await make_server(acceptHandler=lambda protocols: "not-offered")
    errors = Recorder(wss, "error")
    assert await refused_status(wss, subprotocols=["chat"]) == 500
    (error,) = await errors.next("error")
    assert isinstance(error, ValueError)
    assert "not-offered" in str(error)


async def test_a_string_when_nothing_was_offered_is_500(make_server: Any) -> None:
    wss = await make_server(acceptHandler=lambda protocols: "chat")
    errors = Recorder(wss, "error")
    assert await refused_status(wss) == 500
    await errors.next("error")


async def test_a_raising_handler_is_500_and_a_server_error(make_server: Any, caplog: pytest.LogCaptureFixture) -> None:
    def handler(protocols: list[str]) -> str:
        raise RuntimeError("handler bug")

    wss = await make_server(acceptHandler=handler)
    errors = Recorder(wss, "error")
    assert await refused_status(wss, subprotocols=["chat"]) == 500
    (error,) = await errors.next("error")
    assert isinstance(error, RuntimeError) and str(error) == "handler bug"
    assert "handler bug" in caplog.text
    # the server still serves
    wss.options.accept_handler = lambda protocols: True
    async with connect_ws(wss):
        pass


async def test_a_result_of_the_wrong_type_is_500(make_server: Any) -> None:
    wss = await make_server(acceptHandler=lambda protocols: 42)
    errors = Recorder(wss, "error")
    assert await refused_status(wss, subprotocols=["chat"]) == 500
    (error,) = await errors.next("error")
    assert isinstance(error, TypeError)


@pytest.mark.parametrize(("answer", "expected"), [("b", "b"), (True, None), (False, 401), (None, 401), ("zzz", 500)])
async def test_async_handler(make_server: Any, answer: Any, expected: Any) -> None:
    async def handler(protocols: list[str]) -> Any:
        await asyncio.sleep(0.01)
        return answer

    wss = echo(await make_server(acceptHandler=handler))
    if isinstance(expected, int):
        assert await refused_status(wss, subprotocols=["a", "b"]) == expected
        return
    async with connect_ws(wss, subprotocols=["a", "b"]) as client:
        assert client.subprotocol == expected
        await client.send("after async accept")
        assert await wait(client.recv()) == "after async accept"


async def test_async_raising_handler_is_500_and_a_server_error(make_server: Any) -> None:
    async def handler(protocols: list[str]) -> str:
        await asyncio.sleep(0)
        raise LookupError("async handler bug")

    wss = await make_server(acceptHandler=handler)
    errors = Recorder(wss, "error")
    assert await refused_status(wss) == 500
    (error,) = await errors.next("error")
    assert isinstance(error, LookupError)


async def test_two_argument_handler_receives_the_request(make_server: Any) -> None:
    requests: list[wsserver.Request] = []

    def handler(protocols: list[str], request: wsserver.Request) -> bool:
        requests.append(request)
        return request.query == "token=good"

    wss = await make_server(acceptHandler=handler)
    async with connect_ws(wss, "/room?token=good", additional_headers={"X-Client": "tests"}):
        pass
    assert await refused_status(wss) == 401
    first = requests[0]
    assert first.method == "GET"
    assert first.path == "/room" and first.query == "token=good"
    assert first.headers["x-client"] == "tests"
    assert first.remote_address is not None and first.remote_address[0] == "127.0.0.1"


async def test_frames_sent_while_an_async_handler_decides_are_processed_after(make_server: Any, raw: Any) -> None:
    release = asyncio.Event()
    called = asyncio.Event()

    async def handler(protocols: list[str]) -> bool:
        called.set()
        await wait(release.wait())
        return True

    wss = echo(await make_server(acceptHandler=handler))
    client = await raw(wss)
    client.send(upgrade_request() + build_frame(0x1, "behind the request"))
    await wait(called.wait())
    client.send_frame(0x1, "while deciding")
    await asyncio.sleep(0.05)
    release.set()
    assert (await client.read_head()).status == 101
    assert (await client.read_frame()).payload == b"behind the request"
    assert (await client.read_frame()).payload == b"while deciding"


async def test_default_without_handler_selects_the_first_offered_protocol(make_server: Any) -> None:
    wss = await make_server()
    async with connect_ws(wss, subprotocols=["first", "second"]) as client:
        assert client.subprotocol == "first"
    async with connect_ws(wss) as client:
        assert client.subprotocol is None


async def test_aiohttp_client_sees_the_selected_protocol(make_server: Any) -> None:
    wss = echo(await make_server(acceptHandler=lambda protocols: protocols[-1]))
    async with aiohttp.ClientSession() as session:
        async with session.ws_connect(url(wss), protocols=("v1", "v2")) as client:
            assert client.protocol == "v2"
            await client.send_str("aiohttp")
            assert await wait(client.receive_str()) == "aiohttp"
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            async with session.ws_connect(url(wss)):
                pass
        assert refused.value.status == 500
