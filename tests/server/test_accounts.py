#!/usr/bin/env python3
"""gatehouse-server accounts HTTP API (docs/protocol.md s. 2 and the accounts issue's decisions):
register, login, lockout, refresh-token rotation and reuse detection, logout, player settings
(GET, PATCH as an RFC 7396 merge patch, PUT, password change), and every error row of the
section plus its "Bad input" paragraph.

Usage: test_accounts.py PATH/TO/gatehouse-server [unittest args]

Each class starts its own server on a temp SQLite store with fast password hashing
(--password-hash-kib 8192 --password-hash-passes 1) and the per-IP auth limit off unless the
class tests it.
"""

import concurrent.futures
import json
import os
import socket
import subprocess
import time
import unittest

import gatehouse_harness as h
import accounts_helpers as ah
from accounts_helpers import (check_json, check_problem, check_token_pair, get_settings, login,
                              login_ok, logout, patch_settings, post, put_settings, refresh,
                              register, register_ok, request, unique)

MAX_BODY = 65536  # --max-message-bytes default


def altered(token):
    """`token` with its middle character changed (a middle one: the last character of a base64
    text may carry only padding bits)."""
    i = len(token) // 2
    return token[:i] + ("A" if token[i] != "A" else "B") + token[i + 1:]


def padded_json(obj, size):
    """`obj` as JSON text of exactly `size` bytes (whitespace padding before the last brace)."""
    text = json.dumps(obj)
    assert text.endswith("}") and len(text) <= size
    return text[:-1] + " " * (size - len(text)) + "}"


class Register(ah.AccountsCase):
    def test_created(self):
        name = unique("Reg")  # the case is kept as given
        r = register(self.server, name, f"{name}@example.test", "correct horse")
        doc = check_json(self, r, 201)
        self.assertEqual(doc.get("username"), name, r)
        self.assertIsInstance(doc.get("player_id"), str, r)
        self.assertTrue(doc["player_id"], "player_id is a non-empty string")
        self.assertNotIn("password", json.dumps(doc).lower(), r)
        # Two users, two ids.
        _, _, _, other = register_ok(self, self.server)
        self.assertNotEqual(other, doc["player_id"])

    def test_username_rules(self):
        # 3 to 32 of [A-Za-z0-9_.-], checked at both ends of the length range.
        base = unique("n")  # n_ + 10 hex = 12 chars
        valid = [base[:3], (base + "_" * 32)[:32], base + ".a-Z_9"]
        for name in valid:
            with self.subTest(valid=name):
                r = register(self.server, name, f"{name}@example.test", "correct horse")
                check_json(self, r, 201)
        b2 = unique("m")
        invalid = ["ab", "", (b2 + "x" * 32)[:33], b2 + " x", b2 + "!", b2 + "@x", "\u00e9\u00e9\u00e9",
                   b2 + "\u00e9", b2 + "/x", b2 + "\n"]
        for name in invalid:
            with self.subTest(invalid=name):
                r = post(self.server, "/register",
                         json.dumps({"username": name, "email": unique("e") + "@example.test",
                                     "password": "correct horse"}, ensure_ascii=False))
                check_problem(self, r, 400, "invalid_request")

    def test_email_rules(self):
        # Exactly one '@' with something on both sides; at most 254 characters.
        longest = unique("l") + "@" + "d" * 240
        longest = longest + "d" * (254 - len(longest))
        self.assertEqual(len(longest), 254)
        for email in [unique("a") + "@example.test", longest]:
            with self.subTest(valid=email[:40]):
                check_json(self, register(self.server, unique(), email, "correct horse"), 201)
        too_long = unique("t") + "@" + "d" * 250
        too_long = too_long + "d" * (255 - len(too_long))
        u = unique("x")
        for email in ["", u, "@example.test", u + "@", u + "@@example.test",
                      u + "@a@example.test", too_long]:
            with self.subTest(invalid=email[:40]):
                check_problem(self, register(self.server, unique(), email, "correct horse"), 400,
                              "invalid_request")

    def test_password_length_in_code_points(self):
        # 8 to 128 characters counted in code points, not bytes nor UTF-16 units.
        valid = ["a" * 8, "a" * 128, "\u00e9" * 8, "\U0001F600" * 128, "\u20ac" * 50]
        for pw in valid:
            with self.subTest(valid=f"{pw[:1]!r}x{len(pw)}"):
                name = unique()
                body = json.dumps({"username": name, "email": name + "@example.test",
                                   "password": pw}, ensure_ascii=False)
                check_json(self, post(self.server, "/register", body), 201)
                # ... and it is the password: login with it works.
                login_ok(self, self.server, name, pw)
        invalid = ["", "a" * 7, "a" * 129, "\u20ac" * 7, "\U0001F600" * 129, "\U0001F600" * 7]
        for pw in invalid:
            with self.subTest(invalid=f"{pw[:1]!r}x{len(pw)}"):
                name = unique()
                body = json.dumps({"username": name, "email": name + "@example.test",
                                   "password": pw}, ensure_ascii=False)
                check_problem(self, post(self.server, "/register", body), 400, "invalid_request")

    def test_missing_and_mistyped_fields(self):
        name = unique()
        good = {"username": name, "email": name + "@example.test", "password": "correct horse"}
        cases = {}
        for field in good:
            missing = dict(good)
            del missing[field]
            cases[f"no {field}"] = missing
            for wrong in (5, None, True, ["x"], {"a": "b"}):
                cases[f"{field}={wrong!r}"] = dict(good, **{field: wrong})
        for label, body in cases.items():
            with self.subTest(label):
                check_problem(self, post(self.server, "/register", body), 400, "invalid_request")
        for label, text in {"array": "[]", "string": '"x"', "number": "17", "null": "null",
                            "array of the object": json.dumps([good])}.items():
            with self.subTest(label):
                check_problem(self, post(self.server, "/register", text), 400, "invalid_request")
        # None of those created the user.
        check_json(self, post(self.server, "/register", good), 201)

    def test_unknown_fields_are_ignored(self):
        name = unique()
        r = post(self.server, "/register", {"username": name, "email": name + "@example.test",
                                            "password": "correct horse", "referrer": "x",
                                            "age": 3})
        self.assertEqual(check_json(self, r, 201).get("username"), name)

    def test_username_and_email_taken_case_insensitively(self):
        name = unique("Case")
        email = unique("Mail") + "@Example.Test"
        register_ok(self, self.server, name, email)
        r = register(self.server, name.lower(), unique() + "@example.test")
        check_problem(self, r, 409, "username_taken")
        r = register(self.server, name.upper().replace("CASE", "case"), unique() + "@x.test")
        check_problem(self, r, 409, "username_taken")
        r = register(self.server, unique(), email.lower())
        check_problem(self, r, 409, "email_taken")
        r = register(self.server, unique(), email.upper())
        check_problem(self, r, 409, "email_taken")
        # A refused registration stored nothing: its free email is still free.
        free_email = unique("free") + "@example.test"
        check_problem(self, register(self.server, name, free_email), 409, "username_taken")
        register_ok(self, self.server, unique(), free_email)


