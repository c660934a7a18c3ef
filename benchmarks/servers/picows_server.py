"""Echo + broadcast server on picows, for the benchmarks.

Echo on every path except /broadcast; on /broadcast every message received is
sent to every client currently connected to /broadcast (sender included).
picows hands over frames, not messages; the benchmark sends unfragmented
frames only, so one frame is one message here.
Text frames are decoded as UTF-8 (validated, as the other servers do) and the
original bytes are sent back as a text frame.
"""
import argparse
import asyncio

import uvloop
from picows import WSCloseCode, WSListener, WSMsgType, WSTransport, WSUpgradeRequest, ws_create_server

MAX_SIZE = 16 * 2**20  # >= 1 MiB, set explicitly (default is 10 MiB)

subscribers = set()


def _close(transport, frame):
    transport.send_close(frame.get_close_code())
    transport.disconnect()


class EchoListener(WSListener):
    def on_ws_frame(self, transport: WSTransport, frame):
        t = frame.msg_type
        if t == WSMsgType.BINARY:
            transport.send(WSMsgType.BINARY, frame.get_payload_as_memoryview())
        elif t == WSMsgType.TEXT:
            frame.get_payload_as_utf8_text()  # validates UTF-8 (raises on bad input)
            transport.send(WSMsgType.TEXT, frame.get_payload_as_memoryview())
        elif t == WSMsgType.CLOSE:
            _close(transport, frame)
        elif t == WSMsgType.PING:
            transport.send_pong(frame.get_payload_as_bytes())


class BroadcastListener(WSListener):
    def on_ws_connected(self, transport: WSTransport):
        subscribers.add(transport)

    def on_ws_disconnected(self, transport: WSTransport):
        subscribers.discard(transport)

    def on_ws_frame(self, transport: WSTransport, frame):
        t = frame.msg_type
        if t == WSMsgType.BINARY or t == WSMsgType.TEXT:
            if t == WSMsgType.TEXT:
                frame.get_payload_as_utf8_text()
            data = frame.get_payload_as_bytes()
            for peer in subscribers:
                peer.send(t, data)
        elif t == WSMsgType.CLOSE:
            _close(transport, frame)
        elif t == WSMsgType.PING:
            transport.send_pong(frame.get_payload_as_bytes())


def listener_factory(request: WSUpgradeRequest):
    if request.path.split(b"?", 1)[0] == b"/broadcast":
        return BroadcastListener()
    return EchoListener()


async def main(host, port):
    server = await ws_create_server(listener_factory, host, port, max_frame_size=MAX_SIZE)
    async with server:
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
