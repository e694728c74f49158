#!/usr/bin/env python3
"""Idempotent commands (docs/protocol.md 6.5): a command whose (player_id, correlation_id) was
accepted within --dedupe-window is acked with the original stream_id and not appended again,
across connections, over POST /commands, and across two gateways sharing one Redis; and the
same without Redis, on the in-process bus. The Redis checks run twice: on a redis-server with
the gatehouse Redis module (GATEHOUSE.APPEND, redis_module/) and on one without it (the
function gatehouse_append); and the gateway follows the module going and coming.

Usage: test_idempotent_commands.py PATH/TO/gatehouse-server [unittest args]

The stream is read back with XRANGE from a real redis-server (redis_fixture.py); without
Redis, the count of appended commands is read from the gateway's metrics.
"""

import asyncio
import secrets
import time

import gatehouse_harness as h
from gatehouse_harness import Client
from accounts_helpers import check_json, post
import redis_helpers as rh
from redis_fixture import RedisServer, gatehouse_module

DEDUPED = "gatehouse_commands_deduplicated_total"
MODULE_GAUGE = "gatehouse_redis_module_loaded"
# What the gateway logs at each connect, and when the module's command is gone.
MODULE_USED = "idempotent commands appended by GATEHOUSE.APPEND"
FUNCTION_USED = "idempotent commands appended by FCALL gatehouse_append"
MODULE_MISSING = "GATEHOUSE.APPEND refused by Redis ("


def redis_with_module(**kw):
    """A RedisServer (not started) that loads the gatehouse Redis module and takes MODULE
    commands from 127.0.0.1."""
    return RedisServer(module=gatehouse_module(h.SERVER_BINARY),
                       extra_args=["--enable-module-command", "local"], **kw)


def module_calls(r):
    """How many GATEHOUSE.APPEND calls Redis ran (INFO commandstats; 0 without the module)."""
    return r.info("commandstats").get("cmdstat_gatehouse.append", {}).get("calls", 0)


def cid():
    return "retry-" + secrets.token_hex(4)


def entries_with(r, stream, correlation_id):
    """The stream ids of the entries carrying `correlation_id`."""
    return [i for i, f in rh.all_entries(r, stream).items()
            if f["correlation_id"] == correlation_id.encode()]


def post_command(server, sub, body):
    return post(server, "/commands", body, token=server.token(sub))


async def acked_id(case, client, correlation_id):
    """Sends one command with `correlation_id` (None: none) and returns its ack's stream_id."""
    kw = {} if correlation_id is None else {"correlation_id": correlation_id}
    return rh.check_ack(case, await client.command("player_action", {"n": 1}, **kw),
                        correlation_id)