class Login(ah.AccountsCase):
    @classmethod
    def extra_args(cls):
        # High enough that no test here locks a name by accident.
        return ["--login-max-failures", "50"]

    def test_login_answer_and_access_token_claims(self):
        name, email, pw, pid = register_ok(self, self.server)
        t0 = int(time.time())
        doc = check_token_pair(self, login(self.server, name, pw), pid, access_ttl=900)
        self.assertNotEqual(doc["access_token"], doc["refresh_token"])
        header, claims = ah.decode_jwt(self, doc["access_token"], self.server.jwt_secret)
        self.assertEqual(claims.get("sub"), pid, claims)
        self.assertIsInstance(claims.get("iat"), int, claims)
        self.assertIsInstance(claims.get("exp"), int, claims)
        self.assertLessEqual(abs(claims["iat"] - t0), 5, claims)
        self.assertEqual(claims["exp"] - claims["iat"], 900, claims)
        self.assertEqual(claims.get("roles"), ["player"], claims)
        # The token is accepted where access tokens are.
        check_json(self, get_settings(self.server, doc["access_token"]), 200)

    def test_login_by_email_and_any_case(self):
        name, email, pw, pid = register_ok(self, self.server, unique("MiXed"),
                                           unique("Who") + "@Example.Test")
        for login_name in (name, name.lower(), name.upper(), email, email.lower(),
                           email.upper()):
            with self.subTest(login_name):
                login_ok(self, self.server, login_name, pw, pid)

    def test_each_login_is_a_new_session(self):
        name, _, pw, pid = register_ok(self, self.server)
        a = login_ok(self, self.server, name, pw, pid)
        b = login_ok(self, self.server, name, pw, pid)
        self.assertNotEqual(a["refresh_token"], b["refresh_token"])

    def test_same_answer_for_unknown_user_and_wrong_password(self):
        name, email, pw, _ = register_ok(self, self.server)
        answers = {
            "wrong password": login(self.server, name, pw + "x"),
            "wrong password by email": login(self.server, email, "not-the-password"),
            "unknown user": login(self.server, unique("ghost"), "not-the-password"),
            "unknown email": login(self.server, unique("ghost") + "@example.test", pw),
            "password of the wrong case": login(self.server, name, pw.upper()),
        }
        docs = {}
        for label, r in answers.items():
            with self.subTest(label):
                docs[label] = check_problem(self, r, 401, "invalid_credentials")
        # "Same answer": the same problem document, whatever request-specific member aside.
        strip = lambda d: {k: v for k, v in d.items() if k not in ("instance", "request_id")}
        self.assertEqual(len({json.dumps(strip(d), sort_keys=True) for d in docs.values()}), 1,
                         docs)

    def test_bad_requests(self):
        name, _, pw, _ = register_ok(self, self.server)
        for label, body in {"no password": {"username": name},
                            "no username": {"password": pw},
                            "password a number": {"username": name, "password": 12345678},
                            "username null": {"username": None, "password": pw},
                            "array": [name, pw]}.items():
            with self.subTest(label):
                check_problem(self, post(self.server, "/login", body), 400, "invalid_request")
        # None of those counted as a success or broke anything.
        login_ok(self, self.server, name, pw)


