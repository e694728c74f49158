#!/usr/bin/env python3
"""gatehouse-server in Redis mode, Redis healthy: the command stream (docs/protocol.md s. 4) read
back with XRANGE, updates (s. 5) sent with a real PUBLISH, `--stream-maxlen`, AUTH and SELECT
from the URL, the flags' environment twins.

Usage: test_redis_bus.py PATH/TO/gatehouse-server [unittest args]

Each class starts its own redis-server (redis_fixture.py) on a free loopback port and its own
gatehouse-server with a random stream, channel and gateway id.
"""

import asyncio
import json
import os
import secrets
import time

import gatehouse_harness as h
from gatehouse_harness import Client
import redis_helpers as rh
from redis_helpers import assert_update, check_ack, entry, received_before_marker
from redis_fixture import RedisServer

CODECS = ("json", "msgpack", "protobuf")


class OneGateway(rh.OneRedisGateway):
    """One redis-server and one gatehouse-server on it, for the whole class."""

    bot_keys = {"rover": "botkey-" + secrets.token_hex(8)}


class StreamEntries(OneGateway):
    """Every acked command is an entry holding exactly section 4's fields."""

    async def command(self, client, frame, correlation_id=None):
        """Sends a raw frame; returns (ack, the entry its stream_id names)."""
        await client.send_raw(frame)
        ack = await client.recv()
        stream_id = check_ack(self, ack, correlation_id)
        fields = await asyncio.to_thread(entry, self.r, self.stream, stream_id)
        self.assertIsNotNone(fields, f"the ack's stream_id {stream_id} is not on {self.stream}")
        return ack, fields

    def check_entry(self, fields, client, ack, *, type_, payload, codec, player_id,
                    kind="player", payload_codec=None, traceparent=None):
        want_keys = (set(rh.ENTRY_FIELDS) | ({"payload_codec"} if payload_codec else set())
                     | ({"traceparent"} if traceparent else set()))
        self.assertEqual(set(fields), want_keys, f"entry fields: {fields!r:.600}")
        self.assertEqual(fields["type"], type_.encode(), fields)
        self.assertEqual(fields["payload"], payload, fields)
        self.assertEqual(fields["codec"], codec.encode(), fields)
        self.assertEqual(fields["correlation_id"], ack["correlation_id"].encode(), fields)
        self.assertEqual(fields["player_id"], player_id.encode(), fields)
        self.assertEqual(fields["connection_id"],
                         client.welcome["payload"]["connection_id"].encode(), fields)
        self.assertEqual(fields["gateway_id"], self.gateway_id.encode(), fields)
        self.assertEqual(fields["client"], kind.encode(), fields)
        self.assertTrue(fields["ts_ms"].isdigit(), fields)
        skew_ms = abs(int(fields["ts_ms"]) - time.time() * 1000)
        self.assertLess(skew_ms, 5000, f"ts_ms {fields['ts_ms']!r} is not about now")
        if payload_codec:
            self.assertEqual(fields["payload_codec"], payload_codec.encode(), fields)
        if traceparent:
            self.assertEqual(fields["traceparent"], traceparent.encode(), fields)

    async def test_json_commands(self):
        c = await Client.player(self.server, "json-entry", "json")
        try:
            # The payload is the exact slice of the frame: inner whitespace, escapes and raw
            # UTF-8 kept as they came.
            payload = '{"move": [1, 2], "s": "\\u00e9\u2603", "n": 1e2}'
            frame = '{"type":"player_action","payload": ' + payload + ' ,"correlation_id":"j-1"}'
            ack, fields = await self.command(c, frame, "j-1")
            self.check_entry(fields, c, ack, type_="player_action", payload=payload.encode(),
                             codec="json", player_id="json-entry")
            # No correlation id: the entry carries the one the ack assigned; no payload: null.
            ack, fields = await self.command(c, '{"type":"ping"}')
            self.check_entry(fields, c, ack, type_="ping", payload=b"null", codec="json",
                             player_id="json-entry")
            ack, fields = await self.command(c, '{"type":"t","payload":17,"correlation_id":null}')
            self.check_entry(fields, c, ack, type_="t", payload=b"17", codec="json",
                             player_id="json-entry")
        finally:
            await c.close()

    async def test_msgpack_commands(self):
        c = await Client.player(self.server, "mp-entry", "msgpack")
        try:
            # Passed on as the bytes that came: MessagePack stays MessagePack (docs/protocol.md),
            # a JSON-representable payload as much as one with a bin value.
            for cid, payload in [("m-1", {"move": [1, 2], "f": 1.5, "neg": -7, "s": "\u00e9"}),
                                 ("m-2", {"blob": b"\x00\xff\x10", "ok": True})]:
                frame = h.mp_pack({"type": "player_action", "payload": payload,
                                   "correlation_id": cid})
                ack, fields = await self.command(c, frame, cid)
                self.check_entry(fields, c, ack, type_="player_action",
                                 payload=h.mp_pack(payload), codec="msgpack",
                                 player_id="mp-entry")
                self.assertEqual(h.mp_unpack(fields["payload"]), payload)
            # Missing payload and correlation id: nil, and the assigned id.
            ack, fields = await self.command(c, h.mp_pack({"type": "idle"}))
            self.check_entry(fields, c, ack, type_="idle", payload=b"\xc0", codec="msgpack",
                             player_id="mp-entry")
        finally:
            await c.close()

    async def test_protobuf_commands(self):
        c = await Client.player(self.server, "pb-entry", "protobuf")
        try:
            # A named payload: opaque bytes, codec protobuf, and the name as payload_codec.
            ack, fields = await self.command(
                c, h.pb_encode("move", b"\x08\x96\x01", "p-1", "game.v1.Move"), "p-1")
            self.check_entry(fields, c, ack, type_="move", payload=b"\x08\x96\x01",
                             codec="protobuf", player_id="pb-entry",
                             payload_codec="game.v1.Move")
            # Unnamed bytes (no payload_codec), not UTF-8: unchanged, and no payload_codec field.
            ack, fields = await self.command(
                c, h.pb_encode("blob", b"\xff\x00opaque\x80", "p-2", None), "p-2")
            self.check_entry(fields, c, ack, type_="blob", payload=b"\xff\x00opaque\x80",
                             codec="protobuf", player_id="pb-entry")
            # payload_codec json / msgpack: the stream's codec json / msgpack, bytes unchanged.
            ack, fields = await self.command(
                c, h.pb_encode("t", b'{"a": [1, 2]}', "p-3", "json"), "p-3")
            self.check_entry(fields, c, ack, type_="t", payload=b'{"a": [1, 2]}', codec="json",
                             player_id="pb-entry")
            mp = h.mp_pack({"a": 1, "b": [True, None]})
            ack, fields = await self.command(c, h.pb_encode("t", mp, None, "msgpack"))
            self.check_entry(fields, c, ack, type_="t", payload=mp, codec="msgpack",
                             player_id="pb-entry")
        finally:
            await c.close()

    async def test_update_id_stays_off_the_stream_and_traceparent_goes_on(self):
        # docs/protocol.md 6: a client's update_id means nothing on a command (it must not reach
        # the bus as a forged field); a well-formed traceparent becomes a stream field (6.8).
        # Junk in either is dropped, never an error: v1 clients could send any unknown field.
        trace = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
        for codec in CODECS:
            with self.subTest(codec=codec):
                c = await Client.player(self.server, "extras-" + codec, codec)
                try:
                    for i, (update_id, traceparent) in enumerate(
                            [("99999999999999-9", trace), ("not an id", "00-junk")]):
                        cid = f"x-{codec}-{i}"
                        if codec == "protobuf":
                            frame = h.pb_encode("t", b"[1]", cid, "json", update_id, traceparent)
                        else:
                            env = {"type": "t", "payload": [1], "correlation_id": cid,
                                   "update_id": update_id, "traceparent": traceparent}
                            frame = json.dumps(env) if codec == "json" else h.mp_pack(env)
                        ack, fields = await self.command(c, frame, cid)
                        self.check_entry(fields, c, ack, type_="t",
                                         payload=h.mp_pack([1]) if codec == "msgpack"
                                         else b"[1]", codec="msgpack" if codec == "msgpack"
                                         else "json", player_id="extras-" + codec,
                                         traceparent=trace if i == 0 else None)
                finally:
                    await c.close()

    async def test_bot_command(self):
        bot = await Client.bot(self.server, "rover")
        try:
            self.assertEqual(bot.welcome["payload"]["player_id"], "bot:rover", bot.welcome)
            payload = {"to": [3, 4]}
            frame = h.mp_pack({"type": "bot_move", "payload": payload, "correlation_id": "b-1"})
            ack, fields = await self.command(bot, frame, "b-1")
            self.check_entry(fields, bot, ack, type_="bot_move", payload=h.mp_pack(payload),
                             codec="msgpack", player_id="bot:rover", kind="bot")
        finally:
            await bot.close()

    async def test_each_connection_writes_its_own_connection_id(self):
        a = await Client.player(self.server, "two-conns", "json")
        b = await Client.player(self.server, "two-conns", "json")
        try:
            ids = set()
            for c, cid in ((a, "tc-a"), (b, "tc-b")):
                ack, fields = await self.command(c, json.dumps({"type": "t", "correlation_id":
                                                                cid}), cid)
                self.check_entry(fields, c, ack, type_="t", payload=b"null", codec="json",
                                 player_id="two-conns")
                ids.add(fields["connection_id"])
            self.assertEqual(len(ids), 2, ids)
        finally:
            await a.close()
            await b.close()

    def test_ready_200_with_redis_up(self):
        status, headers, body = self.server.http("GET", "/ready")
        self.assertEqual(status, 200, body)


