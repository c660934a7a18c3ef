"""``python -m wsserver module:setup``: one process, and ``--workers N`` with a Redis broker.

Real processes, a real redis-server, real clients: topics across workers, a
worker killed with SIGKILL and restarted, SIGTERM shutting everything down
gracefully.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import websockets
from scaleout_helpers import RedisProcess, env_with_src

LISTENING = re.compile(r"listening on ws://[^:]+:(\d+)/")


class ServerProcess:
    """``python -m wsserver ARGS`` in a child process."""

    def __init__(self, process: asyncio.subprocess.Process, port: int) -> None:
        self.process = process
        self.port = port

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/"


async def start_cli(*args: str) -> ServerProcess:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "wsserver", *args,
        stdout=asyncio.subprocess.PIPE, env=env_with_src(),
    )
    assert process.stdout is not None
    line = await asyncio.wait_for(process.stdout.readline(), 60)
    match = LISTENING.search(line.decode())
    if match is None:
        process.kill()
        await process.wait()
        raise AssertionError(f"unexpected first line: {line!r}")
    return ServerProcess(process, int(match.group(1)))


@pytest.fixture
async def cleanup() -> AsyncIterator[list[ServerProcess]]:
    started: list[ServerProcess] = []
    yield started
    for server in started:
        if server.process.returncode is None:
            server.process.kill()
            await server.process.wait()


def is_gone(pid: int) -> bool:
    """The process has exited (a zombie counts as exited)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return True
    return "\nState:\tZ" in status


async def ask(client: websockets.ClientConnection, command: str) -> str:
    await client.send(command)
    reply = await asyncio.wait_for(client.recv(), 30)
    assert isinstance(reply, str)
    return reply


async def client_on_new_pid(url: str, known: set[int], seconds: float = 60) -> tuple[websockets.ClientConnection, int]:
    """A client on a worker whose pid is not in ``known`` (the kernel picks the worker).

    A connection can be reset when it lands on the listening socket of a worker
    that is just dying (its accept queue goes with it): that attempt is retried.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while loop.time() < deadline:
        try:
            client = await websockets.connect(url)
        except (OSError, websockets.InvalidHandshake):
            await asyncio.sleep(0.05)
            continue
        try:
            pid = int((await ask(client, "pid")).split()[1])
        except websockets.ConnectionClosed:
            await asyncio.sleep(0.05)
            continue
        if pid not in known:
            return client, pid
        await client.close()
        await asyncio.sleep(0.02)
    raise AssertionError(f"no worker other than {known} answered within {seconds} s")


async def test_app_in_one_process(cleanup: list[ServerProcess]) -> None:
    server = await start_cli("scaleout_app:setup", "--host", "127.0.0.1", "--port", "0")
    cleanup.append(server)
    async with websockets.connect(server.url) as subscriber, websockets.connect(server.url) as publisher:
        assert await ask(subscriber, "sub t") == "subscribed t"
        await publisher.send("pub t hello")
        assert await asyncio.wait_for(subscriber.recv(), 30) == "hello"
        server.process.send_signal(signal.SIGTERM)
        await asyncio.wait_for(subscriber.wait_closed(), 30)
        assert subscriber.close_code == 1001
    assert await asyncio.wait_for(server.process.wait(), 30) == 0


async def test_bad_application_is_a_usage_error() -> None:
    for app, message in (("no_such_module_here:setup", b"cannot import"), ("scaleout_app:nothing", b"no attribute")):
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "wsserver", app, "--port", "0",
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=env_with_src(),
        )
        _, stderr = await asyncio.wait_for(process.communicate(), 60)
        assert process.returncode == 2
        assert message in stderr


async def test_workers_topics_crash_restart_and_sigterm(redis_server: RedisProcess, cleanup: list[ServerProcess]) -> None:
    server = await start_cli(
        "scaleout_app:setup", "--workers", "2", "--host", "127.0.0.1", "--port", "0",
        "--broker", redis_server.url,
    )
    cleanup.append(server)
    parent_pid = server.process.pid

    # a client on each worker (SO_REUSEPORT: the kernel spreads connections)
    first, first_pid = await client_on_new_pid(server.url, set())
    second, second_pid = await client_on_new_pid(server.url, {first_pid})
    assert parent_pid not in (first_pid, second_pid)

    # a client on worker 1 subscribed to t gets what a client on worker 2 publishes to t, not to u
    assert await ask(first, "sub t") == "subscribed t"
    count = 1000
    for i in range(count):
        await second.send(f"pub t m{i}")
        await second.send(f"pub u x{i}")
    await second.send("pub t end")
    received = [await asyncio.wait_for(first.recv(), 30) for _ in range(count + 1)]
    assert received == [f"m{i}" for i in range(count)] + ["end"]

    # kill -9 worker 1: its client is cut off, the supervisor starts a new worker
    os.kill(first_pid, signal.SIGKILL)
    await asyncio.wait_for(first.wait_closed(), 30)
    assert first.close_code == 1006
    third, third_pid = await client_on_new_pid(server.url, {first_pid, second_pid})
    assert is_gone(first_pid)
    assert server.process.returncode is None
    # the new worker takes part in the topics at once
    assert await ask(third, "sub t") == "subscribed t"
    await second.send("pub t after-restart")
    assert await asyncio.wait_for(third.recv(), 30) == "after-restart"

    # SIGTERM to the parent: every worker closes its clients with 1001, then all exit
    server.process.send_signal(signal.SIGTERM)
    for client in (second, third):
        await asyncio.wait_for(client.wait_closed(), 30)
        assert client.close_code == 1001
    assert await asyncio.wait_for(server.process.wait(), 30) == 0
    for pid in (second_pid, third_pid):
        for _ in range(100):
            if is_gone(pid):
                break
            await asyncio.sleep(0.05)
        assert is_gone(pid)
