"""Every script in ``examples/`` runs as a user would run it, and does what it says.

Each one is started as ``python examples/NAME.py`` with ``PORT=0``, driven by
real clients, then stopped with Ctrl-C (SIGINT), after which it must exit 0.
"""

from __future__ import annotations

import asyncio
import json
import ssl
import subprocess
import urllib.error
import urllib.request
from contextlib import AbstractContextManager
from pathlib import Path

import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from serverproc import REPO, ServerProcess, running

TIMEOUT = 10
EXAMPLES = REPO / "examples"


def example(name: str, **env: str) -> AbstractContextManager[ServerProcess]:
    return running([str(EXAMPLES / name)], env={"PORT": "0", **env})


async def recv(client: ClientConnection) -> str | bytes:
    return await asyncio.wait_for(client.recv(), TIMEOUT)


def http_get(url: str, context: ssl.SSLContext | None = None) -> tuple[int, str, str]:
    try:
        with urllib.request.urlopen(url, timeout=TIMEOUT, context=context) as response:
            return response.status, response.headers["Content-Type"], response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.headers["Content-Type"], error.read().decode()


async def assert_exits_cleanly(server: ServerProcess) -> None:
    # in a thread: clients still open in this event loop must answer the server's close
    assert await asyncio.to_thread(server.stop) == 0, server.text()
    assert "Traceback" not in server.text()


def test_every_example_is_tested() -> None:
    tested = {"echo.py", "chat.py", "auth.py", "ticker.py", "tls.py", "healthz.py", "app.py"}
    assert {path.name for path in EXAMPLES.glob("*.py")} == tested


async def test_echo() -> None:
    with example("echo.py") as server:
        async with connect(f"ws://127.0.0.1:{server.port}/any", open_timeout=TIMEOUT) as client:
            await client.send("héllo")
            assert await recv(client) == "héllo"
            await client.send(b"\x00\xff")
            assert await recv(client) == b"\x00\xff"
        await assert_exits_cleanly(server)
        assert "connected to /any" in server.text()


async def test_chat() -> None:
    with example("chat.py") as server:
        url = f"ws://127.0.0.1:{server.port}/"
        async with connect(url + "?name=ada", open_timeout=TIMEOUT) as ada:
            assert await recv(ada) == "* welcome ada, 1 online"
            async with connect(url + "?name=grace", open_timeout=TIMEOUT) as grace:
                assert await recv(grace) == "* welcome grace, 2 online"
                assert await recv(ada) == "* grace joined (2 online)"
                await ada.send("hi grace")
                assert await recv(grace) == "ada: hi grace"
                await grace.send("hi ada")
                assert await recv(ada) == "grace: hi ada"  # and not its own message first
                await grace.send(b"\x01")
                with pytest.raises(ConnectionClosed):
                    await recv(grace)
                assert grace.close_code == 1003
            assert await recv(ada) == "* grace left"
        await assert_exits_cleanly(server)


async def test_auth() -> None:
    with example("auth.py") as server:
        url = f"ws://127.0.0.1:{server.port}/"
        for bad in (url, url + "?token=wrong"):
            with pytest.raises(InvalidStatus) as refused:
                await connect(bad, open_timeout=TIMEOUT)
            assert refused.value.response.status_code == 401
        async with connect(url + "?token=s3cret", subprotocols=["chat"], open_timeout=TIMEOUT) as ada:  # type: ignore[list-item]
            assert ada.subprotocol == "chat"
            assert await recv(ada) == "hello ada (subprotocol: chat)"
            await ada.send("hi")
            assert await recv(ada) == "ada said: hi"
        headers = {"Authorization": "Bearer hunter2"}
        async with connect(url, additional_headers=headers, open_timeout=TIMEOUT) as grace:
            assert await recv(grace) == "hello grace (subprotocol: None)"
        await assert_exits_cleanly(server)


