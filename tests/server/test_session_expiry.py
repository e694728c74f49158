#!/usr/bin/env python3
"""Session lifetime and in-band token refresh (docs/protocol.md 6.3) against a real gatehouse-server:
`gatehouse.token_expiring` at once when less than a minute is left, the 4001 close at the
token's exp (an event stream ends), `gatehouse.refresh` answered `gatehouse.refreshed` (the
session outlives the old exp, a new warning follows) or `invalid_token` (nothing changes), a
refresh racing the expiry decided one way, bots exempt, `--session-expiry off`, refreshes
counted against `--ws-rate-limit`, and a refresh never on the command stream (Redis XRANGE).

Tokens here expire 2-6 seconds after they are minted; every wait is bounded by the token's exp
plus the sweep's second (and some slack for a sanitizer build).

Usage: test_session_expiry.py PATH/TO/gatehouse-server [unittest args]
"""

import asyncio
import base64
import json
import time
import unittest

import gatehouse_harness as h
from accounts_helpers import SseStream
from gatehouse_harness import Client

try:
    import redis_helpers as rh
except ImportError:  # python3-redis missing
    rh = None

CODECS = ("json", "msgpack", "protobuf")
# How late after exp a close may come: the sweep runs at least every second; the rest is slack
# for a busy machine.
CLOSE_SLACK_S = 2.5


def exp_of(token):
    """The `exp` claim of a JWT minted by the harness."""
    body = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))["exp"]


async def player(server, sub, codec="json", ttl=600):
    """A player connection with a token expiring `ttl` seconds from now; (client, exp)."""
    token = server.token(sub, ttl=ttl)
    c = await Client.open(server, "/ws/player/" + token, codec=codec, query=f"codec={codec}")
    return c, exp_of(token)


def refresh_frame(codec, token, correlation_id):
    return h.encode_envelope(codec, "gatehouse.refresh", {"access_token": token}, correlation_id)


async def wait_expired(case, client, exp):
    """Reads until the 4001 close, which must come at exp or (a sweep) shortly after; returns
    the envelopes read before it."""
    code, got = await client.wait_closed(timeout=max(exp - time.time(), 0) + CLOSE_SLACK_S)
    closed_at = time.time()
    case.assertEqual(code, 4001, got)
    case.assertEqual(client.ws.close_reason, "token expired")
    case.assertGreaterEqual(closed_at, exp - 0.05, "closed before the token's exp")
    return got


