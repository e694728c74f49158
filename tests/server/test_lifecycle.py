#!/usr/bin/env python3
"""gatehouse-server operations: /health, /ready, /metrics, graceful shutdown, secrets kept
out of the log, TLS, idle timeout (docs/protocol.md s. 1-3 and the server's extensions).

Usage: test_lifecycle.py PATH/TO/gatehouse-server [unittest args]
"""

import asyncio
import http.client
import json
import os
import secrets
import shutil
import signal
import ssl
import subprocess
import tempfile
import time
import unittest

import websockets

import gatehouse_harness as h
from gatehouse_harness import Client, RawWs, Server

FAMILIES = {
    "gatehouse_connections": "gauge",
    "gatehouse_connections_opened_total": "counter",
    "gatehouse_upgrades_refused_total": "counter",
    "gatehouse_commands_accepted_total": "counter",
    "gatehouse_commands_refused_total": "counter",
    "gatehouse_updates_received_total": "counter",
    "gatehouse_updates_malformed_total": "counter",
    "gatehouse_updates_routed_total": "counter",
    "gatehouse_updates_unrouted_total": "counter",
    "gatehouse_frames_sent_total": "counter",
    "gatehouse_send_queue_dropped_total": "counter",
    "gatehouse_slow_consumers_closed_total": "counter",
    "gatehouse_updates_delivered_total": "counter",
    "gatehouse_connections_closed_total": "counter",
}


def family_of_type_line(name):
    # Prometheus text format 0.0.4 names the counter family with its _total suffix;
    # OpenMetrics names it without. Accept either spelling of the TYPE line.
    return (name, name[:-len("_total")] if name.endswith("_total") else name)


class HttpEndpoints(h.ServerTestCase):
    def test_health(self):
        status, headers, body = self.server.http("GET", "/health")
        self.assertEqual(status, 200)
        self.assertTrue(headers.get("content-type", "").startswith("application/json"), headers)
        self.assertEqual(json.loads(body), {"status": "ok"})

    def test_ready_with_in_process_bus(self):
        status, _, body = self.server.http("GET", "/ready")
        self.assertEqual(status, 200, body)

    def test_metrics_families_and_types(self):
        status, headers, body = self.server.http("GET", "/metrics")
        self.assertEqual(status, 200)
        self.assertTrue(headers.get("content-type", "").startswith("text/plain"), headers)
        parsed = h.parse_metrics(body.decode())
        for name, kind in FAMILIES.items():
            with self.subTest(name):
                declared = [parsed["types"].get(n) for n in family_of_type_line(name)]
                self.assertIn(kind, declared, f"# TYPE line of {name}")
        names = {n for n, _, _ in parsed["samples"]}
        for name in ("gatehouse_connections_opened_total", "gatehouse_commands_accepted_total",
                     "gatehouse_updates_received_total", "gatehouse_frames_sent_total"):
            self.assertIn(name, names, "an unlabelled counter has a sample from the start")

    def test_unknown_path_404_and_wrong_method_405(self):
        status, headers, body = self.server.http("GET", "/no/such/path")
        self.assertEqual(status, 404)
        self.assertTrue(headers.get("content-type", "").startswith("application/problem+json"))
        self.assertEqual(json.loads(body).get("status"), 404)
        status, _, _ = self.server.http("POST", "/health", body="{}",
                                        headers={"Content-Type": "application/json"})
        self.assertEqual(status, 405)

    def problem(self, status, headers, body, code):
        self.assertTrue(headers.get("content-type", "").startswith("application/problem+json"),
                        headers)
        doc = json.loads(body)
        self.assertEqual((doc.get("status"), doc.get("code")), (status, code), doc)

    def test_ws_path_without_upgrade_is_426(self):
        status, headers, body = self.server.http("GET", "/ws/player/whatever")
        self.assertEqual(status, 426)
        self.problem(426, headers, body, "upgrade_required")

    def test_updates_needs_json_content_type(self):
        status, headers, body = self.server.http(
            "POST", "/updates", '{"broadcast":true,"type":"t"}',
            {"Authorization": "Bearer " + self.publish_key, "Content-Type": "text/plain"})
        self.assertEqual(status, 415)
        self.problem(415, headers, body, "unsupported_media_type")

    def test_body_over_the_limit_is_413_problem_json(self):
        # websocketpp refuses it from the Content-Length alone; the body is problem+json too.
        status, headers, body = self.server.http(
            "POST", "/updates", "x" * (65536 + 1),
            {"Authorization": "Bearer " + self.publish_key, "Content-Type": "application/json"})
        self.assertEqual(status, 413)
        self.problem(413, headers, body, "payload_too_large")


