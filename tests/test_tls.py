"""wss:// with ``ssl=``: a real TLS client (websockets, aiohttp) trusting a
self-signed certificate made in the test; the TLS handshake is bounded too."""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import ssl
from pathlib import Path

import aiohttp
import pytest
import websockets
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

import wsserver as ws
from hardening_support import TIMEOUT, RawClient


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 and localhost: (cert.pem, key.pem)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    folder = tmp_path_factory.mktemp("tls")
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


def contexts(certificate: tuple[Path, Path]) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    cert_path, key_path = certificate
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server.load_cert_chain(cert_path, key_path)
    client = ssl.create_default_context(cafile=str(cert_path))
    return server, client


def echo_server(server_context: ssl.SSLContext, **options: object) -> ws.Server:
    wss = ws.Server(host="127.0.0.1", port=0, ssl=server_context, **options)
    wss.on("connection", lambda conn: conn.on("message", lambda data: conn.send(data)))
    return wss


async def test_wss_echo_with_websockets_and_aiohttp(certificate: tuple[Path, Path]) -> None:
    server_context, client_context = contexts(certificate)
    async with echo_server(server_context) as wss:
        async with websockets.connect(f"wss://127.0.0.1:{wss.port}/", ssl=client_context) as client:
            await client.send("over TLS")
            assert await asyncio.wait_for(client.recv(), TIMEOUT) == "over TLS"
            big = bytes(range(256)) * 4096  # 1 MiB through TLS records
            await client.send(big)
            assert await asyncio.wait_for(client.recv(), TIMEOUT) == big
        async with (
            aiohttp.ClientSession() as session,
            session.ws_connect(f"wss://localhost:{wss.port}/", ssl=client_context) as client,
        ):
            await client.send_str("aiohttp")
            message = await asyncio.wait_for(client.receive(), TIMEOUT)
            assert message.data == "aiohttp"


async def test_a_client_that_does_not_trust_the_certificate_fails(certificate: tuple[Path, Path]) -> None:
    server_context, _ = contexts(certificate)
    async with echo_server(server_context) as wss:
        with pytest.raises(ssl.SSLCertVerificationError):
            await websockets.connect(f"wss://127.0.0.1:{wss.port}/", ssl=ssl.create_default_context())
        # the server carries on
        _, client_context = contexts(certificate)
        async with websockets.connect(f"wss://127.0.0.1:{wss.port}/", ssl=client_context) as client:
            await client.send("still fine")
            assert await asyncio.wait_for(client.recv(), TIMEOUT) == "still fine"


async def test_tls_handshake_is_bounded_by_handshake_timeout(certificate: tuple[Path, Path]) -> None:
    server_context, _ = contexts(certificate)
    async with echo_server(server_context, handshake_timeout=0.3) as wss:
        silent = await RawClient.connect(wss.port)  # TCP only: never sends a ClientHello
        assert await silent.read_to_eof() == b""  # the server gives up and closes


async def test_graceful_close_over_tls_sends_1001_after_queued_messages(certificate: tuple[Path, Path]) -> None:
    server_context, client_context = contexts(certificate)
    wss = ws.Server(host="127.0.0.1", port=0, ssl=server_context)
    await wss.start()

    def burst_then_close(conn: ws.WebSocketConnection) -> None:
        for index in range(2000):
            conn.send(f"{index:04d}")
        wss.close()

    wss.on("connection", lambda conn: conn.on("message", lambda data: burst_then_close(conn)))
    async with websockets.connect(f"wss://127.0.0.1:{wss.port}/", ssl=client_context) as client:
        await client.send("go")
        received = []
        with pytest.raises(websockets.ConnectionClosedOK) as closed:
            for _ in range(2010):
                received.append(await asyncio.wait_for(client.recv(), TIMEOUT))
    assert received == [f"{index:04d}" for index in range(2000)]
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1001
    await asyncio.wait_for(wss.wait_closed(), TIMEOUT)
