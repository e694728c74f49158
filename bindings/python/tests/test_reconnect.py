"""bindings.python_reconnect: gatehouse_client's reconnect and resume (docs/protocol.md section 6.4)
against real gatehouse-server processes (and a real redis-server): a dropped connection resumes
with exactly the updates published meanwhile, in order, then `gatehouse.resumed`; a gateway
restarted without Redis has lost its log, so the client is told to re-sync (the on_resync
callback, or ResyncRequired from next_update()); a gateway restarted with Redis loses nothing.

Usage: test_reconnect.py PATH/TO/gatehouse-server
"""

import asyncio
import json
import os
import secrets
import sys

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


def new_server(*args, jwt_secret=None, port=None):
    """A Server (not started) with a publish key; on `port` when given (a restart)."""
    server = harness.Server(*args, publish_key="pub-" + secrets.token_hex(8),
                            jwt_secret=jwt_secret, env=SERVER_ENV)
    if port is not None:
        i = server.args.index("--listen")
        server.args[i + 1] = f"127.0.0.1:{port}"
    return server


def restarted(server, *args):
    """A new server on the same port with the same secrets, once `server` has stopped."""
    again = new_server(*args, jwt_secret=server.jwt_secret, port=server.port)
    again.publish_key = server.publish_key
    i = again.args.index("--publish-key")
    again.args[i + 1] = server.publish_key
    return again


def check_stopped(case, server):
    code = server.stop()
    case.assertIsNone(server.sanitizer_report(), server.stderr_text()[-2000:])
    case.assertEqual(code, 0, server.stderr_text()[-1500:])


class Gate:
    """A token callable that holds every reconnect until opened: the test publishes while
    the client is certainly away."""

    def __init__(self, token):
        self.token = token
        self.opened = asyncio.Event()
        self.opened.set()
        self.waiting = asyncio.Event()  # a reconnect attempt is held

    async def __call__(self):
        if not self.opened.is_set():
            self.waiting.set()
            await asyncio.wait_for(self.opened.wait(), 4 * WAIT_S)
        return self.token

    def close(self):
        self.opened.clear()
        self.waiting.clear()

    def open(self):
        self.opened.set()


def drop(client):
    """Cuts the client's connection as a network failure would (no close handshake)."""
    client._ws.transport.abort()


async def wait_for(predicate, what, timeout=WAIT_S):
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.01)


async def publish(server, player, type_, payload):
    """POST /updates for one player; its update id (the update is logged)."""
    data = await asyncio.to_thread(server.publish_ok, {"player_id": player, "type": type_,
                                                       "payload": payload})
    return json.loads(data)["update_ids"][player]


class ResumeTest(harness.AsyncCase):
    """One gateway without Redis: its log lives in the process."""

    @classmethod
    def setUpClass(cls):
        cls.server = new_server().start()

    @classmethod
    def tearDownClass(cls):
        code = cls.server.stop()
        report = cls.server.sanitizer_report()
        if report or code != 0:
            raise AssertionError(f"server exit {code}; {report or cls.server.stderr_text()[-1500:]}")

    async def connect(self, token, codec, **kw):
        client = await gatehouse_client.connect(self.server.ws_base, token, codec=codec,
                                                open_timeout=WAIT_S, reconnect=True,
                                                backoff=BACKOFF, **kw)
        self.addAsyncCleanup(client.close)
        return client

    async def test_a_dropped_connection_resumes_exactly_once_in_order(self):
        for codec in ("json", "msgpack", "protobuf"):
            with self.subTest(codec=codec):
                player = f"resume-{secrets.token_hex(4)}"
                gate = Gate(self.server.token(player))
                client = await self.connect(gate, codec)
                first = await publish(self.server, player, "tick", {"n": 0})
                update = await client.next_update(timeout=WAIT_S)
                self.assertEqual((update.type, update.payload, update.update_id),
                                 ("tick", {"n": 0}, first))
                self.assertEqual(client.last_update_id, first)

                gate.close()
                drop(client)
                await asyncio.wait_for(gate.waiting.wait(), WAIT_S)
                self.assertFalse(client.connected)
                with self.assertRaises(ConnectionError):
                    await client.command("player_action")
                missed = [await publish(self.server, player, "tick", {"n": n})
                          for n in range(1, 4)]
                gate.open()

                got = [await client.next_update(timeout=WAIT_S) for _ in range(4)]
                self.assertEqual([(u.type, u.payload, u.update_id) for u in got[:3]],
                                 [("tick", {"n": n}, i) for n, i in zip(range(1, 4), missed)])
                self.assertEqual((got[3].type, got[3].payload), ("gatehouse.resumed",
                                                                 {"replayed": 3}))
                self.assertTrue(client.connected)
                self.assertEqual(client.last_update_id, missed[-1])
                # Live again, and commands work on the new connection.
                live = await publish(self.server, player, "tick", {"n": 4})
                update = await client.next_update(timeout=WAIT_S)
                self.assertEqual((update.payload, update.update_id), ({"n": 4}, live))
                ack = await client.command("player_action")
                self.assertEqual(ack.type, "ack")
                with self.assertRaises(asyncio.TimeoutError):
                    await client.next_update(timeout=0.3)  # nothing twice

    async def test_a_reconnect_before_any_update_asks_for_a_resync(self):
        player = f"fresh-{secrets.token_hex(4)}"
        client = await self.connect(self.server.token(player), "json")
        welcome = client.welcome.payload["connection_id"]
        drop(client)
        with self.assertRaises(gatehouse_client.ResyncRequired) as caught:
            await client.next_update(timeout=WAIT_S)
        self.assertEqual(caught.exception.reason, "no_update_id")
        self.assertNotEqual(client.welcome.payload["connection_id"], welcome)
        # The stream goes on after the exception.
        sent = await publish(self.server, player, "tick", {"n": 1})
        update = await client.next_update(timeout=WAIT_S)
        self.assertEqual(update.update_id, sent)

    async def test_resume_given_to_connect(self):
        # An id kept from an earlier client: the new one starts with what followed it.
        player = f"kept-{secrets.token_hex(4)}"
        kept = await publish(self.server, player, "tick", {"n": 0})
        after = await publish(self.server, player, "tick", {"n": 1})
        client = await self.connect(self.server.token(player), "json", resume=kept)
        update = await client.next_update(timeout=WAIT_S)
        self.assertEqual((update.payload, update.update_id), ({"n": 1}, after))
        resumed = await client.next_update(timeout=WAIT_S)
        self.assertEqual((resumed.type, resumed.payload), ("gatehouse.resumed", {"replayed": 1}))


