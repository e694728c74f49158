"""--login-service: the credential routes forwarded to an external HTTP login service.

The service here is a real HTTP server (http.server on 127.0.0.1) that records what it got and
answers what each test sets; the gateway must pass the request through and relay the answer
unchanged (status, Content-Type, Retry-After, body), keep the settings routes local, and answer
502 login_service_unavailable when the service cannot be reached.
"""

import http.server
import json
import socket
import threading

from gatehouse_harness import Server, ServerTestCase, mint_jwt, player_claims, run_main


class _Recorder(http.server.BaseHTTPRequestHandler):
    # HTTP/1.0: the answer ends with the connection, one of the two forms the gateway reads.
    protocol_version = "HTTP/1.0"

    def do_POST(self):  # noqa: N802 (http.server's naming)
        length = int(self.headers.get("Content-Length", "0"))
        body = self.rfile.read(length)
        service = self.server.owner
        service.requests.append((self.path, self.headers.get("content-type"), body))
        status, headers, answer = service.answer
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def log_message(self, *args):
        pass


class LoginService:
    def __init__(self):
        self.requests = []
        self.answer = (200, {"Content-Type": "application/json"}, b"{}")
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
        self.httpd.owner = self
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ForwardedRoutes(ServerTestCase):
    @classmethod
    def setUpClass(cls):
        cls.service = LoginService()
        cls.server = Server("--login-service", f"http://127.0.0.1:{cls.service.port}/auth/",
                            publish_key=cls.publish_key).start()

    @classmethod
    def tearDownClass(cls):
        try:
            super().tearDownClass()
        finally:
            cls.service.close()

    def test_each_credential_route_is_forwarded_and_answered_unchanged(self):
        answer = json.dumps({"access_token": "a.b.c", "refresh_token": "r", "token_type": "Bearer",
                             "expires_in": 900, "player_id": "ext-1"}).encode()
        self.service.answer = (200, {"Content-Type": "application/json"}, answer)
        for path in ("/register", "/login", "/token/refresh", "/logout"):
            self.service.requests.clear()
            body = json.dumps({"username": "zoe", "password": "pw-" + path}).encode()
            status, headers, got = self.server.http(
                "POST", path, body, {"Content-Type": "application/json; charset=utf-8"})
            self.assertEqual(status, 200, path)
            self.assertEqual(got, answer, path)
            self.assertEqual(len(self.service.requests), 1, path)
            seen_path, seen_type, seen_body = self.service.requests[0]
            self.assertEqual(seen_path, "/auth" + path)
            self.assertEqual(seen_type, "application/json; charset=utf-8")
            self.assertEqual(seen_body, body)

    def test_errors_and_retry_after_are_relayed(self):
        problem = b'{"status":429,"title":"Too Many Requests","code":"too_many_attempts"}'
        self.service.answer = (429, {"Content-Type": "application/problem+json",
                                     "Retry-After": "17"}, problem)
        status, headers, got = self.server.http("POST", "/login", b'{"username":"a","password":"b"}',
                                                {"Content-Type": "application/json"})
        self.assertEqual(status, 429)
        self.assertEqual(got, problem)
        self.assertEqual(headers.get("retry-after"), "17")
        self.assertEqual(headers.get("content-type"), "application/problem+json")

    def test_settings_stay_local(self):
        # The player has no account in the local store: the local route answers, not the service.
        self.service.requests.clear()
        token = mint_jwt(self.server.jwt_secret, player_claims("ext-1"))
        status, _, body = self.server.http("GET", "/player/settings",
                                           headers={"Authorization": f"Bearer {token}"})
        self.assertEqual(status, 404)
        self.assertEqual(json.loads(body)["code"], "not_found")
        self.assertEqual(self.service.requests, [])


class UnreachableService(ServerTestCase):
    @classmethod
    def setUpClass(cls):
        cls.server = Server("--login-service", f"http://127.0.0.1:{free_port()}",
                            publish_key=cls.publish_key).start()

    def test_502_when_the_service_is_down(self):
        status, headers, body = self.server.http("POST", "/login",
                                                 b'{"username":"a","password":"b"}',
                                                 {"Content-Type": "application/json"})
        self.assertEqual(status, 502)
        self.assertEqual(headers.get("content-type"), "application/problem+json")
        self.assertEqual(json.loads(body)["code"], "login_service_unavailable")


class BadUrl(ServerTestCase):
    server = None

    @classmethod
    def setUpClass(cls):
        pass

    @classmethod
    def tearDownClass(cls):
        pass

    def test_a_malformed_url_is_a_usage_error(self):
        for url in ("https://127.0.0.1:1", "http://", "http://127.0.0.1:99999", "ftp://x"):
            server = Server("--login-service", url)
            with self.assertRaises(RuntimeError):
                server.start()
            self.assertEqual(server.proc.returncode, 2, url)
            # Named by its flag, before anything is opened (tests/server/test_config.py).
            self.assertIn("--login-service", server.stderr_text())


if __name__ == "__main__":
    run_main()
