#!/usr/bin/env python3
"""gatehouse-server's HTTP built-ins of docs/protocol.md s. 2: `POST /commands` (a command onto the
bus without a WebSocket) and `GET /sse/player` (a player's updates as server-sent events), on
the in-process bus (updates through `POST /updates`) and on Redis (the entry read back with
XRANGE, updates sent with a real PUBLISH, 503 with Redis down).

Usage: test_http_commands.py PATH/TO/gatehouse-server [unittest args]

"Not delivered" is checked with a marker: updates reach a player in publish order, so once a
later marker addressed to the same player has arrived, an earlier update that was going to
arrive has arrived too.
"""

import asyncio
import json
import secrets
import time

import gatehouse_harness as h
from gatehouse_harness import Client, Server
import accounts_helpers as ah
from accounts_helpers import SseStream, check_json, check_problem, check_sse_update, post
import redis_helpers as rh


def command(server, body, token=None, sub=None, **kw):
    """POST /commands with a Bearer token (minted for `sub` unless `token` is given)."""
    if token is None:
        token = server.token(sub or "http-player")
    return post(server, "/commands", body, token=token, **kw)


def check_accepted(case, r, correlation_id=None):
    """202 {"correlation_id", "stream_id"}; returns the document."""
    doc = check_json(case, r, 202)
    cid = doc.get("correlation_id")
    case.assertIsInstance(cid, str, r)
    case.assertTrue(1 <= len(cid) <= 128, r)
    if correlation_id is not None:
        case.assertEqual(cid, correlation_id, r)
    h.stream_id_key(doc.get("stream_id"))
    return doc


def bad_tokens(secret):
    now = int(time.time())
    return {
        "garbage": "garbage",
        "wrong secret": h.mint_jwt("not-the-secret", h.player_claims("p")),
        "alg none": h.mint_jwt(secret, h.player_claims("p"), alg="none"),
        "HS512": h.mint_jwt(secret, h.player_claims("p"), alg="HS512"),
        "expired": h.mint_jwt(secret, {"sub": "p", "iat": now - 120, "exp": now - 60}),
        "no sub": h.mint_jwt(secret, {"iat": now, "exp": now + 600}),
    }


# ---------------------------------------------------------------------------------------------
# POST /commands on the in-process bus


