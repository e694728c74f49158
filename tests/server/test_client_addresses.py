"""Client addresses and per-address limits (docs/protocol.md section 6.2) against the real server:
X-Forwarded-For believed only from --trusted-proxies and read from the right; every
per-address limit and log line uses that client address; per-address limits off by default."""

import json
import subprocess
import time

import gatehouse_harness as h


def login(server, username, forwarded_for=None):
    headers = {"Content-Type": "application/json"}
    if forwarded_for is not None:
        headers["X-Forwarded-For"] = forwarded_for
    status, _, body = server.http("POST", "/login",
                                  json.dumps({"username": username, "password": "wrong-pass"}),
                                  headers)
    return status, body


class BehindTrustedProxy(h.ServerTestCase):
    @classmethod
    def server_args(cls):
        return ["--trusted-proxies", "127.0.0.1/32,10.9.0.0/16", "--auth-rate-limit", "2",
                "--log-level", "debug"]

    def test_each_forwarded_client_has_its_own_budget(self):
        # Distinct usernames, so the login lockout never answers before the address limit.
        self.assertEqual(login(self.server, "a1", "203.0.113.7")[0], 401)
        self.assertEqual(login(self.server, "a2", "203.0.113.7")[0], 401)
        status, body = login(self.server, "a3", "203.0.113.7")
        self.assertEqual(status, 429, body)
        # Another client behind the same proxy is not limited by the first one's requests.
        self.assertEqual(login(self.server, "b1", "203.0.113.8")[0], 401)

    def test_rightmost_untrusted_entry_is_the_client(self):
        # A client cannot choose its address by writing its own X-Forwarded-For: the entry the
        # trusted proxy appended (the rightmost untrusted one) is what counts.
        for i in range(2):
            chain = f"198.51.100.{50 + i}, 192.0.2.44, 10.9.3.4"
            self.assertEqual(login(self.server, f"c{i}", chain)[0], 401)
        status, _ = login(self.server, "c9", "198.51.100.99, 192.0.2.44, 10.9.3.4")
        self.assertEqual(status, 429, "spoofed leftmost entries must not reset the budget")

    def test_log_lines_name_the_client_address(self):
        login(self.server, "logged", "192.0.2.201")
        deadline = time.monotonic() + 3.0
        while "from 192.0.2.201" not in self.server.stderr_text():
            self.assertLess(time.monotonic(), deadline,
                            "no log line with the forwarded client address: "
                            + self.server.stderr_text()[-600:])
            time.sleep(0.05)


class UntrustedPeer(h.ServerTestCase):
    @classmethod
    def server_args(cls):
        return ["--auth-rate-limit", "2"]

    def test_forwarded_for_is_ignored(self):
        self.assertEqual(login(self.server, "u1", "203.0.113.1")[0], 401)
        self.assertEqual(login(self.server, "u2", "203.0.113.2")[0], 401)
        # Both counted against the peer, 127.0.0.1, whatever the header says.
        self.assertEqual(login(self.server, "u3", "203.0.113.3")[0], 429)


class DefaultsBehindOneAddress(h.ServerTestCase):
    def test_many_players_from_one_address_are_not_limited(self):
        # Per-address limits are off unless set: a whole NAT (or a load balancer without
        # --trusted-proxies) logs in through one address.
        for i in range(70):
            status, body = login(self.server, f"player{i}")
            self.assertEqual(status, 401, f"request {i}: {status} {body!r}")


class BadFlag(h.AsyncCase):
    def test_bad_cidr_exits_2_naming_it(self):
        proc = subprocess.run([h.SERVER_BINARY, "--listen", "127.0.0.1:0", "--db",
                               "sqlite::memory:", "--trusted-proxies", "10.0.0.0/33"],
                              capture_output=True, timeout=30, env=h._clean_env())
        self.assertEqual(proc.returncode, 2, proc.stderr[-500:])
        self.assertIn(b"10.0.0.0/33", proc.stderr)


if __name__ == "__main__":
    h.run_main()
