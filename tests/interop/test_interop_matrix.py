"""The interoperability matrix: independent clients against wsserver.

Clients: ``websockets``, ``aiohttp``, ``websocket-client`` (Python), the
Node.js ``ws`` module (``node/``, installed by ``npm install``) and Chromium
(Debian's ``chromium`` driven by Playwright). Scenarios: see
``scenarios.py``. Each test checks what the client observed and what the
server saw of the same connection. The combinations a client cannot express
(``NOT_APPLICABLE``) are left out of the matrix, not skipped.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from interop_server import ServerThread
from playwright.sync_api import Page
from python_clients import PYTHON_CLIENTS
from scenarios import NOT_APPLICABLE, PARAMS, SCENARIOS, check, run_python_scenario

from headless_chromium import chromium

HERE = Path(__file__).resolve().parent
NODE_DIR = HERE / "node"
SCENARIOS_JS = HERE / "js" / "scenarios.js"
CLIENTS = [*PYTHON_CLIENTS, "node-ws", "chromium"]
MATRIX = [
    pytest.param(client, scenario, id=f"{client}-{scenario}")
    for client, scenario in itertools.product(CLIENTS, SCENARIOS)
    if (client, scenario) not in NOT_APPLICABLE
]
_ids = itertools.count()


@pytest.fixture(scope="module")
def chromium_page(plain_server: ServerThread) -> Iterator[Page]:
    with chromium() as browser:
        page = browser.new_page()
        page.goto(f"http://127.0.0.1:{plain_server.port}/")
        page.add_script_tag(path=str(SCENARIOS_JS))
        yield page
        page.close()


def run_node(scenario: str, url: str) -> dict[str, Any]:
    node = shutil.which("node")
    assert node is not None, "Node.js is not installed"
    assert (NODE_DIR / "node_modules" / "ws").is_dir(), "run `npm install` in tests/interop/node (setup-dev.sh does)"
    completed = subprocess.run(
        [node, "client.js", scenario, url],
        input=json.dumps(PARAMS), cwd=NODE_DIR, capture_output=True, text=True, timeout=60,
    )
    assert completed.returncode == 0, completed.stderr
    result: dict[str, Any] = json.loads(completed.stdout)
    return result


def run_chromium(page: Page, scenario: str, url: str) -> dict[str, Any]:
    result: dict[str, Any] = page.evaluate(
        """([name, url, params]) => runScenario(name, url, params, {
            connect: (target, protocols) => new WebSocket(target, protocols),
            ping: null,
        })""",
        [scenario, url, PARAMS],
    )
    return result


@pytest.mark.parametrize(("client", "scenario"), MATRIX)
def test_interop(
    client: str, scenario: str, request: pytest.FixtureRequest,
    plain_server: ServerThread, deflate_server: ServerThread,
) -> None:
    server = deflate_server if scenario == "deflate" else plain_server
    connection_id = f"{client}-{scenario}-{next(_ids)}"
    url = f"ws://127.0.0.1:{server.port}/interop?id={connection_id}"
    before = server.stats()

    if client in PYTHON_CLIENTS:
        result = asyncio.run(run_python_scenario(PYTHON_CLIENTS[client], scenario, url))
    elif client == "node-ws":
        result = run_node(scenario, url)
    else:
        result = run_chromium(request.getfixturevalue("chromium_page"), scenario, url)

    check(scenario, result, client)
    if scenario == "refused":
        assert connection_id not in server.seen
        return
    seen = server.seen[connection_id]
    close = seen.wait_closed()
    if scenario == "client_close":
        assert list(close) == PARAMS["client_close"]
    elif scenario == "server_close":
        # the server's 'close' event carries the client's reply: websockets, ws
        # and browsers echo the code (as RFC 6455 5.5.1 suggests), aiohttp and
        # websocket-client answer 1000
        assert close[0] in (PARAMS["server_close"][0], 1000)
    else:
        assert close == (1000, "")
    if scenario == "subprotocol":
        assert seen.protocol == "chat.v2"
    if scenario == "deflate":
        assert seen.extensions is not None and seen.extensions.startswith("permessage-deflate")
        sent = len(PARAMS["deflate_text"].encode()) + 60_000
        # compressed on the wire both ways: far fewer bytes than the messages hold
        after = server.stats()
        assert after["bytes_in"] - before["bytes_in"] < sent // 4
        assert after["bytes_out"] - before["bytes_out"] < sent // 4
