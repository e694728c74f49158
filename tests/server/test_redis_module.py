#!/usr/bin/env python3
"""The gatehouse Redis module (redis_module/, `GATEHOUSE.APPEND`) against real redis-servers: it
must do what the `gatehouse_append` function of the gatehouse library does (docs/protocol.md 6.5),
since gateways with and without it share one command stream and one set of window hashes.

Usage: test_redis_module.py PATH/TO/gatehouse-server [unittest args]

- differential: the same calls to `FCALL gatehouse_append` on one redis-server and to
  `GATEHOUSE.APPEND` on another give the same answers (bulk string for a fresh entry, status
  with the first id for a duplicate), the same entries and the same window hashes (with their
  EXPIREAT, and the UNLINK of the one before the last), window rollover included;
- replication and the AOF: replicas (with the module and without), and the primary restarted
  from its AOF, hold the same stream (same ids), the same hashes;
- what a plain XADD does for others: blocked XREAD/XREADGROUP woken, keyspace events, WATCH;
- errors (Redis stays up), ACL, and no memory leaked over a few hundred thousand commands.

The function library is what a gatehouse-server loads into its Redis at connect: one is started
once, and its `FUNCTION DUMP` restored into every redis-server here. Replies are read with the
small RESP reader below, since python3-redis answers a bulk string and a status alike.
"""

import os
import socket
import threading
import time
import unittest

import gatehouse_harness as h
from redis_fixture import RedisServer, free_port, gatehouse_module

WAIT_S = 5.0  # every bounded wait

# ---------------------------------------------------------------------------------------------
# RESP, raw: a status reply and an error reply stay distinguishable from a bulk string.


class Status(bytes):
    """A status reply (`+...`)."""


class ErrorReply(bytes):
    """An error reply (`-...`)."""


def encode(argv):
    out = [b"*%d\r\n" % len(argv)]
    for a in argv:
        if isinstance(a, int):
            a = str(a)
        if isinstance(a, str):
            a = a.encode()
        out.append(b"$%d\r\n%s\r\n" % (len(a), a))
    return b"".join(out)


class Resp:
    """One connection to a redis-server speaking RESP2 by hand."""

    def __init__(self, port, timeout=WAIT_S * 2):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.f = self.sock.makefile("rb")

    def send(self, *argv):
        self.sock.sendall(encode(argv))

    def read(self):
        line = self.f.readline()
        if not line.endswith(b"\r\n"):
            raise ConnectionError("connection closed by redis-server")
        kind, rest = line[:1], line[1:-2]
        if kind == b"+":
            return Status(rest)
        if kind == b"-":
            return ErrorReply(rest)
        if kind == b":":
            return int(rest)
        if kind == b"$":
            n = int(rest)
            return None if n < 0 else self.f.read(n + 2)[:-2]
        if kind == b"*":
            n = int(rest)
            return None if n < 0 else [self.read() for _ in range(n)]
        raise ValueError(f"not RESP: {line!r}")

    def call(self, *argv):
        self.send(*argv)
        return self.read()

    def close(self):
        self.f.close()
        self.sock.close()


# ---------------------------------------------------------------------------------------------
# The calls.

GATEWAY = "gw-modtest"
EXTRAS = ["traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
          "payload_codec", "msgpack"]


def values(n, binary=False):
    """The eight values of one command (type payload codec correlation_id player_id
    connection_id client ts_ms); `binary`: a payload no text codec would pass."""
    payload = b"\x00\xff\r\n*1\r\n" + str(n).encode() if binary else '{"n":%d}' % n
    return ["cmd.test", payload, "json", f"c{n}", "p7", "a1b2c3d4e5f60718", "player",
            str(1765000000000 + n)]


def cmd(pair, n, extra=(), binary=False):
    """One command's arguments: pair, extra count, the values, the extra fields."""
    return [pair, str(len(extra)), *values(n, binary), *extra]


def pair_of(correlation_id, player="p7"):
    return f"{len(player)}:{player}:{correlation_id}"


def append_argv(module, stream, window, maxlen, commands, gateway=GATEWAY):
    head = ["GATEHOUSE.APPEND"] if module else ["FCALL", "gatehouse_append", "1"]
    argv = head + [stream, str(window), str(maxlen), gateway]
    for c in commands:
        argv += c
    return argv


_library = None


def function_library():
    """The `gatehouse` library as a gatehouse-server loads it (a FUNCTION DUMP payload)."""
    global _library
    if _library is None:
        redis = RedisServer().start()
        try:
            server = h.Server("--redis", redis.url, "--log-level", "warn").start()
            try:
                _library = redis.client().execute_command("FUNCTION", "DUMP")
            finally:
                server.stop()
        finally:
            redis.close()
    return _library


def module_redis(extra=(), library=True):
    """A started redis-server with the module loaded (and the function library)."""
    server = RedisServer(module=gatehouse_module(h.SERVER_BINARY), extra_args=extra).start()
    if library:
        server.client().execute_command("FUNCTION", "RESTORE", function_library())
    return server


def redis_ms(r):
    sec, usec = r.time()
    return sec * 1000 + usec // 1000


def poll(predicate, what, timeout=WAIT_S):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = predicate()
        if got:
            return got
        time.sleep(0.01)
    raise AssertionError(f"not within {timeout} s: {what}")