class Commands(h.ServerTestCase):
    def test_accepted_with_stream_id(self):
        s = self.server
        doc = check_accepted(self, command(s, {"type": "player_action", "payload": {"move": [1, 2]},
                                               "correlation_id": "c-1"}), "c-1")
        ids = [h.stream_id_key(doc["stream_id"])]
        for i, payload in enumerate([None, 0, "s", [1, {"a": None}], {"x": 1.5}, True]):
            d = check_accepted(self, command(s, {"type": "t", "payload": payload,
                                                 "correlation_id": f"c-{i + 2}"}), f"c-{i + 2}")
            ids.append(h.stream_id_key(d["stream_id"]))
        self.assertEqual(ids, sorted(ids), "stream ids grow")
        self.assertEqual(len(set(ids)), len(ids), "one entry per command")

    def test_correlation_id_assigned_when_absent_or_null(self):
        s = self.server
        seen = set()
        for body in ({"type": "t"}, {"type": "t", "payload": 1, "correlation_id": None}):
            with self.subTest(body=body):
                doc = check_accepted(self, command(s, body))
                self.assertTrue(doc["correlation_id"].startswith("http:"), doc)
                self.assertNotIn(doc["correlation_id"], seen, "assigned ids are unique")
                seen.add(doc["correlation_id"])

    def test_envelope_limits(self):
        s = self.server
        check_accepted(self, command(s, {"type": "a" * 64, "correlation_id": "x" * 128}),
                       "x" * 128)
        check_accepted(self, command(s, {"type": "A-z_0.9:x", "correlation_id": "\u00e9"}),
                       "\u00e9")

    def test_invalid_envelope_is_400(self):
        cases = {
            "no type": {"payload": 1},
            "empty type": {"type": ""},
            "type too long": {"type": "a" * 65},
            "type with a space": {"type": "a b"},
            "type not a string": {"type": 5},
            "empty correlation_id": {"type": "t", "correlation_id": ""},
            "correlation_id too long": {"type": "t", "correlation_id": "x" * 129},
            "correlation_id a number": {"type": "t", "correlation_id": 5},
            "array": [{"type": "t"}],
            "string": '"t"',
            "null": "null",
        }
        for label, body in cases.items():
            with self.subTest(label):
                r = command(self.server, body)
                check_problem(self, r, 400, "invalid_envelope")

    def test_unparsable_json_is_400_invalid_json(self):
        for label, body in {"truncated": '{"type": "t"', "text": "hello", "empty": "",
                            "trailing": '{"type":"t"} x'}.items():
            with self.subTest(label):
                check_problem(self, command(self.server, body), 400, "invalid_json")

    def test_unauthorized_is_401(self):
        s = self.server
        body = {"type": "t", "correlation_id": "u"}
        check_problem(self, post(s, "/commands", body), 401, "unauthorized")
        r = post(s, "/commands", body, headers={"Authorization": "Basic dXNlcjpwYXNz"})
        check_problem(self, r, 401, "unauthorized")
        for label, token in bad_tokens(s.jwt_secret).items():
            with self.subTest(label):
                check_problem(self, command(s, body, token=token), 401, "unauthorized")

    def test_content_type_is_415(self):
        for ctype in ("text/plain", "application/x-www-form-urlencoded", None,
                      "application/jsonx"):
            with self.subTest(ctype):
                r = command(self.server, json.dumps({"type": "t"}), content_type=ctype)
                check_problem(self, r, 415, "unsupported_media_type")
        check_accepted(self, command(self.server, {"type": "t"},
                                     content_type="application/json; charset=utf-8"))

    def test_body_over_the_limit_is_413(self):
        body = json.dumps({"type": "t", "payload": "x" * 65536})
        check_problem(self, command(self.server, body), 413, "payload_too_large")

    def test_wrong_method_is_405(self):
        for method in ("GET", "PUT", "DELETE"):
            with self.subTest(method):
                r = ah.request(self.server, method, "/commands",
                               {"type": "t"} if method == "PUT" else None,
                               token=self.server.token("p"))
                check_problem(self, r, 405, "method_not_allowed")
                self.assertIn("POST", ah.allow_set(r), r)


class CommandRateLimit(h.ServerTestCase):
    """--ws-rate-limit 5: a bucket of 5/s, burst 10, per player (not per connection)."""

    @classmethod
    def server_args(cls):
        return ["--ws-rate-limit", "5"]

    def test_burst_then_429_with_retry_after(self):
        s = self.server
        token = s.token("http-spammer")
        answers = []
        t0 = time.monotonic()
        for i in range(40):
            r = command(s, {"type": "spam", "correlation_id": f"s-{i}"}, token=token)
            answers.append(r)
            if r.status == 429:
                break
        elapsed = time.monotonic() - t0
        statuses = [r.status for r in answers]
        accepted = statuses.count(202)
        h.note(f"{accepted} accepted before the first 429, in {elapsed:.3f} s")
        self.assertEqual(statuses[-1], 429, f"no 429 within 40 commands: {statuses}")
        self.assertTrue(all(st == 202 for st in statuses[:-1]), statuses)
        # The burst of 2N, plus at most N/s refilled meanwhile (+1 for rounding).
        self.assertGreaterEqual(accepted, 10, statuses)
        self.assertLessEqual(accepted, 10 + int(5 * elapsed) + 1, statuses)
        limited = answers[-1]
        check_problem(self, limited, 429, "rate_limited")
        seconds = ah.retry_after(self, limited, at_most=2)
        # The bucket is the player's: another player is not limited ...
        check_accepted(self, command(s, {"type": "t"}, sub="http-bystander"))
        # And the player may send again once Retry-After has passed.
        time.sleep(seconds + 0.1)
        check_accepted(self, command(s, {"type": "t", "correlation_id": "again"}, token=token),
                       "again")

    def test_the_bucket_is_per_player_not_per_token(self):
        s = self.server
        # Two different tokens for one player share one bucket.
        tokens = [s.token("http-two-tokens"), s.token("http-two-tokens", ttl=500)]
        self.assertNotEqual(tokens[0], tokens[1])
        statuses = []
        t0 = time.monotonic()
        for i in range(40):
            r = command(s, {"type": "t"}, token=tokens[i % 2])
            statuses.append(r.status)
            if r.status == 429:
                break
        elapsed = time.monotonic() - t0
        self.assertEqual(statuses[-1], 429, statuses)
        self.assertLessEqual(statuses.count(202), 10 + int(5 * elapsed) + 1, statuses)


