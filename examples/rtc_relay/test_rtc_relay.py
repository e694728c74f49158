#!/usr/bin/env python3
"""The rtc_relay example end to end: a real redis-server, gatehouse-server --redis,
rtc_relay_service.py as its own process, and WebSocket peers (rtc_client.Peer on MessagePack,
the harness's JSON client, and rtc_client.py run as the two programs).

Usage: test_rtc_relay.py PATH/TO/gatehouse-server [unittest args]

Checked as clients see it (docs/examples/rtc-relay.md): joining tells the joiner who is there
and the others who came, and puts the player in the gateway's room; offer/answer/ICE reach the
other peer with `from`, only inside a shared room, otherwise the sender's connection gets
rtc.error with its correlation_id; a file of a few hundred KiB of random bytes crosses in
shuffled, partly repeated chunks and is reassembled byte-exact; the bounds are enforced; a
restart of the service in the middle of a transfer loses neither rooms nor the transfer.

Only 127.0.0.1; every wait bounded.
"""

import asyncio
import base64
import hashlib
import json
import os
import random
import secrets
import signal
import subprocess
import sys
import tempfile
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "tests", "server"))
sys.path.insert(0, HERE)

import msgpack  # noqa: E402

import gatehouse_harness as h  # noqa: E402
import rtc_client as rc  # noqa: E402
import rtc_relay_service as svc  # noqa: E402
from gatehouse_harness import Client  # noqa: E402
from redis_fixture import RedisServer  # noqa: E402

PYTHON = "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else sys.executable
SERVICE = os.path.join(HERE, "rtc_relay_service.py")
CLIENT = os.path.join(HERE, "rtc_client.py")
DOC = os.path.join(HERE, "..", "..", "docs", "examples", "rtc-relay.md")

# Not the defaults, so that the flags are shown to reach the server and the service.
STREAM = "rtc-test:commands"
CHANNEL = "rtc_test_updates"
GROUP = "rtc-relay-test"

SERVICE_READY_TIMEOUT_S = 10.0
SERVICE_STOP_TIMEOUT_S = 5.0  # XREADGROUP blocks 500 ms at a time
BUS_READY_TIMEOUT_S = 15.0
TIMEOUT_S = 10.0


