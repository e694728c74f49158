"""Black-box test harness for gatehouse-server (docs/protocol.md sections 1, 3 and 5).

Everything here is independent of the server's own code: JWTs are minted with hmac/hashlib,
the three wire formats are encoded by hand (JSON with the json module, MessagePack with
python3-msgpack or the small fallback below, the Protobuf Envelope byte by byte), WebSocket
peers are python3-websockets clients or the raw RFC 6455 client below, and HTTP goes through
http.client. Only 127.0.0.1 is ever used, and every wait is bounded.

Each test module calls `run_main()`, which takes the server binary from argv[1] (or
$GATEHOUSE_SERVER), runs the module's unittest cases and prints "N passed, N failed".
"""

import asyncio
import base64
import hashlib
import hmac
import http.client
import json
import os
import re
import secrets
import signal
import socket
import ssl
import struct
import subprocess
import sys
import tempfile
import time
import unittest

import websockets

SERVER_BINARY = os.environ.get("GATEHOUSE_SERVER", "")

READY_TIMEOUT_S = 10.0  # a sanitizer build starts slowly on a busy 2-core machine
STOP_TIMEOUT_S = 8.0  # SIGTERM -> exit; --shutdown-timeout is lowered to 3 s for test servers
RECV_TIMEOUT_S = 5.0
READY_RE = re.compile(r"^gatehouse ready listen=(\S+):(\d+)$")

STREAM_ID_RE = re.compile(r"^(\d+)-(\d+)$")
SUBPROTOCOL = {
    "json": "gatehouse.json",
    "msgpack": "gatehouse.msgpack",
    "protobuf": "gatehouse.protobuf",
}

# ---------------------------------------------------------------------------------------------
# JWT (HS256 and friends), minted without any of the server's code.


def b64url(data):
    if isinstance(data, str):
        data = data.encode()
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def mint_jwt(secret, claims, alg="HS256", header=None):
    """A compact JWS. alg HS256/HS384/HS512 sign with `secret`; "none" leaves it unsigned."""
    hdr = header if header is not None else {"alg": alg, "typ": "JWT"}
    signing_input = b64url(json.dumps(hdr, separators=(",", ":"))) + "." + b64url(
        json.dumps(claims, separators=(",", ":")))
    digest = {"HS256": hashlib.sha256, "HS384": hashlib.sha384, "HS512": hashlib.sha512}.get(alg)
    if digest is None:
        return signing_input + "."
    sig = hmac.new(secret.encode(), signing_input.encode(), digest).digest()
    return signing_input + "." + b64url(sig)


def player_claims(sub, ttl=600, iat_offset=0):
    now = int(time.time())
    return {"sub": sub, "iat": now + iat_offset, "exp": now + ttl}


# ---------------------------------------------------------------------------------------------
# MessagePack: python3-msgpack when installed, else a small fallback covering the value kinds
# the tests use (nil, bool, int, float, str, bin, array, map).

try:
    import msgpack as _msgpack_module
except ImportError:  # pragma: no cover - depends on the machine
    _msgpack_module = None


def _mp_pack(v, out):
    if v is None:
        out += b"\xc0"
    elif v is True:
        out += b"\xc3"
    elif v is False:
        out += b"\xc2"
    elif isinstance(v, int):
        if 0 <= v < 128:
            out += struct.pack("B", v)
        elif -32 <= v < 0:
            out += struct.pack("b", v)
        elif v >= 0:
            out += b"\xcf" + struct.pack(">Q", v)
        else:
            out += b"\xd3" + struct.pack(">q", v)
    elif isinstance(v, float):
        out += b"\xcb" + struct.pack(">d", v)
    elif isinstance(v, str):
        b = v.encode()
        if len(b) < 32:
            out += struct.pack("B", 0xA0 | len(b))
        else:
            out += b"\xdb" + struct.pack(">I", len(b))
        out += b
    elif isinstance(v, (bytes, bytearray)):
        out += b"\xc6" + struct.pack(">I", len(v)) + bytes(v)
    elif isinstance(v, (list, tuple)):
        out += b"\xdd" + struct.pack(">I", len(v))
        for x in v:
            _mp_pack(x, out)
    elif isinstance(v, dict):
        out += b"\xdf" + struct.pack(">I", len(v))
        for k, x in v.items():
            _mp_pack(k, out)
            _mp_pack(x, out)
    else:
        raise TypeError(type(v))


