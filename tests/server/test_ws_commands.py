#!/usr/bin/env python3
"""gatehouse-server client commands: acks, errors, limits (docs/protocol.md s. 3).

Usage: test_ws_commands.py PATH/TO/gatehouse-server [unittest args]
"""

import asyncio
import json
import time

import gatehouse_harness as h
from gatehouse_harness import Client, RawWs

CODECS = ("json", "msgpack", "protobuf")


class CommandCase(h.ServerTestCase):
    def assert_ack(self, env, correlation_id=None):
        self.assertEqual(env["type"], "ack", env)
        if correlation_id is not None:
            self.assertEqual(env.get("correlation_id"), correlation_id, env)
        else:
            cid = env.get("correlation_id")
            self.assertIsInstance(cid, str, env)
            self.assertTrue(1 <= len(cid) <= 128, env)
        self.assertIsInstance(env["payload"], dict, env)
        h.stream_id_key(env["payload"].get("stream_id"))
        return env

    def assert_error(self, env, code, correlation_id=None):
        self.assertEqual(env["type"], "error", env)
        self.assertEqual(env["payload"].get("code"), code, env)
        self.assertIsInstance(env["payload"].get("message"), str, env)
        if correlation_id is None:
            # Unknown id: absent (or null), never a made-up or empty one.
            self.assertIsNone(env.get("correlation_id"), env)
        else:
            self.assertEqual(env.get("correlation_id"), correlation_id, env)
        return env

    async def assert_still_usable(self, client, tag):
        ack = await client.command("still_open", {"after": tag}, "ok-after-" + tag)
        self.assert_ack(ack, "ok-after-" + tag)


