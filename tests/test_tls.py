"""wss:// beyond tests/server: an aiohttp client, a client that does not trust
the certificate, the TLS handshake bounded by handshakeTimeout, and the
graceful close over TLS (the certificate fixture is in conftest.py)."""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import websockets

import wsserver as ws
from helpers import echo, wait


def contexts(certificate: tuple[Path, Path]) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """``(server context, client context trusting the certificate)``."""
    cert_path, key_path = certificate
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server.load_cert_chain(cert_path, key_path)
    return server, ssl.create_default_context(cafile=str(cert_path))


async def test_aiohttp_client_over_wss(make_server: Any, certificate: tuple[Path, Path]) -> None:
    server_context, client_context = contexts(certificate)
    wss = echo(await make_server(ssl=server_context))
    async with (
        aiohttp.ClientSession() as session,
        session.ws_connect(f"wss://localhost:{wss.port}/", ssl=client_context) as client,
    ):
        await client.send_str("aiohttp")
        assert (await wait(client.receive())).data == "aiohttp"
        big = bytes(range(256)) * 4096  # 1 MiB across many TLS records
        await client.send_bytes(big)
        assert (await wait(client.receive())).data == big


async def test_a_client_that_does_not_trust_the_certificate_fails_alone(
    make_server: Any, certificate: tuple[Path, Path]
) -> None:
    server_context, client_context = contexts(certificate)
    wss = echo(await make_server(ssl=server_context))
    with pytest.raises(ssl.SSLCertVerificationError):
        await websockets.connect(f"wss://127.0.0.1:{wss.port}/", ssl=ssl.create_default_context(), proxy=None)
    async with websockets.connect(f"wss://127.0.0.1:{wss.port}/", ssl=client_context, proxy=None) as client:
        await client.send("still fine")
        assert await wait(client.recv()) == "still fine"


async def test_tls_handshake_is_bounded_by_handshake_timeout(
    make_server: Any, raw: Any, certificate: tuple[Path, Path]
) -> None:
    server_context, _ = contexts(certificate)
    wss = await make_server(ssl=server_context, handshakeTimeout=0.3)
    silent = await raw(wss)  # TCP only: never sends a ClientHello
    assert await silent.read_until_end() == b""  # the server gives up and closes


async def test_graceful_close_over_tls_sends_1001_after_queued_messages(
    make_server: Any, certificate: tuple[Path, Path]
) -> None:
    server_context, client_context = contexts(certificate)
    wss = await make_server(ssl=server_context)

    def burst_then_close(conn: ws.WebSocketConnection) -> None:
        for index in range(2000):
            conn.send(f"{index:04d}")
        wss.close()

    wss.on("connection", lambda conn: conn.on("message", lambda data: burst_then_close(conn)))
    async with websockets.connect(f"wss://127.0.0.1:{wss.port}/", ssl=client_context, proxy=None) as client:
        await client.send("go")
        received = []
        with pytest.raises(websockets.ConnectionClosedOK) as closed:
            for _ in range(2010):
                received.append(await wait(client.recv()))
    assert received == [f"{index:04d}" for index in range(2000)]
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1001
    await wait(wss.wait_closed())
