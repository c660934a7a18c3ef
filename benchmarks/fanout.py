"""Fan-out through topics: deliveries/s with 1 and 2 workers, and delivery
latency in-process vs through Redis.

    python benchmarks/fanout.py [--subscribers 200] [--messages 5000] [--samples 300] [--repeat 3]

Starts its own ``redis-server`` (on a free port, no persistence) and
``python -m wsserver fanout_app:setup`` processes on 127.0.0.1:

* **fanout-1w**: 1 worker, no broker; S subscribers on topic ``bench``, one
  publisher sends M messages of 64 B as fast as it can; deliveries/s =
  M x S / (time until every subscriber has all M). Every delivery is counted
  (sent M x S vs received) and the run fails if one is missing.
* **fanout-1w-redis**: the same with ``--broker`` (publishes also go to Redis).
* **fanout-2w-redis**: 2 workers sharing the port (SO_REUSEPORT) with
  ``--broker``: subscribers are spread over both, so the publisher's worker
  delivers its share directly and the other worker gets every message through
  Redis.
* **latency**: one message in flight, publisher and subscriber on the same
  server process (in-process) vs on two server processes joined by Redis;
  p50/p99 of send-to-receive time.

The clients are Python (asyncio with a minimal frame counter, one process):
on this 2-core machine they share the CPU with the server and Redis, and at
high rates the client, not the server, may be the bottleneck.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
SRC = HERE.parent / "src"
LISTENING = re.compile(rb"listening on ws://[^:]+:(\d+)/")
TOPIC = "bench"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def client_frame(text: str) -> bytes:
    """A masked text frame (mask key 0: the payload stays as it is)."""
    payload = text.encode()
    length = len(payload)
    if length < 126:
        header = bytes((0x81, 0x80 | length))
    elif length < 65536:
        header = bytes((0x81, 0x80 | 126)) + length.to_bytes(2, "big")
    else:
        header = bytes((0x81, 0x80 | 127)) + length.to_bytes(8, "big")
    return header + b"\0\0\0\0" + payload


class Client(asyncio.Protocol):
    """A WebSocket client that counts the messages it receives (and keeps their
    receive times when ``timing`` is on). Enough for unmasked, unfragmented
    server frames; cheaper per message than a full client library."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.open = asyncio.get_running_loop().create_future()
        self.count = 0
        self.timing = False
        self.latencies: list[float] = []
        self.waiter: asyncio.Future[None] | None = None
        self.target = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        key = base64.b64encode(os.urandom(16)).decode()
        transport.write(
            f"GET / HTTP/1.1\r\nHost: 127.0.0.1:{self.port}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n".encode()
        )

    def data_received(self, data: bytes) -> None:
        buffer = self.buffer
        buffer += data
        if not self.open.done():
            end = buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            if not buffer.startswith(b"HTTP/1.1 101"):
                self.open.set_exception(RuntimeError(bytes(buffer[:end]).decode()))
                return
            del buffer[: end + 4]
            self.open.set_result(None)
        position = 0
        size = len(buffer)
        now = time.perf_counter()
        while size - position >= 2:
            length = buffer[position + 1] & 0x7F
            header = 2
            if length == 126:
                if size - position < 4:
                    break
                length = int.from_bytes(buffer[position + 2 : position + 4], "big")
                header = 4
            elif length == 127:
                if size - position < 10:
                    break
                length = int.from_bytes(buffer[position + 2 : position + 10], "big")
                header = 10
            if size - position < header + length:
                break
            if buffer[position] & 0x0F in (1, 2):
                self.count += 1
                if self.timing:
                    sent = float(buffer[position + header : position + header + length])
                    self.latencies.append(now - sent)
            position += header + length
        del buffer[:position]
        if self.waiter is not None and self.count >= self.target and not self.waiter.done():
            self.waiter.set_result(None)

    async def wait_for_count(self, target: int, timeout: float) -> None:
        if self.count >= target:
            return
        self.target = target
        self.waiter = asyncio.get_running_loop().create_future()
        await asyncio.wait_for(self.waiter, timeout)

    def send(self, text: str) -> None:
        assert self.transport is not None
        self.transport.write(client_frame(text))


async def connect(port: int) -> Client:
    loop = asyncio.get_running_loop()
    _, client = await loop.create_connection(lambda: Client(port), "127.0.0.1", port)
    await asyncio.wait_for(client.open, 30)
    return client


async def subscribe(client: Client) -> None:
    before = client.count
    client.send(f"sub {TOPIC}")
    await client.wait_for_count(before + 1, 30)  # "ok": the subscription is in Redis too
    client.count = 0


