#!/usr/bin/env node
// A Node.js client for the session-buddy real-time server, on the `ws` package
// (npm install ws, or Debian's node-ws).
//
//   node examples/node_client.js                          all skills from ws://localhost:8765
//   node examples/node_client.js ws://host:8765 pytest-run one skill
//   node examples/node_client.js --count 3                exit after three updates
//
// Exit status: 0 after --count updates (or Ctrl+C), 1 when the server cannot be reached or
// closes the connection, 2 for bad arguments.
"use strict";

function loadWs() {
  try {
    return require("ws");
  } catch (err) {
    return require("/usr/share/nodejs/ws"); // Debian's node-ws, outside Node's default path
  }
}

function parseArgs(argv) {
  const args = {url: "ws://localhost:8765", skill: null, count: Infinity};
  const positional = [];
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === "--count") {
      args.count = Number(argv[++i]);
      if (!Number.isInteger(args.count) || args.count < 1) usage("--count needs a whole number >= 1");
    } else if (argv[i] === "--help" || argv[i] === "-h") {
      usage(null);
    } else if (argv[i].startsWith("-")) {
      usage("unknown option " + argv[i]);
    } else {
      positional.push(argv[i]);
    }
  }
  for (const p of positional) {
    if (/^wss?:\/\//.test(p)) args.url = p;
    else if (args.skill === null) args.skill = p;
    else usage("unexpected argument " + p);
  }
  return args;
}

function usage(error) {
  const text = "usage: node_client.js [ws://host:port] [skill] [--count N]";
  if (error) {
    console.error("node_client.js: " + error + "\n" + text);
    process.exit(2);
  }
  console.log(text);
  process.exit(0);
}

function formatSkill(s) {
  const rate = (s.completion_rate * 100).toFixed(1) + "%";
  return `${s.skill_name} ${s.invocation_count}/24h ${rate}${s.is_anomalous ? " ANOMALY" : ""}`;
}

function main() {
  const args = parseArgs(process.argv.slice(2));
  const WebSocket = loadWs();
  const ws = new WebSocket(args.url);
  let updates = 0;
  // A new connection gets every skill; for one skill, updates count from its confirmation on.
  let subscribed = args.skill === null;

  ws.on("open", () => {
    if (args.skill !== null) ws.send(JSON.stringify({type: "subscribe", skill_name: args.skill}));
  });
  ws.on("message", (data) => {
    const message = JSON.parse(data.toString());
    if (message.type === "connected") {
      console.log(`connected to ${args.url}`);
    } else if (message.type === "subscription_confirmed") {
      subscribed = true;
      console.log(`subscribed to ${message.skill_name}`);
    } else if (message.type === "metrics_update" && subscribed) {
      updates += 1;
      const d = message.data;
      const skills = d.top_skills.map(formatSkill).join(" | ") || "(no data)";
      const stale = d.stale ? " [stale]" : "";
      console.log(`#${message.seq} ${message.timestamp}${stale} ${skills}`);
      for (const a of d.anomalies) {
        console.log(`  anomaly: ${a.skill_name} ${a.anomaly_type} z=${a.deviation_score.toFixed(2)}`);
      }
      if (updates >= args.count) ws.close(1000);
    } else if (message.type === "error") {
      console.error(`server error ${message.code}: ${message.message}`);
    }
  });
  ws.on("error", (err) => {
    console.error(`node_client.js: cannot talk to ${args.url}: ${err.message}`);
    process.exitCode = 1;
  });
  ws.on("close", (code, reason) => {
    if (updates < args.count && process.exitCode === undefined) {
      console.error(`node_client.js: server closed the connection (${code} ${reason.toString()})`);
      process.exitCode = 1;
    }
  });
  process.on("SIGINT", () => ws.close(1000));
}

main();
