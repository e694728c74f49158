#!/usr/bin/env python3
"""Resume (docs/protocol.md 6.4) against a real gatehouse-server: logged updates carry update_id,
`?resume=` replays what a client missed, then `gatehouse.resumed` (or `gatehouse.gap`), then live
updates, each exactly once and in order; the same across two instances sharing one Redis, a
Redis restarted empty answers gap, and the race test: clients that disconnect and resume over
and over while a publisher never stops, each asserting every number exactly once, in order.

Usage: test_resume.py PATH/TO/gatehouse-server [unittest args]

The Redis suites need a redis-server and python3-redis; they are skipped without them.
"""

import asyncio
import http.client
import json
import random
import secrets
import threading
import time
import unittest

import gatehouse_harness as h
from accounts_helpers import SseStream
from gatehouse_harness import Client

try:
    import redis_helpers as rh
    from redis_fixture import RedisServer
except ImportError:  # python3-redis missing
    rh = None

# The race test's bounds: rounds of disconnect-and-resume per client, and a wall-clock cap.
RACE_CLIENTS = 3
RACE_ROUNDS = 25
RACE_SECONDS = 40.0
# Logs long enough that a client whose rounds ended early, while the publisher served the others,
# still resumes (the gap cases have their own tests).
LOG_ARGS = ["--update-log-size", "100000"]


def tick(players, n):
    """A numbered update for `players` (one: the player_id shape; more: player_ids)."""
    if len(players) == 1:
        return {"player_id": players[0], "type": "tick", "payload": {"n": n}}
    return {"player_ids": list(players), "type": "tick", "payload": {"n": n}}


class Publisher:
    """Publishes numbered updates 1, 2, ... from a thread until stopped, through `send`
    (POST /updates or FCALL). `count` is how many were published (acknowledged)."""

    def __init__(self, send, players, pause=0.002):
        self.send = send
        self.players = players
        self.pause = pause
        self.count = 0
        self.error = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        try:
            while not self._stop.is_set():
                self.send(tick(self.players, self.count + 1))
                self.count += 1
                time.sleep(self.pause * random.random())
        except Exception as e:  # reported by stop()
            self.error = e

    def start(self):
        self._thread.start()
        return self

    def stop(self):
        self._stop.set()
        self._thread.join(10)
        if self.error:
            raise AssertionError(f"the publisher failed: {self.error!r}")
        return self.count


class HttpPublish:
    """POST /updates on one persistent HTTP/1.1 connection (the publisher's thread only)."""

    def __init__(self, server):
        self.server = server
        self.conn = http.client.HTTPConnection(server.host, server.port, timeout=5)

    def __call__(self, message):
        self.conn.request("POST", "/updates", json.dumps(message), {
            "Content-Type": "application/json",
            "Authorization": "Bearer " + self.server.publish_key})
        resp = self.conn.getresponse()
        body = resp.read()
        if resp.status != 202:
            raise AssertionError(f"POST /updates answered {resp.status} {body!r:.300}")
        return json.loads(body)["update_ids"]


async def resume(server, player, last, codec="json"):
    """A connection resuming from `last` (None: a fresh one, no resume)."""
    query = f"codec={codec}" + (f"&resume={last}" if last is not None else "")
    return await Client.player(server, player, codec, query=query)


async def read_join(client, timeout=h.RECV_TIMEOUT_S):
    """After the welcome of a resume: (replayed updates, the gatehouse.resumed/gap envelope)."""
    got = await client.recv_until(lambda e: e["type"] in ("gatehouse.resumed", "gatehouse.gap"),
                                  timeout)
    return got[:-1], got[-1]


def abort(client):
    """Drops the TCP connection with no close handshake: a client killed mid-stream."""
    client.ws.transport.abort()


