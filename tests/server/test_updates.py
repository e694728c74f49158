#!/usr/bin/env python3
"""gatehouse-server update routing (docs/protocol.md s. 5) through `POST /updates`, and the
slow-consumer policies.

Usage: test_updates.py PATH/TO/gatehouse-server [unittest args]

"Not delivered" is checked with a marker: updates reach a player in publish order, so once a
later marker update addressed to that player has arrived, an earlier update that was going to
arrive has arrived too.
"""

import asyncio
import json
import secrets
import socket
import time

import gatehouse_harness as h
from gatehouse_harness import Client, RawWs

CODECS = ("json", "msgpack", "protobuf")


def marker(player_id):
    tag = "m-" + secrets.token_hex(4)
    return tag, {"player_id": player_id, "type": "marker", "payload": {"tag": tag}}


class Routing(h.ServerTestCase):
    async def open(self, player, codec="json"):
        return await Client.player(self.server, player, codec)

    async def received_until_marker(self, client, player):
        """Publishes a marker to `player` and returns what `client` got before it."""
        tag, msg = marker(player)
        await self.server.apublish(msg)
        got = await client.recv_until(
            lambda e: e["type"] == "marker" and e["payload"] == {"tag": tag})
        # Earlier markers (to another connection of the same player) are not the question.
        return [e for e in got[:-1] if e["type"] != "marker"]

    def assert_update(self, env, type_, payload, correlation_id=None):
        self.assertEqual(env["type"], type_, env)
        self.assertEqual(env["payload"], payload, env)
        # Only {type, payload, correlation_id?}: no routing keys reach the client.
        # A logged update (POST /updates goes through the update log) adds its update_id.
        self.assertTrue(set(env["_keys"]) <= {"type", "payload", "correlation_id", "update_id"},
                        env)
        if correlation_id is None:
            self.assertIsNone(env.get("correlation_id"), env)
        else:
            self.assertEqual(env.get("correlation_id"), correlation_id, env)

    async def test_player_update_in_each_codec_to_every_connection(self):
        conns = [await self.open("multi", codec) for codec in CODECS]
        conns.append(await Client.player(self.server, "multi", "protobuf", how="subprotocol"))
        try:
            payload = {"score": 17, "list": [1, "two", None, True], "f": 1.5, "s": "\u00e9\u2603"}
            await self.server.apublish({"player_id": "multi", "type": "score", "payload": payload,
                                        "correlation_id": "u-1"})
            for c in conns:
                self.assert_update(await c.recv(), "score", payload, "u-1")
            await self.server.apublish({"player_id": "multi", "type": "tick", "payload": 5})
            for c in conns:
                self.assert_update(await c.recv(), "tick", 5)
        finally:
            for c in conns:
                await c.close()

    async def test_update_is_delivered_to_bot(self):
        bot = await Client.bot(self.server, "rover")
        try:
            await self.server.apublish({"player_id": "bot:rover", "type": "order",
                                        "payload": {"go": "north"}})
            self.assert_update(await bot.recv(), "order", {"go": "north"})
        finally:
            await bot.close()

    async def test_payload_missing_is_null(self):
        c = await self.open("nopayload")
        try:
            await self.server.apublish({"player_id": "nopayload", "type": "ping"})
            env = await c.recv()
            self.assertEqual(env["type"], "ping")
            self.assertIsNone(env.get("payload"))
        finally:
            await c.close()

    async def test_connection_targeted_update_hits_only_that_connection(self):
        a = await self.open("targeted", "json")
        b = await self.open("targeted", "msgpack")
        try:
            await self.server.apublish({
                "player_id": "targeted", "connection_id": b.welcome["payload"]["connection_id"],
                "type": "private", "payload": {"to": "b"}})
            self.assert_update(await b.recv(), "private", {"to": "b"})
            before = await self.received_until_marker(a, "targeted")
            self.assertEqual(before, [], "the other connection of the player got it")
            # A connection id with the wrong player is no target at all.
            await self.server.apublish({
                "player_id": "someone-else",
                "connection_id": a.welcome["payload"]["connection_id"],
                "type": "private", "payload": {"to": "nobody"}})
            self.assertEqual(await self.received_until_marker(a, "targeted"), [])
        finally:
            await a.close()
            await b.close()

    async def test_player_ids_list(self):
        a = await self.open("list-a")
        b = await self.open("list-b", "msgpack")
        c = await self.open("list-c")
        try:
            await self.server.apublish({"player_ids": ["list-a", "list-b", "offline"],
                                        "type": "group", "payload": [1, 2]})
            self.assert_update(await a.recv(), "group", [1, 2])
            self.assert_update(await b.recv(), "group", [1, 2])
            self.assertEqual(await self.received_until_marker(c, "list-c"), [])
        finally:
            for x in (a, b, c):
                await x.close()

    async def test_rooms_join_later_connection_and_leave(self):
        room = "room-" + secrets.token_hex(3)
        a1 = await self.open("roomer")
        other = await self.open("outsider")
        try:
            await self.server.apublish({"op": "join", "player_id": "roomer", "room": room})
            await self.server.apublish({"room": room, "type": "chat", "payload": "hi"})
            self.assert_update(await a1.recv(), "chat", "hi")
            self.assertEqual(await self.received_until_marker(other, "outsider"), [])
            # Membership belongs to the player: a connection opened after the join is in.
            a2 = await self.open("roomer", "protobuf")
            try:
                await self.server.apublish({"room": room, "type": "chat", "payload": "again",
                                            "correlation_id": "r-2"})
                self.assert_update(await a1.recv(), "chat", "again", "r-2")
                self.assert_update(await a2.recv(), "chat", "again", "r-2")
                await self.server.apublish({"op": "leave", "player_id": "roomer", "room": room})
                await self.server.apublish({"room": room, "type": "chat", "payload": "gone"})
                self.assertEqual(await self.received_until_marker(a1, "roomer"), [])
                self.assertEqual(await self.received_until_marker(a2, "roomer"), [])
            finally:
                await a2.close()
        finally:
            await a1.close()
            await other.close()

    async def test_room_membership_ends_with_the_last_connection(self):
        room = "room-" + secrets.token_hex(3)
        a = await self.open("ephemeral")
        await self.server.apublish({"op": "join", "player_id": "ephemeral", "room": room})
        await self.server.apublish({"room": room, "type": "chat", "payload": 1})
        self.assert_update(await a.recv(), "chat", 1)
        await a.close()
        await asyncio.sleep(0.3)  # the server notices the close
        b = await self.open("ephemeral")
        try:
            await self.server.apublish({"room": room, "type": "chat", "payload": 2})
            self.assertEqual(await self.received_until_marker(b, "ephemeral"), [])
        finally:
            await b.close()

    async def test_join_for_a_player_not_connected_is_ignored(self):
        room = "room-" + secrets.token_hex(3)
        await self.server.apublish({"op": "join", "player_id": "latecomer", "room": room})
        c = await self.open("latecomer")
        try:
            await self.server.apublish({"room": room, "type": "chat", "payload": "x"})
            self.assertEqual(await self.received_until_marker(c, "latecomer"), [])
        finally:
            await c.close()

    async def test_broadcast_reaches_everyone(self):
        conns = [await self.open("bc-1"), await self.open("bc-2", "msgpack"),
                 await self.open("bc-2", "protobuf"), await Client.bot(self.server, "rover")]
        try:
            await self.server.apublish({"broadcast": True, "type": "announce",
                                        "payload": {"msg": "maintenance"}, "correlation_id": "b1"})
            for c in conns:
                self.assert_update(await c.recv(), "announce", {"msg": "maintenance"}, "b1")
        finally:
            for c in conns:
                await c.close()

    async def test_per_player_order_over_500_updates(self):
        n = 500
        a = await self.open("orderly", "json")
        b = await self.open("orderly", "msgpack")
        try:
            def publish_all():
                for i in range(n):
                    self.server.publish_ok({"player_id": "orderly", "type": "seq",
                                            "payload": {"i": i}})
            pub = asyncio.create_task(asyncio.to_thread(publish_all))
            for c in (a, b):
                seen = []
                deadline = time.monotonic() + 30
                while len(seen) < n and time.monotonic() < deadline:
                    env = await c.recv(timeout=10)
                    self.assertEqual(env["type"], "seq", env)
                    seen.append(env["payload"]["i"])
                self.assertEqual(seen, list(range(n)), f"{c.codec} connection order")
            await pub
        finally:
            await a.close()
            await b.close()

    async def test_interleaved_routes_keep_publish_order(self):
        room = "room-" + secrets.token_hex(3)
        a = await self.open("mixed-routes")
        try:
            await self.server.apublish({"op": "join", "player_id": "mixed-routes", "room": room})
            cid = a.welcome["payload"]["connection_id"]
            msgs = [
                {"player_id": "mixed-routes", "type": "k", "payload": 0},
                {"room": room, "type": "k", "payload": 1},
                {"broadcast": True, "type": "k", "payload": 2},
                {"player_ids": ["mixed-routes"], "type": "k", "payload": 3},
                {"player_id": "mixed-routes", "connection_id": cid, "type": "k", "payload": 4},
            ] * 4
            for m in msgs:
                await self.server.apublish(m)
            got = [(await a.recv())["payload"] for _ in msgs]
            self.assertEqual(got, [m["payload"] for m in msgs])
        finally:
            await a.close()

    async def test_malformed_updates_are_400_counted_and_do_not_stop_delivery(self):
        bad = [
            ("not JSON", "not json at all"),
            ("JSON array", "[1,2]"),
            ("JSON string", '"hello"'),
            ("no target", '{"type":"t","payload":1}'),
            ("bad type", '{"player_id":"p","type":"bad type!","payload":1}'),
            ("missing type", '{"player_id":"p","payload":1}'),
            ("type 65 chars", json.dumps({"player_id": "p", "type": "a" * 65})),
            ("unknown op", '{"op":"dance","player_id":"p","room":"r"}'),
            ("player_ids not a list", '{"player_ids":"p","type":"t","payload":1}'),
        ]
        c = await self.open("survivor")
        try:
            before = self.server.metric("gatehouse_updates_malformed_total")
            for name, body in bad:
                with self.subTest(name):
                    status, data = await asyncio.to_thread(self.server.publish, body)
                    self.assertEqual(status, 400, data)
                    problem = json.loads(data)
                    self.assertEqual(problem.get("status"), 400, problem)
                    if name == "not JSON":
                        self.assertIn(problem.get("code"), ("invalid_update", "invalid_json"),
                                      problem)
                    else:
                        self.assertEqual(problem.get("code"), "invalid_update", problem)
            after = self.server.wait_metric("gatehouse_updates_malformed_total",
                                            lambda v: v >= before + len(bad))
            self.assertEqual(after, before + len(bad))
            await self.server.apublish({"player_id": "survivor", "type": "ok", "payload": 1})
            self.assert_update(await c.recv(), "ok", 1)
        finally:
            await c.close()

    async def test_publish_key_is_required(self):
        msg = {"player_id": "p", "type": "t", "payload": 1}
        for key in (None, "wrong-key", self.publish_key + "x"):
            with self.subTest(key=key):
                status, _ = await asyncio.to_thread(self.server.publish, msg, key)
                self.assertEqual(status, 401)
        status, body = await asyncio.to_thread(self.server.publish, msg)
        self.assertEqual(status, 202, body)
        # Through the update log: the player's new update id (docs/protocol.md 6.4).
        self.assertEqual(list(json.loads(body)["update_ids"]), ["p"])

    async def test_updates_metrics(self):
        c = await self.open("metered")
        try:
            m = self.server.metrics()
            rcv = h.metric_value(m, "gatehouse_updates_received_total")
            routed = h.metric_value(m, "gatehouse_updates_routed_total")
            unrouted = h.metric_value(m, "gatehouse_updates_unrouted_total")
            await self.server.apublish({"player_id": "metered", "type": "t", "payload": 1})
            await c.recv()
            await self.server.apublish({"player_id": "nobody-here", "type": "t", "payload": 1})
            self.assertEqual(self.server.wait_metric("gatehouse_updates_unrouted_total",
                                                     lambda v: v >= unrouted + 1), unrouted + 1)
            m = self.server.metrics()
            self.assertEqual(h.metric_value(m, "gatehouse_updates_received_total"), rcv + 2)
            self.assertEqual(h.metric_value(m, "gatehouse_updates_routed_total"), routed + 1)
        finally:
            await c.close()