def _mp_unpack(b, i):
    t = b[i]
    i += 1
    if t <= 0x7F:
        return t, i
    if t >= 0xE0:
        return t - 256, i
    if 0x80 <= t <= 0x8F or t in (0xDE, 0xDF):
        if t <= 0x8F:
            n = t & 0x0F
        elif t == 0xDE:
            n, i = struct.unpack_from(">H", b, i)[0], i + 2
        else:
            n, i = struct.unpack_from(">I", b, i)[0], i + 4
        d = {}
        for _ in range(n):
            k, i = _mp_unpack(b, i)
            d[k], i = _mp_unpack(b, i)
        return d, i
    if 0x90 <= t <= 0x9F or t in (0xDC, 0xDD):
        if t <= 0x9F:
            n = t & 0x0F
        elif t == 0xDC:
            n, i = struct.unpack_from(">H", b, i)[0], i + 2
        else:
            n, i = struct.unpack_from(">I", b, i)[0], i + 4
        a = []
        for _ in range(n):
            x, i = _mp_unpack(b, i)
            a.append(x)
        return a, i
    if 0xA0 <= t <= 0xBF or t in (0xD9, 0xDA, 0xDB, 0xC4, 0xC5, 0xC6):
        if t <= 0xBF:
            n = t & 0x1F
        else:
            size = {0xD9: 1, 0xC4: 1, 0xDA: 2, 0xC5: 2, 0xDB: 4, 0xC6: 4}[t]
            n = int.from_bytes(b[i:i + size], "big")
            i += size
        raw = bytes(b[i:i + n])
        if len(raw) != n:
            raise ValueError("truncated")
        return (raw if t in (0xC4, 0xC5, 0xC6) else raw.decode()), i + n
    fixed = {0xC0: None, 0xC2: False, 0xC3: True}
    if t in fixed:
        return fixed[t], i
    fmt = {0xCA: ">f", 0xCB: ">d", 0xCC: ">B", 0xCD: ">H", 0xCE: ">I", 0xCF: ">Q",
           0xD0: ">b", 0xD1: ">h", 0xD2: ">i", 0xD3: ">q"}.get(t)
    if fmt is None:
        raise ValueError(f"unsupported msgpack byte 0x{t:02x}")
    return struct.unpack_from(fmt, b, i)[0], i + struct.calcsize(fmt)


def mp_pack(v):
    if _msgpack_module is not None:
        return _msgpack_module.packb(v, use_bin_type=True)
    out = bytearray()
    _mp_pack(v, out)
    return bytes(out)


def mp_unpack(b):
    if _msgpack_module is not None:
        return _msgpack_module.unpackb(b, raw=False, strict_map_key=False)
    v, i = _mp_unpack(b, 0)
    if i != len(b):
        raise ValueError("trailing bytes")
    return v


# ---------------------------------------------------------------------------------------------
# Protobuf gatehouse.v1.Envelope, by hand: type=1 string, payload=2 bytes,
# correlation_id=3 optional string, payload_codec=4 string, update_id=5 and traceparent=6
# optional strings.


def _varint(n):
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def _len_field(number, data):
    if isinstance(data, str):
        data = data.encode()
    return _varint((number << 3) | 2) + _varint(len(data)) + data


def pb_encode(type_=None, payload=None, correlation_id=None, payload_codec=None,
              update_id=None, traceparent=None):
    out = b""
    if type_ is not None:
        out += _len_field(1, type_)
    if payload is not None:
        out += _len_field(2, payload)
    if correlation_id is not None:
        out += _len_field(3, correlation_id)
    if payload_codec is not None:
        out += _len_field(4, payload_codec)
    if update_id is not None:
        out += _len_field(5, update_id)
    if traceparent is not None:
        out += _len_field(6, traceparent)
    return out