class Updates(OneGateway):
    """Section 5 through a real PUBLISH on the updates channel."""

    async def test_player_update_to_every_connection_in_its_codec(self):
        conns = [await Client.player(self.server, "multi", codec) for codec in CODECS]
        conns.append(await Client.player(self.server, "multi", "protobuf", how="subprotocol"))
        try:
            payload = {"score": 17, "list": [1, "two", None, True], "f": 1.5, "s": "\u00e9\u2603"}
            await self.publish({"player_id": "multi", "type": "score", "payload": payload,
                                "correlation_id": "u-1"})
            for c in conns:
                assert_update(self, await c.recv(), "score", payload, "u-1")
            await self.publish({"player_id": "multi", "type": "tick", "payload": 5})
            for c in conns:
                assert_update(self, await c.recv(), "tick", 5)
        finally:
            for c in conns:
                await c.close()

    async def test_bot_receives_its_updates(self):
        bot = await Client.bot(self.server, "rover")
        try:
            await self.publish({"player_id": "bot:rover", "type": "order",
                                "payload": {"go": "north"}})
            assert_update(self, await bot.recv(), "order", {"go": "north"})
        finally:
            await bot.close()

    async def test_connection_target_reaches_only_that_connection(self):
        a = await Client.player(self.server, "targeted", "json")
        b = await Client.player(self.server, "targeted", "msgpack")
        try:
            await self.publish({"player_id": "targeted",
                                "connection_id": b.welcome["payload"]["connection_id"],
                                "type": "private", "payload": {"to": "b"},
                                "correlation_id": "pc-1"})
            assert_update(self, await b.recv(), "private", {"to": "b"}, "pc-1")
            self.assertEqual(await received_before_marker(self.r, self.channel, a, "targeted"),
                             [], "the player's other connection got it")
        finally:
            await a.close()
            await b.close()

    async def test_player_ids(self):
        a = await Client.player(self.server, "list-a", "json")
        b = await Client.player(self.server, "list-b", "protobuf")
        c = await Client.player(self.server, "list-c", "msgpack")
        try:
            await self.publish({"player_ids": ["list-a", "list-b", "list-offline"],
                                "type": "group", "payload": [1, 2]})
            assert_update(self, await a.recv(), "group", [1, 2])
            assert_update(self, await b.recv(), "group", [1, 2])
            self.assertEqual(await received_before_marker(self.r, self.channel, c, "list-c"), [])
        finally:
            for x in (a, b, c):
                await x.close()

    async def test_room_after_join_and_leave(self):
        room = rh.unique("room")
        a = await Client.player(self.server, "roomer-a", "json")
        b = await Client.player(self.server, "roomer-b", "msgpack")
        out = await Client.player(self.server, "outsider", "protobuf")
        try:
            # Before any join the room is empty (published to nobody).
            await self.publish({"room": room, "type": "chat", "payload": "before"})
            await self.publish({"op": "join", "player_id": "roomer-a", "room": room})
            await self.publish({"op": "join", "player_id": "roomer-b", "room": room})
            await self.publish({"room": room, "type": "chat", "payload": {"m": "hi"},
                                "correlation_id": "r-1"})
            assert_update(self, await a.recv(), "chat", {"m": "hi"}, "r-1")
            assert_update(self, await b.recv(), "chat", {"m": "hi"}, "r-1")
            self.assertEqual(await received_before_marker(self.r, self.channel, out,
                                                          "outsider"), [])
            await self.publish({"op": "leave", "player_id": "roomer-b", "room": room})
            await self.publish({"room": room, "type": "chat", "payload": "after-leave"})
            assert_update(self, await a.recv(), "chat", "after-leave")
            self.assertEqual(await received_before_marker(self.r, self.channel, b, "roomer-b"),
                             [], "a player who left still gets the room's updates")
        finally:
            for x in (a, b, out):
                await x.close()

    async def test_broadcast_reaches_every_connection(self):
        conns = [await Client.player(self.server, "bc-1", "json"),
                 await Client.player(self.server, "bc-2", "msgpack"),
                 await Client.player(self.server, "bc-2", "protobuf"),
                 await Client.bot(self.server, "rover")]
        try:
            await self.publish({"broadcast": True, "type": "announce",
                                "payload": {"msg": "maintenance"}, "correlation_id": "b1"})
            for c in conns:
                assert_update(self, await c.recv(), "announce", {"msg": "maintenance"}, "b1")
        finally:
            for c in conns:
                await c.close()

    async def test_player_not_connected_is_skipped(self):
        c = await Client.player(self.server, "present", "json")
        try:
            before = self.server.metrics()
            await self.publish({"player_id": "absent-" + secrets.token_hex(3), "type": "t",
                                "payload": 1})
            unrouted = h.metric_value(before, "gatehouse_updates_unrouted_total")
            self.assertEqual(self.server.wait_metric("gatehouse_updates_unrouted_total",
                                                     lambda v: v >= unrouted + 1),
                             unrouted + 1)
            self.assertEqual(await received_before_marker(self.r, self.channel, c, "present"),
                             [])
            after = self.server.metrics()
            self.assertEqual(h.metric_value(after, "gatehouse_updates_received_total"),
                             h.metric_value(before, "gatehouse_updates_received_total") + 2)
            self.assertEqual(h.metric_value(after, "gatehouse_updates_malformed_total"),
                             h.metric_value(before, "gatehouse_updates_malformed_total"))
        finally:
            await c.close()

    async def test_malformed_messages_dropped_counted_listener_keeps_going(self):
        bad = [
            ("not JSON", "not json at all"),
            ("not UTF-8", b"\xff\xfe{\x00"),
            ("empty message", ""),
            ("JSON array", "[1,2]"),
            ("JSON number", "42"),
            ("trailing bytes", '{"player_id":"survivor","type":"t"} x'),
            ("no target", '{"type":"t","payload":1}'),
            ("broadcast false", '{"broadcast":false,"type":"t"}'),
            ("bad type", '{"player_id":"survivor","type":"bad type!","payload":1}'),
            ("missing type", '{"player_id":"survivor","payload":1}'),
            ("type 65 chars", json.dumps({"player_id": "survivor", "type": "a" * 65})),
            ("unknown op", '{"op":"dance","player_id":"survivor","room":"r"}'),
            ("join without room", '{"op":"join","player_id":"survivor"}'),
            ("player_ids not a list", '{"player_ids":"survivor","type":"t","payload":1}'),
        ]
        c = await Client.player(self.server, "survivor", "msgpack")
        try:
            before = self.server.metric("gatehouse_updates_malformed_total")
            for name, message in bad:
                with self.subTest(name):
                    await self.publish(message)
            after = self.server.wait_metric("gatehouse_updates_malformed_total",
                                            lambda v: v >= before + len(bad))
            self.assertEqual(after, before + len(bad))
            # The listener is still there, and none of the bad ones reached the player.
            await self.publish({"player_id": "survivor", "type": "ok", "payload": 1})
            assert_update(self, await c.recv(), "ok", 1)
            await c.expect_nothing(0.3)
        finally:
            await c.close()

    async def test_1000_updates_arrive_complete_and_in_order(self):
        n = 1000
        a = await Client.player(self.server, "orderly", "json")
        b = await Client.player(self.server, "orderly", "msgpack")
        try:
            def publish_all():
                # Back to back: pipelined PUBLISHes, 100 per round trip.
                for start in range(0, n, 100):
                    pipe = self.r.pipeline(transaction=False)
                    for i in range(start, start + 100):
                        pipe.publish(self.channel, json.dumps(
                            {"player_id": "orderly", "type": "seq", "payload": {"i": i}}))
                    self.assertEqual(pipe.execute(), [1] * 100)
            pub = asyncio.create_task(asyncio.to_thread(publish_all))
            t0 = time.monotonic()
            for c in (a, b):
                seen = []
                deadline = time.monotonic() + 30
                while len(seen) < n and time.monotonic() < deadline:
                    env = await c.recv(timeout=10)
                    self.assertEqual(env["type"], "seq", env)
                    seen.append(env["payload"]["i"])
                self.assertEqual(seen, list(range(n)), f"{c.codec} connection: order")
            await pub
            h.note(f"{n} updates to two connections in {time.monotonic() - t0:.2f} s")
            await a.expect_nothing(0.2)
        finally:
            await a.close()
            await b.close()


