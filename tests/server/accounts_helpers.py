"""Shared pieces of the accounts and HTTP-built-in suites (test_accounts, test_http_commands,
test_accounts_flow): a gatehouse-server with a throw-away user store and fast password hashing,
JSON requests and RFC 9457 problem checks, HS256 verification of the tokens the server issues,
and an asyncio reader for `GET /sse/player` event streams.

Nothing here knows the server's code: the expectations come from docs/protocol.md section 2 and
the decisions of the accounts issue. Only 127.0.0.1 is used, and every wait is bounded.
"""

import asyncio
import base64
import hashlib
import hmac
import json
import os
import secrets
import shutil
import tempfile
import time

import gatehouse_harness as h
from gatehouse_harness import Server

# Argon2id at 8 MiB and one pass: a login costs milliseconds, not a second, on the test box.
FAST_HASHING = ["--password-hash-kib", "8192", "--password-hash-passes", "1"]
# The per-IP limit over the auth endpoints (60/min by default) would trip in any suite that
# registers and logs in more than a handful of times from 127.0.0.1; classes that test it
# set it themselves.
NO_AUTH_RATE_LIMIT = ["--auth-rate-limit", "0"]

PROBLEM_TYPE = "application/problem+json"


def unique(prefix="u"):
    """A fresh username (letters, digits and `_`, at most 32 chars)."""
    return f"{prefix}_{secrets.token_hex(5)}"


def password():
    return "pw-" + secrets.token_hex(8)


# Which user store the suites run on: `sqlite` (a file per TempDb), or `postgresql` (a database
# per TempDb on the suite's PostgreSQL, postgres_fixture.shared()). tests/server/CMakeLists.txt
# registers the accounts suites once for each.
STORE = os.environ.get("GATEHOUSE_TEST_STORE", "sqlite")


class TempDb:
    """One empty user store of the suite's kind (STORE); `url` is the --db value, `password`
    the secret it holds (None for SQLite)."""

    def __init__(self, name="users.db"):
        self.dir = None
        self.database = None
        self.password = None
        if STORE == "postgresql":
            import postgres_fixture  # only the PostgreSQL runs need the server binaries
            self.pg = postgres_fixture.shared()
            self.database = self.pg.create_database()
            self.url = self.pg.url(self.database)
            self.password = self.pg.password
        else:
            self.dir = tempfile.mkdtemp(prefix="gatehouse-accounts-")
            self.url = "sqlite:" + self.dir + "/" + name

    def close(self):
        if self.database is not None:
            self.pg.drop_database(self.database)
            self.database = None
        if self.dir is not None:
            shutil.rmtree(self.dir, ignore_errors=True)


def accounts_args(db_url, *extra):
    """The flags of a server with accounts: its store, fast hashing, no per-IP auth limit unless
    `extra` sets one (a flag may be given once)."""
    args = ["--db", db_url, *FAST_HASHING]
    if "--auth-rate-limit" not in extra:
        args += NO_AUTH_RATE_LIMIT
    return args + [str(a) for a in extra]


class AccountsCase(h.ServerTestCase):
    """h.ServerTestCase with a temp SQLite store; subclasses add flags with `extra_args()`."""

    @classmethod
    def extra_args(cls):
        return []

    @classmethod
    def server_args(cls):
        return accounts_args(cls.db.url, *cls.extra_args())

    @classmethod
    def setUpClass(cls):
        cls.db = TempDb()
        try:
            super().setUpClass()
        except BaseException:
            cls.db.close()
            raise

    @classmethod
    def tearDownClass(cls):
        try:
            super().tearDownClass()
        finally:
            cls.db.close()


# ---------------------------------------------------------------------------------------------
# HTTP with JSON bodies


class Response:
    """status, headers (lower-cased names), raw body, and `json` (None unless it parses)."""

    def __init__(self, method, path, status, headers, body):
        self.method, self.path = method, path
        self.status, self.headers, self.body = status, headers, body
        try:
            self.json = json.loads(body) if body else None
        except (ValueError, RecursionError):
            self.json = None

    @property
    def content_type(self):
        return self.headers.get("content-type", "")

    def __repr__(self):
        return (f"{self.method} {self.path} -> {self.status} {self.content_type!r} "
                f"{self.body[:400]!r}")


