#!/usr/bin/env python3
"""--allowed-origins: CORS on the JSON API and the Origin check on upgrades and event streams,
seen by outside clients (docs/operations.md "Browser pages on another origin").

What it checks:
- preflight (`OPTIONS` with `Origin` and `Access-Control-Request-Method`) on the account routes
  (/register, /login, /player/settings), the built-ins (/commands, /updates, /sse/player):
  204 with the path's methods, the headers the API reads plus those asked, a max age, the
  origin echoed with `Vary: Origin`, no Allow-Credentials; from an origin not listed: 403
  `origin_not_allowed` without any CORS header; an unknown path: 404;
- the answers themselves: an allowed origin gets Allow-Origin, Vary and Expose-Headers
  (Retry-After) on successes and errors alike; another origin is served (the browser withholds
  the answer) with `Vary: Origin` only; the page's origin is matched case-insensitively and
  with its default port; the gateway's own origin (its Host) needs no entry when that is an
  IP address, and must be listed when it is a name (DNS rebinding);
- WebSocket upgrades (python3-websockets with `origin=`) and `GET /sse/player` with a listed,
  an unlisted, the gateway's own, and no Origin: only the unlisted one is refused, 403
  problem+json `origin_not_allowed`, counted in gatehouse_upgrades_refused_total;
- more than one Origin header on an upgrade: 403, even when the first is listed;
- `*`: any origin, answered `Access-Control-Allow-Origin: *`;
- no --allowed-origins: v1 (OPTIONS is 405 with Allow, no CORS header, no Origin check);
- a bad entry (also from GATEHOUSE_ALLOWED_ORIGINS) exits 2 naming --allowed-origins and it.

Usage: test_cors.py PATH/TO/gatehouse-server [unittest args]

Independent references: the Fetch standard's CORS protocol (preflight, Allow-Origin, Vary),
RFC 6454 (origins), RFC 6455 10.2 (Origin on upgrades); requests, http.client and
python3-websockets are third-party clients. Every wait is bounded.
"""

import socket
import subprocess

import requests
import websockets

import accounts_helpers as a
import gatehouse_harness as h
from gatehouse_harness import Client

PAGE = "https://game.example"
LOCAL_PAGE = "http://localhost:3000"
EVIL = "https://evil.example"


def preflight(server, path, origin, method="POST", request_headers=None):
    headers = {"Origin": origin, "Access-Control-Request-Method": method}
    if request_headers:
        headers["Access-Control-Request-Headers"] = request_headers
    return requests.options(f"http://127.0.0.1:{server.port}{path}", headers=headers,
                            timeout=5)


def cors_headers(r):
    return {k.lower(): v for k, v in r.headers.items() if k.lower().startswith("access-control-")}


