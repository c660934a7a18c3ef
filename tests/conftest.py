"""Fixtures: servers on 127.0.0.1 port 0 in the test's event loop, raw clients.

Run the suite a second time with ``WSSERVER_NO_SPEEDUPS=1`` to drive the
server through the pure-Python masking path (the header line of the pytest
report says which one is active); the mask tests compare both directly.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

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
    """``await raw(server)``: a :class:`RawClient` connected to ``server``.

    Depends on ``make_server`` so the clients are closed before the servers.
    """
    clients: list[RawClient] = []

    async def factory(server: wsserver.Server) -> RawClient:
        assert server.port is not None
        client = await RawClient.connect(server.port)
        clients.append(client)
        return client

    yield factory
    for client in clients:
        await client.close()