class CommandRateLimitOff(h.ServerTestCase):
    """--ws-rate-limit 0: no limit for POST /commands either."""

    @classmethod
    def server_args(cls):
        return ["--ws-rate-limit", "0"]

    def test_no_429(self):
        token = self.server.token("http-unlimited")
        statuses = [command(self.server, {"type": "t"}, token=token).status for _ in range(60)]
        self.assertEqual(statuses, [202] * 60)


# ---------------------------------------------------------------------------------------------
# GET /sse/player on the in-process bus (updates through POST /updates)


class EventStreams(h.ServerTestCase):
    """--ping-interval 0.5, so the keep-alive comment comes quickly."""

    @classmethod
    def server_args(cls):
        return ["--ping-interval", "0.5"]

    async def open(self, player, how="bearer"):
        token = self.server.token(player)
        if how == "bearer":
            s = await SseStream.open(self.server, token=token)
        else:
            s = await SseStream.open(self.server, query_token=token)
        self.assertEqual(s.status, 200, (s.headers, s.body))
        self.assertTrue(s.headers.get("content-type", "").startswith("text/event-stream"),
                        s.headers)
        return s

    async def publish(self, message):
        await self.server.apublish(message)

    async def test_player_update_with_bearer_and_with_query_token(self):
        a = await self.open("sse-a", "bearer")
        b = await self.open("sse-a", "query")
        try:
            payload = {"score": 17, "list": [1, "two", None, True], "s": "\u00e9\u2603"}
            await self.publish({"player_id": "sse-a", "type": "score", "payload": payload,
                                "correlation_id": "u-1"})
            await self.publish({"player_id": "sse-a", "type": "game:tick", "payload": 5})
            for st in (a, b):
                check_sse_update(self, await st.next_event(), "score", payload, "u-1")
                check_sse_update(self, await st.next_event(), "game:tick", 5)
        finally:
            await a.close()
            await b.close()

    async def test_payload_missing_is_null_and_lines_stay_one(self):
        st = await self.open("sse-lines")
        try:
            await self.publish({"player_id": "sse-lines", "type": "ping"})
            check_sse_update(self, await st.next_event(), "ping", None)
            # Raw line breaks in the published JSON (whitespace) and escaped ones in strings:
            # the event still has one data line, and it is the same JSON value.
            body = ('{"player_id": "sse-lines",\n "type": "multi",\r\n "payload": {\n'
                    '   "text": "line1\\nline2\\r\\n", "n": [1,\n 2]\n }\n}')
            status, data = self.server.publish(body)
            self.assertEqual(status, 202, data)
            check_sse_update(self, await st.next_event(), "multi",
                             {"text": "line1\nline2\r\n", "n": [1, 2]})
        finally:
            await st.close()

    async def test_websocket_and_stream_of_one_player_both_receive(self):
        st = await self.open("sse-both")
        ws = await Client.player(self.server, "sse-both", "json")
        try:
            await self.publish({"player_id": "sse-both", "type": "u", "payload": [1]})
            check_sse_update(self, await st.next_event(), "u", [1])
            env = await ws.recv()
            self.assertEqual((env["type"], env["payload"]), ("u", [1]), env)
        finally:
            await st.close()
            await ws.close()

    async def test_connection_targeted_update_is_not_for_the_stream(self):
        st = await self.open("sse-conn")
        ws = await Client.player(self.server, "sse-conn", "json")
        try:
            ws_id = ws.welcome["payload"]["connection_id"]
            await self.publish({"player_id": "sse-conn", "connection_id": ws_id,
                                "type": "only-ws", "payload": 1})
            env = await ws.recv()
            self.assertEqual(env["type"], "only-ws", env)
            await self.publish({"player_id": "sse-conn", "connection_id": "no-such-conn",
                                "type": "nobody", "payload": 1})
            got = await ah.sse_before_marker(st, self.publish, "sse-conn")
            self.assertEqual(got, [], "connection-targeted updates reach only that connection")
        finally:
            await st.close()
            await ws.close()

    async def test_player_ids(self):
        a = await self.open("sse-ids-a")
        b = await self.open("sse-ids-b")
        c = await self.open("sse-ids-c")
        try:
            await self.publish({"player_ids": ["sse-ids-a", "sse-ids-b", "offline"],
                                "type": "group", "payload": {"g": 1}, "correlation_id": "g-1"})
            for st in (a, b):
                check_sse_update(self, await st.next_event(), "group", {"g": 1}, "g-1")
            self.assertEqual(await ah.sse_before_marker(c, self.publish, "sse-ids-c"), [])
        finally:
            for st in (a, b, c):
                await st.close()

    async def test_rooms(self):
        room = "room-" + secrets.token_hex(4)
        st = await self.open("sse-room")
        try:
            await self.publish({"op": "join", "player_id": "sse-room", "room": room})
            await self.publish({"room": room, "type": "room_msg", "payload": "hi"})
            check_sse_update(self, await st.next_event(), "room_msg", "hi")
            await self.publish({"op": "leave", "player_id": "sse-room", "room": room})
            await self.publish({"room": room, "type": "room_msg", "payload": "gone"})
            self.assertEqual(await ah.sse_before_marker(st, self.publish, "sse-room"), [])
        finally:
            await st.close()

    async def test_broadcast(self):
        a = await self.open("sse-bc-a")
        b = await self.open("sse-bc-b", "query")
        try:
            await self.publish({"broadcast": True, "type": "news", "payload": {"n": 1}})
            for st in (a, b):
                got = await st.events_until(lambda e: e["event"] == "news")
                check_sse_update(self, got[-1], "news", {"n": 1})
        finally:
            await a.close()
            await b.close()

    async def test_publish_order(self):
        st = await self.open("sse-order")
        try:
            def publish_all():
                for i in range(50):
                    self.server.publish_ok({"player_id": "sse-order", "type": "seq",
                                            "payload": i})
            await asyncio.to_thread(publish_all)
            got = [await st.next_event() for _ in range(50)]
            self.assertEqual([e["data"]["payload"] for e in got], list(range(50)))
        finally:
            await st.close()

    async def test_keep_alive_comment(self):
        st = await self.open("sse-quiet")
        try:
            t0 = time.monotonic()
            comments = []
            while len(comments) < 2:
                fields = await st.next_block(timeout=3.0)
                self.assertIsNotNone(fields, "the stream ended")
                self.assertTrue(all(k == "" for k, _ in fields),
                                f"nothing was published, yet {fields!r}")
                comments.append((time.monotonic() - t0, fields))
            for _, fields in comments:
                self.assertEqual(fields, [("", "keep-alive")], comments)
            h.note(f"keep-alive comments at {[round(t, 2) for t, _ in comments]} s")
            # Still a live stream afterwards.
            await self.publish({"player_id": "sse-quiet", "type": "late", "payload": 1})
            check_sse_update(self, await st.next_event(), "late", 1)
        finally:
            await st.close()

    async def test_unauthorized_is_401(self):
        s = self.server
        cases = {"no token": {}}
        for label, token in bad_tokens(s.jwt_secret).items():
            cases[f"bearer {label}"] = {"token": token}
            cases[f"query {label}"] = {"query_token": token}
        for label, kw in cases.items():
            with self.subTest(label):
                st = await SseStream.open(s, **kw)
                try:
                    self.assertEqual(st.status, 401, (st.headers, st.body))
                    self.assertTrue(st.headers.get("content-type", "")
                                    .startswith("application/problem+json"), st.headers)
                    doc = st.json
                    self.assertIsInstance(doc, dict, st.body)
                    self.assertEqual(doc.get("status"), 401, doc)
                    self.assertIsInstance(doc.get("code"), str, doc)
                    self.assertIsInstance(doc.get("title"), str, doc)
                finally:
                    await st.close()

    async def test_other_methods_are_405(self):
        for method in ("POST", "PUT", "DELETE"):
            with self.subTest(method):
                r = ah.request(self.server, method, "/sse/player",
                               None if method == "DELETE" else {},
                               token=self.server.token("p"))
                check_problem(self, r, 405, "method_not_allowed")
                self.assertIn("GET", ah.allow_set(r), r)

    async def test_a_client_going_away_is_forgotten(self):
        # Streams opened and dropped do not keep the player routed (no error, no growth): a
        # later stream of the same player still gets exactly one copy of each update.
        for _ in range(5):
            st = await self.open("sse-churn")
            await st.close()
        st = await self.open("sse-churn")
        try:
            for i in range(3):
                await self.publish({"player_id": "sse-churn", "type": "u", "payload": i})
            got = [await st.next_event() for _ in range(3)]
            self.assertEqual([e["data"]["payload"] for e in got], [0, 1, 2])
            self.assertEqual(await ah.sse_before_marker(st, self.publish, "sse-churn"), [])
        finally:
            await st.close()


