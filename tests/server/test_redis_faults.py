#!/usr/bin/env python3
"""gatehouse-server in Redis mode when Redis fails: killed, stopped, hung (SIGSTOP) and
brought back on the same port, with the gateway never restarted (docs/protocol.md s. 1, 3-5 and
the Redis flags of issue 4).

Usage: test_redis_faults.py PATH/TO/gatehouse-server [unittest args]

The invariant checked throughout: every command gets exactly one answer, an ack or an error
`bus_unavailable`; an ack means the entry is on the stream (an error promises nothing either
way). Every test starts its own redis-server and gateway with `--redis-timeout 2
--redis-reconnect-max 0.5`, so recovery takes well under a second once Redis is back.
"""

import asyncio
import secrets
import signal
import time

import websockets

import gatehouse_harness as h
from gatehouse_harness import Client
import redis_helpers as rh
from redis_helpers import check_ack, check_bus_unavailable, entry, wait_ready
from redis_fixture import RedisServer

READY_DOWN_WITHIN_S = 3.0  # a killed Redis closes the socket: seen at once, plus polling slack
# A hung Redis is seen by a reply deadline (--redis-timeout 2, health PING every 0.5 s).
HUNG_SEEN_WITHIN_S = rh.REDIS_TIMEOUT_S + 2.0
READY_UP_WITHIN_S = 5.0  # backoff capped at 0.5 s; a sanitizer build reconnects slowly