class Lockout(ah.AccountsCase):
    """--login-max-failures 3 --login-lockout 2."""

    FAILURES = 3
    LOCKOUT = 2

    @classmethod
    def extra_args(cls):
        # A queue that holds the concurrent guesses below: this class checks the lockout, not
        # the overload answer (503 busy) that the default bound gives a burst of this size
        # (tests/security/test_hashing_queue.py checks that one).
        return ["--login-max-failures", cls.FAILURES, "--login-lockout", cls.LOCKOUT,
                "--worker-queue", "256"]

    def fail_logins(self, name, n):
        for i in range(n):
            r = login(self.server, name, f"wrong-password-{i}")
            check_problem(self, r, 401, "invalid_credentials")

    def locked(self, name, pw):
        r = login(self.server, name, pw)
        check_problem(self, r, 429, "too_many_attempts")
        return ah.retry_after(self, r, at_most=self.LOCKOUT)

    def test_lockout_refuses_the_right_password_then_ends(self):
        name, email, pw, pid = register_ok(self, self.server)
        self.fail_logins(name, self.FAILURES)
        t_locked = time.monotonic()
        seconds = self.locked(name, pw)  # the right password is refused too
        self.locked(name, "wrong-again")
        self.locked(name.upper(), pw)  # the key is the lower-cased login name
        # Another user is not affected.
        other, _, other_pw, other_pid = register_ok(self, self.server)
        login_ok(self, self.server, other, other_pw, other_pid)
        # Retry-After is enough: once it has passed, the right password works.
        time.sleep(max(0.0, seconds - (time.monotonic() - t_locked)) + 0.3)
        login_ok(self, self.server, name, pw, pid)

    def test_names_are_locked_whether_or_not_they_exist(self):
        ghost = unique("ghost")
        self.fail_logins(ghost, self.FAILURES)
        self.locked(ghost, "whatever-password")
        self.locked(ghost.upper(), "whatever-password")

    def test_name_case_variants_count_together(self):
        name, _, pw, _ = register_ok(self, self.server, unique("Cv"))
        for variant in (name.upper(), name.lower(), name):
            check_problem(self, login(self.server, variant, "wrong-password"), 401,
                          "invalid_credentials")
        self.locked(name.lower(), pw)

    def test_success_clears_the_count(self):
        name, _, pw, pid = register_ok(self, self.server)
        self.fail_logins(name, self.FAILURES - 1)
        login_ok(self, self.server, name, pw, pid)
        self.fail_logins(name, self.FAILURES - 1)
        login_ok(self, self.server, name, pw, pid)  # 4 failures in all, never 3 in a row

    def test_concurrent_failures_do_not_exceed_the_limit(self):
        # "The first N failures answer 401, after that every attempt answers 429": attempts
        # that arrive together (a brute-force client opening many connections) get no more
        # guesses than attempts made one by one.
        attempts = 16
        got = {}
        for label, name in (("existing user", register_ok(self, self.server)[0]),
                            ("unknown name", unique("ghost"))):
            with concurrent.futures.ThreadPoolExecutor(attempts) as pool:
                answers = list(pool.map(
                    lambda i: login(self.server, name, f"guess-{i}-wrong"), range(attempts)))
            got[label] = sorted(r.status for r in answers)
        want = [401] * self.FAILURES + [429] * (attempts - self.FAILURES)
        self.assertEqual(got, {label: want for label in got},
                         f"{attempts} concurrent wrong logins per name")

    def test_failures_are_counted_in_a_window(self):
        name, _, pw, pid = register_ok(self, self.server)
        self.fail_logins(name, self.FAILURES - 1)
        time.sleep(self.LOCKOUT + 0.4)  # the window of the first failure has ended
        self.fail_logins(name, self.FAILURES - 1)
        # FAILURES - 1 failures in the current window: not locked.
        login_ok(self, self.server, name, pw, pid)


class AuthRateLimit(ah.AccountsCase):
    """--auth-rate-limit 5: five requests per minute per client IP over POST /register, /login,
    /token/refresh and /logout together; the sixth is 429 rate_limited."""

    @classmethod
    def extra_args(cls):
        return ["--auth-rate-limit", "5"]

    def test_sixth_request_in_a_minute_is_429(self):
        s = self.server
        name, _, pw, pid = register_ok(self, s)                          # 1
        pair = login_ok(self, s, name, pw, pid)                          # 2
        check_problem(self, login(s, name, "wrong-password"), 401)       # 3
        pair = check_token_pair(self, refresh(s, pair["refresh_token"]))  # 4
        check_problem(self, login(s, unique("ghost"), "x" * 10), 401)    # 5
        r = login(s, name, pw)                                           # 6
        check_problem(self, r, 429, "rate_limited")
        ah.retry_after(self, r, at_most=60)
        for label, r in {"register": register(s, unique()),
                         "refresh": refresh(s, pair["refresh_token"]),
                         "logout": logout(s, pair["refresh_token"])}.items():
            with self.subTest(label):
                check_problem(self, r, 429, "rate_limited")
                ah.retry_after(self, r, at_most=60)
        # Only those four endpoints: settings and the rest answer as usual.
        check_json(self, get_settings(s, pair["access_token"]), 200)
        self.assertEqual(s.http("GET", "/health")[0], 200)


