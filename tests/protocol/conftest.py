"""The ``parser_path`` fixture runs a ServerConnection test twice: with the C fast path of the parser and without.

``ServerConnection.receive_data`` hands frames that are whole messages to the
C accelerator's ``scan_messages`` when it is built; the pure-Python parser
handles the rest (and everything when ``WSSERVER_NO_SPEEDUPS=1``). Swapping
the module's ``_scan_messages`` covers both paths in one run. Test modules
opt in with ``pytestmark = pytest.mark.usefixtures("parser_path")``.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from wsserver.protocol import _speedups
from wsserver.protocol import connection as protocol_connection


@pytest.fixture(params=["c-scan", "python-parser"])
def parser_path(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    scan = _speedups.scan_messages if request.param == "c-scan" else None
    monkeypatch.setattr(protocol_connection, "_scan_messages", scan)
    yield request.param
