"""A broadcast ticker inside an asyncio program: every client gets each tick.

``async with ws.Server(...)`` starts the server in the running event loop and
closes it (every client gets 1001) when the block ends; Ctrl-C ends it.

    python examples/ticker.py
    TICK_SECONDS=0.1 python examples/ticker.py
"""

import asyncio
import contextlib
import json
import os
import random
import time

import wsserver as ws


async def main():
    interval = float(os.environ.get("TICK_SECONDS", 1.0))
    async with ws.Server(port=int(os.environ.get("PORT", 8080))) as wss:
        print(f"ticker listening on ws://localhost:{wss.port}", flush=True)
        price = 100.0
        for sequence in range(1, 1_000_000):
            price = round(price * (1 + random.uniform(-0.01, 0.01)), 2)
            tick = {"seq": sequence, "symbol": "WSS", "price": price, "time": time.time()}
            wss.broadcast(json.dumps(tick))  # framed once, written to every client
            await asyncio.sleep(interval)


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C: the server closes on the way out
        asyncio.run(main())
