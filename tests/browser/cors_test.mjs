// --allowed-origins in a real browser (docs/operations.md "Browser pages on another origin"):
// headless Chromium (Debian's /usr/bin/chromium, driven by playwright-core) loads a page from a
// second loopback origin and, from it, registers and logs in with fetch (JSON bodies: the
// browser preflights each), opens a WebSocket and an EventSource to the gateway. From the
// listed origin all of it works; from an origin that is not listed fetch fails (no CORS
// headers), and the WebSocket and EventSource are refused (403 origin_not_allowed). A page the
// gateway serves itself at its IP address (its own origin, not listed) works too.
//
// usage: node cors_test.mjs GATEHOUSE_SERVER
// Exit 0 when every check passed; 1 with the reason otherwise.

import { randomBytes } from 'node:crypto';
import { accessSync, constants, mkdtempSync, rmSync } from 'node:fs';
import http from 'node:http';
import { tmpdir } from 'node:os';
import path from 'node:path';

import {
  CHROMIUM, CHROMIUM_ARGS, Failure, check, loadPlaywright, runTest, startGateway as startServer,
  stopGateway,
} from './harness.mjs';

const STEP_TIMEOUT_MS = 10_000; // every single wait in the page
const TEST_TIMEOUT_MS = 90_000; // the whole run; CTest's TIMEOUT is above this

// A page server on a free loopback port: every path answers the same empty HTML page.
function startPageServer() {
  const server = http.createServer((request, response) => {
    response.writeHead(200, { 'Content-Type': 'text/html; charset=utf-8' });
    response.end('<!doctype html><title>page on another origin</title>');
  });
  return new Promise((resolve) => {
    server.listen(0, '127.0.0.1', () => resolve({ server, origin: `http://127.0.0.1:${server.address().port}` }));
  });
}

// gatehouse-server on a free port with `extra` flags; {proc, exited, base, stderr()}.
function startGateway(binary, extra) {
  return startServer(binary, ['--listen', '127.0.0.1:0', '--db', 'sqlite::memory:', '--jwt-secret',
    `cors-${randomBytes(16).toString('hex')}`, '--password-hash-kib', '8192', '--password-hash-passes', '1',
    '--shutdown-timeout', '3', ...extra]);
}

// Runs in the page: what a page on its origin can do with the gateway at `base`. Each step
// reports what happened instead of throwing, so that one result says everything.
async function tryGateway({ base, username, stepMs }) {
  const out = {};
  const json = { 'Content-Type': 'application/json' };
  try {
    const registered = await fetch(`${base}/register`, {
      method: 'POST', headers: json,
      body: JSON.stringify({ username, email: `${username}@example.test`, password: 'correct horse battery' }),
    });
    out.register = registered.status;
    const login = await fetch(`${base}/login`, {
      method: 'POST', headers: json, body: JSON.stringify({ username, password: 'correct horse battery' }),
    });
    out.login = login.status;
    const pair = await login.json();
    out.token = pair.access_token;
    const settings = await fetch(`${base}/player/settings`, { headers: { Authorization: `Bearer ${pair.access_token}` } });
    out.settings = settings.status;
  } catch (error) {
    out.fetchError = String(error);
  }
  return out;
}

async function tryStreams({ base, token, stepMs }) {
  const ws = await new Promise((resolve) => {
    const socket = new WebSocket(`${base.replace(/^http/, 'ws')}/ws/player/${token}`);
    const timer = setTimeout(() => resolve('timeout'), stepMs);
    socket.onmessage = (event) => {
      clearTimeout(timer);
      const type = JSON.parse(event.data).type;
      socket.close(1000);
      resolve(type);
    };
    socket.onclose = (event) => {
      clearTimeout(timer);
      resolve(`closed ${event.code}`);
    };
  });
  const sse = await new Promise((resolve) => {
    const source = new EventSource(`${base}/sse/player?token=${token}`);
    const timer = setTimeout(() => resolve('timeout'), stepMs);
    source.onopen = () => {
      clearTimeout(timer);
      source.close();
      resolve('open');
    };
    source.onerror = () => {
      clearTimeout(timer);
      const state = source.readyState;
      source.close();
      resolve(`error ${state}`);
    };
  });
  return { ws, sse };
}