def request(server, method, path, body=None, token=None, content_type="application/json",
            headers=None, timeout=10.0):
    """One request on a fresh connection. `body`: a dict/list (sent as JSON), str or bytes
    (sent as is) or None; `token`: sent as `Authorization: Bearer`."""
    hdrs = {}
    if body is not None and content_type is not None:
        hdrs["Content-Type"] = content_type
    if token is not None:
        hdrs["Authorization"] = "Bearer " + token
    hdrs.update(headers or {})
    if isinstance(body, (dict, list)):
        # Compact: what a "serialized JSON" size limit measures is then the same bytes whether
        # the server measures the request's text or re-serializes it.
        body = json.dumps(body, separators=(",", ":"))
    status, rh, data = server.http(method, path, body, hdrs, timeout=timeout)
    return Response(method, path, status, rh, data)


def post(server, path, body, **kw):
    return request(server, "POST", path, body, **kw)


def check_problem(case, r, status, code=None):
    """An RFC 9457 answer: the status, problem+json, at least status, title and code."""
    case.assertEqual(r.status, status, r)
    case.assertTrue(r.content_type.startswith(PROBLEM_TYPE), f"content type of {r!r}")
    case.assertIsInstance(r.json, dict, r)
    case.assertEqual(r.json.get("status"), status, r)
    case.assertIsInstance(r.json.get("title"), str, r)
    case.assertTrue(r.json["title"], r)
    case.assertIsInstance(r.json.get("code"), str, r)
    if code is not None:
        case.assertEqual(r.json.get("code"), code, r)
    return r.json


def check_json(case, r, status):
    case.assertEqual(r.status, status, r)
    case.assertTrue(r.content_type.startswith("application/json"), f"content type of {r!r}")
    case.assertIsInstance(r.json, dict, r)
    return r.json


def retry_after(case, r, at_most=None):
    """The Retry-After header: whole seconds, at least 1 (and at most `at_most`)."""
    value = r.headers.get("retry-after")
    case.assertIsNotNone(value, f"no Retry-After on {r!r}")
    case.assertRegex(value, r"^[0-9]+$", f"Retry-After {value!r} is not whole seconds")
    seconds = int(value)
    case.assertGreaterEqual(seconds, 1, r)
    if at_most is not None:
        case.assertLessEqual(seconds, at_most, r)
    return seconds


def allow_set(r):
    return {m.strip().upper() for m in r.headers.get("allow", "").split(",") if m.strip()}


# ---------------------------------------------------------------------------------------------
# Accounts


def register(server, username, email=None, password_=None):
    return post(server, "/register", {
        "username": username,
        "email": f"{username}@example.test" if email is None else email,
        "password": "correct horse" if password_ is None else password_})


def register_ok(case, server, username=None, email=None, password_=None):
    """Registers a fresh user; returns (username, email, password, player_id)."""
    username = username or unique()
    email = email or f"{username}@example.test"
    password_ = password_ or password()
    r = register(server, username, email, password_)
    doc = check_json(case, r, 201)
    case.assertIsInstance(doc.get("player_id"), str, r)
    case.assertTrue(doc["player_id"], r)
    return username, email, password_, doc["player_id"]


def login(server, username, password_):
    return post(server, "/login", {"username": username, "password": password_})


def check_token_pair(case, r, player_id=None, access_ttl=None):
    """A login/refresh answer: {access_token, refresh_token, token_type, expires_in, player_id}."""
    doc = check_json(case, r, 200)
    for key in ("access_token", "refresh_token", "player_id"):
        case.assertIsInstance(doc.get(key), str, f"{key} in {r!r}")
        case.assertTrue(doc[key], f"{key} in {r!r}")
    case.assertEqual(doc.get("token_type"), "Bearer", r)
    case.assertIsInstance(doc.get("expires_in"), int, r)
    case.assertNotIsInstance(doc.get("expires_in"), bool, r)
    if access_ttl is not None:
        case.assertEqual(doc["expires_in"], access_ttl, r)
    if player_id is not None:
        case.assertEqual(doc["player_id"], player_id, r)
    return doc


def login_ok(case, server, username, password_, player_id=None):
    return check_token_pair(case, login(server, username, password_), player_id)


def refresh(server, refresh_token):
    return post(server, "/token/refresh", {"refresh_token": refresh_token})


def logout(server, refresh_token):
    return post(server, "/logout", {"refresh_token": refresh_token})


