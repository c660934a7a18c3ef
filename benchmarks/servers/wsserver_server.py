"""Echo + broadcast server on OUR library, wsserver, for the benchmarks.

Echo on every path except /broadcast; on /broadcast every message received is
sent to every client currently connected to /broadcast (sender included).
Run with PYTHONPATH pointing at the repository's src/ (benchmarks/run.py does).
"""
import argparse

import wsserver as ws

MAX_SIZE = 16 * 2**20  # >= 1 MiB, set explicitly


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    args = ap.parse_args()

    try:
        wss = ws.Server(port=args.port, host=args.host, max_payload=MAX_SIZE)
    except TypeError:  # option not supported: the default is used
        wss = ws.Server(port=args.port, host=args.host)

    subscribers = set()
    others = [0]  # connections not on /broadcast

    def on_connection(conn, request):
        if request.path.split("?", 1)[0] == "/broadcast":
            subscribers.add(conn)

            def on_message(data, is_binary):
                if others[0] == 0:
                    wss.broadcast(data)  # every client is a subscriber: frame once
                else:
                    for peer in subscribers:
                        peer.send(data)

            conn.on("message", on_message)
            conn.on("close", lambda *args: subscribers.discard(conn))
        else:
            others[0] += 1

            def on_close(*args):
                others[0] -= 1

            conn.on("message", lambda data, is_binary: conn.send(data))
            conn.on("close", on_close)

    wss.on("connection", on_connection)
    ws.run()


if __name__ == "__main__":
    main()