def pb_decode(data):
    """Envelope fields by name (absent fields absent); unknown fields skipped."""
    names = {1: "type", 2: "payload", 3: "correlation_id", 4: "payload_codec", 5: "update_id",
             6: "traceparent"}
    out = {}
    i = 0
    while i < len(data):
        key, i = _read_varint(data, i)
        number, wire = key >> 3, key & 7
        if wire == 0:
            _, i = _read_varint(data, i)
        elif wire == 1:
            i += 8
        elif wire == 5:
            i += 4
        elif wire == 2:
            n, i = _read_varint(data, i)
            value = bytes(data[i:i + n])
            if len(value) != n:
                raise ValueError("truncated protobuf field")
            i += n
            if number in names:
                out[names[number]] = value if number == 2 else value.decode()
        else:
            raise ValueError(f"unsupported wire type {wire}")
    if i != len(data):
        raise ValueError("truncated protobuf message")
    return out


def _read_varint(data, i):
    n = shift = 0
    while True:
        if i >= len(data):
            raise ValueError("truncated varint")
        b = data[i]
        i += 1
        n |= (b & 0x7F) << shift
        shift += 7
        if not b & 0x80:
            return n, i


# ---------------------------------------------------------------------------------------------
# Envelopes in each codec. A decoded envelope is a dict with "type", "payload" (a Python
# value) and "correlation_id" when present, plus "_keys" (the keys the frame carried) and
# "_payload_codec" for protobuf.

_ABSENT = object()


def encode_envelope(codec, type_=_ABSENT, payload=_ABSENT, correlation_id=_ABSENT,
                    payload_codec="json"):
    """The frame for a command in `codec`: str for json, bytes otherwise."""
    if codec in ("json", "msgpack"):
        env = {}
        if type_ is not _ABSENT:
            env["type"] = type_
        if payload is not _ABSENT:
            env["payload"] = payload
        if correlation_id is not _ABSENT:
            env["correlation_id"] = correlation_id
        return json.dumps(env) if codec == "json" else mp_pack(env)
    if codec == "protobuf":
        if payload is _ABSENT:
            payload_bytes = None
        elif payload_codec == "json":
            payload_bytes = json.dumps(payload).encode()
        elif payload_codec == "msgpack":
            payload_bytes = mp_pack(payload)
        else:
            payload_bytes = payload
        return pb_encode(None if type_ is _ABSENT else type_, payload_bytes,
                         None if correlation_id in (_ABSENT, None) else correlation_id,
                         payload_codec)
    raise ValueError(codec)


def decode_envelope(codec, frame):
    """Decodes a server frame; checks the frame kind matches the codec (JSON = text)."""
    if codec == "json":
        if not isinstance(frame, str):
            raise AssertionError(f"json connection got a binary frame: {frame!r:.200}")
        env = json.loads(frame)
    else:
        if not isinstance(frame, (bytes, bytearray)):
            raise AssertionError(f"{codec} connection got a text frame: {frame!r:.200}")
        if codec == "msgpack":
            env = mp_unpack(frame)
        else:
            pb = pb_decode(frame)
            env = {k: v for k, v in pb.items()
                   if k in ("type", "correlation_id", "update_id", "traceparent")}
            env["_payload_codec"] = pb.get("payload_codec")
            raw = pb.get("payload", b"")
            if pb.get("payload_codec") != "json":
                raise AssertionError(f"server payload_codec is {pb.get('payload_codec')!r}, "
                                     f"want 'json': {pb!r:.300}")
            env["payload"] = json.loads(raw) if raw else None
            env["_keys"] = sorted(k for k in pb if k != "payload_codec")
            return env
    if not isinstance(env, dict):
        raise AssertionError(f"server frame is not a map: {env!r:.200}")
    env["_keys"] = sorted(env.keys())
    return env


# ---------------------------------------------------------------------------------------------
# The server process.


def _clean_env(overrides=None):
    env = {k: v for k, v in os.environ.items() if not k.startswith("GATEHOUSE_")}
    # A sanitizer build must report, not hang; leaks are reported at exit (and fail the check).
    env.setdefault("ASAN_OPTIONS", "abort_on_error=0:detect_leaks=1")
    env.setdefault("UBSAN_OPTIONS", "print_stacktrace=1")
    env.update(overrides or {})
    return env


