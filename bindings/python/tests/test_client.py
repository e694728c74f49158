"""bindings.python_client: the asyncio helper (gatehouse_client) against a real gatehouse-server
on 127.0.0.1, in every codec: welcome, acks, errors (the server's rate limit and invalid frames,
the encoder's refusals), updates published through POST /updates (--publish-key), and the
documentation's example (examples/quickstart.py) run as a program.

Usage: test_client.py PATH/TO/gatehouse-server
"""

import asyncio
import os
import re
import secrets
import subprocess
import sys
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "..", "tests", "server"))
import gatehouse_harness as harness  # noqa: E402
import gatehouse_client  # noqa: E402
import gatehouse_codec  # noqa: E402

QUICKSTART = os.path.join(HERE, "..", "examples", "quickstart.py")
STREAM_ID = re.compile(r"^\d+-\d+$")
WAIT_S = 5.0

# The python3 running this may have the ASan runtime preloaded (a sanitizer-built module); the
# server is its own sanitizer-built program and keeps its leak checks.
SERVER_ENV = {"LD_PRELOAD": "", "ASAN_OPTIONS": "abort_on_error=0:detect_leaks=1"}


def start_server(*args):
    return harness.Server(*args, publish_key="pub-" + secrets.token_hex(8),
                          env=SERVER_ENV).start()


def stop_server(server):
    code = server.stop()
    report = server.sanitizer_report()
    if report:
        raise AssertionError(f"sanitizer report in the server's stderr:\n{report}")
    if code != 0:
        raise AssertionError(f"server exit code {code} (want 0); stderr tail: "
                             f"{server.stderr_text()[-1500:]}")


class ClientCase(harness.AsyncCase):
    server_args = ()

    @classmethod
    def setUpClass(cls):
        cls.server = start_server(*cls.server_args)

    @classmethod
    def tearDownClass(cls):
        stop_server(cls.server)

    async def connect(self, codec, sub=None):
        sub = sub or f"player-{secrets.token_hex(4)}"
        client = await gatehouse_client.connect(self.server.ws_base, self.server.token(sub),
                                                codec=codec, open_timeout=WAIT_S)
        self.addAsyncCleanup(client.close)
        return client, sub