class AllowedOrigins(a.AccountsCase):
    @classmethod
    def extra_args(cls):
        return ["--allowed-origins", f"{PAGE},{LOCAL_PAGE}"]

    def own_origin(self):
        return f"http://127.0.0.1:{self.server.port}"

    def check_allowed(self, r, origin):
        self.assertEqual(r.headers.get("Access-Control-Allow-Origin"), origin, r.headers)
        self.assertIn("Origin", [v.strip() for v in r.headers.get("Vary", "").split(",")])
        self.assertNotIn("Access-Control-Allow-Credentials", r.headers)

    # -- preflight -----------------------------------------------------------------------------
    def test_preflight_on_account_routes_and_builtins(self):
        for path, method, methods in [("/register", "POST", {"POST"}),
                                      ("/login", "POST", {"POST"}),
                                      ("/token/refresh", "POST", {"POST"}),
                                      ("/player/settings", "PATCH", {"GET", "PATCH", "PUT"}),
                                      ("/commands", "POST", {"POST"}),
                                      ("/updates", "POST", {"POST"}),
                                      ("/sse/player", "GET", {"GET"})]:
            with self.subTest(path=path):
                r = preflight(self.server, path, PAGE, method,
                              "authorization, content-type, x-client-build")
                self.assertEqual(r.status_code, 204, r.text)
                self.assertEqual(r.content, b"")
                self.assertNotIn("Content-Length", r.headers)
                self.check_allowed(r, PAGE)
                got = {m.strip() for m in r.headers["Access-Control-Allow-Methods"].split(",")}
                self.assertEqual(got, methods)
                allowed = {x.strip().lower()
                           for x in r.headers["Access-Control-Allow-Headers"].split(",")}
                self.assertTrue({"authorization", "content-type", "traceparent",
                                 "x-client-build"} <= allowed, allowed)
                self.assertGreater(int(r.headers["Access-Control-Max-Age"]), 0)

    def test_preflight_matches_origins_as_serialized(self):
        # Scheme and host in any case, the default port written out: the same origin; the
        # answer echoes the Origin as the browser sent it.
        for origin in ("HTTPS://Game.Example", "https://game.example:443", LOCAL_PAGE,
                       self.own_origin()):
            with self.subTest(origin=origin):
                r = preflight(self.server, "/login", origin)
                self.assertEqual(r.status_code, 204, r.text)
                self.check_allowed(r, origin)

    def test_preflight_from_another_origin_is_403_without_cors_headers(self):
        for origin in (EVIL, "http://game.example", "https://game.example:8443",
                       "http://localhost:3001", "null", "https://sub.game.example"):
            with self.subTest(origin=origin):
                r = preflight(self.server, "/login", origin)
                self.assertEqual(r.status_code, 403, r.text)
                self.assertTrue(r.headers["Content-Type"].startswith(a.PROBLEM_TYPE))
                self.assertEqual(r.json()["code"], "origin_not_allowed")
                self.assertEqual(cors_headers(r), {})

    def test_preflight_to_unknown_path_is_404(self):
        for path in ("/nope", "/ws/player"):
            with self.subTest(path=path):
                self.assertEqual(preflight(self.server, path, PAGE).status_code, 404)

    def test_options_without_request_method_is_routed_as_before(self):
        r = a.request(self.server, "OPTIONS", "/login", headers={"Origin": PAGE})
        a.check_problem(self, r, 405, "method_not_allowed")
        self.assertEqual(a.allow_set(r), {"POST"})

    def test_preflight_then_request_on_one_raw_connection(self):
        # A 204 has no body and no Content-Length: the next request on the connection is read
        # and answered normally.
        with socket.create_connection(("127.0.0.1", self.server.port), timeout=5) as sock:
            sock.sendall((f"OPTIONS /login HTTP/1.1\r\nHost: 127.0.0.1:{self.server.port}\r\n"
                          f"Origin: {PAGE}\r\nAccess-Control-Request-Method: POST\r\n\r\n"
                          f"GET /health HTTP/1.1\r\nHost: 127.0.0.1:{self.server.port}\r\n"
                          f"Origin: {PAGE}\r\nConnection: close\r\n\r\n").encode())
            data = b""
            while True:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                data += chunk
        first, _, rest = data.partition(b"\r\n\r\n")
        self.assertTrue(first.startswith(b"HTTP/1.1 204 "), data)
        self.assertNotIn(b"content-length", first.lower())
        self.assertIn(f"access-control-allow-origin: {PAGE}".encode(), first.lower())
        self.assertTrue(rest.startswith(b"HTTP/1.1 200 "), data)
        self.assertIn(f"access-control-allow-origin: {PAGE}".encode(), rest.lower())
        self.assertTrue(rest.endswith(b'{"status":"ok"}'), data)

    # -- actual requests -------------------------------------------------------------------------
    def test_answers_to_an_allowed_origin_carry_cors_headers(self):
        username, _, password_, _ = a.register_ok(self, self.server)
        r = a.request(self.server, "POST", "/login",
                      {"username": username, "password": password_}, headers={"Origin": PAGE})
        doc = a.check_token_pair(self, r)
        self.assertEqual(r.headers.get("access-control-allow-origin"), PAGE)
        self.assertEqual(r.headers.get("vary"), "Origin")
        self.assertIn("retry-after", r.headers.get("access-control-expose-headers", "").lower())
        settings = a.request(self.server, "GET", "/player/settings", token=doc["access_token"],
                             headers={"Origin": LOCAL_PAGE})
        self.assertEqual(settings.status, 200, settings)
        self.assertEqual(settings.headers.get("access-control-allow-origin"), LOCAL_PAGE)
        # Errors too, so that a page can read why.
        bad = a.request(self.server, "POST", "/login", {"username": username, "password": "x"},
                        headers={"Origin": PAGE})
        a.check_problem(self, bad, 401)
        self.assertEqual(bad.headers.get("access-control-allow-origin"), PAGE)
        own = a.request(self.server, "GET", "/health", headers={"Origin": self.own_origin()})
        self.assertEqual(own.headers.get("access-control-allow-origin"), self.own_origin())

    def test_answers_to_other_or_no_origin_have_no_allow_origin(self):
        for headers in ({"Origin": EVIL}, {}):
            with self.subTest(headers=headers):
                r = a.request(self.server, "GET", "/health", headers=headers)
                self.assertEqual(r.status, 200, r)
                self.assertNotIn("access-control-allow-origin", r.headers)
                # The answer depends on the origin: caches must keep them apart.
                self.assertEqual(r.headers.get("vary"), "Origin")

    def test_http_command_from_a_page(self):
        token = self.server.token("cors-http")
        r = a.request(self.server, "POST", "/commands", {"type": "t", "payload": {}},
                      token=token, headers={"Origin": PAGE})
        self.assertEqual(r.status, 202, r)
        self.assertEqual(r.headers.get("access-control-allow-origin"), PAGE)

    # -- WebSocket upgrades ----------------------------------------------------------------------
    async def test_upgrade_checks_origin_when_sent(self):
        before = self.server.metric("gatehouse_upgrades_refused_total",
                                    reason="origin_not_allowed")
        for origin in (PAGE, LOCAL_PAGE, None, self.own_origin()):
            with self.subTest(origin=origin):
                c = await Client.player(self.server, "cors-ws",
                                        headers={"Origin": origin} if origin else None)
                self.assertEqual(c.welcome["type"], "welcome")
                await c.close()
        # The websockets client's own origin= parameter, as a browser would send it.
        ws = await websockets.connect(f"{self.server.ws_base}/ws/player/"
                                      f"{self.server.token('cors-ws2')}", origin=PAGE,
                                      open_timeout=h.RECV_TIMEOUT_S, close_timeout=2)
        await ws.close()
        for origin in (EVIL, "null", "http://game.example"):
            with self.subTest(origin=origin):
                with self.assertRaises(websockets.exceptions.InvalidStatusCode) as caught:
                    await websockets.connect(
                        f"{self.server.ws_base}/ws/player/{self.server.token('cors-ws3')}",
                        origin=origin, open_timeout=h.RECV_TIMEOUT_S, close_timeout=2)
                self.assertEqual(caught.exception.status_code, 403)
        got = self.server.wait_metric("gatehouse_upgrades_refused_total",
                                      lambda v: v >= before + 3, reason="origin_not_allowed")
        self.assertEqual(got, before + 3)

    def raw_upgrade(self, host, *origins):
        with socket.create_connection(("127.0.0.1", self.server.port), timeout=5) as sock:
            sock.sendall((f"GET /ws/bot/{self.bot_keys['rover']} HTTP/1.1\r\n"
                          f"Host: {host}\r\nUpgrade: websocket\r\n"
                          "Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
                          "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n" +
                          "".join(f"Origin: {o}\r\n" for o in origins) + "\r\n").encode())
            data = b""
            while b"\r\n\r\n" not in data or not data.rstrip().endswith(b"}"):
                chunk = sock.recv(65536)
                if not chunk:
                    break
                data += chunk
        return data.partition(b"\r\n\r\n")

    def test_refused_upgrade_is_problem_json(self):
        head, _, body = self.raw_upgrade(f"127.0.0.1:{self.server.port}", EVIL)
        self.assertTrue(head.startswith(b"HTTP/1.1 403 "), head)
        self.assertIn(b"content-type: application/problem+json", head.lower())
        self.assertNotIn(b"access-control-allow-origin", head.lower())
        self.assertIn(b'"code":"origin_not_allowed"', body)

    def test_more_than_one_origin_is_refused(self):
        # Even when the first is listed: a browser sends one (as the parser refuses two Hosts).
        head, _, body = self.raw_upgrade(f"127.0.0.1:{self.server.port}", PAGE, EVIL)
        self.assertTrue(head.startswith(b"HTTP/1.1 403 "), head)
        self.assertIn(b'"code":"origin_not_allowed"', body)
        head, _, body = self.raw_upgrade(f"127.0.0.1:{self.server.port}", PAGE, PAGE)
        self.assertTrue(head.startswith(b"HTTP/1.1 403 "), head)

    def test_named_host_must_be_listed_dns_rebinding(self):
        # A page on rebind.example:PORT whose name an attacker made resolve to the gateway sends
        # that name as Host and Origin: the same origin only counts for an IP address or
        # localhost, so it is refused (the own IP origin: test_upgrade_checks_origin_when_sent).
        port = self.server.port
        head, _, body = self.raw_upgrade(f"rebind.example:{port}",
                                         f"http://rebind.example:{port}")
        self.assertTrue(head.startswith(b"HTTP/1.1 403 "), head)
        self.assertIn(b'"code":"origin_not_allowed"', body)
        r = requests.options(f"http://127.0.0.1:{port}/login", timeout=5, headers={
            "Host": f"rebind.example:{port}", "Origin": f"http://rebind.example:{port}",
            "Access-Control-Request-Method": "POST"})
        self.assertEqual(r.status_code, 403, r.text)
        self.assertEqual(cors_headers(r), {})

    # -- event streams ---------------------------------------------------------------------------
    async def test_event_stream_checks_origin_and_answers_with_cors(self):
        token = self.server.token("cors-sse")
        s = await a.SseStream.open(self.server, token=token, headers={"Origin": PAGE})
        try:
            self.assertEqual(s.status, 200)
            self.assertEqual(s.headers.get("content-type"), "text/event-stream")
            self.assertEqual(s.headers.get("access-control-allow-origin"), PAGE)
            self.assertEqual(s.headers.get("vary"), "Origin")
        finally:
            await s.close()
        s = await a.SseStream.open(self.server, token=token)
        try:
            self.assertEqual(s.status, 200)
            self.assertNotIn("access-control-allow-origin", s.headers)
        finally:
            await s.close()
        s = await a.SseStream.open(self.server, token=token, headers={"Origin": EVIL})
        try:
            self.assertEqual(s.status, 403)
            self.assertEqual(s.json["code"], "origin_not_allowed")
            self.assertNotIn("access-control-allow-origin", s.headers)
        finally:
            await s.close()
        # A refusal to an allowed page carries the headers, so that the page can read it.
        s = await a.SseStream.open(self.server, token="not-a-token", headers={"Origin": PAGE})
        try:
            self.assertEqual(s.status, 401)
            self.assertEqual(s.headers.get("access-control-allow-origin"), PAGE)
        finally:
            await s.close()


