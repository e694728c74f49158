#!/usr/bin/env python3
"""The example services end to end: a real redis-server, gatehouse-server with --redis, the C++
service (gatehouse-example-redis-service) and echo_service.py, and WebSocket clients.

Usage: test_redis_service.py PATH/TO/gatehouse-server PATH/TO/gatehouse-example-redis-service
       [unittest args]

The documented path (docs/services.md) is checked as a client sees it: command -> ack with a
stream_id -> the service's "echo" update, with the command's correlation_id, that stream_id and
the original payload, at the sending connection and at no other connection of the player; and
the group has nothing pending afterwards (every entry acknowledged). The ack and the echo
travel different paths (the XADD reply, the service's PUBLISH), so either may arrive first.

The harness (tests/server/gatehouse_harness.py) and the redis-server fixture
(tests/server/redis_fixture.py) are the server suites' own. Only 127.0.0.1; every wait bounded.
"""

import asyncio
import base64
import os
import secrets
import signal
import subprocess
import sys
import tempfile
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "tests", "server"))

import gatehouse_harness as h  # noqa: E402
from gatehouse_harness import Client, mp_unpack, stream_id_key  # noqa: E402
from redis_fixture import RedisServer  # noqa: E402

SERVICE_BINARY = ""  # argv[2], taken out before the harness reads argv
PYTHON_SERVICE = os.path.join(HERE, "echo_service.py")
PYTHON = "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else sys.executable

# Not the defaults, so that both flags are shown to reach the server and the services.
STREAM = "test:commands"
CHANNEL = "test_updates"
GATEWAY_ID = "gw-example-1"

SERVICE_READY_TIMEOUT_S = 10.0
SERVICE_STOP_TIMEOUT_S = 5.0  # XREADGROUP blocks 500 ms at a time: a stop takes < 1 s
BUS_READY_TIMEOUT_S = 15.0  # the gateway's reconnect backoff is capped at 2 s