class Follower:
    """One client's view of the numbered stream across all its connections: every tick must be
    the next number, exactly once; `last` is the update id to resume from."""

    def __init__(self, case, player):
        self.case = case
        self.player = player
        self.next = 1
        self.last = None
        self.resumes = 0

    def take(self, env):
        self.case.assertEqual(env["type"], "tick", env)
        self.case.assertEqual(env["payload"]["n"], self.next,
                              f"{self.player}: want tick {self.next}, got {env!r:.300}")
        self.case.assertIn("update_id", env, "a logged update carries its update_id")
        if self.last is not None:
            self.case.assertNotEqual(env["update_id"], self.last)
        self.next += 1
        self.last = env["update_id"]

    async def join(self, server, timeout=3 * h.RECV_TIMEOUT_S):
        """Connects (resuming when it has an id) and takes the replay. The race runs many
        followers on one event loop beside a publisher: on a loaded machine reading a replay
        can take a while, so the wait is longer than a single receive's."""
        c = await resume(server, self.player, self.last)
        if self.last is not None:
            replayed, end = await read_join(c, timeout)
            self.case.assertEqual(end["type"], "gatehouse.resumed",
                                  f"{self.player}: no gap expected, got {end!r:.300}")
            self.case.assertEqual(end["payload"], {"replayed": len(replayed)}, end)
            for env in replayed:
                self.take(env)
            self.resumes += 1
        return c

    async def run(self, servers, rounds, deadline):
        """Connects (alternating over `servers`), takes some live ticks, is killed; again."""
        for i in range(rounds):
            if time.monotonic() > deadline:
                break
            c = await self.join(servers[i % len(servers)])
            for _ in range(random.randint(0, 4)):
                self.take(await c.recv())
            await asyncio.sleep(random.random() * 0.02)
            abort(c)

    async def finish(self, server, total):
        """A last resume that reads up to tick `total`."""
        c = await self.join(server)
        try:
            while self.next <= total:
                self.take(await c.recv())
            await c.expect_nothing(0.2)
        finally:
            await c.close()