class Acks(CommandCase):
    async def test_ack_in_each_codec(self):
        for codec in CODECS:
            for how in ("query", "subprotocol"):
                with self.subTest(codec=codec, how=how):
                    c = await Client.player(self.server, "ack-" + codec, codec, how=how)
                    try:
                        cid = f"c-{codec}-{how}"
                        ack = await c.command("player_action", {"move": [1, 2]}, cid)
                        self.assert_ack(ack, cid)
                        self.assertEqual(set(ack["payload"]), {"stream_id"}, ack)
                        if codec == "protobuf":
                            self.assertEqual(ack["_payload_codec"], "json")
                    finally:
                        await c.close()

    async def test_bot_acks(self):
        c = await Client.bot(self.server, "rover")
        try:
            self.assert_ack(await c.command("bot_move", {"to": [3, 4]}, "bot-1"), "bot-1")
        finally:
            await c.close()

    async def test_stream_ids_increase_in_send_order(self):
        c = await Client.player(self.server, "ordered", "json")
        try:
            cids = [f"o-{i}" for i in range(40)]
            for cid in cids:
                await c.send("t", {"i": cid}, cid)
            got = {}
            for _ in cids:
                env = await c.recv()
                self.assert_ack(env)
                self.assertNotIn(env["correlation_id"], got, "acked twice")
                got[env["correlation_id"]] = h.stream_id_key(env["payload"]["stream_id"])
            self.assertEqual(set(got), set(cids))
            keys = [got[cid] for cid in cids]
            self.assertEqual(keys, sorted(keys), "commands of one connection are appended "
                             "to the stream in the order they were read")
            self.assertEqual(len(set(keys)), len(keys), "stream ids are unique")
        finally:
            await c.close()

    async def test_missing_or_null_correlation_id_is_assigned(self):
        for codec in CODECS:
            with self.subTest(codec=codec):
                c = await Client.player(self.server, "assign-" + codec, codec)
                try:
                    a = self.assert_ack(await c.command("t", {"n": 1}))  # missing
                    b = self.assert_ack(await c.command("t", {"n": 2}, None))  # null
                    self.assertNotEqual(a["correlation_id"], b["correlation_id"])
                finally:
                    await c.close()

    async def test_payload_optional_and_any_value(self):
        c = await Client.player(self.server, "payloads", "json")
        try:
            self.assert_ack(await c.command("t", correlation_id="no-payload"), "no-payload")
            for i, p in enumerate([None, 0, -1.5, "s", True, [], {}, [1, {"a": [None]}],
                                   {"deep": {"er": {"still": [1, 2, 3]}}}]):
                self.assert_ack(await c.command("t", p, f"p-{i}"), f"p-{i}")
        finally:
            await c.close()

    async def test_type_and_correlation_id_boundaries_accepted(self):
        c = await Client.player(self.server, "bounds", "json")
        try:
            self.assert_ack(await c.command("a" * 64, None, "type-64"), "type-64")
            self.assert_ack(await c.command("Az09_.:-", None, "charset"), "charset")
            self.assert_ack(await c.command("x", None, "k" * 128), "k" * 128)
            # 128 characters, 256 bytes: the limit counts characters.
            self.assert_ack(await c.command("x", None, "\u00e9" * 128), "\u00e9" * 128)
            self.assert_ack(await c.command("x", None, "c"), "c")
        finally:
            await c.close()

    async def test_binary_frame_on_json_connection_is_msgpack(self):
        # "Binary frames are read with the connection's binary codec (msgpack unless protobuf
        # was chosen)": a JSON client may send msgpack, and is answered in JSON.
        c = await Client.player(self.server, "mixed", "json")
        try:
            await c.send_raw(h.mp_pack({"type": "t", "payload": [1], "correlation_id": "bin-1"}))
            self.assert_ack(await c.recv(), "bin-1")
        finally:
            await c.close()

    async def test_text_frame_on_msgpack_connection_is_json(self):
        c = await Client.player(self.server, "mixed", "msgpack")
        try:
            await c.send_raw(json.dumps({"type": "t", "payload": {}, "correlation_id": "txt-1"}))
            self.assert_ack(await c.recv(), "txt-1")
        finally:
            await c.close()

    async def test_protobuf_payload_codecs(self):
        c = await Client.player(self.server, "pb", "protobuf")
        try:
            self.assert_ack(await c.command("t", {"a": 1}, "pb-json", payload_codec="json"),
                            "pb-json")
            self.assert_ack(await c.command("t", {"a": 1}, "pb-mp", payload_codec="msgpack"),
                            "pb-mp")
            self.assert_ack(await c.command("t", b"\x08\x96\x01", "pb-named",
                                            payload_codec="game.v1.Move"), "pb-named")
            self.assert_ack(await c.command("t", b"\xff\x00opaque", "pb-empty-codec",
                                            payload_codec=""), "pb-empty-codec")
            await c.send_raw(h.pb_encode("t", None, "pb-no-payload", None))
            self.assert_ack(await c.recv(), "pb-no-payload")
            # Payload bytes that are not what payload_codec names: not decodable.
            await c.send_raw(h.pb_encode("t", b"{not json", "pb-bad-json", "json"))
            self.assert_error(await c.recv(), "invalid_frame", "pb-bad-json")
            await c.send_raw(h.pb_encode("t", b"\xc1", "pb-bad-mp", "msgpack"))
            self.assert_error(await c.recv(), "invalid_frame", "pb-bad-mp")
            await self.assert_still_usable(c, "pb-payloads")
        finally:
            await c.close()

    async def test_commands_accepted_are_counted(self):
        before = self.server.metric("gatehouse_commands_accepted_total")
        c = await Client.player(self.server, "counted", "json")
        try:
            for i in range(5):
                self.assert_ack(await c.command("t", i, f"cnt-{i}"), f"cnt-{i}")
        finally:
            await c.close()
        after = self.server.wait_metric("gatehouse_commands_accepted_total",
                                        lambda v: v >= before + 5)
        self.assertEqual(after, before + 5)


