#!/usr/bin/env python3
"""Click & Cook as its own process on Redis: gatehouse-demo-game beside gatehouse-server --redis.

Usage: test_game_redis.py PATH/TO/gatehouse-server PATH/TO/gatehouse-demo-game [unittest args]

A real redis-server, two gateway instances on it, the game process, WebSocket players. The
session lives in Redis (checked there directly, key demo:session:{player_id}), so it survives
the game process being killed and restarted, and a second gateway serves the same session.
Every wait is bounded.
"""

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from game_client import FRESH, refused, state_of, without_clock  # noqa: E402
import gatehouse_harness as h  # noqa: E402
from gatehouse_harness import Client  # noqa: E402
from redis_fixture import RedisServer  # noqa: E402

GAME_BINARY = ""  # argv[2], taken out before the harness reads argv
STREAM = "demo-test:commands"  # not the defaults: the flags must reach both programs
CHANNEL = "demo_test_updates"
GROUP = "demo-game"
READY_TIMEOUT_S = 10.0
STOP_TIMEOUT_S = 5.0  # XREADGROUP blocks 500 ms at a time
BUS_READY_TIMEOUT_S = 15.0


def wait_until(predicate, timeout, what):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"{what}: not within {timeout} s")
        time.sleep(0.05)


class GameProcess:
    """One gatehouse-demo-game; stdout and stderr to temp files."""

    def __init__(self, *args):
        self.argv = [GAME_BINARY, *args]
        self.proc = None
        self._out = tempfile.TemporaryFile()
        self._err = tempfile.TemporaryFile()

    def start(self):
        env = {k: v for k, v in os.environ.items() if not k.startswith("GATEHOUSE_")}
        env.setdefault("ASAN_OPTIONS", "abort_on_error=0:detect_leaks=1")
        self.proc = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL, stdout=self._out,
                                     stderr=self._err, env=env)
        try:
            wait_until(lambda: " ready " in self.stdout_text() or self.proc.poll() is not None,
                       READY_TIMEOUT_S, "the game's ready line")
        except AssertionError:
            self.kill()
            raise
        if self.proc.poll() is not None:
            raise AssertionError(f"the game exited with {self.proc.returncode}: "
                                 f"{self.stderr_text()[-1500:]}")
        return self

    def stop(self, sig=signal.SIGTERM):
        """Signals the game; its exit code, or None when it had to be killed."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.kill()
                return None
        return self.proc.returncode

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


def run_game(*args):
    return subprocess.run([GAME_BINARY, *args], stdin=subprocess.DEVNULL, capture_output=True,
                          text=True, timeout=10)


class GameOnRedis(h.AsyncCase):
    """One redis-server and two gateways on it: A with --demo, B without, and without
    de-duplication (so B sends plain XADDs and never reloads a missing function library)."""

    @classmethod
    def setUpClass(cls):
        cls.redis = RedisServer().start()
        cls.gateways = []
        try:
            for gateway_id, extra in (("gw-a", ["--demo"]), ("gw-b", ["--dedupe-window", "0"])):
                cls.gateways.append(h.Server(
                    "--redis", cls.redis.url, "--command-stream", STREAM, "--updates-channel",
                    CHANNEL, "--gateway-id", gateway_id, *extra, binary=h.SERVER_BINARY).start())
        except Exception:
            cls.stop_all()
            raise
        cls.gw_a, cls.gw_b = cls.gateways
        for gw in cls.gateways:
            wait_until(lambda: gw.http("GET", "/ready")[0] == 200, BUS_READY_TIMEOUT_S,
                       "GET /ready answering 200")

    @classmethod
    def stop_all(cls):
        codes = [(gw, gw.stop()) for gw in cls.gateways]
        cls.redis.close()
        return codes

    @classmethod
    def tearDownClass(cls):
        for gw, code in cls.stop_all():
            report = gw.sanitizer_report()
            if report:
                raise AssertionError(f"sanitizer report in a server's stderr:\n{report}")
            if code != 0:
                raise AssertionError(f"server exit code {code}: {gw.stderr_text()[-1500:]}")

    def game(self, consumer):
        g = GameProcess("--redis", self.redis.url, "--command-stream", STREAM,
                        "--updates-channel", CHANNEL, "--consumer", consumer)
        self.addCleanup(g.kill)
        return g.start()

    def stop_cleanly(self, game):
        started = time.monotonic()
        self.assertEqual(game.stop(), 0, game.stderr_text()[-1500:])
        self.assertLess(time.monotonic() - started, 3.0)
        self.assertNotIn("Sanitizer", game.stderr_text())
        self.assertNotIn("runtime error", game.stderr_text())

    async def player(self, gw, name, codec="json"):
        c = await Client.player(gw, name, codec)
        self.assertEqual(c.welcome["type"], "welcome", c.welcome)
        self.addAsyncCleanup(c.close)
        return c

    def stored(self, player_id):
        """The stored session, without the game's own applied_entry marker."""
        raw = self.redis.client().get(f"demo:session:{player_id}")
        if raw is None:
            return None
        s = json.loads(raw)
        s.pop("applied_entry", None)
        return s

    def wait_until_acknowledged(self):
        """Bounded poll: the game XACKs after it publishes, so an update can arrive first."""
        deadline = time.monotonic() + 5
        while self.pending() != 0:
            self.assertLess(time.monotonic(), deadline, "the game never acknowledged")
            time.sleep(0.02)

    def pending(self):
        return self.redis.client().xpending(STREAM, GROUP)["pending"]

    async def ack_only(self, client, type_, payload):
        cid = f"{type_}-{time.monotonic_ns()}"
        await client.send(type_, payload, cid)
        ack = await client.recv()
        self.assertEqual((ack["type"], ack["correlation_id"]), ("ack", cid), ack)
        return cid

    async def test_session_survives_the_game_process_and_spans_gateways(self):
        game = self.game("game-1")
        self.assertIn(f"stream={STREAM} channel={CHANNEL} group={GROUP} consumer=game-1",
                      game.stdout_text())
        a = await self.player(self.gw_a, "chef-r")
        await refused(self, a, "cook", {}, "no_session")
        self.assertIsNone(self.stored("chef-r"))
        s = await state_of(self, a, "session")
        self.assertEqual(without_clock(s), FRESH)
        self.assertEqual(self.stored("chef-r"), s)
        await state_of(self, a, "cook", {"count": 3})
        s = await state_of(self, a, "sell", {"count": 1})
        self.assertEqual((s["dishes"], s["coins"], s["revision"]), (2, 2, 2), s)
        self.assertEqual(self.stored("chef-r"), s)
        # Published through the update log (FCALL gatehouse_publish): the player's log holds
        # the answers, the newest being this state.
        log = self.redis.client().xrevrange(f"{CHANNEL}:log:chef-r", count=1)
        self.assertEqual(len(log), 1, "the game's updates are logged")
        self.assertEqual(json.loads(log[0][1][b"m"])["payload"]["state"], s, log)

        # A MessagePack player: its payload reaches the stream as MessagePack bytes.
        m = await self.player(self.gw_a, "chef-r", "msgpack")
        s = await state_of(self, m, "cook", {"count": 2})
        self.assertEqual(s["dishes"], 4, s)
        await a.recv()  # the same update on a's connection
        entry = self.redis.client().xrevrange(STREAM, count=1)[0][1]
        self.assertEqual(entry[b"codec"], b"msgpack", entry)

        # The game crashes; a command sent meanwhile waits on the stream for the next one.
        # (Killed after its XACK: a kill between PUBLISH and XACK would have the restart
        # answer cook-5 again, unchanged; game_service_test covers that replay.)
        self.wait_until_acknowledged()
        game.stop(signal.SIGKILL)
        cid = await self.ack_only(a, "cook", {"count": 1})
        await a.expect_nothing(0.5)
        game = self.game("game-1")
        update = await a.recv()
        self.assertEqual((update["type"], update["correlation_id"]), ("game.state", cid), update)
        s = update["payload"]["state"]
        self.assertEqual((s["dishes"], s["revision"]), (5, 4), s)  # carried on from Redis
        await m.recv()

        # A game that read an entry and died before answering: the restart answers it.
        self.stop_cleanly(game)
        cid = await self.ack_only(a, "sell", {})
        got = self.redis.client().xreadgroup(GROUP, "game-1", {STREAM: ">"}, count=10)
        self.assertEqual(len(got[0][1]), 1, got)
        self.assertEqual(self.pending(), 1)
        game = self.game("game-1")
        update = await a.recv()
        self.assertEqual((update["type"], update["correlation_id"]), ("game.state", cid), update)
        self.assertEqual(update["payload"]["state"]["coins"], 12, update)
        await m.recv()
        wait_until(lambda: self.pending() == 0, 3.0, "every entry acknowledged")

        # The second gateway serves the same session, and its player's updates reach the
        # connections on the first gateway too.
        b = await self.player(self.gw_b, "chef-r")
        s = await state_of(self, b, "session")
        self.assertEqual(s, self.stored("chef-r"))
        self.assertEqual((s["coins"], s["revision"]), (12, 5), s)
        for c in (a, m):
            seen = await c.recv()
            self.assertEqual(seen["payload"]["state"], s, seen)
        s = await state_of(self, b, "upgrade_buy", {"upgrade": "knife"})
        self.assertEqual((s["coins"], s["cook_power"]), (2, 2), s)
        seen = await a.recv()
        self.assertEqual(seen["payload"], {"request": "upgrade_buy", "state": s}, seen)
        await m.recv()
        self.assertEqual(self.stored("chef-r"), s)

        self.stop_cleanly(game)
        self.assertIn("stopped after answering", game.stderr_text())

    async def test_unlogged_publish_until_the_functions_are_loaded(self):
        # A game that runs before any gateway has loaded the library (or after Redis restarted
        # empty) still answers, with a plain PUBLISH, and says so once. The player is on B:
        # A's de-duplicating appends would find the library missing and load it again.
        r = self.redis.client()
        saved = r.execute_command("FUNCTION", "DUMP")
        r.execute_command("FUNCTION", "DELETE", "gatehouse")
        try:
            game = self.game("game-unlogged")
            a = await self.player(self.gw_b, "chef-u")
            await state_of(self, a, "session")
            s = await state_of(self, a, "cook", {"count": 1})
            self.assertEqual(s["dishes"], 1, s)
            self.assertEqual(r.exists(f"{CHANNEL}:log:chef-u"), 0, "nothing could be logged")
            self.assertEqual(game.stderr_text().count("not loaded"), 1, game.stderr_text())
        finally:
            r.execute_command("FUNCTION", "RESTORE", saved, "REPLACE")
        s = await state_of(self, a, "sell", {"count": 1})
        self.assertEqual(r.xlen(f"{CHANNEL}:log:chef-u"), 1, "logged again once loaded")
        self.stop_cleanly(game)

    async def test_other_commands_are_acknowledged_and_left_alone(self):
        game = self.game("game-2")
        c = await self.player(self.gw_b, "chef-other")
        await self.ack_only(c, "chat", {"text": "hi"})
        await c.expect_nothing(0.5)
        wait_until(lambda: self.pending() == 0, 3.0, "the chat entry acknowledged")
        self.assertIsNone(self.stored("chef-other"))
        self.stop_cleanly(game)

    def test_the_demo_gateway_says_how_to_run_the_game(self):
        text = self.gw_a.stderr_text()
        self.assertIn("gatehouse-demo-game --redis URL --command-stream " + STREAM +
                      " --updates-channel " + CHANNEL, text)
        self.assertNotIn("gatehouse-demo-game", self.gw_b.stderr_text())


