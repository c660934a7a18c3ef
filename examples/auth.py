"""Authentication in the handshake, through ``acceptHandler``.

The client shows a token in the query (``?token=...``) or in an
``Authorization: Bearer ...`` header; the handler looks it up (here in a dict,
in real life in a database: the handler may be ``async``). A bad token gets
HTTP 401 and no WebSocket at all. The handler also picks the subprotocol.

    python examples/auth.py
    python -c "from websockets.sync.client import connect; \
        print(connect('ws://localhost:8080/?token=s3cret', subprotocols=['chat']).recv())"
"""

import asyncio
import os

import wsserver as ws

USERS_BY_TOKEN = {"s3cret": "ada", "hunter2": "grace"}


def token_of(request):
    authorization = request.headers.get("Authorization", "")
    if authorization.startswith("Bearer "):
        return authorization.removeprefix("Bearer ")
    return request.params.get("token", [""])[0]


async def accept(protocols, request):
    """Return a subprotocol the client offered (or True for none) to accept,
    False to refuse with 401."""
    await asyncio.sleep(0)  # stands for an asynchronous lookup
    if token_of(request) not in USERS_BY_TOKEN:
        return False
    return "chat" if "chat" in protocols else True


wss = ws.Server({"port": int(os.environ.get("PORT", 8080)), "acceptHandler": accept})


@wss.on("connection")
def on_connection(conn, request):
    user = USERS_BY_TOKEN[token_of(request)]
    conn.send(f"hello {user} (subprotocol: {conn.protocol})")
    conn.on("message", lambda data: conn.send(f"{user} said: {data}"))


wss.on("listening", lambda: print(f"auth example listening on ws://localhost:{wss.port}/?token=s3cret", flush=True))
ws.run()