class PhaseMissed(Exception):
    """A call meant for one part of a window ran outside it (a stalled machine)."""


def wait_phase(r, second, lo_ms, hi_ms):
    """Waits until Redis's clock is in [lo_ms, hi_ms) of `second` (or raises PhaseMissed when
    it is already past), and returns the time in ms."""
    while True:
        now = redis_ms(r)
        if now >= second * 1000 + hi_ms:
            raise PhaseMissed(f"second {second} [{lo_ms}, {hi_ms}) ms is past")
        if now >= second * 1000 + lo_ms:
            return now
        time.sleep(min(0.05, max(0.001, (second * 1000 + lo_ms - now) / 1000)))


def check_phase(r, second, hi_ms):
    if redis_ms(r) >= second * 1000 + hi_ms:
        raise PhaseMissed(f"a call ran past {hi_ms} ms of second {second}")


def dedupe_keys(r, stream):
    """{window number: key} of the stream's window hashes."""
    prefix = f"{stream}:dedupe:"
    return {int(k.decode()[len(prefix):]): k.decode()
            for k in r.scan_iter(match=prefix + "*", count=1000)}


class Numbering:
    """Numbers ids by order of first appearance, so two Redis servers' answers compare although
    their ids differ in time."""

    def __init__(self):
        self.of = {}

    def __call__(self, id_):
        if isinstance(id_, (bytes, bytearray)):
            id_ = bytes(id_).decode()
        return self.of.setdefault(id_, len(self.of))


def shape(replies, number):
    """A call's answer with ids numbered: ('bulk', n) / ('status', n) per element."""
    if isinstance(replies, ErrorReply):
        return ("error", bytes(replies).split(b" ")[0])
    return [("status" if isinstance(e, Status) else
             "bulk" if isinstance(e, bytes) else repr(type(e)), number(e)) for e in replies]


def xrange(r, stream):
    """[(id, [name, value, ...])] of the whole stream, fields as a list (python3-redis makes
    them a dict, which would hide a repeated name)."""
    conn = Resp(r.connection_pool.connection_kwargs["port"])
    try:
        return [(i.decode(), f) for i, f in conn.call("XRANGE", stream, "-", "+")]
    finally:
        conn.close()


def snapshot(r, stream, number):
    """What a side holds: entries (numbered ids, fields in order), window hashes by number
    (pair -> numbered id) with their expiry."""
    entries = [(number(i), f) for i, f in xrange(r, stream)]
    hashes = {}
    for w, key in dedupe_keys(r, stream).items():
        hashes[w] = ({p: number(i) for p, i in r.hgetall(key).items()},
                     r.execute_command("EXPIRETIME", key))
    return entries, hashes


# ---------------------------------------------------------------------------------------------


def setUpModule():
    function_library()  # fails the suite early when the server cannot load it