class EventStreamShutdown(h.AsyncCase):
    """SIGTERM ends every open stream, and the server still exits 0."""

    async def test_streams_end_on_shutdown(self):
        server = Server(publish_key="pub-" + secrets.token_hex(8)).start()
        streams = []
        try:
            for how in ("bearer", "query", "bearer"):
                tok = server.token("sse-shutdown")
                st = await (SseStream.open(server, token=tok) if how == "bearer"
                            else SseStream.open(server, query_token=tok))
                self.assertEqual(st.status, 200, st.body)
                streams.append(st)
            await server.apublish({"player_id": "sse-shutdown", "type": "before", "payload": 1})
            for st in streams:
                check_sse_update(self, await st.next_event(), "before", 1)
            t0 = time.monotonic()
            stop = asyncio.ensure_future(asyncio.to_thread(server.stop))
            for st in streams:
                rest = await st.wait_eof(timeout=h.STOP_TIMEOUT_S)
                self.assertNotIn(b"data:", rest, "nothing was published after 'before'")
            h.note(f"streams ended {time.monotonic() - t0:.2f} s after SIGTERM")
            code = await asyncio.wait_for(stop, h.STOP_TIMEOUT_S + 2)
        finally:
            for st in streams:
                await st.close()
            server.kill()
        report = server.sanitizer_report()
        self.assertIsNone(report, report)
        self.assertEqual(code, 0, server.stderr_text()[-1500:])


