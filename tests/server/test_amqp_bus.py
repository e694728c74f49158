#!/usr/bin/env python3
"""gatehouse-server in RabbitMQ mode (`--amqp`, issue 20), broker healthy: every section 4 field
of a command read back from the command queue with pika, services' own queues bound by type,
every section 5 update shape published with pika to the updates exchange, order over 1000
updates, two instances on one broker, `--amqp` with `--redis` refused.

Usage: test_amqp_bus.py PATH/TO/gatehouse-server [unittest args]

One rabbitmq-server for the whole file (rabbitmq_fixture.py: starting one takes seconds); each
class has its own exchanges and gateway ids, so classes never see each other's traffic.
"""

import asyncio
import json
import subprocess
import time

import amqp_helpers as ah
from amqp_helpers import Broker, amqp_gateway, received_before_marker, wait_message
import gatehouse_harness as h
from gatehouse_harness import Client
import redis_helpers as rh
from redis_helpers import assert_update, check_ack
from rabbitmq_fixture import RabbitMQServer

CODECS = ("json", "msgpack", "protobuf")
RABBIT = None


def setUpModule():
    global RABBIT
    t0 = time.monotonic()
    RABBIT = RabbitMQServer().start()
    h.note(f"rabbitmq-server started in {time.monotonic() - t0:.1f} s")


def tearDownModule():
    if RABBIT is not None:
        RABBIT.close()


class OneGateway(h.AsyncCase):
    """One gatehouse-server on the file's broker, with exchanges of its own."""

    bot_keys = {"rover": "botkey-rover-amqp"}
    extra_args = ()

    @classmethod
    def setUpClass(cls):
        cls.exchange = ah.unique("gh.commands")
        cls.updates = ah.unique("gh.updates")
        cls.gateway_id = ah.unique("gw")
        cls.server = amqp_gateway(RABBIT.url, cls.exchange, cls.updates, cls.gateway_id,
                                  *cls.extra_args, bot_keys=cls.bot_keys).start()
        cls.broker = Broker(RABBIT)
        cls.pending = {}

    @classmethod
    def tearDownClass(cls):
        cls.broker.close()
        problems = rh.stop_and_check(cls.server)
        if problems:
            raise AssertionError("\n".join(problems))

    async def publish(self, message):
        await asyncio.to_thread(self.broker.publish, self.updates, message)


