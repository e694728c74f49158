#!/usr/bin/env python3
"""gatehouse-server WebSocket upgrade: authentication and codec negotiation (docs/protocol.md s. 3).

Usage: test_ws_handshake.py PATH/TO/gatehouse-server [unittest args]
"""

import asyncio
import json
import time

import websockets

import gatehouse_harness as h
from gatehouse_harness import Client, RawWs


class WelcomeAndCodecs(h.ServerTestCase):
    """Codec negotiation: Sec-WebSocket-Protocol first, then ?codec=, then the default."""

    def assert_welcome(self, client, codec, player_id):
        w = client.welcome
        self.assertEqual(w["type"], "welcome", w)
        self.assertEqual(w["payload"]["player_id"], player_id, w)
        self.assertEqual(w["payload"]["codec"], codec, w)
        cid = w["payload"]["connection_id"]
        self.assertIsInstance(cid, str, w)
        self.assertTrue(cid, w)
        return cid

    async def test_query_codec_each(self):
        for codec in ("json", "msgpack", "protobuf"):
            with self.subTest(codec=codec):
                c = await Client.player(self.server, "alice", codec, how="query")
                try:
                    self.assert_welcome(c, codec, "alice")
                    self.assertIsNone(c.ws.subprotocol)
                finally:
                    await c.close()

    async def test_subprotocol_each_is_echoed(self):
        for codec in ("json", "msgpack", "protobuf"):
            with self.subTest(codec=codec):
                c = await Client.player(self.server, "alice", codec, how="subprotocol")
                try:
                    self.assertEqual(c.ws.subprotocol, h.SUBPROTOCOL[codec])
                    self.assert_welcome(c, codec, "alice")
                finally:
                    await c.close()

    async def test_first_supported_of_several_subprotocols(self):
        offered = ["gatehouse.xml", "gatehouse.protobuf", "gatehouse.json", "gatehouse.msgpack"]
        c = await Client.open(self.server, "/ws/player/" + self.server.token("alice"),
                              codec="protobuf", subprotocols=offered)
        try:
            self.assertEqual(c.ws.subprotocol, "gatehouse.protobuf")
            self.assert_welcome(c, "protobuf", "alice")
        finally:
            await c.close()

    async def test_subprotocol_wins_over_query(self):
        c = await Client.open(self.server, "/ws/player/" + self.server.token("alice"),
                              codec="msgpack", subprotocols=["gatehouse.msgpack"],
                              query="codec=json")
        try:
            self.assertEqual(c.ws.subprotocol, "gatehouse.msgpack")
            self.assert_welcome(c, "msgpack", "alice")
        finally:
            await c.close()

    async def test_only_unsupported_subprotocols(self):
        # RFC 6455 s. 4.2.2: a server that supports none of the offered subprotocols completes
        # the handshake without a Sec-WebSocket-Protocol header (it must not echo one it does
        # not speak). The codec then falls back to ?codec= and else to the default, as when
        # nothing was offered.
        token = self.server.token("alice")
        c = await Client.open(self.server, "/ws/player/" + token, codec="json",
                              subprotocols=["gatehouse.xml", "chat"])
        try:
            self.assertIsNone(c.ws.subprotocol)
            self.assert_welcome(c, "json", "alice")
        finally:
            await c.close()
        c = await Client.open(self.server, "/ws/player/" + token, codec="msgpack",
                              subprotocols=["gatehouse.xml"], query="codec=msgpack")
        try:
            self.assertIsNone(c.ws.subprotocol)
            self.assert_welcome(c, "msgpack", "alice")
        finally:
            await c.close()
        raw = RawWs(self.server.port, "/ws/player/" + token, subprotocols=["gatehouse.xml"])
        try:
            self.assertEqual(raw.status, 101)
            self.assertNotIn("sec-websocket-protocol", raw.headers)
            self.assertEqual(raw.headers.get("sec-websocket-accept"), raw.expected_accept())
        finally:
            raw.close()

    async def test_player_default_is_json(self):
        c = await Client.open(self.server, "/ws/player/" + self.server.token("alice"),
                              codec="json")
        try:
            self.assert_welcome(c, "json", "alice")
        finally:
            await c.close()

    async def test_bot_default_is_msgpack(self):
        c = await Client.bot(self.server, "rover")
        try:
            self.assert_welcome(c, "msgpack", "bot:rover")
        finally:
            await c.close()

    async def test_bot_codec_by_query_and_subprotocol(self):
        c = await Client.bot(self.server, "rover", codec="json", query="codec=json")
        try:
            self.assert_welcome(c, "json", "bot:rover")
        finally:
            await c.close()
        c = await Client.bot(self.server, "rover", codec="protobuf",
                             subprotocols=["gatehouse.protobuf"])
        try:
            self.assertEqual(c.ws.subprotocol, "gatehouse.protobuf")
            self.assert_welcome(c, "protobuf", "bot:rover")
        finally:
            await c.close()

    async def test_unknown_query_codec_is_400_without_upgrade(self):
        before = self.server.metric("gatehouse_upgrades_refused_total", reason="bad_codec")
        refused = 0
        # An empty value names no codec either: it is refused, not taken as "no ?codec=".
        for query in ("codec=xml", "codec=JSONX", "codec="):
            with self.subTest(query=query):
                raw = RawWs(self.server.port,
                            "/ws/player/" + self.server.token("alice") + "?" + query)
                refused += raw.status == 400
                try:
                    self.assertEqual(raw.status, 400, (raw.headers, raw.body))
                    self.assertNotIn("sec-websocket-accept", raw.headers)
                finally:
                    raw.close()
        raw = RawWs(self.server.port, "/ws/bot/" + self.bot_keys["rover"] + "?codec=xml")
        refused += raw.status == 400
        try:
            self.assertEqual(raw.status, 400)
        finally:
            raw.close()
        # Every 400 above is counted (and only those).
        after = self.server.wait_metric("gatehouse_upgrades_refused_total",
                                        lambda v: v >= before + refused, reason="bad_codec")
        self.assertEqual(after, before + refused)

    async def test_welcome_is_first_and_connection_ids_differ(self):
        a = await Client.player(self.server, "alice", "json")
        b = await Client.player(self.server, "alice", "msgpack")
        try:
            ida = self.assert_welcome(a, "json", "alice")
            idb = self.assert_welcome(b, "msgpack", "alice")
            self.assertNotEqual(ida, idb)
            # The welcome carries no routing keys and nothing else comes unasked.
            self.assertEqual(set(a.welcome["_keys"]) - {"correlation_id"}, {"type", "payload"})
            await a.expect_nothing(0.2)
        finally:
            await a.close()
            await b.close()

    async def test_welcome_first_in_protobuf_is_json_bytes(self):
        c = await Client.player(self.server, "alice", "protobuf")
        try:
            self.assertEqual(c.welcome["_payload_codec"], "json")
            self.assert_welcome(c, "protobuf", "alice")
        finally:
            await c.close()

    async def test_bearer_header_variant(self):
        token = self.server.token("bearer-bob")
        c = await Client.open(self.server, "/ws/player", codec="json",
                              headers={"Authorization": "Bearer " + token})
        try:
            self.assert_welcome(c, "json", "bearer-bob")
            ack = await c.command("t", {"x": 1}, "bearer-1")
            self.assertEqual(ack["type"], "ack", ack)
        finally:
            await c.close()
        c = await Client.open(self.server, "/ws/player", codec="protobuf",
                              headers={"Authorization": "Bearer " + token},
                              subprotocols=["gatehouse.protobuf"])
        try:
            self.assert_welcome(c, "protobuf", "bearer-bob")
        finally:
            await c.close()

    async def test_permessage_deflate_offer_does_not_break_the_handshake(self):
        url = self.server.ws_base + "/ws/player/" + self.server.token("alice")
        ws = await websockets.connect(url, compression="deflate", open_timeout=5,
                                      ping_interval=None)
        try:
            c = Client(ws, "json")
            w = await c.recv()
            self.assertEqual(w["type"], "welcome")
            ack = await c.command("t", {"pad": "z" * 2000}, "deflate-1")
            self.assertEqual((ack["type"], ack.get("correlation_id")), ("ack", "deflate-1"), ack)
        finally:
            await ws.close()


