#!/usr/bin/env python3
"""The accounts issue's "done when", end to end against gatehouse-server:

- a new user registers, logs in, opens `/ws/player/{access_token}` and is welcomed with its
  player_id, sends a command and is acked, receives an update, refreshes, changes its settings
  and its password, logs out; and across all of that, at --log-level debug, no password,
  refresh token, access token, bot key nor the JWT secret appears in the server's log;
- the login lockout is shared by the instances on one Redis: failures on instance A lock the
  name on instance B.

Usage: test_accounts_flow.py PATH/TO/gatehouse-server [unittest args]
"""

import concurrent.futures
import secrets
import time

import gatehouse_harness as h
from gatehouse_harness import Client, RawWs, Server
import accounts_helpers as ah
from accounts_helpers import (SseStream, check_json, check_problem, check_sse_update,
                              check_token_pair, get_settings, login, login_ok, logout,
                              patch_settings, post, refresh, register, unique)
import redis_helpers as rh
from redis_fixture import RedisServer


class DoneWhen(h.AsyncCase):
    async def asyncSetUp(self):
        await super().asyncSetUp()
        self.db = ah.TempDb()
        self.bot_key = "botkey-" + secrets.token_hex(12)
        self.server = Server(*ah.accounts_args(self.db.url, "--log-level", "debug"),
                             publish_key="pub-" + secrets.token_hex(12),
                             bot_keys={"rover": self.bot_key}).start()
        # Every secret the run shows the server, by name.
        self.secrets = {"jwt secret": self.server.jwt_secret, "bot key": self.bot_key}
        if self.db.password:
            self.secrets["database password"] = self.db.password

    async def asyncTearDown(self):
        self.server.kill()
        self.db.close()

    def keep(self, name, value):
        self.secrets[f"{name} #{len(self.secrets)}"] = value
        return value

    async def test_register_login_play_refresh_settings_password(self):
        s = self.server
        name = unique("Flow")
        email = name.lower() + "@example.test"
        pw = self.keep("password", "pw-" + secrets.token_hex(10))

        # Refused attempts carry passwords too.
        short = self.keep("too-short password", "sh" + secrets.token_hex(2))
        check_problem(self, register(s, name, email, short), 400, "invalid_request")

        # Register.
        r = register(s, name, email, pw)
        doc = check_json(self, r, 201)
        pid = doc["player_id"]
        self.assertEqual(doc.get("username"), name)

        # Log in (once wrongly).
        wrong = self.keep("wrong password", "wrong-" + secrets.token_hex(8))
        check_problem(self, login(s, name, wrong), 401, "invalid_credentials")
        pair = check_token_pair(self, login(s, email, pw), pid)
        access = self.keep("access token", pair["access_token"])
        self.keep("refresh token", pair["refresh_token"])

        # The WebSocket with the access token in the path: welcome with the player_id.
        ws = await Client.open(s, "/ws/player/" + access, codec="json")
        sse = await SseStream.open(s, query_token=access)
        try:
            self.assertEqual(ws.welcome["type"], "welcome", ws.welcome)
            self.assertEqual(ws.welcome["payload"].get("player_id"), pid, ws.welcome)
            self.assertEqual(sse.status, 200, sse.body)
            # A command, acked with a stream id.
            ack = await ws.command("player_action", {"move": [1, 2]}, "flow-1")
            self.assertEqual((ack["type"], ack.get("correlation_id")), ("ack", "flow-1"), ack)
            h.stream_id_key(ack["payload"]["stream_id"])
            # The same over HTTP with the same token.
            r = post(s, "/commands", {"type": "player_action", "payload": 2,
                                      "correlation_id": "flow-2"}, token=access)
            self.assertEqual(check_json(self, r, 202).get("correlation_id"), "flow-2")
            # An update for the player reaches both.
            await s.apublish({"player_id": pid, "type": "hello", "payload": {"to": name}})
            env = await ws.recv()
            self.assertEqual((env["type"], env["payload"]), ("hello", {"to": name}), env)
            check_sse_update(self, await sse.next_event(), "hello", {"to": name})
        finally:
            await ws.close()
            await sse.close()

        # Refresh: a new pair; the new access token opens a WebSocket too (Bearer this time).
        pair2 = check_token_pair(self, refresh(s, pair["refresh_token"]), pid)
        access2 = self.keep("access token", pair2["access_token"])
        self.keep("refresh token", pair2["refresh_token"])
        check_problem(self, refresh(s, pair["refresh_token"]), 401, "invalid_token")
        # ... which revoked the family: log in again.
        pair3 = login_ok(self, s, name, pw, pid)
        self.keep("access token", pair3["access_token"])
        self.keep("refresh token", pair3["refresh_token"])
        ws = await Client.open(s, "/ws/player", codec="json",
                               headers={"Authorization": "Bearer " + access2})
        try:
            self.assertEqual(ws.welcome["payload"].get("player_id"), pid, ws.welcome)
            ack = await ws.command("t", None, "flow-3")
            self.assertEqual(ack["type"], "ack", ack)
        finally:
            await ws.close()

        # Refused requests that carry secrets: an upgrade refused for its codec, a refresh
        # token where an access token belongs, a bad bot key.
        raw = RawWs(s.port, "/ws/player/" + access2 + "?codec=nope")
        raw.close()
        self.assertEqual(raw.status, 400, raw.body)
        st = await SseStream.open(s, query_token=pair2["refresh_token"])
        await st.close()
        self.assertEqual(st.status, 401, st.body)
        check_problem(self, get_settings(s, pair2["refresh_token"]), 401, "unauthorized")
        bad_bot = self.keep("bot key", "botkey-" + secrets.token_hex(12))
        raw = RawWs(s.port, "/ws/bot/" + bad_bot)
        raw.close()
        self.assertEqual(raw.status, 401, raw.body)

        # A bot connects with its key (never logged either).
        bot = await Client.bot(s, "rover")
        try:
            self.assertEqual(bot.welcome["payload"].get("player_id"), "bot:rover")
        finally:
            await bot.close()

        # Settings.
        tok = pair3["access_token"]
        doc = check_json(self, get_settings(s, tok), 200)
        self.assertEqual((doc.get("display_name"), doc.get("preferences")), (name, {}))
        r = patch_settings(s, tok, {"display_name": "Flow Runner",
                                    "preferences": {"sound": False, "keys": {"jump": "space"}}})
        doc = check_json(self, r, 200)
        self.assertEqual(doc.get("display_name"), "Flow Runner")
        self.assertEqual(doc.get("preferences"), {"sound": False, "keys": {"jump": "space"}})

        # Password change: wrong current password first, then right.
        new_pw = self.keep("new password", "npw-" + secrets.token_hex(10))
        r = patch_settings(s, tok, {"current_password": wrong, "new_password": new_pw})
        check_problem(self, r, 403, "wrong_password")
        r = patch_settings(s, tok, {"current_password": pw, "new_password": new_pw})
        check_json(self, r, 200)
        check_problem(self, refresh(s, pair3["refresh_token"]), 401, "invalid_token")
        check_problem(self, login(s, name, pw), 401, "invalid_credentials")
        pair4 = login_ok(self, s, name.upper(), new_pw, pid)
        self.keep("access token", pair4["access_token"])
        self.keep("refresh token", pair4["refresh_token"])
        doc = check_json(self, get_settings(s, pair4["access_token"]), 200)
        self.assertEqual(doc.get("display_name"), "Flow Runner")

        # Log out.
        self.assertEqual(logout(s, pair4["refresh_token"]).status, 204)
        check_problem(self, refresh(s, pair4["refresh_token"]), 401, "invalid_token")

        # The log, after a clean stop.
        code = s.stop()
        report = s.sanitizer_report()
        self.assertIsNone(report, report)
        self.assertEqual(code, 0, s.stderr_text()[-1500:])
        log = s.stderr_text()
        out = s.stdout_text()
        h.note(f"{len(log.splitlines())} stderr lines at --log-level debug")
        if " debug " not in log:
            h.note("no debug-level line in the log: the leak check saw info and above only")
        leaked = ah.secrets_in_log(log, self.secrets)
        self.assertEqual(leaked, [], "secrets in the server's stderr log")
        self.assertEqual(ah.secrets_in_log(out, self.secrets), [], "secrets on stdout")
        if s.publish_key in log:
            h.note("the --publish-key appears in the log (not a contract secret)")


