// The browser client module (demo/web/site/gatehouse.js) on its own, in Node.js, against real
// gatehouse-server processes (and a real redis-server): what it does by itself for docs/protocol.md
// 6.3, 6.5 and 6.7, beyond what the demo page exercises (browser.demo):
// - a session whose token expires in two seconds is renewed in band with the application's
//   token function (reason 'expiring'), again and again, on one connection;
// - a session whose renewal failed is closed with 4001 and reconnects with a token asked for
//   with reason 'expired';
// - the `refreshToken` option renews through POST /token/refresh and keeps the rotated token;
// - on Redis, a command whose ack was lost with its connection is sent again after the
//   reconnect: acked with the first append's stream id, on the stream once;
// - the pending bound (`too_many_pending`, nothing sent);
// - each client leaves a draining gateway at its `after_ms`.
//
// usage: node client_test.mjs GATEHOUSE_SERVER
// Node.js 22 has a WebSocket global; on older ones the script runs itself again with
// --experimental-websocket. Exit 0 when every check passed; 1 with the reason otherwise.

import { execFile, spawn } from 'node:child_process';
import { createHmac, randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

import { Failure, check, children, runTest, startGateway, stopGateway } from './harness.mjs';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const REDIS_SERVER = '/usr/bin/redis-server';
const REDIS_CLI = '/usr/bin/redis-cli';
const WAIT_MS = 5_000; // every single wait
// The short sessions' token lifetime. With whole-second iat the client counts one second less
// and refreshes two thirds into that (2.67 s), while as little as 4 s may really be left: over
// a second for the refresh's round trip on a loaded machine (2 s tokens left 0.33 s).
const SHORT_TTL_S = 5;
const TEST_TIMEOUT_MS = 100_000; // the whole run; CTest's TIMEOUT is above this
const BACKOFF = { backoffInitialMs: 100, backoffMaxMs: 500 };
// The stream ids of the command stream entries with correlation id ARGV[1].
const ENTRIES_WITH_CORRELATION_ID = `local found = {}
for _, entry in ipairs(redis.call('XRANGE', KEYS[1], '-', '+')) do
  local fields = entry[2]
  for i = 1, #fields, 2 do
    if fields[i] == 'correlation_id' and fields[i + 1] == ARGV[1] then table.insert(found, entry[1]) end
  end
end
return found`;


const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

async function until(probe, what, timeoutMs = WAIT_MS) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value) return value;
    if (Date.now() > deadline) throw new Failure(`${what}: not within ${timeoutMs} ms`);
    await sleep(10);
  }
}

const b64url = (value) => Buffer.from(JSON.stringify(value)).toString('base64url');

function mint(secret, sub, ttlS) {
  const now = Math.floor(Date.now() / 1000);
  const input = `${b64url({ alg: 'HS256', typ: 'JWT' })}.${b64url({ sub, iat: now, exp: now + ttlS })}`;
  return `${input}.${createHmac('sha256', secret).update(input).digest('base64url')}`;
}

function freePort() {
  return new Promise((resolve, reject) => {
    const probe = net.createServer();
    probe.on('error', reject);
    probe.listen(0, '127.0.0.1', () => {
      const { port } = probe.address();
      probe.close(() => resolve(port));
    });
  });
}

// gatehouse-server on a free port; {proc, base, ws, secret, exited, stderr()}.
async function startServer(binary, extra = []) {
  const secret = `client-test-${randomBytes(16).toString('hex')}`;
  const server = await startGateway(binary, ['--listen', '127.0.0.1:0', '--db', 'sqlite::memory:',
    '--jwt-secret', secret, '--password-hash-kib', '8192', '--password-hash-passes', '1',
    '--shutdown-timeout', '3', ...extra]);
  return { ...server, secret, ws: `ws://${server.address}/ws/player` };
}

const stopServer = stopGateway;

async function post(base, route, body) {
  const response = await fetch(`${base}${route}`, {
    method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(body),
  });
  const text = await response.text();
  return { status: response.status, body: text ? JSON.parse(text) : null };
}

// A started client that records what it sees: `seen` (envelopes, with `at`: performance.now()),
// `statuses` ([status, detail, at]).
function client(GatehouseClient, options) {
  const seen = [];
  const statuses = [];
  const c = new GatehouseClient({
    ...BACKOFF,
    onMessage: (envelope) => seen.push({ ...envelope, at: performance.now() }),
    onStatus: (status, detail) => statuses.push([status, detail, performance.now()]),
    ...options,
  });
  c.seen = seen;
  c.statuses = statuses;
  c.count = (type) => seen.filter((e) => e.type === type).length;
  c.start();
  return c;
}