class Commands(OneGateway):
    """Each acked command is a persistent message on the command queue: body the payload, the
    other fields as headers, correlation_id and timestamp as properties, the type as routing
    key."""

    async def command(self, client, frame, correlation_id=None):
        await client.send_raw(frame)
        ack = await client.recv()
        stream_id = check_ack(self, ack, correlation_id)
        got = await wait_message(self.broker, self.exchange, self.gateway_id, stream_id,
                                 self.pending)
        self.assertIsNotNone(got, f"the ack's stream_id {stream_id} is not in {self.exchange}")
        return ack, got

    def check_message(self, got, client, ack, *, type_, payload, codec, player_id,
                      kind="player", payload_codec=None, traceparent=None):
        method, props, body = got
        headers = {k: (v.decode() if isinstance(v, bytes) else v)
                   for k, v in (props.headers or {}).items()}
        want = (set(ah.HEADER_FIELDS) | ({"payload_codec"} if payload_codec else set())
                | ({"traceparent"} if traceparent else set()))
        self.assertEqual(set(headers), want, headers)
        self.assertEqual(body, payload)
        self.assertEqual(method.routing_key, type_)
        self.assertEqual(method.exchange, self.exchange)
        self.assertEqual(headers["type"], type_)
        self.assertEqual(headers["codec"], codec)
        self.assertEqual(headers["correlation_id"], ack["correlation_id"])
        self.assertEqual(headers["player_id"], player_id)
        self.assertEqual(headers["connection_id"], client.welcome["payload"]["connection_id"])
        self.assertEqual(headers["gateway_id"], self.gateway_id)
        self.assertEqual(headers["client"], kind)
        self.assertIsInstance(headers["ts_ms"], int, headers)
        self.assertLess(abs(headers["ts_ms"] - time.time() * 1000), 5000, headers)
        if payload_codec:
            self.assertEqual(headers["payload_codec"], payload_codec)
        if traceparent:
            self.assertEqual(headers["traceparent"], traceparent)
        # Properties: persistent, the correlation id, the acceptance time in seconds.
        self.assertEqual(props.delivery_mode, 2)
        self.assertEqual(props.correlation_id, ack["correlation_id"])
        self.assertEqual(props.timestamp, headers["ts_ms"] // 1000)
        self.assertEqual(props.type, type_)
        self.assertEqual(props.message_id, f"{self.gateway_id}/{ack['payload']['stream_id']}")

    async def test_json_commands(self):
        c = await Client.player(self.server, "json-entry", "json")
        try:
            payload = '{"move": [1, 2], "s": "\\u00e9\u2603", "n": 1e2}'
            frame = '{"type":"player_action","payload": ' + payload + ' ,"correlation_id":"j-1"}'
            ack, got = await self.command(c, frame, "j-1")
            self.check_message(got, c, ack, type_="player_action", payload=payload.encode(),
                               codec="json", player_id="json-entry")
            self.assertEqual(got[1].content_type, "application/json")
            ack, got = await self.command(c, '{"type":"ping"}')
            self.check_message(got, c, ack, type_="ping", payload=b"null", codec="json",
                               player_id="json-entry")
        finally:
            await c.close()

    async def test_msgpack_commands(self):
        c = await Client.player(self.server, "mp-entry", "msgpack")
        try:
            payload = {"blob": b"\x00\xff\x10", "ok": True}
            frame = h.mp_pack({"type": "player_action", "payload": payload,
                               "correlation_id": "m-1"})
            ack, got = await self.command(c, frame, "m-1")
            self.check_message(got, c, ack, type_="player_action", payload=h.mp_pack(payload),
                               codec="msgpack", player_id="mp-entry")
        finally:
            await c.close()

    async def test_protobuf_commands_and_traceparent(self):
        c = await Client.player(self.server, "pb-entry", "protobuf")
        try:
            ack, got = await self.command(
                c, h.pb_encode("move", b"\x08\x96\x01", "p-1", "game.v1.Move"), "p-1")
            self.check_message(got, c, ack, type_="move", payload=b"\x08\x96\x01",
                               codec="protobuf", player_id="pb-entry",
                               payload_codec="game.v1.Move")
        finally:
            await c.close()
        j = await Client.player(self.server, "tp-entry", "json")
        try:
            tp = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
            frame = json.dumps({"type": "traced", "payload": 1, "correlation_id": "t-1",
                                "traceparent": tp})
            ack, got = await self.command(j, frame, "t-1")
            self.check_message(got, j, ack, type_="traced", payload=b"1", codec="json",
                               player_id="tp-entry", traceparent=tp)
        finally:
            await j.close()

    async def test_bot_command(self):
        bot = await Client.bot(self.server, "rover")
        try:
            frame = h.mp_pack({"type": "scan", "payload": {"r": 3}, "correlation_id": "b-1"})
            ack, got = await self.command(bot, frame, "b-1")
            self.check_message(got, bot, ack, type_="scan", payload=h.mp_pack({"r": 3}),
                               codec="msgpack", player_id="bot:rover", kind="bot")
        finally:
            await bot.close()

    async def test_service_queue_bound_by_type_gets_only_that_type(self):
        own = ah.unique("svc.trades")

        def declare():
            self.broker.ch.queue_declare(own, exclusive=True)
            self.broker.ch.queue_bind(own, self.exchange, routing_key="trade.*")
        await asyncio.to_thread(declare)
        c = await Client.player(self.server, "trader", "json")
        try:
            ids = []
            for t in ("trade.offer", "chat", "trade.accept", "move"):
                ack, _ = await self.command(c, json.dumps({"type": t, "payload": {}}))
                ids.append(ack["payload"]["stream_id"])
            got = await asyncio.to_thread(self.broker.drain, own)
            self.assertEqual([m.routing_key for m, _, _ in got], ["trade.offer", "trade.accept"])
            self.assertEqual([p.message_id.split("/", 1)[1] for _, p, _ in got],
                             [ids[0], ids[2]])
        finally:
            await c.close()

    async def test_deleted_queue_unroutable_command_refused_then_queue_declared_again(self):
        await asyncio.to_thread(self.broker.drain, self.exchange)
        await asyncio.to_thread(self.broker.ch.queue_delete, self.exchange)
        c = await Client.player(self.server, "unroutable", "json")
        try:
            # The broker returns the mandatory message: an error, never an ack.
            answer = await c.command("lost", 1, "u-1")
            rh.check_bus_unavailable(self, answer, "u-1")
            # The bus declared its queue again: the next command is acked and queued.
            ack, got = await self.command(c, '{"type":"kept","correlation_id":"u-2"}', "u-2")
            self.assertEqual(got[0].routing_key, "kept")
        finally:
            await c.close()

    def test_ready_and_metrics(self):
        status, _, body = self.server.http("GET", "/ready")
        self.assertEqual(status, 200, body)
        self.assertIn(b'"bus":"amqp"', body)
        self.assertEqual(self.server.metric("gatehouse_amqp_connected"), 1)


class Presence(OneGateway):
    """--presence-events (docs/protocol.md 6.8) on RabbitMQ: gatehouse.connected/disconnected are
    messages on the command exchange like any command, routed by their type."""

    extra_args = ("--presence-events",)

    async def test_connected_and_disconnected_messages(self):
        c = await Client.player(self.server, "present", "msgpack")
        cid = c.welcome["payload"]["connection_id"]
        await c.close()
        want = ["gatehouse.connected", "gatehouse.disconnected"]
        got = []
        deadline = time.monotonic() + 20  # generous: a loaded 2-core CI
        while len(got) < 2 and time.monotonic() < deadline:
            got += await asyncio.to_thread(self.broker.drain, self.exchange)
            await asyncio.sleep(0.05)
        self.assertEqual([m.routing_key for m, _, _ in got], want)
        for method, props, body in got:
            headers = {k: (v.decode() if isinstance(v, bytes) else v)
                       for k, v in props.headers.items()}
            self.assertEqual(headers["client"], "system", headers)
            self.assertEqual(headers["player_id"], "present", headers)
            self.assertEqual(headers["connection_id"], cid, headers)
            self.assertEqual(json.loads(body)["connection_id"], cid)


class Alarm(OneGateway):
    """A broker that blocks publishing (its memory alarm, forced with rabbitmqctl): unready and
    bus_unavailable at once, never an ack; healed when the alarm clears."""

    async def test_memory_alarm_refuses_commands_until_it_clears(self):
        c = await Client.player(self.server, "alarmed", "json")
        try:
            check_ack(self, await c.command("t", 1, "a-1"), "a-1")
            r = await asyncio.to_thread(RABBIT.ctl, "set_vm_memory_high_watermark", "0.000001")
            self.assertEqual(r.returncode, 0, r.stderr)
            try:
                # The broker blocks a connection when it next publishes: commands, each
                # answered (an ack while the alarm is not in force yet), until /ready says 503.
                deadline = time.monotonic() + 15
                k = 0
                while rh.ready_status(self.server) != 503:
                    self.assertLess(time.monotonic(), deadline, "/ready never said 503")
                    k += 1
                    answer = await c.command("t", 2, f"a-2-{k}")
                    self.assertIn(rh.answer_kind(answer), ("ack", "bus_unavailable"), answer)
                    await asyncio.sleep(0.1)
                for k in range(3):
                    rh.check_bus_unavailable(self, await c.command("t", 2, f"b-{k}"), f"b-{k}")
            finally:
                r = await asyncio.to_thread(RABBIT.ctl, "set_vm_memory_high_watermark", "0.4")
                self.assertEqual(r.returncode, 0, r.stderr)
            status, waited = await asyncio.to_thread(rh.wait_ready, self.server, 200, 10)
            self.assertEqual(status, 200, f"/ready still {status} after {waited:.1f} s")
            check_ack(self, await c.command("t", 3, "a-3"), "a-3")
        finally:
            await c.close()


class Updates(OneGateway):
    """Section 5's shapes, published with pika to the updates exchange."""

    async def test_player_update_to_every_connection_in_its_codec(self):
        conns = [await Client.player(self.server, "multi", codec) for codec in CODECS]
        try:
            payload = {"score": 17, "list": [1, "two", None, True], "s": "\u00e9\u2603"}
            await self.publish({"player_id": "multi", "type": "score", "payload": payload,
                                "correlation_id": "u-1"})
            for c in conns:
                assert_update(self, await c.recv(), "score", payload, "u-1")
        finally:
            for c in conns:
                await c.close()

    async def test_connection_target_and_player_ids(self):
        a = await Client.player(self.server, "targeted", "json")
        b = await Client.player(self.server, "targeted", "msgpack")
        c = await Client.player(self.server, "list-c", "protobuf")
        try:
            await self.publish({"player_id": "targeted",
                                "connection_id": b.welcome["payload"]["connection_id"],
                                "type": "private", "payload": {"to": "b"}})
            assert_update(self, await b.recv(), "private", {"to": "b"})
            self.assertEqual(await received_before_marker(self.broker, self.updates, a,
                                                          "targeted"), [])
            self.assertEqual((await b.recv())["type"], "marker")  # b is "targeted" too
            await self.publish({"player_ids": ["targeted", "list-c", "offline"], "type": "group",
                                "payload": [1, 2]})
            for x in (a, b, c):
                assert_update(self, await x.recv(), "group", [1, 2])
        finally:
            for x in (a, b, c):
                await x.close()

    async def test_room_join_leave_and_broadcast(self):
        room = ah.unique("room")
        a = await Client.player(self.server, "roomer-a", "json")
        out = await Client.player(self.server, "outsider", "msgpack")
        try:
            await self.publish({"op": "join", "player_id": "roomer-a", "room": room})
            await self.publish({"room": room, "type": "chat", "payload": "in"})
            assert_update(self, await a.recv(), "chat", "in")
            self.assertEqual(await received_before_marker(self.broker, self.updates, out,
                                                          "outsider"), [])
            await self.publish({"op": "leave", "player_id": "roomer-a", "room": room})
            await self.publish({"room": room, "type": "chat", "payload": "after"})
            self.assertEqual(await received_before_marker(self.broker, self.updates, a,
                                                          "roomer-a"), [])
            await self.publish({"broadcast": True, "type": "news", "payload": "all"})
            for x in (a, out):
                assert_update(self, await x.recv(), "news", "all")
        finally:
            await a.close()
            await out.close()

    async def test_malformed_messages_dropped_and_listener_keeps_going(self):
        a = await Client.player(self.server, "sturdy", "json")
        try:
            for bad in ("not json", "[1,2]", {"type": "x", "payload": 1},
                        {"player_id": "sturdy", "type": "bad type!", "payload": 1},
                        {"op": "dance", "player_id": "sturdy", "room": "r"}):
                await self.publish(bad)
            await self.publish({"player_id": "sturdy", "type": "fine", "payload": 1})
            assert_update(self, await a.recv(), "fine", 1)
        finally:
            await a.close()

    async def test_1000_updates_arrive_complete_and_in_order(self):
        n = 1000
        a = await Client.player(self.server, "orderly", "json")
        b = await Client.player(self.server, "orderly", "msgpack")
        try:
            def publish_all():
                for i in range(n):
                    self.broker.publish(self.updates, {"player_id": "orderly", "type": "seq",
                                                       "payload": {"i": i}})
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


class TwoInstances(h.AsyncCase):
    """Two gateways on one broker: one command queue, each its own updates queue."""

    @classmethod
    def setUpClass(cls):
        cls.exchange = ah.unique("gh.commands")
        cls.updates = ah.unique("gh.updates")
        cls.ids = (ah.unique("gw-a"), ah.unique("gw-b"))
        secret = "two-instances-secret-" + ah.unique("s")
        cls.servers = []
        for gid in cls.ids:
            s = amqp_gateway(RABBIT.url, cls.exchange, cls.updates, gid)
            s.jwt_secret = secret
            s.args[s.args.index("--jwt-secret") + 1] = secret
            cls.servers.append(s.start())
        cls.broker = Broker(RABBIT)

    @classmethod
    def tearDownClass(cls):
        cls.broker.close()
        problems = []
        for s in cls.servers:
            problems += rh.stop_and_check(s)
        if problems:
            raise AssertionError("\n".join(problems))

    async def publish(self, message):
        await asyncio.to_thread(self.broker.publish, self.updates, message)

    async def test_commands_from_both_land_in_one_queue(self):
        a = await Client.player(self.servers[0], "p-a", "json")
        b = await Client.player(self.servers[1], "p-b", "json")
        try:
            want = {}
            for i in range(20):
                for c, gid in ((a, self.ids[0]), (b, self.ids[1])):
                    await c.send("move", {"i": i})
                    ack = await c.recv()
                    want[f"{gid}/{check_ack(self, ack)}"] = gid
            got = await asyncio.to_thread(self.broker.drain, self.exchange)
            seen = {p.message_id: p.headers["gateway_id"] for _, p, _ in got}
            seen = {k: (v.decode() if isinstance(v, bytes) else v) for k, v in seen.items()}
            self.assertEqual(seen, want)
        finally:
            await a.close()
            await b.close()

    async def test_updates_reach_the_instance_holding_the_player_and_broadcast_both(self):
        a = await Client.player(self.servers[0], "holder", "json")
        b = await Client.player(self.servers[1], "elsewhere", "json")
        both = await Client.player(self.servers[1], "holder", "msgpack")
        try:
            await self.publish({"player_id": "holder", "type": "hi", "payload": 1})
            assert_update(self, await a.recv(), "hi", 1)
            assert_update(self, await both.recv(), "hi", 1)
            self.assertEqual(await received_before_marker(self.broker, self.updates, b,
                                                          "elsewhere"), [])
            await self.publish({"broadcast": True, "type": "all", "payload": 2})
            for c in (a, b, both):
                assert_update(self, await c.recv(), "all", 2)
        finally:
            for c in (a, b, both):
                await c.close()


class Flags(h.AsyncCase):
    def test_amqp_with_redis_is_a_usage_error(self):
        p = subprocess.run([h.SERVER_BINARY, "--listen", "127.0.0.1:0", "--amqp", RABBIT.url,
                            "--redis", "redis://127.0.0.1:1"], capture_output=True, timeout=20)
        self.assertEqual(p.returncode, 2, p.stderr)
        self.assertIn(b"exclude each other", p.stdout + p.stderr)

    def test_bad_url_is_a_usage_error_without_the_password(self):
        p = subprocess.run([h.SERVER_BINARY, "--listen", "127.0.0.1:0", "--amqp",
                            "amqps://u:topsecret@h/"], capture_output=True, timeout=20)
        self.assertEqual(p.returncode, 2, p.stderr)
        self.assertNotIn(b"topsecret", p.stdout + p.stderr)

    def test_dedupe_window_is_accepted_with_a_warning(self):
        server = amqp_gateway(RABBIT.url, ah.unique("gh.c"), ah.unique("gh.u"), ah.unique("gw"),
                              "--dedupe-window", "30")
        server.start()
        self.addCleanup(server.kill)
        self.assertIn("--dedupe-window has no effect with --amqp", server.stderr_text())
        self.assertEqual(rh.wait_ready(server, 200, 30)[0], 200)

    def test_refused_login_never_shows_the_password(self):
        # The broker refuses the login; at debug level, neither the logs nor /ready may
        # carry the password, while the redacted URL says which broker is meant.
        password = "wr0ng-" + ah.unique("pw")
        url = RABBIT.url.replace("guest:guest@", f"guest:{password}@")
        server = amqp_gateway(url, ah.unique("gh.c"), ah.unique("gh.u"), ah.unique("gw"),
                              "--amqp-timeout", "1", "--log-level", "debug")
        server.start()
        self.addCleanup(server.kill)
        deadline = time.monotonic() + 30
        while "cannot connect" not in server.stdout_text() + server.stderr_text():
            self.assertLess(time.monotonic(), deadline, server.stderr_text()[-1500:])
            time.sleep(0.05)
        status, _, body = server.http("GET", "/ready", timeout=5)
        self.assertEqual(status, 503)
        logs = server.stdout_text() + server.stderr_text()
        self.assertIn("guest:***@", logs)
        self.assertNotIn(password, logs + repr(body))


if __name__ == "__main__":
    h.run_main()