class Service:
    """One service process (the C++ binary or echo_service.py); stdout/stderr to temp files."""

    def __init__(self, argv):
        self.argv = argv
        self.proc = None

    def start(self):
        self._out = tempfile.TemporaryFile()
        self._err = tempfile.TemporaryFile()
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        env.setdefault("ASAN_OPTIONS", "abort_on_error=0:detect_leaks=1")
        self.proc = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL, stdout=self._out,
                                     stderr=self._err, env=env)
        deadline = time.monotonic() + SERVICE_READY_TIMEOUT_S
        while time.monotonic() < deadline:
            if " ready" in self.stdout_text():
                return self
            if self.proc.poll() is not None:
                break
            time.sleep(0.02)
        code = self.proc.poll()
        self.kill()
        raise AssertionError(f"service not ready within {SERVICE_READY_TIMEOUT_S} s (exit "
                             f"{code}): {self.argv}; stderr: {self.stderr_text()[-1500:]}")

    def stop(self, sig=signal.SIGTERM):
        """Signals the service; its exit code, or None when it had to be killed."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=SERVICE_STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.kill()
                return None
        return self.proc.returncode

    def wait(self, timeout):
        """Waits for the service to exit by itself; its exit code, or None if it did not."""
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None

    def kill(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=5)

    def stdout_text(self):
        self._out.seek(0)
        return self._out.read().decode("utf-8", "replace")

    def stderr_text(self):
        self._err.seek(0)
        return self._err.read().decode("utf-8", "replace")


def cpp_service(redis_url, group, *extra):
    return Service([SERVICE_BINARY, "--redis", redis_url, "--command-stream", STREAM,
                    "--updates-channel", CHANNEL, "--group", group, *extra])


def python_service(redis_url, group, *extra):
    return Service([PYTHON, PYTHON_SERVICE, "--redis", redis_url, "--command-stream", STREAM,
                    "--updates-channel", CHANNEL, "--group", group, *extra])


def wait_until(predicate, timeout, what):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"{what}: not within {timeout} s")
        time.sleep(0.05)


class RedisGatewayCase(h.AsyncCase):
    """One redis-server and one gatehouse-server --redis per class."""

    @classmethod
    def setUpClass(cls):
        cls.redis = RedisServer().start()
        try:
            cls.server = h.Server("--redis", cls.redis.url, "--command-stream", STREAM,
                                  "--updates-channel", CHANNEL, "--gateway-id", GATEWAY_ID,
                                  binary=h.SERVER_BINARY).start()
        except Exception:
            cls.redis.close()
            raise
        cls.wait_bus_ready()

    @classmethod
    def wait_bus_ready(cls):
        wait_until(lambda: cls.server.http("GET", "/ready")[0] == 200, BUS_READY_TIMEOUT_S,
                   "GET /ready answering 200 (gateway connected to Redis)")

    @classmethod
    def tearDownClass(cls):
        try:
            code = cls.server.stop()
            report = cls.server.sanitizer_report()
            if report:
                raise AssertionError(f"sanitizer report in the server's stderr:\n{report}")
            if code != 0:
                raise AssertionError(f"server exit code {code} after SIGTERM; stderr tail: "
                                     f"{cls.server.stderr_text()[-1500:]}")
        finally:
            cls.redis.close()

    # -- helpers -------------------------------------------------------------------------------
    def group(self):
        """A group of its own for each test: services of other tests never share its entries."""
        return "g-" + secrets.token_hex(4)

    def create_group(self, group):
        self.redis.client().xgroup_create(STREAM, group, id="$", mkstream=True)

    def start(self, service):
        service.start()
        self.addCleanup(service.kill)
        return service

    def stop_cleanly(self, service):
        code = service.stop()
        self.assertEqual(code, 0, f"service exit code after SIGTERM (None: killed after "
                                  f"{SERVICE_STOP_TIMEOUT_S} s); stderr: "
                                  f"{service.stderr_text()[-1500:]}")
        self.assertNotIn("Sanitizer", service.stderr_text())

    def pending(self, group):
        return self.redis.client().xpending(STREAM, group)["pending"]

    def assert_nothing_pending(self, group):
        # The service acknowledges just after it publishes, so the client may see the echo a
        # moment before the XACK lands: poll, bounded.
        deadline = time.monotonic() + 3.0
        while self.pending(group) and time.monotonic() < deadline:
            time.sleep(0.05)
        self.assertEqual(self.pending(group), 0,
                         self.redis.client().xpending_range(STREAM, group, "-", "+", 10))

    async def player(self, name, codec="json"):
        c = await Client.player(self.server, name, codec)
        self.assertEqual(c.welcome["type"], "welcome", c.welcome)
        return c

    async def send_command(self, client, payload, correlation_id, type_="player_action",
                           **kw):
        await client.send(type_, payload, correlation_id, **kw)

    async def ack_and_echo(self, client, correlation_id):
        """Reads until both the ack and the echo of `correlation_id` arrived (either order);
        any other frame fails the test. Returns (ack, echo)."""
        ack = echo = None
        deadline = time.monotonic() + h.RECV_TIMEOUT_S
        while ack is None or echo is None:
            left = deadline - time.monotonic()
            if left <= 0:
                self.fail(f"{correlation_id}: ack {ack!r:.300}, echo {echo!r:.300} within "
                          f"{h.RECV_TIMEOUT_S} s")
            env = await client.recv(left)
            self.assertEqual(env.get("correlation_id"), correlation_id, env)
            if env["type"] == "ack" and ack is None:
                ack = env
            elif env["type"] == "echo" and echo is None:
                echo = env
            else:
                self.fail(f"unexpected frame {env!r:.500}")
        stream_id_key(ack["payload"]["stream_id"])
        return ack, echo

    async def roundtrip(self, client, payload, correlation_id, codec="json", type_="move",
                        **kw):
        """Sends one command, checks ack and echo, returns the echo's payload."""
        await self.send_command(client, payload, correlation_id, type_, **kw)
        ack, echo = await self.ack_and_echo(client, correlation_id)
        # The client gets {type, payload, correlation_id} only: no routing keys.
        self.assertEqual(echo["_keys"], ["correlation_id", "payload", "type"], echo)
        p = echo["payload"]
        self.assertEqual(p["stream_id"], ack["payload"]["stream_id"], echo)
        self.assertEqual(p["received_type"], type_, echo)
        self.assertEqual(p["gateway_id"], GATEWAY_ID, echo)
        self.assertEqual(p["codec"], codec, echo)
        return p