async def test_ticker() -> None:
    with example("ticker.py", TICK_SECONDS="0.05") as server:
        url = f"ws://127.0.0.1:{server.port}/"
        async with connect(url, open_timeout=TIMEOUT) as first, connect(url, open_timeout=TIMEOUT) as second:
            ticks = [json.loads(await recv(first)) for _ in range(3)]
            assert [tick["seq"] for tick in ticks] == list(range(ticks[0]["seq"], ticks[0]["seq"] + 3))
            assert {tick["symbol"] for tick in ticks} == {"WSS"}
            # the second client gets the very same ticks
            seen_by_second = [json.loads(await recv(second)) for _ in range(6)]
            assert ticks[-1] in seen_by_second
            await assert_exits_cleanly(server)
            with pytest.raises(ConnectionClosed):  # the server closed it on the way out
                for _ in range(1000):
                    await recv(first)
            assert first.close_code == 1001


def make_certificate(directory: Path) -> tuple[Path, Path]:
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        [
            "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
            "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
            "-keyout", str(key), "-out", str(cert),
        ],
        check=True, capture_output=True, timeout=60,
    )
    return cert, key


async def test_tls(tmp_path: Path) -> None:
    cert, key = make_certificate(tmp_path)
    with example("tls.py", CERTFILE=str(cert), KEYFILE=str(key)) as server:
        assert f"wss://localhost:{server.port}" in server.text()
        trusting = ssl.create_default_context(cafile=str(cert))
        async with connect(f"wss://localhost:{server.port}/", ssl=trusting, open_timeout=TIMEOUT) as client:
            await client.send("over TLS")
            assert await recv(client) == "over TLS"
        with pytest.raises(ssl.SSLCertVerificationError):  # a client that does not trust it
            await connect(f"wss://localhost:{server.port}/", ssl=ssl.create_default_context(), open_timeout=TIMEOUT)
        await assert_exits_cleanly(server)


async def test_healthz() -> None:
    with example("healthz.py") as server:
        base = f"http://127.0.0.1:{server.port}"
        async with connect(f"ws://127.0.0.1:{server.port}/", open_timeout=TIMEOUT) as client:
            await client.send("x")
            assert await recv(client) == "x"
            status, content_type, body = await asyncio.to_thread(http_get, base + "/healthz")
            assert (status, content_type) == (200, "application/json")
            assert json.loads(body) == {"status": "ok", "connections": 1}
        status, content_type, body = await asyncio.to_thread(http_get, base + "/metrics")
        assert status == 200 and content_type.startswith("text/plain; version=0.0.4")
        assert "wsserver_messages_received_total 1\n" in body
        status, _, _ = await asyncio.to_thread(http_get, base + "/")
        assert status == 426
        await assert_exits_cleanly(server)


def serve_app(*flags: str) -> AbstractContextManager[ServerProcess]:
    """``python -m wsserver app:setup`` run from examples/, as its docstring says."""
    return running(["-m", "wsserver", "app:setup", "--host", "127.0.0.1", "--port", "0", *flags], cwd=EXAMPLES)


async def test_app_rooms_through_the_command_line() -> None:
    with serve_app("--metrics-path", "/metrics") as server:
        url = f"ws://127.0.0.1:{server.port}/"
        async with connect(url + "?room=a", open_timeout=TIMEOUT) as first, connect(
            url + "?room=a", open_timeout=TIMEOUT
        ) as second, connect(url + "?room=b", open_timeout=TIMEOUT) as other:
            await first.send("hello a")
            expected = json.dumps({"room": "a", "text": "hello a"})
            assert await recv(first) == expected
            assert await recv(second) == expected
            await other.send("hello b")
            assert await recv(other) == json.dumps({"room": "b", "text": "hello b"})  # and not room a's
        base = f"http://127.0.0.1:{server.port}"
        assert await asyncio.to_thread(http_get, base + "/healthz") == (200, "text/plain; charset=utf-8", "ok\n")
        status, _, body = await asyncio.to_thread(http_get, base + "/metrics")  # --metrics-path kept the app's handler
        assert status == 200 and "wsserver_connections_total 3\n" in body
        assert (await asyncio.to_thread(http_get, base + "/"))[0] == 426
        await assert_exits_cleanly(server)


async def test_app_with_workers_serves_metrics_from_each() -> None:
    with serve_app("--workers", "2", "--metrics-path", "/metrics") as server:
        assert "2 workers" in server.text()
        for _ in range(4):
            status, _, body = await asyncio.to_thread(http_get, f"http://127.0.0.1:{server.port}/metrics")
            assert status == 200 and "# TYPE wsserver_connections_open gauge" in body
        await assert_exits_cleanly(server)
