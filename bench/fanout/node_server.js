// node_server.js - the fan-out benchmark's Node.js server: `ws` (Debian node-ws 8.x) broadcasting a snapshot.
//
//   NODE_PATH=/usr/share/nodejs node node_server.js --port P --snapshot FILE [--host 127.0.0.1] [--interval 1]
//
// Node 20 has no built-in SQLite (node:sqlite arrived in 22), so this server does not query
// the skills DB itself.  The harness writes FILE once per run from a metrics_update that our
// server built from the same DB; every tick this server reads FILE again (as it would re-read
// a source of truth), stamps seq and timestamp, serialises once, and sends the same Buffer
// to every open client with ws.send (the usual ws broadcast loop).  Clients get the
// `connected` greeting; `subscribe` / `ping` messages are answered like ours, so the
// per-client work matches the protocol.  Prints "LISTENING <port>" once the first snapshot
// is read.
'use strict';

const fs = require('fs');
const { WebSocketServer, WebSocket } = require('ws');

function parseArgs(argv) {
  const args = { host: '127.0.0.1', port: 0, interval: 1.0, snapshot: null };
  for (let i = 2; i < argv.length; i += 2) {
    const key = argv[i].replace(/^--/, '');
    const value = argv[i + 1];
    if (!(key in args) || value === undefined) {
      console.error(`node_server: unknown or incomplete option ${argv[i]}`);
      process.exit(2);
    }
    args[key] = key === 'port' ? parseInt(value, 10) : key === 'interval' ? parseFloat(value) : value;
  }
  if (!args.snapshot || !(args.interval > 0)) {
    console.error('node_server: --snapshot FILE is required and --interval must be > 0');
    process.exit(2);
  }
  return args;
}

const args = parseArgs(process.argv);
let seq = 0;

function isoNow() {
  return new Date().toISOString(); // 2026-02-10T12:00:00.123Z
}

async function buildMessage() {
  const text = await fs.promises.readFile(args.snapshot, 'utf8');
  const snap = JSON.parse(text);
  seq += 1;
  const message = { type: 'metrics_update', seq, timestamp: isoNow(), data: snap.data };
  return Buffer.from(JSON.stringify(message));
}

// permessage-deflate is on (ws's defaults), as in a real deployment: it is negotiated only with
// clients that offer it, and ws then compresses every message once per client.
const wss = new WebSocketServer({ host: args.host, port: args.port, perMessageDeflate: true });

wss.on('connection', (ws) => {
  ws.subscribed = true;
  ws.send(JSON.stringify({
    type: 'connected', message: 'Connected to Session-Buddy real-time metrics',
    authenticated: false, protocol_version: '1.0', timestamp: isoNow(),
  }));
  ws.on('message', (data) => {
    let msg;
    try {
      msg = JSON.parse(data.toString());
    } catch (e) {
      ws.send(JSON.stringify({ type: 'error', code: 'invalid_json', message: 'invalid JSON', request_type: null }));
      return;
    }
    if (msg.type === 'subscribe') {
      const skill = msg.skill_name ?? msg.skill ?? null;
      ws.subscribed = true;
      ws.send(JSON.stringify({
        type: 'subscription_confirmed', skill, skill_name: skill,
        message: skill ? `Subscribed to updates for ${skill}` : 'Subscribed to all skills',
        timestamp: isoNow(),
      }));
    } else if (msg.type === 'unsubscribe') {
      ws.subscribed = false;
      ws.send(JSON.stringify({ type: 'unsubscribed', timestamp: isoNow() }));
    } else if (msg.type === 'ping') {
      ws.send(JSON.stringify({ type: 'pong', timestamp: isoNow() }));
    }
  });
  ws.on('error', () => {});
});

let ticking = false;
async function tick() {
  if (ticking) return; // a tick still sending: skip, as a fixed-rate timer would conflate
  ticking = true;
  try {
    const buf = await buildMessage();
    for (const client of wss.clients) {
      if (client.readyState === WebSocket.OPEN && client.subscribed) client.send(buf, { binary: false });
    }
  } catch (e) {
    console.error(`node_server: tick failed: ${e}`);
  } finally {
    ticking = false;
  }
}

wss.on('listening', async () => {
  await buildMessage(); // warm: the first read and parse happen before clients arrive
  seq = 0;
  setInterval(tick, args.interval * 1000);
  console.log(`LISTENING ${wss.address().port}`);
});

function shutdown() {
  for (const client of wss.clients) client.terminate();
  wss.close(() => process.exit(0));
  setTimeout(() => process.exit(0), 2000).unref();
}
process.on('SIGTERM', shutdown);
process.on('SIGINT', shutdown);
