"""A small asyncio client for gatehouse-server's player WebSocket (docs/protocol.md sections 3, 6).

    client = await gatehouse_client.connect("ws://127.0.0.1:8080", token, codec="msgpack")
    client.welcome.payload["player_id"]
    ack = await client.command("player_action", {"move": [1, 2]})   # or raises CommandError
    async for update in client.updates():
        ...
    await client.close()

With `reconnect=True` the client survives a dropped connection or a restarted gateway: it
reconnects with exponential backoff and full jitter, resumes the player's update log from the
last `update_id` it received (docs/protocol.md section 6.4), so updates() goes on with exactly what
was missed, and tells the application when that is impossible (a gap in the log, or nothing
to resume from) so that it re-syncs its state: `on_resync(reason)`, or a ResyncRequired raised
by next_update() / updates() at that point of the stream.

A command whose connection ends before its answer is sent again after the reconnect, with the
same correlation id, so that the gateway's de-duplication (docs/protocol.md 6.5) acks it with the
original stream id rather than appending it twice; at most `max_pending` commands (default 100)
await their answer, one more raises CommandError "too_many_pending". When the gateway warns
that the session's token expires (`gatehouse.token_expiring`, 6.3), the client gets a new
access token (`refresh=` callable, or the gateway's POST /token/refresh with `refresh_token=`,
or the `token` callable) and renews the session in band; after a 4001 close it reconnects with
a new token. A draining gateway's `gatehouse.reconnect` (6.7) is followed at its `after_ms`.

Frames are encoded and decoded by the gatehouse_codec module (the client codec); payloads are
Python values, carried as JSON on json and protobuf connections and as MessagePack on msgpack
ones. Built on python3-websockets (its legacy asyncio client in 10.x, the new one from 14).
"""

import asyncio
import inspect
import itertools
import json
import logging
import os
import random
import urllib.parse

import gatehouse_codec
import websockets

from ._tokens import RefreshRefused, _refresh_url_for, _Session, _Tokens

try:
    import msgpack
except ImportError:  # only msgpack connections need it
    msgpack = None

__all__ = ["Client", "CommandError", "Message", "RefreshRefused", "ResyncRequired", "connect",
           "CodecError"]

CodecError = gatehouse_codec.CodecError

# websockets 14 replaced the client's `extra_headers` argument with `additional_headers`.
_WS_MAJOR = int(websockets.__version__.split(".")[0])
_HEADERS_ARG = "additional_headers" if _WS_MAJOR >= 14 else "extra_headers"

_log = logging.getLogger("gatehouse_client")

# The close code of a session whose token expired (docs/protocol.md 6.3).
_CLOSE_TOKEN_EXPIRED = 4001
# When the gateway says the token expires soon: refresh two thirds into the token's lifetime
# (at once if that has passed), never later than this many seconds after the notice (a notice
# comes 60 s before `exp`).
_REFRESH_AT_LIFETIME = 2 / 3
_REFRESH_LATEST_S = 30.0
# An in-band refresh answered `rate_limited` is tried again after this many seconds.
_REFRESH_RETRY_S = 1.0
# A token source that returned the session's own token is asked again after this long, this
# many times (a token issued in the same second as the last one is the same JWT).
_REFRESH_SAME_TOKEN_S = 0.25
_REFRESH_SAME_TOKEN_TRIES = 8


class Message:
    """One envelope from the server: `type`, `payload` (a Python value, or bytes for an opaque
    protobuf payload), `correlation_id`, `update_id` (a logged update's id, docs/protocol.md 6.4)
    and `traceparent` (each str or None), and the decoded `envelope`."""

    __slots__ = ("type", "payload", "correlation_id", "update_id", "traceparent", "envelope")

    def __init__(self, envelope):
        self.envelope = envelope
        self.type = envelope.type
        self.correlation_id = envelope.correlation_id
        self.update_id = envelope.update_id
        self.traceparent = envelope.traceparent
        self.payload = _payload_value(envelope)

    def __repr__(self):
        extra = f", update_id={self.update_id!r}" if self.update_id else ""
        return (f"Message(type={self.type!r}, payload={self.payload!r}, "
                f"correlation_id={self.correlation_id!r}{extra})")


