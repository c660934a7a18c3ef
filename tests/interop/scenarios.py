"""The scenarios of the interoperability matrix, and what each must show.

Every client runs the same scenarios and reports what it observed as a
JSON-like dict; :func:`check` holds the expectations, the same for every
client. The Python clients share :func:`run_python_scenario`; the Node.js
``ws`` client and Chromium run the same scenarios written once in JavaScript
(``js/scenarios.js``), fed with :data:`PARAMS`.
"""

from __future__ import annotations

import base64
from typing import Any, Protocol

TIMEOUT = 10.0

# the scenario parameters, shared with the JavaScript clients
PARAMS: dict[str, Any] = {
    # empty, non-ASCII, and one over 65535 bytes (64-bit length)
    "texts": ["", "héllo ✓ wörld", "wsserver " * 7500],
    # empty, 7-bit, 16-bit and 64-bit payload lengths; byte i is i % 251
    "binary_lengths": [0, 1, 125, 126, 65536 + 3],
    "ping_data": "abc",
    "server_ping_data": "hello",
    "client_close": [4001, "bye"],
    "server_close": [4002, "server bye"],
    "protocols": ["chat.v1", "chat.v2"],
    "unknown_protocols": ["unknown.v9"],
    "deflate_text": "compress me " * 10_000,
}

SCENARIOS = [
    "text",
    "binary",
    "client_ping",
    "server_ping",
    "client_close",
    "server_close",
    "subprotocol",
    "refused",
    "deflate",
]

# combinations that a client cannot express at all (listed, not skipped)
NOT_APPLICABLE = {
    ("websocket-client", "deflate"): "websocket-client does not implement permessage-deflate",
    ("chromium", "client_ping"): "a web page cannot send a ping: browsers only answer them",
}


def pattern(length: int) -> bytes:
    """The binary payload of ``length`` bytes the scenarios send."""
    return bytes(i % 251 for i in range(length))


def as_json(data: str | bytes) -> dict[str, str]:
    """A received message as the clients report it."""
    if isinstance(data, str):
        return {"kind": "text", "data": data}
    return {"kind": "binary", "data": base64.b64encode(data).decode()}


class Refused(Exception):
    """The server refused the opening handshake with HTTP ``status``."""

    def __init__(self, status: int | None) -> None:
        super().__init__(status)
        self.status = status


class ServerClosed(Exception):
    """The server closed the connection."""


class Client(Protocol):
    """The operations every Python client adapter provides."""

    protocol: str | None
    extensions: str | None

    async def send(self, data: str | bytes) -> None: ...

    async def recv(self) -> str | bytes:
        """The next message; raises :class:`ServerClosed` on a close."""
        ...

    async def ping(self, data: bytes) -> bytes:
        """Send a ping; the payload of the pong that answers it."""
        ...

    async def close(self, code: int, reason: str) -> int:
        """Close; the code of the server's close frame."""
        ...

    async def wait_server_close(self) -> tuple[int, str]:
        """Wait for the server's close frame: its code and reason."""
        ...

    async def abort(self) -> None:
        """Drop the connection (cleanup)."""
        ...


class Connector(Protocol):
    async def __call__(self, url: str, protocols: list[str], *, compress: bool, observe_pongs: bool) -> Client: ...


async def run_python_scenario(connect: Connector, scenario: str, url: str) -> dict[str, Any]:
    """Run ``scenario`` with one Python client; what it observed."""
    p = PARAMS
    if scenario == "refused":
        try:
            client = await connect(url, p["unknown_protocols"], compress=False, observe_pongs=False)
        except Refused as refused:
            return {"refused": True, "status": refused.status}
        await client.abort()
        return {"refused": False, "status": None}
    protocols = p["protocols"] if scenario == "subprotocol" else []
    client = await connect(
        url, protocols, compress=scenario == "deflate", observe_pongs=scenario == "client_ping"
    )
    result: dict[str, Any] = {"protocol": client.protocol, "extensions": client.extensions}
    try:
        outgoing: list[str | bytes] = []
        if scenario == "text":
            outgoing = list(p["texts"])
        elif scenario == "binary":
            outgoing = [pattern(n) for n in p["binary_lengths"]]
        elif scenario == "deflate":
            outgoing = [p["deflate_text"], pattern(30_000) * 2]
        elif scenario == "server_ping":
            outgoing = ["cmd:ping:" + p["server_ping_data"]]
        elif scenario == "server_close":
            code, reason = p["server_close"]
            outgoing = [f"cmd:close:{code}:{reason}"]
        for message in outgoing:
            await client.send(message)
        if scenario in ("text", "binary", "deflate", "server_ping"):
            result["received"] = [as_json(await client.recv()) for _ in outgoing]
        if scenario == "client_ping":
            result["pong"] = (await client.ping(p["ping_data"].encode())).decode()
        if scenario == "server_close":
            result["code"], result["reason"] = await client.wait_server_close()
        else:
            code, reason = p["client_close"] if scenario == "client_close" else (1000, "")
            result["code"] = await client.close(code, reason)
    finally:
        await client.abort()
    return result


def check(scenario: str, result: dict[str, Any], client: str) -> None:
    """The expectations of ``scenario``, the same for every client."""
    p = PARAMS
    if scenario == "text":
        assert result["received"] == [as_json(text) for text in p["texts"]]
    elif scenario == "binary":
        assert result["received"] == [as_json(pattern(n)) for n in p["binary_lengths"]]
    elif scenario == "client_ping":
        assert result["pong"] == p["ping_data"]
    elif scenario == "server_ping":
        assert result["received"] == [as_json("pong:" + p["server_ping_data"])]
    elif scenario == "client_close":
        assert result["code"] == p["client_close"][0]  # the server's reply echoes the code
    elif scenario == "server_close":
        assert [result["code"], result["reason"]] == p["server_close"]
    elif scenario == "subprotocol":
        assert result["protocol"] == "chat.v2"  # the server's preference, not the client's order
    elif scenario == "refused":
        assert result["refused"] is True
        if client == "chromium":
            assert result["status"] is None  # a page is never told the HTTP status
        else:
            assert result["status"] == 401
    elif scenario == "deflate":
        assert result["extensions"] is not None and "permessage-deflate" in result["extensions"]
        assert result["received"] == [as_json(p["deflate_text"]), as_json(pattern(30_000) * 2)]
    else:
        raise AssertionError(f"unknown scenario {scenario}")
    if scenario not in ("refused", "server_close", "client_close"):
        assert result["code"] == 1000
