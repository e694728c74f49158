// The player's WebSocket (PROTOCOL.md section 3) with the JSON codec: one envelope per text
// frame, reconnecting with exponential backoff.

const BACKOFF_FIRST_MS = 500;
const BACKOFF_MAX_MS = 15_000;

export class GameSocket {
  /**
   * `tokens`: a Tokens. `onMessage(envelope)`: every envelope the server sends.
   * `onStatus(status, detail)`: 'connecting', 'open' (detail: the welcome's payload), 'waiting'
   * (detail: {delay} ms until the next attempt and the close {code}, absent when no attempt
   * was made), 'expired' (detail: why the refresh token was refused: log in again), 'closed'
   * (stop() was called).
   */
  constructor(tokens, { onMessage, onStatus }) {
    this.tokens = tokens;
    this.onMessage = onMessage;
    this.onStatus = onStatus;
    this.ws = null;
    this.timer = null;
    this.stopped = false;
    this.failures = 0;
    this.nextId = 1;
    // A prefix per page load, so correlation ids of two tabs of one player differ in the log.
    this.prefix = `web-${Math.random().toString(36).slice(2, 6)}-`;
  }

  start() {
    this.stopped = false;
    this.#connect();
  }

  stop() {
    this.stopped = true;
    clearTimeout(this.timer);
    this.ws?.close(1000);
    this.ws = null;
    this.onStatus('closed');
  }

  /** Sends a command; returns its correlation id, or null when not connected. */
  send(type, payload = {}) {
    if (this.ws?.readyState !== WebSocket.OPEN) return null;
    const correlationId = this.prefix + this.nextId++;
    this.ws.send(JSON.stringify({ type, payload, correlation_id: correlationId }));
    return correlationId;
  }

  async #connect() {
    this.onStatus('connecting');
    let token;
    try {
      // After a failed attempt the token may be what the server refused (an upgrade refused
      // with 401 looks like any other failure to a browser), so get a fresh one.
      token = await this.tokens.accessToken({ force: this.failures > 0 });
    } catch (error) {
      if (error.status === 401 || error.status === 400) {
        this.stopped = true;
        this.onStatus('expired', error.message);
        return;
      }
      this.#retry();
      return;
    }
    if (this.stopped) return;

    const scheme = location.protocol === 'https:' ? 'wss:' : 'ws:';
    const url = `${scheme}//${location.host}/ws/player/${encodeURIComponent(token)}`;
    const ws = new WebSocket(url, ['gatehouse.json']);
    this.ws = ws;
    ws.onmessage = (event) => {
      let envelope;
      try {
        envelope = JSON.parse(event.data);
      } catch {
        return;
      }
      this.onMessage(envelope);
      if (envelope.type === 'welcome') {
        this.failures = 0;
        this.onStatus('open', envelope.payload);
      }
    };
    ws.onclose = (event) => {
      if (this.ws !== ws || this.stopped) return;
      this.ws = null;
      this.#retry(event.code);
    };
  }

  #retry(code) {
    // 0.5 s, 1 s, 2 s ... 15 s, each with up to 25 % jitter so that many clients dropped at
    // once (a gateway restart) do not all come back in the same instant.
    const base = Math.min(BACKOFF_MAX_MS, BACKOFF_FIRST_MS * 2 ** this.failures);
    const delay = Math.round(base * (1 + Math.random() * 0.25));
    this.failures++;
    this.onStatus('waiting', { delay, code });
    this.timer = setTimeout(() => this.#connect(), delay);
  }
}