class BadFrames(CommandCase):
    """Each bad frame kind: the right error, the correlation id when known, and the
    connection stays open (a good command afterwards is acked)."""

    JSON_CASES = [
        # (name, text frame, code, correlation_id known)
        ("not decodable JSON", "not json{", "invalid_frame", None),
        ("empty text frame", "", "invalid_frame", None),
        ("trailing bytes", '{"type":"t","correlation_id":"tr-1"} x', "invalid_frame", None),
        ("nested too deep", '{"type":"t","payload":' + "[" * 80 + "]" * 80 + "}",
         "invalid_frame", None),
        ("JSON array", '[{"type":"t"}]', "invalid_envelope", None),
        ("JSON string", '"player_action"', "invalid_envelope", None),
        ("JSON null", "null", "invalid_envelope", None),
        ("missing type", '{"payload":1,"correlation_id":"c-missing-type"}', "invalid_envelope",
         "c-missing-type"),
        ("empty type", '{"type":"","correlation_id":"c-empty-type"}', "invalid_envelope",
         "c-empty-type"),
        ("bad type chars", '{"type":"bad type!","correlation_id":"c-bad-chars"}',
         "invalid_envelope", "c-bad-chars"),
        ("type with slash", '{"type":"a/b","correlation_id":"c-slash"}', "invalid_envelope",
         "c-slash"),
        ("type 65 chars", json.dumps({"type": "a" * 65, "correlation_id": "c-65"}),
         "invalid_envelope", "c-65"),
        ("type not a string", '{"type":5,"correlation_id":"c-type-num"}', "invalid_envelope",
         "c-type-num"),
        ("correlation_id empty", '{"type":"t","correlation_id":""}', "invalid_envelope", None),
        ("correlation_id 129 chars", json.dumps({"type": "t", "correlation_id": "k" * 129}),
         "invalid_envelope", None),
        ("correlation_id 129 non-ASCII chars",
         json.dumps({"type": "t", "correlation_id": "\u00e9" * 129}), "invalid_envelope", None),
        ("correlation_id a number", '{"type":"t","correlation_id":5}', "invalid_envelope",
         None),
        ("correlation_id an array", '{"type":"t","correlation_id":["a"]}', "invalid_envelope",
         None),
    ]

    async def test_json_connection_bad_frames(self):
        c = await Client.player(self.server, "bad-json", "json")
        try:
            for i, (name, frame, code, cid) in enumerate(self.JSON_CASES):
                with self.subTest(name):
                    await c.send_raw(frame)
                    self.assert_error(await c.recv(), code, cid)
                    await self.assert_still_usable(c, f"json-{i}")
        finally:
            await c.close()

    async def test_msgpack_connection_bad_frames(self):
        cases = [
            ("binary garbage", b"\xc1\xc1\xc1", "invalid_frame", None),
            ("empty binary frame", b"", "invalid_frame", None),
            ("truncated map", h.mp_pack({"type": "t", "payload": "abc"})[:-2], "invalid_frame",
             None),
            ("msgpack array", h.mp_pack(["t", 1]), "invalid_envelope", None),
            ("missing type", h.mp_pack({"payload": 1, "correlation_id": "m-missing"}),
             "invalid_envelope", "m-missing"),
            ("bad type", h.mp_pack({"type": "no spaces", "correlation_id": "m-bad"}),
             "invalid_envelope", "m-bad"),
            ("type 65", h.mp_pack({"type": "a" * 65, "correlation_id": "m-65"}),
             "invalid_envelope", "m-65"),
            ("correlation_id empty", h.mp_pack({"type": "t", "correlation_id": ""}),
             "invalid_envelope", None),
            ("correlation_id int", h.mp_pack({"type": "t", "correlation_id": 7}),
             "invalid_envelope", None),
            ("text frame, truncated JSON", '{"type":"t","correlation_id":"m-txt"',
             "invalid_frame", None),
        ]
        c = await Client.player(self.server, "bad-mp", "msgpack")
        try:
            for i, (name, frame, code, cid) in enumerate(cases):
                with self.subTest(name):
                    await c.send_raw(frame)
                    self.assert_error(await c.recv(), code, cid)
                    await self.assert_still_usable(c, f"mp-{i}")
        finally:
            await c.close()

    async def test_protobuf_connection_bad_frames(self):
        cases = [
            ("binary garbage", b"\xff\xff\xff\xff", "invalid_frame", None),
            ("truncated field", h.pb_encode("player_action", b"{}", "p-trunc", "json")[:-3],
             "invalid_frame", None),
            ("missing type", h.pb_encode(None, b"1", "p-missing", "json"), "invalid_envelope",
             "p-missing"),
            ("bad type", h.pb_encode("bad type", b"1", "p-bad", "json"), "invalid_envelope",
             "p-bad"),
            ("correlation_id present but empty", h.pb_encode("t", b"1", "", "json"),
             "invalid_envelope", None),
            # Text frames are always JSON, whatever the connection's codec.
            ("text frame, not JSON", "hello", "invalid_frame", None),
            ("text frame, JSON array", "[1]", "invalid_envelope", None),
        ]
        c = await Client.player(self.server, "bad-pb", "protobuf")
        try:
            for i, (name, frame, code, cid) in enumerate(cases):
                with self.subTest(name):
                    await c.send_raw(frame)
                    self.assert_error(await c.recv(), code, cid)
                    await self.assert_still_usable(c, f"pb-{i}")
            # A valid JSON text frame on a protobuf connection is a command like any other,
            # answered in protobuf.
            await c.send_raw(json.dumps({"type": "t", "payload": {"k": 1},
                                         "correlation_id": "pb-text-ok"}))
            self.assert_ack(await c.recv(), "pb-text-ok")
        finally:
            await c.close()

    async def test_refusals_are_counted(self):
        b_frame = self.server.metric("gatehouse_commands_refused_total", reason="invalid_frame")
        b_env = self.server.metric("gatehouse_commands_refused_total", reason="invalid_envelope")
        c = await Client.player(self.server, "bad-count", "json")
        try:
            await c.send_raw("{{{")
            self.assert_error(await c.recv(), "invalid_frame")
            await c.send_raw("[]")
            self.assert_error(await c.recv(), "invalid_envelope")
            await c.send_raw('{"type":"bad type"}')
            self.assert_error(await c.recv(), "invalid_envelope")
        finally:
            await c.close()
        self.assertEqual(self.server.wait_metric(
            "gatehouse_commands_refused_total", lambda v: v >= b_frame + 1,
            reason="invalid_frame"), b_frame + 1)
        self.assertEqual(self.server.wait_metric(
            "gatehouse_commands_refused_total", lambda v: v >= b_env + 2,
            reason="invalid_envelope"), b_env + 2)


