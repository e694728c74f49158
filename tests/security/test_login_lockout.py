#!/usr/bin/env python3
"""A login lockout that spelling cannot sidestep (issue 14, item 4), against the real server,
with the in-memory limiter and with the Redis one (a redis-server of the test's own).

- Failures are counted per account: five wrong passwords by username lock the account for its
  email too (and the other way round, and in any case), and failures by username and by email
  add up in one count.
- A name with no account is still locked after its failures, in any case (docs/protocol.md section
  2: "for that login name, existing or not").
- A login name longer than any valid one (a username has at most 32 characters, an email at
  most 254) is answered 401 `invalid_credentials` without being counted: however often it is
  tried it never reaches 429, because the lockout table never holds it. Names at the limit
  are counted as before.

Usage: test_login_lockout.py PATH/TO/gatehouse-server [unittest args]
"""

import os
import secrets
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "server"))
import gatehouse_harness as h  # noqa: E402
import accounts_helpers as ah  # noqa: E402

FAILURES = 5


class LockoutChecks:
    """The checks; mixed into one class per limiter."""

    @classmethod
    def extra_args(cls):
        return ["--login-max-failures", str(FAILURES), "--login-lockout", "600"]

    def fail_times(self, name, n):
        for i in range(n):
            r = ah.login(self.server, name, "wrong-" + secrets.token_hex(4))
            ah.check_problem(self, r, 401, "invalid_credentials")

    def check_locked(self, name, password_):
        r = ah.login(self.server, name, password_)
        ah.check_problem(self, r, 429, "too_many_attempts")
        ah.retry_after(self, r)

    def test_username_failures_lock_the_email(self):
        username, email, pw, _ = ah.register_ok(self, self.server)
        self.fail_times(username, FAILURES)
        self.check_locked(email, pw)
        self.check_locked(email.upper(), pw)
        self.check_locked(username.upper(), pw)

    def test_email_failures_lock_the_username(self):
        username, email, pw, _ = ah.register_ok(self, self.server)
        self.fail_times(email.upper(), FAILURES)
        self.check_locked(username, pw)

    def test_spellings_share_one_count(self):
        username, email, pw, player_id = ah.register_ok(self, self.server)
        self.fail_times(username, 2)
        self.fail_times(email, 2)
        self.fail_times(username.swapcase(), FAILURES - 4)
        self.check_locked(email, pw)
        # Another account is untouched.
        other, _, other_pw, other_id = ah.register_ok(self, self.server)
        ah.login_ok(self, self.server, other, other_pw, other_id)

    def test_success_clears_the_count_for_every_spelling(self):
        username, email, pw, player_id = ah.register_ok(self, self.server)
        self.fail_times(username, FAILURES - 1)
        ah.login_ok(self, self.server, email, pw, player_id)
        self.fail_times(email, FAILURES - 1)  # a fresh window: still answered 401
        ah.login_ok(self, self.server, username, pw, player_id)

    def test_unknown_names_lock_in_any_case(self):
        ghost = ah.unique("ghost")
        self.fail_times(ghost, FAILURES)
        self.check_locked(ghost.upper(), "whatever-" + secrets.token_hex(4))
        ghost_mail = ah.unique("nobody") + "@Example.test"
        self.fail_times(ghost_mail, FAILURES)
        self.check_locked(ghost_mail.lower(), "whatever-" + secrets.token_hex(4))

    def test_overlong_names_are_never_counted(self):
        for name in ("a" * 33, "a" * 60000, "b" * 242 + "@example.test", "x@" + "y" * 60000):
            with self.subTest(length=len(name)):
                # Twice the lockout's threshold, and still 401: nothing was counted or kept. (60000: within
                # the default --max-message-bytes, 65536.)
                for _ in range(2 * FAILURES + 1):
                    r = ah.login(self.server, name, "wrong-" + secrets.token_hex(4))
                    ah.check_problem(self, r, 401, "invalid_credentials")

    def test_names_at_the_limit_are_counted(self):
        for name in ("c" * 32, "d" * 241 + "@example.test"):
            with self.subTest(length=len(name)):
                self.assertLessEqual(len(name), 254)
                self.fail_times(name, FAILURES)
                self.check_locked(name, "wrong")

    def test_overlong_name_of_a_real_account_cannot_log_in(self):
        # Padding a real username (spaces, or a case variant with junk) is just another name.
        username, _, pw, _ = ah.register_ok(self, self.server)
        r = ah.login(self.server, username + " " * 64, pw)
        ah.check_problem(self, r, 401, "invalid_credentials")


class MemoryLimiter(LockoutChecks, ah.AccountsCase):
    pass


class RedisLimiter(LockoutChecks, ah.AccountsCase):
    publish_key = None  # --publish-key is for the in-process bus only

    @classmethod
    def server_args(cls):
        return ["--redis", cls.redis.url] + super().server_args()

    @classmethod
    def setUpClass(cls):
        from redis_fixture import RedisServer
        cls.redis = RedisServer().start()
        try:
            super().setUpClass()
        except BaseException:
            cls.redis.close()
            raise

    @classmethod
    def tearDownClass(cls):
        try:
            super().tearDownClass()
        finally:
            cls.redis.close()

    def test_counts_live_in_redis_under_the_account(self):
        username, email, pw, player_id = ah.register_ok(self, self.server)
        self.fail_times(email.upper(), 1)
        keys = [k.decode() for k in self.redis.client().keys("*")]
        self.assertTrue(any(k.endswith("login:" + username.lower()) for k in keys),
                        f"no Redis key for the account {username}: {keys}")
        self.assertFalse(any(email.lower() in k.lower() for k in keys),
                         f"a key for the name as typed: {keys}")

if __name__ == "__main__":
    h.run_main()
