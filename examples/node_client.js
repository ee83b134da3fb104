#!/usr/bin/env node
// node_client.js - a Node.js client for the session-buddy real-time metrics stream, on `ws`.
//
//   node examples/node_client.js [URL] [SKILL] [--count N]
//
//   URL      ws://host:port of the server (default ws://localhost:8765)
//   SKILL    watch one skill only (default: all skills)
//   --count  exit 0 after N metrics updates (default: run until Ctrl+C)
//
// One compact line per update:
//   #17 12:00:01Z  pytest-run 42/24h 92% 5.2s | ruff-check 31/24h 98% 0.8s | ...  anomalies: mypy performance_drop z=-2.30
// A connection failure prints one line on stderr and exits 1; bad arguments exit 2.
"use strict";

function loadWs() {
  try {
    return require("ws");
  } catch (err) {
    if (err.code !== "MODULE_NOT_FOUND") throw err;
  }
  // Debian's node-ws installs to /usr/share/nodejs, which Node does not search by default.
  try {
    return require("/usr/share/nodejs/ws");
  } catch (err) {
    console.error("node_client: the 'ws' package is missing: npm install ws (or apt install node-ws)");
    process.exit(2);
  }
}

function usage(message) {
  console.error(`node_client: ${message}`);
  console.error("usage: node examples/node_client.js [URL] [SKILL] [--count N]");
  process.exit(2);
}

function parseArgs(argv) {
  const opts = { url: "ws://localhost:8765", skill: null, count: 0 };
  const positional = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === "--count" || a.startsWith("--count=")) {
      const v = a.includes("=") ? a.slice(a.indexOf("=") + 1) : argv[++i];
      if (!/^[1-9][0-9]*$/.test(v || "")) usage(`--count needs a whole number > 0, got ${JSON.stringify(v)}`);
      opts.count = Number(v);
    } else if (a === "-h" || a === "--help") {
      console.log("usage: node examples/node_client.js [URL] [SKILL] [--count N]");
      process.exit(0);
    } else if (a.startsWith("--")) {
      usage(`unknown option ${a}`);
    } else {
      positional.push(a);
    }
  }
  if (positional.length > 2) usage("too many arguments");
  if (positional[0]) opts.url = positional[0];
  if (positional[1]) opts.skill = positional[1];
  if (!/^wss?:\/\//.test(opts.url)) usage(`URL must start with ws:// or wss://, got ${JSON.stringify(opts.url)}`);
  return opts;
}

const pct = (x) => (x == null ? "-" : `${Math.round(x * 100)}%`);
const secs = (s) => (s == null ? "-" : `${s.toFixed(1)}s`);

function formatUpdate(msg) {
  const data = msg.data || {};
  const skills = (data.top_skills || []).map((s) => {
    const rate = s.invocation_count > 0 ? s.completed_count / s.invocation_count : s.completion_rate;
    return `${s.skill_name} ${s.invocation_count}/24h ${pct(rate)} ${secs(s.avg_duration)}`;
  });
  const anomalies = (data.anomalies || []).map(
    (a) => `${a.skill_name} ${a.anomaly_type} z=${a.deviation_score >= 0 ? "+" : ""}${a.deviation_score.toFixed(2)}`,
  );
  const time = (msg.timestamp || "").slice(11, 19) + "Z";
  let line = `#${msg.seq} ${time}  ${skills.length ? skills.join(" | ") : "(no skills yet)"}`;
  if (anomalies.length) line += `  anomalies: ${anomalies.join(", ")}`;
  if (data.stale) line += "  [stale]";
  return line;
}

function main() {
  const opts = parseArgs(process.argv.slice(2));
  const WebSocket = loadWs();
  const ws = new WebSocket(opts.url, { handshakeTimeout: 10000 });
  let seen = 0;
  let opened = false;
  let done = false;
  // A new connection already streams all skills. For one skill, subscribe and skip the updates
  // still in the all-skills form until the server confirms.
  let confirmed = opts.skill == null;

  ws.on("open", () => {
    opened = true;
    if (opts.skill != null) ws.send(JSON.stringify({ type: "subscribe", skill_name: opts.skill }));
  });

  ws.on("message", (raw) => {
    let msg;
    try {
      msg = JSON.parse(raw.toString());
    } catch (err) {
      console.error(`node_client: not JSON: ${String(raw).slice(0, 80)}`);
      return;
    }
    if (msg.type === "connected") {
      console.log(`connected to ${opts.url} (protocol ${msg.protocol_version}), watching ${opts.skill || "all skills"}`);
    } else if (msg.type === "subscription_confirmed") {
      confirmed = true;
    } else if (msg.type === "error") {
      console.error(`node_client: server error ${msg.code}: ${msg.message}`);
    } else if (msg.type === "metrics_update" && confirmed) {
      console.log(formatUpdate(msg));
      seen += 1;
      if (opts.count && seen >= opts.count) {
        done = true;
        ws.close(1000);
      }
    }
  });

  ws.on("error", (err) => {
    if (!opened) {
      console.error(`node_client: cannot connect to ${opts.url}: ${err.code || err.message}`);
      process.exit(1);
    }
    console.error(`node_client: connection error: ${err.message}`);
  });

  ws.on("close", (code, reason) => {
    if (done) process.exit(0);
    if (!opened) return; // the error handler has reported it
    console.error(`node_client: connection closed by the server (${code}${reason.length ? " " + reason : ""})`);
    process.exit(1);
  });

  process.on("SIGINT", () => {
    done = true;
    ws.close(1000);
    setTimeout(() => process.exit(0), 1000).unref();
  });
}

main();
