"""Echo + broadcast server on `websockets` (new asyncio API), for the benchmarks.

Echo on every path except /broadcast; on /broadcast every message received is
sent to every client currently connected to /broadcast (sender included).
"""
import argparse
import asyncio

import uvloop
import websockets
from websockets.asyncio.server import broadcast, serve
from websockets.exceptions import ConnectionClosed

MAX_SIZE = 16 * 2**20  # >= 1 MiB, set explicitly (default is 1 MiB)

subscribers = set()


async def handler(ws):
    try:
        if ws.request.path.split("?", 1)[0] == "/broadcast":
            subscribers.add(ws)
            try:
                async for message in ws:
                    broadcast(subscribers, message)
            finally:
                subscribers.discard(ws)
        else:
            async for message in ws:  # str for text frames, bytes for binary
                await ws.send(message)
    except ConnectionClosed:
        pass


async def main(host, port):
    async with serve(handler, host, port, compression=None, max_size=MAX_SIZE) as server:
        await server.serve_forever()


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    args = ap.parse_args()
    try:
        uvloop.run(main(args.host, args.port))
    except KeyboardInterrupt:
        pass
