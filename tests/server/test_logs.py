#!/usr/bin/env python3
"""The server's logs (issue 19, item 2): `--log-format json` writes one JSON object per stderr
line with a UTC `ts` (ISO 8601, milliseconds, `Z`), an access line per answered HTTP request and
per ended WebSocket or event stream (status or close code, duration, bytes, client address,
route), audit lines for failed logins, lockouts and refresh-token reuse, and never a secret;
`--log-format text` prefixes each line with the same UTC timestamp.

The JSON run does what an operator's clients do: register, log in with a wrong password until
the lockout, reuse a rotated refresh token, open a WebSocket (the token in the path), an event
stream, try a bad bot key and POST /commands. Then every stderr line must parse.

Usage: test_logs.py PATH/TO/gatehouse-server [unittest args]
"""

import calendar
import json
import os
import re
import secrets
import socket
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gatehouse_harness as h  # noqa: E402
import accounts_helpers as ah  # noqa: E402
from accounts_helpers import SseStream, post  # noqa: E402

WAIT_S = 5.0
TS_RE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
MAX_FAILURES = 3


def raw_request(port, text):
    """Sends `text` as it is; the status of the answer."""
    with socket.create_connection(("127.0.0.1", port), timeout=WAIT_S) as sock:
        sock.sendall(text.encode())
        data = b""
        while b"\r\n" not in data:
            chunk = sock.recv(4096)
            if not chunk:
                break
            data += chunk
    return int(data.split(b" ", 2)[1])


def json_lines(text):
    """Every stderr line parsed (the last may be cut by a write in progress: only when it has no
    newline yet)."""
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return [json.loads(line) for line in lines]