class Refresh(ah.AccountsCase):
    def session(self):
        name, _, pw, pid = register_ok(self, self.server)
        return name, pw, pid, login_ok(self, self.server, name, pw, pid)

    def test_rotation_chain(self):
        _, _, pid, first = self.session()
        tokens = [first["refresh_token"]]
        for _ in range(3):
            doc = check_token_pair(self, refresh(self.server, tokens[-1]), pid, access_ttl=900)
            self.assertNotIn(doc["refresh_token"], tokens)
            _, claims = ah.decode_jwt(self, doc["access_token"], self.server.jwt_secret)
            self.assertEqual(claims.get("sub"), pid)
            check_json(self, get_settings(self.server, doc["access_token"]), 200)
            tokens.append(doc["refresh_token"])
        # Each presented token stopped working.
        check_problem(self, refresh(self.server, tokens[0]), 401, "invalid_token")

    def test_reuse_revokes_the_family(self):
        _, _, pid, first = self.session()
        r1 = first["refresh_token"]
        r2 = check_token_pair(self, refresh(self.server, r1), pid)["refresh_token"]
        r3 = check_token_pair(self, refresh(self.server, r2), pid)["refresh_token"]
        # r2 again: already rotated -> 401, and the whole family goes, the newest token too.
        check_problem(self, refresh(self.server, r2), 401, "invalid_token")
        check_problem(self, refresh(self.server, r3), 401, "invalid_token")
        check_problem(self, refresh(self.server, r1), 401, "invalid_token")

    def test_reuse_leaves_other_sessions_alone(self):
        name, pw, pid, a = self.session()
        b = login_ok(self, self.server, name, pw, pid)
        a2 = check_token_pair(self, refresh(self.server, a["refresh_token"]), pid)
        check_problem(self, refresh(self.server, a["refresh_token"]), 401, "invalid_token")
        check_problem(self, refresh(self.server, a2["refresh_token"]), 401, "invalid_token")
        check_token_pair(self, refresh(self.server, b["refresh_token"]), pid)

    def test_unknown_and_wrong_kind_of_token(self):
        _, _, _, first = self.session()
        for label, token in {"garbage": "not-a-refresh-token",
                             "an access token": first["access_token"],
                             "a long random string": "r" * 200,
                             "empty": "",
                             "the refresh token altered": altered(first["refresh_token"])
                             }.items():
            with self.subTest(label):
                check_problem(self, refresh(self.server, token), 401, "invalid_token")
        check_token_pair(self, refresh(self.server, first["refresh_token"]))

    def test_bad_requests(self):
        for label, body in {"no refresh_token": {}, "a number": {"refresh_token": 5},
                            "null": {"refresh_token": None}, "an array": ["x"],
                            "other field": {"token": "x"}}.items():
            with self.subTest(label):
                check_problem(self, post(self.server, "/token/refresh", body), 400,
                              "invalid_request")


class Logout(ah.AccountsCase):
    def session(self):
        name, _, pw, pid = register_ok(self, self.server)
        return name, pw, pid, login_ok(self, self.server, name, pw, pid)

    def test_logout_ends_the_session(self):
        name, pw, pid, a = self.session()
        b = login_ok(self, self.server, name, pw, pid)
        r = logout(self.server, a["refresh_token"])
        self.assertEqual(r.status, 204, r)
        self.assertEqual(r.body, b"", r)
        check_problem(self, refresh(self.server, a["refresh_token"]), 401, "invalid_token")
        check_problem(self, logout(self.server, a["refresh_token"]), 401, "invalid_token")
        # Only that session: the other one still refreshes.
        check_token_pair(self, refresh(self.server, b["refresh_token"]), pid)

    def test_logout_with_a_rotated_family_member(self):
        _, _, pid, a = self.session()
        a2 = check_token_pair(self, refresh(self.server, a["refresh_token"]), pid)
        self.assertEqual(logout(self.server, a2["refresh_token"]).status, 204)
        check_problem(self, refresh(self.server, a2["refresh_token"]), 401, "invalid_token")

    def test_errors(self):
        _, _, _, a = self.session()
        check_problem(self, logout(self.server, "not-a-refresh-token"), 401, "invalid_token")
        # Present but empty is a token that is not valid, not a missing one.
        check_problem(self, logout(self.server, ""), 401, "invalid_token")
        check_problem(self, logout(self.server, a["access_token"]), 401, "invalid_token")
        for label, body in {"no refresh_token": {}, "a number": {"refresh_token": 5},
                            "an array": []}.items():
            with self.subTest(label):
                check_problem(self, post(self.server, "/logout", body), 400, "invalid_request")
        # Still live after all that.
        self.assertEqual(logout(self.server, a["refresh_token"]).status, 204)