# ---------------------------------------------------------------------------------------------
# Redis


class OnRedis(rh.OneRedisGateway):
    """One redis-server and one gatehouse-server on it, for the whole class."""

    @classmethod
    def extra_args(cls):
        return rh.FAST_RECOVERY


class RedisCommands(OnRedis):
    def check_entry(self, doc, player, type_, payload):
        fields = rh.entry(self.r, self.stream, doc["stream_id"])
        self.assertIsNotNone(fields, f"{doc['stream_id']} is not on {self.stream}")
        self.assertEqual(set(fields), rh.ENTRY_FIELDS, fields)
        self.assertEqual(fields["type"], type_.encode(), fields)
        self.assertEqual(fields["codec"], b"json", fields)
        self.assertEqual(json.loads(fields["payload"]), payload, fields)
        self.assertEqual(fields["correlation_id"], doc["correlation_id"].encode(), fields)
        self.assertEqual(fields["player_id"], player.encode(), fields)
        self.assertEqual(fields["client"], b"player", fields)
        self.assertEqual(fields["gateway_id"], self.gateway_id.encode(), fields)
        conn = fields["connection_id"].decode()
        self.assertTrue(conn.startswith("http:") and len(conn) > len("http:"), fields)
        self.assertTrue(fields["ts_ms"].isdigit(), fields)
        self.assertLess(abs(int(fields["ts_ms"]) - time.time() * 1000), 5000, fields)
        return fields

    def test_entry_on_the_stream(self):
        s = self.server
        payload = {"move": [1, 2], "s": "\u00e9\u2603", "n": 1.5}
        doc = check_accepted(self, command(s, {"type": "player_action", "payload": payload,
                                               "correlation_id": "h-1"}, sub="rp-1"), "h-1")
        first = self.check_entry(doc, "rp-1", "player_action", payload)
        doc2 = check_accepted(self, command(s, {"type": "t", "payload": [None],
                                                "correlation_id": "h-2"}, sub="rp-1"), "h-2")
        second = self.check_entry(doc2, "rp-1", "t", [None])
        self.assertNotEqual(first["connection_id"], second["connection_id"],
                            "each request is its own http:<request id>")
        self.assertLess(h.stream_id_key(doc["stream_id"]), h.stream_id_key(doc2["stream_id"]))

    def test_assigned_correlation_id_is_the_request_id(self):
        doc = check_accepted(self, command(self.server, {"type": "t"}, sub="rp-2"))
        fields = self.check_entry(doc, "rp-2", "t", None)
        self.assertEqual(fields["correlation_id"], fields["connection_id"], fields)
        self.assertEqual(doc["correlation_id"], fields["connection_id"].decode())

    def test_refused_commands_are_not_on_the_stream(self):
        before = self.r.xlen(self.stream)
        check_problem(self, command(self.server, {"type": ""}), 400, "invalid_envelope")
        check_problem(self, command(self.server, "{"), 400, "invalid_json")
        check_problem(self, post(self.server, "/commands", {"type": "t"}), 401, "unauthorized")
        self.assertEqual(self.r.xlen(self.stream), before)


