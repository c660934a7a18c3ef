"""The application that ``benchmarks/fanout.py`` serves: ``python -m wsserver fanout_app:setup``.

A client sends ``sub TOPIC`` (answered with ``ok`` once the broker, if any,
has the subscription) or ``pub TOPIC PAYLOAD`` (published to TOPIC).
"""

from __future__ import annotations

import asyncio

import wsserver

_tasks: set[asyncio.Task[None]] = set()


def setup(wss: wsserver.Server) -> None:
    def on_connection(conn: wsserver.WebSocketConnection) -> None:
        async def confirm() -> None:
            await wss.topics_synced()
            conn.send("ok")

        def on_message(data: str | bytes) -> None:
            if type(data) is not str:
                return
            if data.startswith("pub "):
                topic, _, payload = data[4:].partition(" ")
                wss.publish(topic, payload)
            elif data.startswith("sub "):
                conn.subscribe(data[4:])
                task = asyncio.ensure_future(confirm())
                _tasks.add(task)
                task.add_done_callback(_tasks.discard)

        conn.on("message", on_message)

    wss.on("connection", on_connection)