class Settings(ah.AccountsCase):
    def account(self):
        name, _, pw, pid = register_ok(self, self.server, unique("Set"))
        pair = login_ok(self, self.server, name, pw, pid)
        return name, pw, pid, pair

    def settings(self, token):
        return check_json(self, get_settings(self.server, token), 200)

    def assert_settings(self, doc, display_name, preferences):
        self.assertEqual(doc.get("display_name"), display_name, doc)
        self.assertEqual(doc.get("preferences"), preferences, doc)
        self.assertFalse([k for k in doc if "password" in k.lower()], doc)

    def test_defaults(self):
        name, _, _, pair = self.account()
        self.assert_settings(self.settings(pair["access_token"]), name, {})

    def test_patch_is_a_json_merge_patch(self):
        name, _, _, pair = self.account()
        tok = pair["access_token"]
        r = patch_settings(self.server, tok, {"display_name": "Neo"})
        self.assert_settings(check_json(self, r, 200), "Neo", {})
        r = patch_settings(self.server, tok, {"preferences": {"a": 1, "b": {"c": 2, "k": [1]},
                                                              "z": "keep"}})
        self.assert_settings(check_json(self, r, 200), "Neo",
                             {"a": 1, "b": {"c": 2, "k": [1]}, "z": "keep"})
        # RFC 7396: nested objects merge, null removes a member, arrays are replaced.
        r = patch_settings(self.server, tok, {"preferences": {"a": None, "b": {"c": None, "d": 3,
                                                                               "k": [2]},
                                                              "e": True}},
                           content_type="application/merge-patch+json")
        want = {"b": {"d": 3, "k": [2]}, "z": "keep", "e": True}
        self.assert_settings(check_json(self, r, 200), "Neo", want)
        self.assert_settings(self.settings(tok), "Neo", want)
        # An empty patch changes nothing.
        self.assert_settings(check_json(self, patch_settings(self.server, tok, {}), 200), "Neo",
                             want)
        # null resets: display_name to the username, preferences to {}.
        r = patch_settings(self.server, tok, {"display_name": None})
        self.assert_settings(check_json(self, r, 200), name, want)
        r = patch_settings(self.server, tok, {"preferences": None})
        self.assert_settings(check_json(self, r, 200), name, {})
        self.assert_settings(self.settings(tok), name, {})

    def test_put_replaces(self):
        name, _, _, pair = self.account()
        tok = pair["access_token"]
        check_json(self, patch_settings(self.server, tok, {"display_name": "Trin",
                                                           "preferences": {"a": 1, "b": 2}}), 200)
        r = put_settings(self.server, tok, {"preferences": {"c": 3}})
        self.assert_settings(check_json(self, r, 200), name, {"c": 3})
        r = put_settings(self.server, tok, {"display_name": "Morph"})
        self.assert_settings(check_json(self, r, 200), "Morph", {})
        r = put_settings(self.server, tok, {"display_name": "Both", "preferences": {"x": [1]}})
        self.assert_settings(check_json(self, r, 200), "Both", {"x": [1]})
        r = put_settings(self.server, tok, {})
        self.assert_settings(check_json(self, r, 200), name, {})
        self.assert_settings(self.settings(tok), name, {})

    def test_display_name_rules(self):
        _, _, _, pair = self.account()
        tok = pair["access_token"]
        for value in ("x", "\u00e9" * 32, "\U0001F600" * 32, "a b c", "x" * 32):
            with self.subTest(valid=f"{value[:1]!r}x{len(value)}"):
                body = json.dumps({"display_name": value}, ensure_ascii=False)
                r = patch_settings(self.server, tok, body)
                self.assertEqual(check_json(self, r, 200).get("display_name"), value)
        before = self.settings(tok)
        for value in ("", "x" * 33, "\u00e9" * 33, 5, True, ["x"], {"n": "x"}):
            for method in (patch_settings, put_settings):
                with self.subTest(invalid=repr(value)[:20], method=method.__name__):
                    body = json.dumps({"display_name": value}, ensure_ascii=False)
                    check_problem(self, method(self.server, tok, body), 400, "invalid_request")
        self.assertEqual(self.settings(tok), before, "a refused request changed nothing")

    def test_preferences_rules(self):
        _, _, _, pair = self.account()
        tok = pair["access_token"]
        for value in ("x", 5, [1, 2], True):
            for method in (patch_settings, put_settings):
                with self.subTest(value=value, method=method.__name__):
                    check_problem(self, method(self.server, tok, {"preferences": value}), 400,
                                  "invalid_request")
        # At most 16 KiB as serialized JSON: {"k":"..."} is 8 bytes around the string.
        limit = 16 * 1024
        at_limit = {"k": "v" * (limit - 8)}
        self.assertEqual(len(json.dumps(at_limit, separators=(",", ":"))), limit)
        over = {"k": "v" * (limit - 7)}
        for method in (put_settings, patch_settings):
            with self.subTest("at the limit", method=method.__name__):
                r = method(self.server, tok, {"preferences": at_limit})
                self.assertEqual(check_json(self, r, 200).get("preferences"), at_limit)
                check_json(self, put_settings(self.server, tok, {}), 200)
            with self.subTest("one byte over", method=method.__name__):
                check_problem(self, method(self.server, tok, {"preferences": over}), 400,
                              "invalid_request")
        self.assertEqual(self.settings(tok).get("preferences"), {})

    def test_merged_preferences_stay_within_16_kib(self):
        # Each patch is small enough; what would be stored is not.
        _, _, _, pair = self.account()
        tok = pair["access_token"]
        half = "v" * (10 * 1024)
        check_json(self, patch_settings(self.server, tok, {"preferences": {"a": half}}), 200)
        r = patch_settings(self.server, tok, {"preferences": {"b": half}})
        check_problem(self, r, 400, "invalid_request")
        self.assertEqual(self.settings(tok).get("preferences"), {"a": half})

    def test_unknown_fields_and_non_objects(self):
        name, _, _, pair = self.account()
        tok = pair["access_token"]
        for method in (patch_settings, put_settings):
            for label, body in {"unknown field": {"display_name": "Z", "color": "red"},
                                "username": {"username": "other"},
                                "player_id": {"player_id": "x"},
                                "array": [], "string": '"x"', "null": "null",
                                "number": "3"}.items():
                with self.subTest(label, method=method.__name__):
                    check_problem(self, method(self.server, tok, body), 400, "invalid_request")
        self.assert_settings(self.settings(tok), name, {})

    def test_auth(self):
        s = self.server
        _, _, _, pair = self.account()
        now = int(time.time())
        tokens = {
            "wrong secret": h.mint_jwt("not-the-secret", h.player_claims("p")),
            "alg none": h.mint_jwt(s.jwt_secret, h.player_claims("p"), alg="none"),
            "expired": h.mint_jwt(s.jwt_secret, {"sub": "p", "iat": now - 120, "exp": now - 60}),
            "garbage": "garbage",
            "refresh token": pair["refresh_token"],
        }
        for method, body in (("GET", None), ("PATCH", {"display_name": "x"}),
                             ("PUT", {"display_name": "x"})):
            with self.subTest("no Authorization", method=method):
                check_problem(self, request(s, method, "/player/settings", body), 401,
                              "unauthorized")
            with self.subTest("Basic", method=method):
                r = request(s, method, "/player/settings", body,
                            headers={"Authorization": "Basic dXNlcjpwYXNz"})
                check_problem(self, r, 401, "unauthorized")
            for label, token in tokens.items():
                with self.subTest(label, method=method):
                    check_problem(self, request(s, method, "/player/settings", body, token=token),
                                  401, "unauthorized")

    def test_token_of_a_player_without_account_is_404(self):
        r = get_settings(self.server, self.server.token("minted-by-a-backend"))
        check_problem(self, r, 404, "not_found")

    def test_a_minted_token_for_an_account_is_accepted(self):
        # "Any such token that verifies and is unexpired is accepted".
        name, _, pid, _ = self.account()
        doc = self.settings(h.mint_jwt(self.server.jwt_secret, h.player_claims(pid)))
        self.assertEqual(doc.get("display_name"), name)