class CommandsAndUpdatesTest(ClientCase):
    async def test_welcome(self):
        for codec in gatehouse_codec.CODECS:
            with self.subTest(codec=codec):
                client, sub = await self.connect(codec)
                welcome = client.welcome
                self.assertEqual(welcome.type, "welcome")
                self.assertEqual(welcome.payload["player_id"], sub)
                self.assertEqual(welcome.payload["codec"], codec)
                self.assertTrue(welcome.payload["connection_id"])
                # The server sends its own payloads as JSON on protobuf, MessagePack on msgpack.
                want = "msgpack" if codec == "msgpack" else "json"
                self.assertEqual(welcome.envelope.payload_format, want)

    async def test_acks(self):
        for codec in gatehouse_codec.CODECS:
            with self.subTest(codec=codec):
                client, _ = await self.connect(codec)
                ack = await client.command("player_action", {"move": [1, 2], "s": "é"},
                                           correlation_id=f"{codec}-1")
                self.assertEqual((ack.type, ack.correlation_id), ("ack", f"{codec}-1"))
                self.assertRegex(ack.payload["stream_id"], STREAM_ID)
                # Without an id one is generated, so the answer still finds its command.
                ack = await client.command("player_action")
                self.assertTrue(ack.correlation_id.startswith("py-"))
                # Concurrent commands: each gets its own ack, whatever the order of arrival.
                ids = [f"{codec}-c{i}" for i in range(8)]
                acks = await asyncio.wait_for(asyncio.gather(
                    *(client.command("player_action", {"i": i}, correlation_id=cid)
                      for i, cid in enumerate(ids))), WAIT_S)
                self.assertEqual([a.correlation_id for a in acks], ids)
                self.assertEqual(len({a.payload["stream_id"] for a in acks}), len(ids))
                with self.assertRaises(asyncio.TimeoutError):
                    await client.next_update(timeout=0.3)  # acks never land among updates

    async def test_updates(self):
        for codec in gatehouse_codec.CODECS:
            with self.subTest(codec=codec):
                client, sub = await self.connect(codec)
                payloads = [{"n": i, "text": "é☃", "list": [1, None, True], "f": 1.5}
                            for i in range(3)]
                for i, payload in enumerate(payloads):
                    await self.server.apublish({"player_id": sub, "type": "game.tick",
                                                "payload": payload, "correlation_id": f"u-{i}"})
                await self.server.apublish({"broadcast": True, "type": "news",
                                            "payload": {"all": True}})
                got = []

                async def read():
                    async for update in client.updates():
                        got.append(update)
                        if len(got) == 4:
                            return
                await asyncio.wait_for(read(), WAIT_S)
                self.assertEqual([(u.type, u.payload, u.correlation_id) for u in got[:3]],
                                 [("game.tick", p, f"u-{i}") for i, p in enumerate(payloads)])
                self.assertEqual((got[3].type, got[3].payload), ("news", {"all": True}))
                self.assertIsNone(got[3].correlation_id)

    async def test_updates_and_acks_interleaved(self):
        client, sub = await self.connect("msgpack")
        await self.server.apublish({"player_id": sub, "type": "before", "payload": 1})
        ack = await client.command("player_action", correlation_id="mid")
        self.assertEqual(ack.correlation_id, "mid")
        update = await client.next_update(timeout=WAIT_S)
        self.assertEqual((update.type, update.payload), ("before", 1))

    async def test_encoder_refusals_send_nothing(self):
        for codec in gatehouse_codec.CODECS:
            with self.subTest(codec=codec):
                client, _ = await self.connect(codec)
                with self.assertRaises(gatehouse_client.CodecError) as caught:
                    await client.command("bad type!", {})
                self.assertEqual(caught.exception.status, "invalid_type")
                with self.assertRaises(gatehouse_client.CodecError) as caught:
                    await client.command("player_action", {}, correlation_id="x" * 129)
                self.assertEqual(caught.exception.status, "invalid_correlation_id")
                # Nothing reached the server: no error comes back, and the connection works.
                with self.assertRaises(asyncio.TimeoutError):
                    await client.next_update(timeout=0.3)
                ack = await client.command("player_action", correlation_id="after")
                self.assertEqual(ack.correlation_id, "after")

    async def test_server_errors_reach_the_updates(self):
        # Frames the encoder would never make, sent raw: the server's error envelopes name no
        # pending command, so the client hands them to updates() rather than dropping them.
        cases = {
            "json": ('{"type":"bad type","correlation_id":"raw-1"}', "invalid_envelope",
                     "raw-1"),
            "msgpack": (b"\xc1", "invalid_frame", None),
            "protobuf": (b"\x0a\x05ab", "invalid_frame", None),
        }
        for codec, (frame, code, correlation_id) in cases.items():
            with self.subTest(codec=codec):
                client, _ = await self.connect(codec)
                await client._ws.send(frame)  # deliberately past the encoder
                error = await client.next_update(timeout=WAIT_S)
                self.assertEqual(error.type, "error")
                self.assertEqual(error.payload["code"], code)
                self.assertEqual(error.correlation_id, correlation_id)
                ack = await client.command("player_action")
                self.assertEqual(ack.type, "ack")

    async def test_close(self):
        client, _ = await self.connect("protobuf")
        await client.close()
        self.assertTrue(client.closed)
        with self.assertRaises(ConnectionError):
            await client.command("player_action")
        self.assertEqual([u async for u in client.updates()], [])
        with self.assertRaises(ConnectionError):
            await client.next_update(timeout=1)

    async def test_bad_token_is_refused(self):
        with self.assertRaises(Exception) as caught:
            await gatehouse_client.connect(self.server.ws_base, "not-a-token", codec="json",
                                           open_timeout=WAIT_S)
        self.assertIn("401", str(caught.exception))
        with self.assertRaises(ValueError):
            await gatehouse_client.connect(self.server.ws_base, "t", codec="xml")

    async def test_quickstart_example(self):
        for codec in gatehouse_codec.CODECS:
            with self.subTest(codec=codec):
                sub = f"quick-{secrets.token_hex(4)}"
                proc = await asyncio.create_subprocess_exec(
                    sys.executable, QUICKSTART, self.server.ws_base, self.server.token(sub),
                    codec, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
                try:
                    lines = []
                    deadline = time.monotonic() + WAIT_S
                    while not (lines and lines[-1].startswith("ack:")):
                        line = await asyncio.wait_for(proc.stdout.readline(),
                                                      max(0.1, deadline - time.monotonic()))
                        if not line:
                            break
                        lines.append(line.decode().strip())
                    self.assertTrue(lines and lines[-1].startswith("ack:"), lines)
                    await self.server.apublish({"player_id": sub, "type": "game.state",
                                                "payload": {"coins": 3}})
                    out, err = await asyncio.wait_for(proc.communicate(), WAIT_S)
                finally:
                    if proc.returncode is None:
                        proc.kill()
                        await proc.wait()
                lines += out.decode().splitlines()
                self.assertEqual(proc.returncode, 0, err.decode())
                self.assertEqual(lines[0], f"welcome: {sub}")
                self.assertRegex(lines[1], r"^ack: py-[0-9a-f]+-1 \d+-\d+$")
                self.assertEqual(lines[2], "update: game.state {'coins': 3}")


class RateLimitTest(ClientCase):
    # One command per second, burst 2: a burst of ten must be partly refused.
    server_args = ("--ws-rate-limit", "1")

    async def test_rate_limited_commands_raise(self):
        for codec in gatehouse_codec.CODECS:
            with self.subTest(codec=codec):
                client, _ = await self.connect(codec)
                ids = [f"rl-{codec}-{i}" for i in range(10)]
                results = await asyncio.wait_for(asyncio.gather(
                    *(client.command("player_action", {"i": i}, correlation_id=cid)
                      for i, cid in enumerate(ids)), return_exceptions=True), WAIT_S)
                acks = [r for r in results if isinstance(r, gatehouse_client.Message)]
                refused = [r for r in results if isinstance(r, gatehouse_client.CommandError)]
                self.assertEqual(len(acks) + len(refused), len(ids), results)
                self.assertGreaterEqual(len(acks), 1)
                self.assertGreaterEqual(len(refused), 1)
                for result, cid in zip(results, ids):
                    self.assertEqual(result.correlation_id, cid)
                for error in refused:
                    self.assertEqual(error.code, "rate_limited")
                    self.assertTrue(error.message)
                    self.assertEqual(error.reply.type, "error")


if __name__ == "__main__":
    harness.run_main()