class AnyOrigin(a.AccountsCase):
    @classmethod
    def extra_args(cls):
        return ["--allowed-origins", "*"]

    async def test_star_allows_every_origin(self):
        r = preflight(self.server, "/login", EVIL)
        self.assertEqual(r.status_code, 204, r.text)
        self.assertEqual(r.headers.get("Access-Control-Allow-Origin"), "*")
        got = a.request(self.server, "GET", "/health", headers={"Origin": EVIL})
        self.assertEqual(got.headers.get("access-control-allow-origin"), "*")
        self.assertNotIn("vary", got.headers)
        # Without Origin too (Fetch, "CORS protocol and HTTP caches"): one answer for everyone.
        got = a.request(self.server, "GET", "/health")
        self.assertEqual(got.headers.get("access-control-allow-origin"), "*")
        self.assertNotIn("vary", got.headers)
        c = await Client.player(self.server, "cors-any", headers={"Origin": EVIL})
        self.assertEqual(c.welcome["type"], "welcome")
        await c.close()


class NoAllowedOrigins(a.AccountsCase):
    """Without the flag: v1, byte for byte where CORS is concerned."""

    async def test_v1_behaviour(self):
        r = preflight(self.server, "/login", EVIL)
        self.assertEqual(r.status_code, 405, r.text)
        self.assertEqual({m.strip() for m in r.headers["Allow"].split(",")}, {"POST"})
        self.assertEqual(cors_headers(r), {})
        got = a.request(self.server, "GET", "/health", headers={"Origin": EVIL})
        self.assertNotIn("vary", got.headers)
        self.assertFalse([k for k in got.headers if k.startswith("access-control-")])
        c = await Client.player(self.server, "cors-v1", headers={"Origin": EVIL})
        self.assertEqual(c.welcome["type"], "welcome")
        await c.close()
        s = await a.SseStream.open(self.server, token=self.server.token("cors-v1"),
                                   headers={"Origin": EVIL})
        try:
            self.assertEqual(s.status, 200)
            self.assertNotIn("access-control-allow-origin", s.headers)
        finally:
            await s.close()


class BadEntry(h.AsyncCase):
    def run_server(self, args, env=None):
        return subprocess.run([h.SERVER_BINARY, "--listen", "127.0.0.1:0", "--db",
                               "sqlite::memory:", *args], capture_output=True, timeout=30,
                              env=h._clean_env(env))

    def test_bad_entry_exits_2_naming_the_flag_and_entry(self):
        for entry in ("game.example", "https://game.example/", "https://*.game.example"):
            with self.subTest(entry=entry):
                proc = self.run_server(["--allowed-origins", f"{PAGE},{entry}"])
                self.assertEqual(proc.returncode, 2, proc.stderr[-500:])
                self.assertIn(b"--allowed-origins", proc.stderr)
                self.assertIn(entry.encode(), proc.stderr)

    def test_bad_entry_from_the_environment(self):
        proc = self.run_server([], env={"GATEHOUSE_ALLOWED_ORIGINS": "ftp:/x"})
        self.assertEqual(proc.returncode, 2, proc.stderr[-500:])
        self.assertIn(b"--allowed-origins", proc.stderr)
        self.assertIn(b"ftp:/x", proc.stderr)


if __name__ == "__main__":
    h.run_main()
