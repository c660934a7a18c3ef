"""Server statistics in the Prometheus text exposition format (version 0.0.4).

``python -m wsserver --metrics-path /metrics`` serves :func:`prometheus_text`
of the running server on that path; an application can do the same through
its ``httpHandler``::

    def http_handler(request):
        if request.path == "/metrics":
            return HTTPResponse(200, prometheus_text(wss.stats()), content_type=PROMETHEUS_CONTENT_TYPE)
        return None  # everything else: 426 Upgrade Required
"""

from __future__ import annotations

from .server import ServerStats

__all__ = ["PROMETHEUS_CONTENT_TYPE", "prometheus_text"]

#: the ``Content-Type`` of the text exposition format
PROMETHEUS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def prometheus_text(stats: ServerStats) -> str:
    """``stats`` as Prometheus metrics: one sample per counter, labelled by
    HTTP status for refused handshakes and by close code for closes."""
    scalars = (
        ("wsserver_connections_open", "gauge", "WebSocket connections open now.", stats["connections_open"]),
        ("wsserver_connections_total", "counter", "WebSocket connections accepted.", stats["connections_total"]),
        ("wsserver_messages_received_total", "counter", "Data messages received.", stats["messages_in"]),
        ("wsserver_messages_sent_total", "counter", "Data messages written to the network.", stats["messages_out"]),
        ("wsserver_received_bytes_total", "counter", "WebSocket bytes received after the handshake.", stats["bytes_in"]),
        ("wsserver_sent_bytes_total", "counter", "WebSocket bytes written after the handshake.", stats["bytes_out"]),
    )
    lines: list[str] = []
    for name, kind, description, value in scalars:
        lines += [f"# HELP {name} {description}", f"# TYPE {name} {kind}", f"{name} {value}"]
    labelled = (
        ("wsserver_handshakes_refused_total", "Opening handshakes refused, by HTTP status.", "status",
         stats["handshakes_refused"]),
        ("wsserver_closes_total", "Connections ended, by close code (1006: TCP dropped).", "code",
         stats["close_codes"]),
    )
    for name, description, label, counts in labelled:
        lines += [f"# HELP {name} {description}", f"# TYPE {name} counter"]
        lines += [f'{name}{{{label}="{key}"}} {count}' for key, count in sorted(counts.items())]
    return "\n".join(lines) + "\n"