class NoPublishKey(h.ServerTestCase):
    publish_key = None

    def test_updates_route_is_404_without_publish_key(self):
        status, _ = self.server.publish({"player_id": "p", "type": "t"}, key="anything")
        self.assertEqual(status, 404)


class SlowConsumerBase(h.ServerTestCase):
    SEND_BUFFER = 262144
    UPDATE_BYTES = 100_000
    UPDATES = 200  # 20 MB: more than a loopback socket pair buffers with a 4 KiB receive buffer

    @classmethod
    def policy_args(cls):
        return []

    @classmethod
    def server_args(cls):
        return ["--send-buffer-bytes", str(cls.SEND_BUFFER), "--max-message-bytes", "1048576",
                *cls.policy_args()]

    def stalled_consumer(self, player):
        raw = RawWs(self.server.port, "/ws/player/" + self.server.token(player), rcvbuf=4096)
        self.assertEqual(raw.status, 101)
        self.assertEqual(json.loads(raw.recv_message()[1])["type"], "welcome")
        return raw  # and from now on nobody reads it

    def flood(self, player, stop_when):
        """Publishes large updates to `player` until `stop_when()` or UPDATES are out."""
        blob = "q" * self.UPDATE_BYTES
        for i in range(self.UPDATES):
            self.server.publish_ok({"player_id": player, "type": "bulk",
                                    "payload": {"i": i, "blob": blob}})
            if i % 10 == 9 and stop_when():
                return i + 1
        return self.UPDATES