class MessageLimits(CommandCase):
    """--max-message-bytes 256: 256 accepted, 257 closes with 1009; bad UTF-8 closes 1007."""

    LIMIT = 256

    @classmethod
    def server_args(cls):
        return ["--max-message-bytes", str(cls.LIMIT)]

    def json_frame(self, size, cid):
        base = {"type": "t", "payload": "", "correlation_id": cid}
        pad = size - len(json.dumps(base, separators=(",", ":")))
        base["payload"] = "x" * pad
        frame = json.dumps(base, separators=(",", ":"))
        self.assertEqual(len(frame.encode()), size)
        return frame

    def msgpack_frame(self, size, cid):
        # A str8/str16 header changes size at 256 bytes; stay in str8 and pad exactly.
        for pad in range(0, size):
            frame = h.mp_pack({"type": "t", "payload": "y" * pad, "correlation_id": cid})
            if len(frame) == size:
                return frame
        self.fail(f"cannot build a {size}-byte msgpack frame")

    async def test_json_exactly_limit_accepted_then_one_more_closes_1009(self):
        c = await Client.player(self.server, "big", "json")
        try:
            await c.send_raw(self.json_frame(self.LIMIT, "at-limit"))
            self.assert_ack(await c.recv(), "at-limit")
            await c.send_raw(self.json_frame(self.LIMIT + 1, "over-limit"))
            code, got = await c.wait_closed()
            self.assertEqual(code, 1009, got)
            self.assertFalse([e for e in got if e.get("correlation_id") == "over-limit"
                              and e["type"] == "ack"], got)
        finally:
            await c.close()

    async def test_msgpack_exactly_limit_accepted_then_one_more_closes_1009(self):
        c = await Client.player(self.server, "big", "msgpack")
        try:
            await c.send_raw(self.msgpack_frame(self.LIMIT, "mp-at-limit"))
            self.assert_ack(await c.recv(), "mp-at-limit")
            await c.send_raw(self.msgpack_frame(self.LIMIT + 1, "mp-over"))
            code, got = await c.wait_closed()
            self.assertEqual(code, 1009, got)
        finally:
            await c.close()

    def test_fragmented_message_over_limit_closes_1009(self):
        # The limit is on the message, not the frame: three 100-byte fragments are 300 bytes.
        raw = RawWs(self.server.port, "/ws/player/" + self.server.token("frag"))
        try:
            self.assertEqual(raw.status, 101)
            self.assertEqual(json.loads(raw.recv_message()[1])["type"], "welcome")
            frame = self.json_frame(300, "frag").encode()
            raw.send_frame(0x1, frame[:100], fin=False)
            raw.send_frame(0x0, frame[100:200], fin=False)
            raw.send_frame(0x0, frame[200:], fin=True)
            self.assertIn(raw.wait_close(), (1009,))
        finally:
            raw.close()

    def test_fragmented_message_within_limit_accepted(self):
        raw = RawWs(self.server.port, "/ws/player/" + self.server.token("frag"))
        try:
            self.assertEqual(json.loads(raw.recv_message()[1])["type"], "welcome")
            frame = self.json_frame(self.LIMIT, "frag-ok").encode()
            raw.send_frame(0x1, frame[:100], fin=False)
            raw.send_frame(0x0, frame[100:], fin=True)
            op, data = raw.recv_message()
            self.assertEqual(op, 0x1)
            self.assert_ack(json.loads(data), "frag-ok")
        finally:
            raw.close()

    def test_invalid_utf8_text_closes_1007(self):
        for name, payload in [("lone 0xff", b'{"type":"t","payload":"\xff"}'),
                              ("truncated sequence", b'{"type":"t","payload":"\xe2\x82"}'),
                              ("surrogate", b'{"type":"t","payload":"\xed\xa0\x80"}')]:
            with self.subTest(name):
                raw = RawWs(self.server.port, "/ws/player/" + self.server.token("utf8"))
                try:
                    self.assertEqual(json.loads(raw.recv_message()[1])["type"], "welcome")
                    raw.send_frame(0x1, payload)
                    self.assertEqual(raw.wait_close(), 1007)
                finally:
                    raw.close()

    def test_http_body_over_limit_is_413(self):
        body = json.dumps({"player_id": "big", "type": "t", "payload": "z" * 400})
        status, data = self.server.publish(body)
        self.assertEqual(status, 413, data)
        self.assertTrue(data, "the 413 carries a problem+json body (docs/protocol.md s. 2)")
        self.assertEqual(json.loads(data).get("code"), "payload_too_large", data)