class CppService(RedisGatewayCase):
    async def test_echo_to_the_sending_connection_only_in_each_codec(self):
        group = self.group()
        service = self.start(cpp_service(self.redis.url, group))
        a1 = await self.player("cpp-a")
        a2 = await self.player("cpp-a")  # the same player, another connection
        m = await self.player("cpp-m", "msgpack")
        pb = await self.player("cpp-p", "protobuf")
        try:
            move = {"move": [1, 2], "s": "\u00e9\u2603", "n": None, "f": 1.5}
            p = await self.roundtrip(a1, move, "c-json-1")
            self.assertEqual(p["payload"], move)
            await a2.expect_nothing(0.3)  # targeted to a1's connection_id

            p = await self.roundtrip(a2, [3, 4], "c-json-2")
            self.assertEqual(p["payload"], [3, 4])
            await a1.expect_nothing(0.3)

            # MessagePack with bytes has no JSON form: it reaches the stream as codec msgpack,
            # and the service echoes those bytes as base64.
            blob = {"bin": b"\x00\x01\xfe\xff", "k": 7}
            p = await self.roundtrip(m, blob, "c-mp-1", codec="msgpack")
            self.assertEqual(mp_unpack(base64.b64decode(p["payload"])), blob)

            # Protobuf bytes named by a payload_codec other than json/msgpack pass through
            # unchanged (codec protobuf); NUL bytes included, so the service must be binary-safe.
            raw = b"\x08\x96\x01\x00\x12\x00\xff"
            p = await self.roundtrip(pb, raw, "c-pb-1", codec="protobuf",
                                     payload_codec="game.Move")
            self.assertEqual(base64.b64decode(p["payload"]), raw)

            self.assert_nothing_pending(group)
        finally:
            for c in (a1, a2, m, pb):
                await c.close()
        self.stop_cleanly(service)

    async def test_commands_queued_before_the_service_started(self):
        # The group starts at "$" when it is first created: a service sees what is appended
        # after that. Created here first (as a deployment does once), the commands wait in the
        # stream for the service, which then answers them and stops by itself (--max-commands).
        group = self.group()
        self.create_group(group)
        c = await self.player("cpp-q")
        try:
            acks = []
            for i in range(3):
                await self.send_command(c, {"i": i}, f"q-{i}")
                ack = await c.recv()
                self.assertEqual((ack["type"], ack["correlation_id"]), ("ack", f"q-{i}"), ack)
                acks.append(ack["payload"]["stream_id"])
            self.assertEqual(self.pending(group), 0)
            service = self.start(cpp_service(self.redis.url, group, "--max-commands", "3"))
            for i in range(3):
                echo = await c.recv()
                self.assertEqual((echo["type"], echo["correlation_id"]), ("echo", f"q-{i}"), echo)
                self.assertEqual(echo["payload"]["stream_id"], acks[i], echo)
                self.assertEqual(echo["payload"]["payload"], {"i": i}, echo)
            code = await asyncio.to_thread(service.wait, SERVICE_STOP_TIMEOUT_S)
            self.assertEqual(code, 0, f"--max-commands 3: exit code {code}; stderr: "
                                      f"{service.stderr_text()[-1000:]}")
            self.assert_nothing_pending(group)
            await c.expect_nothing(0.3)
        finally:
            await c.close()

    async def test_restart_answers_its_own_pending_entries(self):
        # A consumer that read an entry and died before answering: a restart under the same
        # consumer name reads its pending list first.
        group = self.group()
        self.create_group(group)
        c = await self.player("cpp-r")
        try:
            await self.send_command(c, {"r": 1}, "r-1")
            ack = await c.recv()
            self.assertEqual(ack["type"], "ack", ack)
            got = self.redis.client().xreadgroup(group, "svc-fixed", {STREAM: ">"}, count=10)
            self.assertEqual([e[0].decode() for e in got[0][1]], [ack["payload"]["stream_id"]])
            self.assertEqual(self.pending(group), 1)
            service = self.start(cpp_service(self.redis.url, group, "--consumer", "svc-fixed",
                                             "--claim-idle-ms", "0"))
            echo = await c.recv()
            self.assertEqual((echo["type"], echo["correlation_id"]), ("echo", "r-1"), echo)
            self.assertEqual(echo["payload"]["stream_id"], ack["payload"]["stream_id"])
            self.assert_nothing_pending(group)
            self.stop_cleanly(service)
        finally:
            await c.close()

    async def test_takes_over_the_entries_of_a_dead_consumer(self):
        group = self.group()
        self.create_group(group)
        c = await self.player("cpp-d")
        try:
            await self.send_command(c, "d", "d-1")
            ack = await c.recv()
            self.assertEqual(ack["type"], "ack", ack)
            self.redis.client().xreadgroup(group, "dead-consumer", {STREAM: ">"}, count=10)
            self.assertEqual(self.pending(group), 1)
            time.sleep(0.3)  # idle longer than --claim-idle-ms
            service = self.start(cpp_service(self.redis.url, group, "--claim-idle-ms", "200"))
            echo = await c.recv()
            self.assertEqual((echo["type"], echo["correlation_id"]), ("echo", "d-1"), echo)
            self.assertEqual(echo["payload"]["payload"], "d")
            self.assert_nothing_pending(group)
            self.stop_cleanly(service)
            self.assertIn("took over 1 entries", service.stderr_text())
        finally:
            await c.close()

    async def test_sigint_stops_it_too(self):
        service = self.start(cpp_service(self.redis.url, self.group()))
        started = time.monotonic()
        self.assertEqual(service.stop(signal.SIGINT), 0, service.stderr_text()[-1000:])
        self.assertLess(time.monotonic() - started, 3.0)


