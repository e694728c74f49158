// A gatehouse player client for the browser (docs/protocol.md sections 3 and 6): one WebSocket with
// the JSON codec; commands answered by their ack or error, and retried with their own
// correlation id after a reconnect, so that the gateway's de-duplication (6.5) puts each on the
// bus once; reconnects that resume the player's update log (6.4), come back when a draining
// gateway asks (6.7), and renew the session in band before its token expires (6.3). A plain ES
// module with no dependencies: docs/clients.md describes its API.

const DEFAULTS = {
  backoffInitialMs: 500, // the first reconnect waits up to this long...
  backoffMaxMs: 15_000, // ...each further one up to twice as long, never more than this
  commandTimeoutMs: 10_000,
  // Commands sent and not yet answered, kept to be sent again after a reconnect. One more is
  // refused at once (`too_many_pending`). At the default rate limit (100 per second, burst
  // 200) a reconnect can send them all again without being refused.
  maxPendingCommands: 100,
};

// An in-band refresh asked for too early is answered `rate_limited`: try again after this.
const REFRESH_RETRY_MS = 1_000;
// A token source that returned the session's own token is asked again after this long, this
// many times (a token issued in the same second as the last one is the same JWT).
const REFRESH_SAME_TOKEN_MS = 250;
const REFRESH_SAME_TOKEN_TRIES = 8;
// When the gateway says a token expires soon, refresh two thirds into its lifetime (at once if
// that has passed), never later than this after the notice (a notice comes 60 s before `exp`).
const REFRESH_AT_LIFETIME = 2 / 3;
const REFRESH_LATEST_MS = 30_000;
// The close code of a session whose token expired (docs/protocol.md 6.3).
const CLOSE_TOKEN_EXPIRED = 4001;

/**
 * A command that was not acked: `code` is the server's error code (`rate_limited`,
 * `invalid_envelope`, `bus_unavailable`, ...), or `not_connected` (nothing was sent),
 * `too_many_pending` (nothing was sent: `maxPendingCommands` are awaiting their answer),
 * `connection_closed` (stop() was called before the answer: the command may or may not be on
 * the bus), `timeout` (no answer within the command's timeout, reconnects included: the same)
 * or `duplicate_correlation_id`. `reply` is the server's error envelope, when there is one.
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

/** The refresh route refused the refresh token (`status` 400 or 401): log in again. */
export class RefreshError extends Error {
  constructor(status, code, message) {
    super(`token refresh refused (${status} ${code ?? ''}): ${message}`);
    this.name = 'RefreshError';
    this.status = status;
    this.code = code;
  }
}

/** The same-origin player WebSocket URL: `ws:` or `wss:` as the page came. */
export function defaultPlayerUrl() {
  const scheme = location.protocol === 'https:' ? 'wss:' : 'ws:';
  return `${scheme}//${location.host}/ws/player`;
}

// The gateway's refresh route next to a player WebSocket URL: same host, http(s).
function refreshUrlFor(wsUrl) {
  if (!wsUrl) return '/token/refresh';
  const url = new URL(wsUrl);
  url.protocol = url.protocol === 'wss:' ? 'https:' : 'http:';
  url.pathname = '/token/refresh';
  url.search = '';
  return url.toString();
}

// The lifetime a JWT had at least when issued, in milliseconds: `exp - iat` (both the server's
// seconds, so no clock skew) less one second, as a token issued just before a second ticks
// over has that much less. Null when the token does not say.
function tokenLifetimeMs(token) {
  try {
    const part = token.split('.')[1].replace(/-/g, '+').replace(/_/g, '/');
    const claims = JSON.parse(atob(part + '='.repeat((4 - (part.length % 4)) % 4)));
    if (Number.isFinite(claims.exp) && Number.isFinite(claims.iat) && claims.exp > claims.iat) {
      return { exp: claims.exp, lifetimeMs: Math.max(0, claims.exp - claims.iat - 1) * 1000 };
    }
  } catch {
    // not a JWT we can read: refresh as soon as the gateway warns
  }
  return { exp: null, lifetimeMs: null };
}

const monotonicNow = () => performance.now();