class TwoInstances(h.AsyncCase):
    """Two instances on one Redis, each with its own store (a user registered on both has the
    same name and password on both)."""

    @classmethod
    def extra_args(cls):
        return []

    @classmethod
    def setUpClass(cls):
        cls.redis = RedisServer().start()
        cls.dbs = [ah.TempDb(), ah.TempDb()]
        cls.servers = []
        try:
            stream, channel = rh.unique("gh:commands"), rh.unique("gh:updates")
            for i, db in enumerate(cls.dbs):
                cls.servers.append(rh.redis_gateway(
                    cls.redis.url, stream, channel, rh.unique(f"gw{i}"),
                    *ah.accounts_args(db.url, *cls.extra_args())).start())
        except BaseException:
            cls.cleanup()
            raise
        cls.a, cls.b = cls.servers

    @classmethod
    def cleanup(cls):
        problems = []
        try:
            for s in cls.servers:
                problems += rh.stop_and_check(s)
        finally:
            cls.redis.close()
            for db in cls.dbs:
                db.close()
        return problems

    @classmethod
    def tearDownClass(cls):
        problems = cls.cleanup()
        if problems:
            raise AssertionError("\n".join(problems))

    def user_on_both(self):
        name, pw = unique("Shared"), "pw-" + secrets.token_hex(8)
        pids = []
        for s in self.servers:
            r = register(s, name, name + "@example.test", pw)
            pids.append(check_json(self, r, 201)["player_id"])
        return name, pw, pids