// A token minted by the gateway for a page that cannot log in itself.
async function loginFromNode(base, username) {
  const headers = { 'Content-Type': 'application/json' };
  const body = { username, email: `${username}@example.test`, password: 'correct horse battery' };
  await fetch(`${base}/register`, { method: 'POST', headers, body: JSON.stringify(body) });
  const login = await fetch(`${base}/login`, { method: 'POST', headers, body: JSON.stringify(body) });
  check(login.status === 200, `login from Node.js: ${login.status}`);
  return (await login.json()).access_token;
}

// gatehouse_upgrades_refused_total{reason="origin_not_allowed"}: the refusals were the
// Origin check's, not a bad token's.
async function originRefusals(base) {
  const text = await (await fetch(`${base}/metrics`)).text();
  const match = /^gatehouse_upgrades_refused_total\{reason="origin_not_allowed"\} (\d+)$/m.exec(text);
  check(match, 'no gatehouse_upgrades_refused_total{reason="origin_not_allowed"} on /metrics');
  return Number(match[1]);
}

async function visit(context, url, gateway, username, expectAllowed) {
  const page = await context.newPage();
  page.setDefaultTimeout(STEP_TIMEOUT_MS);
  try {
    await page.goto(url);
    const origin = new URL(url).origin;
    const got = await page.evaluate(tryGateway, { base: gateway.base, username, stepMs: STEP_TIMEOUT_MS });
    if (expectAllowed) {
      check(got.register === 201 && got.login === 200 && got.settings === 200 && got.token,
        `page on ${origin}: fetch to the gateway: ${JSON.stringify(got)}`);
    } else {
      check(got.fetchError && got.register === undefined,
        `page on ${origin}: fetch should fail without CORS headers: ${JSON.stringify(got)}`);
    }
    const token = got.token ?? (await loginFromNode(gateway.base, `${username}_node`));
    const refusedBefore = await originRefusals(gateway.base);
    const streams = await page.evaluate(tryStreams, { base: gateway.base, token, stepMs: STEP_TIMEOUT_MS });
    const refused = (await originRefusals(gateway.base)) - refusedBefore;
    check(refused === (expectAllowed ? 0 : 1), `page on ${origin}: ${refused} upgrades refused for their origin`);
    if (expectAllowed) {
      check(streams.ws === 'welcome' && streams.sse === 'open',
        `page on ${origin}: WebSocket and EventSource: ${JSON.stringify(streams)}`);
    } else {
      // EventSource.CLOSED (2): the browser gave up on the stream, as it does on a 403.
      check(streams.ws === 'closed 1006' && streams.sse === 'error 2',
        `page on ${origin}: WebSocket and EventSource should be refused: ${JSON.stringify(streams)}`);
    }
    return `${origin} ${expectAllowed ? 'allowed' : 'refused'}`;
  } finally {
    await page.close();
  }
}

async function main() {
  const [binary] = process.argv.slice(2);
  if (!binary) {
    console.error('usage: node cors_test.mjs GATEHOUSE_SERVER');
    process.exit(2);
  }
  try {
    accessSync(CHROMIUM, constants.X_OK);
  } catch {
    throw new Failure(`${CHROMIUM} not found: install Debian's chromium (./dev.sh setup does)`);
  }
  const chromium = await loadPlaywright();
  const listed = await startPageServer();
  const other = await startPageServer();
  const gateway = await startGateway(binary, ['--allowed-origins', listed.origin, '--auth-rate-limit', '0']);
  const userDataDir = mkdtempSync(path.join(tmpdir(), 'gatehouse-chromium-'));
  let context = null;
  let passed = false;
  try {
    context = await chromium.launchPersistentContext(userDataDir, {
      executablePath: CHROMIUM, headless: true, args: CHROMIUM_ARGS, timeout: 30_000,
    });
    const tag = randomBytes(3).toString('hex');
    const results = [
      await visit(context, `${listed.origin}/`, gateway, `listed_${tag}`, true),
      await visit(context, `${other.origin}/`, gateway, `other_${tag}`, false),
      // The gateway's own origin at 127.0.0.1, not listed: a page it serves (its /health).
      await visit(context, `${gateway.base}/health`, gateway, `own_${tag}`, true),
    ];
    console.log(`browser.cors: ${results.join('; ')}`);
    passed = true;
  } finally {
    await context?.close().catch(() => {});
    rmSync(userDataDir, { recursive: true, force: true });
    for (const { server } of [listed, other]) {
      server.closeAllConnections();
      server.close();
    }
    if (passed) {
      await stopGateway(gateway);
    } else {
      gateway.proc.kill('SIGKILL');
    }
  }
}

runTest('browser.cors', main, TEST_TIMEOUT_MS);