class TwoGatewaysOneRedis(h.AsyncCase):
    """Two gatehouse-servers on one redis-server (without the gatehouse module) and one stream,
    default window (120 s)."""

    with_module = False

    @classmethod
    def setUpClass(cls):
        cls.redis = (redis_with_module() if cls.with_module else RedisServer()).start()
        cls.r = cls.redis.client()
        cls.stream = rh.unique("gh:commands")
        channel = rh.unique("gh:updates")
        secret = "s3cr3t-" + secrets.token_hex(16)
        cls.gw = []
        try:
            for name in ("a", "b"):
                cls.gw.append(rh.redis_gateway(cls.redis.url, cls.stream, channel,
                                               rh.unique("gw-" + name),
                                               jwt_secret=secret).start())
        except BaseException:
            for s in cls.gw:
                s.kill()
            cls.redis.close()
            raise

    @classmethod
    def tearDownClass(cls):
        problems = []
        try:
            for s in cls.gw:
                problems += rh.stop_and_check(s)
        finally:
            cls.redis.close()
        if problems:
            raise AssertionError("\n".join(problems))

    def entries(self, correlation_id):
        return entries_with(self.r, self.stream, correlation_id)

    async def test_commands_take_the_path_redis_offers(self):
        """With the module every call is a GATEHOUSE.APPEND (Redis counts them), without it the
        function's; each gateway logs which at connect and shows it in its gauge."""
        before = await asyncio.to_thread(module_calls, self.r)
        for server in self.gw:
            a = await Client.player(server, "path-finder")
            try:
                await acked_id(self, a, cid())
            finally:
                await a.close()
            self.assertEqual(server.metric(MODULE_GAUGE), 1 if self.with_module else 0)
            self.assertIn(MODULE_USED if self.with_module else FUNCTION_USED,
                          server.stderr_text())
        after = await asyncio.to_thread(module_calls, self.r)
        self.assertEqual(after - before, 2 if self.with_module else 0)

    async def test_retry_on_another_connection_gets_the_original_id(self):
        c = cid()
        first = await Client.player(self.gw[0], "retrier")
        try:
            original = await acked_id(self, first, c)
        finally:
            await first.close()
        again = await Client.player(self.gw[0], "retrier", "msgpack")
        try:
            self.assertEqual(await acked_id(self, again, c), original)
        finally:
            await again.close()
        self.assertEqual(await asyncio.to_thread(self.entries, c), [original])

    async def test_retry_on_the_other_instance(self):
        c = cid()
        a = await Client.player(self.gw[0], "roamer")
        b = await Client.player(self.gw[1], "roamer")
        try:
            before = self.gw[1].metric(DEDUPED)
            original = await acked_id(self, a, c)
            self.assertEqual(await acked_id(self, b, c), original)
            self.assertEqual(await asyncio.to_thread(self.entries, c), [original])
            self.assertEqual(self.gw[1].metric(DEDUPED), before + 1)
        finally:
            await a.close()
            await b.close()

    async def test_post_commands_duplicate_is_202_with_the_original_id(self):
        c = cid()
        ws = await Client.player(self.gw[0], "poster")
        try:
            original = await acked_id(self, ws, c)
        finally:
            await ws.close()
        body = {"type": "player_action", "payload": {"n": 1}, "correlation_id": c}
        for server in self.gw:
            r = await asyncio.to_thread(post_command, server, "poster", body)
            doc = check_json(self, r, 202)
            self.assertEqual(doc, {"correlation_id": c, "stream_id": original})
        self.assertEqual(await asyncio.to_thread(self.entries, c), [original])

    async def test_different_players_same_correlation_id_are_both_appended(self):
        c = cid()
        one = await Client.player(self.gw[0], "player-one")
        two = await Client.player(self.gw[0], "player-two")
        # Pairs are length-prefixed: ("x:y", "z") and ("x", "y:z") are different commands.
        three = await Client.player(self.gw[1], "x:y")
        four = await Client.player(self.gw[1], "x")
        try:
            ids = [await acked_id(self, one, c), await acked_id(self, two, c)]
            ids += [await acked_id(self, three, "z"), await acked_id(self, four, "y:z")]
            self.assertEqual(len(set(ids)), 4, ids)
            self.assertEqual(sorted(await asyncio.to_thread(self.entries, c)), sorted(ids[:2]))
        finally:
            for client in (one, two, three, four):
                await client.close()

    async def test_gateway_assigned_ids_never_deduplicate(self):
        a = await Client.player(self.gw[0], "anonymous-ids")
        try:
            ids = [await acked_id(self, a, None) for _ in range(3)]
        finally:
            await a.close()
        self.assertEqual(len(set(ids)), 3, ids)
        for i in ids:
            self.assertIsNotNone(await asyncio.to_thread(rh.entry, self.r, self.stream, i))

    async def test_concurrent_duplicates_appear_once(self):
        # Many connections of one player, on both instances, send the same pair at once.
        c = cid()
        clients = [await Client.player(self.gw[i % 2], "racer") for i in range(8)]
        try:
            await asyncio.gather(*(x.send("player_action", {"n": 1}, c) for x in clients))
            acks = await asyncio.gather(*(x.recv() for x in clients))
        finally:
            for x in clients:
                await x.close()
        ids = {a["payload"]["stream_id"] for a in acks if a["type"] == "ack"}
        self.assertEqual(len(ids), 1, acks)
        self.assertEqual(await asyncio.to_thread(self.entries, c), list(ids))


class TwoGatewaysOneRedisWithModule(TwoGatewaysOneRedis):
    """The same checks, on a redis-server with the gatehouse module: both gateways append by
    GATEHOUSE.APPEND, a retry on either gets the original stream id, the stream has it once."""

    with_module = True


