#!/usr/bin/env python3
"""gatehouse-server instances sharing one PostgreSQL user store (--db postgresql://...):

- a player registered on instance A logs in, refreshes and keeps settings on instance B;
- a refresh token replayed on one instance after it was rotated on the other revokes the
  family on both, and concurrent refreshes of one token across instances let exactly one win;
- instances started together on a new database migrate it once;
- the database going away gives 503 store_unavailable within seconds, not hangs, and the
  instances heal when it returns; its password never reaches the logs.

The suites test_accounts and test_accounts_flow also run whole against PostgreSQL
(GATEHOUSE_TEST_STORE=postgresql, see CMakeLists.txt); this file is what only several
instances on one database can show.

Usage: test_accounts_postgresql.py PATH/TO/gatehouse-server [unittest args]
"""

import concurrent.futures
import secrets
import time
import unittest

import gatehouse_harness as h
from gatehouse_harness import Server
import accounts_helpers as ah
from accounts_helpers import (check_json, check_problem, check_token_pair, get_settings,
                              login, login_ok, logout, patch_settings, refresh, register,
                              register_ok, unique)
import postgres_fixture


def instance(url, secret, *extra):
    """A server on `url` with the shared JWT secret (tokens of one verify on the other)."""
    return Server(*ah.accounts_args(url, "--log-level", "debug", *extra),
                  jwt_secret=secret).start()


