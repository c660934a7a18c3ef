"""The application of the scale-out tests: clients drive topics with text commands.

``sub T`` / ``unsub T`` answer ``subscribed T`` / ``unsubscribed T`` once the
broker (if any) has the change; ``pub T DATA`` publishes DATA to T;
``pubx T DATA`` publishes excluding the sender; ``bin T HEX`` publishes bytes;
``bcast DATA`` broadcasts; ``topics`` answers ``topics a,b``; ``pid`` answers
``pid N``; ``count T DATA`` publishes and answers ``count N`` (local
deliveries). Used in-process by the tests and as ``scaleout_app:setup`` by
``python -m wsserver``.
"""

from __future__ import annotations

import os

import wsserver


def setup(wss: wsserver.Server) -> None:
    def on_connection(conn: wsserver.WebSocketConnection) -> None:
        async def confirm(reply: str) -> None:
            await wss.topics_synced()
            conn.send(reply)

        def on_message(data: str | bytes) -> None:
            if not isinstance(data, str):
                return
            command, _, rest = data.partition(" ")
            if command == "pub":
                topic, _, payload = rest.partition(" ")
                wss.publish(topic, payload)
            elif command == "pubx":
                topic, _, payload = rest.partition(" ")
                wss.publish(topic, payload, exclude=conn)
            elif command == "count":
                topic, _, payload = rest.partition(" ")
                conn.send(f"count {wss.publish(topic, payload)}")
            elif command == "bin":
                topic, _, payload = rest.partition(" ")
                wss.publish(topic, bytes.fromhex(payload))
            elif command == "bcast":
                wss.broadcast(rest)
            elif command == "sub":
                conn.subscribe(rest)
                _spawn(confirm(f"subscribed {rest}"))
            elif command == "unsub":
                conn.unsubscribe(rest)
                _spawn(confirm(f"unsubscribed {rest}"))
            elif command == "topics":
                conn.send("topics " + ",".join(sorted(conn.topics)))
            elif command == "pid":
                conn.send(f"pid {os.getpid()}")

        conn.on("message", on_message)

    wss.on("connection", on_connection)


_tasks: set[object] = set()


def _spawn(coroutine: object) -> None:
    import asyncio

    task = asyncio.ensure_future(coroutine)  # type: ignore[arg-type]
    _tasks.add(task)
    task.add_done_callback(_tasks.discard)