class SlowConsumerClose(SlowConsumerBase):
    @classmethod
    def policy_args(cls):
        return ["--slow-consumer", "close"]

    async def test_stalled_reader_is_closed_1008_others_unaffected(self):
        healthy = await Client.player(self.server, "healthy", "json")
        raw = await asyncio.to_thread(self.stalled_consumer, "stalled")
        try:
            before = self.server.metric("gatehouse_slow_consumers_closed_total")
            await asyncio.to_thread(self.flood, "stalled", lambda: self.server.metric(
                "gatehouse_slow_consumers_closed_total") > before)
            closed = self.server.wait_metric("gatehouse_slow_consumers_closed_total",
                                             lambda v: v > before, timeout=5)
            self.assertGreater(closed, before)
            code = await asyncio.to_thread(raw.wait_close, 15)
            self.assertIn(code, (1008, None), "close 1008, or the connection is simply gone")
            await self.server.apublish({"player_id": "healthy", "type": "fine", "payload": 1})
            self.assertEqual((await healthy.recv())["type"], "fine")
        finally:
            raw.close()
            await healthy.close()


class SlowConsumerDrop(SlowConsumerBase):
    @classmethod
    def policy_args(cls):
        return ["--slow-consumer", "drop"]

    async def test_stalled_reader_loses_frames_but_stays_usable(self):
        raw = await asyncio.to_thread(self.stalled_consumer, "dropper")
        try:
            before = self.server.metric("gatehouse_send_queue_dropped_total")
            published = await asyncio.to_thread(self.flood, "dropper", lambda: self.server.metric(
                "gatehouse_send_queue_dropped_total") > before)
            dropped = self.server.wait_metric("gatehouse_send_queue_dropped_total",
                                              lambda v: v > before, timeout=5)
            self.assertGreater(dropped, before)
            self.assertEqual(self.server.metric("gatehouse_slow_consumers_closed_total"), 0)

            # Now read again: what was queued arrives (in order, with gaps), then the
            # connection answers a command.
            def drain_then_command():
                seen = []
                # First read what is queued (until 0.5 s of quiet), so that the command's ack
                # does not itself meet a full buffer.
                deadline = time.monotonic() + 20
                while time.monotonic() < deadline:
                    try:
                        m = raw.recv_message(0.5)
                    except socket.timeout:
                        break
                    if m is None or m[0] == "close":
                        return seen, m
                    seen.append(json.loads(m[1])["payload"]["i"])
                raw.send_text(json.dumps({"type": "t", "correlation_id": "after-drop"}))
                while time.monotonic() < deadline:
                    m = raw.recv_message(max(0.05, deadline - time.monotonic()))
                    if m is None or m[0] == "close":
                        return seen, m
                    env = json.loads(m[1])
                    if env["type"] == "bulk":
                        seen.append(env["payload"]["i"])
                    elif env.get("correlation_id") == "after-drop":
                        return seen, env
                return seen, "timeout"
            seen, answer = await asyncio.to_thread(drain_then_command)
            self.assertIsInstance(answer, dict, f"no ack, got {answer!r}")
            self.assertEqual(answer["type"], "ack", answer)
            self.assertEqual(seen, sorted(seen), "delivered frames stay in order")
            self.assertLess(len(seen), published, "some frames were dropped")
            h.note(f"{published} published, {len(seen)} delivered, "
                   f"{self.server.metric('gatehouse_send_queue_dropped_total'):.0f} dropped")
        finally:
            raw.close()


if __name__ == "__main__":
    h.run_main()
