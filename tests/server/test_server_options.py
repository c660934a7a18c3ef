"""Server options: both spellings, port 0, backlog, clientTracking, maxPayload."""

from __future__ import annotations

import asyncio
import dataclasses
import ssl
from collections.abc import Iterator
from typing import Any

import pytest
import websockets

import wsserver
from helpers import Recorder, close_code_of, connect_ws, echo, wait
from rawclient import random_key
from wsserver.server import take_unstarted


def camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


SAMPLE_VALUES: dict[str, Any] = {
    "port": 1234,
    "host": "127.0.0.1",
    "backlog": 7,
    "client_tracking": False,
    "max_payload": 1024,
    "accept_handler": lambda protocols: True,
    "per_message_deflate": True,
    "path": "/ws",
    "ssl": ssl.create_default_context(ssl.Purpose.CLIENT_AUTH),
    "http_handler": lambda request: None,
    "auto_pong": False,
    "ping_interval": 3.5,
    "ping_timeout": 4.5,
    "close_timeout": 1.5,
    "handshake_timeout": 2.5,
    "max_header_size": 2048,
    "max_headers": 16,
    "max_fragments": 9,
    "max_buffered_amount": 4096,
    "reuse_port": True,
    "broker": "redis://127.0.0.1:6379",
}


@pytest.fixture
def unstarted() -> Iterator[None]:
    """Servers built outside an event loop are queued for run(); drop them."""
    yield
    take_unstarted()


def sample_value(option: dataclasses.Field[Any]) -> Any:
    """A value for ``option`` that differs from its default where we know one."""
    if option.name in SAMPLE_VALUES:
        return SAMPLE_VALUES[option.name]
    return option.default if option.default is not dataclasses.MISSING else option.default_factory()  # type: ignore[misc]


OPTIONS = {option.name: option for option in dataclasses.fields(wsserver.ServerOptions)}


def test_the_seed_options_exist() -> None:
    assert {"port", "backlog", "client_tracking", "max_payload", "accept_handler"} <= set(OPTIONS)


@pytest.mark.parametrize("name", sorted(OPTIONS))
@pytest.mark.parametrize("spelling", ["camel-dict", "snake-dict", "camel-keyword", "snake-keyword"])
def test_every_option_in_both_spellings(name: str, spelling: str, unstarted: None) -> None:
    value = sample_value(OPTIONS[name])
    key = camel(name) if spelling.startswith("camel") else name
    options = {"port": 0, key: value} if name != "port" else {key: value}
    server = wsserver.Server(options) if spelling.endswith("dict") else wsserver.Server(**options)
    assert getattr(server.options, name) == value


def test_spellings_mix_in_one_call(unstarted: None) -> None:
    handler = SAMPLE_VALUES["accept_handler"]
    server = wsserver.Server({"port": 0, "maxPayload": 10, "client_tracking": False}, acceptHandler=handler, max_fragments=3)
    assert server.options.max_payload == 10
    assert server.options.client_tracking is False
    assert server.options.accept_handler is handler
    assert server.options.max_fragments == 3


@pytest.mark.parametrize("bad", [{"maxPayLoad": 1}, {"max_paylod": 1}, {"verbose": True}, {"Port": 1}])
def test_unknown_option_is_a_type_error(bad: dict[str, Any], unstarted: None) -> None:
    with pytest.raises(TypeError):
        wsserver.Server({"port": 0, **bad})
    with pytest.raises(TypeError):
        wsserver.Server(port=0, **bad)


def test_same_option_twice_with_different_values_is_a_type_error(unstarted: None) -> None:
    with pytest.raises(TypeError):
        wsserver.Server({"port": 0, "maxPayload": 10}, max_payload=20)


def test_port_is_required(unstarted: None) -> None:
    with pytest.raises(TypeError):
        wsserver.Server({})


@pytest.mark.parametrize(
    "bad",
    [{"port": -1}, {"port": 65536}, {"port": "80"}, {"backlog": 0}, {"maxPayload": 0}, {"closeTimeout": 0}, {"pingInterval": -1}, {"maxHeaders": 0}],
)
def test_invalid_values_are_value_errors(bad: dict[str, Any], unstarted: None) -> None:
    with pytest.raises(ValueError):
        wsserver.Server({"port": 0, **bad})


def test_uncallable_handlers_are_type_errors(unstarted: None) -> None:
    with pytest.raises(TypeError):
        wsserver.Server(port=0, accept_handler="chat")
    with pytest.raises(TypeError):
        wsserver.Server(port=0, http_handler=42)


async def test_port_zero_picks_a_free_port_and_address_tells(make_server: Any) -> None:
    wss = echo(await make_server({"port": 0, "host": "127.0.0.1"}))
    host, port = wss.address
    assert host == "127.0.0.1" and port > 0 and wss.port == port
    async with connect_ws(wss) as client:
        await client.send("hi")
        assert await wait(client.recv()) == "hi"


