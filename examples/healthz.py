"""Plain HTTP next to WebSocket: a health check and metrics through ``httpHandler``.

A request without ``Upgrade: websocket`` goes to ``httpHandler``; returning
``None`` gives the default answer, 426 Upgrade Required.

    python examples/healthz.py
    curl localhost:8080/healthz     # {"status": "ok", "connections": 0}
    curl localhost:8080/metrics     # Prometheus text format
    curl -i localhost:8080/         # 426 Upgrade Required
"""

import json
import os

import wsserver as ws
from wsserver.metrics import PROMETHEUS_CONTENT_TYPE, prometheus_text


def http_handler(request):
    if request.path == "/healthz":
        body = json.dumps({"status": "ok", "connections": wss.stats()["connections_open"]})
        return ws.HTTPResponse(200, body, content_type="application/json")
    if request.path == "/metrics":
        return ws.HTTPResponse(200, prometheus_text(wss.stats()), content_type=PROMETHEUS_CONTENT_TYPE)
    return None  # everything else: 426 Upgrade Required


wss = ws.Server(port=int(os.environ.get("PORT", 8080)), http_handler=http_handler)
wss.on("connection", lambda conn: conn.on("message", lambda data: conn.send(data)))
wss.on("listening", lambda: print(f"listening on http://localhost:{wss.port}/healthz", flush=True))
ws.run()