class Differential(unittest.TestCase):
    """The same calls to the function on one redis-server and to the module on another."""

    @classmethod
    def setUpClass(cls):
        cls.fn_redis = module_redis()
        cls.mod_redis = module_redis()
        cls.sides = []
        for server, module in ((cls.fn_redis, False), (cls.mod_redis, True)):
            cls.sides.append((module, Resp(server.port), server.client()))

    @classmethod
    def tearDownClass(cls):
        for _, conn, _ in cls.sides:
            conn.close()
        cls.fn_redis.close()
        cls.mod_redis.close()

    def both(self, stream, window, maxlen, commands):
        """The call on both sides: [function's answer, module's answer]."""
        return [conn.call(*append_argv(module, stream, window, maxlen, commands))
                for module, conn, _ in self.sides]

    def check_same(self, stream, calls, window):
        """Same numbered answers, entries and hashes (window numbers relative to the first
        entry's, with expiry relative to it) on both sides; returns the function side's."""
        got = []
        for (_, _, r), answers in zip(self.sides, zip(*calls)):
            number = Numbering()
            shapes = [shape(a, number) for a in answers]
            entries, hashes = snapshot(r, stream, number)
            base = int(min(number.of, key=lambda i: int(i.split("-")[0])).split("-")[0]) \
                // 1000 // window if number.of else 0
            rel = {w - base: (pairs, exp - (w + 3) * window if exp > 0 else exp)
                   for w, (pairs, exp) in hashes.items()}
            got.append((shapes, entries, rel))
        fn, mod = got
        self.assertEqual(fn[0], mod[0], "answers")
        self.assertEqual(fn[1], mod[1], "entries (numbered ids, fields in order)")
        self.assertEqual(fn[2], mod[2], "window hashes (relative window: pairs, EXPIREAT)")
        return fn

    def rollover_scenario(self):
        stream = "gh:diff:" + h.secrets.token_hex(4)
        r = self.sides[0][2]
        p = {k: pair_of("corr-" + k) for k in ("a", "b", "c", "d", "e")}
        calls = []
        s = redis_ms(r) // 1000 + 1
        # Window s, early: fresh pairs, a gateway-assigned id (''), a pair twice in the call,
        # extra fields, a binary payload.
        wait_phase(r, s, 0, 150)
        calls.append(self.both(stream, 1, 0, [cmd(p["a"], 1), cmd("", 2), cmd(p["a"], 3),
                                              cmd(p["b"], 4, EXTRAS, binary=True)]))
        check_phase(r, s, 400)
        # Same window, late: duplicates of the last call, one fresh pair, '' again.
        wait_phase(r, s, 700, 900)
        calls.append(self.both(stream, 1, 0, [cmd(p["a"], 5), cmd(p["b"], 6, EXTRAS),
                                              cmd(p["c"], 7), cmd("", 8)]))
        # Next window, mid: c is found in the previous window's hash (under 1 s old), a is
        # there too but over 1 s old (fresh again), d is fresh.
        wait_phase(r, s + 1, 350, 600)
        calls.append(self.both(stream, 1, 0, [cmd(p["c"], 9), cmd(p["a"], 10),
                                              cmd(p["d"], 11, EXTRAS[:2])]))
        check_phase(r, s + 1, 900)
        keys_before = sorted(w - s for w in dedupe_keys(r, stream))
        # Two windows on: the remember unlinks window s (the one before the last).
        wait_phase(r, s + 2, 350, 600)
        calls.append(self.both(stream, 1, 0, [cmd(p["e"], 12), cmd(p["c"], 13)]))
        check_phase(r, s + 2, 900)
        return stream, calls, keys_before

    def test_rollover_and_duplicates_answer_alike(self):
        for attempt in range(3):
            try:
                stream, calls, keys_before = self.rollover_scenario()
                break
            except PhaseMissed:
                if attempt == 2:
                    raise
        shapes, entries, hashes = self.check_same(stream, calls, 1)
        # What the scenario was meant to exercise, on the function's side (the module's equal).
        self.assertEqual(shapes[0], [("bulk", 0), ("bulk", 1), ("status", 0), ("bulk", 2)])
        self.assertEqual(shapes[1], [("status", 0), ("status", 2), ("bulk", 3), ("bulk", 4)])
        self.assertEqual(shapes[2], [("status", 3), ("bulk", 5), ("bulk", 6)])
        self.assertEqual(shapes[3], [("bulk", 7), ("bulk", 8)])
        self.assertEqual(keys_before, [0, 1])
        self.assertEqual(sorted(hashes), [1, 2], "window s unlinked, s+1 and s+2 kept")
        self.assertEqual({w: e for w, (_, e) in hashes.items()}, {1: 0, 2: 0},
                         "EXPIREAT (w + 3) * window")
        fields = dict(zip(entries[2][1][::2], entries[2][1][1::2]))
        self.assertEqual(list(fields)[:9], [b"type", b"payload", b"codec", b"correlation_id",
                                            b"player_id", b"connection_id", b"gateway_id",
                                            b"client", b"ts_ms"])
        self.assertEqual(fields[b"payload"], b"\x00\xff\r\n*1\r\n4")
        self.assertEqual(fields[b"payload_codec"], b"msgpack")
        self.assertEqual(fields[b"gateway_id"], GATEWAY.encode())

    def test_planted_ids_previous_window_and_age(self):
        """Ids planted in the window hashes: a duplicate is found in the previous window's hash;
        an id older than the window is no duplicate, in either hash; nor is an id that is not
        one."""
        window = 10
        r = self.sides[0][2]
        poll(lambda: (redis_ms(r) // 1000) % window < window - 3, "a window with 3 s left",
             timeout=window)
        now = redis_ms(r)
        w = now // 1000 // window
        stream = "gh:planted:" + h.secrets.token_hex(4)
        planted = {w - 1: {"4:prev:ok": f"{now - 3000}-0", "4:prev:old": f"{now - 15000}-0",
                           "4:prev:bad": "not-an-id"},
                   w: {"4:curr:old": f"{now - 12000}-5", "4:curr:ok": f"{now - 100}-7",
                       "4:curr:crlf": f"{now - 200}-1\r\n:1", "\0:nul": f"{now - 300}-2",
                       # 21 leading zeros: Lua's tonumber reads past them, so must the module
                       "4:curr:zeros": "0" * 21 + f"{now - 50}-3"}}
        for _, _, rc in self.sides:
            for k, kv in planted.items():
                rc.hset(f"{stream}:dedupe:{k}", mapping=kv)
        pairs = ["4:prev:ok", "4:prev:old", "4:prev:bad", "4:curr:old", "4:curr:ok",
                 "4:curr:crlf", "\0:nul", "4:curr:zeros"]  # (a pair is bytes: a NUL is no end)
        fn, mod = self.both(stream, window, 0, [cmd(pr, i) for i, pr in enumerate(pairs)])
        kinds = [Status, bytes, bytes, bytes, Status, Status, Status, Status]
        self.assertEqual([type(e) for e in fn], kinds, fn)
        self.assertEqual([type(e) for e in mod], kinds, mod)
        # A status line cannot hold CR or LF: a planted one comes back as spaces, as Redis
        # makes the function's, not as a reply of its own.
        self.assertEqual([fn[0], fn[4], fn[5]], [f"{now - 3000}-0".encode(),
                                                 f"{now - 100}-7".encode(),
                                                 f"{now - 200}-1  :1".encode()])
        self.assertEqual([mod[0], mod[4], mod[5]], [fn[0], fn[4], fn[5]])
        for _, conn, _ in self.sides:
            self.assertEqual(conn.call("PING"), Status(b"PONG"))

    def test_maxlen_trims_alike(self):
        """MAXLEN ~ 50 over 600 commands in calls of 100, with duplicates: the same entries
        are left, the stream stays near the bound."""
        stream = "gh:maxlen:" + h.secrets.token_hex(4)
        calls = []
        n = 0
        for c in range(6):
            commands = []
            for _ in range(100):
                commands.append(cmd(pair_of(f"m{n}"), n, EXTRAS if n % 7 == 0 else ()))
                n += 1
            commands.append(cmd(pair_of(f"m{n - 5}"), n))  # a duplicate in the call
            calls.append(self.both(stream, 3600, 50, commands))
        lens = [r.xlen(stream) for _, _, r in self.sides]
        self.assertEqual(lens[0], lens[1])
        self.assertGreaterEqual(lens[1], 50)
        self.assertLessEqual(lens[1], 50 + 100, "~ trims whole nodes (100 entries)")
        # Hashes may straddle an hour boundary: compare the remembered pairs as one mapping.
        got = []
        for (_, _, r), answers in zip(self.sides, zip(*calls)):
            number = Numbering()
            shapes = [shape(a, number) for a in answers]
            entries = [(number(i), f) for i, f in xrange(r, stream)]
            pairs = {}
            for key in dedupe_keys(r, stream).values():
                pairs.update({p: number(i) for p, i in r.hgetall(key).items()})
            got.append((shapes, entries, pairs))
        self.assertEqual(got[0], got[1])
        self.assertEqual(len(got[1][2]), 600)

    def test_empty_call(self):
        """No commands: an empty array, nothing written."""
        stream = "gh:empty:" + h.secrets.token_hex(4)
        self.assertEqual(self.both(stream, 120, 0, []), [[], []])
        for _, _, r in self.sides:
            self.assertEqual(r.exists(stream), 0)
            self.assertEqual(dedupe_keys(r, stream), {})


class Errors(unittest.TestCase):
    """Bad calls: the module refuses what the function refuses, with the same kind of error,
    writes what it writes (nothing, mostly), and Redis answers PING after each."""

    @classmethod
    def setUpClass(cls):
        cls.redis = module_redis()
        cls.conn = Resp(cls.redis.port)
        cls.r = cls.redis.client()

    @classmethod
    def tearDownClass(cls):
        cls.conn.close()
        cls.redis.close()

    def written(self, stream):
        """What a call left: the stream's type and length, its window hashes' pairs."""
        kind = self.r.type(stream).decode()
        length = self.r.xlen(stream) if kind == "stream" else None
        return kind, length, sorted(len(self.r.hkeys(k)) if self.r.type(k) == b"hash" else -1
                                    for k in dedupe_keys(self.r, stream).values())

    def compare(self, head, tail, prepare=None):
        """`head` (stream window maxlen gateway ..., with {s} for the stream) and the commands'
        arguments `tail`, sent to both; returns (function's answer, module's answer)."""
        got = []
        for module in (False, True):
            stream = "gh:err:" + h.secrets.token_hex(4)
            if prepare:
                prepare(stream)
            args = [a.format(s=stream) if isinstance(a, str) else a for a in head]
            argv = (["GATEHOUSE.APPEND"] if module else ["FCALL", "gatehouse_append", "1"]) \
                + args + list(tail)
            if not module and not args:
                argv = ["FCALL", "gatehouse_append", "0"]
            answer = self.conn.call(*argv)
            self.assertEqual(self.conn.call("PING"), Status(b"PONG"), "Redis stays up")
            got.append((answer, self.written(stream)))
        (fn, fn_written), (mod, mod_written) = got
        self.assertEqual(type(fn), type(mod), f"function {fn!r}, module {mod!r}")
        if isinstance(fn, ErrorReply):
            self.assertEqual(fn.split(b" ")[0], mod.split(b" ")[0], (fn, mod))
        self.assertEqual(fn_written, mod_written, "what the call wrote")
        return fn, mod

    def test_usage(self):
        good = cmd(pair_of("u1"), 1)
        for head in ([], ["{s}"], ["{s}", "60"], ["{s}", "60", "0"], ["{s}", "0", "0", "gw"],
                     ["{s}", "-1", "0", "gw"], ["{s}", "x", "0", "gw"], ["{s}", "", "0", "gw"]):
            with self.subTest(head=head):
                fn, mod = self.compare(head, good if len(head) == 4 else [])
                self.assertIsInstance(mod, ErrorReply)

    def test_window_past_its_bound(self):
        """A window over 10^9 s (the gateway's bound is a day) is a usage error for the module,
        before anything is written, and Redis stays up (the function takes it)."""
        stream = "gh:bigwindow:" + h.secrets.token_hex(4)
        for window in ("1000000001", "9223372036854775807"):
            answer = self.conn.call(*append_argv(True, stream, window, 0,
                                                 [cmd(pair_of("w"), 1)]))
            self.assertIsInstance(answer, ErrorReply)
            self.assertTrue(answer.startswith(b"ERR usage"), answer)
        self.assertEqual(self.r.exists(stream), 0)
        ok = self.conn.call(*append_argv(True, stream, "1000000000", 0, [cmd(pair_of("w"), 1)]))
        self.assertIsInstance(ok[0], bytes)
        self.assertEqual(self.conn.call("PING"), Status(b"PONG"))

    def test_refused_in_a_cluster(self):
        """In Redis Cluster the window hashes (not declared keys) could be another node's: the
        module refuses the call, writes nothing, and Redis stays up."""
        # (a cluster bus port of its own: the default, the port + 10000, fails above 55535)
        node = module_redis(extra=["--cluster-enabled", "yes", "--cluster-config-file",
                                   "nodes.conf", "--cluster-port", str(free_port())],
                            library=False)
        try:
            r = node.client()
            r.execute_command("CLUSTER", "ADDSLOTSRANGE", "0", "16383")
            conn = Resp(node.port)
            poll(lambda: b"cluster_state:ok" in conn.call("CLUSTER", "INFO"),
                 "the one-node cluster up")
            try:
                answer = conn.call(*append_argv(True, "gh:cluster", 60, 0, [cmd(pair_of("c"), 1)]))
                self.assertIsInstance(answer, ErrorReply)
                self.assertIn(b"Redis Cluster", answer)
                self.assertEqual(conn.call("PING"), Status(b"PONG"))
            finally:
                conn.close()
            self.assertEqual(r.exists("gh:cluster"), 0)
        finally:
            node.close()

    def test_bad_command_counts(self):
        v = values(1)
        head = ["{s}", "60", "0", "gw"]
        for name, tail in (("odd", ["4:p7:x", "1", *v, "traceparent"]),
                           ("negative", ["4:p7:x", "-2", *v]),
                           ("not a number", ["4:p7:x", "two", *v]),
                           ("past the end", ["4:p7:x", "4", *v, "traceparent", "t"]),
                           ("values missing", ["4:p7:x", "0", *v[:7]]),
                           ("pair only", ["4:p7:x"]),
                           ("second command short", [*cmd("4:p7:y", 2), "4:p7:z", "0"]),
                           # at + 9 + count would overflow: two such commands once read
                           # past the arguments (Redis crashed)
                           ("huge", ["4:p7:x", str(2**63 - 2), *v[:7], str(2**63 - 2)]),
                           ("huge, last", [*cmd("4:p7:y", 2), "4:p7:x", str(2**63 - 2),
                                           *v])):
            with self.subTest(name):
                fn, mod = self.compare(head, tail)
                self.assertIsInstance(mod, ErrorReply)
                self.assertEqual(mod, b"ERR gatehouse_append: a command's argument count is wrong")

    def test_bad_maxlen(self):
        """A MAXLEN XADD refuses: nothing appended, nothing remembered."""
        for maxlen in ("abc", "-1", "1.5", "99999999999999999999"):
            with self.subTest(maxlen=maxlen):
                fn, mod = self.compare(["{s}", "60", maxlen, "gw"],
                                       [*cmd(pair_of("b1"), 1), *cmd("", 2)])
                self.assertIsInstance(mod, ErrorReply)

    def test_wrong_type_stream(self):
        def prepare(stream):
            self.r.set(stream, "not a stream")
        fn, mod = self.compare(["{s}", "60", "0", "gw"], cmd(pair_of("w1"), 1), prepare)
        self.assertTrue(mod.startswith(b"WRONGTYPE"), mod)

    def test_wrong_type_window_hash(self):
        """A key of another type where this window's hash should be: refused before any write
        (the function's HMGET fails)."""
        def prepare(stream):
            w = redis_ms(self.r) // 1000 // 3600
            for k in (w, w + 1):  # should the hour turn meanwhile
                self.r.set(f"{stream}:dedupe:{k}", "not a hash")
        fn, mod = self.compare(["{s}", "3600", "0", "gw"], cmd(pair_of("w2"), 1), prepare)
        self.assertTrue(mod.startswith(b"WRONGTYPE"), mod)

    def test_exhausted_stream_ids(self):
        """The last possible id taken: XADD refuses, Redis stays up."""
        def prepare(stream):
            self.r.xadd(stream, {"x": "y"}, id="18446744073709551615-18446744073709551615")
        fn, mod = self.compare(["{s}", "60", "0", "gw"],
                               [*cmd("", 1), *cmd(pair_of("x1"), 2)], prepare)
        self.assertIsInstance(mod, ErrorReply)

    def test_out_of_memory(self):
        """Over maxmemory (noeviction) both refuse, as writes that may grow memory."""
        self.r.config_set("maxmemory", "1")
        try:
            fn, mod = self.compare(["{s}", "60", "0", "gw"], cmd(pair_of("o1"), 1))
            self.assertTrue(mod.startswith(b"OOM"), mod)
        finally:
            self.r.config_set("maxmemory", "0")

    def test_huge_call(self):
        """5000 commands in one call (the gateway sends at most 256)."""
        tail = []
        for i in range(5000):
            tail += cmd(pair_of(f"h{i % 4000}"), i, EXTRAS if i % 3 == 0 else ())
        stream = "gh:huge:" + h.secrets.token_hex(4)
        answer = self.conn.call(*append_argv(True, stream, 60, 1000, [tail]))
        self.assertEqual(self.conn.call("PING"), Status(b"PONG"))
        self.assertNotIsInstance(answer, ErrorReply, answer)
        self.assertEqual(len(answer), 5000)
        self.assertEqual(sum(isinstance(a, Status) for a in answer), 1000)
        self.assertEqual(answer[4000], answer[0])
        self.assertLessEqual(self.r.xlen(stream), 1100)
        self.assertEqual(sum(self.r.hlen(k) for k in dedupe_keys(self.r, stream).values()),
                         4000)
        fn = self.conn.call(*append_argv(False, "f" + stream, 60, 1000, [tail]))
        self.assertEqual(self.conn.call("PING"), Status(b"PONG"))
        print(f"\n  (the function, 5000 commands in one call: {repr(fn)[:160]})")


class Unload(unittest.TestCase):
    """MODULE UNLOAD takes the module out of the process (nothing of it keeps the file mapped,
    as GCC's STB_GNU_UNIQUE symbols would), and MODULE LOAD brings a working one back."""

    def test_unload_unmaps_and_load_works_again(self):
        path = gatehouse_module(h.SERVER_BINARY)
        node = module_redis(extra=["--enable-module-command", "yes"], library=False)
        try:
            maps = f"/proc/{node.proc.pid}/maps"

            def mapped():
                with open(maps, encoding="utf-8", errors="replace") as f:
                    return os.path.basename(path) in f.read()

            conn = Resp(node.port)
            try:
                self.assertTrue(mapped())
                self.assertIsInstance(conn.call(*append_argv(
                    True, "gh:unload", 60, 0, [cmd(pair_of("u"), 1)]))[0], bytes)
                self.assertEqual(conn.call("MODULE", "UNLOAD", "gatehouse"), Status(b"OK"))
                self.assertFalse(mapped(), "the module's file still mapped after MODULE UNLOAD")
                self.assertEqual(conn.call("MODULE", "LOAD", path), Status(b"OK"))
                again = conn.call(*append_argv(True, "gh:unload", 60, 0, [cmd(pair_of("u"), 1)]))
                self.assertIsInstance(again[0], Status, "the pair remembered before the unload")
            finally:
                conn.close()
        finally:
            node.close()


class ForOtherClients(unittest.TestCase):
    """An append is an XADD to everyone else: blocked readers wake, keyspace events fire, WATCH
    on the stream is invalidated (and, as with the function, not by a call of duplicates)."""

    @classmethod
    def setUpClass(cls):
        cls.redis = module_redis()
        cls.conn = Resp(cls.redis.port)
        cls.r = cls.redis.client()

    @classmethod
    def tearDownClass(cls):
        cls.conn.close()
        cls.redis.close()

    def blocked_read(self, read):
        """Runs `read(client)` blocked in a thread, appends two commands once Redis counts it
        blocked, and returns (the reader's result, the append's answer)."""
        stream = "gh:blocked:" + h.secrets.token_hex(4)
        self.r.xgroup_create(stream, "workers", id="$", mkstream=True)
        reader = self.redis.client()  # its 5 s socket timeout outlasts BLOCK
        got = []
        t = threading.Thread(target=lambda: got.append(read(reader, stream)))
        before = self.r.info("clients")["blocked_clients"]
        t.start()
        poll(lambda: self.r.info("clients")["blocked_clients"] > before, "the reader blocked")
        answer = self.conn.call(*append_argv(True, stream, 60, 0,
                                             [cmd(pair_of("bl1"), 1), cmd("", 2)]))
        t.join(WAIT_S)
        self.assertFalse(t.is_alive(), "the blocked reader was not woken")
        reader.close()
        return got[0], answer

    def test_xreadgroup_block_is_woken(self):
        got, answer = self.blocked_read(lambda c, s: c.xreadgroup(
            "workers", "w1", {s: ">"}, count=10, block=3000))
        self.assertTrue(got, "XREADGROUP timed out instead")
        self.assertEqual([i for i, _ in got[0][1]], answer)

    def test_xread_block_is_woken(self):
        got, answer = self.blocked_read(lambda c, s: c.xread({s: "$"}, count=10,
                                                             block=3000))
        self.assertTrue(got, "XREAD timed out instead")
        self.assertEqual([i for i, _ in got[0][1]], answer[:len(got[0][1])])
        self.assertGreaterEqual(len(got[0][1]), 1)

    def keyspace_events(self, calls):
        """The key events (event, key with the stream's name as S) each list of calls fires."""
        self.r.config_set("notify-keyspace-events", "KEA")
        try:
            out = []
            for stream, argvs in calls:
                sub = self.redis.client().pubsub()
                sub.psubscribe("__keyevent@0__:*")
                sub.subscribe("done")
                poll(lambda: sub.get_message(timeout=0.1) is None and
                     self.r.pubsub_numpat() >= 1, "subscribed")
                for argv in argvs:
                    self.assertNotIsInstance(self.conn.call(*argv), ErrorReply)
                self.r.publish("done", "1")
                events = []
                deadline = time.monotonic() + WAIT_S
                while time.monotonic() < deadline:
                    m = sub.get_message(timeout=0.2)
                    if m is None:
                        continue
                    if m["type"] == "message" and m["channel"] == b"done":
                        break
                    if m["type"] == "pmessage":
                        events.append((m["channel"].decode().split(":", 1)[1],
                                       m["data"].decode().replace(stream, "S")))
                else:
                    self.fail("no done message")
                sub.close()
                out.append(events)
            return out
        finally:
            self.r.config_set("notify-keyspace-events", "")

    def test_keyspace_events_as_the_function(self):
        calls = []
        for module in (False, True):
            stream = "gh:events:" + h.secrets.token_hex(4)
            commands = [cmd(pair_of("ev1"), 1), cmd("", 2), cmd(pair_of("ev1"), 3)]
            calls.append((stream, [append_argv(module, stream, 3600, 0, commands),
                                   append_argv(module, stream, 3600, 0,
                                               [cmd(pair_of("ev1"), 4), cmd(pair_of("ev2"), 5)])]))
        before = redis_ms(self.r) // 3600000
        fn, mod = self.keyspace_events(calls)
        after = redis_ms(self.r) // 3600000  # (the calls may straddle an hour's end)
        self.assertEqual(fn, mod)
        self.assertEqual([e for e, _ in fn].count("xadd"), 3, fn)
        hsets = {k for e, k in fn if e == "hset"}
        self.assertTrue(hsets and hsets <= {f"S:dedupe:{w}" for w in (before, after)}, fn)

    def test_trim_fires_xtrim(self):
        stream = "gh:evtrim:" + h.secrets.token_hex(4)
        commands = [cmd("", i) for i in range(250)]
        (events,) = self.keyspace_events([(stream,
                                           [append_argv(True, stream, 60, 10, commands)])])
        self.assertEqual([e for e, _ in events].count("xadd"), 250)
        self.assertIn(("xtrim", "S"), events)

    def watch_then(self, module, stream, commands):
        """WATCH the stream, the call on another connection, then MULTI/EXEC: True when EXEC
        ran (the WATCH held)."""
        w = Resp(self.redis.port)
        try:
            self.assertEqual(w.call("WATCH", stream), Status(b"OK"))
            self.assertNotIsInstance(self.conn.call(*append_argv(module, stream, 3600, 0,
                                                                 commands)), ErrorReply)
            w.call("MULTI")
            w.call("PING")
            return w.call("EXEC") is not None
        finally:
            w.close()

    def test_watch(self):
        for module in (False, True):
            with self.subTest(module=module):
                stream = "gh:watch:" + h.secrets.token_hex(4)
                self.r.xadd(stream, {"x": "y"})
                self.assertFalse(self.watch_then(module, stream, [cmd(pair_of("wa"), 1)]),
                                 "an append invalidates a WATCH on the stream")
                self.assertTrue(self.watch_then(module, stream, [cmd(pair_of("wa"), 2)]),
                                "a duplicate appends nothing: the WATCH holds")
                self.assertTrue(self.watch_then(module, stream, []), "nor does an empty call")


class Acl(unittest.TestCase):
    """A gateway's user needs +gatehouse.append and the stream's key, no more. The module writes
    the window hashes with RedisModule_Call without the 'C' flag, so they are not checked
    against the user's key patterns (the function's redis.call checks them): a user whose
    pattern holds only the stream still has its pairs remembered."""

    @classmethod
    def setUpClass(cls):
        cls.redis = module_redis()
        cls.r = cls.redis.client()
        cls.r.execute_command("ACL", "SETUSER", "gateway", "on", ">gw-pass", "resetkeys",
                              "~gh:acl:*", "resetchannels", "-@all", "+gatehouse.append",
                              "+ping")
        cls.r.execute_command("ACL", "SETUSER", "narrow", "on", ">nw-pass", "resetkeys",
                              "~gh:narrow", "-@all", "+gatehouse.append", "+fcall", "+xadd",
                              "+hmget", "+hset", "+unlink", "+expireat", "+time")
        cls.r.execute_command("ACL", "SETUSER", "reader", "on", ">rd-pass", "resetkeys",
                              "~gh:acl:*", "-@all", "+@read", "+fcall")

    @classmethod
    def tearDownClass(cls):
        cls.redis.close()

    def as_user(self, user, password):
        conn = Resp(self.redis.port)
        self.addCleanup(conn.close)
        self.assertEqual(conn.call("AUTH", user, password), Status(b"OK"))
        return conn

    def test_allowed_user_appends(self):
        conn = self.as_user("gateway", "gw-pass")
        answer = conn.call(*append_argv(True, "gh:acl:s", 60, 100,
                                        [cmd(pair_of("acl1"), 1), cmd(pair_of("acl1"), 2)]))
        self.assertEqual([type(a) for a in answer], [bytes, Status], answer)
        self.assertEqual(conn.call("PING"), Status(b"PONG"))
        self.assertEqual(self.r.xlen("gh:acl:s"), 1)

    def test_refused(self):
        conn = self.as_user("gateway", "gw-pass")
        answer = conn.call(*append_argv(True, "other:s", 60, 0, [cmd("", 1)]))
        self.assertTrue(isinstance(answer, ErrorReply) and answer.startswith(b"NOPERM"), answer)
        self.assertTrue(conn.call("XADD", "gh:acl:s", "*", "a", "b").startswith(b"NOPERM"))
        conn = self.as_user("reader", "rd-pass")
        answer = conn.call(*append_argv(True, "gh:acl:s", 60, 0, [cmd("", 1)]))
        self.assertTrue(isinstance(answer, ErrorReply) and answer.startswith(b"NOPERM"), answer)
        self.assertEqual(self.r.exists("other:s"), 0)

    def test_window_hashes_are_not_checked(self):
        conn = self.as_user("narrow", "nw-pass")
        fn = conn.call(*append_argv(False, "gh:narrow", 60, 0, [cmd(pair_of("n1"), 1)]))
        self.assertIsInstance(fn, ErrorReply)
        self.assertIn(b"can't access", fn)
        mod = conn.call(*append_argv(True, "gh:narrow", 60, 0, [cmd(pair_of("n1"), 1)]))
        self.assertEqual([type(a) for a in mod], [bytes], mod)
        self.assertEqual(len(dedupe_keys(self.r, "gh:narrow")), 1)


def state(r, stream):
    """Everything a call leaves, ids included: entries, the stream's counters, every window
    hash's pairs and expiry."""
    info = r.xinfo_stream(stream)
    counters = {k: info.get(k) for k in ("length", "last-generated-id", "max-deleted-entry-id",
                                         "entries-added", "recorded-first-entry-id")}
    hashes = {k: (r.hgetall(k), r.execute_command("PEXPIRETIME", k))
              for k in dedupe_keys(r, stream).values()}
    return xrange(r, stream), counters, hashes


class ReplicationAndAof(unittest.TestCase):
    """What the module propagates (each XADD with its id, XTRIM, HSET, UNLINK, EXPIREAT) makes
    a replica, and the primary restarted from its AOF, hold what the primary held."""

    def batches(self, conn, r, stream):
        """Calls over three 1 s windows: fresh, '' and duplicate commands, MAXLEN ~ 150
        trimming, a window hash unlinked."""
        n = 0
        start = redis_ms(r) // 1000
        for s in range(start + 1, start + 4):
            wait_phase(r, s, 0, 1000)
            for _ in range(2):
                commands = []
                for _ in range(120):
                    pair = "" if n % 5 == 0 else pair_of(f"r{n // 2}")  # pairs twice
                    commands.append(cmd(pair, n, EXTRAS if n % 3 == 0 else ()))
                    n += 1
                answer = conn.call(*append_argv(True, stream, 1, 150, commands))
                self.assertNotIsInstance(answer, ErrorReply, answer)
        # In a transaction and from a script, too (what is propagated is wrapped in those).
        argv = append_argv(True, stream, 1, 150, [cmd(pair_of("tx1"), n), cmd("", n + 1),
                                                  cmd(pair_of("tx1"), n + 2)])
        self.assertEqual(conn.call("MULTI"), Status(b"OK"))
        self.assertEqual(conn.call(*argv), Status(b"QUEUED"))
        (answer,) = conn.call("EXEC")
        self.assertEqual([type(a) for a in answer], [bytes, bytes, Status], answer)
        answer = conn.call("EVAL", "return redis.call('GATEHOUSE.APPEND', KEYS[1], unpack(ARGV))",
                           1, *argv[1:5], *cmd(pair_of("tx2"), n + 3), *cmd(pair_of("tx2"), n + 4),
                           *cmd("", n + 5))
        self.assertEqual([type(a) for a in answer], [bytes, Status, bytes], answer)
        self.assertLessEqual(r.xlen(stream), 250)

    def test_replicas_and_aof_hold_the_same(self):
        """A replica with the module and one without (docs/deployment.md: replicas need not
        load it) hold what the primary holds; the AOF replays it, ids included."""
        primary = module_redis(extra=["--appendonly", "yes", "--appendfsync", "always",
                                      "--repl-diskless-sync-delay", "0"],
                               library=False)
        replicas = [module_redis(library=False), RedisServer().start()]
        try:
            rp = primary.client()
            for replica in replicas:
                rr = replica.client()
                rr.replicaof("127.0.0.1", primary.port)
                poll(lambda: rr.info("replication")["master_link_status"] == "up",
                     "replica up")
            conn = Resp(primary.port)
            self.addCleanup(conn.close)
            stream = "gh:repl:" + h.secrets.token_hex(4)
            self.batches(conn, rp, stream)
            self.assertEqual(rp.execute_command("WAIT", 2, int(WAIT_S * 1000)), 2)
            want = state(rp, stream)
            self.assertEqual(len(want[2]), 2, "two window hashes left (the oldest unlinked)")
            for replica, name in zip(replicas, ("with the module", "without")):
                self.assertEqual(state(replica.client(), stream), want, f"the replica {name}")
            on_replica = Resp(replicas[0].port)
            self.addCleanup(on_replica.close)
            answer = on_replica.call(*append_argv(True, stream, 1, 0, [cmd("", 1)]))
            self.assertTrue(isinstance(answer, ErrorReply) and answer.startswith(b"READONLY"),
                            answer)
            for replica in replicas:
                replica.close()
            primary.kill()  # what the AOF holds, nothing saved at exit
            primary.start()
            r = primary.client()
            got = state(r, stream)
            self.assertEqual(got[:2], want[:2], "the AOF replayed")
            # (a window hash may have expired meanwhile on a slow machine: 2 to 3 s after)
            now = redis_ms(r)
            self.assertEqual(got[2], {k: v for k, v in want[2].items() if v[1] > now},
                             "the AOF replayed: window hashes")
        finally:
            for replica in replicas:
                replica.close()
            primary.close()


if __name__ == "__main__":
    h.run_main()