class Expiry(h.ServerTestCase):
    """One server with the defaults: --session-expiry on."""

    async def test_token_expiring_at_once_then_4001_at_exp(self):
        async def one(codec):
            c, exp = await player(self.server, "short-" + codec, codec, ttl=3)
            self.assertEqual(c.welcome["type"], "welcome")
            warning = await c.recv()
            self.assertEqual(warning["type"], "gatehouse.token_expiring", warning)
            self.assertEqual(warning["payload"], {"exp": exp})
            self.assertNotIn("correlation_id", warning)
            # Commands are served until then.
            ack = await c.command("move", {"n": 1}, "before-" + codec)
            self.assertEqual(ack["type"], "ack", ack)
            self.assertEqual(await wait_expired(self, c, exp), [])

        before = self.server.metric("gatehouse_sessions_expired_total")
        await asyncio.gather(*(one(codec) for codec in CODECS))
        self.assertEqual(self.server.wait_metric("gatehouse_sessions_expired_total",
                                                 lambda v: v >= before + 3), before + 3)
        self.assertGreaterEqual(
            self.server.metric("gatehouse_connections_closed_total", code="4001"), 3)

    async def test_refresh_keeps_the_session_and_a_new_warning_follows(self):
        async def one(codec):
            sub = "refresher-" + codec
            c, old_exp = await player(self.server, sub, codec, ttl=3)
            self.assertEqual((await c.recv())["type"], "gatehouse.token_expiring")
            fresh = self.server.token(sub, ttl=7)
            new_exp = exp_of(fresh)
            await c.send_raw(refresh_frame(codec, fresh, "r-" + codec))
            answer = await c.recv()
            self.assertEqual(answer["type"], "gatehouse.refreshed", answer)
            self.assertEqual(answer["correlation_id"], "r-" + codec)
            self.assertEqual(answer["payload"], {"exp": new_exp})
            # Less than a minute left on the new token: its warning comes at once.
            warning = await c.recv()
            self.assertEqual(warning["type"], "gatehouse.token_expiring", warning)
            self.assertEqual(warning["payload"], {"exp": new_exp})
            # Past the old exp and a sweep, the session still serves commands...
            while time.time() < old_exp + 1.2:
                ack = await c.command("move", {"t": time.time()})
                self.assertEqual(ack["type"], "ack", ack)
                await asyncio.sleep(0.3)
            # ...until the new exp.
            self.assertEqual(await wait_expired(self, c, new_exp), [])

        before = self.server.metric("gatehouse_token_refreshes_total", outcome="ok")
        await asyncio.gather(*(one(codec) for codec in CODECS))
        self.assertEqual(self.server.metric("gatehouse_token_refreshes_total", outcome="ok"),
                         before + 3)

    async def test_protobuf_refresh_may_carry_a_msgpack_payload(self):
        c, _ = await player(self.server, "pb-msgpack", "protobuf")
        try:
            fresh = self.server.token("pb-msgpack", ttl=900)
            await c.send("gatehouse.refresh", {"access_token": fresh}, "r-mp",
                         payload_codec="msgpack")
            answer = await c.recv()
            self.assertEqual(answer["type"], "gatehouse.refreshed", answer)
            self.assertEqual(answer["payload"], {"exp": exp_of(fresh)})
            # Opaque bytes hold no token the gateway could read.
            await c.send("gatehouse.refresh", fresh.encode(), "r-bytes",
                         payload_codec="my.Token")
            answer = await c.recv()
            self.assertEqual(answer["payload"]["code"], "invalid_token", answer)
        finally:
            await c.close()

    async def test_refused_refreshes_change_nothing(self):
        s = self.server
        sub = "refused"
        now = int(time.time())
        bad = {
            "another sub": s.token("someone-else", ttl=600),
            "bad signature": h.mint_jwt("not-the-secret", h.player_claims(sub, ttl=600)),
            "expired": h.mint_jwt(s.jwt_secret, {"sub": sub, "iat": now - 120, "exp": now - 60}),
            "not a jwt": "garbage",
        }
        async def one(codec):
            c, exp = await player(s, sub, codec, ttl=3)
            self.assertEqual((await c.recv())["type"], "gatehouse.token_expiring")
            for label, token in bad.items():
                with self.subTest(codec=codec, token=label):
                    await c.send_raw(refresh_frame(codec, token, "bad-1"))
                    answer = await c.recv()
                    self.assertEqual(answer["type"], "error", answer)
                    self.assertEqual(answer["payload"]["code"], "invalid_token", answer)
                    self.assertEqual(answer["correlation_id"], "bad-1")
            # A payload without a token string.
            await c.send("gatehouse.refresh", {"token": "x"}, "bad-2")
            answer = await c.recv()
            self.assertEqual(answer["payload"]["code"], "invalid_token", answer)
            # The close still comes at the original exp.
            self.assertEqual(await wait_expired(self, c, exp), [])

        before = s.metric("gatehouse_token_refreshes_total", outcome="refused")
        await asyncio.gather(*(one(codec) for codec in CODECS))
        self.assertEqual(s.metric("gatehouse_token_refreshes_total", outcome="refused"),
                         before + 3 * (len(bad) + 1))

    async def test_refresh_racing_the_expiry_is_decided_one_way(self):
        # Refreshes sent around the exp, from 0.6 s before it to 0.4 s after. Each is decided
        # one way: `gatehouse.refreshed` and the session outlives the old exp, or no answer and
        # the 4001 close. A refresh read after the exp always loses.
        offsets = [-0.6, -0.3, -0.15, -0.05, 0.0, 0.05, 0.15, 0.4]
        outcomes = {}

        async def one(i, offset):
            sub = f"racer-{i}"
            c, exp = await player(self.server, sub, "json", ttl=2)
            self.assertEqual((await c.recv())["type"], "gatehouse.token_expiring")
            fresh = self.server.token(sub, ttl=600)
            await asyncio.sleep(max(0.0, exp + offset - time.time()))
            sent_at = time.time()
            try:
                await c.send_raw(refresh_frame("json", fresh, f"race-{i}"))
            except Exception:  # the close came first and the socket is gone: it lost
                pass
            code, got = None, []
            try:
                got.append(await c.recv(timeout=CLOSE_SLACK_S + 1))
            except h.websockets.ConnectionClosed:
                code = c.ws.close_code
            if code is None:
                answer = got[0]
                self.assertEqual(answer["type"], "gatehouse.refreshed", answer)
                self.assertEqual(answer["correlation_id"], f"race-{i}")
                self.assertLess(sent_at, exp, "a refresh sent after the exp was answered")
                # It stays open past the old exp and a sweep.
                await asyncio.sleep(max(0.0, exp + 1.2 - time.time()))
                ack = await c.command("move", {"after": True})
                self.assertEqual(ack["type"], "ack", ack)
                outcomes[offset] = "refreshed"
                await c.close()
            else:
                self.assertEqual(code, 4001)
                self.assertEqual(c.ws.close_reason, "token expired")
                outcomes[offset] = "expired"

        await asyncio.gather(*(one(i, o) for i, o in enumerate(offsets)))
        h.note(f"refresh race outcomes by offset from exp: {outcomes}")
        self.assertEqual(outcomes[0.4], "expired")

    async def test_event_stream_is_told_then_ends_at_exp(self):
        token = self.server.token("sse-short", ttl=3)
        exp = exp_of(token)
        st = await SseStream.open(self.server, token=token)
        try:
            self.assertEqual(st.status, 200, st.body)
            ev = await st.next_event()
            self.assertEqual(ev["event"], "gatehouse.token_expiring")
            self.assertEqual(ev["data"]["type"], "gatehouse.token_expiring")
            self.assertEqual(ev["data"]["payload"], {"exp": exp})
            ended = await st.next_event(timeout=max(exp - time.time(), 0) + CLOSE_SLACK_S)
            self.assertIsNone(ended, "the stream did not end at the token's exp")
            self.assertGreaterEqual(time.time(), exp - 0.05)
        finally:
            await st.close()

    async def test_bots_never_expire(self):
        bot = await Client.bot(self.server, "rover", "json", query="codec=json")
        try:
            c, exp = await player(self.server, "beside-a-bot", ttl=2)
            self.assertEqual((await c.recv())["type"], "gatehouse.token_expiring")
            await wait_expired(self, c, exp)
            # The bot, connected as long, got nothing and is still served.
            await bot.expect_nothing(within=0.2)
            ack = await bot.command("move", {"n": 1}, "bot-1")
            self.assertEqual(ack["type"], "ack", ack)
            # A bot has no token to refresh.
            answer = await bot.command("gatehouse.refresh",
                                       {"access_token": self.server.token("bot:rover")}, "b-r")
            self.assertEqual(answer["payload"]["code"], "invalid_token", answer)
        finally:
            await bot.close()

    async def test_other_reserved_types_stay_refused(self):
        c, _ = await player(self.server, "reserved")
        try:
            for type_ in ("gatehouse.refreshed", "gatehouse.token_expiring", "gatehouse.x"):
                answer = await c.command(type_, {}, "c-1")
                self.assertEqual(answer["payload"]["code"], "invalid_envelope", answer)
        finally:
            await c.close()
        # POST /commands has no session to refresh.
        status, _, body = self.server.http(
            "POST", "/commands",
            json.dumps({"type": "gatehouse.refresh",
                        "payload": {"access_token": self.server.token("reserved")}}),
            {"Content-Type": "application/json",
             "Authorization": "Bearer " + self.server.token("reserved")})
        self.assertEqual(status, 400)
        self.assertEqual(json.loads(body)["code"], "invalid_envelope")