class Unauthorized(h.ServerTestCase):
    """Every bad credential is an HTTP 401 and no upgrade."""

    def refused(self, path, headers=None):
        raw = RawWs(self.server.port, path, headers=headers)
        try:
            return raw.status, raw.headers, raw.body
        finally:
            raw.close()

    def bad_tokens(self):
        s = self.server.jwt_secret
        now = int(time.time())
        good = self.server.token("mallory")
        other = self.server.token("someone-else")
        return {
            "malformed (not a JWT)": "not-a-jwt",
            "malformed (three garbage parts)": "a.b.c",
            "malformed (two parts)": good.rsplit(".", 1)[0],
            "bad signature (another token's)": good.rsplit(".", 1)[0] + "." +
                                               other.rsplit(".", 1)[1],
            "bad signature (flipped)": good[:-10] + ("A" if good[-10] != "A" else "B") +
                                       good[-9:],
            "wrong secret": h.mint_jwt(s + "x", h.player_claims("mallory")),
            "expired": h.mint_jwt(s, {"sub": "mallory", "iat": now - 120, "exp": now - 60}),
            "alg none": h.mint_jwt(s, h.player_claims("mallory"), alg="none"),
            "alg none, HS256 signature kept": h.mint_jwt(
                s, h.player_claims("mallory"), alg="HS256",
                header={"alg": "none", "typ": "JWT"}),
            "alg HS512": h.mint_jwt(s, h.player_claims("mallory"), alg="HS512"),
            "alg HS384": h.mint_jwt(s, h.player_claims("mallory"), alg="HS384"),
            "iat in the future": h.mint_jwt(s, {"sub": "mallory", "iat": now + 3600,
                                                "exp": now + 7200}),
            "missing sub": h.mint_jwt(s, {"iat": now, "exp": now + 600}),
            "empty sub": h.mint_jwt(s, {"sub": "", "iat": now, "exp": now + 600}),
            "sub not a string": h.mint_jwt(s, {"sub": 42, "iat": now, "exp": now + 600}),
            "payload not JSON": h.b64url('{"alg":"HS256","typ":"JWT"}') + "." +
                                h.b64url("not json") + ".sig",
        }

    def test_good_token_is_101(self):
        status, headers, _ = self.refused("/ws/player/" + self.server.token("mallory"))
        self.assertEqual(status, 101)

    def test_missing_token(self):
        for path in ("/ws/player", "/ws/player/"):
            with self.subTest(path=path):
                status, headers, body = self.refused(path)
                self.assertEqual(status, 401, body)
                self.assertNotIn("sec-websocket-accept", headers)

    def test_bad_tokens_in_path(self):
        for name, token in self.bad_tokens().items():
            with self.subTest(name):
                status, headers, body = self.refused("/ws/player/" + token)
                self.assertEqual(status, 401, f"{name}: {token} -> {status} {body!r:.200}")
                self.assertNotIn("sec-websocket-accept", headers)

    def test_bad_tokens_in_bearer_header(self):
        for name, token in self.bad_tokens().items():
            with self.subTest(name):
                status, _, body = self.refused("/ws/player",
                                               headers={"Authorization": "Bearer " + token})
                self.assertEqual(status, 401, f"{name}: {token} -> {status} {body!r:.200}")
        status, _, _ = self.refused("/ws/player", headers={
            "Authorization": "Basic " + h.b64url("mallory:pw")})
        self.assertEqual(status, 401)

    def test_bad_bot_key(self):
        for key in ("wrong-key", self.bot_keys["rover"] + "x", "rover",
                    self.server.token("rover")):
            with self.subTest(key=key):
                status, headers, _ = self.refused("/ws/bot/" + key)
                self.assertEqual(status, 401)
                self.assertNotIn("sec-websocket-accept", headers)

    def test_401_answers_problem_json(self):
        # docs/protocol.md s. 2: every error answers application/problem+json.
        status, headers, body = self.refused("/ws/player/not-a-jwt")
        self.assertEqual(status, 401)
        self.assertTrue(headers.get("content-type", "").startswith("application/problem+json"),
                        headers)
        problem = json.loads(body)
        self.assertEqual(problem.get("status"), 401, problem)
        self.assertIsInstance(problem.get("code"), str, problem)

    def test_refusals_are_counted(self):
        before = self.server.metric("gatehouse_upgrades_refused_total", reason="unauthorized")
        for _ in range(3):
            self.assertEqual(self.refused("/ws/player/garbage")[0], 401)
        after = self.server.wait_metric("gatehouse_upgrades_refused_total",
                                        lambda v: v >= before + 3, reason="unauthorized")
        self.assertEqual(after, before + 3)

    async def test_a_401_does_not_disturb_open_connections(self):
        c = await Client.player(self.server, "steady", "json")
        try:
            self.assertEqual(self.refused("/ws/player/garbage")[0], 401)
            ack = await c.command("t", None, "steady-1")
            self.assertEqual(ack["type"], "ack")
        finally:
            await c.close()


if __name__ == "__main__":
    h.run_main()