class PasswordChange(ah.AccountsCase):
    def account(self):
        name, _, pw, pid = register_ok(self, self.server)
        return name, pw, pid, login_ok(self, self.server, name, pw, pid)

    def test_patch_changes_the_password_and_revokes_refresh_tokens(self):
        name, pw, pid, a = self.account()
        b = login_ok(self, self.server, name, pw, pid)  # a second session
        b2 = check_token_pair(self, refresh(self.server, b["refresh_token"]), pid)
        new_pw = "new-" + ah.password()
        r = patch_settings(self.server, a["access_token"],
                           {"current_password": pw, "new_password": new_pw,
                            "display_name": "Renamed"})
        doc = check_json(self, r, 200)
        self.assertEqual(doc.get("display_name"), "Renamed", r)
        self.assertEqual(doc.get("preferences"), {}, r)
        self.assertNotIn(pw, r.body.decode())
        self.assertNotIn(new_pw, r.body.decode())
        for label, token in {"session a": a["refresh_token"],
                             "session b": b2["refresh_token"]}.items():
            with self.subTest(label):
                check_problem(self, refresh(self.server, token), 401, "invalid_token")
        check_problem(self, login(self.server, name, pw), 401, "invalid_credentials")
        login_ok(self, self.server, name, new_pw, pid)

    def test_wrong_current_password_is_403_and_changes_nothing(self):
        name, pw, pid, a = self.account()
        for method in (patch_settings, put_settings):
            with self.subTest(method=method.__name__):
                r = method(self.server, a["access_token"],
                           {"current_password": pw + "x", "new_password": "another-password",
                            "display_name": "Nope", "preferences": {"x": 1}})
                check_problem(self, r, 403, "wrong_password")
        doc = check_json(self, get_settings(self.server, a["access_token"]), 200)
        self.assertEqual((doc.get("display_name"), doc.get("preferences")), (name, {}))
        check_token_pair(self, refresh(self.server, a["refresh_token"]), pid)
        login_ok(self, self.server, name, pw, pid)
        check_problem(self, login(self.server, name, "another-password"), 401)

    def test_put_changes_the_password(self):
        name, pw, pid, a = self.account()
        new_pw = "put-" + ah.password()
        r = put_settings(self.server, a["access_token"],
                         {"current_password": pw, "new_password": new_pw,
                          "preferences": {"p": 1}})
        doc = check_json(self, r, 200)
        self.assertEqual((doc.get("display_name"), doc.get("preferences")), (name, {"p": 1}))
        check_problem(self, refresh(self.server, a["refresh_token"]), 401, "invalid_token")
        check_problem(self, login(self.server, name, pw), 401)
        login_ok(self, self.server, name, new_pw, pid)

    def test_invalid_password_fields(self):
        name, pw, pid, a = self.account()
        cases = {
            "only current_password": {"current_password": pw},
            "only new_password": {"new_password": "another-password"},
            "new password too short": {"current_password": pw, "new_password": "short"},
            "new password too long": {"current_password": pw, "new_password": "x" * 129},
            "new password a number": {"current_password": pw, "new_password": 123456789},
            "current password a number": {"current_password": 5, "new_password": "abcdefghij"},
            "new password null": {"current_password": pw, "new_password": None},
        }
        for method in (patch_settings, put_settings):
            for label, body in cases.items():
                with self.subTest(label, method=method.__name__):
                    check_problem(self, method(self.server, a["access_token"], body), 400,
                                  "invalid_request")
        # The password did not change, the session lives.
        check_token_pair(self, refresh(self.server, a["refresh_token"]), pid)
        login_ok(self, self.server, name, pw, pid)


class ShortLifetimes(ah.AccountsCase):
    """--access-ttl 2 --refresh-ttl 3."""

    @classmethod
    def extra_args(cls):
        return ["--access-ttl", "2", "--refresh-ttl", "3"]

    def test_tokens_expire(self):
        name, _, pw, pid = register_ok(self, self.server)
        first = check_token_pair(self, login(self.server, name, pw), pid, access_ttl=2)
        _, claims = ah.decode_jwt(self, first["access_token"], self.server.jwt_secret)
        self.assertEqual(claims["exp"] - claims["iat"], 2, claims)
        check_json(self, get_settings(self.server, first["access_token"]), 200)
        second = check_token_pair(self, refresh(self.server, first["refresh_token"]), pid,
                                  access_ttl=2)
        refreshed_at = time.monotonic()
        # Past the access token's exp (exp <= now is expired) and the refresh token's 3 s.
        time.sleep(max(claims["exp"] + 0.6 - time.time(),
                       3.6 - (time.monotonic() - refreshed_at), 0))
        check_problem(self, get_settings(self.server, first["access_token"]), 401,
                      "unauthorized")
        check_problem(self, refresh(self.server, second["refresh_token"]), 401, "invalid_token")
        check_problem(self, logout(self.server, second["refresh_token"]), 401, "invalid_token")
        # The account itself is fine.
        login_ok(self, self.server, name, pw, pid)


