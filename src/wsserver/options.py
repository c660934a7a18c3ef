"""Server options: the seed's camelCase names and their snake_case twins.

``ws.Server({'port': 8080, 'maxPayload': 1024})`` and
``ws.Server(port=8080, max_payload=1024)`` mean the same; both spellings may be
mixed. An unknown option is a ``TypeError``, as a misspelt keyword would be.
"""

from __future__ import annotations

import re
import ssl as ssl_module
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from typing import Any

from .protocol.deflate import DeflateSettings

__all__ = ["ServerOptions", "deflate_settings", "normalize_options"]

_CAMEL = re.compile(r"(?<=[a-z0-9])([A-Z])")


def _snake(name: str) -> str:
    return _CAMEL.sub(lambda match: "_" + match.group(1).lower(), name)


@dataclass
class ServerOptions:
    """Every server option with its default; docs/security.md explains the limits."""

    port: int | None = None
    host: str | None = None
    #: most concurrent connections, handshakes included; more get HTTP 503
    backlog: int = 10_000
    client_tracking: bool = True
    #: largest message in bytes (after reassembly and decompression); more: close 1009
    max_payload: int = 16 * 1024 * 1024
    accept_handler: Callable[..., Any] | None = None
    per_message_deflate: bool | Mapping[str, Any] = False
    path: str | None = None
    ssl: ssl_module.SSLContext | None = None
    http_handler: Callable[..., Any] | None = None
    auto_pong: bool = True
    #: seconds of silence before a keepalive ping (``None``: no keepalive)
    ping_interval: float | None = 20.0
    #: seconds a pinged peer has to answer before it is dropped (``None``: never)
    ping_timeout: float | None = 20.0
    #: seconds to wait for the peer's close frame (or for the socket to flush) before dropping
    close_timeout: float = 10.0
    #: seconds from TCP accept to a complete request head (and for the TLS handshake); then 408
    handshake_timeout: float = 10.0
    #: bytes of request line and headers; more: 431
    max_header_size: int = 16 * 1024
    #: request headers; more: 431
    max_headers: int = 128
    #: frames of one message; more: close 1008
    max_fragments: int = 100_000
    #: unsent bytes per connection; a peer that lets more pile up is dropped (``SlowConsumer``)
    max_buffered_amount: int = 32 * 1024 * 1024
    #: async listener calls running per connection; at this many, reading pauses
    max_listener_tasks: int = 16
    reuse_port: bool = False
    broker: str | None = None

    def validate(self) -> None:
        """Raise ``TypeError``/``ValueError`` for options that cannot work."""
        if self.port is None:
            raise TypeError("the 'port' option is required (0 picks a free port)")
        if not isinstance(self.port, int) or not 0 <= self.port <= 65535:
            raise ValueError(f"port must be an integer from 0 to 65535, not {self.port!r}")
        for name in (
            "backlog", "max_payload", "max_header_size", "max_headers", "max_fragments",
            "max_buffered_amount", "max_listener_tasks",
        ):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, not {value!r}")
        for name in ("close_timeout", "handshake_timeout"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive")
        for name in ("ping_interval", "ping_timeout"):
            value = getattr(self, name)
            if value is not None and value <= 0:
                raise ValueError(f"{name} must be positive or None")
        if self.accept_handler is not None and not callable(self.accept_handler):
            raise TypeError("acceptHandler must be callable")
        if self.http_handler is not None and not callable(self.http_handler):
            raise TypeError("httpHandler must be callable")
        deflate_settings(self.per_message_deflate)
        if self.broker is not None and (
            not isinstance(self.broker, str) or not self.broker.startswith(("redis://", "rediss://", "unix://"))
        ):
            raise ValueError(f"broker must be a redis://, rediss:// or unix:// URL, not {self.broker!r}")


def deflate_settings(value: bool | Mapping[str, Any] | None) -> DeflateSettings | None:
    """The ``perMessageDeflate`` option as settings: ``False``/``None`` (off),
    ``True`` (ws' defaults) or a dict of settings in camelCase or snake_case."""
    if value is None or value is False:
        return None
    if value is True:
        return DeflateSettings()
    if isinstance(value, Mapping):
        settings: dict[str, Any] = {}
        for name, setting in value.items():
            key = _snake(name)
            if key in settings:
                raise TypeError(f"perMessageDeflate setting {name!r} given twice")
            settings[key] = setting
        return DeflateSettings.from_mapping(settings)
    raise TypeError(f"perMessageDeflate must be a bool or a dict, not {type(value).__name__}")


_NAMES = {f.name for f in fields(ServerOptions)}


def normalize_options(options: Mapping[str, Any] | None, keywords: Mapping[str, Any]) -> ServerOptions:
    """Merge a seed-style options dict and keyword options into ``ServerOptions``."""
    merged: dict[str, Any] = {}
    for source in (options or {}), keywords:
        for name, value in source.items():
            key = _snake(name)
            if key not in _NAMES:
                raise TypeError(f"unknown server option {name!r}")
            if key in merged and merged[key] is not value:
                raise TypeError(f"option {name!r} given twice")
            merged[key] = value
    result = ServerOptions(**merged)
    result.validate()
    return result