class CommandError(Exception):
    """The server answered a command with an `error` envelope (docs/protocol.md section 3): `code`
    is e.g. "rate_limited", "invalid_envelope" or "bus_unavailable"; `message` its text;
    `reply` the error Message. Or the client refused it before sending (`reply` None): code
    "too_many_pending"."""

    def __init__(self, message):
        payload = message.payload if isinstance(message.payload, dict) else {}
        self._set(payload.get("code"), payload.get("message"), message.correlation_id, message)

    @classmethod
    def local(cls, code, text, correlation_id):
        """A refusal of the client's own: nothing was sent."""
        error = cls.__new__(cls)
        error._set(code, text, correlation_id, None)
        return error

    def _set(self, code, text, correlation_id, reply):
        self.code = code
        self.message = text
        self.correlation_id = correlation_id
        self.reply = reply
        Exception.__init__(self, f"{code}: {text} (correlation_id {correlation_id!r})")


class ResyncRequired(Exception):
    """The client may have missed updates it cannot get back: the application must re-sync
    its state from its services. `reason` is "gap" (the server's `gatehouse.gap`: the log no
    longer holds what followed `resume`) or "no_update_id" (a reconnect before any logged
    update arrived, so there was nothing to resume from). Raised by next_update() and
    updates() at that point of the stream when connect() got no `on_resync`; the next call
    goes on with the updates after it."""

    def __init__(self, reason, resume=None):
        self.reason = reason
        self.resume = resume
        super().__init__(f"re-sync required: {reason}" + (f" (resume {resume})" if resume else ""))


def _payload_value(envelope):
    if envelope.payload_format == "json":
        return json.loads(envelope.payload)
    if envelope.payload_format == "msgpack":
        if msgpack is None:
            raise RuntimeError("a msgpack payload needs python3-msgpack")
        return msgpack.unpackb(envelope.payload, raw=False)
    return envelope.payload  # opaque bytes, named by envelope.payload_codec


def _encode_payload(codec, value):
    """(payload bytes, payload format) for a Python value on a `codec` connection."""
    if codec == "msgpack":
        if msgpack is None:
            raise RuntimeError("codec='msgpack' needs python3-msgpack")
        return msgpack.packb(value, use_bin_type=True), "msgpack"
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode(), "json"


def _player_url(url):
    """ws://host:port (or with a trailing /) becomes ws://host:port/ws/player."""
    stripped = url.rstrip("/")
    if stripped.count("/") <= 2:  # scheme://authority with no path
        return stripped + "/ws/player"
    return url


class _Pending:
    """A command sent and not yet answered: its encoded frame (sent again after a reconnect),
    the future its ack or error resolves, and the connection it was last sent on."""

    __slots__ = ("frame", "future", "ws")

    def __init__(self, frame, future):
        self.frame = frame
        self.future = future
        self.ws = None


