"""Applications: ``module:setup`` strings and running ``setup(wss)`` in a process.

An application is a callable ``setup(wss)`` that receives the
:class:`~wsserver.Server` before it listens and registers its listeners (it
may be a coroutine function). ``python -m wsserver module:setup`` loads it with
:func:`load_app` and serves it with :func:`run_app`, in this process or in
each worker (:mod:`wsserver.workers`).
"""

from __future__ import annotations

import importlib
import inspect
import logging
import os
import sys
from collections.abc import Callable, Mapping
from typing import Any

from .runner import run_in_new_loop, serve
from .server import Server, take_unstarted

__all__ = ["AppLoadError", "Setup", "configure_logging", "load_app", "run_app"]

#: an application: called with the server before it listens
Setup = Callable[[Server], Any]


class AppLoadError(Exception):
    """A ``module:setup`` string that does not name a callable."""


def configure_logging(level: str) -> None:
    """Log to stderr, with the ``wsserver`` logger at ``level`` (``"info"``, ...)."""
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s[%(process)d]: %(message)s")
    logging.getLogger("wsserver").setLevel(level.upper())


def load_app(spec: str | Setup) -> Setup:
    """The callable that ``spec`` (``"package.module:function"``) names.

    The current directory is importable, as with ``python -m``. A callable is
    returned as it is.
    """
    if callable(spec):
        return spec
    module_name, _, attribute = spec.partition(":")
    if not module_name or not attribute:
        raise AppLoadError(f"an application is 'module:function', not {spec!r}")
    if os.getcwd() not in sys.path and "" not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name is not None and (module_name == exc.name or module_name.startswith(exc.name + ".")):
            raise AppLoadError(f"cannot import module {module_name!r}: {exc}") from exc
        raise  # a module that the application itself imports is missing
    target: Any = module
    for name in attribute.split("."):
        try:
            target = getattr(target, name)
        except AttributeError:
            raise AppLoadError(f"module {module_name!r} has no attribute {attribute!r}") from None
    if not callable(target):
        raise AppLoadError(f"{spec!r} is not callable")
    return target  # type: ignore[no-any-return]


def run_app(
    setup: str | Setup,
    options: Mapping[str, Any],
    ready: Callable[[list[Server]], Any] | None = None,
) -> None:
    """Create a server with ``options``, call ``setup(wss)``, serve until SIGINT/SIGTERM.

    ``setup`` runs before the server listens, so no connection arrives
    before its listeners are in place. Servers that ``setup`` creates itself
    are served too. ``ready(servers)`` is called once they all listen.
    """
    application = load_app(setup)
    wss = Server(options)  # outside the event loop: it waits for serve()

    async def main() -> None:
        result = application(wss)
        if inspect.isawaitable(result):
            await result
        servers = [wss, *(server for server in take_unstarted() if server is not wss)]
        await serve(*servers, ready=ready)

    run_in_new_loop(main())
