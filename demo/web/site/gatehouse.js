// A gatehouse player client for the browser (PROTOCOL.md sections 3 and 6.4): one WebSocket
// with the JSON codec, commands answered by their ack or error, and reconnects that resume the
// player's update log, so that a dropped connection or a restarted gateway loses no logged
// update. A plain ES module with no dependencies: docs/clients.md describes its API.

const DEFAULTS = {
  backoffInitialMs: 500, // the first reconnect waits up to this long...
  backoffMaxMs: 15_000, // ...each further one up to twice as long, never more than this
  commandTimeoutMs: 10_000,
};

/**
 * A command that was not acked: `code` is the server's error code (`rate_limited`,
 * `invalid_envelope`, `bus_unavailable`, ...), or `not_connected` (nothing was sent),
 * `connection_closed` (the connection ended before the answer: the command may or may not be
 * on the bus) or `timeout`. `reply` is the server's error envelope, when there is one.
 */
export class CommandError extends Error {
  constructor(code, message, correlationId, reply = null) {
    super(`${code}: ${message}`);
    this.name = 'CommandError';
    this.code = code;
    this.correlationId = correlationId;
    this.reply = reply;
  }
}

/** The same-origin player WebSocket URL: `ws:` or `wss:` as the page came. */
export function defaultPlayerUrl() {
  const scheme = location.protocol === 'https:' ? 'wss:' : 'ws:';
  return `${scheme}//${location.host}/ws/player`;
}

export class GatehouseClient {
  /**
   * `token({failures})`: resolves with the access token for the next attempt (`failures`:
   * attempts failed since the last welcome, so > 0 hints that the last token may have been
   * refused); a plain string works too. A rejection counts as a failed attempt.
   * `url`: the player WebSocket URL without the token (default: same origin `/ws/player`).
   * Callbacks, each optional:
   * `onMessage(envelope)`: every envelope from the server, in order, before anything below.
   * `onResync({reason})`: the application must re-sync its state from its services: on each
   *   connection that cannot resume (`reason` 'initial', or 'no_update_id' after a reconnect
   *   before any logged update arrived) and on `gatehouse.gap` ('gap').
   * `onResumed({replayed})`: the server replayed what the client missed (`gatehouse.resumed`).
   * `onStatus(status, detail)`: 'connecting'; 'open' (detail: the welcome's payload plus
   *   `resuming`, the update id resumed from or null); 'waiting' (detail: `delayMs` until the
   *   next attempt, the close `code` if a socket closed, the `error` if the token failed);
   *   'stopped' (stop() was called).
   * `backoffInitialMs`, `backoffMaxMs`, `commandTimeoutMs`: see DEFAULTS.
   */
  constructor(options) {
    this.options = { ...DEFAULTS, ...options };
    this.ws = null;
    this.welcomed = false; // the current socket has had its welcome
    this.timer = null;
    this.stopped = true;
    this.generation = 0; // bumped by start() and stop(): an attempt of an older one gives up
    this.failures = 0;
    this.lastUpdateId = null;
    this.opened = false; // a welcome has been seen on some connection of this client
    this.reconnectAfterMs = null; // set by gatehouse.reconnect (a draining gateway)
    this.pending = new Map(); // correlation id -> {resolve, reject, timer}
    this.nextId = 1;
    // A prefix per client, so that the correlation ids of two tabs of one player differ.
    this.prefix = `js-${Math.random().toString(36).slice(2, 8)}-`;
    this.onOnline = () => {
      // The browser has a network again: try now rather than at the end of a long backoff.
      if (!this.stopped && this.ws === null && this.timer !== null) this.#connectNow();
    };
  }

  /** True between a welcome and the close of that connection. */
  get connected() {
    return this.ws !== null && this.ws.readyState === WebSocket.OPEN && this.welcomed;
  }

  /** Connects, and keeps reconnecting until stop(). */
  start() {
    if (!this.stopped) return;
    this.stopped = false;
    this.generation++;
    globalThis.addEventListener?.('online', this.onOnline);
    this.#connect();
  }

  /** Closes the connection (code 1000) and stops reconnecting; pending commands fail. */
  stop() {
    if (this.stopped) return;
    this.stopped = true;
    this.generation++;
    globalThis.removeEventListener?.('online', this.onOnline);
    clearTimeout(this.timer);
    this.timer = null;
    const ws = this.ws;
    this.ws = null;
    ws?.close(1000);
    this.#failPending('connection_closed', 'the client was stopped');
    this.#emit('onStatus', 'stopped');
  }

  /**
   * Closes the current socket without stopping the client (for tests and the developer
   * console): it reconnects with backoff and resumes, as after a network failure.
   */
  drop() {
    this.ws?.close();
  }

  /** A fresh correlation id: this client's prefix and a counter. */
  newCorrelationId() {
    return this.prefix + this.nextId++;
  }

