"""bindings.python_session: what gatehouse_client does by itself against real gatehouse-server
processes (and a real redis-server) for docs/protocol.md 6.3, 6.5 and 6.7: a session whose token
expires in five seconds is renewed in band and outlives it (with an application callback, and
with the gateway's POST /token/refresh), and one that could not be renewed reconnects with a new
token after the 4001; a command whose ack was lost with its connection is sent again after the
reconnect and is on the stream once, with the stream id of the first append; unanswered
commands are bounded; a draining gateway's after_ms decides when each client comes back.

Usage: test_session.py PATH/TO/gatehouse-server
"""

import asyncio
import json
import os
import secrets
import signal
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "..", "tests", "server"))
import gatehouse_harness as harness  # noqa: E402
import gatehouse_client  # noqa: E402
import redis_fixture  # noqa: E402

# The ASan runtime the ci preset preloads into this python3 (for the module) is no business of
# the redis-server children.
os.environ.pop("LD_PRELOAD", None)

WAIT_S = 5.0
BACKOFF = (0.1, 0.5)  # seconds: short, so that a test waits little for a reconnect
SERVER_ENV = {"LD_PRELOAD": "", "ASAN_OPTIONS": "abort_on_error=0:detect_leaks=1"}
CODECS = ("json", "msgpack", "protobuf")
# The short sessions' token lifetime. With whole-second iat the client counts one second less
# and refreshes two thirds into that (2.67 s), while as little as 4 s may really be left: over
# a second for the refresh's round trip on a loaded machine (2 s tokens left 0.33 s).
TTL_S = 5


def new_server(*args):
    return harness.Server(*args, env=SERVER_ENV)


async def wait_for(predicate, what, timeout=WAIT_S):
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.01)


async def collect(client, into):
    """Appends every update of `client` to `into` as (loop time, Message) until it closes."""
    loop = asyncio.get_running_loop()
    while True:
        try:
            into.append((loop.time(), await client.next_update()))
        except gatehouse_client.ResyncRequired:
            continue
        except ConnectionError:
            return


def types(updates):
    return [u.type for _, u in updates]


async def outlive_first_token(updates):
    """Waits, from a welcome, until a second past the exp of the token it presented (at most
    TTL_S after it), and for two in-band renewals: the second comes about 5.3 s into the
    session."""
    await asyncio.sleep(TTL_S + 1)
    await wait_for(lambda: types(updates).count("gatehouse.refreshed") >= 2,
                   "two in-band renewals")


