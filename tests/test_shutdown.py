"""Graceful shutdown loses nothing (docs/security.md): ``wss.close()`` and
SIGTERM under ``wsserver.run()`` flush every message already passed to
``send()`` before the 1001. (tests/server covers the 1001 itself, the bound on
clients that never answer, and handshakes finishing during close.)"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import textwrap
import threading
from pathlib import Path
from typing import Any

import websockets

import wsserver as ws
from helpers import TIMEOUT, connect_ws, wait

COUNT = 10_000
SRC = str(Path(__file__).resolve().parents[1] / "src")


def numbered(index: int) -> str:
    return f"{index:05d}" + "x" * 1000


async def receive_until_closed(client: websockets.ClientConnection) -> tuple[list[str], int | None]:
    """Every message until the server closes; the close code it sent."""
    received: list[str] = []
    try:
        for _ in range(COUNT + 10):
            message = await wait(client.recv())
            assert isinstance(message, str)
            received.append(message)
    except websockets.ConnectionClosed as closed:
        return received, closed.rcvd.code if closed.rcvd else None
    raise AssertionError("the server did not close")


async def test_close_right_after_10000_sends_loses_nothing(make_server: Any) -> None:
    wss = await make_server()
    closing: list[Any] = []

    def burst_then_close(conn: ws.WebSocketConnection) -> None:
        for index in range(COUNT):
            conn.send(numbered(index))
        assert conn.buffered_amount > 1024 * 1024  # most of it is still queued
        closing.append(wss.close())

    wss.on("connection", lambda conn: conn.on("message", lambda data: burst_then_close(conn)))
    closed_events = []
    wss.on("close", lambda: closed_events.append(None))
    # a small max_queue: the client reads slowly, so the server's buffer fills
    async with connect_ws(wss, max_queue=4) as client:
        await client.send("go")
        received, code = await receive_until_closed(client)
    assert code == 1001
    assert received == [numbered(index) for index in range(COUNT)]
    await wait(closing[0])
    assert closed_events == [None]


async def test_sends_from_another_thread_before_close_are_delivered(make_server: Any) -> None:
    wss = await make_server()
    done = threading.Event()

    def from_thread(conn: ws.WebSocketConnection) -> None:
        for index in range(1000):
            conn.send(numbered(index))
        wss.close()  # from the thread too
        done.set()

    wss.on("connection", lambda conn: threading.Thread(target=from_thread, args=(conn,)).start())
    async with connect_ws(wss) as client:
        received, code = await receive_until_closed(client)
    assert code == 1001
    assert received == [numbered(index) for index in range(1000)]
    assert done.wait(TIMEOUT)
    await wait(wss.wait_closed())


SERVER_SCRIPT = textwrap.dedent(
    """
    import wsserver as ws

    wss = ws.Server(host="127.0.0.1", port=0)

    def on_connection(conn):
        def on_message(data):
            for index in range({count}):
                conn.send(f"{{index:05d}}" + "x" * 1000)
            print("queued", conn.buffered_amount, flush=True)

        conn.on("message", on_message)

    wss.on("connection", on_connection)
    wss.on("close", lambda: print("closed", flush=True))
    ws.run(ready=lambda servers: print(servers[0].port, flush=True))
    print("exited", flush=True)
    """
).format(count=COUNT)


async def test_sigterm_under_run_flushes_every_queued_message() -> None:
    env = {**os.environ, "PYTHONPATH": SRC}
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-c", SERVER_SCRIPT, stdout=asyncio.subprocess.PIPE, env=env
    )
    assert process.stdout is not None
    try:
        port = int(await wait(process.stdout.readline(), TIMEOUT * 2))
        async with websockets.connect(f"ws://127.0.0.1:{port}/", max_queue=4, proxy=None) as client:
            await client.send("go")
            line = (await wait(process.stdout.readline())).split()
            assert line[0] == b"queued" and int(line[1]) > 1024 * 1024
            process.send_signal(signal.SIGTERM)
            received, code = await receive_until_closed(client)
        assert code == 1001
        assert received == [numbered(index) for index in range(COUNT)]
        assert await wait(process.wait()) == 0
        rest = await process.stdout.read()
        assert rest.split() == [b"closed", b"exited"]
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