class ShortWindow(rh.OneRedisGateway):
    """--dedupe-window 1: a retry after the window is appended again."""

    @classmethod
    def extra_args(cls):
        return ["--dedupe-window", "1"]

    async def test_appended_again_after_the_window(self):
        c = cid()
        a = await Client.player(self.server, "slow-retrier")
        try:
            t0 = time.monotonic()
            original = await acked_id(self, a, c)
            # Within the window: the original; then, bounded, a new entry.
            later = original
            deadline = t0 + 5.0
            while later == original and time.monotonic() < deadline:
                await asyncio.sleep(0.2)
                later = await acked_id(self, a, c)
            self.assertNotEqual(later, original, "still deduplicated 5 s into a 1 s window")
            self.assertGreaterEqual(time.monotonic() - t0, 0.9)
        finally:
            await a.close()
        self.assertEqual(sorted(await asyncio.to_thread(entries_with, self.r, self.stream, c)),
                         sorted([original, later]))

    async def test_at_most_two_windows_of_pairs(self):
        """A window's hash is read only while it or the next is current: the one before is
        unlinked by the next call, so Redis never holds three."""
        a = await Client.player(self.server, "steady-sender")
        windows, held, straddled = set(), [], []
        try:
            deadline = time.monotonic() + 6.0
            while len(windows) < 4 and time.monotonic() < deadline:
                # Redis's second read before the call and after the keys: only when both are
                # the same is it the second (the window) the call ran in. On a loaded machine
                # the ack and the reads may come a second after the call, when the keys are
                # still the call's: [-2, -1] relative to the later second.
                before = int(self.r.time()[0])
                await acked_id(self, a, cid())
                keys = [k.decode() for k in self.r.keys(f"{self.stream}:dedupe:*")]
                now = int(self.r.time()[0])
                relative = sorted(int(k.rsplit(":", 1)[1]) - now for k in keys)
                if before != now:
                    straddled.append((before, now, relative))
                else:
                    windows.add(now)
                    held.append((now, relative))
                await asyncio.sleep(0.1)
        finally:
            await a.close()
        self.assertGreaterEqual(len(windows), 4, (held, straddled))
        later = [h for now, h in held if now >= min(windows) + 2]
        self.assertTrue(later, (held, straddled))
        for relative in later:
            self.assertTrue(set(relative) <= {-1, 0}, (held, straddled))


class ShortWindowWithModule(ShortWindow):
    """The same window rules kept by GATEHOUSE.APPEND."""

    @classmethod
    def redis_server(cls):
        return redis_with_module()


class ModuleUnloaded(rh.OneRedisGateway):
    """MODULE UNLOAD gatehouse while a player keeps sending: the calls Redis answers "unknown
    command" are resent through the function, so every command is acked and appended once, in
    the order sent, still de-duplicated (against what the module appended too); the gateway
    warns once and stays on the function."""

    # Commands unanswered at most, and sent after the unload is answered (bounded in all).
    WINDOW = 64
    AFTER_UNLOAD = 300
    AT_MOST = 4000

    @classmethod
    def redis_server(cls):
        return redis_with_module()

    @classmethod
    def extra_args(cls):
        return ["--ws-rate-limit", "0"]

    async def test_unloaded_mid_run(self):
        a = await Client.player(self.server, "unloaded")
        try:
            before = cid()
            original = await acked_id(self, a, before)
            self.assertEqual(self.server.metric(MODULE_GAUGE), 1)
            self.assertGreater(await asyncio.to_thread(module_calls, self.r), 0)
            sent, acks = [], {}

            async def receive_one():
                env = await a.recv()
                acks[env.get("correlation_id")] = rh.check_ack(self, env)

            async def unload_once_running():
                while len(acks) < 200:
                    await asyncio.sleep(0.002)
                await asyncio.to_thread(self.r.execute_command, "MODULE", "UNLOAD", "gatehouse")

            unloader = asyncio.create_task(unload_once_running())
            try:
                # Traffic through the unload, WINDOW commands unanswered at most, until
                # AFTER_UNLOAD more were sent once Redis answered it.
                after = None
                while len(sent) < self.AT_MOST:
                    if after is None and unloader.done():
                        after = len(sent)
                    if after is not None and len(sent) >= after + self.AFTER_UNLOAD:
                        break
                    while len(sent) - len(acks) >= self.WINDOW:
                        await receive_one()
                    c = cid()
                    sent.append(c)
                    await a.send("player_action", {"n": 1}, c)
                    await asyncio.sleep(0)
                while len(acks) < len(sent):
                    await receive_one()
                self.assertTrue(unloader.done(), "the unload was not answered in time")
                await unloader
            finally:
                unloader.cancel()
            self.assertGreaterEqual(len(sent) - after, self.AFTER_UNLOAD)
            self.assertEqual(sorted(acks), sorted(sent))
            # One connection's commands keep their order on the stream, whichever way each was
            # appended (module, resent through the function, function).
            ids = [acks[c] for c in sent]
            self.assertEqual(sorted(ids, key=h.stream_id_key), ids)
            on_stream = {}
            for i, f in (await asyncio.to_thread(rh.all_entries, self.r, self.stream)).items():
                on_stream.setdefault(f["correlation_id"].decode(), []).append(i)
            for c in sent:
                self.assertEqual(on_stream.get(c), [acks[c]], c)
            # The function reads the pairs the module remembered, and remembers its own.
            self.assertEqual(await acked_id(self, a, before), original)
            c = cid()
            again = await acked_id(self, a, c)
            self.assertEqual(await acked_id(self, a, c), again)
            self.assertEqual(await asyncio.to_thread(entries_with, self.r, self.stream, c),
                             [again])
        finally:
            await a.close()
        self.assertEqual(self.server.stderr_text().count(MODULE_MISSING), 1)
        self.assertEqual(self.server.metric(MODULE_GAUGE), 0)
        self.assertEqual(await asyncio.to_thread(rh.ready_status, self.server), 200)


