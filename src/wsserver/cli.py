"""The command line: ``python -m wsserver [options]``."""

from __future__ import annotations

import argparse
import logging
import ssl
import sys
from collections.abc import Sequence
from typing import Any

from . import demo
from .metrics import PROMETHEUS_CONTENT_TYPE, prometheus_text
from .options import ServerOptions
from .protocol.handshake import Request
from .runner import run
from .server import Server
from .upgrade import HTTPResponse

__all__ = ["main", "build_parser", "echo_setup", "serve_metrics"]

_DEFAULTS = ServerOptions()


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``python -m wsserver``."""
    parser = argparse.ArgumentParser(
        prog="python -m wsserver",
        description="Run a WebSocket server. Without an application it serves the demo: a web page "
        "at http://localhost:8080/ with an echo box and a chat room; the WebSocket path /chat is the "
        "chat, every other path echoes (text stays text, binary stays binary).",
    )
    parser.add_argument("--host", default=None, help="interface to bind (default: all, IPv4 and IPv6)")
    parser.add_argument("--port", type=int, default=8080, help="TCP port (default: 8080; 0 picks a free one)")
    parser.add_argument("--path", default=None, help="only this path upgrades; others get 404")
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
        help="log level of the 'wsserver' logger (default: warning; debug logs one line per connection)",
    )
    parser.add_argument(
        "--metrics-path", default=None, metavar="PATH",
        help="serve the server's counters in the Prometheus text format on this HTTP path (e.g. /metrics)",
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
    }
    if args.ssl_certfile:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(args.ssl_certfile, args.ssl_keyfile)
        options["ssl"] = context
    return options


def echo_setup(wss: Server) -> None:
    """The echo application: every message goes back as it came."""
    wss.on("connection", demo.echo)


def serve_metrics(wss: Server, path: str) -> None:
    """Answer plain HTTP ``GET path`` with ``wss.stats()`` in the Prometheus
    text format; other requests go to the ``httpHandler`` already set."""
    inner = wss.options.http_handler

    def http_handler(request: Request) -> Any:
        if request.method == "GET" and request.path == path:
            return HTTPResponse(200, prometheus_text(wss.stats()), content_type=PROMETHEUS_CONTENT_TYPE)
        return inner(request) if inner is not None else None

    wss.options.http_handler = http_handler


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m wsserver``."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("wsserver").setLevel(args.log_level.upper())
    try:
        wss = Server(server_options(args))
    except (TypeError, ValueError) as exc:
        print(f"wsserver: {exc}", file=sys.stderr)
        return 2
    demo.setup(wss)
    if args.metrics_path:
        serve_metrics(wss, args.metrics_path)
    secure = "s" if args.ssl_certfile else ""

    def ready(servers: list[Server]) -> None:
        host, port = servers[0].address or ("?", 0)
        shown = "localhost" if args.host is None else args.host
        print(
            f"wsserver: demo listening on ws{secure}://{shown}:{port}/ (bound to {host}); "
            f"open http{secure}://{shown}:{port}/ in a browser",
            flush=True,
        )

    try:
        run(wss, ready=ready)
    except OSError as exc:
        print(f"wsserver: cannot listen: {exc}", file=sys.stderr)
        return 1
    return 0