class Service:
    """rtc_relay_service.py as a child process; stdout/stderr to temp files."""

    def __init__(self, redis_url, consumer):
        self.argv = [PYTHON, SERVICE, "--redis", redis_url, "--command-stream", STREAM,
                     "--updates-channel", CHANNEL, "--group", GROUP, "--consumer", consumer]
        self.proc = None

    def start(self):
        self._out = tempfile.TemporaryFile()
        self._err = tempfile.TemporaryFile()
        self.proc = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL, stdout=self._out,
                                     stderr=self._err, env=dict(os.environ, PYTHONUNBUFFERED="1"))
        deadline = time.monotonic() + SERVICE_READY_TIMEOUT_S
        while time.monotonic() < deadline:
            if "rtc_relay ready" in self.text(self._out):
                return self
            if self.proc.poll() is not None:
                break
            time.sleep(0.02)
        self.kill()
        raise AssertionError(f"service not ready within {SERVICE_READY_TIMEOUT_S} s: "
                             f"{self.text(self._err)[-1500:]}")

    def stop(self):
        """SIGTERM; the exit code, or None when it had to be killed."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=SERVICE_STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.kill()
                return None
        return self.proc.returncode

    def kill(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=5)

    @staticmethod
    def text(f):
        f.seek(0)
        return f.read().decode("utf-8", "replace")

    def stderr_text(self):
        return self.text(self._err)


def wait_until(predicate, timeout, what):
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() >= deadline:
            raise AssertionError(f"{what}: not within {timeout} s")
        time.sleep(0.05)


def unique(prefix):
    return f"{prefix}-{secrets.token_hex(4)}"


class RtcRelay(h.AsyncCase):
    """One redis-server, one gatehouse-server --redis and one relay service for the class (a
    test that restarts the service leaves a running one behind). Rooms and players are named
    per test, so tests share no state."""

    @classmethod
    def setUpClass(cls):
        cls.redis = RedisServer().start()
        cls.service = None
        try:
            cls.server = h.Server("--redis", cls.redis.url, "--command-stream", STREAM,
                                  "--updates-channel", CHANNEL, binary=h.SERVER_BINARY).start()
            wait_until(lambda: cls.server.http("GET", "/ready")[0] == 200, BUS_READY_TIMEOUT_S,
                       "GET /ready answering 200")
            cls.service = Service(cls.redis.url, "relay-1").start()
        except Exception:
            if cls.service:
                cls.service.kill()
            if getattr(cls, "server", None):
                cls.server.kill()
            cls.redis.close()
            raise

    @classmethod
    def tearDownClass(cls):
        try:
            code = cls.service.stop()
            if code != 0:
                raise AssertionError(f"service exit code {code} after SIGTERM; stderr: "
                                     f"{cls.service.stderr_text()[-1500:]}")
            if "Traceback" in cls.service.stderr_text():
                raise AssertionError(f"service stderr: {cls.service.stderr_text()[-1500:]}")
            code = cls.server.stop()
            report = cls.server.sanitizer_report()
            if report:
                raise AssertionError(f"sanitizer report in the server's stderr:\n{report}")
            if code != 0:
                raise AssertionError(f"server exit code {code}: {cls.server.stderr_text()[-1500:]}")
        finally:
            cls.service.kill()
            cls.server.kill()
            cls.redis.close()

    # -- helpers -------------------------------------------------------------------------------
    async def peer(self, name):
        p = await rc.Peer.connect(self.server.ws_base, self.server.token(name))
        self.assertEqual(p.player_id, name)
        self.addAsyncCleanup(p.close)
        return p

    async def json_client(self, name):
        c = await Client.player(self.server, name, "json")
        self.assertEqual(c.welcome["type"], "welcome", c.welcome)
        self.addAsyncCleanup(c.close)
        return c

    async def json_request(self, client, kind, payload, answer_types):
        """Sends from a harness JSON client; returns (ack, the update with that correlation id
        whose type is one of answer_types). The ack and the update travel different paths, so
        either may come first."""
        cid = unique("c")
        await client.send(kind, payload, cid)
        got = await client.recv_until(lambda e: e.get("correlation_id") == cid and
                                      e["type"] in answer_types, TIMEOUT_S)
        acks = [e for e in got if e["type"] == "ack" and e.get("correlation_id") == cid]
        if not acks:
            acks = await client.recv_until(lambda e: e["type"] == "ack", TIMEOUT_S)
        self.assertEqual(acks[-1]["correlation_id"], cid, acks)
        return got[-1]

    def publish(self, message):
        return self.redis.client().publish(CHANNEL, json.dumps(message))

    async def nothing_else(self, peer, kinds):
        """Proves `peer` got no update of `kinds`: updates reach a player in publish order,
        so once a marker published now has arrived, anything published earlier has too."""
        tag = unique("m")
        self.publish({"player_id": peer.player_id, "type": "marker", "payload": tag})
        await peer.expect(lambda e: e["type"] == "marker" and e["payload"] == tag, TIMEOUT_S,
                          "marker")
        self.assertEqual([e for e in peer.inbox if e["type"] in kinds], [])

    async def refused(self, peer, kind, payload, code):
        """Sends a command that the relay must refuse with `code`; returns the error payload."""
        cid = await peer.command(kind, payload)
        err = await peer.expect(lambda e: e.get("correlation_id") == cid, TIMEOUT_S,
                                f"answer to {kind}")
        self.assertEqual(err["type"], "rtc.error", err)
        self.assertEqual(err["payload"]["code"], code, err)
        self.assertEqual(err["payload"]["request"], kind, err)
        self.assertIsInstance(err["payload"]["message"], str)
        return err["payload"]

    def assert_same_bytes(self, got, want):
        """Byte-exact, with a failure message that names sizes and digests, not megabytes."""
        self.assertTrue(got == want, f"got {len(got)} bytes sha256 "
                                     f"{hashlib.sha256(got).hexdigest()[:16]}, want {len(want)} "
                                     f"bytes sha256 {hashlib.sha256(want).hexdigest()[:16]}")

    def members(self, room):
        return {m.decode() for m in self.redis.client().smembers(f"rtc:room:{room}")}

    def assert_nothing_pending(self):
        r = self.redis.client()
        wait_until(lambda: r.xpending(STREAM, GROUP)["pending"] == 0, 3.0,
                   "every entry acknowledged by the relay")

    async def room_of(self, room, *players):
        """Players joined to `room` in order, each checked to see the ones before it."""
        peers = []
        for name in players:
            p = await self.peer(name)
            self.assertEqual(await p.join(room), sorted(q.player_id for q in peers))
            for q in peers:
                await q.expect(lambda e: e["type"] == "rtc.peer_joined" and
                               e["payload"] == {"room": room, "player_id": name}, TIMEOUT_S)
            peers.append(p)
        return peers

    # -- rooms ---------------------------------------------------------------------------------
    async def test_join_and_leave_tell_the_others_and_move_the_gateway_room(self):
        room = unique("r")
        alice, bob = await self.room_of(room, "j-alice", "j-bob")
        carol = await self.peer("j-carol")  # connected, in no room
        self.assertEqual(self.members(room), {"j-alice", "j-bob"})

        # The relay issued the gateway's own join: a room update reaches both members only.
        note = unique("n")
        self.publish({"room": f"rtc:{room}", "type": "room.note", "payload": note})
        for p in (alice, bob):
            await p.expect(lambda e: e["type"] == "room.note" and e["payload"] == note)
        await self.nothing_else(carol, {"room.note"})

        # Joining again is harmless (a client re-joins after a reconnect): the same answer,
        # the others hear of it again (they keep a set), the room is unchanged.
        self.assertEqual(await alice.join(room), ["j-bob"])
        await bob.expect(lambda e: e["type"] == "rtc.peer_joined" and
                         e["payload"]["player_id"] == "j-alice")
        self.assertEqual(self.members(room), {"j-alice", "j-bob"})

        got = await bob.request("rtc.leave", {"room": room}, "rtc.left")
        self.assertEqual((got["type"], got["payload"]), ("rtc.left", {"room": room}), got)
        await alice.expect(lambda e: e["type"] == "rtc.peer_left" and
                           e["payload"] == {"room": room, "player_id": "j-bob"})
        self.assertEqual(self.members(room), {"j-alice"})
        note = unique("n")
        self.publish({"room": f"rtc:{room}", "type": "room.note", "payload": note})
        await alice.expect(lambda e: e["type"] == "room.note" and e["payload"] == note)
        await self.nothing_else(bob, {"room.note"})

        await self.refused(bob, "rtc.leave", {"room": room}, "not_in_room")
        await self.refused(bob, "rtc.join", {"room": "has space"}, "invalid_payload")
        await self.refused(bob, "rtc.join", {}, "invalid_payload")
        await self.refused(bob, "rtc.join", ["not", "an", "object"], "invalid_payload")
        await self.refused(bob, "rtc.bogus", {}, "unknown_command")
        self.assert_nothing_pending()

    async def test_room_and_rooms_per_player_are_bounded(self):
        room = unique("full")
        for i in range(svc.MAX_ROOM_MEMBERS):  # straight into Redis: 16 connections is slow
            self.redis.client().sadd(f"rtc:room:{room}", f"ghost-{i}")
        p = await self.peer("b-late")
        await self.refused(p, "rtc.join", {"room": room}, "room_full")
        for i in range(svc.MAX_ROOMS_PER_PLAYER):
            await p.join(f"{room}-{i}")
        await self.refused(p, "rtc.join", {"room": f"{room}-x"}, "too_many_rooms")
        self.assertEqual(await p.join(f"{room}-0"), [])  # a room it is in already: fine

    # -- signalling ----------------------------------------------------------------------------
    async def test_offer_answer_ice_relayed_within_a_room_only(self):
        room, other_room = unique("s"), unique("s")
        alice, bob = await self.room_of(room, "s-alice", "s-bob")
        alice2 = await self.peer("s-alice")  # a second device of alice
        carol = await self.json_client("s-carol")
        got = await self.json_request(carol, "rtc.join", {"room": other_room}, ("rtc.joined",))
        self.assertEqual(got["payload"], {"room": other_room, "peers": []})

        sdp = "v=0\r\no=- 4611731400430051336 2 IN IP4 127.0.0.1\r\ns=-\r\n" + "a=x\r\n" * 200
        await alice.command("rtc.offer", {"to": "s-bob", "sdp": sdp})
        offer = await bob.expect(bob.from_("rtc.offer", "s-alice"))
        self.assertEqual(offer["payload"], {"from": "s-alice", "room": room, "sdp": sdp})
        self.assertNotIn("correlation_id", offer)  # the sender's id is not the receiver's

        await bob.command("rtc.answer", {"to": "s-alice", "sdp": "answer-sdp"})
        for p in (alice, alice2):  # to the player: every device
            answer = await p.expect(p.from_("rtc.answer", "s-bob"))
            self.assertEqual(answer["payload"]["sdp"], "answer-sdp")
        candidate = {"candidate": "candidate:1 1 udp 2122260223 10.0.0.1 5000 typ host",
                     "sdpMid": "0", "sdpMLineIndex": 0}
        await bob.command("rtc.ice", {"to": "s-alice", "candidate": candidate})
        ice = await alice.expect(alice.from_("rtc.ice", "s-bob"))
        self.assertEqual(ice["payload"], {"from": "s-bob", "room": room, "candidate": candidate})
        await alice.command("rtc.ice", {"to": "s-bob", "candidate": "candidate:2 1 udp 1 x"})
        ice = await bob.expect(bob.from_("rtc.ice", "s-alice"))
        self.assertEqual(ice["payload"]["candidate"], "candidate:2 1 udp 1 x")

        # Across rooms: refused, to the sender's connection, with its correlation id.
        err = await self.json_request(carol, "rtc.offer", {"to": "s-bob", "sdp": "x"},
                                      ("rtc.error", "rtc.offer"))
        self.assertEqual(err["type"], "rtc.error", err)
        self.assertEqual(err["payload"]["code"], "not_in_room", err)
        self.assertEqual(err["payload"]["request"], "rtc.offer", err)
        await self.nothing_else(bob, {"rtc.offer"})
        await self.refused(alice, "rtc.offer", {"to": "s-carol", "sdp": "x"}, "not_in_room")
        await self.refused(alice, "rtc.ice", {"to": "nobody", "candidate": "c"}, "not_in_room")
        await self.nothing_else(alice2, {"rtc.error"})  # the error went to one connection

        for payload in ({"to": "s-bob"}, {"to": "s-bob", "sdp": 7}, {"to": "s-alice", "sdp": "x"},
                        {"sdp": "x"}, {"to": "s-bob", "sdp": "x" * (svc.MAX_SDP_CHARS + 1)}):
            with self.subTest(payload=str(payload)[:60]):
                await self.refused(alice, "rtc.offer", payload, "invalid_payload")
        for candidate in (b"\x00bin", 5, {"candidate": "y" * svc.MAX_CANDIDATE_CHARS}):
            with self.subTest(candidate=str(candidate)[:40]):
                await self.refused(alice, "rtc.ice", {"to": "s-bob", "candidate": candidate},
                                   "invalid_payload")
        await self.nothing_else(bob, {"rtc.offer", "rtc.ice"})
        self.assert_nothing_pending()

    # -- files ---------------------------------------------------------------------------------
    async def test_file_in_shuffled_repeated_chunks_arrives_byte_exact(self):
        room = unique("f")
        alice, bob = await self.room_of(room, "f-alice", "f-bob")
        data = os.urandom(300 * 1024 + 123)  # 19 chunks, the last one short
        total = len(rc.chunks_of(data))
        self.assertEqual(total, 19)
        order = list(range(total))
        random.shuffle(order)
        order[3:3] = [order[7], order[0]]  # two chunks sent twice
        receiving = asyncio.create_task(rc.receive_file(bob, "f-alice", TIMEOUT_S))
        ack = await rc.send_file(alice, "f-bob", data, "blob.bin", order=order, timeout=TIMEOUT_S)
        offer, got = await asyncio.wait_for(receiving, TIMEOUT_S)
        self.assert_same_bytes(got, data)
        self.assertEqual(ack["ok"], True, ack)
        self.assertEqual(ack["sha256"], hashlib.sha256(data).hexdigest(), ack)
        self.assertEqual((offer["name"], offer["size"], offer["total"], offer["room"]),
                         ("blob.bin", len(data), total, room))
        # The offer is closed once acknowledged: later chunks for it are refused.
        await self.refused(alice, "file.chunk", {"to": "f-bob", "file_id": offer["file_id"],
                                                 "seq": 0, "total": total, "data": b"x"},
                           "unknown_file")

        # What the gateway put on the stream for a chunk: the client's MessagePack payload,
        # unchanged (codec msgpack), its data a bin holding the raw bytes.
        sent = {}
        for _, f in self.redis.client().xrevrange(STREAM, count=500):
            if f[b"type"] == b"file.chunk" and f[b"player_id"] == b"f-alice":
                self.assertEqual(f[b"codec"], b"msgpack")
                payload = msgpack.unpackb(f[b"payload"], raw=False)
                if payload["file_id"] == offer["file_id"] and payload["data"] != b"x":
                    self.assertIsInstance(payload["data"], bytes)
                    sent[payload["seq"]] = payload["data"]
        self.assertTrue(sent == dict(enumerate(rc.chunks_of(data))),
                        f"the stream holds chunks {sorted(sent)} of {total}, or other bytes")
        self.assert_nothing_pending()

    async def test_corrupted_file_is_detected_and_reported(self):
        room = unique("fc")
        alice, bob = await self.room_of(room, "fc-alice", "fc-bob")
        data = os.urandom(40 * 1024)
        parts = rc.chunks_of(data)
        receiving = asyncio.create_task(rc.receive_file(bob, "fc-alice", TIMEOUT_S))
        await alice.command("file.offer", {
            "to": "fc-bob", "file_id": "bad1", "name": "x.bin", "size": len(data),
            "sha256": hashlib.sha256(b"something else").hexdigest(), "total": len(parts)})
        await alice.expect(alice.from_("file.accept", "fc-bob", file_id="bad1"))
        for seq, part in enumerate(parts):
            await alice.command("file.chunk", {"to": "fc-bob", "file_id": "bad1", "seq": seq,
                                               "total": len(parts), "data": part})
        ack = await alice.expect(alice.from_("file.ack", "fc-bob", file_id="bad1"))
        self.assertEqual((ack["payload"]["ok"], ack["payload"]["reason"]),
                         (False, "sha256 mismatch"), ack)
        with self.assertRaisesRegex(ValueError, "sha256 mismatch"):
            await asyncio.wait_for(receiving, TIMEOUT_S)

    async def test_file_from_a_json_client_uses_base64(self):
        room = unique("fj")
        bob, = await self.room_of(room, "fj-bob")
        carol = await self.json_client("fj-carol")
        got = await self.json_request(carol, "rtc.join", {"room": room}, ("rtc.joined",))
        self.assertEqual(got["payload"]["peers"], ["fj-bob"])
        data = os.urandom(20000)  # two chunks
        parts = rc.chunks_of(data)
        receiving = asyncio.create_task(rc.receive_file(bob, "fj-carol", TIMEOUT_S))
        await carol.send("file.offer", {"to": "fj-bob", "file_id": "j1", "name": "j.bin",
                                        "size": len(data), "total": len(parts),
                                        "sha256": hashlib.sha256(data).hexdigest()}, "fo")
        await carol.recv_until(lambda e: e["type"] == "file.accept", TIMEOUT_S)
        for seq in (1, 0):
            await carol.send("file.chunk", {"to": "fj-bob", "file_id": "j1", "seq": seq,
                                            "total": 2,
                                            "data": base64.b64encode(parts[seq]).decode()},
                             f"fc-{seq}")
        acks = await carol.recv_until(lambda e: e["type"] == "file.ack", TIMEOUT_S)
        self.assertEqual(acks[-1]["payload"]["ok"], True, acks[-1])
        _, got = await asyncio.wait_for(receiving, TIMEOUT_S)
        self.assert_same_bytes(got, data)
        await self.refused(bob, "file.chunk", {"to": "fj-carol", "file_id": "j1", "seq": 0,
                                               "total": 1, "data": "not base64!"},
                           "invalid_payload")

    async def test_file_bounds_and_refusals(self):
        room = unique("fb")
        alice, bob = await self.room_of(room, "fb-alice", "fb-bob")
        await self.peer("fb-dave")  # connected, sharing no room
        sha = hashlib.sha256(b"x").hexdigest()
        offer = {"to": "fb-bob", "file_id": "b1", "name": "n", "size": 100, "sha256": sha,
                 "total": 2}
        await self.refused(alice, "file.chunk", {"to": "fb-bob", "file_id": "b1", "seq": 0,
                                                 "total": 2, "data": b"x"}, "unknown_file")
        await self.refused(bob, "file.accept", {"to": "fb-alice", "file_id": "b1"},
                           "unknown_file")
        bad_offers = [
            dict(offer, total=svc.MAX_CHUNKS + 1, size=svc.MAX_CHUNKS + 1),
            dict(offer, size=2 * svc.MAX_CHUNK_BYTES + 1),
            dict(offer, size=svc.MAX_FILE_BYTES + 1, total=svc.MAX_CHUNKS),
            dict(offer, size=1),  # 2 chunks cannot hold 1 byte
            dict(offer, sha256="ABC"),
            dict(offer, file_id="../x"),
            dict(offer, total=True),
        ]
        for bad in bad_offers:
            with self.subTest(offer=bad):
                await self.refused(alice, "file.offer", bad, "invalid_payload")
        await self.refused(alice, "file.offer", dict(offer, to="fb-dave"), "not_in_room")

        await alice.command("file.offer", offer)
        await bob.expect(bob.from_("file.offer", "fb-alice", file_id="b1"))
        chunk = {"to": "fb-bob", "file_id": "b1", "seq": 0, "total": 2, "data": b"x"}
        bad_chunks = [
            dict(chunk, data=b"x" * (svc.MAX_CHUNK_BYTES + 1)),
            dict(chunk, data=b""),
            dict(chunk, data=17),
            dict(chunk, seq=2),
            dict(chunk, seq=-1),
            dict(chunk, total=3, seq=2),  # not what the offer announced
        ]
        for bad in bad_chunks:
            with self.subTest(chunk={k: v for k, v in bad.items() if k != "data"}):
                await self.refused(alice, "file.chunk", bad, "invalid_payload")
        await self.refused(alice, "file.chunk", dict(chunk, to="fb-dave"), "unknown_file")
        # A chunk of exactly the largest size passes.
        await alice.command("file.chunk", dict(chunk, data=b"y" * svc.MAX_CHUNK_BYTES))
        got = await bob.expect(bob.from_("file.chunk", "fb-alice", file_id="b1"))
        self.assertEqual(base64.b64decode(got["payload"]["data"]), b"y" * svc.MAX_CHUNK_BYTES)
        await self.nothing_else(bob, {"file.chunk"})

        # Leaving the room ends the relay of an open transfer too.
        await bob.leave(room)
        await self.refused(alice, "file.chunk", dict(chunk, seq=1), "not_in_room")
        self.assert_nothing_pending()

    # -- restart -------------------------------------------------------------------------------
    async def test_service_restart_mid_transfer_keeps_rooms_and_the_transfer(self):
        room = unique("x")
        alice, bob = await self.room_of(room, "x-alice", "x-bob")
        data = os.urandom(200 * 1024)
        parts = rc.chunks_of(data)
        order = list(range(len(parts)))
        random.shuffle(order)
        receiving = asyncio.create_task(rc.receive_file(bob, "x-alice", 20.0))
        await alice.command("file.offer", {
            "to": "x-bob", "file_id": "r1", "name": "r.bin", "size": len(data),
            "sha256": hashlib.sha256(data).hexdigest(), "total": len(parts)})
        await alice.expect(alice.from_("file.accept", "x-bob", file_id="r1"))
        half = len(order) // 2
        for seq in order[:half]:
            await alice.command("file.chunk", {"to": "x-bob", "file_id": "r1", "seq": seq,
                                               "total": len(parts), "data": parts[seq]})

        old = type(self).service
        self.assertEqual(await asyncio.to_thread(old.stop), 0, old.stderr_text()[-1000:])
        # While it is down the gateway still acks: the commands wait in the stream.
        for seq in order[half:]:
            await alice.command("file.chunk", {"to": "x-bob", "file_id": "r1", "seq": seq,
                                               "total": len(parts), "data": parts[seq]})
        await alice.command("rtc.offer", {"to": "x-bob", "sdp": "after-restart"})
        carol = await self.peer("x-carol")
        cid = await carol.command("rtc.join", {"room": room})

        # Another consumer name: nothing is carried over in the process, only in Redis.
        type(self).service = await asyncio.to_thread(
            Service(self.redis.url, "relay-2").start)
        offer, got = await asyncio.wait_for(receiving, 20.0)
        self.assert_same_bytes(got, data)
        ack = await alice.expect(alice.from_("file.ack", "x-bob", file_id="r1"))
        self.assertTrue(ack["payload"]["ok"], ack)
        offer = await bob.expect(bob.from_("rtc.offer", "x-alice"))
        self.assertEqual(offer["payload"]["sdp"], "after-restart")
        joined = await carol.expect(lambda e: e.get("correlation_id") == cid)
        self.assertEqual(joined["payload"], {"room": room, "peers": ["x-alice", "x-bob"]})
        for p in (alice, bob):
            await p.expect(lambda e: e["type"] == "rtc.peer_joined" and
                           e["payload"]["player_id"] == "x-carol")
        self.assertEqual(self.members(room), {"x-alice", "x-bob", "x-carol"})
        self.assert_nothing_pending()

    # -- the program ---------------------------------------------------------------------------
    def test_rtc_client_program_as_both_peers(self):
        room = unique("cli")
        with tempfile.TemporaryDirectory() as tmp:
            src = os.path.join(tmp, "payload.bin")
            data = os.urandom(250 * 1024 + 7)
            with open(src, "wb") as f:
                f.write(data)
            out = os.path.join(tmp, "out")
            os.mkdir(out)
            env = dict(os.environ, GATEHOUSE_JWT_SECRET=self.server.jwt_secret,
                       PYTHONUNBUFFERED="1")
            common = [PYTHON, CLIENT, "--server", self.server.ws_base, "--room", room,
                      "--timeout", "20"]
            rlog, slog = tempfile.TemporaryFile(), tempfile.TemporaryFile()
            self.addCleanup(rlog.close)
            self.addCleanup(slog.close)
            receiver = subprocess.Popen(common + ["--player", "cli-bob", "receive", "--out", out],
                                        stdout=rlog, stderr=subprocess.STDOUT, env=env)
            try:
                wait_until(lambda: "joined" in Service.text(rlog) or receiver.poll() is not None,
                           TIMEOUT_S, "the receiving peer joining")
                sender = subprocess.run(common + ["--player", "cli-alice", "send", "--to",
                                                  "cli-bob", "--shuffle", src],
                                        stdout=slog, stderr=subprocess.STDOUT, env=env,
                                        timeout=60)
                self.assertEqual(receiver.wait(timeout=30), 0, Service.text(rlog))
            finally:
                if receiver.poll() is None:
                    receiver.kill()
                    receiver.wait(timeout=5)
            self.assertEqual(sender.returncode, 0, Service.text(slog))
            self.assertIn('"ok": true', Service.text(slog))
            self.assertIn("signalling with cli-alice done", Service.text(rlog))
            with open(os.path.join(out, "payload.bin"), "rb") as f:
                self.assert_same_bytes(f.read(), data)


class Doc(unittest.TestCase):
    def test_doc_names_every_message(self):
        with open(DOC, encoding="utf-8") as f:
            doc = f.read()
        relay = svc.Relay.__new__(svc.Relay)
        kinds = set(relay.handlers()) | {"rtc.joined", "rtc.left", "rtc.peer_joined",
                                         "rtc.peer_left", "rtc.error"}
        for kind in sorted(kinds):
            self.assertIn(f"`{kind}`", doc)
        for code in ("invalid_payload", "not_in_room", "room_full", "too_many_rooms",
                     "unknown_file", "unknown_command", "internal_error"):
            self.assertIn(f"`{code}`", doc)
        for name in ("MAX_CHUNK_BYTES", "MAX_CHUNKS", "MAX_ROOM_MEMBERS",
                     "MAX_ROOMS_PER_PLAYER"):
            self.assertIn(f"{getattr(svc, name)}", doc, name)


if __name__ == "__main__":
    h.run_main()
