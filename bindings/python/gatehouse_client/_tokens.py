"""Where gatehouse_client's access tokens come from, and what it knows of them: the
application's token or callables, or the gateway's POST /token/refresh (docs/protocol.md section 2)
with a refresh token that rotates at every use."""

import asyncio
import base64
import inspect
import json
import urllib.error
import urllib.parse
import urllib.request


class RefreshRefused(ConnectionError):
    """The gateway's POST /token/refresh refused the client's refresh token (`status` 400 or
    401, `code` e.g. "invalid_token"): the player must log in again. A reconnecting client that
    needs a new token then closes with it (updates() ends)."""

    def __init__(self, status, code):
        self.status = status
        self.code = code
        super().__init__(f"token refresh refused: HTTP {status} {code}")


class _Session:
    """The access token a connection (or its last in-band refresh) presented: when the client
    got it (loop time), and the token's `exp` and the lifetime it had at least when issued
    (`exp - iat - 1`, seconds) when it is a readable JWT."""

    __slots__ = ("token", "obtained", "exp", "lifetime")

    def __init__(self, token, obtained):
        self.token = token
        self.obtained = obtained
        self.exp, self.lifetime = _token_lifetime(token)


def _token_lifetime(token):
    try:
        part = token.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))
        exp, iat = claims["exp"], claims["iat"]
        if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (exp, iat)) \
                and exp > iat:
            # Whole seconds: a token issued just before a second ticks over has up to one
            # second less than exp - iat.
            return exp, max(0, exp - iat - 1)
    except (AttributeError, IndexError, KeyError, TypeError, ValueError):
        pass  # not a JWT we can read: refresh as soon as the gateway warns
    return None, None


class _Tokens:
    """Where access tokens come from: `token` (a string or callable) for connections; for a
    new one (an in-band refresh, after a 4001 close or a refused upgrade) `refresh` (an
    application callable), else the gateway's POST /token/refresh with the client's refresh
    token, else `token` when it is a callable."""

    def __init__(self, token, refresh, refresh_token, refresh_url, on_tokens, ssl_context):
        self.token = token
        self.refresh = refresh
        self.refresh_token = refresh_token
        self.refresh_url = refresh_url
        self.on_tokens = on_tokens
        self.ssl_context = ssl_context
        self.latest = None  # the newest token a refresh gave: later connections present it
        self.refused = None  # the refresh route's RefreshRefused: not asked again
        self.refreshing = None  # the refresh in flight: refresh tokens rotate, one at a time

    @property
    def can_refresh(self):
        return self.refresh is not None or self.refresh_token is not None or callable(self.token)

    async def for_connection(self, fresh):
        if fresh and self.can_refresh:
            return await self.fresh()
        if self.latest is not None:
            return self.latest
        if self.token is None:  # refresh_token only: the first connection refreshes first
            return await self.fresh()
        return await _token_value(self.token)

    async def fresh(self):
        if self.refreshing is None:
            self.refreshing = asyncio.ensure_future(self._fresh())
            self.refreshing.add_done_callback(self._refreshed)
        return await asyncio.shield(self.refreshing)

    def _refreshed(self, task):
        if self.refreshing is task:
            self.refreshing = None

    async def _fresh(self):
        if self.refresh is not None:
            token = await _token_value(self.refresh)
        elif self.refresh_token is not None:
            token = await self._refresh_pair()
        else:
            token = await _token_value(self.token)
        self.latest = token
        return token

    async def _refresh_pair(self):
        if self.refused is not None:
            raise self.refused
        status, body = await asyncio.to_thread(_post_json, self.refresh_url,
                                               {"refresh_token": self.refresh_token},
                                               self.ssl_context)
        if status in (400, 401):
            body = body if isinstance(body, dict) else {}
            self.refused = RefreshRefused(status, body.get("code"))
            raise self.refused
        if status != 200 or not isinstance(body, dict) or "access_token" not in body:
            raise ConnectionError(f"token refresh failed: HTTP {status}")
        self.refresh_token = body["refresh_token"]
        if self.on_tokens is not None:
            result = self.on_tokens(body)
            if inspect.isawaitable(result):
                await result
        return body["access_token"]


def _post_json(url, body, ssl_context):
    """(status, parsed body or None) of a JSON POST; OSError when the server is unreachable."""
    request = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=10, context=ssl_context) as response:
            status, data = response.status, response.read()
    except urllib.error.HTTPError as e:
        status, data = e.code, e.read()
    try:
        return status, json.loads(data) if data else None
    except ValueError:
        return status, None


def _refresh_url_for(player_url):
    parts = urllib.parse.urlsplit(player_url)
    scheme = "https" if parts.scheme == "wss" else "http"
    return urllib.parse.urlunsplit((scheme, parts.netloc, "/token/refresh", "", ""))


async def _token_value(token):
    value = token() if callable(token) else token
    if inspect.isawaitable(value):
        value = await value
    return value