class JsonLogs(ah.AccountsCase):
    @classmethod
    def extra_args(cls):
        return ["--log-format", "json", "--log-level", "debug",
                "--login-max-failures", str(MAX_FAILURES), "--login-lockout", "60"]

    def records(self):
        return json_lines(self.server.stderr_text())

    def wait_for(self, predicate, what):
        """Bounded poll of the parsed log until one record satisfies `predicate`."""
        deadline = time.monotonic() + WAIT_S
        while True:
            found = [r for r in self.records() if predicate(r)]
            if found:
                return found
            self.assertLess(time.monotonic(), deadline, f"no log line: {what}")
            time.sleep(0.02)

    def access(self, **want):
        def match(r):
            return r.get("kind") == "access" and all(r.get(k) == v for k, v in want.items())
        return self.wait_for(match, f"access {want}")

    def audit(self, event, **want):
        def match(r):
            return (r.get("kind") == "audit" and r.get("event") == event
                    and all(r.get(k) == v for k, v in want.items()))
        return self.wait_for(match, f"audit {event} {want}")

    def check_access_line(self, r):
        for key in ("ts", "level", "msg", "type", "method", "target", "route", "status",
                    "duration_ms", "bytes_received", "bytes_sent", "client_address"):
            self.assertIn(key, r, r)
        self.assertEqual(r["level"], "info", r)
        self.assertEqual(r["client_address"], "127.0.0.1", r)
        self.assertIsInstance(r["duration_ms"], (int, float), r)
        self.assertGreaterEqual(r["duration_ms"], 0, r)

    async def test_json_lines_access_audit_and_no_secret(self):
        s = self.server
        secrets_seen = [s.jwt_secret, self.publish_key, self.bot_keys["rover"]]

        # Registration, then a wrong password until the lockout refuses even the right one.
        username, _, password, player_id = ah.register_ok(self, s)
        secrets_seen.append(password)
        wrong = "wrong-" + secrets.token_hex(6)
        secrets_seen.append(wrong)
        statuses = [ah.login(s, username, wrong).status for _ in range(MAX_FAILURES)]
        self.assertEqual(statuses, [401] * MAX_FAILURES)
        self.assertEqual(ah.login(s, username, password).status, 429, "the lockout started")
        self.assertEqual(ah.login(s, username, password).status, 429, "refused during it")
        # An unknown name: the same event as a wrong password.
        ghost = ah.unique("ghost")
        self.assertEqual(ah.login(s, ghost, wrong).status, 401)

        # A refresh token rotated, then presented again: its family is revoked.
        other, _, other_password, other_id = ah.register_ok(self, s)
        secrets_seen.append(other_password)
        pair = ah.login_ok(self, s, other, other_password)
        rotated = ah.check_token_pair(self, ah.refresh(s, pair["refresh_token"]))
        secrets_seen += [pair["access_token"], pair["refresh_token"], rotated["access_token"],
                         rotated["refresh_token"]]
        self.assertEqual(ah.refresh(s, pair["refresh_token"]).status, 401)

        # A WebSocket with the player's token in its path, closed by the client with 1000.
        token = s.token("p_logs")
        secrets_seen.append(token)
        c = await h.Client.open(s, "/ws/player/" + token, query="codec=json")
        await c.send("player_action", {"n": 1}, correlation_id="c-1")
        await c.recv_until(lambda m: m.get("type") == "ack")
        await c.close()

        # An event stream with the token in the query, ended by the client.
        sse_token = s.token("p_sse")
        secrets_seen.append(sse_token)
        stream = await SseStream.open(s, query_token=sse_token)
        self.assertEqual(stream.status, 200)
        await stream.close()

        # A bad bot key, and POST /commands.
        bad_key = "botkey-" + secrets.token_hex(8)
        secrets_seen.append(bad_key)
        with self.assertRaises(Exception):
            await h.Client.open(s, "/ws/bot/" + bad_key)
        cmd_token = s.token("p_http")
        secrets_seen.append(cmd_token)
        r = post(s, "/commands", {"type": "player_action", "payload": 1}, token=cmd_token)
        self.assertEqual(r.status, 202, r)
        # And a publish with the publish key.
        s.publish_ok({"player_id": "p_logs", "type": "t", "payload": {}})
        # Requests the transport refuses itself: a malformed header line, and an upgrade of a
        # WebSocket version it does not speak (with a token in its path).
        raw_token = s.token("p_raw")
        secrets_seen.append(raw_token)
        self.assertEqual(raw_request(s.port, "GET /bad HTTP/1.1\r\nHost: x\r\nno colon\r\n\r\n"),
                         400)
        self.assertEqual(raw_request(s.port, f"GET /ws/player/{raw_token} HTTP/1.1\r\nHost: x\r\n"
                                             "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                                             "Sec-WebSocket-Version: 8\r\n"
                                             "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"),
                         426)

        # A HEAD: answered as GET without the body.
        self.assertEqual(raw_request(s.port, "HEAD /health HTTP/1.1\r\nHost: x\r\n"
                                             "Connection: close\r\n\r\n"), 200)

        # A body announced as 5 bytes, 2 sent, then the client goes: not answered.
        with socket.create_connection(("127.0.0.1", s.port), timeout=WAIT_S) as sock:
            sock.sendall(b"POST /unfinished HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nab")

        # Access lines: HTTP requests with their routes and statuses...
        head = self.access(route="/health", method="HEAD")[0]
        self.check_access_line(head)
        self.assertEqual(head["status"], 200)
        self.assertEqual(head["bytes_sent"], 0)
        unfinished = self.access(target="/unfinished")
        self.assertEqual(len(unfinished), 1, unfinished)
        self.assertEqual(unfinished[0]["status"], 0)
        self.assertEqual(unfinished[0]["method"], "POST")
        register = self.access(route="/register", status=201)[0]
        self.check_access_line(register)
        self.assertEqual(register["method"], "POST")
        self.assertEqual(register["type"], "http")
        self.assertGreater(register["bytes_received"], 0)
        self.assertGreater(register["bytes_sent"], 0)
        # (The other test of the class may have failed a login too.)
        self.assertGreaterEqual(len(self.access(route="/login", status=401)), MAX_FAILURES + 1)
        self.assertGreaterEqual(len(self.access(route="/login", status=429)), 2)
        self.access(route="/token/refresh", status=401)
        commands = self.access(route="/commands", status=202)[0]
        self.check_access_line(commands)
        self.assertEqual(commands["player_id"], "p_http")
        self.access(route="/updates", status=202)
        # ...the bad bot key's refused upgrade...
        refused = self.access(route="/ws/bot", status=401)[0]
        self.check_access_line(refused)
        self.assertEqual(refused["target"], "/ws/bot/[redacted]")
        # ...and the ends of the WebSocket and the event stream.
        ws = self.access(type="websocket", player_id="p_logs")[0]
        self.check_access_line(ws)
        self.assertEqual(ws["status"], 101)
        self.assertEqual(ws["close_code"], 1000)
        self.assertEqual(ws["route"], "/ws/player")
        self.assertEqual(ws["target"], "/ws/player/[redacted]?codec=json")
        self.assertGreater(ws["bytes_received"], 0)
        self.assertGreater(ws["bytes_sent"], 0)
        bad = self.access(route="other", status=400, target="/bad")[0]
        self.check_access_line(bad)
        upgrade = self.access(route="other", status=426)[0]
        self.assertEqual(upgrade["target"], "/ws/player/[redacted]")
        sse = self.access(type="event_stream", player_id="p_sse")[0]
        self.check_access_line(sse)
        self.assertEqual(sse["status"], 200)
        self.assertEqual(sse["route"], "/sse/player")
        self.assertEqual(sse["target"], "/sse/player?token=[redacted]")

        # Audit lines, at warn, with the login name and the client address.
        failed = self.audit("login_failed", username=username)
        self.assertEqual(len(failed), MAX_FAILURES)
        for r in failed:
            self.assertEqual(r["level"], "warn", r)
            self.assertEqual(r["client_address"], "127.0.0.1", r)
        self.assertEqual(len(self.audit("lockout_started", username=username)), 1)
        self.assertGreaterEqual(len(self.audit("login_locked_out", username=username)), 1)
        self.audit("login_failed", username=ghost)
        reuse = self.audit("refresh_token_reused", player_id=other_id)[0]
        self.assertEqual(reuse["level"], "warn")
        self.assertNotEqual(player_id, other_id)

        # Every line parses (json_lines raised otherwise) and has a UTC timestamp and a level.
        log = self.server.stderr_text()
        for r in self.records():
            self.assertRegex(r.get("ts", ""), TS_RE, r)
            self.assertIn(r.get("level"), ("debug", "info", "warn", "error"), r)
            self.assertIsInstance(r.get("msg"), str, r)
        # No secret anywhere, nor a long piece of one.
        for secret in secrets_seen:
            self.assertNotIn(secret, log)
            for i in range(0, max(1, len(secret) - 16), 8):
                self.assertNotIn(secret[i:i + 16], log)
        # The ready line is not a log line: it stays alone on stdout.
        self.assertRegex(s.stdout_text(), r"^gatehouse ready listen=127\.0\.0\.1:\d+\n$")

    def test_control_characters_and_quotes_stay_inside_one_line(self):
        s = self.server
        name = 'x"}\n{"event":"forged\u0001'
        self.assertEqual(ah.login(s, name, "whatever-1").status, 401)
        found = self.audit("login_failed", username=name)
        self.assertEqual(len(found), 1)
        self.assertFalse([r for r in self.records() if r.get("event") == "forged\u0001"])


class TextLogs(h.ServerTestCase):
    def test_utc_timestamps_and_access_lines(self):
        s = self.server
        status, _, _ = s.http("GET", "/health")
        self.assertEqual(status, 200)
        deadline = time.monotonic() + WAIT_S
        while "route=/health" not in s.stderr_text():
            self.assertLess(time.monotonic(), deadline, "no access line for /health")
            time.sleep(0.02)
        lines = [line for line in s.stderr_text().split("\n") if line]
        self.assertTrue(lines)
        for line in lines:
            self.assertRegex(line, r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z \S+ ", line)
        access = [line for line in lines if " access " in line and "route=/health" in line]
        self.assertEqual(len(access), 1, lines)
        self.assertRegex(access[0], r" info access type=http method=GET target=/health "
                                    r"route=/health status=200 duration_ms=\d+\.\d{3} "
                                    r"bytes_received=0 bytes_sent=\d+ client_address=127\.0\.0\.1$")
        # The timestamp is now, in UTC.
        stamp = time.strptime(access[0][:19], "%Y-%m-%dT%H:%M:%S")
        self.assertLess(abs(calendar.timegm(stamp) - time.time()), 60)


if __name__ == "__main__":
    h.run_main()