export class GatehouseClient {
  /**
   * `token`: the access token. A string, or a function `({failures, reason})` resolving with
   *   one: `reason` 'connect' before an attempt (`failures`: attempts failed since the last
   *   welcome, so > 0 hints that the last token may have been refused), 'expiring' when the
   *   gateway warned that the session's token expires soon (return a NEW token: the client
   *   renews the session in band with it), 'expired' after the gateway closed the session
   *   with 4001 (return a new one). A rejection counts as a failed attempt.
   * `refreshToken`: instead of a token function, the client renews the access token itself
   *   through the gateway's `POST /token/refresh` (at `refreshUrl`, default: the WebSocket
   *   URL's host), keeping the rotated refresh token: in band when the gateway warns, and
   *   before every reconnect but one leaving a draining gateway. `token` is then the first access token (optional) and
   *   `onTokens(pair)` sees every new pair. A refused refresh token stops the client (status
   *   'stopped' with the RefreshError).
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
   *   'refreshed' (detail: `exp`, the session's new end); 'refresh_failed' (detail: `error`
   *   or the server's `code`; the session ends at its old `exp` and the client reconnects
   *   with a new token); 'stopped' (stop() was called, or detail `error`: the refresh token
   *   was refused).
   * `backoffInitialMs`, `backoffMaxMs`, `commandTimeoutMs`, `maxPendingCommands`: see
   *   DEFAULTS.
   */
  constructor(options) {
    this.options = { ...DEFAULTS, ...options };
    if (this.options.refreshToken !== undefined && typeof this.options.token === 'function') {
      throw new TypeError('GatehouseClient: give a token function or a refreshToken, not both');
    }
    this.ws = null;
    this.welcomed = false; // the current socket has had its welcome
    this.timer = null;
    this.stopped = true;
    this.generation = 0; // bumped by start() and stop(): an attempt of an older one gives up
    this.failures = 0;
    this.lastUpdateId = null;
    this.opened = false; // a welcome has been seen on some connection of this client
    this.reconnectAt = null; // monotonic ms a draining gateway asked us to come back at
    this.moveTimer = null; // closes the connection at reconnectAt
    this.tokenExpired = false; // the last session ended with 4001: the next needs a new token
    // Commands sent and not answered, in sending order: correlation id -> {frame, resolve,
    // reject, timer}. Sent again after each welcome until answered or timed out.
    this.pending = new Map();
    this.nextId = 1;
    // A prefix per client, so that the correlation ids of two tabs of one player differ.
    this.prefix = `js-${Math.random().toString(36).slice(2, 8)}-`;
    // The token of the current session: {token, obtainedAt, exp, lifetimeMs}.
    this.session = null;
    this.refreshTimer = null;
    this.sameTokenTries = 0; // in-band refreshes the token source answered with the old token
    this.refreshes = new Map(); // correlation id -> the token info an in-band refresh sent
    // refreshToken mode: the pair the client holds.
    this.refreshToken = this.options.refreshToken ?? null;
    this.accessToken = typeof this.options.token === 'string' ? this.options.token : null;
    this.refreshing = null; // the refresh request in flight (one at a time: tokens rotate)
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
  stop(detail = undefined) {
    if (this.stopped) return;
    this.stopped = true;
    this.generation++;
    globalThis.removeEventListener?.('online', this.onOnline);
    clearTimeout(this.timer);
    this.timer = null;
    this.#endSession();
    const ws = this.ws;
    this.ws = null;
    ws?.close(1000);
    this.#failPending('connection_closed', 'the client was stopped');
    this.#emit('onStatus', 'stopped', detail);
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
   * CommandError. `correlationId` defaults to newCorrelationId(). When the connection ends
   * before the answer, the command is sent again, with the same correlation id, after the
   * next welcome: the gateway acks a repeat with the original stream id. `timeoutMs` bounds
   * the whole wait, reconnects included.
   */
  command(type, payload = {}, { correlationId, timeoutMs } = {}) {
    const id = correlationId ?? this.newCorrelationId();
    if (!this.connected) {
      return Promise.reject(new CommandError('not_connected', 'not connected', id));
    }
    if (this.pending.has(id)) {
      return Promise.reject(new CommandError('duplicate_correlation_id', 'already awaiting an answer', id));
    }
    if (this.pending.size >= this.options.maxPendingCommands) {
      return Promise.reject(new CommandError('too_many_pending',
        `${this.pending.size} commands are awaiting their answer`, id));
    }
    return new Promise((resolve, reject) => {
      const entry = { frame: JSON.stringify({ type, payload, correlation_id: id }), resolve, reject };
      entry.timer = setTimeout(() => {
        if (this.pending.get(id) !== entry) return;
        this.pending.delete(id);
        reject(new CommandError('timeout', 'no answer in time', id));
      }, timeoutMs ?? this.options.commandTimeoutMs);
      this.pending.set(id, entry);
      this.ws.send(entry.frame);
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
      token = await this.#token(this.tokenExpired ? 'expired' : 'connect');
    } catch (error) {
      if (generation !== this.generation) return;
      if (error instanceof RefreshError) this.stop({ error });
      else this.#retry({ error });
      return;
    }
    if (generation !== this.generation) return;
    const obtainedAt = monotonicNow();

    // Browsers cannot set an Authorization header on a WebSocket, so the token is in the path
    // (the gateway logs it redacted).
    const resuming = this.lastUpdateId;
    let url = `${this.options.url ?? defaultPlayerUrl()}/${encodeURIComponent(token)}`;
    if (resuming !== null) url += `?resume=${encodeURIComponent(resuming)}`;
    const ws = new WebSocket(url, ['gatehouse.json']);
    this.ws = ws;
    this.welcomed = false;
    this.session = { token, obtainedAt, ...tokenLifetimeMs(token) };
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
    ws.onclose = (event) => this.#closed(ws, event.code);
  }

  // The socket `ws` ended (or we left it): reconnect, keeping the unanswered commands.
  #closed(ws, code) {
    if (this.ws !== ws) return;
    this.ws = null;
    this.welcomed = false;
    this.#endSession();
    if (code === CLOSE_TOKEN_EXPIRED) this.tokenExpired = true;
    if (!this.stopped) this.#retry({ code });
  }

  #endSession() {
    clearTimeout(this.refreshTimer);
    this.refreshTimer = null;
    clearTimeout(this.moveTimer);
    this.moveTimer = null;
    this.refreshes.clear();
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
        this.tokenExpired = false;
        this.reconnectAt = null;
        const first = !this.opened;
        this.opened = true;
        // Unanswered commands of the last connection go again, in their order and before
        // anything the application sends from the callbacks below.
        for (const entry of this.pending.values()) this.ws.send(entry.frame);
        this.#emit('onStatus', 'open', { ...payload, resuming });
        if (resuming === null) this.#emit('onResync', { reason: first ? 'initial' : 'no_update_id' });
        break;
      }
      case 'ack':
      case 'error': {
        if (id != null && this.refreshes.has(id)) {
          this.#refreshRefused(id, payload?.code);
          break;
        }
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
        this.#reconnectLater(Math.max(0, Number(payload?.after_ms) || 0));
        break;
      case 'gatehouse.token_expiring':
        this.#scheduleRefresh(payload?.exp);
        break;
      case 'gatehouse.refreshed': {
        const sent = this.refreshes.get(id);
        if (!sent) break;
        this.refreshes.delete(id);
        this.session = sent;
        this.#emit('onStatus', 'refreshed', { exp: payload?.exp });
        break;
      }
      default:
        break;
    }
  }