class InProcess(h.ServerTestCase):
    """The embedded bus keeps the log in the process (docs/protocol.md 6.4, last point)."""

    @classmethod
    def server_args(cls):
        return LOG_ARGS

    def player(self):
        return "p-" + secrets.token_hex(4)

    async def test_post_updates_answers_the_update_ids(self):
        p, q = self.player(), self.player()
        status, body = self.server.publish(tick([p], 1))
        self.assertEqual(status, 202, body)
        ids = json.loads(body)["update_ids"]
        self.assertEqual(list(ids), [p])
        status, body = self.server.publish(tick([p, q], 2))
        ids2 = json.loads(body)["update_ids"]
        self.assertEqual(sorted(ids2), sorted([p, q]))
        status, body = self.server.publish({"room": "r", "type": "x"})
        self.assertEqual((status, json.loads(body)), (202, {"update_ids": {}}))
        status, _ = self.server.publish(tick([p], 3), key="wrong")
        self.assertEqual(status, 401)

    async def test_live_updates_carry_the_players_update_id(self):
        p = self.player()
        c = await Client.player(self.server, p)
        try:
            ids = json.loads(self.server.publish_ok(tick([p], 1)))["update_ids"]
            env = await c.recv()
            self.assertEqual(env["update_id"], ids[p])
            # Unlogged shapes carry none.
            self.server.publish_ok({"player_id": p, "connection_id": c.welcome["payload"][
                "connection_id"], "type": "direct"})
            env = await c.recv()
            self.assertEqual(env["type"], "direct")
            self.assertNotIn("update_id", env)
        finally:
            await c.close()

    async def test_resume_replays_the_missed_updates_then_live(self):
        p = self.player()
        for codec in ("json", "msgpack", "protobuf"):
            with self.subTest(codec=codec):
                c = await resume(self.server, p, None, codec)
                first = json.loads(self.server.publish_ok(tick([p], 1)))["update_ids"][p]
                self.assertEqual((await c.recv())["update_id"], first)
                abort(c)
                missed = [json.loads(self.server.publish_ok(tick([p], n)))["update_ids"][p]
                          for n in (2, 3, 4)]
                c = await resume(self.server, p, first, codec)
                replayed, end = await read_join(c)
                self.assertEqual([e["payload"]["n"] for e in replayed], [2, 3, 4])
                self.assertEqual([e["update_id"] for e in replayed], missed)
                self.assertEqual(end["type"], "gatehouse.resumed")
                self.assertEqual(end["payload"], {"replayed": 3})
                self.server.publish_ok(tick([p], 5))
                self.assertEqual((await c.recv())["payload"], {"n": 5})
                await c.close()

    async def test_gap_for_an_id_the_log_does_not_hold(self):
        p = self.player()
        for bad in ("nonsense", "99999999999999-1", "1-1"):
            with self.subTest(resume=bad):
                c = await resume(self.server, p, bad)
                replayed, end = await read_join(c)
                self.assertEqual(replayed, [])
                self.assertEqual(end["type"], "gatehouse.gap")
                self.assertEqual(end["payload"], {"resume": bad})
                # Then live.
                self.server.publish_ok(tick([p], 7))
                self.assertEqual((await c.recv())["payload"], {"n": 7})
                await c.close()
        self.assertGreaterEqual(self.server.metric("gatehouse_resumes_total", outcome="gap"), 3)

    async def test_event_stream_resumes_from_last_event_id(self):
        p = self.player()
        ids = [json.loads(self.server.publish_ok(tick([p], n)))["update_ids"][p] for n in (1, 2)]
        for how in ("header", "query"):
            with self.subTest(how=how):
                kw = {"headers": {"Last-Event-ID": ids[0]}} if how == "header" else \
                    {"path": "/sse/player?resume=" + ids[0]}
                st = await SseStream.open(self.server, token=self.server.token(p), **kw)
                try:
                    self.assertEqual(st.status, 200, st.body)
                    ev = await st.next_event()
                    self.assertEqual((ev["event"], ev["data"]["payload"]), ("tick", {"n": 2}))
                    self.assertIn(("id", ids[1]), ev["fields"], "a logged event carries id:")
                    ev = await st.next_event()
                    self.assertEqual(ev["event"], "gatehouse.resumed")
                    self.assertEqual(ev["data"]["payload"], {"replayed": 1})
                finally:
                    await st.close()

    async def test_event_stream_last_event_id_wins_over_the_query(self):
        # An EventSource that reconnects by itself reuses its first URL (`?resume=` an older id)
        # and sends the newer Last-Event-ID: the header wins, so nothing arrives twice.
        p = self.player()
        ids = [json.loads(self.server.publish_ok(tick([p], n)))["update_ids"][p]
               for n in (1, 2, 3, 4)]
        st = await SseStream.open(self.server, token=self.server.token(p),
                                  path="/sse/player?resume=" + ids[0],
                                  headers={"Last-Event-ID": ids[2]})
        try:
            self.assertEqual(st.status, 200, st.body)
            ev = await st.next_event()
            self.assertEqual((ev["event"], ev["data"]["payload"]), ("tick", {"n": 4}))
            self.assertIn(("id", ids[3]), ev["fields"])
            ev = await st.next_event()
            self.assertEqual(ev["event"], "gatehouse.resumed")
            self.assertEqual(ev["data"]["payload"], {"replayed": 1})
        finally:
            await st.close()

    async def test_reserved_namespace_is_refused(self):
        c = await Client.player(self.server, self.player())
        try:
            answer = await c.command("gatehouse.resumed", {"replayed": 1}, "c-1")
            self.assertEqual(answer["type"], "error")
            self.assertEqual(answer["payload"]["code"], "invalid_envelope")
        finally:
            await c.close()
        status, _, _ = self.server.http(
            "POST", "/commands", json.dumps({"type": "gatehouse.x"}),
            {"Content-Type": "application/json",
             "Authorization": "Bearer " + self.server.token("someone")})
        self.assertEqual(status, 400)

    async def test_race_publishes_while_clients_resume(self):
        players = [self.player() for _ in range(RACE_CLIENTS)]
        followers = [Follower(self, p) for p in players]
        # Each client's first connection exists before the first publish: it misses nothing.
        first = [await f.join(self.server) for f in followers]
        publisher = Publisher(HttpPublish(self.server), players).start()
        try:
            for f, c in zip(followers, first):
                f.take(await c.recv())
                abort(c)
            deadline = time.monotonic() + RACE_SECONDS
            await asyncio.gather(*(f.run([self.server], RACE_ROUNDS, deadline)
                                   for f in followers))
        finally:
            total = publisher.stop()
        for f in followers:
            await f.finish(self.server, total)
        h.note(f"{total} updates published; resumes per client "
               f"{[f.resumes for f in followers]}")
        self.assertGreater(total, 0)
        replayed = self.server.metric("gatehouse_updates_replayed_total")
        self.assertGreater(replayed, 0, "some updates were missed and replayed")


