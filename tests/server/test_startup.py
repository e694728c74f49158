#!/usr/bin/env python3
"""gatehouse-server start-up contract (docs/protocol.md s. 1): the ready line, flags and their
environment twins, exit codes for bad input and a busy port, a clean exit on signals.

Usage: test_startup.py PATH/TO/gatehouse-server [unittest args]

(The checks of the former test_placeholder_server.py that still hold; a raw TCP connection is
no longer closed at once by a server that speaks HTTP, so it is GET /health that is checked.)
"""

import json
import signal
import socket
import subprocess
import time
import unittest

import gatehouse_harness as h
from gatehouse_harness import Client, Server

EXIT_TIMEOUT_S = 5.0


def held_listener():
    """A socket listening on a free 127.0.0.1 port, to make that port busy."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind(("127.0.0.1", 0))
    s.listen(1)
    return s


def raw_health(port):
    """GET /health on a raw socket with Connection: close; (status line, body)."""
    with socket.create_connection(("127.0.0.1", port), timeout=5.0) as c:
        c.sendall(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        data = b""
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            chunk = c.recv(4096)
            if not chunk:
                break
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    return head.split(b"\r\n", 1)[0].decode(), body


class Startup(unittest.TestCase):
    def run_to_exit(self, args, env=None):
        """Starts the binary expecting it to exit; (exit code, stdout, stderr)."""
        p = subprocess.run([h.SERVER_BINARY, *args], stdin=subprocess.DEVNULL,
                           capture_output=True, env=h._clean_env(env), timeout=EXIT_TIMEOUT_S)
        return p.returncode, p.stdout.decode("utf-8", "replace"), p.stderr.decode("utf-8",
                                                                                 "replace")

    def assert_usage_error(self, args, env=None):
        code, out, err = self.run_to_exit(args, env)
        self.assertEqual(code, 2, f"{args}: stderr {err[-300:]!r}")
        self.assertTrue(err.strip(), f"{args}: a message on stderr")
        self.assertNotIn("gatehouse ready", out)

    def test_ready_line_health_and_sigterm(self):
        s = Server().start()
        try:
            self.assertEqual(s.host, "127.0.0.1")
            self.assertTrue(0 < s.port < 65536)
            for _ in range(2):  # the accept loop re-arms
                status, body = raw_health(s.port)
                self.assertIn(" 200 ", status + " ")
                self.assertEqual(json.loads(body), {"status": "ok"})
            self.assertEqual(s.stop(signal.SIGTERM, EXIT_TIMEOUT_S), 0, s.stderr_text()[-500:])
            lines = s.stdout_text().splitlines()
            self.assertEqual(len(lines), 1, f"stdout carries only the ready line: {lines!r}")
            self.assertRegex(lines[0], h.READY_RE)
        finally:
            s.kill()

    def test_env_twin_listen_and_sigint(self):
        s = Server("--jwt-secret", "x" * 32, default_args=False,
                   env={"GATEHOUSE_LISTEN": "127.0.0.1:0"}).start()
        try:
            self.assertEqual(s.host, "127.0.0.1")
            self.assertNotEqual(s.port, 0)
            self.assertEqual(s.stop(signal.SIGINT, EXIT_TIMEOUT_S), 0)
        finally:
            s.kill()

    def test_listen_on_a_host_name(self):
        s = Server("--listen", "localhost:0", "--jwt-secret", "x" * 32, default_args=False).start()
        try:
            # Resolved once at start; the ready line names the address it listens on.
            self.assertEqual(s.host, "127.0.0.1")
            self.assertNotEqual(s.port, 0)
            self.assertEqual(s.stop(signal.SIGTERM, EXIT_TIMEOUT_S), 0)
        finally:
            s.kill()

    def test_flag_wins_over_variable(self):
        busy = held_listener()
        try:
            busy_port = busy.getsockname()[1]
            s = Server(env={"GATEHOUSE_LISTEN": f"127.0.0.1:{busy_port}"}).start()
            try:
                self.assertNotIn(s.port, (0, busy_port))
            finally:
                s.stop()
                s.kill()
        finally:
            busy.close()

    def test_busy_port_exits_1(self):
        busy = held_listener()
        try:
            code, out, err = self.run_to_exit(
                ["--listen", f"127.0.0.1:{busy.getsockname()[1]}", "--jwt-secret", "x" * 32])
            self.assertEqual(code, 1, err[-300:])
            self.assertTrue(err.strip())
            self.assertEqual(out, "", "no ready line")
        finally:
            busy.close()

    def test_bad_listen_values_exit_2(self):
        for bad in ["nonsense", "127.0.0.1", "127.0.0.1:", "127.0.0.1:65536", "127.0.0.1:80x",
                    "::1:0", "[::1:0", "300.0.0.1:0"]:
            with self.subTest(listen=bad):
                self.assert_usage_error(["--listen", bad])
        self.assert_usage_error([], env={"GATEHOUSE_LISTEN": "not-an-address"})

    def test_usage_errors_exit_2(self):
        listen = ["--listen", "127.0.0.1:0", "--jwt-secret", "x" * 32]
        cases = {
            "--redis not a redis:// URL": ["--redis", "http://127.0.0.1:6379"],
            "--redis-timeout zero": ["--redis", "redis://127.0.0.1:6379", "--redis-timeout", "0"],
            "--update-log-size zero": ["--update-log-size", "0"],
            "--update-log-ttl zero": ["--update-log-ttl", "0"],
            "--update-log-ttl over 30 days with --redis": ["--redis", "redis://127.0.0.1:6379",
                                                           "--update-log-ttl", "2592001"],
            "--db of a kind there is no store for": ["--db", "mysql://db/gatehouse"],
            "--login-max-failures zero": ["--login-max-failures", "0"],
            "--password-hash-kib below Argon2id's minimum": ["--password-hash-kib", "1"],
            "an unknown flag": ["--frobnicate", "1"],
            "a stray positional argument": ["extra"],
            "--max-message-bytes not a number": ["--max-message-bytes", "lots"],
            "--ws-rate-limit negative": ["--ws-rate-limit", "-1"],
            "--slow-consumer unknown policy": ["--slow-consumer", "ignore"],
            "--log-level unknown": ["--log-level", "loud"],
            "--bot-key without a colon": ["--bot-key", "nocolon"],
            "--tls-cert without --tls-key": ["--tls-cert", "/nonexistent/cert.pem"],
        }
        for name, args in cases.items():
            with self.subTest(name):
                self.assert_usage_error(listen + args)
        self.assert_usage_error(["--listen", "127.0.0.1:0"],
                                env={"GATEHOUSE_REDIS": "redis://127.0.0.1:99999"})

    def test_help_exits_0(self):
        code, out, _ = self.run_to_exit(["--help"])
        self.assertEqual(code, 0)
        for flag in ("--listen", "--jwt-secret", "--bot-key", "--ws-rate-limit",
                     "--max-message-bytes", "--publish-key", "--send-buffer-bytes",
                     "--slow-consumer", "--tls-cert"):
            self.assertIn(flag, out, "--help lists every flag")

    def test_unreadable_tls_files_do_not_start(self):
        code, out, err = self.run_to_exit(["--listen", "127.0.0.1:0", "--jwt-secret", "x" * 32,
                                           "--tls-cert", "/nonexistent/cert.pem",
                                           "--tls-key", "/nonexistent/key.pem"])
        self.assertNotEqual(code, 0)
        self.assertNotIn("gatehouse ready", out)
        self.assertTrue(err.strip())

    def test_threads_env_twin_serves_and_stops(self):
        s = Server(env={"GATEHOUSE_THREADS": "4"}).start()
        try:
            self.assertIn(" 200 ", raw_health(s.port)[0] + " ")
            self.assertEqual(s.stop(), 0)
        finally:
            s.kill()


class SecretFlags(h.AsyncCase):
    async def test_jwt_secret_env_twin_and_flag_wins(self):
        s = Server(default_args=False, env={"GATEHOUSE_JWT_SECRET": "env-secret-" + "e" * 20,
                                            "GATEHOUSE_LISTEN": "127.0.0.1:0"})
        s.jwt_secret = "env-secret-" + "e" * 20
        s.start()
        try:
            c = await Client.player(s, "envy", "json")
            self.assertEqual(c.welcome["payload"]["player_id"], "envy")
            await c.close()
        finally:
            s.stop()
            s.kill()
        s = Server(env={"GATEHOUSE_JWT_SECRET": "env-secret-" + "e" * 20}).start()
        try:
            c = await Client.player(s, "flagged", "json")  # minted with the flag's secret
            await c.close()
            env_token = h.mint_jwt("env-secret-" + "e" * 20, h.player_claims("envy"))
            self.assertEqual(h.RawWs(s.port, "/ws/player/" + env_token).status, 401)
        finally:
            s.stop()
            s.kill()

    async def test_random_jwt_secret_with_a_warning(self):
        s = Server("--listen", "127.0.0.1:0", default_args=False).start()
        try:
            # Whatever we sign with, the server's random key is not it.
            for guess in ("", "secret", "changeme"):
                t = h.mint_jwt(guess, h.player_claims("guess"))
                self.assertEqual(h.RawWs(s.port, "/ws/player/" + t).status, 401)
        finally:
            s.stop()
            s.kill()
        self.assertIn("jwt", s.stderr_text().lower(), "a warning names the missing JWT secret")

    async def test_publish_key_env_twin(self):
        s = Server(env={"GATEHOUSE_PUBLISH_KEY": "env-pub-key"}).start()
        try:
            status, _ = s.publish({"player_id": "p", "type": "t"}, key="env-pub-key")
            self.assertEqual(status, 202)
        finally:
            s.stop()
            s.kill()


if __name__ == "__main__":
    h.run_main()
