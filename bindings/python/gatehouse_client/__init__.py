"""A small asyncio client for gatehouse-server's player WebSocket (PROTOCOL.md section 3).

    client = await gatehouse_client.connect("ws://127.0.0.1:8080", token, codec="msgpack")
    client.welcome.payload["player_id"]
    ack = await client.command("player_action", {"move": [1, 2]})   # or raises CommandError
    async for update in client.updates():
        ...
    await client.close()

With `reconnect=True` the client survives a dropped connection or a restarted gateway: it
reconnects with exponential backoff and full jitter, resumes the player's update log from the
last `update_id` it received (PROTOCOL.md section 6.4), so updates() goes on with exactly what
was missed, and tells the application when that is impossible (a gap in the log, or nothing
to resume from) so that it re-syncs its state: `on_resync(reason)`, or a ResyncRequired raised
by next_update() / updates() at that point of the stream.

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

try:
    import msgpack
except ImportError:  # only msgpack connections need it
    msgpack = None

__all__ = ["Client", "CommandError", "Message", "ResyncRequired", "connect", "CodecError"]

CodecError = gatehouse_codec.CodecError

# websockets 14 replaced the client's `extra_headers` argument with `additional_headers`.
_WS_MAJOR = int(websockets.__version__.split(".")[0])
_HEADERS_ARG = "additional_headers" if _WS_MAJOR >= 14 else "extra_headers"

_log = logging.getLogger("gatehouse_client")


class Message:
    """One envelope from the server: `type`, `payload` (a Python value, or bytes for an opaque
    protobuf payload), `correlation_id`, `update_id` (a logged update's id, PROTOCOL.md 6.4)
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
    """The server answered a command with an `error` envelope (PROTOCOL.md section 3): `code`
    is e.g. "rate_limited", "invalid_envelope" or "bus_unavailable"; `message` its text."""

    def __init__(self, message):
        payload = message.payload if isinstance(message.payload, dict) else {}
        self.code = payload.get("code")
        self.message = payload.get("message")
        self.correlation_id = message.correlation_id
        self.reply = message
        super().__init__(f"{self.code}: {self.message} (correlation_id {self.correlation_id!r})")


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


class Client:
    """A connected player. Use `connect()`; not constructed directly.

    Thread safety: one asyncio event loop; not for use from other threads. A reader task
    started by `connect()` decodes every frame: the ack or error for a pending command resolves
    that command, everything else (updates, `gatehouse.resumed`, errors naming no pending
    command) goes to `updates()` in arrival order. With `reconnect=True` the same task
    reconnects when the connection ends, until close().
    """

    def __init__(self, ws, codec, welcome, opener=None, on_resync=None, backoff=(0.5, 15.0),
                 resumed_from=None):
        self.codec = codec
        self.welcome = welcome
        self.last_update_id = resumed_from
        self._ws = ws
        self._connected = True
        self._opener = opener  # None: no reconnects
        self._on_resync = on_resync
        self._backoff = backoff
        self._reconnect_after = None  # seconds, from a draining gateway's gatehouse.reconnect
        self._closing = asyncio.Event()
        self._resync_tasks = set()
        self._pending = {}  # correlation id -> Future of the ack Message
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

    async def command(self, type, payload=None, correlation_id=None, timeout=10.0):
        """Sends a command and waits (at most `timeout` seconds) for its ack; returns the ack
        Message (payload {"stream_id": ...}). Raises CommandError when the server answers with
        an error, CodecError when the envelope cannot be encoded (an invalid type, say: then
        nothing is sent), asyncio.TimeoutError, or ConnectionError when there is no connection
        (closed, or reconnecting: nothing was sent) or it ended before the answer (the command
        may or may not be on the bus).
        Without a correlation_id one is generated, so that the answer can be matched."""
        if self._closed_error is not None:
            raise ConnectionError("connection closed") from self._closed_error
        if not self._connected:
            raise ConnectionError("not connected (reconnecting)")
        if correlation_id is None:
            correlation_id = f"py-{self._id_prefix}-{next(self._ids)}"
        if correlation_id in self._pending:
            raise ValueError(f"correlation id {correlation_id!r} is already awaiting an answer")
        payload_bytes, payload_format = _encode_payload(self.codec, payload)
        frame = gatehouse_codec.encode(self.codec, type, payload_bytes,
                                       payload_format=payload_format,
                                       correlation_id=correlation_id)
        future = asyncio.get_running_loop().create_future()
        self._pending[correlation_id] = future
        try:
            try:
                await self._ws.send(frame.decode() if gatehouse_codec.is_text(self.codec)
                                    else frame)
            except websockets.ConnectionClosed as e:
                raise ConnectionError("connection closed") from e
            reply = await asyncio.wait_for(future, timeout)
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
                if self._opener is None or self._closing.is_set():
                    break
                self._fail_pending()
                if not await self._reconnect():
                    break
        except asyncio.CancelledError:
            error = ConnectionError("connection closed")
            raise
        finally:
            self._connected = False
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
        future = None
        if message.type in ("ack", "error") and message.correlation_id is not None:
            future = self._pending.get(message.correlation_id)
        if future is not None and not future.done():
            future.set_result(message)
        elif message.type == "gatehouse.gap":
            # Nothing was replayed, and the id cannot be resumed from again.
            self.last_update_id = None
            resume = message.payload.get("resume") if isinstance(message.payload, dict) else None
            self._resync(ResyncRequired("gap", resume))
        else:
            if message.type == "gatehouse.reconnect" and isinstance(message.payload, dict):
                after_ms = message.payload.get("after_ms")
                if isinstance(after_ms, (int, float)) and not isinstance(after_ms, bool):
                    self._reconnect_after = max(0, after_ms) / 1000
            self._updates.put_nowait(message)

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
        """Reconnects with backoff until a welcome or close(); True when connected."""
        first, cap = self._backoff
        failures = 0
        while True:
            if self._reconnect_after is not None:
                delay, self._reconnect_after = self._reconnect_after, None
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
                ws, welcome = await self._opener(resume)
            except (OSError, asyncio.TimeoutError, websockets.WebSocketException,
                    ConnectionError, CodecError) as e:
                failures += 1
                _log.debug("reconnect attempt %d failed: %r", failures, e)
                continue
            if self._closing.is_set():
                await ws.close()
                return False
            self._ws = ws
            self.welcome = welcome
            self._connected = True
            if resume is None:
                self._resync(ResyncRequired("no_update_id"))
            return True

    def _fail_pending(self):
        for future in self._pending.values():
            if not future.done():
                future.set_exception(ConnectionError("connection closed"))


async def _token_value(token):
    value = token() if callable(token) else token
    if inspect.isawaitable(value):
        value = await value
    return value


def _resume_url(url, resume):
    if resume is None:
        return url
    parts = urllib.parse.urlsplit(url)
    query = urllib.parse.parse_qsl(parts.query, keep_blank_values=True)
    query = [(k, v) for k, v in query if k != "resume"] + [("resume", resume)]
    return urllib.parse.urlunsplit(parts._replace(query=urllib.parse.urlencode(query)))


async def connect(url, token, codec="json", open_timeout=10.0, *, reconnect=False, resume=None,
                  on_resync=None, backoff=(0.5, 15.0), **websocket_options):
    """Connects a player and waits for the server's welcome.

    `url`: the server, "ws://host:port" (or wss://), or the full "/ws/player" URL. `token`: an
    access token, sent in the Authorization header so that it stays out of URLs and logs; or a
    callable returning one (or an awaitable of one), called before every connection attempt,
    so that a reconnect can use a refreshed token.
    `codec`: "json", "msgpack" or "protobuf", offered as the WebSocket subprotocol.
    `reconnect`: when the connection ends (not by close()), reconnect until close(): wait a
    random time below `backoff` = (first, cap) seconds, doubling the ceiling per failed
    attempt up to `cap` (or what a draining gateway's `gatehouse.reconnect` asked), and resume
    from `client.last_update_id`. Meanwhile command() raises ConnectionError; updates() goes
    on after the reconnect with the replayed updates, a `gatehouse.resumed` Message, then live
    ones.
    `resume`: an update id to resume from on this first connection (one kept from an earlier
    client, say).
    `on_resync(reason)`: called when the application must re-sync (see ResyncRequired); it may
    be a coroutine function, run as a task beside the reader (so it can await command()).
    Without it, next_update() raises ResyncRequired instead.
    Other keyword arguments go to websockets.connect(). Returns a Client whose `welcome` is the
    welcome Message (payload: connection_id, player_id, codec)."""
    if codec not in gatehouse_codec.CODECS:
        raise ValueError(f"unknown codec {codec!r}: expected one of {gatehouse_codec.CODECS}")
    player_url = _player_url(url)

    async def open_connection(resume_from):
        options = dict(subprotocols=[gatehouse_codec.subprotocol(codec)],
                       open_timeout=open_timeout, max_size=None)
        options[_HEADERS_ARG] = {"Authorization": f"Bearer {await _token_value(token)}"}
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
        return ws, welcome

    ws, welcome = await open_connection(resume)
    return Client(ws, codec, welcome, opener=open_connection if reconnect else None,
                  on_resync=on_resync, backoff=backoff, resumed_from=resume)