class GameFlags(unittest.TestCase):
    def test_usage_errors_exit_2(self):
        for args, message in (([], "--redis"),
                              (["--redis", "http://127.0.0.1:6379"], "bad --redis URL"),
                              (["--redis", "redis://u:sekrit-pw@127.0.0.1:1/99"], "bad --redis"),
                              (["--redis", "redis://127.0.0.1", "--group", ""], "must not be"),
                              (["--redis", "redis://127.0.0.1", "--bogus"], "bogus")):
            with self.subTest(args=args):
                r = run_game(*args)
                self.assertEqual(r.returncode, 2, r)
                self.assertIn(message, r.stderr + r.stdout)
                self.assertNotIn("sekrit-pw", r.stderr + r.stdout)

    def test_help(self):
        r = run_game("--help")
        self.assertEqual(r.returncode, 0, r)
        self.assertIn("--consumer", r.stdout)

    def test_wrong_password_exits_1_without_echoing_it(self):
        with RedisServer(password="right-one") as rs:
            r = run_game("--redis", f"redis://:wrong-pw@127.0.0.1:{rs.port}")
            self.assertEqual(r.returncode, 1, r)
            self.assertIn("AUTH", r.stderr)
            self.assertNotIn("wrong-pw", r.stderr)


if __name__ == "__main__":
    if len(sys.argv) < 3 or sys.argv[2].startswith("-"):
        print("usage: test_game_redis.py PATH/TO/gatehouse-server PATH/TO/gatehouse-demo-game "
              "[unittest args]", file=sys.stderr)
        sys.exit(2)
    GAME_BINARY = os.path.abspath(sys.argv.pop(2))
    h.run_main()
