'use strict';
// The gateway a team would otherwise write in an afternoon: Node.js, `ws` and `ioredis`, the
// subset of gatehouse's contract (docs/protocol.md) that bench/run_matrix.py measures.
//
//   GET /ws/player/{jwt}  HS256 token verified at the upgrade (401 otherwise), then
//                         {"type":"welcome","payload":{connection_id, player_id, codec:"json"}}
//   command (JSON text)   validated envelope -> XADD with section 4's fields -> ack {stream_id};
//                         bad frames and envelopes get error frames, Redis failures
//                         bus_unavailable
//   PUBLISH on channel    routed by player_id (+ connection_id), player_ids, or broadcast;
//                         the client gets {type, payload, correlation_id}
//
// Written the idiomatic way (one process, one event loop, ioredis auto-pipelining on,
// bufferutil installed as ws recommends), not handicapped: it is the baseline every gatehouse
// figure is divided by. Prints "node-peer ready listen=HOST:PORT" once it listens and is
// subscribed.
//
//   node server.js --listen 127.0.0.1:0 --redis redis://127.0.0.1:6379 --jwt-secret S
//                  [--command-stream gateway:commands] [--updates-channel ws_updates_channel]
//                  [--stream-maxlen N]

const http = require('node:http');
const crypto = require('node:crypto');
const { WebSocketServer } = require('ws');
const Redis = require('ioredis');
const jwt = require('jsonwebtoken');

function flags(argv) {
  const out = {
    listen: '0.0.0.0:8080',
    redis: 'redis://127.0.0.1:6379',
    jwtSecret: '',
    commandStream: 'gateway:commands',
    updatesChannel: 'ws_updates_channel',
    streamMaxlen: 0,
  };
  for (let i = 2; i < argv.length; i += 2) {
    const key = argv[i].replace(/^--/, '').replace(/-([a-z])/g, (_, c) => c.toUpperCase());
    if (!(key in out) || argv[i + 1] === undefined) {
      console.error(`unknown flag or missing value: ${argv[i]}`);
      process.exit(2);
    }
    out[key] = key === 'streamMaxlen' ? Number(argv[i + 1]) : argv[i + 1];
  }
  if (!out.jwtSecret) {
    console.error('--jwt-secret is required');
    process.exit(2);
  }
  return out;
}

const config = flags(process.argv);
const gatewayId = `node-${crypto.randomBytes(4).toString('hex')}`;
const TYPE_RE = /^[A-Za-z0-9_.:-]{1,64}$/;

const redis = new Redis(config.redis, { enableAutoPipelining: true });
const subscriber = new Redis(config.redis);

const players = new Map(); // player_id -> Set of sockets
const xaddHead = config.streamMaxlen > 0
  ? [config.commandStream, 'MAXLEN', '~', String(config.streamMaxlen), '*']
  : [config.commandStream, '*'];

function sendError(ws, code, message, correlationId) {
  const frame = { type: 'error', payload: { code, message } };
  if (correlationId !== undefined) frame.correlation_id = correlationId;
  ws.send(JSON.stringify(frame));
}

function onCommand(ws, data, isBinary) {
  if (isBinary) return sendError(ws, 'invalid_frame', 'only JSON text frames are supported');
  let msg;
  try {
    msg = JSON.parse(data);
  } catch {
    return sendError(ws, 'invalid_frame', 'not JSON');
  }
  if (msg === null || typeof msg !== 'object' || Array.isArray(msg)) {
    return sendError(ws, 'invalid_envelope', 'not an object');
  }
  let cid = msg.correlation_id;
  if (cid !== undefined && cid !== null &&
      (typeof cid !== 'string' || cid.length === 0 || [...cid].length > 128)) {
    return sendError(ws, 'invalid_envelope', 'bad correlation_id');
  }
  if (typeof msg.type !== 'string' || !TYPE_RE.test(msg.type)) {
    return sendError(ws, 'invalid_envelope', 'bad type', cid ?? undefined);
  }
  if (cid === undefined || cid === null) cid = crypto.randomUUID();
  const payload = JSON.stringify(msg.payload === undefined ? null : msg.payload);
  redis.xadd(...xaddHead,
    'type', msg.type, 'payload', payload, 'codec', 'json', 'correlation_id', cid,
    'player_id', ws.playerId, 'connection_id', ws.connectionId, 'gateway_id', gatewayId,
    'client', 'player', 'ts_ms', String(Date.now()))
    .then((id) => ws.send(JSON.stringify({ type: 'ack', correlation_id: cid, payload: { stream_id: id } })))
    .catch(() => sendError(ws, 'bus_unavailable', 'the command bus is unavailable', cid));
}

