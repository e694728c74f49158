#!/usr/bin/env python3
"""Click & Cook on RabbitMQ (issue 20): gatehouse-demo-game --amqp beside gatehouse-server --amqp.

Usage: test_game_amqp.py PATH/TO/gatehouse-server PATH/TO/gatehouse-demo-game [unittest args]

The documented loop, as a player sees it: command -> ack (after the broker's confirm) -> the
command queue -> the game -> its update on the updates exchange -> the player, through two
gateway instances on one broker (a real rabbitmq-server, rabbitmq_fixture.py). Every wait is
bounded.
"""

import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from game_client import FRESH, refused, state_of, without_clock  # noqa: E402
import gatehouse_harness as h  # noqa: E402
from gatehouse_harness import Client  # noqa: E402
from rabbitmq_fixture import RabbitMQServer  # noqa: E402
import test_game_redis as redis_game  # noqa: E402  (GameProcess, wait_until)

EXCHANGE = "demo-test.commands"  # not the defaults: the flags must reach both programs
UPDATES = "demo-test.updates"
BUS_READY_TIMEOUT_S = 15.0


class GameOnRabbitMQ(h.AsyncCase):
    """One broker, two gateways on it (A with --demo, B without), one game process."""

    @classmethod
    def setUpClass(cls):
        cls.rabbit = RabbitMQServer().start()
        cls.gateways = []
        try:
            for gateway_id, extra in (("gw-a", ["--demo"]), ("gw-b", [])):
                cls.gateways.append(h.Server(
                    "--amqp", cls.rabbit.url, "--amqp-exchange", EXCHANGE,
                    "--amqp-updates-exchange", UPDATES, "--gateway-id", gateway_id, *extra,
                    binary=h.SERVER_BINARY).start())
            for gw in cls.gateways:
                redis_game.wait_until(lambda: gw.http("GET", "/ready")[0] == 200,
                                      BUS_READY_TIMEOUT_S, "GET /ready answering 200")
        except Exception:
            cls.stop_all()
            raise
        cls.gw_a, cls.gw_b = cls.gateways

    @classmethod
    def stop_all(cls):
        codes = [(gw, gw.stop()) for gw in cls.gateways]
        cls.rabbit.close()
        return codes

    @classmethod
    def tearDownClass(cls):
        for gw, code in cls.stop_all():
            report = gw.sanitizer_report()
            if report:
                raise AssertionError(f"sanitizer report in a server's stderr:\n{report}")
            if code != 0:
                raise AssertionError(f"server exit code {code}: {gw.stderr_text()[-1500:]}")

    def game(self):
        g = redis_game.GameProcess("--amqp", self.rabbit.url, "--amqp-exchange", EXCHANGE,
                                   "--amqp-updates-exchange", UPDATES)
        self.addCleanup(g.kill)
        return g.start()

    async def player(self, gw, name, codec="json"):
        c = await Client.player(gw, name, codec)
        self.assertEqual(c.welcome["type"], "welcome", c.welcome)
        self.addAsyncCleanup(c.close)
        return c

    async def test_the_loop_through_the_queue_and_both_gateways(self):
        game = self.game()
        self.assertIn(f"exchange={EXCHANGE} updates={UPDATES}", game.stdout_text())
        a = await self.player(self.gw_a, "chef-q")
        await refused(self, a, "cook", {}, "no_session")
        s = await state_of(self, a, "session")
        self.assertEqual(without_clock(s), FRESH)
        await state_of(self, a, "cook", {"count": 3})
        s = await state_of(self, a, "sell", {"count": 1})
        self.assertEqual((s["dishes"], s["coins"], s["revision"]), (2, 2, 2), s)
        # The same session through the other gateway, in MessagePack.
        b = await self.player(self.gw_b, "chef-q", "msgpack")
        s = await state_of(self, b, "sell", {"count": 2})
        self.assertEqual((s["dishes"], s["coins"], s["revision"]), (0, 6, 3), s)
        # The game acked every command: the queue is empty (bounded poll: the ack follows the
        # publish, so the player may see the update first).
        deadline = time.monotonic() + 5
        while self.rabbit.queue_depth(EXCHANGE) != 0:
            self.assertLess(time.monotonic(), deadline, "the game left commands in the queue")
            time.sleep(0.05)
        started = time.monotonic()
        self.assertEqual(game.stop(), 0, game.stderr_text()[-1500:])
        self.assertLess(time.monotonic() - started, 3.0)
        self.assertIn("stopped after answering 5 commands", game.stderr_text())

    async def test_commands_wait_in_the_queue_while_the_game_is_away(self):
        a = await self.player(self.gw_a, "chef-late")
        cid = "session-late"
        await a.send("session", h._ABSENT, cid)
        ack = await a.recv()
        self.assertEqual((ack["type"], ack["correlation_id"]), ("ack", cid), ack)
        await a.expect_nothing(0.3)
        self.game()
        got = await a.recv()
        self.assertEqual((got["type"], got["correlation_id"]), ("game.state", cid), got)

    def test_usage_errors_exit_2(self):
        for args, message in ((["--amqp", "http://127.0.0.1"], "bad --amqp URL"),
                              (["--amqp", "amqp://u:sekrit-pw@h/", "--redis", "redis://h"],
                               "excludes")):
            with self.subTest(args=args):
                r = redis_game.run_game(*args)
                self.assertEqual(r.returncode, 2, r)
                self.assertIn(message, r.stderr + r.stdout)
                self.assertNotIn("sekrit-pw", r.stderr + r.stdout)


if __name__ == "__main__":
    if len(sys.argv) < 3 or sys.argv[2].startswith("-"):
        print("usage: test_game_amqp.py PATH/TO/gatehouse-server PATH/TO/gatehouse-demo-game "
              "[unittest args]", file=sys.stderr)
        sys.exit(2)
    redis_game.GAME_BINARY = os.path.abspath(sys.argv.pop(2))
    h.run_main()
