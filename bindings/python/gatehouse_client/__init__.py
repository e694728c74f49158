"""A small asyncio client for gatehouse-server's player WebSocket (PROTOCOL.md section 3).

    client = await gatehouse_client.connect("ws://127.0.0.1:8080", token, codec="msgpack")
    client.welcome.payload["player_id"]
    ack = await client.command("player_action", {"move": [1, 2]})   # or raises CommandError
    async for update in client.updates():
        ...
    await client.close()

Frames are encoded and decoded by the gatehouse_codec module (the client codec); payloads are
Python values, carried as JSON on json and protobuf connections and as MessagePack on msgpack
ones. Built on python3-websockets (its legacy asyncio client in 10.x, the new one from 14).
"""

import asyncio
import itertools
import json
import os

import gatehouse_codec
import websockets

try:
    import msgpack
except ImportError:  # only msgpack connections need it
    msgpack = None

__all__ = ["Client", "CommandError", "Message", "connect", "CodecError"]

CodecError = gatehouse_codec.CodecError

# websockets 14 replaced the client's `extra_headers` argument with `additional_headers`.
_WS_MAJOR = int(websockets.__version__.split(".")[0])
_HEADERS_ARG = "additional_headers" if _WS_MAJOR >= 14 else "extra_headers"


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
        return (f"Message(type={self.type!r}, payload={self.payload!r}, "
                f"correlation_id={self.correlation_id!r})")


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
    that command, everything else (updates, errors naming no pending command) goes to
    `updates()` in arrival order.
    """

    def __init__(self, ws, codec, welcome):
        self.codec = codec
        self.welcome = welcome
        self._ws = ws
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
        return self._closed_error is not None

    async def command(self, type, payload=None, correlation_id=None, timeout=10.0):
        """Sends a command and waits (at most `timeout` seconds) for its ack; returns the ack
        Message (payload {"stream_id": ...}). Raises CommandError when the server answers with
        an error, CodecError when the envelope cannot be encoded (an invalid type, say: then
        nothing is sent), asyncio.TimeoutError, or ConnectionError once the connection closed.
        Without a correlation_id one is generated, so that the answer can be matched."""
        if self._closed_error is not None:
            raise ConnectionError("connection closed") from self._closed_error
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
            await self._ws.send(frame.decode() if gatehouse_codec.is_text(self.codec) else frame)
            reply = await asyncio.wait_for(future, timeout)
        finally:
            self._pending.pop(correlation_id, None)
        if reply.type == "error":
            raise CommandError(reply)
        return reply

    async def next_update(self, timeout=None):
        """The next update (a Message); raises asyncio.TimeoutError after `timeout` seconds
        and ConnectionError once the connection has closed and every update was read."""
        item = await asyncio.wait_for(self._updates.get(), timeout)
        if isinstance(item, BaseException):
            self._updates.put_nowait(item)  # every later call ends the same way
            raise ConnectionError("connection closed") from item
        return item

    async def updates(self):
        """Async iterator over updates, ending when the connection closes."""
        while True:
            try:
                yield await self.next_update()
            except ConnectionError:
                return

    async def close(self):
        """Closes the connection (bounded by websockets' close timeout) and stops the reader."""
        await self._ws.close()
        try:
            await asyncio.wait_for(self._reader, 5.0)
        except (asyncio.TimeoutError, asyncio.CancelledError):
            self._reader.cancel()

    async def _read(self):
        error = None
        try:
            async for frame in self._ws:
                message = Message(gatehouse_codec.decode(self.codec, frame))
                future = None
                if message.type in ("ack", "error") and message.correlation_id is not None:
                    future = self._pending.get(message.correlation_id)
                if future is not None and not future.done():
                    future.set_result(message)
                else:
                    self._updates.put_nowait(message)
            error = ConnectionError(f"connection closed (code {self._ws.close_code})")
        except Exception as e:  # a frame the codec refused, or the connection failed
            error = e
            # A server frame that does not decode means the two ends disagree about the
            # protocol: nothing later on this connection can be trusted either.
            await self._ws.close(code=1002 if isinstance(e, CodecError) else 1011)
        self._closed_error = error
        for future in self._pending.values():
            if not future.done():
                future.set_exception(ConnectionError("connection closed"))
        self._updates.put_nowait(error)


async def connect(url, token, codec="json", open_timeout=10.0, **websocket_options):
    """Connects a player and waits for the server's welcome.

    `url`: the server, "ws://host:port" (or wss://), or the full "/ws/player" URL. `token`: an
    access token, sent in the Authorization header so that it stays out of URLs and logs.
    `codec`: "json", "msgpack" or "protobuf", offered as the WebSocket subprotocol. Other
    keyword arguments go to websockets.connect(). Returns a Client whose `welcome` is the
    welcome Message (payload: connection_id, player_id, codec)."""
    if codec not in gatehouse_codec.CODECS:
        raise ValueError(f"unknown codec {codec!r}: expected one of {gatehouse_codec.CODECS}")
    options = dict(subprotocols=[gatehouse_codec.subprotocol(codec)], open_timeout=open_timeout,
                   max_size=None)
    options[_HEADERS_ARG] = {"Authorization": f"Bearer {token}"}
    options.update(websocket_options)
    ws = await websockets.connect(_player_url(url), **options)
    try:
        frame = await asyncio.wait_for(ws.recv(), open_timeout)
        welcome = Message(gatehouse_codec.decode(codec, frame))
        if welcome.type != "welcome":
            raise ConnectionError(f"expected a welcome, got {welcome!r}")
    except BaseException:
        await ws.close()
        raise
    return Client(ws, codec, welcome)
