"""An application for the command line, uvicorn-style: chat rooms with topics.

    cd examples
    python -m wsserver app:setup --port 8000              # ws://localhost:8000/?room=lobby
    python -m wsserver app:setup --workers 4 --broker redis://localhost:6379/0

The command line creates the server from its flags and calls ``setup(wss)``
before it listens (in every worker with ``--workers``). Each client joins the
room named in its URL; a message goes to everyone in that room. With
``--broker`` the rooms span every worker and every machine on that Redis.
"""

import json


def setup(wss):
    @wss.on("connection")
    def on_connection(conn, request):
        room = request.params.get("room", ["lobby"])[0]
        conn.subscribe(room)
        conn.on("message", lambda text: wss.publish(room, json.dumps({"room": room, "text": text})))

    def http_handler(request):
        if request.path == "/healthz":
            return 200, "ok\n"
        return None  # 426 Upgrade Required

    wss.options.http_handler = http_handler
