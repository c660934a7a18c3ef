// The Node.js `ws` client of the interop matrix.
//   node client.js SCENARIO URL < PARAMS_JSON
// runs one scenario of ../js/scenarios.js and prints what it observed as JSON.
"use strict";

const WebSocket = require("ws");
const { runScenario } = require("../js/scenarios.js");

const fs = require("fs");

const [scenario, url] = process.argv.slice(2);
const params = JSON.parse(fs.readFileSync(0, "utf8"));  // stdin: too large for argv

const env = {
  // ws offers permessage-deflate by default, as browsers do
  connect: (target, protocols) => new WebSocket(target, protocols, { perMessageDeflate: true }),
  ping: (socket, text) => new Promise((resolve) => {
    socket.once("pong", (data) => resolve(data.toString()));
    socket.ping(text);
  }),
};

runScenario(scenario, url, params, env).then(
  (result) => {
    // exit once the (possibly large) output is flushed to the pipe
    process.stdout.write(JSON.stringify(result) + "\n", () => process.exit(0));
  },
  (error) => {
    process.stderr.write(String((error && error.stack) || JSON.stringify(error)) + "\n");
    process.exit(1);
  },
);