class RateLimit(CommandCase):
    """--ws-rate-limit 5: a token bucket of burst 10 per connection."""

    @classmethod
    def server_args(cls):
        return ["--ws-rate-limit", "5"]

    async def test_burst_then_rate_limited_every_command_answered_once(self):
        before = self.server.metric("gatehouse_commands_refused_total", reason="rate_limited")
        c = await Client.player(self.server, "spammer", "json")
        other = await Client.player(self.server, "spammer", "msgpack")
        try:
            cids = [f"r-{i}" for i in range(30)]
            t0 = time.monotonic()
            for cid in cids:
                await c.send("spam", {"id": cid}, cid)
            answers = {}
            for _ in cids:
                env = await c.recv()
                cid = env.get("correlation_id")
                self.assertIn(cid, cids, env)
                self.assertNotIn(cid, answers, f"{cid} answered twice")
                answers[cid] = env
            elapsed = time.monotonic() - t0  # bounds the time the server took to read them
            acked = [cid for cid in cids if answers[cid]["type"] == "ack"]
            limited = [cid for cid in cids if answers[cid]["type"] == "error"]
            for cid in limited:
                self.assert_error(answers[cid], "rate_limited", cid)
            self.assertEqual(len(acked) + len(limited), 30)
            h.note(f"{len(acked)} acked, {len(limited)} rate_limited in {elapsed:.3f} s")
            # 10 from the burst plus at most 5/s refilled while sending (+1 for rounding).
            self.assertGreaterEqual(len(acked), 10, answers)
            self.assertLessEqual(len(acked), 10 + int(5 * elapsed) + 1, answers)
            await c.expect_nothing(0.2)
            # The bucket is per connection: the same player's other connection is unaffected.
            self.assert_ack(await other.command("t", None, "other-conn"), "other-conn")
            # Tokens come back at 5/s.
            await asyncio.sleep(1.1)
            self.assert_ack(await c.command("t", None, "after-refill"), "after-refill")
        finally:
            await c.close()
            await other.close()
        after = self.server.wait_metric("gatehouse_commands_refused_total",
                                        lambda v: v >= before + len(limited),
                                        reason="rate_limited")
        self.assertEqual(after, before + len(limited))


if __name__ == "__main__":
    h.run_main()
