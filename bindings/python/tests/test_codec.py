"""bindings.python_codec: the gatehouse_codec module against frames built independently (by hand,
with json, python3-msgpack and the test harness's Protobuf encoder), every codec and error."""

import json
import os
import sys
import unittest

import msgpack

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "..", "..", "tests", "server"))
import gatehouse_codec as gcm  # noqa: E402
from gatehouse_harness import pb_decode, pb_encode  # noqa: E402

MOVE = {"move": [1, 2]}
MOVE_JSON = b'{"move":[1,2]}'

# type "player_action", payload {"move":[1,2]}, correlation_id "c-17", written out by hand.
KNOWN = {
    "json": b'{"type":"player_action","payload":{"move":[1,2]},"correlation_id":"c-17"}',
    "msgpack": (b"\x83\xa4type\xadplayer_action\xa7payload\x81\xa4move\x92\x01\x02"
                b"\xaecorrelation_id\xa4c-17"),
    "protobuf": (b"\x0a\x0dplayer_action\x12\x0e" + MOVE_JSON + b"\x1a\x04c-17\x22\x04json"),
}


def payload_for(codec):
    """(payload bytes, payload format) a command in `codec` carries MOVE as."""
    if codec == "msgpack":
        return msgpack.packb(MOVE), "msgpack"
    return MOVE_JSON, "json"


class EncodeTest(unittest.TestCase):
    def test_known_frames_byte_for_byte(self):
        for codec in gcm.CODECS:
            with self.subTest(codec=codec):
                payload, fmt = payload_for(codec)
                frame = gcm.encode(codec, "player_action", payload, payload_format=fmt,
                                   correlation_id="c-17")
                self.assertIsInstance(frame, bytes)
                self.assertEqual(frame, KNOWN[codec])
                env = gcm.Envelope("player_action", payload, fmt, "c-17")
                self.assertEqual(gcm.encode(codec, env), KNOWN[codec])

    def test_frames_decode_with_independent_decoders(self):
        frame = gcm.encode("json", "t.x", '{"a":"é"}', correlation_id="é" * 128)
        self.assertEqual(json.loads(frame), {"type": "t.x", "payload": {"a": "é"},
                                             "correlation_id": "é" * 128})
        frame = gcm.encode("msgpack", "t", msgpack.packb([1, None, b"\x00"], use_bin_type=True),
                           payload_format="msgpack")
        self.assertEqual(msgpack.unpackb(frame), {"type": "t", "payload": [1, None, b"\x00"]})
        frame = gcm.encode("protobuf", "t", b"\x08\x01", payload_format="bytes",
                           payload_codec="game.Move", correlation_id="k")
        self.assertEqual(pb_decode(frame), {"type": "t", "payload": b"\x08\x01",
                                            "correlation_id": "k", "payload_codec": "game.Move"})

    def test_payload_inputs(self):
        # str is UTF-8; bytearray and memoryview are read through the buffer protocol.
        for payload in ('{"a":1}', b'{"a":1}', bytearray(b'{"a":1}'), memoryview(b'{"a":1}')):
            with self.subTest(payload=type(payload).__name__):
                self.assertEqual(gcm.encode("json", "t", payload),
                                 b'{"type":"t","payload":{"a":1}}')
        with self.assertRaises(TypeError):
            gcm.encode("json", "t", 12)

    def test_none_is_null_in_the_payload_format(self):
        self.assertEqual(gcm.encode("json", "ping"), b'{"type":"ping","payload":null}')
        self.assertEqual(gcm.encode("msgpack", "ping", payload_format="msgpack"),
                         b"\x82\xa4type\xa4ping\xa7payload\xc0")
        self.assertEqual(gcm.encode("protobuf", "ping"), pb_encode("ping", b"null", None, "json"))
        self.assertEqual(gcm.encode("protobuf", "ping", payload_format="bytes"),
                         pb_encode("ping"))
        self.assertEqual(gcm.Envelope("t", None, "msgpack").payload, b"\xc0")

    def test_encode_errors(self):
        cases = [
            (("json", ""), {}, "missing_type"),
            (("json", "bad type"), {}, "invalid_type"),
            (("json", "t", b"{}"), {"correlation_id": ""}, "invalid_correlation_id"),
            (("json", "t", b"{}"), {"correlation_id": "x" * 129}, "invalid_correlation_id"),
            (("json", "t", b'{"a":'), {}, "invalid_payload"),
            (("msgpack", "t", b"\xc1"), {"payload_format": "msgpack"}, "invalid_payload"),
            (("protobuf", "t", b"[1,"), {}, "invalid_payload"),
            (("json", "t", b"\xc0"), {"payload_format": "msgpack"}, "payload_format_mismatch"),
            (("msgpack", "t", b"{}"), {}, "payload_format_mismatch"),
            (("json", "t", b"\x01"), {"payload_format": "bytes"}, "payload_format_mismatch"),
        ]
        for args, kwargs, status in cases:
            with self.subTest(args=args, kwargs=kwargs):
                with self.assertRaises(gcm.CodecError) as caught:
                    gcm.encode(*args, **kwargs)
                e = caught.exception
                self.assertEqual(e.status, status)
                self.assertIsInstance(e.code, int)
                self.assertIsNone(e.protocol_code)
                self.assertIsNone(e.correlation_id)
                self.assertIn(gcm.describe(status), str(e))
                self.assertIsInstance(e, ValueError)

    def test_unknown_names(self):
        with self.assertRaises(ValueError) as caught:
            gcm.encode("xml", "t")
        self.assertNotIsInstance(caught.exception, gcm.CodecError)
        with self.assertRaises(ValueError):
            gcm.encode("json", "t", payload_format="yaml")
        with self.assertRaises(ValueError):
            gcm.decode("JSON", b"{}")
        with self.assertRaises(ValueError):
            gcm.Envelope("t", b"1", "text")
        with self.assertRaises(ValueError):
            gcm.describe("nonsense")