class RedisEventStreams(OnRedis):
    async def open(self, player, how="bearer"):
        token = self.server.token(player)
        st = await (SseStream.open(self.server, token=token) if how == "bearer"
                    else SseStream.open(self.server, query_token=token))
        self.assertEqual(st.status, 200, st.body)
        return st

    async def test_routing_shapes(self):
        room = "room-" + secrets.token_hex(4)
        a = await self.open("rs-a")
        b = await self.open("rs-b", "query")
        try:
            await self.publish({"player_id": "rs-a", "type": "direct", "payload": {"x": 1},
                                "correlation_id": "d-1"})
            check_sse_update(self, await a.next_event(), "direct", {"x": 1}, "d-1")
            await self.publish({"player_ids": ["rs-a", "rs-b"], "type": "pair", "payload": 2})
            for st in (a, b):
                check_sse_update(self, await st.next_event(), "pair", 2)
            await self.publish({"op": "join", "player_id": "rs-b", "room": room})
            await self.publish({"room": room, "type": "in_room", "payload": "r"})
            check_sse_update(self, await b.next_event(), "in_room", "r")
            await self.publish({"broadcast": True, "type": "all", "payload": None})
            for st in (a, b):
                got = await st.events_until(lambda e: e["event"] == "all")
                check_sse_update(self, got[-1], "all", None)
            # rs-a is not in the room; a connection id that is not a's stream is not for it.
            await self.publish({"room": room, "type": "in_room", "payload": "not for a"})
            await self.publish({"player_id": "rs-a", "connection_id": "nope", "type": "c",
                                "payload": 1})
            self.assertEqual(await ah.sse_before_marker(a, self.publish, "rs-a"), [])
        finally:
            await a.close()
            await b.close()


class RedisDown(OnRedis):
    def test_503_bus_unavailable_then_recovery(self):
        s = self.server
        check_accepted(self, command(s, {"type": "t", "correlation_id": "up"}, sub="rd"), "up")
        self.redis.kill()
        t0 = time.monotonic()
        r = command(s, {"type": "t", "correlation_id": "down"}, sub="rd", timeout=15)
        h.note(f"answered {r.status} {time.monotonic() - t0:.2f} s after Redis died")
        check_problem(self, r, 503, "bus_unavailable")
        self.redis.start()
        self.r = self.redis.client()
        status, waited = rh.wait_ready(s, 200, timeout=10)
        self.assertEqual(status, 200, f"/ready {status} {waited:.1f} s after Redis came back")
        deadline = time.monotonic() + 5
        while True:
            r = command(s, {"type": "t", "correlation_id": "back"}, sub="rd")
            if r.status == 202 or time.monotonic() > deadline:
                break
            check_problem(self, r, 503, "bus_unavailable")
            time.sleep(0.1)
        doc = check_accepted(self, r, "back")
        self.assertIsNotNone(rh.entry(self.r, self.stream, doc["stream_id"]))


if __name__ == "__main__":
    h.run_main()
