// The player's token pair: hands out an access token that is still valid, refreshing it
// (PROTOCOL.md section 2, POST /token/refresh) shortly before it expires.

import { refresh } from './api.js';

// Refresh this long before the access token's expiry, so a token handed out is not refused
// on its way to the server.
const EXPIRY_MARGIN_MS = 30_000;

export class Tokens {
  /** `pair`: a login answer. `onRefresh()`: called after each refresh (for the page's log). */
  constructor(pair, onRefresh = () => {}) {
    this.playerId = pair.player_id;
    this.onRefresh = onRefresh;
    this.#store(pair);
  }

  /**
   * Resolves with an access token valid for at least EXPIRY_MARGIN_MS; `force` refreshes even
   * when the current one looks valid (the server refused it, e.g. after a restart with another
   * --jwt-secret). Rejects with the ApiError of the refresh (401 invalid_token: log in again).
   */
  async accessToken({ force = false } = {}) {
    if (!force && Date.now() < this.expiresAt - EXPIRY_MARGIN_MS) return this.access;
    // One refresh at a time: presenting the same refresh token twice revokes the whole family.
    this.pending ??= refresh(this.refreshToken)
      .then((pair) => {
        this.#store(pair);
        this.onRefresh();
      })
      .finally(() => {
        this.pending = null;
      });
    await this.pending;
    return this.access;
  }

  #store(pair) {
    this.access = pair.access_token;
    this.refreshToken = pair.refresh_token;
    // Measured on this machine's clock rather than read from the token's `exp`, so a client
    // clock that is off does not matter.
    this.expiresAt = Date.now() + pair.expires_in * 1000;
  }
}