class CppServiceAcrossRedisRestart(RedisGatewayCase):
    async def test_reconnects_and_recreates_its_group(self):
        group = self.group()
        service = self.start(cpp_service(self.redis.url, group))
        c = await self.player("cpp-x")
        try:
            p = await self.roundtrip(c, {"before": True}, "x-1")
            self.assertEqual(p["payload"], {"before": True})

            # A crash of Redis that loses everything: stream and group are gone when it comes
            # back on the same port. The service reconnects and creates its group again.
            self.redis.kill()
            self.redis.start()
            self.wait_bus_ready()

            def group_exists():
                try:
                    groups = self.redis.client().xinfo_groups(STREAM)
                except Exception:  # no stream yet
                    return False
                return any(g["name"].decode() == group for g in groups)

            wait_until(group_exists, 10.0, "the service re-creating its group")
            # The gateway's update subscription came back too: it closes the connection open
            # all along with 1012 so that a client resumes what it missed (docs/protocol.md 6.4);
            # the player reconnects, as every client does.
            code, got = await c.wait_closed()
            self.assertEqual((code, got), (1012, []))
            await c.close()
            c = await self.player("cpp-x")
            p = await self.roundtrip(c, {"after": True}, "x-2")
            self.assertEqual(p["payload"], {"after": True})
            self.assert_nothing_pending(group)
            self.assertIn("reconnected", service.stderr_text())
        finally:
            await c.close()
        self.stop_cleanly(service)


class PythonService(RedisGatewayCase):
    async def test_echo_to_the_sending_connection_only(self):
        group = self.group()
        service = self.start(python_service(self.redis.url, group))
        a1 = await self.player("py-a")
        a2 = await self.player("py-a")
        m = await self.player("py-m", "msgpack")
        try:
            move = {"move": [5, 6], "s": "\u00e9"}
            p = await self.roundtrip(a1, move, "py-1")
            self.assertEqual(p["payload"], move)
            await a2.expect_nothing(0.3)

            blob = {"bin": b"\x00\xff"}
            p = await self.roundtrip(m, blob, "py-2", codec="msgpack")
            self.assertEqual(mp_unpack(base64.b64decode(p["payload"])), blob)
            self.assert_nothing_pending(group)
        finally:
            for c in (a1, a2, m):
                await c.close()
        self.stop_cleanly(service)

    async def test_commands_queued_before_the_service_started(self):
        group = self.group()
        self.create_group(group)
        c = await self.player("py-q")
        try:
            for i in range(2):
                await self.send_command(c, i, f"pq-{i}")
                self.assertEqual((await c.recv())["type"], "ack")
            service = self.start(python_service(self.redis.url, group, "--consumer", "py-1"))
            for i in range(2):
                echo = await c.recv()
                self.assertEqual((echo["type"], echo["correlation_id"]), ("echo", f"pq-{i}"))
                self.assertEqual(echo["payload"]["payload"], i)
            self.assert_nothing_pending(group)
            self.stop_cleanly(service)
        finally:
            await c.close()