class StreamMaxlen(OneGateway):
    """--stream-maxlen 100: XADD MAXLEN ~ 100 keeps the stream about that long."""

    @classmethod
    def extra_args(cls):
        return ["--stream-maxlen", "100", "--ws-rate-limit", "0"]

    async def test_stream_stays_bounded(self):
        n = 1000
        c = await Client.player(self.server, "trimmed", "msgpack")
        try:
            async def send_all():
                for i in range(n):
                    await c.send("t", {"i": i}, f"x-{i}")
            sender = asyncio.create_task(send_all())
            acked = 0
            last_id = None
            for _ in range(n):
                env = await c.recv(timeout=10)
                last_id = check_ack(self, env)
                acked += 1
            await sender
            self.assertEqual(acked, n)
            length = self.r.xlen(self.stream)
            h.note(f"XLEN after {n} commands with --stream-maxlen 100: {length}")
            self.assertGreaterEqual(length, 100, "trimming keeps at least MAXLEN entries")
            self.assertLessEqual(length, 400, "approximate trimming, but trimming")
            # The newest entry is kept.
            self.assertIsNotNone(entry(self.r, self.stream, last_id))
        finally:
            await c.close()


class LoggedUpdates(OneGateway):
    """docs/protocol.md 6.4: the gateway loads the `gatehouse` function library at connect, with
    --update-log-size and --update-log-ttl baked in; any Redis client then publishes logged
    updates with FCALL gatehouse_publish, and plain PUBLISH keeps working unlogged."""

    @classmethod
    def extra_args(cls):
        return ["--update-log-size", "2", "--update-log-ttl", "60"]

    async def fcall(self, message):
        return await asyncio.to_thread(self.r.execute_command, "FCALL", "gatehouse_publish", 0,
                                       self.channel, json.dumps(message))

    async def test_fcall_logs_and_delivers(self):
        c = await Client.player(self.server, "logged", "json")
        try:
            ids = []
            for i in range(3):
                reply = await self.fcall({"player_id": "logged", "type": "n", "payload": i})
                self.assertEqual(len(reply), 2, reply)
                self.assertEqual(reply[0], b"logged", reply)
                ids.append(reply[1].decode())
                assert_update(self, await c.recv(), "n", i)
            key = f"{self.channel}:log:logged"
            self.assertEqual(self.r.xlen(key), 2, "--update-log-size 2 caps the log")
            self.assertEqual([e[0].decode() for e in self.r.xrange(key)], ids[1:])
            self.assertLessEqual(self.r.pttl(key), 60000, "--update-log-ttl 60")
            self.assertGreater(self.r.pttl(key), 50000)
            # The log can be read with FCALL_RO, as the gateway does on resume.
            replay = self.r.execute_command("FCALL_RO", "gatehouse_read", 1, key, ids[1])
            self.assertEqual([[i.decode(), json.loads(m)["payload"]] for i, m in replay],
                             [[ids[2], 2]])
            self.assertEqual(self.r.execute_command("FCALL_RO", "gatehouse_read", 1, key,
                                                    ids[0]), b"gap")
        finally:
            await c.close()

    async def test_unlogged_shapes_and_refusals(self):
        c = await Client.player(self.server, "room-logged", "json")
        logs_before = set(self.r.keys(f"{self.channel}:log:*"))
        try:
            self.assertEqual(await self.fcall({"broadcast": True, "type": "all", "payload": 1}),
                             [])
            assert_update(self, await c.recv(), "all", 1)
            with self.assertRaises(Exception) as refused:
                await asyncio.to_thread(self.r.execute_command, "FCALL", "gatehouse_publish", 0,
                                        self.channel, "[1, 2]")
            self.assertIn("invalid_update", str(refused.exception))
            self.assertEqual(set(self.r.keys(f"{self.channel}:log:*")), logs_before)
        finally:
            await c.close()