class Client:
    """A connected player. Use `connect()`; not constructed directly.

    Thread safety: one asyncio event loop; not for use from other threads. A reader task
    started by `connect()` decodes every frame: the ack or error for a pending command resolves
    that command, everything else (updates, `gatehouse.*` control messages, errors naming no
    pending command) goes to `updates()` in arrival order. With `reconnect=True` the same task
    reconnects when the connection ends, until close(), sends the commands still awaiting an
    answer again, and renews the session in band when the gateway says its token expires.
    """

    def __init__(self, ws, codec, welcome, session, opener=None, tokens=None, on_resync=None,
                 backoff=(0.5, 15.0), resumed_from=None, max_pending=100):
        self.codec = codec
        self.welcome = welcome
        self.last_update_id = resumed_from
        self._ws = ws
        self._session = session
        self._connected = True
        self._opener = opener  # None: no reconnects
        self._tokens = tokens
        self._on_resync = on_resync
        self._backoff = backoff
        self._max_pending = max_pending
        self._reconnect_at = None  # loop time a draining gateway asked us to come back at
        # This connection's timers: one each, replaced when set again, so that a long session
        # of short tokens does not pile up handles.
        self._refresh_timer = None  # the next in-band refresh (scheduled, or retried)
        self._leave_timer = None  # leaving a draining gateway at its after_ms
        self._tasks = set()  # refreshes and leaves in flight
        self._refreshes = {}  # correlation id -> the _Session an in-band refresh presented
        self._token_expired = False  # closed with 4001: the next connection needs a new token
        self._same_token_tries = 0  # in-band refreshes the token source answered with the old one
        self._closing = asyncio.Event()
        self._resync_tasks = set()
        self._pending = {}  # correlation id -> _Pending, in sending order
        self._updates = asyncio.Queue()
        self._ids = itertools.count(1)
        self._id_prefix = os.urandom(4).hex()
        self._closed_error = None
        self._reader = asyncio.get_running_loop().create_task(self._read())

    async def __aenter__(self):
        return self

    async def __aexit__(self, *exc):
        await self.close()

    @property
    def closed(self):
        """True once the client is done: close() was called, or (without reconnect) the
        connection ended."""
        return self._closed_error is not None

    @property
    def connected(self):
        """True while a connection is open (False while a reconnecting client waits)."""
        return self._connected and self._closed_error is None

    @property
    def refresh_token(self):
        """With `refresh_token=` on connect(): the refresh token the client holds now (it
        rotates at each refresh), e.g. for POST /logout. Otherwise None."""
        return self._tokens.refresh_token if self._tokens is not None else None

    def new_correlation_id(self):
        """A fresh correlation id: `py-`, a random prefix per client, and a counter."""
        return f"py-{self._id_prefix}-{next(self._ids)}"

    async def command(self, type, payload=None, correlation_id=None, timeout=10.0):
        """Sends a command and waits (at most `timeout` seconds) for its ack; returns the ack
        Message (payload {"stream_id": ...}). Raises CommandError when the server answers with
        an error, or with code "too_many_pending" when `max_pending` commands are already
        awaiting their answer (nothing is sent); CodecError when the envelope cannot be encoded
        (an invalid type, say: then nothing is sent); asyncio.TimeoutError; ConnectionError
        when there is no connection (closed, or reconnecting: nothing was sent) or, without
        reconnect, when it ended before the answer (the command may or may not be on the bus).
        With reconnect=True a command whose connection ends before the answer is sent again,
        with the same correlation id, after the reconnect: the gateway acks a repeat with the
        original stream id (docs/protocol.md 6.5). `timeout` bounds the whole wait.
        Without a correlation_id one is generated (new_correlation_id())."""
        if self._closed_error is not None:
            raise ConnectionError("connection closed") from self._closed_error
        if not self._connected:
            raise ConnectionError("not connected (reconnecting)")
        if correlation_id is None:
            correlation_id = self.new_correlation_id()
        if correlation_id in self._pending:
            raise ValueError(f"correlation id {correlation_id!r} is already awaiting an answer")
        if len(self._pending) >= self._max_pending:
            raise CommandError.local("too_many_pending",
                                     f"{len(self._pending)} commands are awaiting an answer",
                                     correlation_id)
        payload_bytes, payload_format = _encode_payload(self.codec, payload)
        frame = gatehouse_codec.encode(self.codec, type, payload_bytes,
                                       payload_format=payload_format,
                                       correlation_id=correlation_id)
        if gatehouse_codec.is_text(self.codec):
            frame = frame.decode()
        entry = _Pending(frame, asyncio.get_running_loop().create_future())
        self._pending[correlation_id] = entry
        try:
            entry.ws = self._ws
            try:
                await entry.ws.send(frame)
            except websockets.ConnectionClosed as e:
                if self._opener is None:
                    raise ConnectionError("connection closed") from e
                # Kept: the reconnect sends it again.
            reply = await asyncio.wait_for(entry.future, timeout)
        finally:
            self._pending.pop(correlation_id, None)
        if reply.type == "error":
            raise CommandError(reply)
        return reply

    async def next_update(self, timeout=None):
        """The next update (a Message); raises asyncio.TimeoutError after `timeout` seconds,
        ResyncRequired where the application must re-sync (only without `on_resync`), and
        ConnectionError once the client has closed and every update was read."""
        item = await asyncio.wait_for(self._updates.get(), timeout)
        if isinstance(item, ResyncRequired):
            raise item
        if isinstance(item, BaseException):
            self._updates.put_nowait(item)  # every later call ends the same way
            raise ConnectionError("connection closed") from item
        return item

    async def updates(self):
        """Async iterator over updates, ending when the client closes. ResyncRequired
        propagates (then iterate again)."""
        while True:
            try:
                yield await self.next_update()
            except ConnectionError:
                return

    async def close(self):
        """Closes the connection (bounded by websockets' close timeout), stops reconnecting
        and stops the reader."""
        self._closing.set()
        self._end_session()
        await self._ws.close()
        try:
            await asyncio.wait_for(self._reader, 5.0)
        except (asyncio.TimeoutError, asyncio.CancelledError):
            self._reader.cancel()

    async def _read(self):
        error = None
        try:
            while True:
                error = await self._read_connection(self._ws)
                self._connected = False
                self._end_session()
                if self._opener is None or self._closing.is_set():
                    break
                if self._ws.close_code == _CLOSE_TOKEN_EXPIRED:
                    self._token_expired = True
                if not await self._reconnect():
                    break
        except asyncio.CancelledError:
            error = ConnectionError("connection closed")
            raise
        except RefreshRefused as e:
            error = e
        finally:
            self._connected = False
            self._end_session()
            self._closed_error = error or ConnectionError("connection closed")
            self._fail_pending()
            self._updates.put_nowait(self._closed_error)

    async def _read_connection(self, ws):
        """Reads one connection until it ends; returns the error that ended it."""
        try:
            async for frame in ws:
                self._received(Message(gatehouse_codec.decode(self.codec, frame)))
            return ConnectionError(f"connection closed (code {ws.close_code})")
        except Exception as e:  # a frame the codec refused, or the connection failed
            # A server frame that does not decode means the two ends disagree about the
            # protocol: nothing later on this connection can be trusted either.
            await ws.close(code=1002 if isinstance(e, CodecError) else 1011)
            return e

    def _received(self, message):
        # Kept before the application sees the update: a reconnect right after resumes past it.
        if message.update_id is not None:
            self.last_update_id = message.update_id
        entry = None
        if message.type in ("ack", "error") and message.correlation_id is not None:
            entry = self._pending.get(message.correlation_id)
        if entry is not None and not entry.future.done():
            entry.future.set_result(message)
            return
        if message.type == "gatehouse.gap":
            # Nothing was replayed, and the id cannot be resumed from again.
            self.last_update_id = None
            resume = message.payload.get("resume") if isinstance(message.payload, dict) else None
            self._resync(ResyncRequired("gap", resume))
            return
        payload = message.payload if isinstance(message.payload, dict) else {}
        if message.type == "gatehouse.reconnect" and self._opener is not None:
            after_ms = payload.get("after_ms")
            if isinstance(after_ms, (int, float)) and not isinstance(after_ms, bool):
                self._leave_after(max(0, after_ms) / 1000)
        elif message.type == "gatehouse.token_expiring" and self._tokens is not None \
                and self._tokens.can_refresh:
            self._schedule_refresh(payload.get("exp"))
        elif message.type == "gatehouse.refreshed" and message.correlation_id in self._refreshes:
            self._session = self._refreshes.pop(message.correlation_id)
        elif message.type == "error" and message.correlation_id in self._refreshes:
            del self._refreshes[message.correlation_id]
            if payload.get("code") == "rate_limited":  # not looked at: try again shortly
                self._refresh_later(_REFRESH_RETRY_S)
            else:
                _log.warning("in-band token refresh refused: %s", payload.get("code"))
        self._updates.put_nowait(message)

    def _start(self, coroutine):
        task = asyncio.ensure_future(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task):
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            _log.error("gatehouse_client task failed", exc_info=task.exception())

    def _end_session(self):
        """The connection ended: its timers and in-band refreshes end with it."""
        for handle in (self._refresh_timer, self._leave_timer):
            if handle is not None:
                handle.cancel()
        self._refresh_timer = self._leave_timer = None
        self._refreshes.clear()

    def _leave_after(self, delay):
        # A draining gateway (docs/protocol.md 6.7) serves this connection until its spread has
        # passed and asked us to come back after `delay`: leave then and reconnect at once
        # (elsewhere, behind a load balancer). Should it close first, the reconnect still
        # waits for that moment rather than for a backoff.
        loop = asyncio.get_running_loop()
        self._reconnect_at = loop.time() + delay
        ws = self._ws

        def leave():
            if self._ws is ws and self._connected:
                self._start(ws.close(code=1000))
        if self._leave_timer is not None:
            self._leave_timer.cancel()
        self._leave_timer = loop.call_later(delay, leave)

    def _schedule_refresh(self, exp):
        # Two thirds into the token's lifetime, measured from when we got it (at once if that
        # has passed, never more than 30 s after the notice): with tokens shorter than the
        # gateway's 60 s notice, refreshing at every notice would refresh at once, forever.
        loop = asyncio.get_running_loop()
        delay = 0.0
        self._same_token_tries = 0
        session = self._session
        if session is not None and session.lifetime is not None and session.exp == exp:
            at = session.obtained + session.lifetime * _REFRESH_AT_LIFETIME
            delay = min(_REFRESH_LATEST_S, max(0.0, at - loop.time()))
        self._refresh_later(delay)

    def _refresh_later(self, delay):
        ws = self._ws
        if self._refresh_timer is not None:
            self._refresh_timer.cancel()
        self._refresh_timer = asyncio.get_running_loop().call_later(
            delay, lambda: self._start(self._refresh_in_band(ws)))

    async def _refresh_in_band(self, ws):
        if self._ws is not ws or not self.connected:
            return
        try:
            token = await self._tokens.fresh()
        except RefreshRefused:
            _log.warning("the refresh token was refused: the session ends at its token's exp")
            return
        except Exception as e:  # the application's token source failed
            _log.warning("getting a new access token failed: %r", e)
            return
        if self._ws is not ws or not self.connected:
            return  # the next connection uses the new token
        if token == self._session.token:
            # Issued in the same second as the session's token (the same claims make the same
            # JWT): ask again once the clock has moved on. A source that keeps returning it
            # cannot renew the session: it ends at its exp, and the reconnect asks again.
            self._same_token_tries += 1
            if self._same_token_tries <= _REFRESH_SAME_TOKEN_TRIES:
                self._refresh_later(_REFRESH_SAME_TOKEN_S)
            else:
                _log.warning("the token source keeps returning the session's token")
            return
        correlation_id = self.new_correlation_id()
        self._refreshes[correlation_id] = _Session(token, asyncio.get_running_loop().time())
        payload_bytes, payload_format = _encode_payload(self.codec, {"access_token": token})
        frame = gatehouse_codec.encode(self.codec, "gatehouse.refresh", payload_bytes,
                                       payload_format=payload_format,
                                       correlation_id=correlation_id)
        try:
            await ws.send(frame.decode() if gatehouse_codec.is_text(self.codec) else frame)
        except websockets.ConnectionClosed:
            pass  # the reconnect presents a new token anyway

    def _resync(self, required):
        if self._on_resync is None:
            self._updates.put_nowait(required)
            return
        try:
            result = self._on_resync(required.reason)
        except Exception:  # the application's bug must not stop the reader
            _log.exception("on_resync raised")
            return
        if inspect.isawaitable(result):
            # Run beside the reader, so that the callback can await commands (their acks
            # arrive through the reader).
            task = asyncio.ensure_future(result)
            self._resync_tasks.add(task)
            task.add_done_callback(self._resync_done)

    def _resync_done(self, task):
        self._resync_tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            _log.error("on_resync failed", exc_info=task.exception())

    async def _reconnect(self):
        """Reconnects with backoff until a welcome or close(); True when connected. Raises
        RefreshRefused when the refresh token was refused (the client then closes)."""
        first, cap = self._backoff
        failures = 0
        fresh = self._token_expired
        loop = asyncio.get_running_loop()
        while True:
            if self._reconnect_at is not None:
                delay, self._reconnect_at = max(0.0, self._reconnect_at - loop.time()), None
            else:
                # Full jitter: anywhere below the exponential ceiling, so that clients dropped
                # together (a gateway restart) come back spread out.
                delay = random.uniform(0, min(cap, first * 2 ** min(failures, 30)))
            try:
                await asyncio.wait_for(self._closing.wait(), delay)
                return False  # close() was called
            except asyncio.TimeoutError:
                pass
            resume = self.last_update_id
            try:
                ws, welcome, session = await self._opener(resume, fresh)
            except (OSError, asyncio.TimeoutError, websockets.WebSocketException,
                    ConnectionError, CodecError) as e:
                if isinstance(e, RefreshRefused):
                    raise
                failures += 1
                # A refused token (401) is replaced by a new one on the next attempt.
                fresh = fresh or _http_status(e) == 401
                # The type and status only: an exception's text may hold the URL, and so the
                # access token in its path (websockets' InvalidURI).
                _log.debug("reconnect attempt %d failed: %s%s", failures, type(e).__name__,
                           "" if _http_status(e) is None else f" (HTTP {_http_status(e)})")
                continue
            if self._closing.is_set():
                await ws.close()
                return False
            self._ws = ws
            self._session = session
            self.welcome = welcome
            self._token_expired = False
            # Commands that were not answered go again, in their order, before anything the
            # application sends next: the gateway acks a repeat with the original stream id.
            for entry in list(self._pending.values()):
                if entry.future.done() or entry.ws is ws:
                    continue
                entry.ws = ws
                try:
                    await ws.send(entry.frame)
                except websockets.ConnectionClosed:
                    break  # the reader sees the close and reconnects again
            self._connected = True
            if resume is None:
                self._resync(ResyncRequired("no_update_id"))
            return True

    def _fail_pending(self):
        for entry in self._pending.values():
            if not entry.future.done():
                entry.future.set_exception(ConnectionError("connection closed"))