class ExpiryOff(h.ServerTestCase):
    """--session-expiry off: v1 behaviour."""

    @classmethod
    def server_args(cls):
        return ["--session-expiry", "off"]

    async def test_sessions_outlive_their_tokens(self):
        c, exp = await player(self.server, "forever", ttl=2)
        try:
            n = 0
            # Commands keep being acked past the exp and a sweep; nothing else arrives.
            while time.time() < exp + 1.5:
                n += 1
                ack = await c.command("move", {"n": n}, f"c-{n}")
                self.assertEqual(ack["type"], "ack", ack)
                self.assertEqual(ack["correlation_id"], f"c-{n}")
                await c.expect_nothing(within=0.3)
            # A refresh is still verified and answered.
            answer = await c.command("gatehouse.refresh",
                                     {"access_token": self.server.token("forever")}, "r")
            self.assertEqual(answer["type"], "gatehouse.refreshed", answer)
        finally:
            await c.close()
        self.assertEqual(self.server.metric("gatehouse_sessions_expired_total"), 0)


class RateLimited(h.ServerTestCase):
    """--ws-rate-limit 1 (burst 2)."""

    @classmethod
    def server_args(cls):
        return ["--ws-rate-limit", "1"]

    async def test_refresh_counts_against_the_rate_limit(self):
        c, _ = await player(self.server, "eager")
        try:
            fresh = self.server.token("eager")
            for i in range(3):
                await c.send_raw(refresh_frame("json", fresh, f"r-{i}"))
            answers = [await c.recv() for _ in range(3)]
            self.assertEqual([a["type"] for a in answers],
                             ["gatehouse.refreshed", "gatehouse.refreshed", "error"], answers)
            self.assertEqual(answers[2]["payload"]["code"], "rate_limited")
            self.assertEqual(answers[2]["correlation_id"], "r-2")
        finally:
            await c.close()


@unittest.skipIf(rh is None, "python3-redis is not installed")
class NeverOnTheStream(h.AsyncCase if rh is None else rh.OneRedisGateway):
    """On Redis: a refresh, answered or refused, is never an entry of the command stream."""

    bot_keys = {}

    async def test_refresh_never_reaches_the_stream(self):
        c, _ = await player(self.server, "streamless", "msgpack")
        try:
            answer = await c.command("gatehouse.refresh",
                                     {"access_token": self.server.token("streamless")}, "r-ok")
            self.assertEqual(answer["type"], "gatehouse.refreshed", answer)
            answer = await c.command("gatehouse.refresh", {"access_token": "nope"}, "r-bad")
            self.assertEqual(answer["payload"]["code"], "invalid_token", answer)
            ack = await c.command("move", {"n": 1}, "c-1")
            self.assertEqual(ack["type"], "ack", ack)
        finally:
            await c.close()
        entries = rh.all_entries(self.r, self.stream)
        self.assertEqual([f["type"] for f in entries.values()], [b"move"], entries)
        self.assertEqual(list(entries), [ack["payload"]["stream_id"]])


if __name__ == "__main__":
    h.run_main()