class ModuleComesAndGoes(rh.OneRedisGateway):
    """Redis restarted with the module after running without it, then without it again: each
    reconnect finds out, logs it and shows it in the gauge; retries are de-duplicated either
    way."""

    @classmethod
    def extra_args(cls):
        return ["--redis-reconnect-max", "0.2"]

    def restart_redis(self, module):
        self.redis.stop()
        self.redis.module = gatehouse_module(h.SERVER_BINARY) if module else None
        self.redis.start()
        self.r = self.redis.client()

    async def check_reconnected(self, module):
        value = await asyncio.to_thread(self.server.wait_metric, MODULE_GAUGE,
                                        lambda v: v == (1 if module else 0), 10.0)
        self.assertEqual(value, 1 if module else 0, "the reconnect did not find out")
        self.assertEqual(await asyncio.to_thread(
            self.server.wait_metric, "gatehouse_redis_connected", lambda v: v == 1, 10.0), 1)
        a = await Client.player(self.server, "come-and-go")
        try:
            c = cid()
            original = await acked_id(self, a, c)
            self.assertEqual(await acked_id(self, a, c), original)
        finally:
            await a.close()
        self.assertEqual(await asyncio.to_thread(entries_with, self.r, self.stream, c),
                         [original])
        self.assertEqual(await asyncio.to_thread(module_calls, self.r) > 0, module)

    async def test_restarted_with_then_without_the_module(self):
        await self.check_reconnected(module=False)
        self.assertEqual(self.server.stderr_text().count(FUNCTION_USED), 1)
        await asyncio.to_thread(self.restart_redis, True)
        await self.check_reconnected(module=True)
        self.assertEqual(self.server.stderr_text().count(MODULE_USED), 1)
        # While Redis is away the gauge says 0: the next connect asks again.
        await asyncio.to_thread(self.redis.stop)
        self.assertEqual(await asyncio.to_thread(
            self.server.wait_metric, "gatehouse_redis_connected", lambda v: v == 0, 10.0), 0)
        self.assertEqual(self.server.metric(MODULE_GAUGE), 0)
        await asyncio.to_thread(self.restart_redis, False)
        await self.check_reconnected(module=False)
        self.assertEqual(self.server.stderr_text().count(FUNCTION_USED), 2)
        self.assertEqual(self.server.stderr_text().count(MODULE_MISSING), 0)


class WindowOff(rh.OneRedisGateway):
    """--dedupe-window 0: every command is appended (v1 behaviour)."""

    @classmethod
    def extra_args(cls):
        return ["--dedupe-window", "0"]

    async def test_appended_twice(self):
        c = cid()
        a = await Client.player(self.server, "no-window")
        try:
            ids = [await acked_id(self, a, c), await acked_id(self, a, c)]
        finally:
            await a.close()
        self.assertNotEqual(ids[0], ids[1])
        self.assertEqual(sorted(await asyncio.to_thread(entries_with, self.r, self.stream, c)),
                         sorted(ids))
        self.assertEqual(self.server.metric(DEDUPED), 0)


# A `gatehouse` library without gatehouse_append: what an older gateway of a rolling deploy
# loads with FUNCTION LOAD REPLACE when it reconnects.
LIBRARY_WITHOUT_APPEND = ("#!lua name=gatehouse\n"
                          "redis.register_function('gatehouse_other', function() return 1 end)")


