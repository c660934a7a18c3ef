"""Workers: N processes serving one application on one port.

``run_workers('app:setup', {'port': 8080}, workers=4)`` (or ``python -m
wsserver app:setup --port 8080 --workers 4``) starts 4 processes; each binds
the port with ``SO_REUSEPORT`` (the kernel spreads new connections over them),
creates its own :class:`~wsserver.Server` and calls ``setup(wss)``. The parent
process only supervises:

* a worker that exits (crash, ``kill -9``) is started again, after a delay
  that grows while it keeps dying within seconds of its start;
* a worker that fails before it first listens (bad import, port taken) stops
  everything with :class:`WorkerBootError`;
* SIGTERM or SIGINT to the parent sends SIGTERM to every worker, which closes
  its connections gracefully (close code 1001, up to ``closeTimeout``);
  workers still running after ``closeTimeout`` + 5 s are killed;
* a worker whose parent dies shuts itself down.

Workers are started with the ``spawn`` method: ``setup`` and the options must
be picklable (a ``module:function`` string always is), and a script calling
:func:`run_workers` needs the ``if __name__ == '__main__':`` guard. TLS is
configured with ``ssl_certfile``/``ssl_keyfile`` (an ``SSLContext`` cannot be
sent to another process). Topics and ``broadcast()`` reach the clients of other
workers only through the ``broker`` option.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import os
import signal
import socket
import ssl
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from multiprocessing.connection import Connection, wait
from multiprocessing.process import BaseProcess
from types import FrameType
from typing import Any

from .app import Setup, configure_logging, run_app
from .options import normalize_options
from .server import Server

__all__ = ["WorkerBootError", "run_workers"]

logger = logging.getLogger("wsserver")

#: a worker that dies within this many seconds of its start is restarted after a growing delay
_MIN_UPTIME = 5.0
_MAX_RESTART_DELAY = 5.0


class WorkerBootError(RuntimeError):
    """A worker exited before it was listening: the application cannot start."""


@dataclass
class _Worker:
    slot: int
    process: BaseProcess
    channel: Connection  # the parent's end: "ready" comes through it; its closing tells the worker we died
    started: float
    ready: bool = False


def run_workers(
    app: str | Setup,
    options: Mapping[str, Any] | None = None,
    /,
    *,
    workers: int,
    ssl_certfile: str | None = None,
    ssl_keyfile: str | None = None,
    log_level: str | None = None,
    ready: Callable[[tuple[str, int]], Any] | None = None,
    **kwargs: Any,
) -> None:
    """Serve ``app`` (``'module:setup'`` or a picklable callable) from ``workers`` processes.

    Server options come as with ``Server`` (a dict and/or keywords). Blocks
    until SIGTERM/SIGINT; must be called from the main thread. ``ready(address)``
    is called once every worker listens. ``log_level`` configures the
    ``wsserver`` logger in the workers.
    """
    if workers < 1:
        raise ValueError(f"workers must be at least 1, not {workers}")
    checked = normalize_options(options, kwargs)
    if checked.ssl is not None:
        raise TypeError("an SSLContext cannot be sent to worker processes: give ssl_certfile and ssl_keyfile")
    if ssl_certfile:  # fail here, not in every worker
        _ssl_context(ssl_certfile, ssl_keyfile)
    plain = {field.name: getattr(checked, field.name) for field in fields(checked)}
    plain["reuse_port"] = True
    if workers > 1 and checked.broker is None:
        logger.warning(
            "%d workers without a broker: publish() and broadcast() reach the clients of one worker only", workers
        )
    _Supervisor(app, plain, workers, (ssl_certfile, ssl_keyfile), log_level, ready).run()


def _ssl_context(certfile: str, keyfile: str | None) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(certfile, keyfile)
    return context


def _reserve_port(host: str | None) -> socket.socket:
    """A bound, not listening, SO_REUSEPORT socket on a free port: the workers
    bind the same port beside it, and nobody else can take it meanwhile."""
    if host is None:
        family = socket.AF_INET6 if socket.has_ipv6 else socket.AF_INET
        address: Any = ("::", 0) if socket.has_ipv6 else ("0.0.0.0", 0)
    else:
        info = socket.getaddrinfo(host, 0, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[0]
        family, address = info[0], info[4]
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        if host is None and family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind(address)
    except OSError:
        sock.close()
        raise
    return sock


class _Supervisor:
    def __init__(
        self,
        app: str | Setup,
        options: dict[str, Any],
        count: int,
        ssl_files: tuple[str | None, str | None],
        log_level: str | None,
        ready: Callable[[tuple[str, int]], Any] | None,
    ) -> None:
        self._app = app
        self._options = options
        self._count = count
        self._ssl_files = ssl_files
        self._log_level = log_level
        self._ready = ready
        self._context = multiprocessing.get_context("spawn")
        self._workers: dict[int, _Worker] = {}
        self._restarts: dict[int, float] = {}  # slot -> when to start it again
        self._fast_deaths: dict[int, int] = {}
        self._announced = False
        self._stopping = False

    def run(self) -> None:
        reservation = None
        if not self._options["port"]:
            reservation = _reserve_port(self._options["host"])
            self._options["port"] = reservation.getsockname()[1]
        wake_read, wake_write = os.pipe()
        os.set_blocking(wake_read, False)
        os.set_blocking(wake_write, False)
        previous_wakeup = signal.set_wakeup_fd(wake_write)
        previous = {signum: signal.signal(signum, self._on_signal) for signum in (signal.SIGTERM, signal.SIGINT)}
        try:
            for slot in range(self._count):
                self._start(slot)
            self._supervise(wake_read)
        finally:
            self._stop_all()
            for signum, handler in previous.items():
                signal.signal(signum, handler)
            signal.set_wakeup_fd(previous_wakeup)
            os.close(wake_read)
            os.close(wake_write)
            if reservation is not None:
                reservation.close()

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        self._stopping = True

    def _start(self, slot: int) -> None:
        ours, theirs = self._context.Pipe()
        process = self._context.Process(
            target=_worker_main,
            args=(self._app, self._options, self._ssl_files, self._log_level, theirs, slot),
            name=f"wsserver-worker-{slot}",
        )
        process.start()
        theirs.close()  # the worker has its copy
        self._workers[slot] = _Worker(slot, process, ours, time.monotonic())
        logger.info("worker %d started (pid %s)", slot, process.pid)

    def _supervise(self, wake_read: int) -> None:
        while not self._stopping:
            now = time.monotonic()
            for slot, when in list(self._restarts.items()):
                if when <= now:
                    del self._restarts[slot]
                    self._start(slot)
            timeout = min(self._restarts.values(), default=now + 60.0) - now
            waitables: list[Any] = [wake_read]
            for worker in self._workers.values():
                waitables.append(worker.process.sentinel)
                if not worker.ready:
                    waitables.append(worker.channel)
            woken = set(wait(waitables, max(timeout, 0.0)))
            if wake_read in woken:
                with contextlib.suppress(BlockingIOError):
                    os.read(wake_read, 512)
            for worker in list(self._workers.values()):
                if worker.channel in woken and not worker.ready:
                    self._receive(worker)
                if worker.process.sentinel in woken:
                    self._exited(worker)

    def _receive(self, worker: _Worker) -> None:
        try:
            message = worker.channel.recv()
        except (EOFError, OSError):
            return  # it died; its sentinel tells
        if message[0] == "ready":
            worker.ready = True
            if not self._announced and all(w.ready for w in self._workers.values()):
                self._announced = True
                logger.info("%d workers listening on %s", self._count, message[1])
                if self._ready is not None:
                    self._ready(message[1])

    def _exited(self, worker: _Worker) -> None:
        worker.process.join()
        worker.channel.close()
        del self._workers[worker.slot]
        if self._stopping:
            return
        code = worker.process.exitcode
        if not worker.ready and not self._announced:
            raise WorkerBootError(f"worker {worker.slot} exited with code {code} before listening")
        uptime = time.monotonic() - worker.started
        deaths = self._fast_deaths.get(worker.slot, 0) + 1 if uptime < _MIN_UPTIME else 0
        self._fast_deaths[worker.slot] = deaths
        delay = min(_MAX_RESTART_DELAY, 0.1 * 2**deaths) if deaths else 0.0
        logger.warning(
            "worker %d (pid %s) exited with code %s; restarting it in %.1f s",
            worker.slot, worker.process.pid, code, delay,
        )
        self._restarts[worker.slot] = time.monotonic() + delay

    def _stop_all(self) -> None:
        self._stopping = True
        self._restarts.clear()
        workers = list(self._workers.values())
        for worker in workers:
            if worker.process.is_alive():
                worker.process.terminate()  # SIGTERM: the worker closes gracefully
        deadline = time.monotonic() + float(self._options["close_timeout"]) + 5.0
        for worker in workers:
            worker.process.join(max(0.0, deadline - time.monotonic()))
            if worker.process.is_alive():
                logger.warning("worker %d (pid %s) did not stop in time; killing it", worker.slot, worker.process.pid)
                worker.process.kill()
                worker.process.join()
            worker.channel.close()
        self._workers.clear()


def _worker_main(
    app: str | Setup,
    options: dict[str, Any],
    ssl_files: tuple[str | None, str | None],
    log_level: str | None,
    channel: Connection,
    slot: int,
) -> None:
    """A worker process: serve the application until SIGTERM (or the parent's death)."""
    if log_level is not None:
        configure_logging(log_level)
    certfile, keyfile = ssl_files
    if certfile:
        options = {**options, "ssl": _ssl_context(certfile, keyfile)}

    def on_ready(servers: list[Server]) -> None:
        import asyncio

        loop = asyncio.get_running_loop()
        try:
            channel.send(("ready", servers[0].address))
        except OSError:  # the supervisor died meanwhile
            os.kill(os.getpid(), signal.SIGTERM)
            return

        def parent_gone() -> None:
            loop.remove_reader(channel.fileno())
            logger.warning("worker %d: the supervisor is gone; shutting down", slot)
            os.kill(os.getpid(), signal.SIGTERM)

        loop.add_reader(channel.fileno(), parent_gone)

    run_app(app, options, on_ready)