class DecodeTest(unittest.TestCase):
    def test_known_frames(self):
        for codec in gcm.CODECS:
            with self.subTest(codec=codec):
                env = gcm.decode(codec, KNOWN[codec])
                payload, fmt = payload_for(codec)
                self.assertEqual(env.type, "player_action")
                self.assertEqual(env.payload, payload)
                self.assertEqual(env.payload_format, fmt)
                self.assertEqual(env.payload_codec, fmt)
                self.assertEqual(env.correlation_id, "c-17")
                self.assertEqual(env, gcm.Envelope("player_action", payload, fmt, "c-17"))
                self.assertIn("player_action", repr(env))

    def test_round_trips(self):
        values = [None, 0, -1, 2**40, 1.5, "é\u2603", [], {}, {"a": [1, {"b": None}]}, True]
        for codec in gcm.CODECS:
            for value in values:
                with self.subTest(codec=codec, value=value):
                    if codec == "msgpack":
                        payload, fmt = msgpack.packb(value), "msgpack"
                    else:
                        payload, fmt = json.dumps(value).encode(), "json"
                    frame = gcm.encode(codec, "round.trip", payload, payload_format=fmt,
                                       correlation_id="r-1")
                    env = gcm.decode(codec, frame)
                    self.assertEqual((env.type, env.payload, env.payload_format,
                                      env.correlation_id), ("round.trip", payload, fmt, "r-1"))
                    self.assertEqual(gcm.encode(codec, env), frame)
        # Opaque bytes only travel on protobuf, with their name.
        frame = gcm.encode("protobuf", "blob", b"\x00\xff", payload_format="bytes",
                           payload_codec="game.Blob")
        env = gcm.decode("protobuf", frame)
        self.assertEqual((env.payload, env.payload_format, env.payload_codec, env.correlation_id),
                         (b"\x00\xff", "bytes", "game.Blob", None))

    def test_text_frames_and_buffers(self):
        text = KNOWN["json"].decode()
        self.assertEqual(gcm.decode("json", text).correlation_id, "c-17")
        self.assertEqual(gcm.decode("msgpack", bytearray(KNOWN["msgpack"])).type, "player_action")
        self.assertEqual(gcm.decode("protobuf", memoryview(KNOWN["protobuf"])).payload, MOVE_JSON)

    def test_absent_payload_is_null(self):
        self.assertEqual(gcm.decode("json", b'{"type":"t"}').payload, b"null")
        self.assertEqual(gcm.decode("msgpack", b"\x81\xa4type\xa1t").payload, b"\xc0")
        self.assertEqual(gcm.decode("protobuf", pb_encode("t", None, None, "json")).payload,
                         b"null")

    def test_decode_errors(self):
        deep = b'{"type":"t","payload":' + b"[" * 70 + b"]" * 70 + b"}"
        cases = [
            ("json", b"", "truncated", None),
            ("json", b'{"type":"t"', "truncated", None),
            ("json", b'{"type":]', "syntax_error", None),
            ("json", b'{"type":"t","payload":"\xff"}', "invalid_utf8", None),
            ("json", deep, "too_deep", None),
            ("json", b'{"type":"t"} {}', "trailing_bytes", None),
            ("json", b"[]", "not_a_map", None),
            ("json", b'{"correlation_id":"c-1"}', "missing_type", "c-1"),
            ("json", b'{"type":"a b","correlation_id":"c-2"}', "invalid_type", "c-2"),
            ("json", b'{"type":"t","correlation_id":""}', "invalid_correlation_id", None),
            ("json", b'{"type":"t","type":"u"}', "duplicate_field", None),
            ("msgpack", b"\xc1", "syntax_error", None),
            ("msgpack", b"\x81\xa4type", "truncated", None),
            ("msgpack", msgpack.packb({"type": 5, "correlation_id": "m-1"}), "invalid_type",
             "m-1"),
            ("protobuf", b"\x0a\x05ab", "truncated", None),
            ("protobuf", pb_encode("t", b"{", "p-1", "json"), "invalid_payload", "p-1"),
            ("protobuf", pb_encode("t", b"\xc1", None, "msgpack"), "invalid_payload", None),
        ]
        for codec, frame, status, correlation_id in cases:
            with self.subTest(codec=codec, frame=frame[:40]):
                with self.assertRaises(gcm.CodecError) as caught:
                    gcm.decode(codec, frame)
                e = caught.exception
                self.assertEqual(e.status, status)
                self.assertEqual(e.correlation_id, correlation_id)
                want = "invalid_frame" if e.code < 20 else "invalid_envelope"
                self.assertEqual(e.protocol_code, want)
                self.assertEqual(e.args[0], f"{status}: {gcm.describe(status)}")