class Auth(h.AsyncCase):
    """A redis-server with requirepass: the URL's password is used (AUTH), and a wrong one
    leaves the gateway unready, refusing commands with bus_unavailable."""

    PASSWORD = "pw-" + secrets.token_hex(6)

    @classmethod
    def setUpClass(cls):
        cls.redis = RedisServer(password=cls.PASSWORD).start()
        cls.r = cls.redis.client()
        cls.servers = []

    @classmethod
    def tearDownClass(cls):
        problems = []
        try:
            for s in cls.servers:
                problems += rh.stop_and_check(s)
        finally:
            cls.redis.close()
        if problems:
            raise AssertionError("\n".join(problems))

    def start(self, url, *extra):
        stream = rh.unique("gh:auth")
        s = rh.redis_gateway(url, stream, rh.unique("gh:auth-updates"), rh.unique("gw"),
                             *extra)
        self.servers.append(s)
        return s.start(), stream

    async def test_right_password_acks(self):
        server, stream = self.start(self.redis.url)
        self.assertIn(f":{self.PASSWORD}@", self.redis.url)
        self.assertEqual(rh.wait_ready(server, 200, 5)[0], 200)
        c = await Client.player(server, "authed", "json")
        try:
            stream_id = check_ack(self, await c.command("t", {"a": 1}, "auth-1"), "auth-1")
            fields = entry(self.r, stream, stream_id)
            self.assertIsNotNone(fields)
            self.assertEqual(fields["correlation_id"], b"auth-1")
        finally:
            await c.close()
        self.assertNotIn(self.PASSWORD, server.stderr_text(), "the password reached the log")
        self.assertNotIn(self.PASSWORD, server.stdout_text())

    async def test_wrong_password_unready_and_bus_unavailable(self):
        wrong_password = "wrong-" + secrets.token_hex(6)
        wrong = f"redis://:{wrong_password}@127.0.0.1:{self.redis.port}"
        server, stream = self.start(wrong, "--redis-timeout", "1")
        status, _ = rh.wait_ready(server, 200, 1.5)  # give it every chance to (wrongly) be ready
        self.assertEqual(status, 503)
        status, headers, body = server.http("GET", "/ready")
        self.assertEqual(status, 503, body)
        self.assertTrue(headers.get("content-type", "").startswith("application/problem+json"),
                        headers)
        c = await Client.player(server, "unauthed", "json")
        try:
            for i in range(3):
                env = await c.command("t", {"i": i}, f"wp-{i}")
                rh.check_bus_unavailable(self, env, f"wp-{i}")
        finally:
            await c.close()
        self.assertEqual(self.r.exists(stream), 0, "nothing reached the stream")
        self.assertNotIn(wrong_password, server.stderr_text(), "the password reached the log")


