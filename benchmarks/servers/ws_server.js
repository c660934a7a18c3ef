// Echo + broadcast server on Node.js `ws` (with bufferutil), for the benchmarks.
// Echo on every path except /broadcast; on /broadcast every message received
// is sent to every client currently connected to /broadcast (sender included).
'use strict';
const { WebSocketServer, WebSocket } = require('ws');
require('bufferutil'); // fail loudly if the native module is missing (ws would fall back to JS)

const MAX_SIZE = 16 * 1024 * 1024;

let host = '127.0.0.1';
let port = 0;
for (let i = 2; i < process.argv.length; i += 2) {
  if (process.argv[i] === '--port') port = Number(process.argv[i + 1]);
  else if (process.argv[i] === '--host') host = process.argv[i + 1];
}
if (!port) { console.error('usage: node ws_server.js --port PORT [--host HOST]'); process.exit(2); }

const subscribers = new Set();
const wss = new WebSocketServer({ host, port, perMessageDeflate: false, maxPayload: MAX_SIZE, clientTracking: false });

wss.on('connection', (ws, req) => {
  if (req.url.split('?')[0] === '/broadcast') {
    subscribers.add(ws);
    ws.on('message', (data, isBinary) => {
      for (const peer of subscribers) {
        if (peer.readyState === WebSocket.OPEN) peer.send(data, { binary: isBinary });
      }
    });
    ws.on('close', () => subscribers.delete(ws));
  } else {
    ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary }));
  }
  ws.on('error', () => {});
});

for (const sig of ['SIGINT', 'SIGTERM']) process.on(sig, () => process.exit(0));
