#!/usr/bin/env python3
"""examples/bot end to end: chat_bot.py against a real `gatehouse-server --demo --bot-key`.

Usage: test_bot.py PATH/TO/gatehouse-server [unittest args]

A chat script goes in (from a file, then from a pipe on stdin); the bot's replies come out, and
every number in them is checked against the Click & Cook rules. The second run reconnects and
finds the same kitchen (the game keeps bot:chef's session), plain chat gets no reply, bad
commands get the bot's own answer, and a wrong key fails cleanly without printing the key.
"""

import os
import re
import secrets
import subprocess
import sys
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "tests", "server"))

import gatehouse_harness as h  # noqa: E402
from gatehouse_harness import Server  # noqa: E402

BOT = os.path.join(HERE, "chat_bot.py")
PYTHON = "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else sys.executable
BOT_TIMEOUT_S = 30

SCRIPT = """\
good morning kitchen!
!cook 3
!sell 2
!buy knife
!cook 10
!sell
!buy knife
!cook
!level
!levelup
!cook 0
!buy spoon
!dance
!cook lots
"""


def replies(output):
    """{chat line: the bot's first reply} from the bot's output (`> line` then `chef> reply`)."""
    out = {}
    lines = output.splitlines()
    for i, line in enumerate(lines):
        if line.startswith("> ") and i + 1 < len(lines):
            out.setdefault(line[2:], lines[i + 1])  # a repeated line: its first reply
    return out


def fields(reply):
    return dict(re.findall(r"(\w+)=(\w+)", reply))


class BotTest(unittest.TestCase):
    key = "botkey-" + secrets.token_hex(12)

    @classmethod
    def setUpClass(cls):
        cls.server = Server("--demo", bot_keys={"chef": cls.key}).start()

    @classmethod
    def tearDownClass(cls):
        code = cls.server.stop()
        report = cls.server.sanitizer_report()
        if code != 0 or report:
            raise AssertionError(f"server exit {code}: {report or cls.server.stderr_text()[-1500:]}")

    def run_bot(self, *args, stdin=None, key=None):
        env = dict(os.environ, CHAT_BOT_KEY=key or self.key, PYTHONUNBUFFERED="1")
        return subprocess.run(
            [PYTHON, BOT, "--server", f"ws://127.0.0.1:{self.server.port}", "--name", "chef",
             *args], input=stdin, capture_output=True, text=True, env=env,
            timeout=BOT_TIMEOUT_S)

    def assert_state(self, reply, request, **want):
        self.assertTrue(reply.startswith(f"chef> {request} ok:"), reply)
        got = fields(reply)
        for k, v in want.items():
            self.assertEqual(got.get(k), str(v), f"{k} in {reply!r}")

    def test_1_script_file(self):
        with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as f:
            f.write(SCRIPT)
        try:
            done = self.run_bot("--script", f.name)
        finally:
            os.unlink(f.name)
        self.assertEqual(done.returncode, 0, done.stderr)
        out = done.stdout
        self.assertIn("connected as bot:chef (codec msgpack)", out)
        # The first thing the bot does: load (here: create) its session.
        self.assertIn("chef> session ok: coins=0 dishes=0 xp=0 level=1 cook_power=1", out)
        r = replies(out)
        self.assertNotIn("good morning kitchen!", r, "plain chat is not a command")
        self.assert_state(r["!cook 3"], "cook", dishes=3, coins=0, xp=3)
        self.assert_state(r["!sell 2"], "sell", dishes=1, coins=4, xp=5)
        self.assertTrue(r["!buy knife"].startswith("chef> upgrade_buy failed: not_enough_coins"),
                        r["!buy knife"])
        self.assert_state(r["!cook 10"], "cook", dishes=11, xp=15)
        self.assert_state(r["!sell"], "sell", dishes=0, coins=26, xp=26)
        # The second "!buy knife" of the script: now affordable.
        second_buy = out.splitlines()[out.splitlines().index("> !sell") + 3]
        self.assert_state(second_buy, "upgrade_buy", coins=16, cook_power=2, knife=1)
        self.assert_state(r["!cook"], "cook", dishes=2, xp=27)
        self.assert_state(r["!level"], "level_check", can_level_up="yes", xp_required=20)
        self.assert_state(r["!levelup"], "level_up", level=2, xp=7, cook_power=3)
        self.assertTrue(r["!cook 0"].startswith("chef> cook failed: invalid_payload"), r["!cook 0"])
        self.assertTrue(r["!buy spoon"].startswith("chef> upgrade_buy failed: unknown_upgrade"),
                        r["!buy spoon"])
        self.assertEqual(r["!dance"], "chef> unknown command !dance, try !help")
        self.assertEqual(r["!cook lots"], "chef> usage: !cook [NUMBER]")

    def test_2_stdin_same_kitchen(self):
        # A new connection (a restarted bot): bot:chef's kitchen is where run 1 left it.
        done = self.run_bot(stdin="!state\n!collect\n!reset\n")
        self.assertEqual(done.returncode, 0, done.stderr)
        r = replies(done.stdout)
        self.assert_state(r["!state"], "session", coins=16, dishes=2, level=2, xp=7, knife=1)
        self.assert_state(r["!collect"], "passive", dishes=2, passive_rate=0)
        self.assert_state(r["!reset"], "session_reset", coins=0, dishes=0, level=1, knife=0)

    def test_3_wrong_key(self):
        wrong = "not-the-key-" + secrets.token_hex(6)
        done = self.run_bot(stdin="!state\n", key=wrong)
        self.assertEqual(done.returncode, 1, done.stdout)
        self.assertIn("401", done.stderr)
        self.assertNotIn(wrong, done.stderr + done.stdout)


if __name__ == "__main__":
    h.run_main()