class RefreshTest(harness.AsyncCase):
    """docs/protocol.md 6.3 from the client's side: a gateway that ends sessions at their token's
    exp, and issues access tokens for TTL_S seconds."""

    @classmethod
    def setUpClass(cls):
        cls.server = new_server("--access-ttl", str(TTL_S)).start()

    @classmethod
    def tearDownClass(cls):
        code = cls.server.stop()
        report = cls.server.sanitizer_report()
        if report or code != 0:
            raise AssertionError(f"server exit {code}; "
                                 f"{report or cls.server.stderr_text()[-1500:]}")

    async def connect(self, token, codec="json", **kw):
        client = await gatehouse_client.connect(self.server.ws_base, token, codec=codec,
                                                open_timeout=WAIT_S, reconnect=True,
                                                backoff=BACKOFF, **kw)
        self.addAsyncCleanup(client.close)
        return client

    async def test_a_session_is_renewed_in_band_with_the_applications_token(self):
        async def one(codec):
            player = f"renew-{codec}-{secrets.token_hex(4)}"
            minted = []

            async def refresh():  # a coroutine, as an application's token service would be
                minted.append(self.server.token(player, ttl=TTL_S))
                return minted[-1]

            client = await self.connect(self.server.token(player, ttl=TTL_S), codec,
                                        refresh=refresh)
            updates = []
            reader = asyncio.ensure_future(collect(client, updates))
            connection = client.welcome.payload["connection_id"]
            await outlive_first_token(updates)
            self.assertTrue(client.connected)
            self.assertEqual(client.welcome.payload["connection_id"], connection)
            refreshed = [u for _, u in updates if u.type == "gatehouse.refreshed"]
            self.assertGreaterEqual(len(minted), 2)
            self.assertIsInstance(refreshed[-1].payload["exp"], int)
            self.assertNotIn("error", types(updates))
            ack = await client.command("player_action", {"after": "refresh"})
            self.assertEqual(ack.type, "ack")
            await client.close()
            await reader

        await asyncio.gather(*(one(codec) for codec in CODECS))

    async def test_a_session_is_renewed_through_the_gateways_refresh_route(self):
        username = f"renew_{secrets.token_hex(4)}"
        password = "pw-" + secrets.token_hex(8)
        status, _, _ = await asyncio.to_thread(
            self.server.http, "POST", "/register",
            {"username": username, "email": f"{username}@example.com", "password": password})
        self.assertEqual(status, 201)
        status, _, body = await asyncio.to_thread(
            self.server.http, "POST", "/login", {"username": username, "password": password})
        self.assertEqual(status, 200)
        pair = json.loads(body)
        self.assertEqual(pair["expires_in"], TTL_S)
        pairs = []
        client = await self.connect(pair["access_token"], "msgpack",
                                    refresh_token=pair["refresh_token"], on_tokens=pairs.append)
        updates = []
        reader = asyncio.ensure_future(collect(client, updates))
        connection = client.welcome.payload["connection_id"]
        await outlive_first_token(updates)
        self.assertTrue(client.connected)
        self.assertEqual(client.welcome.payload["connection_id"], connection)
        self.assertGreaterEqual(len(pairs), 2)
        # The client holds the rotated refresh token: the live one, which logs out.
        self.assertEqual(client.refresh_token, pairs[-1]["refresh_token"])
        self.assertNotEqual(client.refresh_token, pair["refresh_token"])
        self.assertEqual((await client.command("player_action")).type, "ack")
        await client.close()
        await reader
        status, _, _ = await asyncio.to_thread(self.server.http, "POST", "/logout",
                                               {"refresh_token": client.refresh_token})
        self.assertEqual(status, 204)

    async def test_an_expired_session_reconnects_with_a_new_token(self):
        # The token source fails when the gateway warns, so the session ends with 4001; the
        # reconnect asks again rather than presenting the expired token.
        player = f"expired-{secrets.token_hex(4)}"
        calls = []

        def refresh():
            calls.append(asyncio.get_running_loop().time())
            if len(calls) == 1:
                raise RuntimeError("the token service is down")
            return self.server.token(player)

        client = await self.connect(self.server.token(player, ttl=TTL_S), refresh=refresh)
        first = client._ws
        connection = client.welcome.payload["connection_id"]
        await wait_for(lambda: client.welcome.payload["connection_id"] != connection,
                       "a reconnect after the session expired", timeout=3 * WAIT_S)
        self.assertEqual(first.close_code, 4001)
        self.assertEqual(len(calls), 2)
        self.assertTrue(client.connected)
        self.assertEqual((await client.command("player_action")).type, "ack")


class RetryTest(harness.AsyncCase):
    """docs/protocol.md 6.5 from the client's side, on Redis: the stream is what the test reads."""

    @classmethod
    def setUpClass(cls):
        cls.redis = redis_fixture.RedisServer().start()
        cls.stream = f"commands-{secrets.token_hex(4)}"
        cls.server = new_server("--redis", cls.redis.url, "--command-stream", cls.stream,
                                "--updates-channel", f"updates-{secrets.token_hex(4)}").start()

    @classmethod
    def tearDownClass(cls):
        try:
            code = cls.server.stop()
            report = cls.server.sanitizer_report()
            if report or code != 0:
                raise AssertionError(f"server exit {code}; "
                                     f"{report or cls.server.stderr_text()[-1500:]}")
        finally:
            cls.redis.close()

    async def connect(self, codec="json", **kw):
        player = f"retry-{secrets.token_hex(4)}"
        client = await gatehouse_client.connect(self.server.ws_base, self.server.token(player),
                                                codec=codec, open_timeout=WAIT_S,
                                                reconnect=True, backoff=BACKOFF, **kw)
        self.addAsyncCleanup(client.close)
        return client

    def entries(self, correlation_id):
        """The stream ids of the command stream's entries with that correlation id."""
        found = self.redis.client().xrange(self.stream)
        return [entry_id.decode() for entry_id, fields in found
                if fields.get(b"correlation_id") == correlation_id.encode()]

    async def test_a_command_whose_ack_was_lost_is_on_the_stream_once(self):
        for codec in CODECS:
            with self.subTest(codec=codec):
                client = await self.connect(codec)
                connection = client.welcome.payload["connection_id"]
                correlation_id = client.new_correlation_id()
                # The client stops reading, so the ack stays unread; once the command is on
                # the stream, the connection dies as in a network failure.
                client._ws.transport.pause_reading()
                sent = asyncio.ensure_future(
                    client.command("player_action", {"codec": codec},
                                   correlation_id=correlation_id))
                first = await asyncio.to_thread(self.wait_entry, correlation_id)
                self.assertFalse(sent.done())
                client._ws.transport.abort()
                ack = await asyncio.wait_for(sent, 2 * WAIT_S)
                self.assertNotEqual(client.welcome.payload["connection_id"], connection)
                self.assertEqual((ack.type, ack.correlation_id), ("ack", correlation_id))
                self.assertEqual(ack.payload["stream_id"], first)
                self.assertEqual(await asyncio.to_thread(self.entries, correlation_id), [first])
                # The new connection takes new commands as usual.
                again = await client.command("player_action")
                self.assertNotEqual(again.payload["stream_id"], first)

    def wait_entry(self, correlation_id):
        for _ in range(int(WAIT_S / 0.02)):
            found = self.entries(correlation_id)
            if found:
                return found[0]
            time.sleep(0.02)
        raise AssertionError(f"{correlation_id} never reached the stream")

    async def test_unanswered_commands_are_bounded(self):
        client = await self.connect("json", max_pending=2)
        client._ws.transport.pause_reading()  # acks stay unread: both commands stay pending
        waiting = [asyncio.ensure_future(client.command("player_action", {"i": i}))
                   for i in range(2)]
        await wait_for(lambda: len(client._pending) == 2, "two pending commands")
        with self.assertRaises(gatehouse_client.CommandError) as caught:
            await client.command("player_action", correlation_id="one-too-many")
        self.assertEqual((caught.exception.code, caught.exception.reply),
                         ("too_many_pending", None))
        self.assertEqual(caught.exception.correlation_id, "one-too-many")
        self.assertEqual(await asyncio.to_thread(self.entries, "one-too-many"), [])
        client._ws.transport.resume_reading()
        acks = await asyncio.wait_for(asyncio.gather(*waiting), WAIT_S)
        self.assertEqual([a.type for a in acks], ["ack", "ack"])
        self.assertEqual((await client.command("player_action")).type, "ack")