TRACE = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


class TraceFieldsTest(unittest.TestCase):
    """update_id and traceparent (docs/protocol.md section 6; protobuf fields 5 and 6)."""

    def test_known_frames_byte_for_byte(self):
        want = {
            "json": (b'{"type":"t","payload":null,"update_id":"17-3","traceparent":"'
                     + TRACE.encode() + b'"}'),
            "msgpack": msgpack.packb({"type": "t", "payload": None, "update_id": "17-3",
                                      "traceparent": TRACE}),
            "protobuf": pb_encode("t", b"null", None, "json", "17-3", TRACE),
        }
        for codec in gcm.CODECS:
            with self.subTest(codec=codec):
                fmt = "msgpack" if codec == "msgpack" else "json"
                frame = gcm.encode(codec, "t", payload_format=fmt, update_id="17-3",
                                   traceparent=TRACE)
                self.assertEqual(frame, want[codec])
                env = gcm.decode(codec, frame)
                self.assertEqual((env.update_id, env.traceparent), ("17-3", TRACE))
                self.assertIn("update_id='17-3'", repr(env))
                self.assertEqual(gcm.encode(codec, env), frame)
                self.assertEqual(env, gcm.Envelope("t", None, fmt, update_id="17-3",
                                                   traceparent=TRACE))
                self.assertNotEqual(env, gcm.Envelope("t", None, fmt, update_id="17-3"))

    def test_absent_and_longest(self):
        longest = '"\\' + "7" * (gcm.MAX_UPDATE_ID_LENGTH - 2)
        for codec in gcm.CODECS:
            with self.subTest(codec=codec):
                fmt = "msgpack" if codec == "msgpack" else "json"
                env = gcm.decode(codec, gcm.encode(codec, "t", payload_format=fmt))
                self.assertIsNone(env.update_id)
                self.assertIsNone(env.traceparent)
                env = gcm.decode(codec, gcm.encode(codec, "t", payload_format=fmt,
                                                   update_id=longest))
                self.assertEqual(env.update_id, longest)
        self.assertEqual(json.loads(gcm.encode("json", "t", update_id=longest))["update_id"],
                         longest)

    def test_encode_refuses_malformed(self):
        cases = [({"update_id": ""}, "invalid_update_id"),
                 ({"update_id": "x" * 65}, "invalid_update_id"),
                 ({"update_id": "a b"}, "invalid_update_id"),
                 ({"traceparent": TRACE.upper()}, "invalid_traceparent"),
                 ({"traceparent": TRACE[:-1]}, "invalid_traceparent")]
        for kwargs, status in cases:
            with self.subTest(kwargs=kwargs):
                with self.assertRaises(gcm.CodecError) as caught:
                    gcm.encode("json", "t", **kwargs)
                self.assertEqual(caught.exception.status, status)
                self.assertIn(gcm.describe(status), str(caught.exception))

    def test_decode_drops_malformed(self):
        frames = [
            ("json", b'{"type":"t","update_id":7,"traceparent":"00-x"}'),
            ("json", b'{"type":"t","update_id":"1","update_id":"2","traceparent":null}'),
            ("msgpack", msgpack.packb({"type": "t", "update_id": "a b", "traceparent": 1})),
            ("protobuf", pb_encode("t", None, None, None, "", TRACE[1:])),
        ]
        for codec, frame in frames:
            with self.subTest(codec=codec, frame=frame):
                env = gcm.decode(codec, frame)
                self.assertEqual(env.type, "t")
                self.assertIsNone(env.update_id)
                self.assertIsNone(env.traceparent)
        with self.assertRaises(gcm.CodecError) as caught:  # proto3 strings must be UTF-8
            gcm.decode("protobuf", pb_encode("t", None, None, None, b"\xff"))
        self.assertEqual(caught.exception.status, "invalid_utf8")

    def test_validators(self):
        self.assertTrue(gcm.is_valid_update_id("1733529600000-0"))
        self.assertFalse(gcm.is_valid_update_id(""))
        self.assertFalse(gcm.is_valid_update_id("é"))
        self.assertTrue(gcm.is_valid_traceparent(TRACE))
        self.assertFalse(gcm.is_valid_traceparent("ff" + TRACE[2:]))
        self.assertEqual(gcm.MAX_UPDATE_ID_LENGTH, 64)
        self.assertEqual(gcm.TRACEPARENT_LENGTH, 55)


