"""``run()``: drive the event loop for a plain script, as Node.js does by itself."""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from .server import Server, take_unstarted

__all__ = ["run", "serve", "new_event_loop", "run_in_new_loop"]

logger = logging.getLogger("wsserver")


def new_event_loop() -> asyncio.AbstractEventLoop:
    """uvloop's event loop when it is installed, else asyncio's."""
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


async def serve(*servers: Server, ready: Callable[[list[Server]], Any] | None = None) -> None:
    """Start ``servers``, wait for SIGINT/SIGTERM (or for them to close), close them."""
    loop = asyncio.get_running_loop()
    for server in servers:
        await server.start()
    if ready is not None:
        ready(list(servers))
    stop = asyncio.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(signum, stop.set)
        except (NotImplementedError, RuntimeError, ValueError):  # not the main thread
            pass
    waits: list[Awaitable[Any]] = [server.wait_closed() for server in servers]
    stopping = asyncio.ensure_future(stop.wait())
    all_closed = asyncio.ensure_future(asyncio.gather(*waits))
    await asyncio.wait([stopping, all_closed], return_when=asyncio.FIRST_COMPLETED)
    if stop.is_set():
        logger.info("shutting down")
    await asyncio.gather(*(server._close_in_loop() for server in servers))
    stopping.cancel()
    await all_closed
    for signum in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.remove_signal_handler(signum)
        except (NotImplementedError, RuntimeError, ValueError):
            pass


def run(*servers: Server, ready: Callable[[list[Server]], Any] | None = None) -> None:
    """Serve until Ctrl-C or SIGTERM, then close gracefully.

    With no arguments it runs every ``Server`` created so far outside an event
    loop. Uses uvloop when installed. ``ready(servers)`` is called once they
    listen.
    """
    targets = list(servers) or take_unstarted()
    if not targets:
        raise RuntimeError("run() found no server to run: create a wsserver.Server first")
    run_in_new_loop(serve(*targets, ready=ready))


def run_in_new_loop(main: Coroutine[Any, Any, None]) -> None:
    """Run ``main`` to completion on a new event loop (uvloop's when installed)."""
    loop = new_event_loop()
    try:
        asyncio.set_event_loop(loop)
        loop.run_until_complete(main)
    finally:
        try:
            loop.run_until_complete(loop.shutdown_asyncgens())
        finally:
            asyncio.set_event_loop(None)
            loop.close()
