"""Chat room: every message goes to every other client, with the sender's name.

    python examples/chat.py            # ws://localhost:8080/?name=ada
    websocat ws://localhost:8080/?name=ada

``wss.broadcast`` frames a message once and writes it to every client
(``exclude`` leaves the sender out).
"""

import os

import wsserver as ws

wss = ws.Server(port=int(os.environ.get("PORT", 8080)))


@wss.on("connection")
def on_connection(conn, request):
    name = request.params.get("name", ["anonymous"])[0][:32]
    wss.broadcast(f"* {name} joined ({len(wss.clients)} online)", exclude=conn)
    conn.send(f"* welcome {name}, {len(wss.clients)} online")

    @conn.on("message")
    def on_message(data, is_binary):
        if is_binary:
            conn.close(1003, "text only")  # 1003: unsupported data
        else:
            wss.broadcast(f"{name}: {data}", exclude=conn)

    conn.on("close", lambda: wss.broadcast(f"* {name} left"))


wss.on("listening", lambda: print(f"chat listening on ws://localhost:{wss.port}/?name=you", flush=True))
ws.run()
