"""Graceful close, async with, keepalive, ws.run() and python -m wsserver."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import sys
import textwrap
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import websockets

import wsserver
from helpers import Recorder, close_code_of, connect_ws, echo, wait
from rawclient import RawClient, parse_frames

SRC = str(Path(wsserver.__file__).resolve().parent.parent)


async def test_close_sends_1001_to_every_client_and_emits_close(make_server: Any) -> None:
    wss = echo(await make_server())
    events = Recorder(wss, "close", "connection")
    async with connect_ws(wss) as one, connect_ws(wss) as two:
        conn_1, _ = await events.next("connection")
        conn_2, _ = await events.next("connection")
        closes = [Recorder(conn, "close") for conn in (conn_1, conn_2)]
        await wait(wss.close())
        assert await close_code_of(one) == 1001
        assert await close_code_of(two) == 1001
        assert one.close_reason == "server shutting down"
        for recorder in closes:
            assert (await recorder.next("close"))[0] == 1001
    assert events.count("close") == 1
    assert wss.clients == set()


async def test_close_stops_accepting(make_server: Any) -> None:
    wss = await make_server()
    port = wss.port
    await wait(wss.close())
    with pytest.raises(OSError):
        await RawClient.connect(port)


async def test_close_is_bounded_with_a_client_that_never_answers(make_server: Any, raw: Any) -> None:
    wss = echo(await make_server(closeTimeout=0.3))
    connections = Recorder(wss, "connection")
    silent = await raw(wss)
    assert (await silent.handshake()).status == 101
    conn, _ = await connections.next("connection")
    closes = Recorder(conn, "close")
    async with connect_ws(wss) as honest:
        await wait(wss.close(), 3)
        assert await close_code_of(honest) == 1001
    assert (await silent.read_close()).close_code == 1001
    assert await silent.read_until_eof() == b""
    assert await closes.next("close") == (1006, "")


async def test_close_from_another_thread(make_server: Any) -> None:
    wss = await make_server()
    events = Recorder(wss, "close")
    async with connect_ws(wss) as client:

        await asyncio.to_thread(wss.close)  # a plain thread: starts the close
        assert await close_code_of(client) == 1001
    await events.next("close")


async def test_close_awaited_in_another_threads_event_loop(make_server: Any) -> None:
    wss = await make_server()
    events = Recorder(wss, "close")
    async with connect_ws(wss) as client:

        def other_thread() -> None:
            async def main() -> None:
                await asyncio.wait_for(wss.close(), 5)

            asyncio.run(main())

        closing = asyncio.ensure_future(asyncio.to_thread(other_thread))
        assert await close_code_of(client) == 1001
        await wait(closing)
    assert events.count("close") == 1


async def test_async_with_server() -> None:
    async with wsserver.Server(port=0, host="127.0.0.1") as wss:
        echo(wss)
        events = Recorder(wss, "close")
        assert wss.port
        client = await connect_ws(wss)
        await client.send("inside async with")
        assert await wait(client.recv()) == "inside async with"
    # leaving the block closed the server, and its clients with 1001
    assert events.count("close") == 1
    assert await close_code_of(client) == 1001


async def test_wait_closed(make_server: Any) -> None:
    wss = await make_server()
    waiter = asyncio.ensure_future(wss.wait_closed())
    await asyncio.sleep(0.01)
    assert not waiter.done()
    await wait(wss.close())
    await wait(waiter)


async def test_keepalive_pings_an_idle_client_and_drops_it_when_silent(make_server: Any, raw: Any) -> None:
    wss = echo(await make_server(pingInterval=0.1, pingTimeout=0.5))
    connections = Recorder(wss, "connection")
    silent = await raw(wss)
    assert (await silent.handshake()).status == 101
    conn, _ = await connections.next("connection")
    events = Recorder(conn, "error", "close")
    async with connect_ws(wss) as honest:  # websockets answers pings by itself
        frame = await silent.read_frame()
        assert frame.opcode == 0x9 and not frame.masked
        rest = parse_frames(await silent.read_until_eof())  # dropped: it never answered
        assert all(frame.opcode == 0x9 for frame in rest)
        (error,) = await events.next("error")
        assert isinstance(error, wsserver.ConnectionDropped)
        assert await events.next("close") == (1006, "")
        await asyncio.sleep(0.3)  # several intervals: the honest client stays
        await honest.send("alive")
        assert await wait(honest.recv()) == "alive"


async def test_keepalive_keeps_a_client_that_answers(make_server: Any, raw: Any) -> None:
    # a pingTimeout longer than pingInterval: sweeps run while a pong is awaited
    wss = echo(await make_server(ping_interval=0.1, ping_timeout=1.0))
    client = await raw(wss)
    assert (await client.handshake()).status == 101
    for _ in range(3):
        frame = await client.read_frame()
        assert frame.opcode == 0x9
        client.send_frame(0xA, frame.payload)
    client.send_frame(0x1, "still here")
    while (frame := await client.read_frame()).opcode == 0x9:
        client.send_frame(0xA, frame.payload)
    assert frame.payload == b"still here"


async def test_keepalive_off_sends_no_ping(make_server: Any, raw: Any) -> None:
    wss = echo(await make_server(pingInterval=None))
    client = await raw(wss)
    assert (await client.handshake()).status == 101
    await asyncio.sleep(0.3)
    client.send_frame(0x1, "first frame back is the echo")
    assert (await client.read_frame()).opcode == 0x1


# -- subprocesses -------------------------------------------------------------------


@pytest.fixture
async def spawn() -> AsyncIterator[Any]:
    """Start Python subprocesses with this tree's wsserver; kill leftovers at teardown."""
    processes: list[asyncio.subprocess.Process] = []

    async def start(*args: str) -> asyncio.subprocess.Process:
        env = dict(os.environ, PYTHONPATH=SRC + os.pathsep + os.environ.get("PYTHONPATH", ""), PYTHONUNBUFFERED="1")
        process = await asyncio.create_subprocess_exec(
            sys.executable, *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=env
        )
        processes.append(process)
        return process

    yield start
    for process in processes:
        if process.returncode is None:
            process.kill()
            await process.wait()