async function renewedWithTheTokenFunction(GatehouseClient, server) {
  const player = `renew-${randomBytes(4).toString('hex')}`;
  const reasons = [];
  const c = client(GatehouseClient, {
    url: server.ws,
    token: ({ reason }) => {
      reasons.push(reason);
      return mint(server.secret, player, SHORT_TTL_S);
    },
  });
  try {
    await until(() => c.connected, 'connected');
    const since = Date.now();
    // Two renewals (the second about 5.3 s in), and a second past the first token's exp: still
    // the same session.
    await until(() => c.count('gatehouse.refreshed') >= 2 && Date.now() - since > (SHORT_TTL_S + 1) * 1000,
      'two in-band renewals', 3 * WAIT_MS);
    check(c.connected, 'not connected after the renewals');
    check(c.count('welcome') === 1, `${c.count('welcome')} welcomes: the session was not kept`);
    check(reasons.filter((r) => r === 'expiring').length >= 2, `token reasons ${reasons}`);
    check(c.statuses.some(([status, detail]) => status === 'refreshed' && Number.isInteger(detail.exp)), 'no refreshed status');
    const ack = await c.command('player_action', { after: 'renewals' });
    check(ack.type === 'ack', `a command after the renewals: ${JSON.stringify(ack)}`);
  } finally {
    c.stop();
  }
}

async function expiredReconnectsWithANewToken(GatehouseClient, server) {
  const player = `expired-${randomBytes(4).toString('hex')}`;
  const reasons = [];
  const c = client(GatehouseClient, {
    url: server.ws,
    token: ({ reason, failures }) => {
      reasons.push([reason, failures]);
      if (reason === 'expiring') throw new Error('the token service is down');
      return mint(server.secret, player, reason === 'expired' ? 600 : SHORT_TTL_S);
    },
  });
  try {
    await until(() => c.count('welcome') === 2, 'a reconnect after the session expired', 3 * WAIT_MS);
    const closes = c.statuses.filter(([status]) => status === 'waiting').map(([, detail]) => detail.code);
    check(closes[0] === 4001, `closed with ${closes}, want 4001`);
    check(c.statuses.some(([status]) => status === 'refresh_failed'), 'no refresh_failed status');
    const expired = reasons.find(([reason]) => reason === 'expired');
    check(expired && expired[1] >= 1, `token reasons ${JSON.stringify(reasons)}`);
    check((await c.command('player_action')).type === 'ack', 'a command after the reconnect');
  } finally {
    c.stop();
  }
}

async function renewedThroughTheRefreshRoute(GatehouseClient, server) {
  const username = `renew_${randomBytes(4).toString('hex')}`;
  const password = `pw-${randomBytes(8).toString('hex')}`;
  check((await post(server.base, '/register', { username, email: `${username}@example.com`, password })).status === 201, 'register');
  const login = await post(server.base, '/login', { username, password });
  check(login.status === 200 && login.body.expires_in === SHORT_TTL_S, `login: ${JSON.stringify(login)}`);
  const pairs = [];
  const c = client(GatehouseClient, {
    url: server.ws, token: login.body.access_token, refreshToken: login.body.refresh_token,
    onTokens: (pair) => pairs.push(pair),
  });
  const since = Date.now();
  try {
    // Past the first token's exp: still the same session.
    await until(() => c.count('gatehouse.refreshed') >= 2 && Date.now() - since > (SHORT_TTL_S + 1) * 1000,
      'two in-band renewals', 3 * WAIT_MS);
    check(c.connected && c.count('welcome') === 1, 'the session was not kept');
    check(pairs.length >= 2, `${pairs.length} pairs`);
    check(c.refreshToken === pairs.at(-1).refresh_token, 'the client does not hold the newest refresh token');
  } finally {
    c.stop();
  }
  const logout = await post(server.base, '/logout', { refresh_token: c.refreshToken });
  check(logout.status === 204, `logout with the client's refresh token: ${logout.status}`);
}

async function aLostAckIsRetriedOnce(GatehouseClient, server, redisPort, stream) {
  const player = `retry-${randomBytes(4).toString('hex')}`;
  const c = client(GatehouseClient, { url: server.ws, token: mint(server.secret, player, 600) });
  const entries = async (id) => (await promisify(execFile)(REDIS_CLI,
    ['-p', String(redisPort), '--raw', 'EVAL', ENTRIES_WITH_CORRELATION_ID, '1', stream, id])).stdout.split('\n').filter(Boolean);
  try {
    await until(() => c.connected, 'connected');
    c.ws.onmessage = () => {}; // deaf: the ack is never read
    const id = c.newCorrelationId();
    const answer = c.command('player_action', { lost: true }, { correlationId: id });
    const [first] = await until(async () => {
      const found = await entries(id);
      return found.length > 0 && found;
    }, 'the command on the stream');
    c.drop();
    const ack = await answer;
    check(c.count('welcome') === 2, 'no reconnect');
    check(ack.payload.stream_id === first, `the retried command was acked as ${ack.payload.stream_id}, want ${first}`);
    const found = await entries(id);
    check(found.length === 1, `the command is on the stream ${found.length} times`);
    const again = await c.command('player_action');
    check(again.payload.stream_id !== first, 'a new command got the old stream id');
  } finally {
    c.stop();
  }
}