  // A draining gateway (docs/protocol.md 6.7) serves this connection until its spread has passed
  // and asked us to come back after `afterMs`: leave then and reconnect at once (elsewhere,
  // behind a load balancer). Should the gateway close first, the reconnect still waits for
  // that moment, not for a backoff.
  #reconnectLater(afterMs) {
    this.reconnectAt = monotonicNow() + afterMs;
    clearTimeout(this.moveTimer);
    const ws = this.ws;
    this.moveTimer = setTimeout(() => {
      if (this.ws !== ws) return;
      ws.close(1000);
      this.#closed(ws, 1000);
    }, afterMs);
  }

  // The gateway warned that the session's token expires (`exp`, its seconds). Refresh two
  // thirds into the token's lifetime, measured from when we got it: with tokens shorter than
  // the gateway's 60 s notice, refreshing at every notice would refresh at once, forever.
  #scheduleRefresh(exp) {
    clearTimeout(this.refreshTimer);
    this.sameTokenTries = 0;
    const { session } = this;
    let delayMs = 0;
    if (session?.lifetimeMs != null && session.exp === exp) {
      const at = session.obtainedAt + session.lifetimeMs * REFRESH_AT_LIFETIME;
      delayMs = Math.min(REFRESH_LATEST_MS, Math.max(0, at - monotonicNow()));
    }
    const ws = this.ws;
    this.refreshTimer = setTimeout(() => this.#refreshInBand(ws), delayMs);
  }

  async #refreshInBand(ws) {
    this.refreshTimer = null;
    if (this.ws !== ws || !this.connected) return;
    let token;
    try {
      token = await this.#token('expiring');
    } catch (error) {
      if (error instanceof RefreshError) this.stop({ error });
      else if (this.ws === ws) this.#emit('onStatus', 'refresh_failed', { error });
      return;
    }
    if (this.ws !== ws || !this.connected) return; // the next connection uses the new token
    if (token === this.session?.token) {
      // Issued in the same second as the session's token (the same claims make the same JWT):
      // ask again once the clock has moved on. A source that keeps returning it cannot renew
      // the session: it ends at its exp, and the reconnect asks with reason 'expired'.
      if (++this.sameTokenTries <= REFRESH_SAME_TOKEN_TRIES) {
        this.refreshTimer = setTimeout(() => this.#refreshInBand(ws), REFRESH_SAME_TOKEN_MS);
      } else {
        this.#emit('onStatus', 'refresh_failed', { error: new Error('the token source keeps returning the session\'s token') });
      }
      return;
    }
    const id = this.newCorrelationId();
    this.refreshes.set(id, { token, obtainedAt: monotonicNow(), ...tokenLifetimeMs(token) });
    ws.send(JSON.stringify({ type: 'gatehouse.refresh', payload: { access_token: token }, correlation_id: id }));
  }

  #refreshRefused(id, code) {
    this.refreshes.delete(id);
    if (code === 'rate_limited') {
      // Not looked at: try again shortly, with the same token source.
      const ws = this.ws;
      clearTimeout(this.refreshTimer);
      this.refreshTimer = setTimeout(() => this.#refreshInBand(ws), REFRESH_RETRY_MS);
      return;
    }
    this.#emit('onStatus', 'refresh_failed', { code });
  }

  // An access token for `reason` ('connect', 'expiring', 'expired'; see the constructor).
  async #token(reason) {
    const { token } = this.options;
    if (this.refreshToken === null) {
      if (typeof token !== 'function') return token;
      const failures = reason === 'expired' ? Math.max(1, this.failures) : this.failures;
      return token({ failures, reason });
    }
    // Only a first attempt presents the token it has: any later one may follow a refusal (a
    // browser cannot tell a 401 from a network failure) or a long absence.
    if (reason !== 'connect' || this.failures > 0 || this.accessToken === null) {
      await this.#refreshPair();
    }
    return this.accessToken;
  }

  // POST /token/refresh: a new pair. One request at a time: presenting a refresh token that
  // was already rotated revokes its whole family.
  #refreshPair() {
    this.refreshing ??= (async () => {
      const url = this.options.refreshUrl ?? refreshUrlFor(this.options.url);
      const response = await fetch(url, {
        method: 'POST',
        headers: { 'Content-Type': 'application/json' },
        body: JSON.stringify({ refresh_token: this.refreshToken }),
      });
      let body = null;
      try {
        body = await response.json();
      } catch {
        body = null;
      }
      if (response.status === 400 || response.status === 401) {
        throw new RefreshError(response.status, body?.code, body?.detail || body?.title || '');
      }
      if (!response.ok || typeof body?.access_token !== 'string') {
        throw new Error(`token refresh failed: HTTP ${response.status}`);
      }
      this.refreshToken = body.refresh_token;
      this.accessToken = body.access_token;
      this.#emit('onTokens', body);
    })().finally(() => {
      this.refreshing = null;
    });
    return this.refreshing;
  }

  #retry(detail) {
    let delayMs;
    if (this.reconnectAt !== null) {
      // A draining gateway spread its clients' returns; it told us when to come back. Leaving
      // it is no failure: the next attempt presents the token the session had (a refresh
      // racing the gateway's exit could lose its answer, and with it the rotated refresh
      // token).
      delayMs = Math.max(0, Math.round(this.reconnectAt - monotonicNow()));
      this.reconnectAt = null;
    } else {
      // Exponential backoff with full jitter: anywhere in [0, min(max, initial * 2^n)), so a
      // fleet of clients dropped at once (a gateway restart) spreads out instead of returning
      // in waves.
      const { backoffInitialMs, backoffMaxMs } = this.options;
      const ceiling = Math.min(backoffMaxMs, backoffInitialMs * 2 ** Math.min(this.failures, 30));
      delayMs = Math.round(Math.random() * ceiling);
      this.failures++;
    }
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