@unittest.skipIf(rh is None, "python3-redis is not installed")
class OnRedis(h.AsyncCase):
    """Two instances sharing one Redis, publishing with FCALL gatehouse_publish."""

    def setUp(self):
        self.redis = RedisServer().start()
        self.r = self.redis.client()
        self.channel = rh.unique("gh:updates")
        secret = "s3cr3t-" + secrets.token_hex(16)
        self.gw = {}
        try:
            for name in ("a", "b"):
                self.gw[name] = rh.redis_gateway(
                    self.redis.url, rh.unique("gh:commands"), self.channel,
                    rh.unique("gw-" + name), *rh.FAST_RECOVERY, *LOG_ARGS,
                    jwt_secret=secret).start()
                status, waited = rh.wait_ready(self.gw[name], 200, 5.0)
                self.assertEqual(status, 200, f"{name} not ready after {waited:.1f} s")
        except BaseException:
            self.tearDown()
            raise

    def tearDown(self):
        problems = []
        try:
            for s in self.gw.values():
                problems += rh.stop_and_check(s)
        finally:
            self.redis.close()
        if problems:
            raise AssertionError("\n".join(problems))

    def fcall(self, message, client=None):
        """FCALL gatehouse_publish; returns {player: update id}."""
        reply = (client or self.r).execute_command(
            "FCALL", "gatehouse_publish", 0, self.channel, json.dumps(message))
        flat = [x.decode() for x in reply]
        return dict(zip(flat[0::2], flat[1::2]))

    async def test_killed_on_a_resumed_on_b_gets_exactly_the_missed_updates(self):
        p = "roamer-" + secrets.token_hex(3)
        c = await resume(self.gw["a"], p, None)
        first = self.fcall(tick([p], 1))[p]
        self.assertEqual((await c.recv())["update_id"], first)
        abort(c)
        missed = [self.fcall(tick([p], n))[p] for n in range(2, 12)]
        c = await resume(self.gw["b"], p, first)
        replayed, end = await read_join(c)
        self.assertEqual([e["payload"]["n"] for e in replayed], list(range(2, 12)))
        self.assertEqual([e["update_id"] for e in replayed], missed)
        self.assertEqual((end["type"], end["payload"]), ("gatehouse.resumed", {"replayed": 10}))
        self.fcall(tick([p], 12))
        self.assertEqual((await c.recv())["payload"], {"n": 12})
        await c.close()
        self.assertEqual(self.gw["b"].metric("gatehouse_updates_replayed_total"), 10)

    async def test_plain_publish_is_delivered_without_an_id(self):
        p = "plain-" + secrets.token_hex(3)
        c = await resume(self.gw["a"], p, None)
        try:
            await rh.apublish(self.r, self.channel, tick([p], 1))
            env = await c.recv()
            self.assertEqual(env["payload"], {"n": 1})
            self.assertNotIn("update_id", env)
        finally:
            await c.close()

    async def test_redis_restarted_empty_answers_gap(self):
        p = "lost-" + secrets.token_hex(3)
        c = await resume(self.gw["a"], p, None)
        old = self.fcall(tick([p], 1))[p]
        await c.recv()
        abort(c)
        self.redis.stop()
        self.redis.start()
        for name, s in self.gw.items():
            status, waited = rh.wait_ready(s, 200, 10.0)
            self.assertEqual(status, 200, f"{name} not ready again after {waited:.1f} s")
        r = self.redis.client()
        # The function library is back (loaded at the gateways' reconnect).
        deadline = time.monotonic() + 5
        while True:
            try:
                new = self.fcall(tick([p], 2), r)[p]
                break
            except Exception:
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.1)
        self.assertNotEqual(new, old, "ids never repeat")
        for name in ("a", "b"):
            c = await resume(self.gw[name], p, old)
            replayed, end = await read_join(c)
            self.assertEqual((replayed, end["type"]), ([], "gatehouse.gap"), name)
            self.assertEqual(end["payload"], {"resume": old})
            await c.close()

    async def test_race_publishes_while_clients_resume_across_instances(self):
        players = ["racer-%d-%s" % (i, secrets.token_hex(2)) for i in range(RACE_CLIENTS)]
        followers = [Follower(self, p) for p in players]
        servers = [self.gw["a"], self.gw["b"]]
        first = [await f.join(servers[i % 2]) for i, f in enumerate(followers)]
        publisher_client = self.redis.client()
        publisher = Publisher(lambda m: self.fcall(m, publisher_client), players).start()
        try:
            for f, c in zip(followers, first):
                f.take(await c.recv())
                abort(c)
            deadline = time.monotonic() + RACE_SECONDS
            await asyncio.gather(*(f.run(servers, RACE_ROUNDS, deadline) for f in followers))
        finally:
            total = publisher.stop()
        for i, f in enumerate(followers):
            await f.finish(servers[i % 2], total)
        h.note(f"{total} updates published; resumes per client "
               f"{[f.resumes for f in followers]}")


