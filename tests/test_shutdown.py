"""Graceful shutdown: ``wss.close()`` and SIGTERM under ``wsserver.run()`` stop
accepting, flush every message already passed to ``send()``, close with 1001,
wait (bounded) for the closing handshakes, then drop the rest."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import textwrap
import threading
from pathlib import Path

import websockets

import wsserver as ws
from hardening_support import TIMEOUT, RawClient, upgrade_request

COUNT = 10_000
SRC = str(Path(__file__).resolve().parents[1] / "src")


def numbered(index: int) -> str:
    return f"{index:05d}" + "x" * 1000


async def receive_until_closed(client: websockets.ClientConnection) -> tuple[list[str], int | None]:
    """Every message until the server closes; the close code it sent."""
    received: list[str] = []
    try:
        for _ in range(COUNT + 10):
            message = await asyncio.wait_for(client.recv(), TIMEOUT)
            assert isinstance(message, str)
            received.append(message)
    except websockets.ConnectionClosed as closed:
        return received, closed.rcvd.code if closed.rcvd else None
    raise AssertionError("the server did not close")


async def test_close_right_after_10000_sends_loses_nothing() -> None:
    wss = ws.Server(host="127.0.0.1", port=0)
    closing: list[asyncio.Future[None]] = []

    def burst_then_close(conn: ws.WebSocketConnection) -> None:
        for index in range(COUNT):
            conn.send(numbered(index))
        assert conn.buffered_amount > 1024 * 1024  # most of it is still queued
        closing.append(wss.close())

    def on_connection(conn: ws.WebSocketConnection) -> None:
        conn.on("message", lambda data: asyncio.get_running_loop().call_soon(burst_then_close, conn))

    wss.on("connection", on_connection)
    await wss.start()
    closed_events: list[None] = []
    wss.on("close", lambda: closed_events.append(None))
    # a small max_queue: the client reads slowly, so the server's buffer fills
    async with websockets.connect(f"ws://127.0.0.1:{wss.port}/", max_queue=4) as client:
        await client.send("go")
        received, code = await receive_until_closed(client)
    assert code == 1001
    assert received == [numbered(index) for index in range(COUNT)]
    await asyncio.wait_for(closing[0], TIMEOUT)
    assert closed_events == [None]


async def test_sends_from_another_thread_before_close_are_delivered() -> None:
    wss = ws.Server(host="127.0.0.1", port=0)
    done = threading.Event()

    def from_thread(conn: ws.WebSocketConnection) -> None:
        for index in range(1000):
            conn.send(numbered(index))
        wss.close()  # from the thread too
        done.set()

    def on_connection(conn: ws.WebSocketConnection) -> None:
        threading.Thread(target=from_thread, args=(conn,)).start()

    wss.on("connection", on_connection)
    await wss.start()
    async with websockets.connect(f"ws://127.0.0.1:{wss.port}/") as client:
        received, code = await receive_until_closed(client)
    assert code == 1001
    assert received == [numbered(index) for index in range(1000)]
    assert done.wait(TIMEOUT)
    await asyncio.wait_for(wss.wait_closed(), TIMEOUT)


async def test_close_drops_peers_that_never_answer_within_close_timeout() -> None:
    codes: list[int] = []
    wss = ws.Server(host="127.0.0.1", port=0, close_timeout=0.3)
    wss.on("connection", lambda conn: conn.on("close", codes.append))
    await wss.start()
    mute = await RawClient.open(wss.port)
    closing = wss.close()
    assert await mute.read_close_code() == 1001
    await mute.read_to_eof()  # no answer from us: dropped after closeTimeout
    await asyncio.wait_for(closing, TIMEOUT)
    assert codes == [1006]


async def test_handshake_in_progress_during_close_gets_503() -> None:
    wss = ws.Server(host="127.0.0.1", port=0)
    await wss.start()
    client = await RawClient.connect(wss.port)
    request = upgrade_request()
    client.send(request[:20])
    await asyncio.sleep(0.05)
    closing = wss.close()
    await asyncio.sleep(0.05)
    client.send(request[20:])
    status, _ = await client.read_head()
    assert status == 503
    await asyncio.wait_for(closing, TIMEOUT)
    client.close()


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
        port = int(await asyncio.wait_for(process.stdout.readline(), TIMEOUT * 2))
        async with websockets.connect(f"ws://127.0.0.1:{port}/", max_queue=4) as client:
            await client.send("go")
            line = (await asyncio.wait_for(process.stdout.readline(), TIMEOUT)).split()
            assert line[0] == b"queued" and int(line[1]) > 1024 * 1024
            process.send_signal(signal.SIGTERM)
            received, code = await receive_until_closed(client)
        assert code == 1001
        assert received == [numbered(index) for index in range(COUNT)]
        assert await asyncio.wait_for(process.wait(), TIMEOUT) == 0
        rest = await process.stdout.read()
        assert rest.split() == [b"closed", b"exited"]
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
