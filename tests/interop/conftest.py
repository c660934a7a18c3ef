"""Fixtures of the interoperability matrix: the wsserver side (see interop_server)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from interop_server import ServerThread


@pytest.fixture(scope="session")
def plain_server() -> Iterator[ServerThread]:
    """The interop server with the defaults (no compression)."""
    server = ServerThread().start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def deflate_server() -> Iterator[ServerThread]:
    """The interop server with ``perMessageDeflate`` on (ws' default settings)."""
    server = ServerThread(per_message_deflate=True).start()
    yield server
    server.stop()
