"""Echo + broadcast server on aiohttp, for the benchmarks.

Echo on every path except /broadcast; on /broadcast every message received is
sent to every client currently connected to /broadcast (sender included).
"""
import argparse
import asyncio
import signal

import uvloop
from aiohttp import WSMsgType, web

MAX_SIZE = 16 * 2**20  # >= 1 MiB, set explicitly (default is 4 MiB)

subscribers = set()


async def handler(request):
    ws = web.WebSocketResponse(compress=False, max_msg_size=MAX_SIZE)
    await ws.prepare(request)
    if request.path == "/broadcast":
        subscribers.add(ws)
        try:
            async for msg in ws:
                if msg.type == WSMsgType.BINARY:
                    for peer in list(subscribers):
                        if not peer.closed:
                            await peer.send_bytes(msg.data)
                elif msg.type == WSMsgType.TEXT:
                    for peer in list(subscribers):
                        if not peer.closed:
                            await peer.send_str(msg.data)
        finally:
            subscribers.discard(ws)
    else:
        async for msg in ws:
            if msg.type == WSMsgType.BINARY:
                await ws.send_bytes(msg.data)
            elif msg.type == WSMsgType.TEXT:
                await ws.send_str(msg.data)
    return ws


async def main(host, port):
    app = web.Application()
    app.router.add_get("/{tail:.*}", handler)
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await runner.cleanup()


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    args = ap.parse_args()
    uvloop.run(main(args.host, args.port))