class SelectAndEnvironment(OneGateway):
    """`/3` in the URL selects db 3; here every Redis setting comes from the GATEHOUSE_*
    environment twins instead of flags."""

    @classmethod
    def setUpClass(cls):
        cls.redis = RedisServer().start()
        cls.stream = rh.unique("gh:db3")
        cls.channel = rh.unique("gh:db3-updates")
        cls.gateway_id = rh.unique("gw-env")
        env = {"GATEHOUSE_REDIS": cls.redis.url + "/3",
               "GATEHOUSE_COMMAND_STREAM": cls.stream,
               "GATEHOUSE_UPDATES_CHANNEL": cls.channel,
               "GATEHOUSE_GATEWAY_ID": cls.gateway_id,
               "GATEHOUSE_STREAM_MAXLEN": "50",
               "GATEHOUSE_REDIS_TIMEOUT": "2",
               "GATEHOUSE_REDIS_RECONNECT_MAX": "0.5",
               "GATEHOUSE_WS_RATE_LIMIT": "0"}
        try:
            cls.server = rh.redis_gateway(None, None, None, None, env=env).start()
        except BaseException:
            cls.redis.close()
            raise
        cls.r = cls.redis.client(db=3)

    async def test_entries_in_db_3(self):
        c = await Client.player(self.server, "db3", "json")
        try:
            stream_id = check_ack(self, await c.command("t", {"db": 3}, "db-3"), "db-3")
        finally:
            await c.close()
        fields = entry(self.r, self.stream, stream_id)
        self.assertIsNotNone(fields, "not in db 3 (stream or db from the environment ignored?)")
        self.assertEqual(fields["gateway_id"], self.gateway_id.encode())
        self.assertEqual(self.redis.client(db=0).exists(self.stream), 0, "written to db 0 too")

    async def test_updates_channel_from_environment(self):
        # Pub/Sub is not per database: the channel is the same whatever db the URL selects.
        c = await Client.player(self.server, "env-updates", "msgpack")
        try:
            await self.publish({"player_id": "env-updates", "type": "t", "payload": [1]})
            assert_update(self, await c.recv(), "t", [1])
        finally:
            await c.close()

    async def test_stream_maxlen_from_environment(self):
        c = await Client.player(self.server, "env-maxlen", "msgpack")
        try:
            for i in range(300):
                await c.send("t", i, f"e-{i}")
            for _ in range(300):
                check_ack(self, await c.recv(timeout=10))
        finally:
            await c.close()
        length = self.r.xlen(self.stream)
        self.assertLessEqual(length, 250, f"XLEN {length} with GATEHOUSE_STREAM_MAXLEN=50")