class DrainTest(harness.AsyncCase):
    """docs/protocol.md 6.7 from the client's side: each client leaves the draining gateway at the
    after_ms it was given, not all at the 1001."""

    async def test_after_ms_decides_when_each_client_comes_back(self):
        spread_ms = 2000
        server = new_server("--drain-spread-ms", str(spread_ms)).start()
        self.addCleanup(server.kill)
        loop = asyncio.get_running_loop()
        clients, attempts, updates, readers = [], [], [], []
        for i in range(5):
            player = f"drain-{i}-{secrets.token_hex(4)}"
            token = server.token(player)
            attempts.append([])

            def source(token=token, log=attempts[-1]):
                log.append(loop.time())
                return token

            client = await gatehouse_client.connect(server.ws_base, source, open_timeout=WAIT_S,
                                                    reconnect=True, backoff=BACKOFF)
            self.addAsyncCleanup(client.close)
            clients.append(client)
            updates.append([])
            readers.append(asyncio.ensure_future(collect(client, updates[-1])))

        server.proc.send_signal(signal.SIGTERM)
        notices = []
        for i, client in enumerate(clients):
            await wait_for(lambda: "gatehouse.reconnect" in types(updates[i]), "the notice")
            at, notice = next((t, u) for t, u in updates[i] if u.type == "gatehouse.reconnect")
            notices.append((at, notice.payload["after_ms"] / 1000))
        # Served during the spread: the client told to wait longest still gets acks.
        latest = max(range(len(clients)), key=lambda i: notices[i][1])
        self.assertGreater(notices[latest][1], 0.5, notices)
        self.assertEqual((await clients[latest].command("player_action")).type, "ack")

        for i in range(len(clients)):
            await wait_for(lambda: len(attempts[i]) >= 2, "a reconnect attempt", timeout=WAIT_S)
            at, after = notices[i]
            waited = attempts[i][1] - at
            # `at` is when collect() read the notice, later than when the client did (and
            # started counting after_ms): the lower bound allows for that.
            self.assertGreaterEqual(waited, after - 0.25, (i, notices))
            self.assertLess(waited, after + 1.0, (i, notices))
        afters = sorted(after for _, after in notices)
        self.assertGreaterEqual(afters[-1] - afters[0], spread_ms / 1000 / 2, afters)
        for client in clients:
            await client.close()
        await asyncio.gather(*readers)
        code = await asyncio.to_thread(server.proc.wait, 4 * WAIT_S)
        self.assertIsNone(server.sanitizer_report(), server.stderr_text()[-2000:])
        self.assertEqual(code, 0, server.stderr_text()[-1500:])


if __name__ == "__main__":
    harness.run_main()
