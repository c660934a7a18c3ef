"""A wss:// (TLS) echo server: pass an ``ssl.SSLContext`` as the ``ssl`` option.

    # a self-signed certificate for trying it out:
    openssl req -x509 -newkey rsa:2048 -nodes -days 30 -subj /CN=localhost \
        -addext subjectAltName=DNS:localhost,IP:127.0.0.1 -keyout key.pem -out cert.pem
    CERTFILE=cert.pem KEYFILE=key.pem python examples/tls.py   # wss://localhost:8443

In production, TLS is often ended by a reverse proxy instead (docs/deployment.md);
the command line has ``--ssl-certfile``/``--ssl-keyfile`` for the same thing.
"""

import os
import ssl

import wsserver as ws

context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
context.load_cert_chain(os.environ.get("CERTFILE", "cert.pem"), os.environ.get("KEYFILE", "key.pem"))

wss = ws.Server({"port": int(os.environ.get("PORT", 8443)), "ssl": context})
wss.on("connection", lambda conn: conn.on("message", lambda data: conn.send(data)))
wss.on("listening", lambda: print(f"TLS echo server listening on wss://localhost:{wss.port}", flush=True))
ws.run()
