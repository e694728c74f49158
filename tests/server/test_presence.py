#!/usr/bin/env python3
"""docs/protocol.md 6.8 on gatehouse-server with a real redis-server, read back with XRANGE (and
once on the in-process bus, counted):
`--presence-events` entries (`gatehouse.connected` / `gatehouse.disconnected`, client `system`)
for players and bots in every codec, after a client's close, a server's close and a shutdown,
none for event streams and none without the flag; a command's `traceparent` from the
`POST /commands` header onto the stream (the envelope's wins, an invalid one is ignored); an
update's `traceparent` (PUBLISH, FCALL gatehouse_publish, POST /updates, a resume's replay) to
the client in every codec and on event streams.

Usage: test_presence.py PATH/TO/gatehouse-server [unittest args]
"""

import asyncio
import http.client
import json
import secrets
import time

import gatehouse_harness as h
from gatehouse_harness import Client
import redis_helpers as rh
from accounts_helpers import SseStream
from redis_fixture import RedisServer

CODECS = ("json", "msgpack", "protobuf")
TRACE = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
OTHER_TRACE = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00"
# Invalid W3C traceparents: upper case, an all-zero trace id, the forbidden version ff.
BAD_TRACES = ("00-4BF92F3577B34DA6A3CE929D0E0E4736-00F067AA0BA902B7-01",
              "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
              "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
PUBLISH_KEY = "pk-" + secrets.token_hex(8)
LIMIT = 4096


async def wait_entries(case, predicate, timeout=3.0):
    """Bounded poll of the class's stream: [(id, fields)] of the entries matching `predicate`,
    once there is at least one."""
    deadline = time.monotonic() + timeout
    while True:
        entries = await asyncio.to_thread(rh.all_entries, case.r, case.stream)
        found = [(i, f) for i, f in entries.items() if predicate(f)]
        if found:
            return found
        if time.monotonic() >= deadline:
            raise AssertionError(f"no matching entry within {timeout} s in "
                                 f"{list(entries.values())!r:.1500}")
        await asyncio.sleep(0.02)


def presence_of(connection_id, type_):
    return lambda f: (f.get("connection_id") == connection_id.encode()
                      and f.get("type") == type_.encode())


class PresenceCase(rh.OneRedisGateway):
    bot_keys = {"rover": "botkey-" + secrets.token_hex(8)}

    @classmethod
    def extra_args(cls):
        return ["--presence-events", "--publish-key", PUBLISH_KEY,
                "--max-message-bytes", str(LIMIT)]

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.server.publish_key = PUBLISH_KEY

    def check_presence(self, fields, type_, *, player_id, connection_id, client, codec):
        """Exactly section 4's fields, with client `system` and the 6.8 payload."""
        self.assertEqual(set(fields), rh.ENTRY_FIELDS, fields)
        self.assertEqual(fields["type"], type_.encode(), fields)
        self.assertEqual(fields["codec"], b"json", fields)
        self.assertEqual(fields["payload"], json.dumps(
            {"connection_id": connection_id, "client": client, "codec": codec},
            separators=(",", ":")).encode(), fields)
        self.assertEqual(fields["client"], b"system", fields)
        self.assertEqual(fields["player_id"], player_id.encode(), fields)
        self.assertEqual(fields["connection_id"], connection_id.encode(), fields)
        self.assertEqual(fields["gateway_id"], self.gateway_id.encode(), fields)
        self.assertTrue(1 <= len(fields["correlation_id"]) <= 128, fields)
        skew_ms = abs(int(fields["ts_ms"]) - time.time() * 1000)
        self.assertLess(skew_ms, 5000, f"ts_ms {fields['ts_ms']!r} is not about now")

    async def connected_entry(self, c, player_id, client, codec):
        cid = c.welcome["payload"]["connection_id"]
        [(stream_id, fields)] = await wait_entries(self, presence_of(cid, "gatehouse.connected"))
        self.check_presence(fields, "gatehouse.connected", player_id=player_id,
                            connection_id=cid, client=client, codec=codec)
        return cid, stream_id, fields

    async def disconnected_entry(self, cid, player_id, client, codec):
        [(stream_id, fields)] = await wait_entries(self,
                                                   presence_of(cid, "gatehouse.disconnected"))
        self.check_presence(fields, "gatehouse.disconnected", player_id=player_id,
                            connection_id=cid, client=client, codec=codec)
        return stream_id, fields


class PresenceEntries(PresenceCase):
    """One connected and one disconnected entry per WebSocket."""

    async def test_players_and_bots_in_each_codec(self):
        for kind in ("player", "bot"):
            for codec in CODECS:
                with self.subTest(kind=kind, codec=codec):
                    if kind == "player":
                        player_id = rh.unique("pres-" + codec)
                        c = await Client.player(self.server, player_id, codec)
                    else:
                        player_id = "bot:rover"
                        c = await Client.bot(self.server, "rover", codec, query="codec=" + codec)
                    cid, connected_id, connected = await self.connected_entry(
                        c, player_id, kind, codec)
                    # A command after the open lands after the connected entry.
                    ack = await c.command("move", {"x": 1}, "c-" + codec)
                    command_id = rh.check_ack(self, ack, "c-" + codec)
                    await c.close()
                    gone_id, gone = await self.disconnected_entry(cid, player_id, kind, codec)
                    self.assertLess(h.stream_id_key(connected_id), h.stream_id_key(command_id))
                    self.assertLess(h.stream_id_key(command_id), h.stream_id_key(gone_id))
                    self.assertNotEqual(connected["correlation_id"], gone["correlation_id"])

    async def test_a_server_close_appends_disconnected(self):
        player_id = rh.unique("too-big")
        c = await Client.player(self.server, player_id, "json")
        cid, _, _ = await self.connected_entry(c, player_id, "player", "json")
        await c.send_raw(json.dumps({"type": "t", "payload": "x" * LIMIT}))
        code, _ = await c.wait_closed()
        self.assertEqual(code, 1009)
        await self.disconnected_entry(cid, player_id, "player", "json")

    async def test_event_streams_have_none(self):
        player_id = rh.unique("sse")
        stream = await SseStream.open(self.server, token=self.server.token(player_id))
        self.assertEqual(stream.status, 200)
        await asyncio.to_thread(self.server.wait_metric, "gatehouse_event_streams",
                                lambda v: v == 1)
        stream.writer.close()
        self.assertEqual(await asyncio.to_thread(self.server.wait_metric,
                                                 "gatehouse_event_streams", lambda v: v == 0), 0)
        # Entries go onto the stream in order: once a later WebSocket's disconnected entry is
        # there, any entry for the event stream would be too.
        marker_id = rh.unique("marker")
        c = await Client.player(self.server, marker_id, "json")
        cid, _, _ = await self.connected_entry(c, marker_id, "player", "json")
        await c.close()
        await self.disconnected_entry(cid, marker_id, "player", "json")
        entries = await asyncio.to_thread(rh.all_entries, self.r, self.stream)
        self.assertFalse([f for f in entries.values() if f["player_id"] == player_id.encode()])

    async def test_presence_metrics(self):
        before = self.server.metric("gatehouse_presence_entries_total", outcome="appended")
        player_id = rh.unique("counted")
        c = await Client.player(self.server, player_id, "json")
        cid, _, _ = await self.connected_entry(c, player_id, "player", "json")
        await c.close()
        await self.disconnected_entry(cid, player_id, "player", "json")
        after = await asyncio.to_thread(self.server.wait_metric, "gatehouse_presence_entries_total",
                                        lambda v: v >= before + 2, outcome="appended")
        self.assertGreaterEqual(after, before + 2)
        self.assertEqual(self.server.metric("gatehouse_presence_entries_total", outcome="failed"),
                         0)


class NoPresenceWithoutTheFlag(rh.OneRedisGateway):
    bot_keys = {"rover": "botkey-" + secrets.token_hex(8)}

    async def test_no_entries(self):
        player_id = rh.unique("quiet")
        c = await Client.player(self.server, player_id, "json")
        bot = await Client.bot(self.server, "rover")
        rh.check_ack(self, await c.command("move", {"x": 1}, "c1"), "c1")
        await c.close()
        await bot.close()
        for client in ("player", "bot"):
            self.assertEqual(await asyncio.to_thread(self.server.wait_metric, "gatehouse_connections",
                                                     lambda v: v == 0, client=client), 0)
        # A later command's entry follows anything the closes could have appended.
        marker = await Client.player(self.server, rh.unique("marker"), "json")
        rh.check_ack(self, await marker.command("move", None, "m1"), "m1")
        await marker.close()
        entries = await asyncio.to_thread(rh.all_entries, self.r, self.stream)
        self.assertEqual([f["type"] for f in entries.values()], [b"move", b"move"])
        self.assertEqual(self.server.metric("gatehouse_presence_entries_total"), 0)


class PresenceAtShutdown(h.AsyncCase):
    """SIGTERM closes every WebSocket (1001): their disconnected entries are on the stream
    before the process exits."""

    async def test_disconnected_entries_of_a_shutdown(self):
        redis = RedisServer().start()
        try:
            r = redis.client()
            self.r, self.stream = r, rh.unique("gh:commands")
            self.gateway_id = rh.unique("gw")
            bot_keys = {"rover": "botkey-" + secrets.token_hex(8)}
            server = rh.redis_gateway(redis.url, self.stream, rh.unique("gh:updates"),
                                      self.gateway_id, "--presence-events",
                                      bot_keys=bot_keys).start()
            problems = []
            try:
                server.bot_keys = bot_keys
                player_id = rh.unique("stayer")
                c = await Client.player(server, player_id, "protobuf")
                bot = await Client.bot(server, "rover")
                ids = [c.welcome["payload"]["connection_id"],
                       bot.welcome["payload"]["connection_id"]]
                for cid in ids:
                    await wait_entries(self, presence_of(cid, "gatehouse.connected"))
                stopping = asyncio.ensure_future(asyncio.to_thread(rh.stop_and_check, server))
                for client in (c, bot):
                    code, _ = await client.wait_closed()
                    self.assertEqual(code, 1001)
                problems = await stopping
            finally:
                if server.proc.poll() is None:
                    problems += rh.stop_and_check(server)
            self.assertFalse(problems, "\n".join(problems))
            # The process has exited: what is on the stream now is all it wrote.
            entries = await asyncio.to_thread(rh.all_entries, r, self.stream)
            gone = {f["connection_id"].decode(): f for f in entries.values()
                    if f["type"] == b"gatehouse.disconnected"}
            self.assertEqual(set(gone), set(ids), entries)
            self.assertEqual(gone[ids[0]]["player_id"], player_id.encode())
            self.assertEqual(gone[ids[1]]["player_id"], b"bot:rover")
            self.assertTrue(all(f["client"] == b"system" for f in gone.values()))
        finally:
            redis.close()


class PresenceWhileRedisIsDown(h.AsyncCase):
    """A refused presence entry is counted and lost; the connection never notices."""

    async def test_entries_refused_while_redis_is_down(self):
        redis = RedisServer().start()
        self.addCleanup(redis.close)
        server = rh.redis_gateway(redis.url, rh.unique("gh:commands"), rh.unique("gh:updates"),
                                  rh.unique("gw"), "--presence-events",
                                  *rh.FAST_RECOVERY).start()
        self.addCleanup(server.kill)
        await asyncio.to_thread(redis.kill)
        status, _ = await asyncio.to_thread(rh.wait_ready, server, 503, 5.0)
        self.assertEqual(status, 503)
        c = await Client.player(server, rh.unique("unseen"), "json")
        self.assertEqual(c.welcome["type"], "welcome")
        failed = await asyncio.to_thread(server.wait_metric, "gatehouse_presence_entries_total",
                                         lambda v: v >= 1, outcome="failed")
        self.assertEqual(failed, 1)
        # The session works as ever: its command is refused for the bus, not for presence.
        rh.check_bus_unavailable(self, await c.command("t", 1, "c1"), "c1")
        await c.expect_nothing(0.2)
        await c.close()
        failed = await asyncio.to_thread(server.wait_metric, "gatehouse_presence_entries_total",
                                         lambda v: v >= 2, outcome="failed")
        self.assertEqual(failed, 2)
        self.assertEqual(server.metric("gatehouse_presence_entries_total", outcome="appended"),
                         0)
        self.assertIn("presence entries not appended", server.stderr_text() +
                      server.stdout_text())
        self.assertEqual(rh.stop_and_check(server), [])


class PresenceInProcess(h.ServerTestCase):
    """Without --redis the in-process bus takes the entries (tests/unit/presence_test.cpp reads
    them back); here the server counts them."""

    @classmethod
    def server_args(cls):
        return ["--presence-events"]

    async def test_entries_are_appended(self):
        c = await Client.player(self.server, rh.unique("local"), "msgpack")
        self.assertEqual(await asyncio.to_thread(
            self.server.wait_metric, "gatehouse_presence_entries_total", lambda v: v == 1,
            outcome="appended"), 1)
        await c.close()
        self.assertEqual(await asyncio.to_thread(
            self.server.wait_metric, "gatehouse_presence_entries_total", lambda v: v == 2,
            outcome="appended"), 2)
        self.assertEqual(self.server.metric("gatehouse_presence_entries_total",
                                            outcome="failed"), 0)


class CommandTraceparent(PresenceCase):
    """POST /commands: the `traceparent` header onto the stream unless the envelope has one."""

    def post_command(self, body, traceparents, player_id="http-tracer"):
        """POST /commands with the given traceparent headers (any number, each sent as is);
        returns the stream entry its 202 names."""
        conn = http.client.HTTPConnection("127.0.0.1", self.server.port, timeout=5)
        try:
            conn.putrequest("POST", "/commands")
            data = json.dumps(body).encode()
            conn.putheader("Authorization", "Bearer " + self.server.token(player_id))
            conn.putheader("Content-Type", "application/json")
            conn.putheader("Content-Length", str(len(data)))
            for t in traceparents:
                conn.putheader("traceparent", t)
            conn.endheaders(data)
            resp = conn.getresponse()
            answer = resp.read()
        finally:
            conn.close()
        self.assertEqual(resp.status, 202, answer)
        stream_id = json.loads(answer)["stream_id"]
        fields = rh.entry(self.r, self.stream, stream_id)
        self.assertIsNotNone(fields, stream_id)
        want = rh.ENTRY_FIELDS | ({"traceparent"} if "traceparent" in fields else set())
        self.assertEqual(set(fields), want, fields)
        return fields

    def test_header_envelope_and_invalid_ones(self):
        cases = [
            ({"type": "h"}, [TRACE], TRACE),
            ({"type": "e", "traceparent": OTHER_TRACE}, [TRACE], OTHER_TRACE),
            ({"type": "o", "traceparent": OTHER_TRACE}, [], OTHER_TRACE),
            ({"type": "n"}, [], None),
            ({"type": "twice"}, [TRACE, TRACE], None),
        ] + [({"type": "bad"}, [bad], None) for bad in BAD_TRACES]
        for body, headers, want in cases:
            with self.subTest(body=body, headers=headers):
                fields = self.post_command(body, headers)
                self.assertEqual(fields["type"], body["type"].encode())
                self.assertEqual(fields.get("traceparent"),
                                 want.encode() if want else None, fields)

    async def test_envelope_traceparent_in_each_codec(self):
        # The envelope's field (protobuf field 6), as the WebSocket codecs read it.
        for codec in CODECS:
            with self.subTest(codec=codec):
                c = await Client.player(self.server, rh.unique("ws-tracer"), codec)
                try:
                    # Two commands: one correlation id each (the same one twice would be a
                    # retry, acked with the first entry's id: docs/protocol.md 6.5).
                    for cid, (trace, want) in (("c1", (TRACE, TRACE)),
                                               ("c2", (BAD_TRACES[0], None))):
                        if codec == "protobuf":
                            frame = h.pb_encode("t", b"[1]", cid, "json", traceparent=trace)
                        else:
                            env = {"type": "t", "payload": [1], "correlation_id": cid,
                                   "traceparent": trace}
                            frame = json.dumps(env) if codec == "json" else h.mp_pack(env)
                        await c.send_raw(frame)
                        stream_id = rh.check_ack(self, await c.recv(), cid)
                        fields = await asyncio.to_thread(rh.entry, self.r, self.stream,
                                                         stream_id)
                        self.assertEqual(fields.get("traceparent"),
                                         want.encode() if want else None, fields)
                finally:
                    await c.close()


class UpdateTraceparent(PresenceCase):
    """An update's traceparent reaches the client envelope unchanged, however published."""

    def fcall(self, message):
        reply = self.r.execute_command("FCALL", "gatehouse_publish", 0, self.channel,
                                       json.dumps(message))
        flat = [x.decode() for x in reply]
        return dict(zip(flat[0::2], flat[1::2]))

    async def test_every_way_of_publishing_in_each_codec(self):
        for codec in CODECS:
            player_id = rh.unique("traced-" + codec)
            c = await Client.player(self.server, player_id, codec)
            try:
                ways = {
                    "publish": self.publish,
                    "fcall": lambda m: asyncio.to_thread(self.fcall, m),
                    "post": self.server.apublish,
                }
                for way, send in ways.items():
                    for trace, want in ((TRACE, TRACE), (BAD_TRACES[0], None)):
                        with self.subTest(codec=codec, way=way, trace=trace):
                            await send({"player_id": player_id, "type": "traced",
                                        "payload": {"way": way}, "traceparent": trace})
                            env = await c.recv()
                            self.assertEqual(env["type"], "traced", env)
                            self.assertEqual(env["payload"], {"way": way}, env)
                            self.assertEqual(env.get("traceparent"), want, env)
                            self.assertEqual("update_id" in env, way != "publish", env)
            finally:
                await c.close()

    async def test_a_resume_replays_the_traceparent(self):
        player_id = rh.unique("resumer")
        first = await asyncio.to_thread(self.fcall, {"player_id": player_id, "type": "one"})
        second = await asyncio.to_thread(self.fcall, {"player_id": player_id, "type": "two",
                                                      "traceparent": TRACE})
        for codec in CODECS:
            with self.subTest(codec=codec):
                c = await Client.player(self.server, player_id, codec,
                                        query=f"codec={codec}&resume={first[player_id]}")
                try:
                    got = await c.recv_until(lambda e: e["type"] == "gatehouse.resumed")
                    self.assertEqual([e["type"] for e in got], ["two", "gatehouse.resumed"])
                    self.assertEqual(got[0]["traceparent"], TRACE, got)
                    self.assertEqual(got[0]["update_id"], second[player_id], got)
                finally:
                    await c.close()

    async def test_event_streams_carry_it(self):
        player_id = rh.unique("sse-traced")
        stream = await SseStream.open(self.server, token=self.server.token(player_id))
        try:
            self.assertEqual(stream.status, 200)
            await asyncio.to_thread(self.server.wait_metric, "gatehouse_event_streams",
                                    lambda v: v >= 1)
            await self.publish({"player_id": player_id, "type": "traced", "payload": 1,
                                "traceparent": TRACE})
            ev = await stream.next_event()
            self.assertEqual(ev["event"], "traced", ev)
            self.assertEqual(ev["data"], {"type": "traced", "payload": 1, "traceparent": TRACE})
        finally:
            stream.writer.close()


if __name__ == "__main__":
    h.run_main()
