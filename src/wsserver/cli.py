"""The command line: ``python -m wsserver [module:setup] [options]``.

With an application (``module:setup``, a function that receives the
:class:`~wsserver.Server` before it listens) it serves that application, in
this process or in ``--workers N`` processes (:mod:`wsserver.workers`); without
one it runs the echo server.
"""

from __future__ import annotations

import argparse
import ssl
import sys
from collections.abc import Sequence
from typing import Any

from .app import AppLoadError, Setup, configure_logging, load_app, run_app
from .connection import WebSocketConnection
from .options import ServerOptions, normalize_options
from .server import Server
from .workers import WorkerBootError, run_workers

__all__ = ["build_parser", "echo_setup", "main"]

_DEFAULTS = ServerOptions()


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``python -m wsserver``."""
    parser = argparse.ArgumentParser(
        prog="python -m wsserver",
        description="Run a WebSocket server. Without an application it echoes every message "
        "(text stays text, binary stays binary).",
    )
    parser.add_argument(
        "app", nargs="?", default=None, metavar="module:setup",
        help="the application: a function setup(wss) (may be async) that receives the Server "
        "before it listens and registers its listeners; the current directory is importable",
    )
    parser.add_argument("--host", default=None, help="interface to bind (default: all, IPv4 and IPv6)")
    parser.add_argument("--port", type=int, default=8080, help="TCP port (default: 8080; 0 picks a free one)")
    parser.add_argument("--path", default=None, help="only this path upgrades; others get 404")
    parser.add_argument(
        "--workers", type=int, default=1,
        help="processes sharing the port with SO_REUSEPORT, each calling setup(wss); "
        "crashed ones are restarted (default: 1, in this process)",
    )
    parser.add_argument(
        "--broker", default=None, metavar="URL",
        help="Redis URL (redis://host:port/db) that carries publish() and broadcast() "
        "to every worker and machine on it; see docs/scaling.md",
    )
    parser.add_argument(
        "--max-payload", type=int, default=_DEFAULTS.max_payload,
        help=f"largest message in bytes (default: {_DEFAULTS.max_payload})",
    )
    parser.add_argument(
        "--backlog", type=int, default=_DEFAULTS.backlog,
        help=f"most concurrent connections; more get HTTP 503 (default: {_DEFAULTS.backlog})",
    )
    parser.add_argument(
        "--per-message-deflate", action="store_true",
        help="offer permessage-deflate compression (RFC 7692) with ws' default settings",
    )
    parser.add_argument("--ssl-certfile", default=None, help="certificate (PEM) to serve wss://")
    parser.add_argument("--ssl-keyfile", default=None, help="private key (PEM) of --ssl-certfile")
    parser.add_argument(
        "--log-level", default="warning",
        choices=["debug", "info", "warning", "error", "critical"],
        help="log level of the 'wsserver' logger (default: warning)",
    )
    return parser


def server_options(args: argparse.Namespace) -> dict[str, Any]:
    """Server options from parsed arguments."""
    options: dict[str, Any] = {
        "host": args.host,
        "port": args.port,
        "path": args.path,
        "max_payload": args.max_payload,
        "backlog": args.backlog,
        "per_message_deflate": bool(args.per_message_deflate),
        "broker": args.broker,
    }
    if args.ssl_certfile:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(args.ssl_certfile, args.ssl_keyfile)
        options["ssl"] = context
    return options


def echo_setup(wss: Server) -> None:
    """The echo application: every message goes back as it came."""

    def on_connection(conn: WebSocketConnection) -> None:
        # not conn.on("message", conn.send): the second argument of 'message'
        # (is_binary) would land in send()'s ``mask`` parameter
        conn.on("message", lambda data: conn.send(data))

    wss.on("connection", on_connection)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m wsserver``."""
    args = build_parser().parse_args(argv)
    configure_logging(args.log_level)
    try:
        setup: str | Setup = args.app if args.app is not None else echo_setup
        load_app(setup)  # fail here rather than in every worker
        options = server_options(args)
        normalize_options(options, {})
        if args.workers < 1:
            raise ValueError(f"--workers must be at least 1, not {args.workers}")
    except (AppLoadError, TypeError, ValueError, OSError, ssl.SSLError) as exc:
        print(f"wsserver: {exc}", file=sys.stderr)
        return 2
    what = args.app or "echo server"
    scheme = "wss" if args.ssl_certfile else "ws"
    shown = "localhost" if args.host is None else args.host

    def announce(address: tuple[str, int], workers: str = "") -> None:
        print(
            f"wsserver: {what} listening on {scheme}://{shown}:{address[1]}/ (bound to {address[0]}{workers})",
            flush=True,
        )

    try:
        if args.workers == 1:
            run_app(setup, options, lambda servers: announce(servers[0].address or ("?", 0)))
        else:
            options.pop("ssl", None)
            run_workers(
                setup, options, workers=args.workers, ssl_certfile=args.ssl_certfile,
                ssl_keyfile=args.ssl_keyfile, log_level=args.log_level,
                ready=lambda address: announce(address, f", {args.workers} workers"),
            )
    except OSError as exc:
        print(f"wsserver: cannot listen: {exc}", file=sys.stderr)
        return 1
    except WorkerBootError as exc:
        print(f"wsserver: {exc}", file=sys.stderr)
        return 1
    return 0
