"""``python -m wsserver`` with no application: the demo (page, echo, chat), metrics, --help."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from serverproc import ServerProcess, child_env, running

TIMEOUT = 10


@pytest.fixture(scope="module")
def demo() -> Iterator[ServerProcess]:
    with running(["-m", "wsserver", "--host", "127.0.0.1", "--port", "0", "--metrics-path", "/metrics"]) as server:
        yield server


def http_get(port: int, path: str) -> tuple[int, dict[str, str], bytes]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=TIMEOUT) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


def test_help_lists_every_flag() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "wsserver", "--help"], env=child_env(), capture_output=True, text=True, timeout=30
    )
    assert result.returncode == 0
    for flag in (
        "module:setup", "--host", "--port", "--path", "--workers", "--broker", "--max-payload", "--backlog",
        "--per-message-deflate", "--ssl-certfile", "--ssl-keyfile", "--log-level", "--metrics-path",
    ):
        assert flag in result.stdout
    assert "demo" in result.stdout


def test_ready_line_shows_the_page_address(demo: ServerProcess) -> None:
    assert f"http://127.0.0.1:{demo.port}/" in demo.text()


def test_page_is_served_at_root(demo: ServerProcess) -> None:
    status, headers, body = http_get(demo.port, "/")
    assert status == 200
    assert headers["Content-Type"] == "text/html; charset=utf-8"
    assert b"<title>wsserver demo</title>" in body
    assert b'new WebSocket(base + "/echo")' in body


def test_plain_http_elsewhere_gets_426(demo: ServerProcess) -> None:
    status, headers, _ = http_get(demo.port, "/echo")
    assert status == 426
    assert headers["Upgrade"] == "websocket"


def test_metrics_endpoint_counts_traffic(demo: ServerProcess) -> None:
    async def exchange() -> None:
        async with connect(f"ws://127.0.0.1:{demo.port}/metrics-probe", open_timeout=TIMEOUT) as ws:
            await ws.send("x")
            assert await asyncio.wait_for(ws.recv(), TIMEOUT) == "x"

    asyncio.run(exchange())
    status, headers, body = http_get(demo.port, "/metrics")
    assert status == 200
    assert headers["Content-Type"].startswith("text/plain; version=0.0.4")
    metrics = {
        line.split(" ")[0]: float(line.split(" ")[1])
        for line in body.decode().splitlines()
        if line and not line.startswith("#")
    }
    assert metrics["wsserver_connections_total"] >= 1
    assert metrics["wsserver_messages_received_total"] >= 1
    assert metrics["wsserver_messages_sent_total"] >= 1
    assert metrics['wsserver_closes_total{code="1000"}'] >= 1


async def test_every_path_but_chat_echoes(demo: ServerProcess) -> None:
    for path in ("/", "/echo", "/anything/else?x=1"):
        async with connect(f"ws://127.0.0.1:{demo.port}{path}", open_timeout=TIMEOUT) as ws:
            await ws.send("héllo")
            assert await asyncio.wait_for(ws.recv(), TIMEOUT) == "héllo"
            await ws.send(b"\x00\x01\xff")
            assert await asyncio.wait_for(ws.recv(), TIMEOUT) == b"\x00\x01\xff"


async def next_event(ws: ClientConnection, *names: str) -> dict[str, object]:
    """The next chat event about one of ``names`` (any name if none given).

    The demo server is shared by the tests of this module: a member of an
    earlier test may still be leaving when the next test joins."""
    for _ in range(20):
        event = json.loads(await asyncio.wait_for(ws.recv(), TIMEOUT))
        assert isinstance(event, dict)
        if not names or event["name"] in names:
            return event
    raise AssertionError(f"no event about {names}")


async def test_chat_relays_to_every_member(demo: ServerProcess) -> None:
    url = f"ws://127.0.0.1:{demo.port}/chat"
    async with connect(url + "?name=ada", open_timeout=TIMEOUT) as ada:
        assert await next_event(ada, "ada") == {"type": "join", "name": "ada", "online": 1}
        async with connect(url + "?name=grace", open_timeout=TIMEOUT) as grace:
            assert await next_event(ada, "grace") == {"type": "join", "name": "grace", "online": 2}
            assert await next_event(grace, "grace") == {"type": "join", "name": "grace", "online": 2}
            await grace.send("hi ada")
            expected = {"type": "message", "name": "grace", "text": "hi ada"}
            assert await next_event(ada, "grace") == expected
            assert await next_event(grace, "grace") == expected
        assert await next_event(ada, "grace") == {"type": "leave", "name": "grace", "online": 1}


async def test_chat_without_name_gets_a_guest_name(demo: ServerProcess) -> None:
    async with connect(f"ws://127.0.0.1:{demo.port}/chat", open_timeout=TIMEOUT) as ws:
        event = await next_event(ws)
        while event["type"] != "join":  # a member of an earlier test leaving
            event = await next_event(ws)
        assert str(event["name"]).startswith("guest-")


async def test_chat_refuses_binary_with_1003(demo: ServerProcess) -> None:
    async with connect(f"ws://127.0.0.1:{demo.port}/chat?name=bin", open_timeout=TIMEOUT) as ws:
        await next_event(ws, "bin")
        await ws.send(b"\x01")
        with pytest.raises(ConnectionClosed):
            await asyncio.wait_for(ws.recv(), TIMEOUT)
        assert ws.close_code == 1003


async def test_chat_refuses_oversized_messages_with_1009(demo: ServerProcess) -> None:
    async with connect(f"ws://127.0.0.1:{demo.port}/chat?name=long", open_timeout=TIMEOUT) as ws:
        await next_event(ws, "long")
        await ws.send("x" * 4096)  # the longest allowed
        assert (await next_event(ws, "long"))["text"] == "x" * 4096
        await ws.send("x" * 4097)
        with pytest.raises(ConnectionClosed):
            await asyncio.wait_for(ws.recv(), TIMEOUT)
        assert ws.close_code == 1009