def _http_status(error):
    """The HTTP status of a refused WebSocket upgrade, or None."""
    response = getattr(error, "response", None)  # websockets 14: InvalidStatus
    status = getattr(response, "status_code", None)
    return status if status is not None else getattr(error, "status_code", None)


def _resume_url(url, resume):
    if resume is None:
        return url
    parts = urllib.parse.urlsplit(url)
    query = urllib.parse.parse_qsl(parts.query, keep_blank_values=True)
    query = [(k, v) for k, v in query if k != "resume"] + [("resume", resume)]
    return urllib.parse.urlunsplit(parts._replace(query=urllib.parse.urlencode(query)))


async def connect(url, token, codec="json", open_timeout=10.0, *, reconnect=False, resume=None,
                  on_resync=None, backoff=(0.5, 15.0), refresh=None, refresh_token=None,
                  refresh_url=None, on_tokens=None, max_pending=100, **websocket_options):
    """Connects a player and waits for the server's welcome.

    `url`: the server, "ws://host:port" (or wss://), or the full "/ws/player" URL. `token`: an
    access token, sent in the Authorization header so that it stays out of URLs and logs; or a
    callable returning one (or an awaitable of one), called before a connection attempt,
    so that a reconnect can use a refreshed token; None with `refresh_token` (the first
    connection then refreshes first).
    `codec`: "json", "msgpack" or "protobuf", offered as the WebSocket subprotocol.
    `reconnect`: when the connection ends (not by close()), reconnect until close(): wait a
    random time below `backoff` = (first, cap) seconds, doubling the ceiling per failed
    attempt up to `cap` (or until the moment a draining gateway's `gatehouse.reconnect`
    named: the client leaves the draining gateway then by itself), and resume from
    `client.last_update_id`. Meanwhile command() raises ConnectionError; commands sent
    before and not answered are sent again after the reconnect with their correlation ids;
    updates() goes on after the reconnect with the replayed updates, a `gatehouse.resumed`
    Message, then live ones.
    Session renewal (docs/protocol.md 6.3): on `gatehouse.token_expiring` the client gets a new
    access token and sends `gatehouse.refresh` with it, two thirds into the old token's
    lifetime; after a 4001 close, or an upgrade refused with 401, the next attempt gets a new
    one too; later connections present the newest. A new token comes from `refresh` (a
    callable, plain or async, returning a new access token), else from the gateway's
    POST /token/refresh with `refresh_token` (at `refresh_url`, default the same host; the
    rotated refresh token is kept, `client.refresh_token`, and `on_tokens(pair)`, plain or
    async, sees every new pair; a refused refresh token raises RefreshRefused, and closes a
    reconnecting client), else from `token` when it is a callable. Without any of them the
    session ends at the token's exp (4001).
    `resume`: an update id to resume from on this first connection (one kept from an earlier
    client, say).
    `on_resync(reason)`: called when the application must re-sync (see ResyncRequired); it may
    be a coroutine function, run as a task beside the reader (so it can await command()).
    Without it, next_update() raises ResyncRequired instead.
    `max_pending`: commands awaiting their answer at most; command() beyond it raises
    CommandError "too_many_pending" without sending.
    Other keyword arguments go to websockets.connect(). Returns a Client whose `welcome` is the
    welcome Message (payload: connection_id, player_id, codec)."""
    if codec not in gatehouse_codec.CODECS:
        raise ValueError(f"unknown codec {codec!r}: expected one of {gatehouse_codec.CODECS}")
    if refresh is not None and refresh_token is not None:
        raise ValueError("give refresh or refresh_token, not both")
    if token is None and refresh_token is None:
        raise ValueError("token is required without refresh_token")
    player_url = _player_url(url)
    tokens = _Tokens(token, refresh, refresh_token, refresh_url or _refresh_url_for(player_url),
                     on_tokens, websocket_options.get("ssl"))

    async def open_connection(resume_from, fresh=False):
        presented = await tokens.for_connection(fresh)
        session = _Session(presented, asyncio.get_running_loop().time())
        options = dict(subprotocols=[gatehouse_codec.subprotocol(codec)],
                       open_timeout=open_timeout, max_size=None)
        options[_HEADERS_ARG] = {"Authorization": f"Bearer {presented}"}
        options.update(websocket_options)
        ws = await websockets.connect(_resume_url(player_url, resume_from), **options)
        try:
            frame = await asyncio.wait_for(ws.recv(), open_timeout)
            welcome = Message(gatehouse_codec.decode(codec, frame))
            if welcome.type != "welcome":
                raise ConnectionError(f"expected a welcome, got {welcome!r}")
        except BaseException:
            await ws.close()
            raise
        return ws, welcome, session

    ws, welcome, session = await open_connection(resume)
    return Client(ws, codec, welcome, session, opener=open_connection if reconnect else None,
                  tokens=tokens, on_resync=on_resync, backoff=backoff, resumed_from=resume,
                  max_pending=max_pending)
