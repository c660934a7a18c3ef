"""Adapters of the Python clients of the matrix to :class:`scenarios.Client`:
``websockets`` and ``aiohttp`` (asyncio), ``websocket-client`` (blocking, run
in a worker thread)."""

from __future__ import annotations

import asyncio
import struct
from typing import Any

import aiohttp
import websocket
from scenarios import TIMEOUT, Client, Connector, Refused, ServerClosed
from websockets.asyncio.client import ClientConnection
from websockets.asyncio.client import connect as websockets_connect
from websockets.exceptions import ConnectionClosed, InvalidStatus


class WebsocketsClient:
    def __init__(self, connection: ClientConnection) -> None:
        self._c = connection
        self.protocol: str | None = connection.subprotocol
        assert connection.response is not None
        self.extensions: str | None = connection.response.headers.get("Sec-WebSocket-Extensions")

    async def send(self, data: str | bytes) -> None:
        await self._c.send(data)

    async def recv(self) -> str | bytes:
        try:
            return await asyncio.wait_for(self._c.recv(), TIMEOUT)
        except ConnectionClosed:
            raise ServerClosed() from None

    async def ping(self, data: bytes) -> bytes:
        # websockets resolves the waiter only for a pong carrying this payload
        await asyncio.wait_for(await self._c.ping(data), TIMEOUT)
        return data

    async def close(self, code: int, reason: str) -> int:
        await self._c.close(code, reason)
        assert self._c.close_code is not None
        return self._c.close_code

    async def wait_server_close(self) -> tuple[int, str]:
        try:
            await asyncio.wait_for(self._c.recv(), TIMEOUT)
        except ConnectionClosed:
            assert self._c.close_code is not None and self._c.close_reason is not None
            return self._c.close_code, self._c.close_reason
        raise AssertionError("a message came instead of the close")

    async def abort(self) -> None:
        self._c.transport.abort()


async def connect_websockets(url: str, protocols: list[str], *, compress: bool, observe_pongs: bool) -> Client:
    try:
        connection = await websockets_connect(
            url,
            subprotocols=protocols or None,  # type: ignore[arg-type]
            compression="deflate" if compress else None,
            max_size=None,
            open_timeout=TIMEOUT,
            close_timeout=TIMEOUT,
        )
    except InvalidStatus as error:
        raise Refused(error.response.status_code) from None
    return WebsocketsClient(connection)


class AiohttpClient:
    def __init__(self, session: aiohttp.ClientSession, ws: aiohttp.ClientWebSocketResponse) -> None:
        self._session = session
        self._ws = ws
        self.protocol: str | None = ws.protocol
        # aiohttp tells the negotiated window bits, not the header
        self.extensions: str | None = f"permessage-deflate (window bits {ws.compress})" if ws.compress else None

    async def send(self, data: str | bytes) -> None:
        if isinstance(data, str):
            await self._ws.send_str(data)
        else:
            await self._ws.send_bytes(data)

    async def _receive(self) -> aiohttp.WSMessage:
        return await asyncio.wait_for(self._ws.receive(), TIMEOUT)

    async def recv(self) -> str | bytes:
        message = await self._receive()
        if message.type in (aiohttp.WSMsgType.TEXT, aiohttp.WSMsgType.BINARY):
            data: str | bytes = message.data
            return data
        raise ServerClosed()

    async def ping(self, data: bytes) -> bytes:
        await self._ws.ping(data)
        message = await self._receive()  # the connection was opened with autoping off
        assert message.type is aiohttp.WSMsgType.PONG, message
        pong: bytes = message.data
        return pong

    async def close(self, code: int, reason: str) -> int:
        await asyncio.wait_for(self._ws.close(code=code, message=reason.encode()), TIMEOUT)
        assert self._ws.close_code is not None
        return self._ws.close_code

    async def wait_server_close(self) -> tuple[int, str]:
        message = await self._receive()
        assert message.type is aiohttp.WSMsgType.CLOSE, message
        return message.data, message.extra

    async def abort(self) -> None:
        await self._session.close()


async def connect_aiohttp(url: str, protocols: list[str], *, compress: bool, observe_pongs: bool) -> Client:
    session = aiohttp.ClientSession()
    try:
        ws = await session.ws_connect(
            url,
            protocols=protocols,
            compress=15 if compress else 0,
            autoping=not observe_pongs,  # with autoping aiohttp swallows pongs
            max_msg_size=0,
            timeout=aiohttp.ClientWSTimeout(ws_receive=TIMEOUT, ws_close=TIMEOUT),
        )
    except aiohttp.WSServerHandshakeError as error:
        await session.close()
        raise Refused(error.status) from None
    except BaseException:
        await session.close()
        raise
    return AiohttpClient(session, ws)


def _close_frame(frame: Any) -> tuple[int, str]:
    data: bytes = frame.data
    if len(data) < 2:
        return 1005, ""
    return struct.unpack("!H", data[:2])[0], data[2:].decode()


class WebsocketClientClient:
    """websocket-client is blocking: each call runs in a worker thread."""

    def __init__(self, ws: websocket.WebSocket) -> None:
        self._ws = ws
        self.protocol: str | None = ws.getsubprotocol()
        self.extensions: str | None = (ws.getheaders() or {}).get("sec-websocket-extensions")

    async def send(self, data: str | bytes) -> None:
        if isinstance(data, str):
            await asyncio.to_thread(self._ws.send, data)
        else:
            await asyncio.to_thread(self._ws.send_binary, data)

    async def recv(self) -> str | bytes:
        opcode, frame = await asyncio.to_thread(self._ws.recv_data_frame, False)  # answers pings itself
        if opcode == websocket.ABNF.OPCODE_TEXT:
            text: str = frame.data.decode("utf-8")
            return text
        if opcode == websocket.ABNF.OPCODE_BINARY:
            binary: bytes = frame.data
            return binary
        raise ServerClosed()

    async def ping(self, data: bytes) -> bytes:
        await asyncio.to_thread(self._ws.ping, data)
        opcode, frame = await asyncio.to_thread(self._ws.recv_data_frame, True)
        assert opcode == websocket.ABNF.OPCODE_PONG, opcode
        pong: bytes = frame.data
        return pong

    async def close(self, code: int, reason: str) -> int:
        await asyncio.to_thread(self._ws.send_close, code, reason.encode())
        opcode, frame = await asyncio.to_thread(self._ws.recv_data_frame, True)
        assert opcode == websocket.ABNF.OPCODE_CLOSE, opcode
        return _close_frame(frame)[0]

    async def wait_server_close(self) -> tuple[int, str]:
        opcode, frame = await asyncio.to_thread(self._ws.recv_data_frame, True)
        assert opcode == websocket.ABNF.OPCODE_CLOSE, opcode
        return _close_frame(frame)

    async def abort(self) -> None:
        await asyncio.to_thread(self._ws.shutdown)


async def connect_websocket_client(url: str, protocols: list[str], *, compress: bool, observe_pongs: bool) -> Client:
    assert not compress, "websocket-client has no permessage-deflate"

    def connect() -> websocket.WebSocket:
        return websocket.create_connection(url, subprotocols=protocols or None, timeout=TIMEOUT)

    try:
        ws = await asyncio.to_thread(connect)
    except websocket.WebSocketBadStatusException as error:
        raise Refused(error.status_code) from None
    return WebsocketClientClient(ws)


PYTHON_CLIENTS: dict[str, Connector] = {
    "websockets": connect_websockets,
    "aiohttp": connect_aiohttp,
    "websocket-client": connect_websocket_client,
}