class Traffic:
    """Several clients sending commands continuously, not waiting for answers (so some are
    always in flight), until `stop()` or `max_per_client` each; every answer recorded with its
    arrival time. Bounded: at most max_per_client commands, and answers are awaited at most
    `answer_wait` seconds after the last send.

    A connection the gateway closes with 1012 (its update subscription came back after the
    outage) is replaced through `reopen(i)`, as a real client reconnects. The gateway answered
    every command it had read before that close; the ones it did not answer were sent after
    its drain began, were ignored, and are `lost` (checked not to be on the stream)."""

    def __init__(self, clients, prefix, max_per_client=400, interval=0.025, answer_wait=8.0,
                 reopen=None):
        self.clients = clients  # replaced in place on a 1012
        self.reopen = reopen
        self.generation = [0] * len(clients)
        self.connection_of = {}  # correlation id -> (client index, generation)
        self.lost = []  # correlation ids unanswered on a connection closed with 1012
        self.interrupted = 0  # connections closed with 1012
        self.prefix = prefix
        self.max_per_client = max_per_client
        self.interval = interval
        self.answer_wait = answer_wait
        self.sent = {}  # correlation id -> (client index, monotonic send time)
        self.answers = {}  # correlation id -> [(envelope, monotonic arrival time)]
        self.strays = []  # (client index, frame) answering nothing this client sent
        self.failures = []  # exceptions from the clients' tasks
        self._stop = asyncio.Event()
        self._sending = 0
        self._send_end = 0.0

    def stop(self):
        self._stop.set()

    async def run(self):
        self._sending = len(self.clients)
        tasks = []
        for i, c in enumerate(self.clients):
            tasks.append(asyncio.create_task(self._send(i, c)))
            tasks.append(asyncio.create_task(self._recv(i, c)))
        for t in tasks:
            try:
                await t
            except Exception as e:  # recorded, so the test reports it beside the rest
                self.failures.append(repr(e))

    async def _send(self, i, c):
        try:
            for k in range(self.max_per_client):
                if self._stop.is_set():
                    break
                cid = f"{self.prefix}-{i}-{k}"
                c = self.clients[i]
                self.sent[cid] = (i, time.monotonic())
                self.connection_of[cid] = (i, self.generation[i])
                try:
                    await c.send("traffic", {"client": i, "k": k}, cid)
                except websockets.ConnectionClosed:
                    # Not sent; the receiver reconnects (bounded wait).
                    del self.sent[cid]
                    deadline = time.monotonic() + 10
                    while self.clients[i] is c and time.monotonic() < deadline:
                        await asyncio.sleep(0.02)
                    if self.clients[i] is c:
                        raise
                await asyncio.sleep(self.interval)
        finally:
            self._sending -= 1
            self._send_end = time.monotonic()

    async def _recv(self, i, c):
        hard_deadline = time.monotonic() + self.max_per_client * self.interval * 4 + 60
        while time.monotonic() < hard_deadline:
            mine = [cid for cid, (j, _) in list(self.sent.items()) if j == i]
            if self._sending == 0 and all(cid in self.answers or cid in self.lost
                                          for cid in mine):
                break
            if self._sending == 0 and time.monotonic() > self._send_end + self.answer_wait:
                break
            try:
                env = await self.clients[i].recv(timeout=0.5)
            except asyncio.TimeoutError:
                continue
            except websockets.ConnectionClosed:
                await self._reopen(i)
                continue
            cid = env.get("correlation_id")
            if cid in self.sent and self.sent[cid][0] == i:
                self.answers.setdefault(cid, []).append((env, time.monotonic()))
            else:
                self.strays.append((i, env))
        # A late duplicate answer would show up here.
        try:
            env = await self.clients[i].recv(timeout=0.2)
            self.strays.append((i, env))
        except asyncio.TimeoutError:
            pass

    async def _reopen(self, i):
        old = self.clients[i]
        if old.ws.close_code != 1012 or self.reopen is None:
            raise AssertionError(f"client {i} closed with {old.ws.close_code}")
        self.interrupted += 1
        # The close frame came after every answer of that connection.
        here = (i, self.generation[i])
        self.lost += [cid for cid, conn in list(self.connection_of.items())
                      if conn == here and cid in self.sent and cid not in self.answers]
        self.clients[i] = await self.reopen(i)
        self.generation[i] += 1

    def acked(self, since=None, sent_after=None):
        """{correlation id: stream id} of the acks received so far (after `since`, of commands
        sent after `sent_after`)."""
        out = {}
        for cid, got in list(self.answers.items()):
            env, at = got[0]
            if env.get("type") != "ack" or (since is not None and at < since):
                continue
            if sent_after is not None and self.sent[cid][1] <= sent_after:
                continue
            out[cid] = env["payload"]["stream_id"]
        return out

    async def wait_acks(self, per_client, timeout, sent_after=None):
        """Waits until each client has `per_client` acks (of commands sent after
        `sent_after`); returns whether it happened."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            counts = [0] * len(self.clients)
            for cid in self.acked(sent_after=sent_after):
                counts[self.sent[cid][0]] += 1
            if min(counts) >= per_client:
                return True
            await asyncio.sleep(0.05)
        return False

    def check_every_command_answered_once(self, case):
        """Exactly one answer per command, each an ack or bus_unavailable; returns the
        counts {"ack": n, "bus_unavailable": n}."""
        case.assertEqual(self.failures, [], "a client failed during the traffic")
        case.assertEqual(self.strays, [], "answers to nothing sent, or duplicates")
        unanswered = sorted(set(self.sent) - set(self.answers) - set(self.lost))
        case.assertEqual(unanswered, [], f"{len(unanswered)} of {len(self.sent)} commands "
                         "never answered")
        counts = {"ack": 0, "bus_unavailable": 0}
        for cid, got in self.answers.items():
            case.assertEqual(len(got), 1, f"{cid} answered {len(got)} times: {got!r:.400}")
            env = got[0][0]
            kind = rh.answer_kind(env)
            case.assertIn(kind, counts, f"{cid}: {env!r:.300}")
            if kind == "ack":
                check_ack(case, env, cid)
            else:
                check_bus_unavailable(case, env, cid)
            counts[kind] += 1
        return counts

    def check_lost_not_on_the_stream(self, case, entries):
        """The commands unanswered at a 1012 were never accepted: none is on the stream."""
        ids = {f.get("correlation_id") for f in entries.values()}
        on_stream = [cid for cid in self.lost if cid.encode() in ids]
        case.assertEqual(on_stream, [], "a command left unanswered at the 1012 is on the stream")


class FaultCase(h.AsyncCase):
    """Each test: its own redis-server and gateway (state is what the tests change)."""

    bot_keys = {"rover": "botkey-" + secrets.token_hex(8)}

    def start_pair(self, *extra, keep_data=False, shutdown_timeout=None):
        self.redis = RedisServer(keep_data=keep_data).start()
        self.addCleanup(self.redis.close)
        self.stream = rh.unique("gh:commands")
        self.channel = rh.unique("gh:updates")
        self.gateway_id = rh.unique("gw")
        self.server = rh.redis_gateway(self.redis.url, self.stream, self.channel,
                                       self.gateway_id, *rh.FAST_RECOVERY, *extra,
                                       bot_keys=self.bot_keys,
                                       shutdown_timeout=shutdown_timeout).start()
        self.addCleanup(self.server.kill)
        self.assertEqual(wait_ready(self.server, 200, READY_UP_WITHIN_S)[0], 200)

    def assert_clean_exit(self):
        problems = rh.stop_and_check(self.server)
        self.assertEqual(problems, [])

    async def wait_status(self, want, within):
        status, waited = await asyncio.to_thread(wait_ready, self.server, want, within)
        self.assertEqual(status, want, f"/ready still {status} after {waited:.2f} s")
        return waited

    def check_ready_503_problem(self):
        status, headers, body = self.server.http("GET", "/ready")
        self.assertEqual(status, 503, body)
        self.assertTrue(headers.get("content-type", "").startswith("application/problem+json"),
                        headers)


class Outage(FaultCase):
    async def test_killed_redis_refuses_then_heals_without_gateway_restart(self):
        self.start_pair()
        c = await Client.player(self.server, "patient", "json")
        try:
            check_ack(self, await c.command("t", 1, "up-1"), "up-1")
            refused_before = self.server.metric("gatehouse_commands_refused_total",
                                                reason="bus_unavailable")

            await asyncio.to_thread(self.redis.kill)
            waited = await self.wait_status(503, READY_DOWN_WITHIN_S)
            h.note(f"/ready 503 {waited:.2f} s after SIGKILL")
            self.check_ready_503_problem()
            for i in range(3):
                t0 = time.monotonic()
                env = await c.command("t", {"i": i}, f"down-{i}")
                check_bus_unavailable(self, env, f"down-{i}")
                self.assertLess(time.monotonic() - t0, 1.0,
                                "while Redis is known to be down a command fails at once")
            await c.expect_nothing(0.3)  # and never an ack later
            self.assertEqual(self.server.wait_metric(
                "gatehouse_commands_refused_total", lambda v: v >= refused_before + 3,
                reason="bus_unavailable"), refused_before + 3)

            await asyncio.to_thread(self.redis.start)  # the same port, empty
            waited = await self.wait_status(200, READY_UP_WITHIN_S)
            h.note(f"/ready 200 {waited:.2f} s after Redis was back")
            # The subscription is back: the connection open all along is closed with 1012, so
            # that a client resumes the logged updates published during the outage (6.4).
            code, got = await c.wait_closed()
            self.assertEqual((code, got), (1012, []))
            self.assertEqual(self.server.metric("gatehouse_update_link_restored_total"), 1)
            c = await Client.player(self.server, "patient", "json")
            stream_id = check_ack(self, await c.command("t", {"back": True}, "up-2"), "up-2")
            r = self.redis.client()
            fields = entry(r, self.stream, stream_id)
            self.assertIsNotNone(fields, "acked after the recovery but not on the stream")
            self.assertEqual(fields["correlation_id"], b"up-2")
            # The listener resubscribed: an update published now reaches the new connection.
            self.assertEqual(r.pubsub_numsub(self.channel), [(self.channel.encode(), 1)])
            await rh.apublish(r, self.channel, {"player_id": "patient", "type": "healed",
                                                "payload": {"ok": 1}})
            rh.assert_update(self, await c.recv(), "healed", {"ok": 1})
        finally:
            await c.close()
        self.assert_clean_exit()

    async def test_gateway_started_before_redis_becomes_ready(self):
        # Redis absent at start-up: the ready line comes anyway (after --redis-timeout), the
        # gateway is unready, and it connects once Redis appears.
        self.redis = RedisServer()
        self.addCleanup(self.redis.close)
        stream, channel = rh.unique("gh:late"), rh.unique("gh:late-updates")
        self.server = rh.redis_gateway(self.redis.url, stream, channel, rh.unique("gw"),
                                       "--redis-timeout", "1", "--redis-reconnect-max", "0.5")
        t0 = time.monotonic()
        self.server.start()
        self.addCleanup(self.server.kill)
        h.note(f"ready line {time.monotonic() - t0:.2f} s after start with Redis absent")
        self.check_ready_503_problem()
        c = await Client.player(self.server, "early", "msgpack")
        try:
            check_bus_unavailable(self, await c.command("t", None, "early-1"), "early-1")
            await asyncio.to_thread(self.redis.start)
            await self.wait_status(200, READY_UP_WITHIN_S)
            stream_id = check_ack(self, await c.command("t", None, "early-2"), "early-2")
            self.assertIsNotNone(entry(self.redis.client(), stream, stream_id))
            await rh.apublish(self.redis.client(), channel,
                              {"player_id": "early", "type": "hello", "payload": None})
            rh.assert_update(self, await c.recv(), "hello", None)
        finally:
            await c.close()
        self.assert_clean_exit()


class TrafficInvariant(FaultCase):
    def open_client(self, i):
        """Client `i` of the traffic (again, after a 1012)."""
        if i == 3:
            return Client.bot(self.server, "rover")
        return Client.player(self.server, ("load-json", "load-mp", "load-pb")[i],
                             ("json", "msgpack", "protobuf")[i])

    async def open_clients(self):
        return [await self.open_client(i) for i in range(4)]

    def check_entries(self, acked, entries, what):
        """Every acked (cid -> stream id) is an entry of `entries` holding that cid."""
        missing = []
        for cid, stream_id in acked.items():
            fields = entries.get(stream_id)
            if fields is None or fields.get("correlation_id") != cid.encode():
                missing.append((cid, stream_id, fields))
            elif fields.get("gateway_id") != self.gateway_id.encode():
                missing.append((cid, stream_id, fields))
        self.assertEqual(missing, [], f"{len(missing)} of {len(acked)} acks ({what}) are not "
                         "on the stream as acked")

    async def test_sigkill_mid_traffic(self):
        self.start_pair("--ws-rate-limit", "0")
        clients = await self.open_clients()
        traffic = Traffic(clients, "k", reopen=self.open_client)
        task = asyncio.create_task(traffic.run())
        try:
            self.assertTrue(await traffic.wait_acks(10, timeout=10), "no traffic before the kill")
            # Every ack received before this read began names an entry the read returns (the
            # traffic goes on meanwhile; later acks are not judged: the kill loses them).
            acked_before = traffic.acked()
            before = await asyncio.to_thread(rh.all_entries, self.redis.client(), self.stream)
            await asyncio.to_thread(self.redis.kill)
            t_killed = time.monotonic()
            down_after = await self.wait_status(503, READY_DOWN_WITHIN_S)
            await asyncio.sleep(1.0)  # an outage under traffic
            t_restart = time.monotonic()
            await asyncio.to_thread(self.redis.start)  # same port, empty (nothing was saved)
            t_restarted = time.monotonic()
            up_after = await self.wait_status(200, READY_UP_WITHIN_S)
            self.assertTrue(await traffic.wait_acks(10, timeout=10, sent_after=t_restarted),
                            "no acks after the restart")
            traffic.stop()
            await asyncio.wait_for(task, 30)
        finally:
            traffic.stop()
            if not task.done():
                task.cancel()
            for c in clients:
                await c.close()

        counts = traffic.check_every_command_answered_once(self)
        self.check_entries(acked_before, before, "before the kill")
        after = rh.all_entries(self.redis.client(), self.stream)
        acked_after = traffic.acked(sent_after=t_restarted)
        self.check_entries(acked_after, after, "sent after the restart")
        traffic.check_lost_not_on_the_stream(self, after)
        self.assertEqual(traffic.interrupted, len(clients), "each client got one 1012")
        # Nothing can be acked while Redis is dead: commands sent well inside the outage
        # were all refused.
        in_outage = [cid for cid, (_, at) in traffic.sent.items()
                     if t_killed < at < t_restart - 0.3]
        self.assertGreater(len(in_outage), 0)
        kinds = {rh.answer_kind(traffic.answers[cid][0][0]) for cid in in_outage}
        self.assertEqual(kinds, {"bus_unavailable"}, "a command sent while Redis was dead")
        # The server's own accounting agrees with what the clients saw.
        m = self.server.metrics()
        self.assertEqual(h.metric_value(m, "gatehouse_commands_accepted_total"), counts["ack"])
        self.assertEqual(h.metric_value(m, "gatehouse_commands_refused_total",
                                        reason="bus_unavailable"), counts["bus_unavailable"])
        h.note(f"{len(traffic.sent)} commands: {counts['ack']} acked, "
               f"{counts['bus_unavailable']} bus_unavailable, {len(traffic.lost)} unanswered "
               f"at the 1012; /ready 503 after "
               f"{down_after:.2f} s, 200 after {up_after:.2f} s; {len(acked_before)} acks "
               f"checked before the kill, {len(acked_after)} after the restart")
        self.assert_clean_exit()

    async def test_sigterm_and_sigkill_mid_traffic_keep_data(self):
        # Redis saving its data on SIGTERM: every ack of the whole run must be on the stream
        # once Redis is back. Then a SIGKILL outage (nothing saved since the restart): only
        # the acks of commands sent after the second restart are judged against the stream.
        self.start_pair("--ws-rate-limit", "0", keep_data=True)
        clients = await self.open_clients()
        traffic = Traffic(clients, "t", reopen=self.open_client)
        task = asyncio.create_task(traffic.run())
        try:
            self.assertTrue(await traffic.wait_acks(10, timeout=10), "no traffic before stop")
            await asyncio.to_thread(self.redis.stop)
            await self.wait_status(503, READY_DOWN_WITHIN_S)
            await asyncio.sleep(0.7)
            await asyncio.to_thread(self.redis.start)  # loads what it saved on SIGTERM
            t_restarted_1 = time.monotonic()
            await self.wait_status(200, READY_UP_WITHIN_S)
            self.assertTrue(await traffic.wait_acks(10, timeout=10, sent_after=t_restarted_1),
                            "no acks after the first restart")
            # Everything acked so far, before and after the SIGTERM, is on the stream now.
            acked_phase_1 = traffic.acked()
            snapshot = await asyncio.to_thread(rh.all_entries, self.redis.client(),
                                               self.stream)
            await asyncio.to_thread(self.redis.kill)
            await self.wait_status(503, READY_DOWN_WITHIN_S)
            await asyncio.sleep(0.7)
            await asyncio.to_thread(self.redis.start)  # back to the RDB of the SIGTERM
            t_restarted_2 = time.monotonic()
            await self.wait_status(200, READY_UP_WITHIN_S)
            self.assertTrue(await traffic.wait_acks(10, timeout=10, sent_after=t_restarted_2),
                            "no acks after the second restart")
            traffic.stop()
            await asyncio.wait_for(task, 30)
        finally:
            traffic.stop()
            if not task.done():
                task.cancel()
            for c in clients:
                await c.close()

        counts = traffic.check_every_command_answered_once(self)
        self.assertGreater(counts["bus_unavailable"], 0, "the outages were under traffic")
        self.check_entries(acked_phase_1, snapshot, "up to the SIGKILL, across the SIGTERM")
        final = rh.all_entries(self.redis.client(), self.stream)
        self.check_entries(traffic.acked(sent_after=t_restarted_2), final,
                           "sent after the last restart")
        traffic.check_lost_not_on_the_stream(self, final)
        self.assertEqual(traffic.interrupted, 2 * len(clients), "a 1012 after each outage")
        h.note(f"{len(traffic.sent)} commands: {counts['ack']} acked, "
               f"{counts['bus_unavailable']} bus_unavailable; {len(acked_phase_1)} acks checked "
               f"across the SIGTERM")
        self.assert_clean_exit()


class HungRedis(FaultCase):
    async def test_in_flight_commands_fail_within_timeout_then_heal(self):
        self.start_pair()
        c = await Client.player(self.server, "stalled", "json")
        try:
            check_ack(self, await c.command("t", None, "pre-pause"), "pre-pause")
            self.redis.pause()
            t0 = time.monotonic()
            cids = [f"hung-{i}" for i in range(5)]
            for cid in cids:
                await c.send("t", {"cid": cid}, cid)
            answers = {}
            while len(answers) < len(cids):
                env = await c.recv(timeout=HUNG_SEEN_WITHIN_S + 2)
                self.assertIn(env.get("correlation_id"), cids, env)
                self.assertNotIn(env["correlation_id"], answers, "answered twice")
                answers[env["correlation_id"]] = (env, time.monotonic() - t0)
            for cid in cids:
                check_bus_unavailable(self, answers[cid][0], cid)
            slowest = max(t for _, t in answers.values())
            h.note(f"in-flight commands to a hung Redis failed after {slowest:.2f} s")
            self.assertLess(slowest, HUNG_SEEN_WITHIN_S)
            await self.wait_status(503, HUNG_SEEN_WITHIN_S)
            self.check_ready_503_problem()
            # Still hung: refused, never acked.
            env = await c.command("t", None, "while-hung")
            check_bus_unavailable(self, env, "while-hung")

            self.redis.resume()
            waited = await self.wait_status(200, READY_UP_WITHIN_S)
            h.note(f"/ready 200 {waited:.2f} s after SIGCONT")
            r = self.redis.client()
            stream_id = check_ack(self, await c.command("t", None, "resumed"), "resumed")
            self.assertEqual(entry(r, self.stream, stream_id)["correlation_id"], b"resumed")
            await rh.apublish(r, self.channel, {"player_id": "stalled", "type": "alive",
                                                "payload": 1})
            rh.assert_update(self, await c.recv(), "alive", 1)
        finally:
            await c.close()
        self.assert_clean_exit()


class ShutdownWithoutRedis(FaultCase):
    async def test_sigterm_exits_0_while_redis_is_down(self):
        self.start_pair()
        c = await Client.player(self.server, "leaving", "json")
        check_ack(self, await c.command("t", None, "before"), "before")
        await asyncio.to_thread(self.redis.kill)
        await self.wait_status(503, READY_DOWN_WITHIN_S)
        t0 = time.monotonic()
        self.server.proc.send_signal(signal.SIGTERM)
        code, got = await c.wait_closed(timeout=8)
        self.assertEqual(code, 1001, got)
        self.assertEqual(h.without_reconnect(self, got), [])
        self.assertEqual(await asyncio.to_thread(self.server.stop), 0)
        elapsed = time.monotonic() - t0
        h.note(f"exit 0 {elapsed:.2f} s after SIGTERM with Redis down")
        self.assertLess(elapsed, 6.0)
        self.assert_clean_exit()

    async def test_sigterm_answers_commands_in_flight_to_a_hung_redis(self):
        # Commands read before shutdown began are answered (here: bus_unavailable, at the
        # reply deadline) before the 1001 close; the exit code is still 0. The drain may
        # take 6 s, well over the 2 s reply deadline, so that it is the bus that answers.
        self.start_pair(shutdown_timeout=6)
        c = await Client.player(self.server, "last-words", "msgpack")
        check_ack(self, await c.command("t", None, "before"), "before")
        self.redis.pause()
        cids = [f"inflight-{i}" for i in range(3)]
        for cid in cids:
            await c.send("t", None, cid)
        await asyncio.sleep(0.3)  # read by the server, waiting on Redis
        t0 = time.monotonic()
        self.server.proc.send_signal(signal.SIGTERM)
        code, got = await c.wait_closed(timeout=10)
        self.assertEqual(code, 1001, got)
        got = h.without_reconnect(self, got)
        self.assertEqual(sorted(e.get("correlation_id") for e in got), cids, got)
        for env in got:
            check_bus_unavailable(self, env, env["correlation_id"])
        self.assertEqual(await asyncio.to_thread(self.server.stop), 0)
        h.note(f"exit 0 {time.monotonic() - t0:.2f} s after SIGTERM with Redis hung")
        self.assert_clean_exit()


if __name__ == "__main__":
    h.run_main()
