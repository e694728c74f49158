#!/usr/bin/env python3
"""Two gatehouse-server instances on one Redis (docs/protocol.md s. 4-5): distinct --gateway-id,
the same JWT secret, stream and channel. Each instance hears every update and delivers it to
the players it holds (the other skips them); commands through either land in the one stream.

Usage: test_redis_scaleout.py PATH/TO/gatehouse-server [unittest args]
"""

import secrets

import gatehouse_harness as h
from gatehouse_harness import Client
import redis_helpers as rh
from redis_helpers import assert_update, check_ack, entry, received_before_marker
from redis_fixture import RedisServer


class TwoInstances(h.AsyncCase):
    @classmethod
    def setUpClass(cls):
        cls.redis = RedisServer().start()
        cls.r = cls.redis.client()
        cls.stream = rh.unique("gh:commands")
        cls.channel = rh.unique("gh:updates")
        secret = "s3cr3t-" + secrets.token_hex(16)
        cls.ids = {"a": rh.unique("gw-a"), "b": rh.unique("gw-b")}
        cls.gw = {}
        try:
            for name, gateway_id in cls.ids.items():
                cls.gw[name] = rh.redis_gateway(cls.redis.url, cls.stream, cls.channel,
                                                gateway_id, jwt_secret=secret).start()
        except BaseException:
            for s in cls.gw.values():
                s.kill()
            cls.redis.close()
            raise

    @classmethod
    def tearDownClass(cls):
        problems = []
        try:
            for s in cls.gw.values():
                problems += rh.stop_and_check(s)
        finally:
            cls.redis.close()
        if problems:
            raise AssertionError("\n".join(problems))

    async def publish(self, message):
        receivers = await rh.apublish(self.r, self.channel, message)
        self.assertEqual(receivers, 2, "both instances are subscribed to the channel")

    def unrouted(self):
        return {n: s.metric("gatehouse_updates_unrouted_total") for n, s in self.gw.items()}

    def test_both_ready_and_subscribed(self):
        for name, s in self.gw.items():
            self.assertEqual(rh.ready_status(s), 200, name)
        self.assertEqual(self.r.pubsub_numsub(self.channel), [(self.channel.encode(), 2)])

    async def test_token_minted_for_one_instance_works_on_the_other(self):
        token = self.gw["a"].token("roamer")
        c = await Client.open(self.gw["b"], "/ws/player/" + token, codec="json")
        try:
            self.assertEqual(c.welcome["payload"]["player_id"], "roamer")
        finally:
            await c.close()

    async def test_player_update_reaches_only_the_instance_holding_the_player(self):
        pa = await Client.player(self.gw["a"], "only-on-a", "json")
        pb = await Client.player(self.gw["b"], "only-on-b", "msgpack")
        try:
            before = self.unrouted()
            await self.publish({"player_id": "only-on-a", "type": "for-a", "payload": {"n": 1},
                                "correlation_id": "to-a"})
            assert_update(self, await pa.recv(), "for-a", {"n": 1}, "to-a")
            # B heard it too and skipped it: nobody there to deliver to.
            self.assertEqual(self.gw["b"].wait_metric("gatehouse_updates_unrouted_total",
                                                      lambda v: v >= before["b"] + 1),
                             before["b"] + 1)
            await self.publish({"player_id": "only-on-b", "type": "for-b", "payload": [2]})
            assert_update(self, await pb.recv(), "for-b", [2])
            self.assertEqual(self.gw["a"].wait_metric("gatehouse_updates_unrouted_total",
                                                      lambda v: v >= before["a"] + 1),
                             before["a"] + 1)
            # And nothing crossed over.
            self.assertEqual(await received_before_marker(self.r, self.channel, pa,
                                                          "only-on-a"), [])
            self.assertEqual(await received_before_marker(self.r, self.channel, pb,
                                                          "only-on-b"), [])
            # Each instance skipped exactly the other's two (update and marker).
            for name in ("a", "b"):
                self.assertEqual(self.gw[name].wait_metric(
                    "gatehouse_updates_unrouted_total", lambda v: v >= before[name] + 2),
                    before[name] + 2, name)
        finally:
            await pa.close()
            await pb.close()

    async def test_player_connected_to_both_instances_gets_it_on_both(self):
        on_a = await Client.player(self.gw["a"], "everywhere", "protobuf")
        on_b = await Client.player(self.gw["b"], "everywhere", "json")
        try:
            await self.publish({"player_id": "everywhere", "type": "sync", "payload": "x"})
            assert_update(self, await on_a.recv(), "sync", "x")
            assert_update(self, await on_b.recv(), "sync", "x")
            # A connection target reaches that one connection, on its own instance only.
            await self.publish({"player_id": "everywhere",
                                "connection_id": on_b.welcome["payload"]["connection_id"],
                                "type": "direct", "payload": 1})
            assert_update(self, await on_b.recv(), "direct", 1)
            self.assertEqual(await received_before_marker(self.r, self.channel, on_a,
                                                          "everywhere"), [])
        finally:
            await on_a.close()
            await on_b.close()

    async def test_broadcast_reaches_both_instances(self):
        conns = [await Client.player(self.gw["a"], "bc-a", "json"),
                 await Client.player(self.gw["b"], "bc-b", "msgpack"),
                 await Client.player(self.gw["b"], "bc-b2", "protobuf")]
        try:
            await self.publish({"broadcast": True, "type": "announce", "payload": {"m": 1},
                                "correlation_id": "bc"})
            for c in conns:
                assert_update(self, await c.recv(), "announce", {"m": 1}, "bc")
        finally:
            for c in conns:
                await c.close()

    async def test_player_ids_spanning_instances(self):
        pa = await Client.player(self.gw["a"], "group-a", "json")
        pb = await Client.player(self.gw["b"], "group-b", "json")
        try:
            await self.publish({"player_ids": ["group-a", "group-b"], "type": "g",
                                "payload": None})
            assert_update(self, await pa.recv(), "g", None)
            assert_update(self, await pb.recv(), "g", None)
        finally:
            await pa.close()
            await pb.close()

    async def test_commands_from_both_instances_land_in_one_stream(self):
        ca = await Client.player(self.gw["a"], "cmd-a", "json")
        cb = await Client.player(self.gw["b"], "cmd-b", "msgpack")
        try:
            seen = {}
            for i in range(5):
                for name, c in (("a", ca), ("b", cb)):
                    cid = f"{name}-{i}"
                    stream_id = check_ack(self, await c.command("t", {"i": i}, cid), cid)
                    self.assertNotIn(stream_id, seen, "two commands acked with one entry id")
                    seen[stream_id] = (name, cid, c)
            for stream_id, (name, cid, c) in seen.items():
                fields = entry(self.r, self.stream, stream_id)
                self.assertIsNotNone(fields, f"{cid} via {name} is not on {self.stream}")
                self.assertEqual(fields["correlation_id"], cid.encode())
                self.assertEqual(fields["gateway_id"], self.ids[name].encode(), fields)
                self.assertEqual(fields["player_id"], f"cmd-{name}".encode())
                self.assertEqual(fields["connection_id"],
                                 c.welcome["payload"]["connection_id"].encode())
            gateways = {f[b"gateway_id"] for _, f in self.r.xrange(self.stream)}
            self.assertTrue({self.ids["a"].encode(), self.ids["b"].encode()} <= gateways)
            self.assertNotEqual(ca.welcome["payload"]["connection_id"],
                                cb.welcome["payload"]["connection_id"])
        finally:
            await ca.close()
            await cb.close()

    async def test_room_spanning_both_instances(self):
        room = rh.unique("room")
        pa = await Client.player(self.gw["a"], "room-a", "json")
        pb = await Client.player(self.gw["b"], "room-b", "protobuf")
        try:
            # Each join is applied by the instance holding the player, ignored by the other.
            await self.publish({"op": "join", "player_id": "room-a", "room": room})
            await self.publish({"op": "join", "player_id": "room-b", "room": room})
            await self.publish({"room": room, "type": "chat", "payload": {"m": "hi"},
                                "correlation_id": "room-1"})
            assert_update(self, await pa.recv(), "chat", {"m": "hi"}, "room-1")
            assert_update(self, await pb.recv(), "chat", {"m": "hi"}, "room-1")
            await self.publish({"op": "leave", "player_id": "room-b", "room": room})
            await self.publish({"room": room, "type": "chat", "payload": "bye"})
            assert_update(self, await pa.recv(), "chat", "bye")
            self.assertEqual(await received_before_marker(self.r, self.channel, pb, "room-b"),
                             [], "room-b left, yet got the room's update")
        finally:
            await pa.close()
            await pb.close()


if __name__ == "__main__":
    h.run_main()