class BadInput(ah.AccountsCase):
    """Section 2's "Bad input" paragraph on the accounts endpoints."""

    BODY_ENDPOINTS = [("POST", "/register"), ("POST", "/login"), ("POST", "/token/refresh"),
                      ("POST", "/logout"), ("PATCH", "/player/settings"),
                      ("PUT", "/player/settings")]

    def token(self):
        _, _, _, pid = register_ok(self, self.server)
        return h.mint_jwt(self.server.jwt_secret, h.player_claims(pid))

    def test_unparsable_json_is_400_invalid_json(self):
        tok = self.token()
        bodies = {"truncated": '{"username": "a', "not json": "hello", "trailing": '{"a":1} x',
                  "single quotes": "{'a': 1}", "empty": "", "bad escape": '{"a":"\\q"}',
                  "invalid utf-8": b'{"username": "\xff\xfe"}'}
        for method, path in self.BODY_ENDPOINTS:
            for label, body in bodies.items():
                with self.subTest(label, endpoint=f"{method} {path}"):
                    r = request(self.server, method, path, body, token=tok)
                    if label == "invalid utf-8":
                        # Not JSON text (RFC 8259 s. 8.1); a server may also call it a bad field.
                        check_problem(self, r, 400)
                        self.assertIn(r.json.get("code"), ("invalid_json", "invalid_request"), r)
                    else:
                        check_problem(self, r, 400, "invalid_json")

    def test_content_type(self):
        tok = self.token()
        name = unique()
        good = {"username": name, "email": name + "@example.test", "password": "correct horse"}
        for method, path in self.BODY_ENDPOINTS:
            for ctype in ("text/plain", "application/x-www-form-urlencoded",
                          "application/jsonx", None):
                with self.subTest(ctype, endpoint=f"{method} {path}"):
                    r = request(self.server, method, path, json.dumps(good), token=tok,
                                content_type=ctype)
                    check_problem(self, r, 415, "unsupported_media_type")
        # merge-patch+json is for PATCH only.
        for method, path in self.BODY_ENDPOINTS:
            if method == "PATCH":
                continue
            with self.subTest("merge-patch", endpoint=f"{method} {path}"):
                r = request(self.server, method, path, json.dumps(good), token=tok,
                            content_type="application/merge-patch+json")
                check_problem(self, r, 415, "unsupported_media_type")
        # Parameters and case do not matter.
        for ctype in ("application/json; charset=utf-8", "Application/JSON"):
            with self.subTest(ctype):
                name = unique()
                r = post(self.server, "/register", {"username": name,
                                                    "email": name + "@example.test",
                                                    "password": "correct horse"},
                         content_type=ctype)
                check_json(self, r, 201)
        r = patch_settings(self.server, tok, {"display_name": "cs"},
                           content_type="application/merge-patch+json; charset=utf-8")
        check_json(self, r, 200)

    def test_body_size_limit(self):
        name = unique()
        good = {"username": name, "email": name + "@example.test", "password": "correct horse"}
        # N bytes are accepted ...
        check_json(self, post(self.server, "/register", padded_json(good, MAX_BODY)), 201)
        # ... N+1 are not, on every body endpoint.
        tok = self.token()
        for method, path in self.BODY_ENDPOINTS:
            with self.subTest(endpoint=f"{method} {path}"):
                name = unique()
                body = padded_json({"username": name, "email": name + "@example.test",
                                    "password": "correct horse"}, MAX_BODY + 1)
                r = request(self.server, method, path, body, token=tok)
                check_problem(self, r, 413, "payload_too_large")

    def test_unknown_path_is_404(self):
        for method, path in (("GET", "/no/such/path"), ("POST", "/register/x"),
                             ("POST", "/registers"), ("GET", "/player/settings/x"),
                             ("GET", "/player"), ("POST", "/token"), ("POST", "/token/refresh/x"),
                             ("GET", "/sse/player/x")):
            with self.subTest(f"{method} {path}"):
                r = request(self.server, method, path, {} if method == "POST" else None)
                check_problem(self, r, 404, "not_found")

    def test_wrong_method_is_405_with_allow(self):
        tok = self.token()
        cases = [("GET", "/register", {"POST"}), ("PUT", "/register", {"POST"}),
                 ("GET", "/login", {"POST"}), ("DELETE", "/login", {"POST"}),
                 ("GET", "/token/refresh", {"POST"}), ("GET", "/logout", {"POST"}),
                 ("POST", "/player/settings", {"GET", "PATCH", "PUT"}),
                 ("DELETE", "/player/settings", {"GET", "PATCH", "PUT"}),
                 ("GET", "/commands", {"POST"}), ("POST", "/sse/player", {"GET"})]
        for method, path, allowed in cases:
            with self.subTest(f"{method} {path}"):
                r = request(self.server, method, path,
                            {} if method in ("POST", "PUT", "PATCH") else None, token=tok)
                check_problem(self, r, 405, "method_not_allowed")
                got = ah.allow_set(r)
                self.assertTrue(allowed <= got, f"Allow {r.headers.get('allow')!r} lacks "
                                                f"{sorted(allowed - got)} ({r!r})")
                self.assertNotIn(method, got, r)


