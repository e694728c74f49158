// What the browser tests (demo_test.mjs, client_test.mjs, cors_test.mjs) share: Chromium and
// its flags, playwright-core, failures and checks, gatehouse-server processes started on a free
// port and stopped with their exit status and sanitizer reports checked, and the run itself
// under a watchdog that kills every child left when it hangs or fails.

import { spawn } from 'node:child_process';

export const CHROMIUM = '/usr/bin/chromium';
// The machine's network is closed: without these Chromium waits on updaters, sync and QUIC.
export const CHROMIUM_ARGS = [
  '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync',
];
export const READY_TIMEOUT_MS = 20_000; // an ASan build starts slower
export const SANITIZER_REPORT = /ERROR: AddressSanitizer|ERROR: LeakSanitizer|runtime error:|WARNING: ThreadSanitizer/;

// A check that failed: reported by its message alone (any other error with its stack).
export class Failure extends Error {}

// Every child process, killed by the watchdog when the run hangs or fails.
export const children = new Set();

export function check(condition, message) {
  if (!condition) throw new Failure(message);
}

export async function loadPlaywright() {
  try {
    return (await import('playwright-core')).chromium;
  } catch (error) {
    throw new Failure(
      `playwright-core is not installed (${error.code ?? error.message}): run \`npm ci\` in ` +
        'tests/browser (./dev.sh test does this before running the tests)',
    );
  }
}

// The environment of a child: no GATEHOUSE_ setting of the caller's leaks into a test's server.
export function childEnv() {
  const env = Object.fromEntries(
    Object.entries(process.env).filter(([name]) => !name.startsWith('GATEHOUSE_')),
  );
  env.ASAN_OPTIONS ??= 'abort_on_error=0:detect_leaks=1';
  env.UBSAN_OPTIONS ??= 'print_stacktrace=1';
  return env;
}

// gatehouse-server with `args` (`--listen 127.0.0.1:0` among them); resolves with
// {proc, exited, base, address, stderr()} once it printed its ready line.
export function startGateway(binary, args) {
  const proc = spawn(binary, args, { env: childEnv(), stdio: ['ignore', 'pipe', 'pipe'] });
  children.add(proc);
  let stderr = '';
  proc.stderr.on('data', (chunk) => { stderr += chunk; });
  const exited = new Promise((resolve) => proc.on('exit', (code, signal) => {
    children.delete(proc);
    resolve(code ?? signal);
  }));
  return new Promise((resolve, reject) => {
    let stdout = '';
    const timer = setTimeout(() => reject(new Failure(`no ready line: ${stderr.slice(-1500)}`)), READY_TIMEOUT_MS);
    exited.then((code) => reject(new Failure(`gatehouse-server exited ${code} before it was ready: ${stderr.slice(-1500)}`)));
    proc.stdout.on('data', (chunk) => {
      stdout += chunk;
      const match = /^gatehouse ready listen=(\S+)\n/.exec(stdout);
      if (!match) return;
      clearTimeout(timer);
      resolve({ proc, exited, address: match[1], base: `http://${match[1]}`, stderr: () => stderr });
    });
  });
}

// SIGTERM (SIGKILL after 10 s); fails unless it exited 0 without a sanitizer report.
export async function stopGateway(gateway) {
  if (gateway.proc.exitCode === null && gateway.proc.signalCode === null) gateway.proc.kill('SIGTERM');
  const killer = setTimeout(() => gateway.proc.kill('SIGKILL'), 10_000);
  const code = await gateway.exited;
  clearTimeout(killer);
  check(code === 0, `gatehouse-server exit ${code}, want 0: ${gateway.stderr().slice(-1500)}`);
  check(!SANITIZER_REPORT.test(gateway.stderr()), 'sanitizer report in the server log');
}

// Runs `main` as the test `name` (`browser.cors`) within `timeoutMs`: prints `NAME: passed`, or
// `NAME: FAILED: why` with exit status 1 and every child killed.
export function runTest(name, main, timeoutMs) {
  const watchdog = setTimeout(() => {
    console.error(`${name}: FAILED: the test took longer than ${timeoutMs} ms`);
    for (const child of children) child.kill('SIGKILL');
    process.exit(1);
  }, timeoutMs);
  main().then(
    () => {
      clearTimeout(watchdog);
      console.log(`${name}: passed`);
    },
    (error) => {
      clearTimeout(watchdog);
      for (const child of children) child.kill('SIGKILL');
      console.error(`${name}: FAILED: ${error instanceof Failure ? error.message : error.stack}`);
      // Now: a page server or socket a failed step left open would keep the run alive.
      process.exit(1);
    },
  );
}