def get_settings(server, token):
    return request(server, "GET", "/player/settings", token=token)


def patch_settings(server, token, body, content_type="application/json"):
    return request(server, "PATCH", "/player/settings", body, token=token,
                   content_type=content_type)


def put_settings(server, token, body, content_type="application/json"):
    return request(server, "PUT", "/player/settings", body, token=token,
                   content_type=content_type)


# ---------------------------------------------------------------------------------------------
# JWTs the server issued


def _b64url_decode(s):
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


def decode_jwt(case, token, secret):
    """Checks the compact JWS is HS256 and verifies with `secret`; returns (header, claims)."""
    parts = token.split(".")
    case.assertEqual(len(parts), 3, f"not a compact JWS: {token!r:.100}")
    header = json.loads(_b64url_decode(parts[0]))
    claims = json.loads(_b64url_decode(parts[1]))
    case.assertEqual(header.get("alg"), "HS256", header)
    want = hmac.new(secret.encode(), (parts[0] + "." + parts[1]).encode(),
                    hashlib.sha256).digest()
    case.assertTrue(hmac.compare_digest(_b64url_decode(parts[2]), want),
                    "the access token does not verify with --jwt-secret")
    return header, claims


# ---------------------------------------------------------------------------------------------
# GET /sse/player: an asyncio reader of the raw HTTP response.


class SseStream:
    """One `GET` event stream on 127.0.0.1. `status`/`headers`/`body` describe the response
    head (and the whole body when it is not a 200 stream); `next_block()` returns the fields of
    the next block (the lines up to a blank line) as a list of (field, value), comments as
    ("", text)."""

    def __init__(self, reader, writer):
        self.reader, self.writer = reader, writer
        self.status = None
        self.headers = {}
        self.body = b""
        self.buf = b""
        self.eof = False

    @classmethod
    async def open(cls, server, path="/sse/player", token=None, query_token=None,
                   headers=None, method="GET", timeout=h.RECV_TIMEOUT_S):
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection("127.0.0.1", server.port), timeout)
        s = cls(reader, writer)
        if query_token is not None:
            path += ("&" if "?" in path else "?") + "token=" + query_token
        lines = [f"{method} {path} HTTP/1.1", f"Host: 127.0.0.1:{server.port}",
                 "Accept: text/event-stream"]
        if token is not None:
            lines.append("Authorization: Bearer " + token)
        for k, v in (headers or {}).items():
            lines.append(f"{k}: {v}")
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode())
        await writer.drain()
        await s._read_head(timeout)
        return s

    async def _fill(self, deadline):
        left = deadline - time.monotonic()
        if left <= 0:
            raise asyncio.TimeoutError()
        chunk = await asyncio.wait_for(self.reader.read(65536), left)
        if not chunk:
            self.eof = True
        self.buf += chunk
        return bool(chunk)

    async def _read_head(self, timeout):
        deadline = time.monotonic() + timeout
        while b"\r\n\r\n" not in self.buf:
            if not await self._fill(deadline):
                raise AssertionError(f"connection closed before a response head: {self.buf!r}")
        head, _, self.buf = self.buf.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        self.status = int(lines[0].split()[1])
        for line in lines[1:]:
            k, _, v = line.partition(":")
            self.headers[k.strip().lower()] = v.strip()
        if self.status != 200:
            n = int(self.headers.get("content-length", "0"))
            try:
                while len(self.buf) < n and await self._fill(deadline):
                    pass
            except asyncio.TimeoutError:
                pass
            self.body, self.buf = self.buf[:n], self.buf[n:]

    @property
    def json(self):
        try:
            return json.loads(self.body)
        except ValueError:
            return None

    async def next_block(self, timeout=h.RECV_TIMEOUT_S):
        """The next block's fields; None once the server ended the stream."""
        deadline = time.monotonic() + timeout
        while True:
            # A block ends with a blank line (LF, CRLF or CR line ends: accept LF and CRLF).
            normalized = self.buf.replace(b"\r\n", b"\n")
            i = normalized.find(b"\n\n")
            if i >= 0:
                block = normalized[:i]
                self.buf = normalized[i + 2:]
                fields = []
                for line in block.decode("utf-8").split("\n"):
                    if line.startswith(":"):
                        fields.append(("", line[1:].lstrip(" ")))
                        continue
                    name, sep, value = line.partition(":")
                    if sep and value.startswith(" "):
                        value = value[1:]
                    fields.append((name, value))
                return fields
            if self.eof:
                if self.buf.strip():
                    raise AssertionError(f"stream ended inside a block: {self.buf!r:.300}")
                return None
            try:
                await self._fill(deadline)
            except asyncio.TimeoutError:
                raise AssertionError(
                    f"no complete event block within {timeout} s; buffered {self.buf!r:.300}")

    async def next_event(self, timeout=h.RECV_TIMEOUT_S):
        """The next event as {"event", "data" (parsed JSON), "raw_data", "fields"}, skipping
        comment-only blocks; None when the stream ended."""
        deadline = time.monotonic() + timeout
        while True:
            fields = await self.next_block(max(0.01, deadline - time.monotonic()))
            if fields is None:
                return None
            named = [(k, v) for k, v in fields if k]
            if not named:
                continue
            data_lines = [v for k, v in named if k == "data"]
            events = [v for k, v in named if k == "event"]
            raw = "\n".join(data_lines)
            return {"event": events[-1] if events else None, "raw_data": raw,
                    "data": json.loads(raw) if data_lines else None, "fields": fields,
                    "data_lines": len(data_lines)}

    async def events_until(self, predicate, timeout=h.RECV_TIMEOUT_S):
        got = []
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"no matching event within {timeout} s; got {got!r:.800}")
            ev = await self.next_event(left)
            if ev is None:
                raise AssertionError(f"stream ended; got {got!r:.800}")
            got.append(ev)
            if predicate(ev):
                return got

    async def wait_eof(self, timeout=h.RECV_TIMEOUT_S):
        """Reads (discarding) until the server closes; returns the bytes read."""
        deadline = time.monotonic() + timeout
        seen = b""
        while not self.eof:
            try:
                await self._fill(deadline)
            except asyncio.TimeoutError:
                raise AssertionError(f"stream still open after {timeout} s")
            except (ConnectionResetError, BrokenPipeError):
                self.eof = True
        seen, self.buf = self.buf, b""
        return seen

    async def close(self):
        try:
            self.writer.close()
            await asyncio.wait_for(self.writer.wait_closed(), 2)
        except (OSError, asyncio.TimeoutError):
            pass


