"""Fixtures: servers on 127.0.0.1 port 0 in the test's event loop, raw clients.

Run the suite a second time with ``WSSERVER_NO_SPEEDUPS=1`` to drive the
server through the pure-Python masking path (the header line of the pytest
report says which one is active); the mask tests compare both directly.
"""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

import wsserver
from rawclient import RawClient
from wsserver.protocol import mask

ServerFactory = Callable[..., Awaitable[wsserver.Server]]
RawFactory = Callable[..., Awaitable[RawClient]]


def pytest_report_header() -> str:
    implementation = "C accelerator" if mask.HAVE_SPEEDUPS else "pure Python (WSSERVER_NO_SPEEDUPS or not built)"
    return f"wsserver {wsserver.__file__}; mask: {implementation}"


@pytest.fixture
async def make_server() -> AsyncIterator[ServerFactory]:
    """``await make_server(options_dict, **options)``: a listening ``Server``.

    ``port=0`` and ``host='127.0.0.1'`` are added unless given; every server is
    closed at teardown.
    """
    servers: list[wsserver.Server] = []

    async def factory(options: dict[str, Any] | None = None, /, **keywords: Any) -> wsserver.Server:
        given = set(options or {}) | set(keywords)
        if "port" not in given:
            keywords["port"] = 0
        if "host" not in given:
            keywords["host"] = "127.0.0.1"
        server = wsserver.Server(options, **keywords)
        servers.append(server)
        await asyncio.wait_for(server.start(), 5)
        return server

    yield factory
    for server in servers:
        await asyncio.wait_for(server.close(), 20)


@pytest.fixture
async def raw(make_server: ServerFactory) -> AsyncIterator[RawFactory]:
    """``await raw(server)``: a :class:`RawClient` connected to ``server``
    (``receive_buffer=`` sets a small SO_RCVBUF, for clients that stop reading).

    Depends on ``make_server`` so the clients are closed before the servers.
    """
    clients: list[RawClient] = []

    async def factory(server: wsserver.Server, receive_buffer: int | None = None) -> RawClient:
        assert server.port is not None
        client = await RawClient.connect(server.port, receive_buffer=receive_buffer)
        clients.append(client)
        return client

    yield factory
    for client in clients:
        await client.close()


@pytest.fixture(scope="session")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 and localhost, made here with
    ``cryptography``: ``(cert.pem, key.pem)``."""
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
        .not_valid_after(now + datetime.timedelta(days=2))
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
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return cert_path, key_path