class ExactMetrics(h.ServerTestCase):
    """On a server nobody else uses, the counters are exact."""

    async def test_counts(self):
        s = self.server
        a = await Client.player(s, "m-a", "json")
        b = await Client.player(s, "m-b", "msgpack")
        bot = await Client.bot(s, "rover")
        try:
            self.assertEqual(s.wait_metric("gatehouse_connections", lambda v: v == 2,
                                           client="player"), 2)
            self.assertEqual(s.metric("gatehouse_connections", client="bot"), 1)
            self.assertEqual(s.metric("gatehouse_connections_opened_total"), 3)

            for i in range(3):
                self.assertEqual((await a.command("t", i, f"x{i}"))["type"], "ack")
            await a.send_raw("{{")
            self.assertEqual((await a.recv())["type"], "error")
            await a.send_raw("[]")
            self.assertEqual((await a.recv())["type"], "error")
            self.assertEqual(s.wait_metric("gatehouse_commands_accepted_total",
                                           lambda v: v == 3), 3)
            self.assertEqual(s.metric("gatehouse_commands_refused_total",
                                      reason="invalid_frame"), 1)
            self.assertEqual(s.metric("gatehouse_commands_refused_total",
                                      reason="invalid_envelope"), 1)

            await s.apublish({"player_id": "m-b", "type": "u", "payload": 1})
            await b.recv()
            await s.apublish({"player_id": "offline", "type": "u", "payload": 1})
            self.assertEqual(s.publish("[]")[0], 400)
            self.assertEqual(s.wait_metric("gatehouse_updates_malformed_total",
                                           lambda v: v == 1), 1)
            self.assertEqual(s.wait_metric("gatehouse_updates_unrouted_total",
                                           lambda v: v == 1), 1)
            self.assertEqual(s.metric("gatehouse_updates_routed_total"), 1)
            self.assertGreaterEqual(s.metric("gatehouse_frames_sent_total"), 1)

            raw = RawWs(s.port, "/ws/player/nope")
            raw.close()
            self.assertEqual(raw.status, 401)
            self.assertEqual(s.wait_metric("gatehouse_upgrades_refused_total", lambda v: v == 1,
                                           reason="unauthorized"), 1)

            await a.close()
            self.assertEqual(s.wait_metric("gatehouse_connections", lambda v: v == 1,
                                           client="player"), 1)
            self.assertEqual(s.metric("gatehouse_slow_consumers_closed_total"), 0)
            self.assertEqual(s.metric("gatehouse_send_queue_dropped_total"), 0)
            self.assertEqual(s.wait_metric("gatehouse_connections_closed_total",
                                           lambda v: v == 1, code="1000"), 1)
        finally:
            for c in (a, b, bot):
                await c.close()