@unittest.skipIf(rh is None, "python3-redis is not installed")
class SubscriptionLost(h.AsyncCase):
    """The reviewer's case: the gateway's Pub/Sub link dies and comes back; an update published
    meanwhile is in the log only. Every connection is closed with 1012 once the link is back,
    so its client resumes and gets exactly the missed update, then live ones."""

    def setUp(self):
        self.redis = RedisServer().start()
        self.r = self.redis.client()
        self.channel = rh.unique("gh:updates")
        self.gw = rh.redis_gateway(
            self.redis.url, rh.unique("gh:commands"), self.channel, rh.unique("gw"),
            *rh.FAST_RECOVERY, *LOG_ARGS, bot_keys={"rover": "botkey-" + secrets.token_hex(8)})
        try:
            self.gw.start()
            status, waited = rh.wait_ready(self.gw, 200, 5.0)
            self.assertEqual(status, 200, f"not ready after {waited:.1f} s")
        except BaseException:
            self.redis.close()
            raise

    def tearDown(self):
        try:
            problems = rh.stop_and_check(self.gw)
        finally:
            self.redis.close()
        if problems:
            raise AssertionError("\n".join(problems))

    def fcall_command(self, message):
        return ["FCALL", "gatehouse_publish", 0, self.channel, json.dumps(message)]

    def fcall(self, message):
        reply = self.r.execute_command(*self.fcall_command(message))
        flat = [x.decode() for x in reply]
        return dict(zip(flat[0::2], flat[1::2]))

    async def test_update_missed_while_unsubscribed_comes_back_by_resume(self):
        p = "cut-" + secrets.token_hex(3)
        c = await resume(self.gw, p, None)
        bot = await Client.bot(self.gw, "rover")
        sse = await SseStream.open(self.gw, token=self.gw.token(p))
        self.assertEqual(sse.status, 200, sse.body)
        first = self.fcall(tick([p], 1))[p]
        self.assertEqual((await c.recv())["update_id"], first)
        self.assertEqual((await sse.next_event())["data"]["payload"], {"n": 1})
        self.assertEqual(self.gw.metric("gatehouse_update_link_restored_total"), 0)

        # The link is cut and 2 published in one transaction: the gateway cannot have
        # resubscribed in between, so 2 is certainly in the log only.
        pipe = self.r.pipeline(transaction=True)
        pipe.execute_command("CLIENT", "KILL", "TYPE", "pubsub")
        pipe.execute_command(*self.fcall_command(tick([p], 2)))
        killed, reply = pipe.execute()
        self.assertGreaterEqual(killed, 1, "the gateway's subscription was killed")
        flat = [x.decode() for x in reply]
        missed = dict(zip(flat[0::2], flat[1::2]))[p]

        # Once resubscribed, every connection is closed: players, bots and event streams.
        for who in (c, bot):
            code, got = await who.wait_closed(10.0)
            self.assertEqual(code, 1012, got)
            self.assertEqual(who.ws.close_reason, "updates interrupted")
            self.assertEqual(got, [], "nothing live after the missed update")
        self.assertIsNone(await sse.next_event(10.0), "the event stream ended")
        await sse.close()
        self.assertEqual(self.gw.metric("gatehouse_update_link_restored_total"), 1)
        self.gw.wait_metric("gatehouse_connections_closed_total", lambda v: v >= 2, code="1012")

        # The client resumes from the last update it got: 2 once, then 3 live, once.
        c = await resume(self.gw, p, first)
        replayed, end = await read_join(c)
        self.assertEqual([(e["payload"]["n"], e["update_id"]) for e in replayed], [(2, missed)])
        self.assertEqual((end["type"], end["payload"]), ("gatehouse.resumed", {"replayed": 1}))
        self.fcall(tick([p], 3))
        env = await c.recv()
        self.assertEqual(env["payload"], {"n": 3})
        await c.expect_nothing(0.3)
        await c.close()


if __name__ == "__main__":
    h.run_main()