class Server:
    """One gatehouse-server child on 127.0.0.1:0 with a random --jwt-secret.

    stdout and stderr go to temp files (never a pipe nobody drains). `start()` waits, bounded,
    for the ready line; `stop()` sends SIGTERM and falls back to SIGKILL.
    """

    def __init__(self, *extra_args, jwt_secret=None, publish_key=None, bot_keys=(),
                 env=None, default_args=True, binary=None):
        self.binary = binary or SERVER_BINARY
        self.jwt_secret = jwt_secret or ("s3cr3t-" + secrets.token_hex(16))
        self.publish_key = publish_key
        self.bot_keys = dict(bot_keys)  # name -> key
        args = []
        given = {str(a) for a in extra_args}
        if default_args:
            args += ["--listen", "127.0.0.1:0", "--jwt-secret", self.jwt_secret,
                     "--shutdown-timeout", "3"]
            # No gatehouse.db left in the working directory, and cheap Argon2id: a suite that
            # tests accounts passes its own --db and costs.
            if "--db" not in given:
                args += ["--db", "sqlite::memory:"]
            if "--password-hash-kib" not in given:
                args += ["--password-hash-kib", "8192"]
            if "--password-hash-passes" not in given:
                args += ["--password-hash-passes", "1"]
            if publish_key:
                args += ["--publish-key", publish_key]
            for name, key in self.bot_keys.items():
                args += ["--bot-key", f"{name}:{key}"]
        self.args = args + [str(a) for a in extra_args]
        self.env = _clean_env(env)
        self.proc = None
        self.host = None
        self.port = None
        self.tls = False
        self.ssl_context = None
        self.exit_code = None

    # -- lifecycle ---------------------------------------------------------------------------
    def start(self):
        if not self.binary or not os.path.exists(self.binary):
            raise RuntimeError(f"server binary not found: {self.binary!r}")
        self._stdout = tempfile.TemporaryFile()
        self._stderr = tempfile.TemporaryFile()
        self.proc = subprocess.Popen([self.binary, *self.args], stdin=subprocess.DEVNULL,
                                     stdout=self._stdout, stderr=self._stderr, env=self.env)
        deadline = time.monotonic() + READY_TIMEOUT_S
        while time.monotonic() < deadline:
            line = self.stdout_text().split("\n", 1)
            if len(line) == 2:
                m = READY_RE.match(line[0])
                if not m:
                    self.kill()
                    raise RuntimeError(f"unexpected first stdout line {line[0]!r}; "
                                       f"stderr: {self.stderr_text()[-1500:]}")
                self.host, self.port = m.group(1), int(m.group(2))
                return self
            if self.proc.poll() is not None:
                break
            time.sleep(0.02)
        code = self.proc.poll()
        self.kill()
        raise RuntimeError(f"no ready line within {READY_TIMEOUT_S} s (exit code {code}); "
                           f"args {self.args}; stderr: {self.stderr_text()[-1500:]}")

    def stop(self, sig=signal.SIGTERM, timeout=STOP_TIMEOUT_S):
        """Signals the server and returns its exit code (None if it had to be killed)."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.kill()
                return None
        self.exit_code = self.proc.returncode
        return self.exit_code

    def kill(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass

    @staticmethod
    def _file_text(f):
        # pread, not seek and read: the server writes through the same open file (its offset
        # is shared), so a seek to 0 would let its next line overwrite the file's start.
        fd = f.fileno()
        return os.pread(fd, os.fstat(fd).st_size, 0).decode("utf-8", "replace")

    def stdout_text(self):
        return self._file_text(self._stdout)

    def stderr_text(self):
        return self._file_text(self._stderr)

    def sanitizer_report(self):
        """The first sanitizer finding on stderr, or None."""
        text = self.stderr_text()
        for marker in ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:",
                       "WARNING: ThreadSanitizer"):
            i = text.find(marker)
            if i >= 0:
                return text[max(0, i - 200):i + 1500]
        return None

    # -- addresses and credentials -------------------------------------------------------------
    @property
    def ws_base(self):
        return f"{'wss' if self.tls else 'ws'}://127.0.0.1:{self.port}"

    def token(self, sub, **kw):
        return mint_jwt(self.jwt_secret, player_claims(sub, **kw))

    # -- HTTP --------------------------------------------------------------------------------
    def http(self, method, path, body=None, headers=None, timeout=5.0):
        """(status, headers as a lower-cased dict, body bytes) on a fresh connection."""
        if self.tls:
            conn = http.client.HTTPSConnection("127.0.0.1", self.port, timeout=timeout,
                                               context=self.ssl_context)
        else:
            conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            hdrs = dict(headers or {})
            if isinstance(body, (dict, list)):
                body = json.dumps(body)
                hdrs.setdefault("Content-Type", "application/json")
            if isinstance(body, str):
                body = body.encode()
            conn.request(method, path, body=body, headers=hdrs)
            resp = conn.getresponse()
            data = resp.read()
            return resp.status, {k.lower(): v for k, v in resp.getheaders()}, data
        finally:
            conn.close()

    def publish(self, message, key=_ABSENT):
        """POST /updates with the publish key; returns (status, body bytes)."""
        key = self.publish_key if key is _ABSENT else key
        headers = {"Content-Type": "application/json"}
        if key is not None:
            headers["Authorization"] = f"Bearer {key}"
        body = message if isinstance(message, (str, bytes)) else json.dumps(message)
        status, _, data = self.http("POST", "/updates", body, headers)
        return status, data

    def publish_ok(self, message):
        status, data = self.publish(message)
        if status != 202:
            raise AssertionError(f"POST /updates {message!r:.200} answered {status} {data!r:.300}")
        return data

    async def apublish(self, message):
        return await asyncio.to_thread(self.publish_ok, message)

    def metrics(self):
        status, headers, data = self.http("GET", "/metrics")
        if status != 200:
            raise AssertionError(f"/metrics answered {status}")
        return parse_metrics(data.decode())

    def metric(self, name, **labels):
        """Sum of the samples of `name` whose labels include `labels` (0 when none)."""
        return metric_value(self.metrics(), name, **labels)

    def wait_metric(self, name, predicate, timeout=3.0, **labels):
        """Polls /metrics until predicate(value) holds; returns the last value."""
        deadline = time.monotonic() + timeout
        while True:
            value = self.metric(name, **labels)
            if predicate(value) or time.monotonic() >= deadline:
                return value
            time.sleep(0.05)


_SAMPLE_RE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?\s+(\S+)(\s+\d+)?$")
_LABEL_RE = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def parse_metrics(text):
    """{"samples": [(name, labels dict, value)], "types": {family: type}, "text": text}."""
    samples, types = [], {}
    for line in text.splitlines():
        line = line.strip()
        if not line:
            continue
        if line.startswith("#"):
            parts = line.split()
            if len(parts) >= 4 and parts[1] == "TYPE":
                types[parts[2]] = parts[3]
            continue
        m = _SAMPLE_RE.match(line)
        if not m:
            raise AssertionError(f"unparsable /metrics line {line!r}")
        labels = dict(_LABEL_RE.findall(m.group(3) or ""))
        samples.append((m.group(1), labels, float(m.group(4))))
    return {"samples": samples, "types": types, "text": text}


def metric_value(parsed, name, **labels):
    total = 0.0
    for n, lab, v in parsed["samples"]:
        if n == name and all(lab.get(k) == str(x) for k, x in labels.items()):
            total += v
    return total


# ---------------------------------------------------------------------------------------------
# WebSocket client on python3-websockets.


class Client:
    """One WebSocket connection with a codec; decodes every server frame."""

    def __init__(self, ws, codec):
        self.ws = ws
        self.codec = codec
        self.welcome = None

    @classmethod
    async def open(cls, server, path, codec=None, subprotocols=None, query=None,
                   headers=None, expect_welcome=True, ssl_context=None):
        """Connects to `path` (e.g. "/ws/player/TOKEN"). `codec` is what the test expects the
        connection to use (for decoding); `subprotocols`/`query` are what is offered."""
        url = server.ws_base + path + (("?" + query) if query else "")
        kwargs = dict(subprotocols=subprotocols, extra_headers=headers or {},
                      open_timeout=RECV_TIMEOUT_S, close_timeout=2, compression=None,
                      max_size=None, ping_interval=None)
        if server.tls:
            kwargs["ssl"] = ssl_context or server.ssl_context
        ws = await websockets.connect(url, **kwargs)
        c = cls(ws, codec or "json")
        if expect_welcome:
            c.welcome = await c.recv()
        return c

    @classmethod
    async def player(cls, server, sub, codec="json", how="query", **kw):
        """A player connection; `how`: "query" (?codec=), "subprotocol", or "default"."""
        path = "/ws/player/" + server.token(sub)
        if how == "query":
            kw.setdefault("query", f"codec={codec}")
        elif how == "subprotocol":
            kw.setdefault("subprotocols", [SUBPROTOCOL[codec]])
        return await cls.open(server, path, codec=codec, **kw)

    @classmethod
    async def bot(cls, server, name, codec="msgpack", query=None, **kw):
        return await cls.open(server, "/ws/bot/" + server.bot_keys[name], codec=codec,
                              query=query, **kw)

    async def recv_frame(self, timeout=RECV_TIMEOUT_S):
        return await asyncio.wait_for(self.ws.recv(), timeout)

    async def recv(self, timeout=RECV_TIMEOUT_S):
        return decode_envelope(self.codec, await self.recv_frame(timeout))

    async def recv_until(self, predicate, timeout=RECV_TIMEOUT_S):
        """Envelopes up to and including the first one matching `predicate`."""
        got = []
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"nothing matched within {timeout} s; got {got!r:.1000}")
            env = await self.recv(left)
            got.append(env)
            if predicate(env):
                return got

    async def expect_nothing(self, within=0.3):
        try:
            frame = await asyncio.wait_for(self.ws.recv(), within)
        except asyncio.TimeoutError:
            return
        raise AssertionError(f"unexpected frame {frame!r:.300}")

    async def send_raw(self, frame):
        await self.ws.send(frame)

    async def send(self, type_="player_action", payload=_ABSENT, correlation_id=_ABSENT,
                   payload_codec="json"):
        await self.ws.send(encode_envelope(self.codec, type_, payload, correlation_id,
                                           payload_codec))

    async def command(self, type_="player_action", payload=_ABSENT, correlation_id=_ABSENT,
                      **kw):
        """Sends a command and returns the server's answer (ack or error)."""
        await self.send(type_, payload, correlation_id, **kw)
        return await self.recv()

    async def close(self):
        await self.ws.close()

    async def wait_closed(self, timeout=RECV_TIMEOUT_S):
        """Reads until the server closes; returns (close code, envelopes read before it)."""
        got = []
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"connection still open after {timeout} s; got {got!r:.500}")
            try:
                frame = await asyncio.wait_for(self.ws.recv(), left)
            except websockets.ConnectionClosed:
                return self.ws.close_code, got
            got.append(decode_envelope(self.codec, frame))