class CppServiceFlags(unittest.TestCase):
    def run_service(self, *args):
        return subprocess.run([SERVICE_BINARY, *args], stdin=subprocess.DEVNULL,
                              capture_output=True, text=True, timeout=10)

    def test_bad_flags_exit_2_with_a_message(self):
        cases = [
            (["--bogus", "1"], "unknown flag --bogus"),
            (["--redis"], "needs a value"),
            (["--redis", "http://127.0.0.1:6379"], "bad --redis URL"),
            (["--redis", "redis://user@127.0.0.1"], "bad --redis URL"),
            (["--redis", "redis://127.0.0.1:0"], "bad --redis URL"),
            (["--redis", "redis://127.0.0.1:6379/16"], "bad --redis URL"),
            (["--max-commands", "-1"], "--max-commands"),
            (["--claim-idle-ms", "soon"], "--claim-idle-ms"),
            (["--group", ""], "must not be empty"),
        ]
        for args, message in cases:
            with self.subTest(args=args):
                r = self.run_service(*args)
                self.assertEqual(r.returncode, 2, r.stderr)
                self.assertIn(message, r.stderr)

    def test_password_is_not_echoed(self):
        r = self.run_service("--redis", "redis://u:sekrit-pw@127.0.0.1:1/99")
        self.assertEqual(r.returncode, 2)
        self.assertNotIn("sekrit-pw", r.stderr)

    def test_help(self):
        r = self.run_service("--help")
        self.assertEqual(r.returncode, 0)
        self.assertIn("--command-stream", r.stdout)

    def test_wrong_password_exits_1(self):
        with RedisServer(password="right-one") as rs:
            r = self.run_service("--redis", f"redis://:wrong@127.0.0.1:{rs.port}")
            self.assertEqual(r.returncode, 1, r.stderr)
            self.assertIn("AUTH", r.stderr)
            self.assertNotIn("wrong@", r.stderr)
            # The right password (percent-encoding is decoded) works; --max-commands with no
            # commands would block, so only readiness is checked, then SIGTERM.
            s = Service([SERVICE_BINARY, "--redis", f"redis://:right%2Done@127.0.0.1:{rs.port}/3"])
            s.start()
            self.assertEqual(s.stop(), 0, s.stderr_text())
            self.assertIn("redis=redis://:***@127.0.0.1", s.stdout_text())


class DocListing(unittest.TestCase):
    def test_services_md_lists_echo_service_py_exactly(self):
        # docs/services.md says its Python listing is this file: hold it to that.
        with open(os.path.join(HERE, "..", "..", "docs", "services.md"), encoding="utf-8") as f:
            doc = f.read()
        with open(PYTHON_SERVICE, encoding="utf-8") as f:
            source = f.read()
        section = doc.split("\n## The Python version\n", 1)
        self.assertEqual(len(section), 2, "docs/services.md lost its Python section")
        start = section[1].index("```python\n") + len("```python\n")
        listing = section[1][start:section[1].index("\n```\n", start) + 1]
        self.assertEqual(listing, source, "docs/services.md's listing differs from "
                                          "examples/redis_service/echo_service.py")


if __name__ == "__main__":
    if len(sys.argv) < 3 or sys.argv[2].startswith("-"):
        print("usage: test_redis_service.py PATH/TO/gatehouse-server "
              "PATH/TO/gatehouse-example-redis-service [unittest args]", file=sys.stderr)
        sys.exit(2)
    SERVICE_BINARY = os.path.abspath(sys.argv.pop(2))
    h.run_main()