class GracefulShutdown(h.AsyncCase):
    async def test_sigterm_answers_read_commands_then_1001_and_exit_0(self):
        server = Server(bot_keys={"rover": "k-" + secrets.token_hex(6)}).start()
        try:
            a = await Client.player(server, "early", "json")
            b = await Client.player(server, "late", "msgpack")
            bot = await Client.bot(server, "rover")
            a_ids = [f"a-{i}" for i in range(50)]
            for cid in a_ids:
                await a.send("t", {"cid": cid}, cid)
            await asyncio.sleep(0.3)  # certainly read by the server
            b_ids = [f"b-{i}" for i in range(150)]
            for cid in b_ids:
                await b.send("t", {"cid": cid}, cid)
            server.proc.send_signal(signal.SIGTERM)

            results = {}
            for name, c, ids in (("a", a, a_ids), ("b", b, b_ids)):
                code, got = await c.wait_closed(timeout=8)
                self.assertEqual(code, 1001, f"{name}: close code")
                got = h.without_reconnect(self, got)
                answered = [e.get("correlation_id") for e in got]
                for e in got:
                    self.assertIn(e["type"], ("ack", "error"), e)
                self.assertEqual(len(answered), len(set(answered)), f"{name}: answered twice")
                results[name] = answered
                h.note(f"connection {name}: {len(answered)} of {len(ids)} commands answered "
                       f"before 1001")
                # Commands are read in order: the ones answered are a prefix of those sent
                # (a command that arrived after shutdown began is not answered; 1001 says retry).
                self.assertEqual(sorted(answered, key=ids.index), ids[:len(answered)],
                                 f"{name}: answered set is not a prefix of the sent commands")
            self.assertEqual(sorted(results["a"], key=a_ids.index), a_ids,
                             "every command read before SIGTERM is answered before the close")
            code, got = await bot.wait_closed(timeout=8)
            self.assertEqual(code, 1001)
            h.without_reconnect(self, got)
            exit_code = await asyncio.to_thread(server.stop, signal.SIGTERM, 8)
            self.assertEqual(exit_code, 0, server.stderr_text()[-1500:])
            self.assertIsNone(server.sanitizer_report(), server.sanitizer_report())
        finally:
            server.kill()

    def test_during_the_drain_upgrades_and_ready_answer_503(self):
        # A peer that never answers the server's close frame keeps the drain open until the
        # closing handshake times out (2 s): long enough to knock on the door meanwhile.
        server = Server().start()
        try:
            stubborn = RawWs(server.port, "/ws/player/" + server.token("stubborn"))
            self.assertEqual(stubborn.status, 101)
            server.proc.send_signal(signal.SIGTERM)
            time.sleep(0.3)
            status, headers, body = server.http("GET", "/ready")
            self.assertEqual(status, 503, body)
            self.assertTrue(headers.get("content-type", "").startswith("application/problem+json"))
            late = RawWs(server.port, "/ws/player/" + server.token("late"))
            self.assertEqual(late.status, 503, late.body)
            self.assertEqual(json.loads(late.body).get("code"), "shutting_down")
            late.close()
            stubborn.close()
            self.assertEqual(server.stop(signal.SIGTERM, 8), 0, server.stderr_text()[-1500:])
        finally:
            server.kill()

    async def test_sigint_with_idle_connections_exits_0_quickly(self):
        server = Server().start()
        try:
            conns = [await Client.player(server, f"idle-{i}", "json") for i in range(5)]
            t0 = time.monotonic()
            server.proc.send_signal(signal.SIGINT)
            for c in conns:
                code, _ = await c.wait_closed(timeout=8)
                self.assertEqual(code, 1001)
            exit_code = await asyncio.to_thread(server.stop, signal.SIGINT, 8)
            self.assertEqual(exit_code, 0)
            self.assertLess(time.monotonic() - t0, 3.0, "nothing pending: no need to wait out "
                            "--shutdown-timeout")
        finally:
            server.kill()


class SecretsStayOutOfTheLog(h.AsyncCase):
    async def test_no_token_key_or_secret_in_stderr(self):
        bot_key = "botkey" + secrets.token_hex(12)
        publish_key = "pubkey" + secrets.token_hex(12)
        server = Server("--log-level", "debug", bot_keys={"rover": bot_key},
                        publish_key=publish_key).start()
        tokens = []
        try:
            def tok(sub, **kw):
                t = server.token(sub, **kw)
                tokens.append(t)
                return t
            c = await Client.open(server, "/ws/player/" + tok("logged"), codec="json",
                                  query="codec=json")
            await c.command("t", None, "log-1")
            await server.apublish({"player_id": "logged", "type": "u", "payload": 1})
            await c.close()
            c = await Client.open(server, "/ws/player", codec="json",
                                  headers={"Authorization": "Bearer " + tok("bearer")})
            await c.close()
            c = await Client.bot(server, "rover")
            await c.close()
            expired = h.mint_jwt(server.jwt_secret, {"sub": "old", "iat": 1, "exp": 2})
            tokens.append(expired)
            for path in ("/ws/player/" + expired, "/ws/player/" + tok("badcodec") + "?codec=xml",
                         "/ws/bot/" + bot_key + "x", "/ws/player?token=" + tok("query")):
                RawWs(server.port, path).close()
            for path in ("/health?token=" + tok("q2"), "/nope?a=1&token=" + tok("q4")):
                server.http("GET", path)
            # An event stream does not end by itself: read its head, then hang up.
            stream = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
            stream.request("GET", "/sse/player?token=" + tok("q3"))
            self.assertEqual(stream.getresponse().status, 200)
            stream.close()
            server.publish({"player_id": "x", "type": "t"}, key=publish_key + "wrong")
            self.assertEqual(server.stop(), 0)
        finally:
            server.kill()
        log = server.stderr_text()
        self.assertTrue(log.strip(), "at --log-level debug the server logs something")
        self.assertNotIn(server.jwt_secret, log, "the JWT secret")
        self.assertNotIn(bot_key, log, "a bot key")
        self.assertNotIn(publish_key, log, "the publish key")
        for t in tokens:
            self.assertNotIn(t, log, "an access token")
            self.assertNotIn(t.rsplit(".", 1)[1], log, "an access token's signature")