class ServerProcess:
    def __init__(self, workers: int, broker: str | None) -> None:
        args = [sys.executable, "-m", "wsserver", "fanout_app:setup", "--host", "127.0.0.1", "--port", "0",
                "--workers", str(workers)]
        if broker:
            args += ["--broker", broker]
        env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(SRC), str(HERE)]))
        self.process = subprocess.Popen(args, stdout=subprocess.PIPE, env=env)
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        match = LISTENING.search(line)
        if match is None:
            self.stop()
            raise RuntimeError(f"server did not start: {line!r}")
        self.port = int(match.group(1))

    def stop(self) -> None:
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


class RedisServer:
    def __init__(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise SystemExit("redis-server is not installed (apt-get install redis-server)")
        self.port = free_port()
        self.process = subprocess.Popen(
            [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
            stdout=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("redis-server did not start")

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(10)


async def fanout(port: int, subscribers: int, messages: int) -> tuple[float, int, int]:
    """(deliveries/s, deliveries expected, deliveries received)."""
    clients = [await connect(port) for _ in range(subscribers)]
    publisher = await connect(port)
    try:
        for client in clients:
            await subscribe(client)
        payload = "x" * 64
        frames = b"".join(client_frame(f"pub {TOPIC} {payload}") for _ in range(messages))
        start = time.perf_counter()
        assert publisher.transport is not None
        publisher.transport.write(frames)
        await asyncio.wait_for(asyncio.gather(*(c.wait_for_count(messages, 120) for c in clients)), 180)
        elapsed = time.perf_counter() - start
        await asyncio.sleep(0.2)  # anything extra (a duplicate) would arrive now
        received = sum(client.count for client in clients)
        return messages * subscribers / elapsed, messages * subscribers, received
    finally:
        for client in [*clients, publisher]:
            assert client.transport is not None
            client.transport.abort()


async def latency(publish_port: int, subscribe_port: int, samples: int) -> tuple[float, float]:
    """(p50, p99) in milliseconds, one message in flight."""
    subscriber = await connect(subscribe_port)
    publisher = await connect(publish_port)
    try:
        await subscribe(subscriber)
        subscriber.timing = True
        for i in range(samples):
            publisher.send(f"pub {TOPIC} {time.perf_counter():.9f}")
            await subscriber.wait_for_count(i + 1, 30)
        values = sorted(subscriber.latencies)
        return statistics.median(values) * 1000, values[int(len(values) * 0.99) - 1] * 1000
    finally:
        for client in (subscriber, publisher):
            assert client.transport is not None
            client.transport.abort()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--subscribers", type=int, default=200)
    parser.add_argument("--messages", type=int, default=5000)
    parser.add_argument("--samples", type=int, default=300)
    parser.add_argument("--repeat", type=int, default=3, help="fan-out runs per scenario")
    args = parser.parse_args()
    print(f"fan-out: {args.subscribers} subscribers x {args.messages} messages of 64 B; "
          f"latency: {args.samples} samples. Python clients in one process on the same "
          f"{os.cpu_count()}-core machine: they may be the bottleneck.", flush=True)
    redis_server = RedisServer()
    try:
        lost = 0
        for name, workers, broker in (
            ("fanout-1w", 1, None),
            ("fanout-1w-redis", 1, redis_server.url),
            ("fanout-2w-redis", 2, redis_server.url),
        ):
            server = ServerProcess(workers, broker)
            rates = []
            sent_total = received_total = 0
            try:
                for _ in range(args.repeat):
                    rate, expected, received = await fanout(server.port, args.subscribers, args.messages)
                    rates.append(rate)
                    sent_total += expected
                    received_total += received
                    lost += abs(expected - received)
            finally:
                server.stop()
            print(
                f"{name:18} {statistics.median(rates):>12,.0f} deliveries/s (median of {args.repeat}, "
                f"{min(rates):,.0f}-{max(rates):,.0f})   deliveries sent {sent_total:,} received {received_total:,}",
                flush=True,
            )

        server = ServerProcess(1, None)
        try:
            p50, p99 = await latency(server.port, server.port, args.samples)
        finally:
            server.stop()
        print(f"{'latency in-process':18} p50 {p50:.3f} ms   p99 {p99:.3f} ms", flush=True)
        first, second = ServerProcess(1, redis_server.url), ServerProcess(1, redis_server.url)
        try:
            p50, p99 = await latency(first.port, second.port, args.samples)
        finally:
            first.stop()
            second.stop()
        print(f"{'latency via Redis':18} p50 {p50:.3f} ms   p99 {p99:.3f} ms", flush=True)
        if lost:
            raise SystemExit(f"{lost} deliveries missing or extra")
    finally:
        redis_server.stop()


if __name__ == "__main__":
    asyncio.run(main())