def without_reconnect(case, got, after_ms=0):
    """`got` (what a connection read before its close) without the one `gatehouse.reconnect`
    a drain sends every WebSocket before the 1001 (docs/protocol.md 6.7), which the test asserts
    is there, exactly once, with `after_ms` (0 without --drain-spread-ms)."""
    reconnects = [e for e in got if e.get("type") == "gatehouse.reconnect"]
    case.assertEqual([e.get("payload") for e in reconnects], [{"after_ms": after_ms}], got)
    return [e for e in got if e.get("type") != "gatehouse.reconnect"]


def note(text):
    """An informational line in the test output (what a passing test measured)."""
    print(f"    note: {text}", file=sys.stderr, flush=True)


def stream_id_key(stream_id):
    m = STREAM_ID_RE.match(stream_id or "")
    if not m:
        raise AssertionError(f"stream_id {stream_id!r} is not <ms>-<seq>")
    return int(m.group(1)), int(m.group(2))


# ---------------------------------------------------------------------------------------------
# A raw RFC 6455 client on a blocking socket: exact HTTP answers to upgrades, frames a
# well-behaved library will not send (invalid UTF-8), and a peer that stops reading.


class RawWs:
    def __init__(self, port, path, headers=None, subprotocols=None, rcvbuf=None,
                 ssl_context=None, timeout=RECV_TIMEOUT_S):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf:
            # Before connect, so the advertised window starts small too.
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.settimeout(timeout)
        self.sock.connect(("127.0.0.1", port))
        if ssl_context is not None:
            self.sock = ssl_context.wrap_socket(self.sock, server_hostname="127.0.0.1")
        self.buf = b""
        self.key = base64.b64encode(os.urandom(16)).decode()
        lines = [f"GET {path} HTTP/1.1", f"Host: 127.0.0.1:{port}", "Upgrade: websocket",
                 "Connection: Upgrade", f"Sec-WebSocket-Key: {self.key}",
                 "Sec-WebSocket-Version: 13"]
        if subprotocols:
            lines.append("Sec-WebSocket-Protocol: " + ", ".join(subprotocols))
        for k, v in (headers or {}).items():
            lines.append(f"{k}: {v}")
        self.sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        self.status, self.headers, self.body = self._read_response()
        self.close_code = None

    def _read_exact_until(self, pred, deadline):
        while not pred():
            self.sock.settimeout(max(0.01, deadline - time.monotonic()))
            chunk = self.sock.recv(65536)
            if not chunk:
                raise EOFError("server closed the connection")
            self.buf += chunk

    def _read_response(self):
        deadline = time.monotonic() + RECV_TIMEOUT_S
        self._read_exact_until(lambda: b"\r\n\r\n" in self.buf, deadline)
        head, _, self.buf = self.buf.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        headers = {}
        for line in lines[1:]:
            k, _, v = line.partition(":")
            headers[k.strip().lower()] = v.strip()
        body = b""
        if status != 101:
            n = int(headers.get("content-length", "0"))
            try:
                self._read_exact_until(lambda: len(self.buf) >= n, deadline)
            except (EOFError, socket.timeout):
                pass
            body, self.buf = self.buf[:n], self.buf[n:]
        return status, headers, body

    def expected_accept(self):
        return base64.b64encode(hashlib.sha1(
            (self.key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").encode()).digest()).decode()

    def send_frame(self, opcode, payload, fin=True):
        if isinstance(payload, str):
            payload = payload.encode()
        head = bytes([(0x80 if fin else 0) | opcode])
        n = len(payload)
        if n < 126:
            head += bytes([0x80 | n])
        elif n < 65536:
            head += bytes([0x80 | 126]) + struct.pack(">H", n)
        else:
            head += bytes([0x80 | 127]) + struct.pack(">Q", n)
        mask = os.urandom(4)
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        self.sock.sendall(head + mask + masked)

    def send_text(self, data):
        self.send_frame(0x1, data)

    def send_binary(self, data):
        self.send_frame(0x2, data)

    def recv_frame(self, timeout=RECV_TIMEOUT_S):
        """(fin, opcode, payload), or None on EOF/reset. Raises socket.timeout."""
        deadline = time.monotonic() + timeout
        try:
            self._read_exact_until(lambda: len(self.buf) >= 2, deadline)
            b0, b1 = self.buf[0], self.buf[1]
            n = b1 & 0x7F
            off = 2
            if n == 126:
                self._read_exact_until(lambda: len(self.buf) >= 4, deadline)
                n, off = struct.unpack_from(">H", self.buf, 2)[0], 4
            elif n == 127:
                self._read_exact_until(lambda: len(self.buf) >= 10, deadline)
                n, off = struct.unpack_from(">Q", self.buf, 2)[0], 10
            if b1 & 0x80:
                raise AssertionError("server sent a masked frame")
            self._read_exact_until(lambda: len(self.buf) >= off + n, deadline)
        except (EOFError, ConnectionResetError, BrokenPipeError):
            return None
        payload, self.buf = self.buf[off:off + n], self.buf[off + n:]
        return bool(b0 & 0x80), b0 & 0x0F, payload

    def recv_message(self, timeout=RECV_TIMEOUT_S, answer_pings=True):
        """(opcode, data) of the next data message; ("close", code) for a close frame;
        None on EOF. Fragments are joined; pings answered when asked."""
        deadline = time.monotonic() + timeout
        parts, first_op = [], None
        while True:
            f = self.recv_frame(max(0.01, deadline - time.monotonic()))
            if f is None:
                return None
            fin, op, data = f
            if op == 0x8:
                self.close_code = struct.unpack(">H", data[:2])[0] if len(data) >= 2 else 1005
                return ("close", self.close_code)
            if op == 0x9:
                if answer_pings:
                    self.send_frame(0xA, data)
                continue
            if op == 0xA:
                continue
            if op != 0:
                first_op = op
            parts.append(data)
            if fin:
                return first_op, b"".join(parts)

    def wait_close(self, timeout=RECV_TIMEOUT_S):
        """Discards data until a close frame (its code) or EOF (None); bounded."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"no close within {timeout} s")
            try:
                m = self.recv_message(left)
            except socket.timeout:
                continue
            except OSError:
                return None
            if m is None:
                return None
            if m[0] == "close":
                return m[1]

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


# ---------------------------------------------------------------------------------------------
# Test bases and the runner.


class AsyncCase(unittest.IsolatedAsyncioTestCase):
    """IsolatedAsyncioTestCase runs its loop in debug mode, which reports every blocking call
    over 0.1 s; the tests block on purpose (HTTP, /metrics polls, raw sockets), so only a
    callback blocking for longer than any bounded wait here is worth a line."""

    async def asyncSetUp(self):
        asyncio.get_running_loop().slow_callback_duration = 30.0


class ServerTestCase(AsyncCase):
    """Starts one server per class (`server_args()`), stops it after, and fails the class
    when the server did not exit 0 or its stderr carries a sanitizer report."""

    publish_key = "pub-" + secrets.token_hex(8)
    bot_keys = {"rover": "botkey-" + secrets.token_hex(8)}

    @classmethod
    def server_args(cls):
        return []

    @classmethod
    def setUpClass(cls):
        cls.server = Server(*cls.server_args(), publish_key=cls.publish_key,
                            bot_keys=cls.bot_keys).start()

    @classmethod
    def tearDownClass(cls):
        code = cls.server.stop()
        report = cls.server.sanitizer_report()
        if report:
            raise AssertionError(f"sanitizer report in the server's stderr:\n{report}")
        if code != 0:
            raise AssertionError(f"server exit code {code} after SIGTERM (want 0); stderr "
                                 f"tail: {cls.server.stderr_text()[-1500:]}")


class _CountingResult(unittest.TextTestResult):
    pass


def run_main():
    global SERVER_BINARY
    argv = list(sys.argv)
    if len(argv) >= 2 and not argv[1].startswith("-"):
        SERVER_BINARY = os.path.abspath(argv.pop(1))
    if not SERVER_BINARY:
        print("usage: test_*.py PATH/TO/gatehouse-server [unittest args]", file=sys.stderr)
        sys.exit(2)
    main = sys.modules["__main__"]
    # Test cases are found in __main__, where the harness global is read at start-up.
    globals()["SERVER_BINARY"] = SERVER_BINARY
    program = unittest.main(module=main, argv=argv, exit=False, verbosity=2,
                            testRunner=unittest.TextTestRunner(stream=sys.stdout, verbosity=2,
                                                               resultclass=_CountingResult))
    r = program.result
    # A test with several failing subtests is one failed test, not several.
    failing = {getattr(test, "test_case", test).id() for test, _ in r.failures + r.errors}
    failing |= {test.id() for test in r.unexpectedSuccesses}
    failed = len(failing)
    passed = max(0, r.testsRun - failed - len(r.skipped))
    print(f"{passed} passed, {failed} failed" + (f", {len(r.skipped)} skipped" if r.skipped
                                                else ""))
    sys.stdout.flush()
    sys.exit(0 if failed == 0 and r.testsRun > 0 else 1)