@unittest.skipUnless(shutil.which("openssl"), "needs the openssl command")
class Tls(h.AsyncCase):
    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.TemporaryDirectory()
        cls.cert = os.path.join(cls.dir.name, "cert.pem")
        cls.key = os.path.join(cls.dir.name, "key.pem")
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes",
                        "-keyout", cls.key, "-out", cls.cert, "-days", "2",
                        "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
                       check=True, capture_output=True, timeout=30)
        cls.server = Server("--tls-cert", cls.cert, "--tls-key", cls.key,
                            publish_key="tls-pub-" + secrets.token_hex(4))
        cls.server.tls = True
        cls.server.ssl_context = ssl.create_default_context(cafile=cls.cert)
        cls.server.start()

    @classmethod
    def tearDownClass(cls):
        code = cls.server.stop()
        cls.dir.cleanup()
        if code != 0:
            raise AssertionError(f"TLS server exit code {code}: {cls.server.stderr_text()[-800:]}")

    def test_https_health(self):
        status, _, body = self.server.http("GET", "/health")
        self.assertEqual((status, json.loads(body)), (200, {"status": "ok"}))

    async def test_wss_welcome_ack_update(self):
        c = await Client.player(self.server, "secure", "msgpack")
        try:
            self.assertEqual(c.welcome["payload"]["player_id"], "secure")
            ack = await c.command("t", {"tls": True}, "tls-1")
            self.assertEqual((ack["type"], ack["correlation_id"]), ("ack", "tls-1"))
            await self.server.apublish({"player_id": "secure", "type": "u", "payload": "s"})
            self.assertEqual((await c.recv())["payload"], "s")
        finally:
            await c.close()

    async def test_untrusted_client_context_fails(self):
        ctx = ssl.create_default_context()  # system CAs only: our self-signed cert is unknown
        with self.assertRaises((ssl.SSLError, OSError)):
            ws = await websockets.connect(self.server.ws_base + "/ws/player/" +
                                          self.server.token("x"), ssl=ctx, open_timeout=5)
            await ws.close()

    def test_plain_http_on_tls_port_is_not_served(self):
        conn = http.client.HTTPConnection("127.0.0.1", self.server.port, timeout=5)
        try:
            conn.request("GET", "/health")
            status = conn.getresponse().status
        except (http.client.HTTPException, OSError):
            status = None
        finally:
            conn.close()
        self.assertNotEqual(status, 200, "plain HTTP answered on the TLS listener")


class IdleTimeout(h.ServerTestCase):
    @classmethod
    def server_args(cls):
        return ["--ping-interval", "1", "--idle-timeout", "2"]

    async def test_silent_peer_closed_1008_ponging_peer_kept(self):
        def silent():
            raw = RawWs(self.server.port, "/ws/player/" + self.server.token("silent"))
            try:
                self.assertEqual(json.loads(raw.recv_message()[1])["type"], "welcome")
                t0 = time.monotonic()
                deadline = t0 + 6
                while time.monotonic() < deadline:
                    try:
                        m = raw.recv_message(deadline - time.monotonic(), answer_pings=False)
                    except TimeoutError:
                        break
                    if m is None or m[0] == "close":
                        return (m[1] if m else None), time.monotonic() - t0
                return "still open", time.monotonic() - t0
            finally:
                raw.close()
        # websockets answers pings by itself: that connection must survive the same time.
        alive = await Client.player(self.server, "ponger", "json")
        try:
            code, after = await asyncio.to_thread(silent)
            self.assertEqual(code, 1008, f"after {after:.1f} s")
            self.assertGreaterEqual(after, 1.5)
            ack = await alive.command("t", None, "still-here")
            self.assertEqual(ack["type"], "ack")
            self.assertEqual(self.server.metric("gatehouse_idle_closed_total"), 1)
            self.assertEqual(self.server.wait_metric("gatehouse_connections_closed_total",
                                                     lambda v: v >= 1, code="1008"), 1)
        finally:
            await alive.close()


if __name__ == "__main__":
    h.run_main()