class RestartTest(harness.AsyncCase):
    """A gateway restarted on the same port: without Redis its log is gone (gap), with Redis
    nothing published meanwhile is lost."""

    async def test_restart_without_redis_calls_on_resync(self):
        server = new_server().start()
        self.addCleanup(server.kill)
        player = f"restart-{secrets.token_hex(4)}"
        resyncs = []
        resynced = asyncio.Event()

        async def on_resync(reason):
            # A coroutine, run beside the reader: it can await commands.
            ack = await client.command("session")
            resyncs.append((reason, ack.type))
            resynced.set()

        client = await gatehouse_client.connect(server.ws_base, server.token(player),
                                                open_timeout=WAIT_S, reconnect=True,
                                                backoff=BACKOFF, on_resync=on_resync)
        self.addAsyncCleanup(client.close)
        first = await publish(server, player, "tick", {"n": 0})
        self.assertEqual((await client.next_update(timeout=WAIT_S)).update_id, first)

        check_stopped(self, server)
        await wait_for(lambda: not client.connected, "the client to notice the restart")
        server = restarted(server).start()
        self.addCleanup(server.kill)
        await asyncio.wait_for(resynced.wait(), 2 * WAIT_S)
        self.assertEqual(resyncs, [("gap", "ack")])
        self.assertIsNone(client.last_update_id)
        # Updates of the new log flow, and a gap was not put among them.
        sent = await publish(server, player, "tick", {"n": 1})
        update = await client.next_update(timeout=WAIT_S)
        while update.type.startswith("gatehouse."):  # what the stopping gateway said
            update = await client.next_update(timeout=WAIT_S)
        self.assertEqual((update.type, update.update_id), ("tick", sent))
        await client.close()
        check_stopped(self, server)

    async def test_restart_without_redis_raises_resync_required(self):
        server = new_server().start()
        self.addCleanup(server.kill)
        player = f"restart-{secrets.token_hex(4)}"
        client = await gatehouse_client.connect(server.ws_base, server.token(player),
                                                codec="msgpack", open_timeout=WAIT_S,
                                                reconnect=True, backoff=BACKOFF)
        self.addAsyncCleanup(client.close)
        first = await publish(server, player, "tick", {"n": 0})
        self.assertEqual((await client.next_update(timeout=WAIT_S)).update_id, first)
        check_stopped(self, server)
        server = restarted(server).start()
        self.addCleanup(server.kill)
        while True:  # the old gateway may have said goodbye first (a drain notice, say)
            try:
                update = await client.next_update(timeout=2 * WAIT_S)
            except gatehouse_client.ResyncRequired as e:
                self.assertEqual((e.reason, e.resume), ("gap", first))
                break
            self.assertTrue(update.type.startswith("gatehouse."), update)
        await client.close()
        check_stopped(self, server)

    async def test_restart_with_redis_loses_nothing(self):
        with redis_fixture.RedisServer() as redis:
            channel = f"updates-{secrets.token_hex(4)}"
            args = ("--redis", redis.url, "--updates-channel", channel,
                    "--command-stream", f"commands-{secrets.token_hex(4)}")
            server = new_server(*args).start()
            self.addCleanup(server.kill)
            # A second instance on the same Redis publishes while the first is down.
            other = new_server(*args, jwt_secret=server.jwt_secret)
            other.publish_key = server.publish_key
            other.args[other.args.index("--publish-key") + 1] = server.publish_key
            other.start()
            self.addCleanup(other.kill)

            player = f"redis-{secrets.token_hex(4)}"
            gate = Gate(server.token(player))
            client = await gatehouse_client.connect(server.ws_base, gate, open_timeout=WAIT_S,
                                                    reconnect=True, backoff=BACKOFF)
            self.addAsyncCleanup(client.close)
            first = await publish(server, player, "game.state", {"revision": 1})
            self.assertEqual((await client.next_update(timeout=WAIT_S)).update_id, first)

            gate.close()
            check_stopped(self, server)
            await asyncio.wait_for(gate.waiting.wait(), WAIT_S)
            missed = await publish(other, player, "game.state", {"revision": 2})
            server = restarted(server, *args).start()
            self.addCleanup(server.kill)
            gate.open()

            got = []
            while len(got) < 2:
                update = await client.next_update(timeout=2 * WAIT_S)
                if update.type not in ("game.state", "gatehouse.resumed"):
                    continue  # what the stopping gateway said before it closed
                got.append(update)
            self.assertEqual((got[0].type, got[0].payload, got[0].update_id),
                             ("game.state", {"revision": 2}, missed))
            self.assertEqual((got[1].type, got[1].payload), ("gatehouse.resumed",
                                                             {"replayed": 1}))
            await client.close()
            check_stopped(self, server)
            check_stopped(self, other)


if __name__ == "__main__":
    harness.run_main()
