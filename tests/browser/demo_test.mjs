// End-to-end test of the Click & Cook web client: a real gatehouse-server --demo, the page in
// headless Chromium (Debian's /usr/bin/chromium, driven by playwright-core), a player who
// registers, cooks, sells, logs out and in again, survives a dropped connection (getting a new
// token pair first), and resumes after a dropped connection during which another
// tab of the same player changed the state (docs/protocol.md 6.4). Then, on Redis with the game as
// its own process, a gateway restarted while the game pushed a state change: the page resumes
// on the restarted gateway and shows it; and a cook whose ack was lost with its connection is
// sent again after the reconnect and is on the stream once, with its first stream id (6.5).
// Last, a gateway issuing two-second access tokens: the page renews its session in band (6.3)
// and keeps one connection well past the first token's exp.
//
// usage: node demo_test.mjs GATEHOUSE_SERVER ARTIFACT_DIR GATEHOUSE_DEMO_GAME
// Exit 0 when every check passed; 1 with the reason otherwise. ARTIFACT_DIR receives
// demo.png (the page at the end), failure.png (the page when a check failed), server.log, and
// for the Redis part restart-server.log, game.log and redis.log, for the last part
// short-session-server.log.

import { execFile, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { accessSync, constants, createWriteStream, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import net from 'node:net';
import path from 'node:path';
import { promisify } from 'node:util';

import {
  CHROMIUM, CHROMIUM_ARGS, Failure, READY_TIMEOUT_MS, SANITIZER_REPORT, check, childEnv, children,
  loadPlaywright, runTest,
} from './harness.mjs';

const REDIS_SERVER = '/usr/bin/redis-server';
const REDIS_CLI = '/usr/bin/redis-cli';
// The Redis part's names, passed to both the gateway and the game.
const COMMAND_STREAM = 'browser-test:commands';
const UPDATES_CHANNEL = 'browser-test:updates';
const STEP_TIMEOUT_MS = 10_000; // every single wait in the page
const TEST_TIMEOUT_MS = 140_000; // the whole run; CTest's TIMEOUT is above this
// The restarted gateway is back within a second or two; the page's backoff after a few failed
// attempts may wait up to 8 s before it tries again.
const RECONNECT_TIMEOUT_MS = 20_000;
// Under the gateway's 60 s notice, so the page is told at once that its token expires and
// renews the session in band about 21 s into each token (two thirds of its lifetime).
const ACCESS_TTL_S = 33;
// The short-session part's access tokens: the page renews its session in band about every
// 2.7 s (docs/protocol.md 6.3: two thirds of the lifetime less a second for whole-second iat), and it
// must outlive the first on one connection. Shorter tokens leave too little time for a refresh's
// round trip on a loaded machine (2 s tokens left 0.33 s).
const SHORT_TTL_S = 5;
// The stream ids of the command stream entries with correlation id ARGV[1].
const ENTRIES_WITH_CORRELATION_ID = `local found = {}
for _, entry in ipairs(redis.call('XRANGE', KEYS[1], '-', '+')) do
  local fields = entry[2]
  for i = 1, #fields, 2 do
    if fields[i] == 'correlation_id' and fields[i + 1] == ARGV[1] then table.insert(found, entry[1]) end
  end
end
return found`;
const CONNECTION_REFUSED = /ERR_CONNECTION_REFUSED|WebSocket connection to '.*' failed/;

function usage() {
  console.error('usage: node demo_test.mjs GATEHOUSE_SERVER ARTIFACT_DIR GATEHOUSE_DEMO_GAME');
  process.exit(2);
}

function requireProgram(file, what) {
  try {
    accessSync(file, constants.X_OK);
  } catch {
    throw new Failure(`${file} not found: ${what}`);
  }
}

// Starts `binary` with its stderr going to logPath (its stdout is piped for a ready line, or
// ignored); {proc, exited, logPath}: `exited` settles once it exited and its log is on disk.
function spawnLogged(binary, args, logPath, { ignoreStdout = false } = {}) {
  const proc = spawn(binary, args, { env: childEnv(), stdio: ['ignore', ignoreStdout ? 'ignore' : 'pipe', 'pipe'] });
  children.add(proc);
  const log = createWriteStream(logPath);
  proc.stderr.pipe(log);
  const exited = Promise.all([
    new Promise((resolve) => proc.on('exit', (code, signal) => resolve({ code, signal }))),
    new Promise((resolve) => log.on('close', resolve)),
  ]).then(([status]) => {
    children.delete(proc);
    return status;
  });
  return { proc, exited, logPath };
}

// Starts `binary`; resolves with {proc, match, exited, logPath} once its first stdout line
// matched `ready` (`match`: the regex's match). Its stderr goes to logPath.
function startProcess(binary, args, logPath, ready) {
  const { proc, exited } = spawnLogged(binary, args, logPath);
  const name = path.basename(binary);
  return new Promise((resolve, reject) => {
    let stdout = '';
    const timer = setTimeout(() => {
      reject(new Failure(`no ready line from ${name} within ${READY_TIMEOUT_MS} ms; see ${logPath}`));
    }, READY_TIMEOUT_MS);
    proc.on('error', (error) => {
      clearTimeout(timer);
      reject(new Failure(`cannot start ${binary}: ${error.message}`));
    });
    exited.then(({ code, signal }) => {
      clearTimeout(timer);
      reject(new Failure(`${name} exited (${code ?? signal}) before it was ready; see ${logPath}`));
    });
    proc.stdout.on('data', (chunk) => {
      stdout += chunk;
      const newline = stdout.indexOf('\n');
      if (newline < 0) return;
      clearTimeout(timer);
      const match = ready.exec(stdout.slice(0, newline));
      if (!match) reject(new Failure(`unexpected first stdout line of ${name}: ${stdout.slice(0, newline)}`));
      else resolve({ proc, match, exited, logPath });
    });
  });
}

// Starts gatehouse-server --demo; resolves with {proc, base, exited, logPath, ...} once it
// printed its ready line. `options`: listen (default a free port), db (default in memory),
// jwtSecret (default random), extra arguments.
async function startServer(binary, logPath, { listen = '127.0.0.1:0', db = 'sqlite::memory:', jwtSecret, accessTtl = ACCESS_TTL_S, extra = [] } = {}) {
  const args = [
    '--demo', '--listen', listen, '--db', db,
    '--jwt-secret', jwtSecret ?? `browser-test-${randomBytes(16).toString('hex')}`,
    '--password-hash-kib', '8192', '--password-hash-passes', '1',
    '--access-ttl', String(accessTtl), '--shutdown-timeout', '3', ...extra,
  ];
  const server = await startProcess(binary, args, logPath, /^gatehouse ready listen=(\S+)$/);
  return { ...server, base: `http://${server.match[1]}` };
}

// SIGTERM, then SIGKILL after 10 s; resolves with the exit status.
async function stopProcess(server) {
  server.proc.kill('SIGTERM');
  const killer = setTimeout(() => server.proc.kill('SIGKILL'), 10_000);
  const status = await server.exited;
  clearTimeout(killer);
  return status;
}

// The page's steps; `page` is a fresh playwright Page at the server's /.
async function play(page, base) {
  const text = (testId) => page.getByTestId(testId).textContent();
  const waitText = async (testId, expected, what) => {
    try {
      await page.waitForFunction(
        ([id, want]) => document.querySelector(`[data-testid="${id}"]`)?.textContent === want,
        [testId, expected],
        { timeout: STEP_TIMEOUT_MS },
      );
    } catch {
      throw new Failure(`${what}: ${testId} is ${JSON.stringify(await text(testId))}, want ${JSON.stringify(expected)}`);
    }
  };
  const waitConnected = async (what) => {
    try {
      await page.waitForSelector('[data-testid="status"][data-state="connected"]', { timeout: STEP_TIMEOUT_MS });
    } catch {
      throw new Failure(`${what}: not connected; status says ${JSON.stringify(await text('status'))}, ` +
        `auth says ${JSON.stringify(await text('auth-message'))}`);
    }
  };
  const logEntries = (type) => page.locator(`[data-testid="log"] li[data-type="${type}"]`);

  await page.goto(`${base}/`, { timeout: STEP_TIMEOUT_MS });
  check((await page.title()).startsWith('Click & Cook'), `page title is ${await page.title()}`);
  check(await page.getByTestId('auth').isVisible(), 'the login form is not shown');

  // Register (the page logs in right after) and get a fresh session.
  const username = `cook_${randomBytes(4).toString('hex')}`;
  const password = `pw-${randomBytes(8).toString('hex')}`;
  await page.getByTestId('username').fill(username);
  await page.getByTestId('email').fill(`${username}@example.com`);
  await page.getByTestId('password').fill(password);
  await page.getByTestId('register').click();
  await waitConnected('after registering');
  await waitText('dishes', '0', 'a new session');
  await waitText('coins', '0', 'a new session');
  check((await text('player')) === username, `player shown is ${await text('player')}`);

  // Three quick cooks: every one is acked and answered, in order.
  for (let i = 0; i < 3; i++) await page.getByTestId('cook').click();
  await waitText('dishes', '3', 'after three cooks');
  const cookStates = logEntries('game.state').filter({ hasText: 'cook' });
  check((await cookStates.count()) === 3, `log shows ${await cookStates.count()} cook game.state lines, want 3`);
  const lastCook = await cookStates.first().getAttribute('data-correlation-id');
  check(lastCook, 'a game.state line carries no correlation id');
  check(
    (await logEntries('ack').and(page.locator(`[data-correlation-id="${lastCook}"]`)).count()) === 1,
    `no ack logged for correlation id ${lastCook}`,
  );

  // Log out and in again: the game kept the session.
  await page.getByTestId('logout').click();
  await page.getByTestId('auth').waitFor({ state: 'visible', timeout: STEP_TIMEOUT_MS });
  await page.getByTestId('username').fill(username);
  await page.getByTestId('password').fill(password);
  await page.getByTestId('login').click();
  await waitConnected('after logging in');
  await waitText('dishes', '3', 'the session after logging in again');

  // Drop the connection: the page gets a new token pair before it reconnects (a browser cannot
  // tell a refused token from a network failure), and the game answers the new connection.
  const refreshed = page.waitForResponse((r) => r.url().endsWith('/token/refresh'), { timeout: 3 * STEP_TIMEOUT_MS });
  const welcomes = await logEntries('welcome').count();
  await page.evaluate(() => window.clickAndCook.dropConnection());
  const refresh = await refreshed;
  check(refresh.status() === 200, `token refresh answered ${refresh.status()}`);
  await logEntries('refresh').first().waitFor({ timeout: STEP_TIMEOUT_MS });
  await waitConnected('after the dropped connection');
  check((await logEntries('welcome').count()) === welcomes + 1, 'no second welcome after reconnecting');

  // A second tab of the same player cooks while this page is away: the page resumes and shows
  // the pushed state from the gateway's replay, without asking the game for the session again.
  await resumeAfterMissedUpdate(page, base, username, password, { waitText, waitConnected, logEntries });

  // One more cook and a sale: 5 dishes at 2 coins each.
  await page.getByTestId('cook').click();
  await waitText('dishes', '5', 'after one more cook');
  await page.getByTestId('sell').click();
  await waitText('coins', '10', 'after selling');
  await waitText('dishes', '0', 'after selling');

  // The game's refusals reach the page with their code: a stove costs 25.
  await page.getByTestId('buy-stove').click();
  await page.locator('[data-testid="log"] li[data-type="game.error"]', { hasText: 'not_enough_coins' })
    .waitFor({ timeout: STEP_TIMEOUT_MS });
  check((await text('game-message')).includes('25'), `game.error message shown: ${await text('game-message')}`);
  // A knife costs 10: bought, and cooking gets stronger.
  await page.getByTestId('buy-knife').click();
  await waitText('coins', '0', 'after buying a knife');
  await waitText('cook-power', '2', 'after buying a knife');
  await page.getByTestId('level-check').click();
  await waitText('game-message', 'Level up needs 20 xp.', 'level check at 10 xp');
  return username;
}

// Drops the page's WebSocket and holds its reconnect (the page refreshes its token first after
// a failed connection: that request is held) while a second page of the same player cooks; the
// state change is published to the player's log. Then lets the page reconnect: it must resume
// (`gatehouse.resumed` with the missed update replayed) and show the new state, without a
// `session` re-sync.
async function resumeAfterMissedUpdate(page, base, username, password, { waitText, waitConnected, logEntries }) {
  const dishes = Number(await page.getByTestId('dishes').textContent());
  const other = await page.context().newPage();
  try {
    await other.goto(`${base}/`, { timeout: STEP_TIMEOUT_MS });
    await other.getByTestId('username').fill(username);
    await other.getByTestId('password').fill(password);
    await other.getByTestId('login').click();
    await other.waitForSelector('[data-testid="status"][data-state="connected"]', { timeout: STEP_TIMEOUT_MS });
    await other.waitForFunction((want) => document.querySelector('[data-testid="dishes"]')?.textContent === want,
      String(dishes), { timeout: STEP_TIMEOUT_MS });

    const resyncs = await logEntries('resync').count();
    const resumes = await logEntries('gatehouse.resumed').count();
    let release;
    const released = new Promise((resolve) => { release = resolve; });
    let held;
    const holding = new Promise((resolve) => { held = resolve; });
    const hold = async (route) => {
      held();
      await released;
      await route.continue();
    };
    await page.route('**/token/refresh', hold);
    await page.evaluate(() => window.clickAndCook.dropConnection());
    await holding; // the page is away, and stays away until released
    check((await page.getByTestId('status').getAttribute('data-state')) !== 'connected',
      'the page says connected while its reconnect is held');

    await other.getByTestId('cook').click();
    await other.waitForFunction((want) => document.querySelector('[data-testid="dishes"]')?.textContent === want,
      String(dishes + 1), { timeout: STEP_TIMEOUT_MS });
    check((await page.getByTestId('dishes').textContent()) === String(dishes),
      'the page showed the other tab\'s cook while disconnected');

    release();
    await waitConnected('after the held reconnect');
    await waitText('dishes', String(dishes + 1), 'after resuming');
    await page.unroute('**/token/refresh', hold);
    const resumed = logEntries('gatehouse.resumed');
    check((await resumed.count()) === resumes + 1, 'no gatehouse.resumed after the reconnect');
    const replayed = /"replayed":(\d+)/.exec(await resumed.first().textContent())?.[1];
    check(Number(replayed) >= 1, `gatehouse.resumed says ${await resumed.first().textContent()}`);
    check((await logEntries('resync').count()) === resyncs, 'the page re-synced instead of resuming');
    check((await logEntries('gatehouse.gap').count()) === 0, 'the gateway answered gatehouse.gap');
  } finally {
    await other.close();
  }
}

// A TCP port free on 127.0.0.1 right now.
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

async function redisCli(port, ...args) {
  const { stdout } = await promisify(execFile)(REDIS_CLI, ['-p', String(port), '--raw', ...args], { timeout: 5_000 });
  return stdout.trim();
}

// Polls `probe` (async, truthy when done) every 50 ms for at most `timeoutMs`.
async function waitUntil(probe, timeoutMs, what) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe().catch(() => null);
    if (value) return value;
    if (Date.now() > deadline) throw new Failure(`${what}: not within ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

// Redis, the game as its own process, one gateway: a player cooks; the gateway is stopped;
// while it is down the game gets a `cook` of that player straight from the command stream and
// pushes the new state through the update log; the gateway starts again on the same port (same
// accounts database and JWT secret). The page must reconnect by itself, resume, and show the
// pushed state without re-syncing. Then the player's log is deleted while the page is away and
// the game pushes again: gatehouse.gap, and the page re-syncs with `session`.
async function playRestart(context, binaries, artifactDir, processes) {
  const redisPort = await freePort();
  const redisDir = mkdtempSync(path.join(tmpdir(), 'gatehouse-browser-redis-'));
  processes.redisDir = redisDir;
  // redis-server logs to stdout, and only when it has something to say: wait for PING.
  processes.redis = spawnLogged(REDIS_SERVER, [
    '--port', String(redisPort), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no',
    '--dir', redisDir, '--loglevel', 'warning', '--daemonize', 'no',
    '--logfile', path.resolve(artifactDir, 'redis.log'),
  ], path.resolve(artifactDir, 'redis-stderr.log'), { ignoreStdout: true });
  await waitUntil(async () => (await redisCli(redisPort, 'PING')) === 'PONG', READY_TIMEOUT_MS, 'redis-server answering PING');
  const redisUrl = `redis://127.0.0.1:${redisPort}`;
  const names = ['--command-stream', COMMAND_STREAM, '--updates-channel', UPDATES_CHANNEL];
  processes.game = await startProcess(binaries.game, ['--redis', redisUrl, ...names],
    path.resolve(artifactDir, 'game.log'), / ready /);
  const serverOptions = {
    db: `sqlite:${path.join(redisDir, 'accounts.db')}`,
    jwtSecret: `browser-test-${randomBytes(16).toString('hex')}`,
    extra: ['--redis', redisUrl, ...names],
  };
  const serverLog = path.resolve(artifactDir, 'restart-server.log');
  processes.server = await startServer(binaries.server, serverLog, serverOptions);
  const { base } = processes.server;

  const page = await context.newPage();
  const text = (testId) => page.getByTestId(testId).textContent();
  const waitText = async (testId, expected, what, timeout = STEP_TIMEOUT_MS) => {
    try {
      await page.waitForFunction(
        ([id, want]) => document.querySelector(`[data-testid="${id}"]`)?.textContent === want,
        [testId, expected], { timeout },
      );
    } catch {
      throw new Failure(`${what}: ${testId} is ${JSON.stringify(await text(testId))}, want ${JSON.stringify(expected)}`);
    }
  };
  const logEntries = (type) => page.locator(`[data-testid="log"] li[data-type="${type}"]`);
  try {
    await page.goto(`${base}/`, { timeout: STEP_TIMEOUT_MS });
    const username = `chef_${randomBytes(4).toString('hex')}`;
    await page.getByTestId('username').fill(username);
    await page.getByTestId('email').fill(`${username}@example.com`);
    await page.getByTestId('password').fill(`pw-${randomBytes(8).toString('hex')}`);
    await page.getByTestId('register').click();
    await page.waitForSelector('[data-testid="status"][data-state="connected"]', { timeout: STEP_TIMEOUT_MS });
    await waitText('dishes', '0', 'a new session on Redis');
    await page.getByTestId('cook').click();
    await waitText('dishes', '1', 'a cook on Redis');
    const playerId = await page.getByTestId('player').getAttribute('title');
    const resyncs = await logEntries('resync').count();
    const resumes = await logEntries('gatehouse.resumed').count();

    const { code } = await stopProcess(processes.server);
    check(code === 0, `the gateway exited ${code} after SIGTERM; see ${serverLog}`);
    check(!SANITIZER_REPORT.test(readFileSync(serverLog, 'utf8')), `sanitizer report in ${serverLog}`);
    await page.waitForSelector('[data-testid="status"]:not([data-state="connected"])', { timeout: STEP_TIMEOUT_MS });
    // The command as a gateway would have appended it (docs/protocol.md section 4).
    await redisCli(redisPort, 'XADD', COMMAND_STREAM, '*', 'type', 'cook', 'payload', '{}', 'codec', 'json',
      'correlation_id', 'browser-test-restart', 'player_id', playerId, 'connection_id', 'browser-test',
      'gateway_id', 'browser-test', 'client', 'player', 'ts_ms', String(Date.now()));
    await waitUntil(async () => JSON.parse(await redisCli(redisPort, 'GET', `demo:session:${playerId}`)).dishes === 2,
      STEP_TIMEOUT_MS, 'the game cooking while the gateway is down');
    check((await text('dishes')) === '1', 'the page changed while its gateway was down');

    processes.server = await startServer(binaries.server, serverLog.replace('.log', '-2.log'),
      { ...serverOptions, listen: new URL(base).host });
    await waitText('dishes', '2', 'after the gateway restarted', RECONNECT_TIMEOUT_MS);
    await page.waitForSelector('[data-testid="status"][data-state="connected"]', { timeout: STEP_TIMEOUT_MS });
    check((await logEntries('gatehouse.resumed').count()) === resumes + 1, 'no gatehouse.resumed after the restart');
    check((await logEntries('resync').count()) === resyncs, 'the page re-synced instead of resuming after the restart');

    // The player's log lost (as with Redis restarted empty) while the page is away and the
    // game pushes another cook: the gateway answers gatehouse.gap, and the page re-syncs with
    // `session`, which brings the state the replay could not.
    let release;
    const released = new Promise((resolve) => { release = resolve; });
    let held;
    const holding = new Promise((resolve) => { held = resolve; });
    const hold = async (route) => {
      held();
      await released;
      await route.continue();
    };
    await page.route('**/token/refresh', hold);
    await page.evaluate(() => window.clickAndCook.dropConnection());
    await holding;
    await redisCli(redisPort, 'XADD', COMMAND_STREAM, '*', 'type', 'cook', 'payload', '{}', 'codec', 'json',
      'correlation_id', 'browser-test-gap', 'player_id', playerId, 'connection_id', 'browser-test',
      'gateway_id', 'browser-test', 'client', 'player', 'ts_ms', String(Date.now()));
    await waitUntil(async () => JSON.parse(await redisCli(redisPort, 'GET', `demo:session:${playerId}`)).dishes === 3,
      STEP_TIMEOUT_MS, 'the game cooking while the page is away');
    check(Number(await redisCli(redisPort, 'DEL', `${UPDATES_CHANNEL}:log:${playerId}`)) === 1,
      `no update log key ${UPDATES_CHANNEL}:log:${playerId} in Redis`);
    release();
    await waitText('dishes', '3', 'after the gap');
    await page.unroute('**/token/refresh', hold);
    check((await logEntries('gatehouse.gap').count()) === 1, 'no gatehouse.gap after the log was lost');
    check((await logEntries('resync').count()) === resyncs + 1, 'the page did not re-sync after the gap');

    // A cook whose ack is lost with its connection: the page stops reading, the cook reaches
    // the stream, the connection drops. The client sends the cook again after the reconnect
    // with the same correlation id; the gateway acks it with the first append's stream id
    // (docs/protocol.md 6.5), so the game cooks once.
    const lost = await page.evaluate(() => {
      window.clickAndCook.client.ws.onmessage = () => {};
      return window.clickAndCook.command('cook');
    });
    check(lost, 'the page did not send the cook');
    const entries = async () => (await redisCli(redisPort, 'EVAL', ENTRIES_WITH_CORRELATION_ID, '1', COMMAND_STREAM, lost))
      .split('\n').filter(Boolean);
    const [first] = await waitUntil(async () => {
      const found = await entries();
      return found.length > 0 && found;
    }, STEP_TIMEOUT_MS, 'the cook reaching the command stream');
    await page.evaluate(() => window.clickAndCook.dropConnection());
    await waitText('dishes', '4', 'after the retried cook');
    const ack = logEntries('ack').and(page.locator(`[data-correlation-id="${lost}"]`));
    await ack.first().waitFor({ timeout: STEP_TIMEOUT_MS });
    const acked = await ack.first().textContent();
    check(acked.endsWith(`on the bus as ${first}`), `the retried cook was acked as ${acked}, want stream id ${first}`);
    check((await entries()).length === 1, `the cook is on the stream ${(await entries()).length} times, want once`);
    check(JSON.parse(await redisCli(redisPort, 'GET', `demo:session:${playerId}`)).dishes === 4, 'the game cooked twice');
    return username;
  } catch (error) {
    const shot = path.resolve(artifactDir, 'failure-restart.png');
    await page.screenshot({ path: shot, fullPage: true, timeout: 5_000 }).catch(() => {});
    console.error(`browser.demo: screenshot of the Redis part's failure: ${shot}`);
    throw error;
  } finally {
    await page.close().catch(() => {});
  }
}

// A gateway issuing access tokens for SHORT_TTL_S seconds, which ends sessions at their token's exp: the
// page renews its session in band with the refresh token, again and again, on one connection,
// and keeps playing well past the first token's exp.
async function playShortSession(context, binary, artifactDir, processes) {
  const logPath = path.resolve(artifactDir, 'short-session-server.log');
  processes.server = await startServer(binary, logPath, { accessTtl: SHORT_TTL_S });
  const page = await context.newPage();
  const text = (testId) => page.getByTestId(testId).textContent();
  const logEntries = (type) => page.locator(`[data-testid="log"] li[data-type="${type}"]`);
  try {
    await page.goto(`${processes.server.base}/`, { timeout: STEP_TIMEOUT_MS });
    const username = `brief_${randomBytes(4).toString('hex')}`;
    await page.getByTestId('username').fill(username);
    await page.getByTestId('email').fill(`${username}@example.com`);
    await page.getByTestId('password').fill(`pw-${randomBytes(8).toString('hex')}`);
    await page.getByTestId('register').click();
    await page.waitForSelector('[data-testid="status"][data-state="connected"]', { timeout: STEP_TIMEOUT_MS });
    const connectedAt = Date.now();
    // At least two renewals (the second about 5.3 s in), and a second past the first token's exp.
    try {
      await page.waitForFunction(
        ([since, ms]) => document.querySelectorAll('[data-testid="log"] li[data-type="gatehouse.refreshed"]').length >= 2 &&
          Date.now() - since > ms,
        [connectedAt, (SHORT_TTL_S + 1) * 1000], { timeout: 2 * STEP_TIMEOUT_MS });
    } catch {
      throw new Failure(`no two in-band renewals; log shows ${await logEntries('gatehouse.refreshed').count()} ` +
        `gatehouse.refreshed, ${await logEntries('closed').count()} closes`);
    }
    check((await page.getByTestId('status').getAttribute('data-state')) === 'connected', 'not connected after the renewals');
    check((await logEntries('welcome').count()) === 1, `${await logEntries('welcome').count()} welcomes: the session was not kept`);
    check((await logEntries('closed').count()) === 0, 'the connection closed during the renewals');
    check((await logEntries('refresh').count()) >= 2, 'the renewals did not go through POST /token/refresh');
    await page.getByTestId('cook').click();
    await page.waitForFunction(() => document.querySelector('[data-testid="dishes"]')?.textContent === '1',
      null, { timeout: STEP_TIMEOUT_MS }).catch(async () => {
      throw new Failure(`a cook after the renewals: dishes is ${await text('dishes')}`);
    });
    return username;
  } catch (error) {
    const shot = path.resolve(artifactDir, 'failure-short-session.png');
    await page.screenshot({ path: shot, fullPage: true, timeout: 5_000 }).catch(() => {});
    console.error(`browser.demo: screenshot of the short-session part's failure: ${shot}`);
    throw error;
  } finally {
    await page.close().catch(() => {});
  }
}

async function stopAll(processes, problems) {
  for (const name of ['server', 'game', 'redis']) {
    const child = processes[name];
    if (!child?.proc || child.proc.exitCode !== null || child.proc.signalCode !== null) continue;
    child.exited ??= new Promise((resolve) => child.proc.on('exit', (code, signal) => resolve({ code, signal })));
    const { code, signal } = await stopProcess(child);
    if (name !== 'redis' && code !== 0) problems.push(`${name} exit ${code ?? signal} after SIGTERM, want 0`);
    if (child.logPath && SANITIZER_REPORT.test(readFileSync(child.logPath, 'utf8'))) {
      problems.push(`sanitizer report in ${child.logPath}`);
    }
  }
  if (processes.redisDir) rmSync(processes.redisDir, { recursive: true, force: true });
}

async function main() {
  const [binary, artifactDir, gameBinary] = process.argv.slice(2);
  if (!binary || !artifactDir || !gameBinary) usage();
  mkdirSync(artifactDir, { recursive: true });
  const logPath = path.resolve(artifactDir, 'server.log');
  requireProgram(CHROMIUM, "install Debian's chromium (./dev.sh setup does)");
  requireProgram(REDIS_SERVER, 'install redis-server (./dev.sh setup does)');
  requireProgram(REDIS_CLI, 'install redis-tools (./dev.sh setup does)');
  const chromium = await loadPlaywright();

  const server = await startServer(binary, logPath);
  const userDataDir = mkdtempSync(path.join(tmpdir(), 'gatehouse-chromium-'));
  const restart = {};
  const short = {};
  let context = null;
  let page = null;
  let passed = false;
  const pageErrors = [];
  try {
    context = await chromium.launchPersistentContext(userDataDir, {
      executablePath: CHROMIUM,
      headless: true,
      args: CHROMIUM_ARGS,
      timeout: 30_000,
      viewport: { width: 1200, height: 900 },
    });
    context.on('page', (opened) => {
      opened.setDefaultTimeout(STEP_TIMEOUT_MS);
      opened.on('pageerror', (error) => pageErrors.push(error.message));
      opened.on('console', (message) => {
        // While the restarted gateway is down, Chromium reports each refused connection.
        if (message.type() === 'error' && !CONNECTION_REFUSED.test(message.text())) pageErrors.push(message.text());
      });
    });
    page = context.pages()[0] ?? (await context.newPage());
    page.setDefaultTimeout(STEP_TIMEOUT_MS);
    page.on('pageerror', (error) => pageErrors.push(error.message));
    page.on('console', (message) => {
      if (message.type() === 'error') pageErrors.push(message.text());
    });

    const username = await play(page, server.base);
    const shot = path.resolve(artifactDir, 'demo.png');
    await page.screenshot({ path: shot, fullPage: true });
    const chef = await playRestart(context, { server: binary, game: gameBinary }, artifactDir, restart);
    const brief = await playShortSession(context, binary, artifactDir, short);
    check(pageErrors.length === 0, `errors in the pages' consoles: ${pageErrors.join(' | ')}`);
    console.log(`browser.demo: ${username} registered, cooked, sold, reconnected, resumed; ` +
      `${chef} resumed after a gateway restart on Redis, re-synced after a lost log, and had a cook ` +
      `whose ack was lost retried once; ${brief} kept a session of ${SHORT_TTL_S}-second tokens; screenshot ${shot}`);
    passed = true;
  } catch (error) {
    if (page) {
      const shot = path.resolve(artifactDir, 'failure.png');
      await page.screenshot({ path: shot, fullPage: true, timeout: 5_000 }).catch(() => {});
      console.error(`browser.demo: screenshot of the failure: ${shot}`);
    }
    throw error;
  } finally {
    await context?.close().catch(() => {});
    rmSync(userDataDir, { recursive: true, force: true });
    const problems = [];
    await stopAll(restart, problems);
    await stopAll(short, problems);
    const { code, signal } = await stopProcess(server);
    // Checked after a passing run only, so that they never hide the first failure.
    if (passed) {
      check(problems.length === 0, problems.join('; '));
      check(!SANITIZER_REPORT.test(readFileSync(logPath, 'utf8')), `sanitizer report in the server log: see ${logPath}`);
      check(code === 0, `server exit ${code ?? signal} after SIGTERM, want 0; see ${logPath}`);
    }
  }
}

runTest('browser.demo', main, TEST_TIMEOUT_MS);