  /**
   * Sends a command; resolves with its `ack` envelope (payload `{stream_id}`), rejects with a
   * CommandError. `correlationId` defaults to newCorrelationId().
   */
  command(type, payload = {}, { correlationId, timeoutMs } = {}) {
    const id = correlationId ?? this.newCorrelationId();
    if (!this.connected) {
      return Promise.reject(new CommandError('not_connected', 'not connected', id));
    }
    if (this.pending.has(id)) {
      return Promise.reject(new CommandError('duplicate_correlation_id', 'already awaiting an answer', id));
    }
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new CommandError('timeout', 'no answer in time', id));
      }, timeoutMs ?? this.options.commandTimeoutMs);
      this.pending.set(id, { resolve, reject, timer });
      this.ws.send(JSON.stringify({ type, payload, correlation_id: id }));
    });
  }

  #connectNow() {
    clearTimeout(this.timer);
    this.timer = null;
    this.#connect();
  }

  async #connect() {
    this.timer = null;
    const generation = this.generation;
    this.#emit('onStatus', 'connecting');
    let token;
    try {
      const { token: source } = this.options;
      token = typeof source === 'function' ? await source({ failures: this.failures }) : source;
    } catch (error) {
      if (generation === this.generation) this.#retry({ error });
      return;
    }
    if (generation !== this.generation) return;

    // Browsers cannot set an Authorization header on a WebSocket, so the token is in the path
    // (the gateway logs it redacted).
    const resuming = this.lastUpdateId;
    let url = `${this.options.url ?? defaultPlayerUrl()}/${encodeURIComponent(token)}`;
    if (resuming !== null) url += `?resume=${encodeURIComponent(resuming)}`;
    const ws = new WebSocket(url, ['gatehouse.json']);
    this.ws = ws;
    this.welcomed = false;
    ws.onmessage = (event) => {
      if (this.ws !== ws) return;
      let envelope;
      try {
        envelope = JSON.parse(event.data);
      } catch {
        return; // the gateway writes JSON only; nothing else is meant for us
      }
      this.#received(envelope, resuming);
    };
    ws.onclose = (event) => {
      if (this.ws !== ws) return;
      this.ws = null;
      this.welcomed = false;
      this.#failPending('connection_closed', `connection closed (${event.code})`);
      if (!this.stopped) this.#retry({ code: event.code });
    };
  }

  #received(envelope, resuming) {
    // Kept before anything else sees the update: a close right after must resume past it.
    if (typeof envelope.update_id === 'string') this.lastUpdateId = envelope.update_id;
    this.#emit('onMessage', envelope);
    const { type, payload, correlation_id: id } = envelope;
    switch (type) {
      case 'welcome': {
        this.welcomed = true;
        this.failures = 0;
        this.reconnectAfterMs = null;
        const first = !this.opened;
        this.opened = true;
        this.#emit('onStatus', 'open', { ...payload, resuming });
        if (resuming === null) this.#emit('onResync', { reason: first ? 'initial' : 'no_update_id' });
        break;
      }
      case 'ack':
      case 'error': {
        const waiter = id == null ? undefined : this.pending.get(id);
        if (!waiter) break;
        this.pending.delete(id);
        clearTimeout(waiter.timer);
        if (type === 'ack') waiter.resolve(envelope);
        else waiter.reject(new CommandError(payload?.code, payload?.message, id, envelope));
        break;
      }
      case 'gatehouse.resumed':
        this.#emit('onResumed', { replayed: payload?.replayed ?? 0 });
        break;
      case 'gatehouse.gap':
        // Nothing was replayed; the next reconnect cannot resume from here either, until a
        // new logged update arrives.
        this.lastUpdateId = null;
        this.#emit('onResync', { reason: 'gap' });
        break;
      case 'gatehouse.reconnect':
        this.reconnectAfterMs = Math.max(0, Number(payload?.after_ms) || 0);
        break;
      default:
        break;
    }
  }

  #retry(detail) {
    let delayMs;
    if (this.reconnectAfterMs !== null) {
      // A draining gateway spread its clients' returns; it told us when to come back.
      delayMs = this.reconnectAfterMs;
      this.reconnectAfterMs = null;
    } else {
      // Exponential backoff with full jitter: anywhere in [0, min(max, initial * 2^n)), so a
      // fleet of clients dropped at once (a gateway restart) spreads out instead of returning
      // in waves.
      const { backoffInitialMs, backoffMaxMs } = this.options;
      const ceiling = Math.min(backoffMaxMs, backoffInitialMs * 2 ** Math.min(this.failures, 30));
      delayMs = Math.round(Math.random() * ceiling);
    }
    this.failures++;
    this.#emit('onStatus', 'waiting', { delayMs, ...detail });
    this.timer = setTimeout(() => this.#connect(), delayMs);
  }

  #failPending(code, message) {
    for (const [id, waiter] of this.pending) {
      clearTimeout(waiter.timer);
      waiter.reject(new CommandError(code, message, id));
    }
    this.pending.clear();
  }

  #emit(name, ...args) {
    const callback = this.options[name];
    if (!callback) return;
    try {
      callback(...args);
    } catch (error) {
      // An application callback's bug must not stop the connection's bookkeeping.
      console.error(`gatehouse client: ${name} threw`, error);
    }
  }
}