class TwoInstancesOneDatabase(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.pg = postgres_fixture.shared()
        cls.database = cls.pg.create_database()
        cls.url = cls.pg.url(cls.database)
        cls.secret = "s3cr3t-" + secrets.token_hex(16)
        cls.servers = []
        try:
            cls.servers = [instance(cls.url, cls.secret), instance(cls.url, cls.secret)]
        except BaseException:
            cls.tearDownClass()
            raise
        cls.a, cls.b = cls.servers

    @classmethod
    def tearDownClass(cls):
        problems = []
        for s in cls.servers:
            code = s.stop()
            log = s.stderr_text()
            if code != 0:
                problems.append(f"exit code {code}: {log[-1500:]}")
            if s.sanitizer_report():
                problems.append(s.sanitizer_report())
            if cls.pg.password in log:
                problems.append("the database password is in a server's log")
        cls.pg.drop_database(cls.database)
        if problems:
            raise AssertionError("\n".join(problems))

    def test_register_on_a_then_log_in_refresh_and_settings_on_b(self):
        name, email, pw, pid = register_ok(self, self.a)
        pair = login_ok(self, self.b, name.upper(), pw, pid)
        pair = check_token_pair(self, refresh(self.a, pair["refresh_token"]), pid)
        pair = check_token_pair(self, refresh(self.b, pair["refresh_token"]), pid)
        check_json(self, patch_settings(self.b, pair["access_token"],
                                        {"display_name": "On B"}), 200)
        self.assertEqual(check_json(self, get_settings(self.a, pair["access_token"]), 200)
                         .get("display_name"), "On B")
        # The names are taken everywhere, in any ASCII case.
        check_problem(self, ah.register(self.b, name.lower(), unique() + "@x.test"), 409,
                      "username_taken")
        check_problem(self, ah.register(self.a, unique(), email.upper()), 409, "email_taken")
        # Logout on A ends the session on B.
        self.assertEqual(logout(self.a, pair["refresh_token"]).status, 204)
        check_problem(self, refresh(self.b, pair["refresh_token"]), 401, "invalid_token")

    def test_a_password_changed_on_a_ends_refresh_on_b(self):
        name, _, pw, pid = register_ok(self, self.a)
        pair = login_ok(self, self.b, name, pw, pid)
        new_pw = "pw-" + secrets.token_hex(8)
        check_json(self, patch_settings(self.a, pair["access_token"],
                                        {"current_password": pw, "new_password": new_pw}), 200)
        check_problem(self, refresh(self.b, pair["refresh_token"]), 401, "invalid_token")
        check_problem(self, login(self.b, name, pw), 401, "invalid_credentials")
        login_ok(self, self.b, name, new_pw, pid)

    def test_reuse_on_one_instance_revokes_the_family_on_both(self):
        name, _, pw, pid = register_ok(self, self.a)
        first = login_ok(self, self.a, name, pw, pid)
        other = login_ok(self, self.b, name, pw, pid)  # another session, untouched
        second = check_token_pair(self, refresh(self.b, first["refresh_token"]), pid)
        # The rotated token replayed on A: the family ends, B's newer token included.
        check_problem(self, refresh(self.a, first["refresh_token"]), 401, "invalid_token")
        check_problem(self, refresh(self.b, second["refresh_token"]), 401, "invalid_token")
        check_problem(self, refresh(self.a, second["refresh_token"]), 401, "invalid_token")
        check_token_pair(self, refresh(self.a, other["refresh_token"]), pid)
        # A's log names the player, not the token.
        deadline = time.monotonic() + 5
        while pid not in self.a.stderr_text() and time.monotonic() < deadline:
            time.sleep(0.05)
        log = self.a.stderr_text()
        self.assertIn("presented again for player " + pid, log)
        self.assertNotIn(first["refresh_token"], log + self.b.stderr_text())

    def test_concurrent_refreshes_of_one_token_on_both_let_one_win(self):
        name, _, pw, pid = register_ok(self, self.a)
        token = login_ok(self, self.a, name, pw, pid)["refresh_token"]
        n = 8
        with concurrent.futures.ThreadPoolExecutor(n) as pool:
            answers = list(pool.map(lambda i: refresh(self.servers[i % 2], token), range(n)))
        winners = [r for r in answers if r.status == 200]
        self.assertEqual(len(winners), 1, answers)
        for r in answers:
            if r.status != 200:
                check_problem(self, r, 401, "invalid_token")
        # The client raced itself: the session is over, the winner's token included.
        check_problem(self, refresh(self.b, winners[0].json["refresh_token"]), 401,
                      "invalid_token")


class StartAndOutage(unittest.TestCase):
    def test_instances_starting_together_migrate_a_new_database_once(self):
        pg = postgres_fixture.shared()
        database = pg.create_database()
        secret = "s3cr3t-" + secrets.token_hex(16)
        servers = [Server(*ah.accounts_args(pg.url(database)), jwt_secret=secret)
                   for _ in range(3)]
        try:
            with concurrent.futures.ThreadPoolExecutor(3) as pool:
                list(pool.map(lambda s: s.start(), servers))
            self.assertEqual(pg.psql("SELECT count(*) FROM schema_migrations", database).strip(),
                             "1")
            _, _, _, pid = register_ok(self, servers[0])
            name, _, pw, pid = register_ok(self, servers[1])
            login_ok(self, servers[2], name, pw, pid)
        finally:
            for s in servers:
                if s.proc is not None:
                    self.assertEqual(s.stop(), 0, s.stderr_text()[-1500:])
            pg.drop_database(database)

    def test_an_outage_gives_503_in_seconds_and_heals(self):
        # A cluster of its own: the shared one must keep answering the other suites.
        with postgres_fixture.PostgresServer() as pg:
            database = pg.create_database()
            server = instance(pg.url(database), "s3cr3t-" + secrets.token_hex(16))
            try:
                name, _, pw, pid = register_ok(self, server)
                login_ok(self, server, name, pw, pid)
                for outage in ("paused", "stopped"):
                    with self.subTest(outage):
                        if outage == "paused":
                            pg.pause()
                        else:
                            pg.stop()
                        started = time.monotonic()
                        r = login(server, name, pw)
                        elapsed = time.monotonic() - started
                        check_problem(self, r, 503, "store_unavailable")
                        # One statement deadline (5 s) plus, at worst, one connect attempt.
                        self.assertLess(elapsed, 12, r)
                        r = register(server, unique(), None, "pw-" + secrets.token_hex(8))
                        check_problem(self, r, 503, "store_unavailable")
                        if outage == "paused":
                            pg.resume()
                        else:
                            pg.start()
                        # Healed without a restart: the next calls reconnect.
                        deadline = time.monotonic() + 15
                        while True:
                            r = login(server, name, pw)
                            if r.status == 200 or time.monotonic() > deadline:
                                break
                            time.sleep(0.2)
                        check_token_pair(self, r, pid)
            finally:
                self.assertEqual(server.stop(), 0, server.stderr_text()[-1500:])
                log = server.stderr_text()
                self.assertNotIn(pg.password, log)
                self.assertIsNone(server.sanitizer_report())


if __name__ == "__main__":
    h.run_main()