class LibraryLost(rh.OneRedisGateway):
    """The library flushed or replaced mid-run: the next commands are acked by a plain XADD,
    the gateway loads the library again, and de-duplication works again."""

    def has_append(self):
        libs = self.r.execute_command("FUNCTION", "LIST", "LIBRARYNAME", "gatehouse")
        return b"gatehouse_append" in repr(libs).encode()

    async def check_lost_and_reloaded(self, lose):
        warned = self.server.stderr_text().count("function library is missing")
        a = await Client.player(self.server, "survivor")
        try:
            before = await acked_id(self, a, cid())
            await asyncio.to_thread(lose)
            self.assertFalse(await asyncio.to_thread(self.has_append))
            # The commands of the calls that found the library missing: acked, on the stream.
            sent = [cid() for _ in range(3)]
            acked = [await acked_id(self, a, c) for c in sent]
            for c, i in zip(sent, acked):
                self.assertEqual(await asyncio.to_thread(entries_with, self.r, self.stream, c),
                                 [i])
            self.assertNotIn(before, acked)
            deadline = time.monotonic() + 5.0
            while not await asyncio.to_thread(self.has_append):
                self.assertLess(time.monotonic(), deadline, "the library was not loaded again")
                await asyncio.sleep(0.05)
            self.assertEqual(await asyncio.to_thread(rh.ready_status, self.server), 200)
            c = cid()
            original = await acked_id(self, a, c)
            self.assertEqual(await acked_id(self, a, c), original)
            self.assertEqual(await asyncio.to_thread(entries_with, self.r, self.stream, c),
                             [original])
        finally:
            await a.close()
        self.assertEqual(self.server.stderr_text().count("function library is missing"),
                         warned + 1)

    async def test_flushed(self):
        await self.check_lost_and_reloaded(lambda: self.r.execute_command("FUNCTION", "FLUSH"))

    async def test_replaced_without_append(self):
        await self.check_lost_and_reloaded(lambda: self.r.execute_command(
            "FUNCTION", "LOAD", "REPLACE", LIBRARY_WITHOUT_APPEND))


class LibraryRefused(h.AsyncCase):
    """An ACL user without FUNCTION: the load is refused, commands are acked by plain XADD
    (not de-duplicated)."""

    @classmethod
    def setUpClass(cls):
        cls.redis = RedisServer().start()
        cls.r = cls.redis.client()
        password = secrets.token_hex(8)
        cls.r.execute_command("ACL", "SETUSER", "nofunction", "on", ">" + password, "~*", "&*",
                              "+@all", "-function")
        cls.stream = rh.unique("gh:commands")
        try:
            cls.server = rh.redis_gateway(
                f"redis://nofunction:{password}@127.0.0.1:{cls.redis.port}", cls.stream,
                rh.unique("gh:updates"), rh.unique("gw")).start()
        except BaseException:
            cls.redis.close()
            raise

    @classmethod
    def tearDownClass(cls):
        try:
            problems = rh.stop_and_check(cls.server)
        finally:
            cls.redis.close()
        if problems:
            raise AssertionError("\n".join(problems))

    async def test_commands_acked_by_plain_xadd(self):
        c = cid()
        a = await Client.player(self.server, "no-library")
        try:
            ids = [await acked_id(self, a, c), await acked_id(self, a, c)]
        finally:
            await a.close()
        self.assertNotEqual(ids[0], ids[1])
        self.assertEqual(sorted(await asyncio.to_thread(entries_with, self.r, self.stream, c)),
                         sorted(ids))
        self.assertIn("FUNCTION LOAD of the gatehouse library refused", self.server.stderr_text())
        self.assertEqual(self.server.metric(DEDUPED), 0)


class InProcessBus(h.ServerTestCase):
    """Without Redis: the same rules on the in-process bus."""

    async def test_retry_and_post_get_the_original_id(self):
        c = cid()
        first = await Client.player(self.server, "local-retrier")
        try:
            original = await acked_id(self, first, c)
        finally:
            await first.close()
        again = await Client.player(self.server, "local-retrier", "protobuf")
        other = await Client.player(self.server, "local-other")
        try:
            self.assertEqual(await acked_id(self, again, c), original)
            self.assertNotEqual(await acked_id(self, other, c), original)
            anonymous = {await acked_id(self, again, None) for _ in range(2)}
            self.assertEqual(len(anonymous), 2)
        finally:
            await again.close()
            await other.close()
        body = {"type": "player_action", "payload": {"n": 1}, "correlation_id": c}
        r = await asyncio.to_thread(post_command, self.server, "local-retrier", body)
        self.assertEqual(check_json(self, r, 202), {"correlation_id": c, "stream_id": original})
        self.assertEqual(self.server.metric(DEDUPED), 2)


if __name__ == "__main__":
    h.run_main()
