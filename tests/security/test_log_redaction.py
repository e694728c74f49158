#!/usr/bin/env python3
"""Secrets in logs (issue 14, item 3), against the real server at --log-level debug.

A client that puts its access token, refresh token, password or bot key into a request target
in any shape (a malformed WebSocket path, a query parameter of any name, percent-encoded) must
not find it in the server's log, at any level. Two log paths see targets: the transport's debug
line for every HTTP request (`METHOD target from ADDRESS`) and the core's line for a refused
WebSocket upgrade. Each shape goes both ways (a plain GET and an upgrade attempt), and the test
checks that those lines were written (so a log that says nothing cannot pass) and that no secret
is in them. The access log (one line per answered request and per refused upgrade, issue 19)
carries every target too; the whole test runs again with `--log-format json`.

Usage: test_log_redaction.py PATH/TO/gatehouse-server [unittest args]
"""

import base64
import os
import secrets
import socket
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "server"))
import gatehouse_harness as h  # noqa: E402

WAIT_S = 5.0


def get(port, target, upgrade=False):
    """GET `target` (as a WebSocket upgrade attempt when `upgrade`); the answer's status code,
    or None. Only the status line is read: an accepted event stream never ends."""
    request = f"GET {target} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
    if upgrade:
        key = base64.b64encode(os.urandom(16)).decode()
        request += ("Upgrade: websocket\r\nConnection: Upgrade\r\n"
                    f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n")
    request = (request + "\r\n").encode()
    with socket.create_connection(("127.0.0.1", port), timeout=WAIT_S) as s:
        s.sendall(request)
        data = b""
        while b"\r\n" not in data:
            chunk = s.recv(4096)
            if not chunk:
                break
            data += chunk
    line = data.split(b"\r\n", 1)[0].split()
    return int(line[1]) if len(line) >= 2 else None


class SecretsNeverLogged(h.ServerTestCase):
    # How an access line names a target in this format.
    access_target = "target=/ws/[redacted]"

    @classmethod
    def server_args(cls):
        return ["--log-level", "debug"]

    def wait_for_log(self, needle):
        """Bounded wait until `needle` is on stderr (lines of one request are written before
        its answer, so this only guards against buffering)."""
        deadline = time.monotonic() + WAIT_S
        while needle not in self.server.stderr_text():
            self.assertLess(time.monotonic(), deadline, f"no log line with {needle!r}")
            time.sleep(0.02)

    def test_no_secret_in_any_shape(self):
        port = self.server.port
        jwt = self.server.token("p_" + secrets.token_hex(12))  # a valid access token
        refresh = secrets.token_urlsafe(32)  # a refresh token's shape (43 characters)
        password = "Pw-" + secrets.token_hex(6)  # 15 characters: not long enough to look random
        bot_key = self.bot_keys["rover"]
        short_key = "k" + secrets.token_hex(3)  # a short bot key: only its position tells
        enc_jwt = jwt.replace(".", "%2E")
        targets = [
            # Malformed WebSocket paths (the probe's three, and neighbours).
            (f"/ws//player/{jwt}", jwt),
            (f"/ws/player%2F{jwt}", jwt),
            (f"/ws/players/{jwt}", jwt),
            (f"/WS/Player/{jwt}", jwt),
            (f"/ws/player//{jwt}", jwt),
            (f"/%77s/player/{jwt}", jwt),
            (f"/ws%2Fplayer%2F{jwt}", jwt),
            (f"/ws%252Fplayer%252F{jwt}", jwt),
            (f"/api/ws/bot/{bot_key}", bot_key),
            (f"/ws/bots/{short_key}", short_key),
            (f"/ws/bot/{short_key}/x", short_key),
            (f"/ws/player/{enc_jwt}", jwt.split(".")[2]),
            # Credentials outside any WebSocket route.
            (f"/sse/player/{jwt}", jwt),
            (f"/player/{refresh}", refresh),
            # Query parameters of any name.
            (f"/sse/player?jwt={jwt}", jwt),
            (f"/login?refresh_token={refresh}", refresh),
            (f"/login?password={password}", password),
            (f"/login?user=alice&pass={password}", password),
            (f"/sse/player?TOKEN={jwt}", jwt),
            (f"/sse/player?to%6Ben={jwt}", jwt),
            (f"/sse/player?{jwt}", jwt),
            (f"/x?codec=json&api_key={short_key}", short_key),
            (f"/ws/player?codec={jwt}", jwt),
        ]
        for target, secret in targets:
            with self.subTest(target=target[:60]):
                self.assertIsNotNone(get(port, target), "no answer")
                self.assertIsNotNone(get(port, target, upgrade=True), "no answer to the upgrade")
        # Letters only: a marker with digits would be long enough to look like a credential.
        marker = "end" + "".join(secrets.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(8))
        self.server.http("GET", "/health?codec=" + marker)
        self.wait_for_log(marker)

        log = self.server.stderr_text()
        for target, secret in targets:
            with self.subTest(secret_of=target[:60]):
                self.assertNotIn(secret, log)
                # Nor a long piece of it (a log that printed it cut in two).
                for i in range(0, max(1, len(secret) - 16), 8):
                    self.assertNotIn(secret[i:i + 16], log)
        # Not vacuous: both log paths wrote their lines, redacted.
        self.assertIn("GET /ws/[redacted] from 127.0.0.1", log)
        self.assertIn("/login?refresh_token=[redacted]", log)
        self.assertRegex(log, r"upgrade /ws/\[redacted\] from 127\.0\.0\.1 refused with 404")
        self.assertIn("GET /health?codec=" + marker, log)
        # The access lines of the same requests, redacted alike.
        self.assertIn(self.access_target, log)


class SecretsNeverLoggedInJson(SecretsNeverLogged):
    access_target = '"target":"/ws/[redacted]"'

    @classmethod
    def server_args(cls):
        return ["--log-level", "debug", "--log-format", "json"]


if __name__ == "__main__":
    h.run_main()