async function pendingCommandsAreBounded(GatehouseClient, CommandError, server) {
  const c = client(GatehouseClient, {
    url: server.ws, token: mint(server.secret, `bound-${randomBytes(4).toString('hex')}`, 600), maxPendingCommands: 2,
  });
  try {
    await until(() => c.connected, 'connected');
    c.ws.onmessage = () => {};
    const waiting = [c.command('player_action'), c.command('player_action')].map((p) => p.catch((e) => e));
    const refused = await c.command('player_action').then(() => null, (e) => e);
    check(refused instanceof CommandError && refused.code === 'too_many_pending', `the third command: ${refused}`);
    c.stop();
    const ended = await Promise.all(waiting);
    check(ended.every((e) => e.code === 'connection_closed'), `after stop(): ${ended.map((e) => e.code)}`);
  } finally {
    c.stop();
  }
}

async function afterMsSpacesTheReconnects(GatehouseClient, binary) {
  const spreadMs = 2000;
  const server = await startServer(binary, ['--drain-spread-ms', String(spreadMs)]);
  const clients = [];
  try {
    for (let i = 0; i < 5; i++) {
      clients.push(client(GatehouseClient, { url: server.ws, token: mint(server.secret, `drain-${i}`, 600) }));
    }
    await until(() => clients.every((c) => c.connected), 'five clients connected');
    server.proc.kill('SIGTERM');
    await until(() => clients.every((c) => c.count('gatehouse.reconnect') === 1), 'the drain notices');
    const notices = clients.map((c) => c.seen.find((e) => e.type === 'gatehouse.reconnect'));
    const latest = clients[notices.reduce((best, n, i) => (n.payload.after_ms > notices[best].payload.after_ms ? i : best), 0)];
    check((await latest.command('player_action')).type === 'ack', 'no ack during the spread');
    await until(() => clients.every((c, i) => c.statuses.some(([s, , at]) => s === 'connecting' && at > notices[i].at)),
      'a reconnect attempt of every client', 2 * WAIT_MS);
    clients.forEach((c, i) => {
      const { at, payload } = notices[i];
      const attempt = c.statuses.find(([s, , t]) => s === 'connecting' && t > at)[2];
      const waited = attempt - at;
      check(waited >= payload.after_ms - 20 && waited < payload.after_ms + 1000,
        `client ${i} came back ${Math.round(waited)} ms after the notice, told ${payload.after_ms}`);
    });
    const afters = notices.map((n) => n.payload.after_ms).sort((a, b) => a - b);
    check(afters.at(-1) - afters[0] >= spreadMs / 2, `after_ms ${afters}: not spread`);
  } finally {
    for (const c of clients) c.stop();
  }
  await stopServer(server);
}

async function main() {
  const [binary] = process.argv.slice(2);
  if (!binary) {
    console.error('usage: node client_test.mjs GATEHOUSE_SERVER');
    process.exit(2);
  }
  const { GatehouseClient, CommandError } = await import(path.resolve(HERE, '../../demo/web/site/gatehouse.js'));

  const short = await startServer(binary, ['--access-ttl', String(SHORT_TTL_S)]);
  try {
    await renewedWithTheTokenFunction(GatehouseClient, short);
    await expiredReconnectsWithANewToken(GatehouseClient, short);
    await renewedThroughTheRefreshRoute(GatehouseClient, short);
    await pendingCommandsAreBounded(GatehouseClient, CommandError, short);
  } finally {
    await stopServer(short);
  }

  const redisPort = await freePort();
  const redisDir = mkdtempSync(path.join(tmpdir(), 'gatehouse-client-redis-'));
  const redis = spawn(REDIS_SERVER, ['--port', String(redisPort), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no',
    '--dir', redisDir, '--loglevel', 'warning'], { stdio: 'ignore' });
  children.add(redis);
  try {
    const ping = () => promisify(execFile)(REDIS_CLI, ['-p', String(redisPort), 'PING']).catch(() => ({ stdout: '' }));
    await until(async () => (await ping()).stdout.trim() === 'PONG', 'redis-server answering PING');
    const stream = `client-test:commands:${randomBytes(4).toString('hex')}`;
    const onRedis = await startServer(binary, ['--redis', `redis://127.0.0.1:${redisPort}`, '--command-stream', stream]);
    try {
      await aLostAckIsRetriedOnce(GatehouseClient, onRedis, redisPort, stream);
    } finally {
      await stopServer(onRedis);
    }
  } finally {
    redis.kill('SIGTERM');
    rmSync(redisDir, { recursive: true, force: true });
  }

  await afterMsSpacesTheReconnects(GatehouseClient, binary);
}

function run() {
  runTest('browser.client', main, TEST_TIMEOUT_MS);
}

if (typeof globalThis.WebSocket === 'undefined') {
  const child = spawn(process.execPath, ['--experimental-websocket', ...process.argv.slice(1)], { stdio: 'inherit' });
  child.on('exit', (code, signal) => process.exit(code ?? (signal ? 1 : 0)));
} else {
  run();
}
