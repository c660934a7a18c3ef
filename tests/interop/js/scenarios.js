// The interop scenarios in JavaScript, shared by the Node.js `ws` client
// (node/client.js) and Chromium (loaded into a page). They mirror
// run_python_scenario in scenarios.py and report the same observations.
//
// runScenario(name, url, params, env) where env provides:
//   connect(url, protocols)  -> a WebSocket (browser API: ws' class has it too)
//   ping(socket, text)       -> Promise of the pong's payload as text, or null
//                               where the client cannot ping (browsers)
"use strict";

const TIMEOUT_MS = 10000;

function toBase64(bytes) {
  if (typeof Buffer !== "undefined") return Buffer.from(bytes).toString("base64");
  let binary = "";
  for (let i = 0; i < bytes.length; i += 0x8000) {
    binary += String.fromCharCode.apply(null, bytes.subarray(i, i + 0x8000));
  }
  return btoa(binary);
}

function pattern(length) {
  const bytes = new Uint8Array(length);
  for (let i = 0; i < length; i++) bytes[i] = i % 251;
  return bytes;
}

function repeat(bytes, times) {
  const out = new Uint8Array(bytes.length * times);
  for (let i = 0; i < times; i++) out.set(bytes, i * bytes.length);
  return out;
}

function withTimeout(promise, what) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error("timed out: " + what)), TIMEOUT_MS);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

// A socket with a message queue, so messages can be awaited one at a time.
class Conn {
  constructor(socket) {
    this.socket = socket;
    this.queue = [];
    this.waiters = [];
    socket.binaryType = "arraybuffer";
    socket.addEventListener("message", (event) => {
      const message = typeof event.data === "string"
        ? { kind: "text", data: event.data }
        : { kind: "binary", data: toBase64(new Uint8Array(event.data)) };
      const waiter = this.waiters.shift();
      if (waiter) waiter(message); else this.queue.push(message);
    });
    this.closed = new Promise((resolve) => {
      socket.addEventListener("close", (event) => resolve({ code: event.code, reason: event.reason }));
    });
  }

  next() {
    if (this.queue.length) return Promise.resolve(this.queue.shift());
    return withTimeout(new Promise((resolve) => this.waiters.push(resolve)), "a message");
  }
}

// Resolves with the socket once open; rejects with {refused, status} if refused.
function open(env, url, protocols) {
  return withTimeout(new Promise((resolve, reject) => {
    const socket = env.connect(url, protocols);
    let failure = null;
    socket.addEventListener("open", () => resolve(socket));
    socket.addEventListener("error", (event) => {
      // ws reports "Unexpected server response: 401"; browsers say nothing
      const match = /Unexpected server response: (\d+)/.exec((event && event.message) || "");
      failure = { refused: true, status: match ? Number(match[1]) : null };
    });
    socket.addEventListener("close", () => reject(failure || { refused: true, status: null }));
  }), "the handshake");
}

async function runScenario(name, url, params, env) {
  if (name === "refused") {
    try {
      const socket = await open(env, url, params.unknown_protocols);
      socket.close();
      return { refused: false, status: null };
    } catch (failure) {
      if (failure instanceof Error) throw failure;
      return failure;
    }
  }
  const protocols = name === "subprotocol" ? params.protocols : [];
  const socket = await open(env, url, protocols);
  const conn = new Conn(socket);
  const result = { protocol: socket.protocol || null, extensions: socket.extensions || null };
  try {
    let outgoing = [];
    if (name === "text") outgoing = params.texts;
    else if (name === "binary") outgoing = params.binary_lengths.map(pattern);
    else if (name === "deflate") outgoing = [params.deflate_text, repeat(pattern(30000), 2)];
    else if (name === "server_ping") outgoing = ["cmd:ping:" + params.server_ping_data];
    else if (name === "server_close") outgoing = ["cmd:close:" + params.server_close.join(":")];
    for (const message of outgoing) socket.send(message);
    if (["text", "binary", "deflate", "server_ping"].includes(name)) {
      result.received = [];
      for (let i = 0; i < outgoing.length; i++) result.received.push(await conn.next());
    }
    if (name === "client_ping") {
      result.pong = await withTimeout(env.ping(socket, params.ping_data), "the pong");
    }
    if (name === "server_close") {
      const closed = await withTimeout(conn.closed, "the server's close");
      result.code = closed.code;
      result.reason = closed.reason;
    } else {
      const [code, reason] = name === "client_close" ? params.client_close : [1000, ""];
      socket.close(code, reason);
      result.code = (await withTimeout(conn.closed, "the close")).code;
    }
  } catch (error) {
    socket.close();
    throw error;
  }
  return result;
}

if (typeof module !== "undefined") module.exports = { runScenario };
else globalThis.runScenario = runScenario;