def check_sse_update(case, ev, type_, payload, correlation_id=None):
    """An update on an event stream: `event: TYPE` and `data:` {type, payload, correlation_id?}
    on one data line."""
    case.assertIsNotNone(ev, "the stream ended")
    case.assertEqual(ev["event"], type_, ev)
    case.assertEqual(ev["data_lines"], 1, f"one data line per event: {ev!r:.400}")
    data = ev["data"]
    case.assertIsInstance(data, dict, ev)
    # A logged update (POST /updates goes through the update log) adds its update_id.
    case.assertTrue(set(data) <= {"type", "payload", "correlation_id", "update_id"}, ev)
    case.assertEqual(data.get("type"), type_, ev)
    case.assertIn("payload", data, ev)
    case.assertEqual(data["payload"], payload, ev)
    if correlation_id is None:
        case.assertIsNone(data.get("correlation_id"), ev)
    else:
        case.assertEqual(data.get("correlation_id"), correlation_id, ev)


async def sse_before_marker(stream, publish, player_id, timeout=h.RECV_TIMEOUT_S):
    """Publishes (with the coroutine function `publish`) a marker to `player_id` and returns the
    non-marker events `stream` got before it: updates reach a player in publish order, so an
    empty list proves an earlier update was not delivered."""
    tag = "m-" + secrets.token_hex(4)
    await publish({"player_id": player_id, "type": "marker", "payload": {"tag": tag}})
    got = await stream.events_until(
        lambda e: e["event"] == "marker" and (e["data"] or {}).get("payload") == {"tag": tag},
        timeout)
    return [e for e in got[:-1] if e["event"] != "marker"]


def secrets_in_log(log, named_secrets):
    """The names of the secrets found in `log` (each a name -> value; empty values skipped).
    A JWT is also looked for by its signature alone."""
    found = []
    for name, value in named_secrets.items():
        if not value:
            continue
        if value in log:
            found.append(name)
        elif value.count(".") == 2 and len(value.rsplit(".", 1)[1]) >= 20 and \
                value.rsplit(".", 1)[1] in log:
            found.append(name + " (its signature)")
    return found
