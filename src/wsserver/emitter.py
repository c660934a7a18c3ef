"""``EventEmitter``: Node.js-style events for servers and connections.

Listeners may take fewer arguments than an event carries (as in JavaScript),
may be plain functions or coroutine functions (run as tasks), and an exception
in one is logged and reported through :meth:`EventEmitter._listener_failed`
instead of propagating into the server.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Callable
from inspect import CO_COROUTINE, CO_VARARGS
from types import FunctionType, MethodType
from typing import Any, TypeVar, overload

__all__ = ["EventEmitter", "Listener"]

logger = logging.getLogger("wsserver")

Listener = Callable[..., Any]
_L = TypeVar("_L", bound=Listener)

# Strong references to listener tasks, so none is garbage-collected mid-run.
_tasks: set[asyncio.Future[Any]] = set()


def _positional_capacity(listener: Listener) -> int:
    """How many positional arguments ``listener`` accepts (-1: any number).

    Plain functions and bound methods are read off their code object (cheap:
    listeners are registered per connection); other callables go through
    ``inspect.signature``.
    """
    function, bound = listener, 0
    if isinstance(listener, MethodType):
        function, bound = listener.__func__, 1
    if isinstance(function, FunctionType):
        code = function.__code__
        if code.co_flags & CO_VARARGS:
            return -1
        return code.co_argcount - bound
    try:
        signature = inspect.signature(listener)
    except (TypeError, ValueError):
        return -1
    count = 0
    for parameter in signature.parameters.values():
        if parameter.kind is parameter.VAR_POSITIONAL:
            return -1
        if parameter.kind in (parameter.POSITIONAL_ONLY, parameter.POSITIONAL_OR_KEYWORD):
            count += 1
    return count


def _is_coroutine_function(listener: Listener) -> bool:
    function = listener.__func__ if isinstance(listener, MethodType) else listener
    if isinstance(function, FunctionType):
        return bool(function.__code__.co_flags & CO_COROUTINE)
    return inspect.iscoroutinefunction(listener)


class _Entry:
    __slots__ = ("listener", "nargs", "is_async", "once", "plain")

    def __init__(self, listener: Listener, once: bool) -> None:
        self.listener = listener
        self.nargs = _positional_capacity(listener)
        self.is_async = _is_coroutine_function(listener)
        self.once = once
        #: a plain function listener: hot paths may call it directly
        self.plain = not once and not self.is_async


class EventEmitter:
    """Register listeners with :meth:`on`, fire them with :meth:`emit`."""

    __slots__ = ("_events",)

    def __init__(self) -> None:
        self._events: dict[str, list[_Entry]] = {}

    @overload
    def on(self, event: str) -> Callable[[_L], _L]: ...

    @overload
    def on(self, event: str, listener: _L) -> _L: ...

    def on(self, event: str, listener: Listener | None = None) -> Any:
        """Call ``listener`` on every ``event``; without it, act as a decorator."""
        if listener is None:
            return lambda function: self._add(event, function, False)
        return self._add(event, listener, False)

    add_listener = on

    @overload
    def once(self, event: str) -> Callable[[_L], _L]: ...

    @overload
    def once(self, event: str, listener: _L) -> _L: ...

    def once(self, event: str, listener: Listener | None = None) -> Any:
        """Call ``listener`` on the next ``event`` only."""
        if listener is None:
            return lambda function: self._add(event, function, True)
        return self._add(event, listener, True)

    def _add(self, event: str, listener: _L, once: bool) -> _L:
        if not callable(listener):
            raise TypeError(f"listener must be callable, not {type(listener).__name__}")
        entries = self._events.get(event)
        # copy on write: emit() may be iterating over the current list
        self._events[event] = [*entries, _Entry(listener, once)] if entries else [_Entry(listener, once)]
        return listener

    def off(self, event: str, listener: Listener) -> None:
        """Remove one registration of ``listener`` for ``event``: the most
        recently added one, as in Node.js."""
        entries = self._events.get(event)
        if not entries:
            return
        for entry in reversed(entries):
            if entry.listener == listener:
                self._remove_entry(event, entry)
                return

    def _remove_entry(self, event: str, entry: _Entry) -> None:
        entries = self._events.get(event)
        if not entries or entry not in entries:
            return
        # copy on write: emit() may be iterating over the current list
        remaining = [other for other in entries if other is not entry]
        if remaining:
            self._events[event] = remaining
        else:
            del self._events[event]

    remove_listener = off

    def remove_all_listeners(self, event: str | None = None) -> None:
        """Remove every listener of ``event``, or of every event."""
        if event is None:
            self._events.clear()
        else:
            self._events.pop(event, None)

    def listeners(self, event: str) -> list[Listener]:
        """The listeners of ``event``, in the order they were added."""
        return [entry.listener for entry in self._events.get(event, ())]

    def listener_count(self, event: str) -> int:
        """How many listeners ``event`` has."""
        return len(self._events.get(event, ()))

    def emit(self, event: str, *args: Any) -> bool:
        """Call the listeners of ``event`` with ``args``; whether there were any."""
        entries = self._events.get(event)
        if not entries:
            return False
        for entry in entries:
            if entry.once:
                self._remove_entry(event, entry)
            nargs = entry.nargs
            try:
                result = entry.listener(*args) if nargs < 0 or nargs >= len(args) else entry.listener(*args[:nargs])
            except Exception as exc:  # a listener's bug must not reach the server
                self._listener_failed(event, exc)
                continue
            if entry.is_async:
                self._run_coroutine(event, result)
        return True

    def _run_coroutine(self, event: str, coroutine: Any) -> asyncio.Future[Any]:
        """Run an async listener's coroutine as a task (kept referenced until done)."""
        task: asyncio.Future[Any] = asyncio.ensure_future(coroutine)
        _tasks.add(task)
        task.add_done_callback(lambda done: self._task_done(event, done))
        return task

    def _task_done(self, event: str, task: asyncio.Future[Any]) -> None:
        _tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            exc = task.exception()
            assert isinstance(exc, BaseException)
            if isinstance(exc, Exception):
                self._listener_failed(event, exc)

    def _listener_failed(self, event: str, exc: Exception) -> None:
        """A listener raised: log it with its traceback, then emit ``error``."""
        logger.error("exception in %r listener", event, exc_info=exc)
        if event != "error":
            self.emit("error", exc)