async def test_default_host_listens_on_ipv4_loopback(make_server: Any) -> None:
    wss = echo(await make_server(port=0, host=None))
    assert wss.port
    async with connect_ws(wss) as client:
        await client.send("dual stack")
        assert await wait(client.recv()) == "dual stack"


async def test_bind_error_is_raised_by_start(make_server: Any) -> None:
    first = await make_server(port=0)
    second = wsserver.Server(port=first.port, host="127.0.0.1")
    errors = Recorder(second, "error")
    try:
        with pytest.raises(OSError):
            await wait(second.start())
        (error,) = await errors.next("error")
        assert isinstance(error, OSError)
    finally:
        await wait(second.close())


@pytest.mark.parametrize("as_dict", [True, False])
async def test_backlog_refuses_connections_over_the_limit_with_503(make_server: Any, raw: Any, as_dict: bool) -> None:
    wss = echo(await (make_server({"backlog": 2}) if as_dict else make_server(backlog=2)))
    async with connect_ws(wss) as first, connect_ws(wss) as second:
        extra = await raw(wss)
        response = await extra.handshake(key=random_key())
        assert response.status == 503
        assert wss.refused[503] == 1
        with pytest.raises(websockets.InvalidStatus) as refused:
            async with connect_ws(wss):
                pass
        assert refused.value.response.status_code == 503
        assert wss.refused[503] == 2
        # the connections within the limit are untouched
        await first.send("one")
        await second.send("two")
        assert await wait(first.recv()) == "one"
        assert await wait(second.recv()) == "two"
    # once they are gone, there is room again
    for _ in range(100):
        if not wss.clients:
            break
        await asyncio.sleep(0.01)
    async with connect_ws(wss) as third:
        await third.send("three")
        assert await wait(third.recv()) == "three"


async def test_backlog_counts_connections_still_in_their_handshake(make_server: Any, raw: Any) -> None:
    wss = await make_server(backlog=1)
    idle = await raw(wss)  # connected, handshake not sent yet
    idle.send(b"GET / HTTP/1.1\r\n")
    refused = await raw(wss)
    assert (await refused.handshake(key=random_key())).status == 503


@pytest.mark.parametrize("options", [{"clientTracking": True}, {"client_tracking": True}, {}])
async def test_client_tracking_lists_open_connections(make_server: Any, options: dict[str, Any]) -> None:
    wss = await make_server(options)
    events = Recorder(wss, "connection")
    assert wss.clients == set()
    async with connect_ws(wss) as first:
        (conn_1, _) = await events.next("connection")
        closed_1 = Recorder(conn_1, "close")
        async with connect_ws(wss):
            (conn_2, _) = await events.next("connection")
            closed_2 = Recorder(conn_2, "close")
            assert wss.clients == {conn_1, conn_2}
        await closed_2.next("close")
        assert wss.clients == {conn_1}
        await first.close()
        await closed_1.next("close")
    assert wss.clients == set()


@pytest.mark.parametrize("options", [{"clientTracking": False}, {"client_tracking": False}])
async def test_client_tracking_off_gives_none(make_server: Any, options: dict[str, Any]) -> None:
    wss = echo(await make_server(options))
    async with connect_ws(wss) as client:
        await client.send("x")
        assert await wait(client.recv()) == "x"
        assert wss.clients is None


@pytest.mark.parametrize("spelling", ["camel", "snake"])
async def test_max_payload_closes_with_1009_and_emits_error(make_server: Any, spelling: str) -> None:
    wss = echo(await make_server({"maxPayload": 1024} if spelling == "camel" else {"max_payload": 1024}))
    events = Recorder(wss, "connection")
    async with connect_ws(wss) as other, connect_ws(wss) as client:
        await events.next("connection")  # other's
        conn, _request = await events.next("connection")
        conn_events = Recorder(conn, "error", "close")
        await client.send(b"x" * 1024)  # exactly the limit: fine
        assert await wait(client.recv()) == b"x" * 1024
        await client.send("y" * 1025)
        assert await close_code_of(client) == 1009
        (error,) = await conn_events.next("error")
        assert isinstance(error, wsserver.PayloadTooBig) and error.code == 1009
        code, _reason = await conn_events.next("close")
        assert code == 1009
        # other connections carry on
        await other.send("still here")
        assert await wait(other.recv()) == "still here"


async def test_max_payload_counts_fragments(make_server: Any) -> None:
    wss = echo(await make_server(maxPayload=100))
    async with connect_ws(wss) as client:
        await client.send(["a" * 60, "b" * 41])  # websockets sends a list as fragments
        assert await close_code_of(client) == 1009