function route(message) {
  let u;
  try {
    u = JSON.parse(message);
  } catch {
    return;
  }
  if (u === null || typeof u !== 'object' || typeof u.type !== 'string' || !TYPE_RE.test(u.type)) {
    return;
  }
  // Encoded once, the same string sent to every target.
  const frame = JSON.stringify({ type: u.type, payload: u.payload, correlation_id: u.correlation_id });
  if (u.broadcast === true) {
    for (const ws of wss.clients) ws.send(frame);
  } else if (Array.isArray(u.player_ids)) {
    for (const id of u.player_ids) {
      const set = players.get(id);
      if (set) for (const ws of set) ws.send(frame);
    }
  } else if (typeof u.player_id === 'string') {
    const set = players.get(u.player_id);
    if (!set) return;
    for (const ws of set) {
      if (u.connection_id === undefined || ws.connectionId === u.connection_id) ws.send(frame);
    }
  }
}

const server = http.createServer((req, res) => {
  res.writeHead(404, { 'Content-Type': 'application/json' });
  res.end('{"status":404}');
});
const wss = new WebSocketServer({ noServer: true });

server.on('upgrade', (req, socket, head) => {
  const m = /^\/ws\/player\/([^/?]+)/.exec(req.url);
  let claims;
  try {
    claims = jwt.verify(m ? m[1] : '', config.jwtSecret, { algorithms: ['HS256'] });
  } catch {
    socket.end('HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\nConnection: close\r\n\r\n');
    return;
  }
  if (typeof claims.sub !== 'string' || claims.sub === '') {
    socket.end('HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\nConnection: close\r\n\r\n');
    return;
  }
  wss.handleUpgrade(req, socket, head, (ws) => {
    ws.playerId = claims.sub;
    ws.connectionId = crypto.randomUUID();
    let set = players.get(ws.playerId);
    if (!set) players.set(ws.playerId, (set = new Set()));
    set.add(ws);
    ws.on('message', (data, isBinary) => onCommand(ws, data, isBinary));
    ws.on('close', () => {
      set.delete(ws);
      if (set.size === 0 && players.get(ws.playerId) === set) players.delete(ws.playerId);
    });
    ws.on('error', () => ws.terminate());
    ws.send(JSON.stringify({
      type: 'welcome',
      payload: { connection_id: ws.connectionId, player_id: ws.playerId, codec: 'json' },
    }));
  });
});

subscriber.on('message', (_channel, message) => route(message));

async function main() {
  await subscriber.subscribe(config.updatesChannel);
  const sep = config.listen.lastIndexOf(':');
  const host = config.listen.slice(0, sep);
  const port = Number(config.listen.slice(sep + 1));
  server.listen(port, host, 4096, () => {
    const addr = server.address();
    console.log(`node-peer ready listen=${addr.address}:${addr.port}`);
  });
}

for (const sig of ['SIGINT', 'SIGTERM']) {
  process.on(sig, () => {
    for (const ws of wss.clients) ws.close(1001);
    server.close();
    redis.disconnect();
    subscriber.disconnect();
    process.exit(0);
  });
}

main().catch((err) => {
  console.error(`node-peer: ${err.message}`);
  process.exit(1);
});