class HostileJson(ah.AccountsCase):
    """Deeply nested JSON within --max-message-bytes: a production gateway answers it (200, or a
    400 such as POST /commands' "nested too deeply") and keeps serving; it must not crash."""

    DEPTH = 20000  # 40 KB of brackets

    def account_token(self):
        name, _, pw, pid = register_ok(self, self.server)
        return login_ok(self, self.server, name, pw, pid)["access_token"]

    def assert_survives(self, r):
        self.assertIn(r.status, (200, 400), r)
        if r.status == 400:
            check_problem(self, r, 400)
        status, _, body = self.server.http("GET", "/health")
        self.assertEqual(status, 200, body)

    def send(self, method, path, body, token=None):
        try:
            return request(self.server, method, path, body, token=token)
        except OSError as e:  # the server closed the connection without answering
            alive = self.server.proc.poll() is None
            self.fail(f"{method} {path} with {len(body)} bytes of nested JSON: no answer ({e}); "
                      f"server {'alive' if alive else 'exited'}; sanitizer: "
                      f"{(self.server.sanitizer_report() or 'none')[:600]}")

    def test_nested_preferences(self):
        tok = self.account_token()
        arrays = "[" * self.DEPTH + "]" * self.DEPTH
        objects = '{"a":' * (self.DEPTH // 3) + "1" + "}" * (self.DEPTH // 3)
        for label, nest in (("arrays", arrays), ("objects", objects)):
            for method in ("PATCH", "PUT"):
                with self.subTest(label, method=method):
                    body = '{"preferences":{"deep":' + nest + '}}'
                    self.assertLess(len(body), MAX_BODY)
                    self.assert_survives(self.send(method, "/player/settings", body, tok))
                    r = get_settings(self.server, tok)
                    self.assertEqual(r.status, 200, r)

    def test_nested_junk_in_account_requests(self):
        nest = "[" * self.DEPTH + "]" * self.DEPTH
        for path, body in (("/register", '{"username":"abc","junk":' + nest + '}'),
                           ("/login", '{"username":' + nest + '}'),
                           ("/token/refresh", '{"refresh_token":' + nest + '}'),
                           ("/logout", '{"x":' + nest + '}')):
            with self.subTest(path):
                r = self.send("POST", path, body)
                self.assertEqual(r.status, 400, r)
                self.assert_survives(r)


class StoreFlags(unittest.TestCase):
    """--db: a store survives a restart (set through its GATEHOUSE_DB twin here); a malformed
    URL exits 2, an unreachable database 1, neither repeating the URL's password."""

    def test_users_and_sessions_survive_a_restart(self):
        db = ah.TempDb()
        secret = "s3cr3t-" + os.urandom(8).hex()
        args = ["--listen", "127.0.0.1:0", "--jwt-secret", secret, "--shutdown-timeout", "3",
                *ah.FAST_HASHING, *ah.NO_AUTH_RATE_LIMIT]
        try:
            first = h.Server(*args, default_args=False, jwt_secret=secret,
                             env={"GATEHOUSE_DB": db.url}).start()
            try:
                name, _, pw, pid = register_ok(self, first)
                pair = login_ok(self, first, name, pw, pid)
                check_json(self, patch_settings(first, pair["access_token"],
                                                {"display_name": "Kept"}), 200)
            finally:
                self.assertEqual(first.stop(), 0, first.stderr_text()[-1000:])
            second = h.Server(*args, default_args=False, jwt_secret=secret,
                              env={"GATEHOUSE_DB": db.url}).start()
            try:
                # The access token still verifies (same secret), the account and its settings
                # are there, the session still refreshes, the username is still taken.
                doc = check_json(self, get_settings(second, pair["access_token"]), 200)
                self.assertEqual(doc.get("display_name"), "Kept")
                check_token_pair(self, refresh(second, pair["refresh_token"]), pid)
                login_ok(self, second, name, pw, pid)
                check_problem(self, register(second, name.upper(), unique() + "@x.test"), 409,
                              "username_taken")
            finally:
                self.assertEqual(second.stop(), 0, second.stderr_text()[-1000:])
            self.assertIsNone(first.sanitizer_report() or second.sanitizer_report())
        finally:
            db.close()

    def run_to_exit(self, how, url):
        argv = [h.SERVER_BINARY, "--listen", "127.0.0.1:0", "--jwt-secret", "x" * 32]
        env = h._clean_env()
        if how == "flag":
            argv += ["--db", url]
        else:
            env["GATEHOUSE_DB"] = url
        return subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, timeout=30,
                              env=env)

    def test_malformed_store_urls_exit_2_without_their_password(self):
        for url in ("postgresql://gatehouse:s3cret-pw@[::1/gatehouse",
                    "postgresql://gatehouse:s3cret-pw@127.0.0.1/x?pool_size=0",
                    "mysql://gatehouse:s3cret-pw@127.0.0.1/x", "sqlite://users.db"):
            for how in ("flag", "env"):
                with self.subTest(url=url, how=how):
                    p = self.run_to_exit(how, url)
                    self.assertEqual(p.returncode, 2, p.stderr[-1000:])
                    self.assertNotIn(b"gatehouse ready", p.stdout)
                    self.assertNotIn(b"s3cret", p.stderr + p.stdout)

    def test_an_unreachable_postgresql_exits_1_without_its_password(self):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        url = f"postgresql://gatehouse:s3cret-pw@127.0.0.1:{port}/gatehouse"
        started = time.monotonic()
        p = self.run_to_exit("flag", url)
        self.assertLess(time.monotonic() - started, 20)
        self.assertEqual(p.returncode, 1, p.stderr[-1000:])
        self.assertNotIn(b"gatehouse ready", p.stdout)
        self.assertIn(b"cannot connect", p.stderr, p.stderr[-1000:])
        self.assertIn(f"gatehouse@127.0.0.1:{port}/gatehouse".encode(), p.stderr)
        self.assertNotIn(b"s3cret", p.stderr + p.stdout)


if __name__ == "__main__":
    h.run_main()