class SharedLockout(TwoInstances):
    """--login-max-failures 3 --login-lockout 2, counted in Redis."""

    FAILURES = 3
    LOCKOUT = 2

    @classmethod
    def extra_args(cls):
        return ["--login-max-failures", cls.FAILURES, "--login-lockout", cls.LOCKOUT]

    def fail_logins(self, server, name, n):
        for i in range(n):
            check_problem(self, login(server, name, f"wrong-{i}"), 401, "invalid_credentials")

    def locked(self, server, name, pw):
        r = login(server, name, pw)
        check_problem(self, r, 429, "too_many_attempts")
        return ah.retry_after(self, r, at_most=self.LOCKOUT)

    def test_failures_on_a_lock_the_name_on_b(self):
        name, pw, (pid_a, pid_b) = self.user_on_both()
        self.fail_logins(self.a, name, self.FAILURES)
        t_locked = time.monotonic()
        seconds = self.locked(self.b, name, pw)
        self.locked(self.b, name.lower(), pw)
        self.locked(self.a, name, pw)
        # Other names are free on both.
        other, other_pw, (oa, ob) = self.user_on_both()
        login_ok(self, self.a, other, other_pw, oa)
        login_ok(self, self.b, other, other_pw, ob)
        time.sleep(max(0.0, seconds - (time.monotonic() - t_locked)) + 0.3)
        login_ok(self, self.b, name, pw, pid_b)
        login_ok(self, self.a, name, pw, pid_a)

    def test_failures_on_both_count_together(self):
        name, pw, _ = self.user_on_both()
        self.fail_logins(self.a, name, self.FAILURES - 1)
        self.fail_logins(self.b, name.upper(), 1)
        self.locked(self.a, name, pw)
        self.locked(self.b, name, pw)

    def test_concurrent_failures_on_both_do_not_exceed_the_limit(self):
        # Attempts arriving together at both instances get no more guesses in all than
        # attempts made one by one: exactly FAILURES answers 401.
        name, pw, _ = self.user_on_both()
        attempts = 16
        with concurrent.futures.ThreadPoolExecutor(attempts) as pool:
            answers = list(pool.map(
                lambda i: login(self.servers[i % 2], name, f"guess-{i}-wrong"),
                range(attempts)))
        statuses = sorted(r.status for r in answers)
        self.assertEqual(statuses, [401] * self.FAILURES + [429] * (attempts - self.FAILURES))

    def test_unknown_name_locked_across_instances(self):
        ghost = unique("ghost")
        self.fail_logins(self.b, ghost, self.FAILURES)
        self.locked(self.a, ghost, "whatever-password")


class SharedAuthRateLimit(TwoInstances):
    """--auth-rate-limit 4 per client IP, counted in Redis: requests to A and B add up."""

    @classmethod
    def extra_args(cls):
        return ["--auth-rate-limit", "4"]

    def test_requests_to_both_instances_add_up(self):
        name, pw, (pid_a, pid_b) = self.user_on_both()      # 2: one on each
        login_ok(self, self.a, name, pw, pid_a)               # 3
        login_ok(self, self.b, name, pw, pid_b)               # 4
        for server in (self.a, self.b):
            r = login(server, name, pw)
            check_problem(self, r, 429, "rate_limited")
            ah.retry_after(self, r, at_most=60)


if __name__ == "__main__":
    h.run_main()
