#!/usr/bin/env python3
"""Click & Cook inside gatehouse-server --demo, as a client sees it.

Usage: test_game_in_process.py PATH/TO/gatehouse-server [unittest args]

Real server processes on 127.0.0.1, WebSocket players in JSON, MessagePack and Protobuf; every
command of the contract, every error code, the updates reaching every connection of the player,
and the session surviving a reconnect. Every wait is bounded.
"""

import asyncio
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from game_client import (FRESH, play, refused, state_of, without_clock,  # noqa: E402
                         new_correlation_id)
import gatehouse_harness as h  # noqa: E402
from gatehouse_harness import Client  # noqa: E402


def now_ms():
    return int(time.time() * 1000)


class InProcessGame(h.ServerTestCase):
    @classmethod
    def server_args(cls):
        return ["--demo"]

    async def player(self, name, codec="json"):
        c = await Client.player(self.server, name, codec)
        self.assertEqual(c.welcome["type"], "welcome", c.welcome)
        self.addAsyncCleanup(c.close)
        return c

    async def test_every_command_and_error_in_json(self):
        c = await self.player("chef-json")
        await refused(self, c, "cook", {"count": 1}, "no_session")
        await refused(self, c, "session_reset", h._ABSENT, "no_session")

        before = now_ms()
        s = await state_of(self, c, "session", {})
        self.assertEqual(without_clock(s), FRESH)
        self.assertTrue(before - 1000 <= s["last_passive_ms"] <= now_ms() + 1000, s)

        s = await state_of(self, c, "cook", {"count": 3})
        self.assertEqual((s["dishes"], s["xp"], s["revision"]), (3, 3, 1), s)
        for bad in ({"count": 0}, {"count": 101}, {"count": 2.5}, {"count": "3"}, "cook", [1]):
            with self.subTest(payload=bad):
                await refused(self, c, "cook", bad, "invalid_payload")
        await refused(self, c, "sell", {"count": 10}, "not_enough_dishes")
        await refused(self, c, "sell", {"count": 0}, "invalid_payload")
        await refused(self, c, "upgrade_buy", {"upgrade": "knife"}, "not_enough_coins")
        await refused(self, c, "upgrade_buy", {"upgrade": "laser"}, "unknown_upgrade")
        await refused(self, c, "upgrade_buy", {}, "invalid_payload")
        await refused(self, c, "level_up", h._ABSENT, "not_enough_xp")
        p = await play(self, c, "level_check")
        self.assertEqual(p["level_check"], {"can_level_up": False, "xp_required": 20}, p)
        self.assertEqual(p["state"]["revision"], 2, p)  # refusals did not count

        s = await state_of(self, c, "cook", {"count": 20})
        self.assertEqual((s["dishes"], s["xp"]), (23, 23), s)
        s = await state_of(self, c, "sell", {"count": 3})
        self.assertEqual((s["dishes"], s["coins"], s["xp"]), (20, 6, 26), s)
        s = await state_of(self, c, "sell", {})  # all of them
        self.assertEqual((s["dishes"], s["coins"], s["xp"]), (0, 46, 46), s)
        p = await play(self, c, "level_check", {})
        self.assertEqual(p["level_check"], {"can_level_up": True, "xp_required": 20}, p)
        s = await state_of(self, c, "level_up")
        self.assertEqual((s["level"], s["xp"], s["cook_power"]), (2, 26, 2), s)
        p = await play(self, c, "level_check")
        self.assertEqual(p["level_check"], {"can_level_up": False, "xp_required": 80}, p)

        s = await state_of(self, c, "upgrade_buy", {"upgrade": "knife"})
        self.assertEqual((s["coins"], s["cook_power"], s["upgrades"]["knife"]), (36, 3, 1), s)
        await refused(self, c, "upgrade_buy", {"upgrade": "waiter"}, "not_enough_coins")
        s = await state_of(self, c, "upgrade_buy", {"upgrade": "stove"})
        self.assertEqual((s["coins"], s["passive_rate"], s["upgrades"]["stove"]), (11, 1, 1), s)
        s = await state_of(self, c, "cook", {"count": 2})
        self.assertEqual(s["dishes"], 6, s)  # count * cook_power 3

        # Passive: whole seconds since last_passive_ms, at passive_rate dishes per second.
        await asyncio.sleep(2.2)
        p = await state_of(self, c, "passive", {})
        credited_s = (p["last_passive_ms"] - s["last_passive_ms"]) // 1000
        self.assertEqual((p["last_passive_ms"] - s["last_passive_ms"]) % 1000, 0, p)
        self.assertGreaterEqual(credited_s, 2, (s, p))
        self.assertLessEqual(p["last_passive_ms"], now_ms() + 1000, p)
        self.assertEqual(p["dishes"], s["dishes"] + credited_s * 1, (s, p))

        last = await state_of(self, c, "session")  # a read: nothing changes
        self.assertEqual(last, p)
        r = await state_of(self, c, "session_reset")
        self.assertEqual(without_clock(r), dict(FRESH, revision=last["revision"] + 1), r)

        # Another service's command: acked by the gateway, left alone by the game.
        cid = new_correlation_id("chat")
        await c.send("chat", {"text": "hi"}, cid)
        ack = await c.recv()
        self.assertEqual((ack["type"], ack["correlation_id"]), ("ack", cid), ack)
        await c.expect_nothing(0.5)

    async def test_msgpack_and_protobuf_players(self):
        m = await self.player("chef-mp", "msgpack")
        await refused(self, m, "cook", h._ABSENT, "no_session")
        s = await state_of(self, m, "session")
        self.assertEqual(without_clock(s), FRESH)
        s = await state_of(self, m, "cook", {"count": 4})
        self.assertEqual((s["dishes"], s["revision"]), (4, 1), s)
        await refused(self, m, "sell", {"count": 5}, "not_enough_dishes")
        await refused(self, m, "cook", {"count": b"\x01"}, "invalid_payload")
        s = await state_of(self, m, "sell", {"count": 4})
        self.assertEqual(s["coins"], 8, s)

        pb = await self.player("chef-pb", "protobuf")
        s = await state_of(self, pb, "session", {})
        s = await state_of(self, pb, "cook", {"count": 2})
        self.assertEqual(s["dishes"], 2, s)
        # Protobuf bytes the game cannot read (payload_codec names a message, not json).
        await refused(self, pb, "cook", b"\x08\x02", "invalid_payload",
                      payload_codec="game.Cook")

    async def test_every_connection_of_the_player_sees_the_updates(self):
        a1 = await self.player("chef-two-devices")
        a2 = await self.player("chef-two-devices")
        b = await self.player("chef-elsewhere")
        s = await state_of(self, a1, "session")
        seen = await a2.recv()
        self.assertEqual((seen["type"], seen["payload"]["state"]), ("game.state", s), seen)
        s = await state_of(self, a1, "cook", {"count": 5})
        seen = await a2.recv()
        self.assertEqual(seen["type"], "game.state", seen)
        self.assertEqual(seen["payload"], {"request": "cook", "state": s}, seen)
        self.assertTrue(seen["correlation_id"].startswith("cook-"), seen)
        # And the other way round, errors included.
        await refused(self, a2, "sell", {"count": 99}, "not_enough_dishes")
        seen = await a1.recv()
        self.assertEqual((seen["type"], seen["payload"]["code"]),
                         ("game.error", "not_enough_dishes"), seen)
        await b.expect_nothing(0.3)
        await refused(self, b, "cook", h._ABSENT, "no_session")  # b has a session of its own

    async def test_a_reconnect_gets_the_same_session(self):
        c = await Client.player(self.server, "chef-returning")
        await state_of(self, c, "session")
        await state_of(self, c, "cook", {"count": 7})
        kept = await state_of(self, c, "sell", {"count": 2})
        await c.close()
        c = await self.player("chef-returning")
        s = await state_of(self, c, "session")
        self.assertEqual(s, kept)
        self.assertEqual((s["dishes"], s["coins"], s["revision"]), (5, 4, 2), s)


class WithoutDemo(h.ServerTestCase):
    async def test_no_game_without_the_flag(self):
        c = await Client.player(self.server, "chef-nodemo")
        try:
            cid = new_correlation_id("session")
            await c.send("session", {}, cid)
            ack = await c.recv()
            self.assertEqual((ack["type"], ack["correlation_id"]), ("ack", cid), ack)
            await c.expect_nothing(0.5)
        finally:
            await c.close()
        self.assertNotIn("demo:", self.server.stderr_text())


if __name__ == "__main__":
    h.run_main()