def thread_policies(pid):
    """The scheduling policy of each of a process's threads (os.SCHED_*)."""
    policies = []
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            policies.append(os.sched_getscheduler(int(tid)))
        except ProcessLookupError:
            pass  # a thread that ended meanwhile
    return policies


async def command_acked(case, player):
    """One command from a new client of `player`, acked: the bus's threads are all running."""
    c = await Client.player(case.server, player, "json")
    try:
        await c.send("t", 1, "s-1")
        check_ack(case, await c.recv())
    finally:
        await c.close()


class DefaultScheduling(OneGateway):
    """Without --redis-batch-scheduling no thread of the server leaves the default policy."""

    async def test_no_thread_runs_under_sched_batch(self):
        await command_acked(self, "sched-default")
        policies = thread_policies(self.server.proc.pid)
        self.assertGreaterEqual(len(policies), 3, policies)
        self.assertNotIn(os.SCHED_BATCH, policies)


class BatchScheduling(OneGateway):
    """--redis-batch-scheduling: the bus's I/O threads (producer and subscriber) run under
    SCHED_BATCH, the gateway's own threads do not, and commands still flow."""

    @classmethod
    def extra_args(cls):
        return ["--redis-batch-scheduling"]

    async def test_bus_threads_run_under_sched_batch(self):
        await command_acked(self, "sched-batch")
        policies = thread_policies(self.server.proc.pid)
        self.assertEqual(policies.count(os.SCHED_BATCH), 2, policies)
        self.assertIn(os.SCHED_OTHER, policies)


if __name__ == "__main__":
    h.run_main()