class HelpersTest(unittest.TestCase):
    def test_codec_properties(self):
        self.assertEqual(gcm.CODECS, ("json", "msgpack", "protobuf"))
        self.assertEqual([gcm.is_text(c) for c in gcm.CODECS], [True, False, False])
        self.assertEqual([gcm.subprotocol(c) for c in gcm.CODECS],
                         ["gatehouse.json", "gatehouse.msgpack", "gatehouse.protobuf"])
        with self.assertRaises(ValueError):
            gcm.is_text("xml")

    def test_validation(self):
        gcm.validate_payload("json", b'{"a":[1,2.5e3,null,"\\u00e9"]}')
        gcm.validate_payload("msgpack", msgpack.packb({"a": [1, 2]}))
        gcm.validate_payload("bytes", b"\xff\x00")
        for fmt, payload, status in [("json", b"{", "truncated"), ("json", b"1 2", "trailing_bytes"),
                                     ("msgpack", b"\x92\x01", "truncated")]:
            with self.subTest(fmt=fmt, payload=payload):
                with self.assertRaises(gcm.CodecError) as caught:
                    gcm.validate_payload(fmt, payload)
                self.assertEqual(caught.exception.status, status)
        self.assertTrue(gcm.is_valid_type("game.state"))
        self.assertFalse(gcm.is_valid_type("x" * 65))
        self.assertTrue(gcm.is_valid_correlation_id("é" * 128))
        self.assertFalse(gcm.is_valid_correlation_id("é" * 129))
        self.assertFalse(gcm.is_valid_correlation_id(""))
        self.assertEqual(gcm.MAX_TYPE_LENGTH, 64)
        self.assertEqual(gcm.MAX_CORRELATION_ID_CHARS, 128)

    def test_envelope_is_mutable_and_reencodable(self):
        env = gcm.decode("json", KNOWN["json"])
        env.correlation_id = None
        env.payload = b"[1]"
        self.assertEqual(gcm.encode("json", env), b'{"type":"player_action","payload":[1]}')


if __name__ == "__main__":
    unittest.main(verbosity=2)