SEED_SCRIPT = textwrap.dedent(
    """
    import wsserver as ws

    def accept(protocols):
        return protocols[0] if protocols else False

    wss = ws.Server({'port': 0, 'host': '127.0.0.1', 'backlog': 100, 'clientTracking': True,
                     'maxPayload': 1024, 'acceptHandler': accept})

    def on_connection(conn):
        def on_message(data):
            if data == 'mask please':
                conn.send(data, True)
                conn.ping(b'masked ping', True)
                conn.pong(b'masked pong', True)
            else:
                conn.send(data)
        conn.on('message', on_message)

    wss.on('connection', on_connection)
    wss.on('listening', lambda: print('PORT', wss.address[1], flush=True))
    ws.run()
    print('EXITED CLEANLY', flush=True)
    """
)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
async def test_seed_style_script_with_run(spawn: Any, tmp_path: Path, signum: int) -> None:
    script = tmp_path / "seed_app.py"
    script.write_text(SEED_SCRIPT)
    process = await spawn(str(script))
    assert process.stdout is not None
    line = (await wait(process.stdout.readline(), 20)).decode()
    match = re.fullmatch(r"PORT (\d+)\n", line)
    assert match, line
    port = int(match.group(1))
    url = f"ws://127.0.0.1:{port}/"
    async with websockets.connect(url, subprotocols=["seed"], proxy=None, ping_interval=None) as client:
        assert client.subprotocol == "seed"
        await client.send("plain")
        assert await wait(client.recv()) == "plain"
        await client.send(b"\x00bin")
        assert await wait(client.recv()) == b"\x00bin"
        # acceptHandler returned False: 401
        with pytest.raises(websockets.InvalidStatus) as refused:
            async with websockets.connect(url, proxy=None):
                pass
        assert refused.value.response.status_code == 401
        # masking is checked with the raw client: RFC clients reject masked frames
        raw = await RawClient.connect(port)
        try:
            assert (await raw.handshake(headers=[("Sec-WebSocket-Protocol", "seed")])).status == 101
            raw.send_frame(0x1, "mask please")
            frames = [await raw.read_frame() for _ in range(3)]
            assert [(f.opcode, f.masked, f.payload) for f in frames] == [
                (0x1, True, b"mask please"),
                (0x9, True, b"masked ping"),
                (0xA, True, b"masked pong"),
            ]
            process.send_signal(signum)
            assert await close_code_of(client) == 1001
            assert (await raw.read_close()).close_code == 1001
            raw.send_frame(0x8, b"\x03\xe9")
        finally:
            await raw.close()
    assert await wait(process.wait(), 20) == 0
    assert process.stdout is not None
    assert b"EXITED CLEANLY" in await wait(process.stdout.read(), 5)


async def test_cli_echo_server(spawn: Any) -> None:
    process = await spawn("-m", "wsserver", "--host", "127.0.0.1", "--port", "0", "--max-payload", "2000")
    assert process.stdout is not None
    line = (await wait(process.stdout.readline(), 20)).decode()
    match = re.search(r"ws://[^:]+:(\d+)/", line)
    assert match and "listening" in line, line
    port = int(match.group(1))
    async with websockets.connect(f"ws://127.0.0.1:{port}/any/path", proxy=None, ping_interval=None) as client:
        await client.send("text stays text")
        assert await wait(client.recv()) == "text stays text"
        await client.send(b"binary stays binary")
        reply = await wait(client.recv())
        assert reply == b"binary stays binary" and isinstance(reply, bytes)
        await client.send(b"x" * 2001)
        assert await close_code_of(client) == 1009
    process.send_signal(signal.SIGTERM)
    assert await wait(process.wait(), 20) == 0


async def test_cli_rejects_a_bad_option(spawn: Any) -> None:
    process = await spawn("-m", "wsserver", "--port", "0", "--backlog", "0")
    assert await wait(process.wait(), 20) == 2
    assert process.stderr is not None
    assert b"backlog" in await process.stderr.read()


def test_run_without_a_server_is_an_error() -> None:
    with pytest.raises(RuntimeError):
        wsserver.run()


async def test_cli_reports_a_port_in_use(spawn: Any, make_server: Any) -> None:
    busy = await make_server()
    process = await spawn("-m", "wsserver", "--host", "127.0.0.1", "--port", str(busy.port))
    assert await wait(process.wait(), 20) == 1
    assert process.stderr is not None
    assert b"cannot listen" in await process.stderr.read()
