"""Echo server: every message comes back as it came (text as text, binary as binary).

    python examples/echo.py            # ws://localhost:8080
    PORT=9999 python examples/echo.py

The Node.js original:

    const wss = new WebSocket.Server({ port: 8080 });
    wss.on('connection', (ws) => ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary })));
"""

import os

import wsserver as ws

wss = ws.Server({"port": int(os.environ.get("PORT", 8080))})


@wss.on("connection")
def on_connection(conn, request):
    print(f"client {request.remote_address} connected to {request.path}", flush=True)
    conn.on("message", lambda data: conn.send(data))  # str stays text, bytes stay binary
    conn.on("close", lambda code, reason: print(f"client {request.remote_address} left: {code}", flush=True))


wss.on("listening", lambda: print(f"echo server listening on ws://localhost:{wss.port}", flush=True))
ws.run()  # Node.js runs its event loop by itself; Python needs this line
