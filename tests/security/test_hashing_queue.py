#!/usr/bin/env python3
"""A login flood cannot starve a victim's login (issue 14, item 5), against the real server.

200 concurrent logins from 50 loopback addresses (127.0.0.10-59, four each, so the per-address
limit does not stop them) used to queue 200 Argon2id verifications, and a victim's login behind
them waited for all of them, also for the clients that had given up. Now account requests that
find --worker-queue jobs already waiting answer 503 `busy` with `Retry-After` at once, and a
job that waited past --worker-queue-timeout is not run: the victim, retrying as Retry-After
says, logs in within a few seconds (measured, bounded at 5 s).

Also checked: the flood got some 503 `busy` answers with Retry-After (the bound is what acted),
and a request over the timeout does not run (a flood with a tiny timeout is answered busy).

Usage: test_hashing_queue.py PATH/TO/gatehouse-server [unittest args]
"""

import http.client
import json
import os
import secrets
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "server"))
import gatehouse_harness as h  # noqa: E402
import accounts_helpers as ah  # noqa: E402

FLOOD = 200
ADDRESSES = 50
VICTIM_BOUND_S = 5.0
# Argon2id at the server's default cost (64 MiB, 2 passes): tens of milliseconds per login on one
# worker thread, so 200 queued verifications would take several times the victim's bound, while
# the bounded queue runs only a handful of them.
HASHING = ["--password-hash-kib", "65536", "--password-hash-passes", "2"]


def login_from(port, source, username, password_, results, timeout=30.0):
    """One POST /login from `source`; appends (status, headers, elapsed) to `results` (or the
    exception's name)."""
    start = time.monotonic()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout,
                                      source_address=(source, 0))
    try:
        conn.request("POST", "/login", json.dumps({"username": username, "password": password_}),
                     {"Content-Type": "application/json"})
        resp = conn.getresponse()
        resp.read()
        results.append((resp.status, {k.lower(): v for k, v in resp.getheaders()},
                        time.monotonic() - start))
    except OSError as e:
        results.append((type(e).__name__, {}, time.monotonic() - start))
    finally:
        conn.close()


def flood(port, n=FLOOD, addresses=ADDRESSES):
    """Starts `n` concurrent wrong-password logins for distinct unknown names (each its own
    lockout key) from `addresses` loopback sources; returns (threads, results)."""
    results = []
    threads = []
    barrier = threading.Barrier(n)

    def one(i):
        barrier.wait(timeout=10)
        login_from(port, f"127.0.0.{10 + i % addresses}", f"flood_{i}_{secrets.token_hex(3)}",
                   "wrong-password", results)

    for i in range(n):
        t = threading.Thread(target=one, args=(i,), daemon=True)
        t.start()
        threads.append(t)
    return threads, results


class LoginFlood(ah.AccountsCase):
    @classmethod
    def server_args(cls):
        # One worker thread: the queue is the only thing between the flood and the victim.
        return ["--db", cls.db.url, *HASHING, "--worker-threads", "1", "--auth-rate-limit", "60"]

    def victim_login(self, username, password_, bound):
        """Logs in as a real client would (retrying after 503 as Retry-After says) and returns
        (the final response, seconds taken); fails past `bound`."""
        start = time.monotonic()
        while True:
            r = ah.login(self.server, username, password_)
            elapsed = time.monotonic() - start
            if r.status != 503:
                return r, elapsed
            ah.check_problem(self, r, 503, "busy")
            wait = ah.retry_after(self, r, at_most=5)
            self.assertLess(elapsed + wait, bound,
                            f"the victim is still refused after {elapsed:.2f} s")
            time.sleep(wait)  # what Retry-After asks of a client, not a negative check

    def test_victim_logs_in_within_seconds_during_a_flood(self):
        username, _, pw, player_id = ah.register_ok(self, self.server)
        threads, results = flood(self.server.port)
        # The flood is on its way: let most of it reach the server before the victim tries.
        deadline = time.monotonic() + 5.0
        while len(results) < FLOOD // 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        r, took = self.victim_login(username, pw, VICTIM_BOUND_S)
        ah.check_token_pair(self, r, player_id)
        for t in threads:
            t.join(timeout=60)
        h.note(f"victim logged in {took:.2f} s into a flood of {FLOOD} logins from "
               f"{ADDRESSES} addresses")
        self.assertLess(took, VICTIM_BOUND_S)

        statuses = [s for s, _, _ in results]
        self.assertEqual(len(statuses), FLOOD, "a flood request got no answer at all")
        busy = [hd for s, hd, _ in results if s == 503]
        h.note(f"flood answers: " + ", ".join(f"{s}: {statuses.count(s)}"
                                               for s in sorted(set(statuses), key=str)))
        self.assertGreater(len(busy), FLOOD // 2, "the queue bound did not act")
        for hd in busy:
            self.assertRegex(hd.get("retry-after", ""), r"^[1-9][0-9]*$")
        self.assertTrue(set(statuses) <= {401, 503}, statuses)


class QueueTimeout(ah.AccountsCase):
    """A queue long enough to hold the whole flood, and a deadline shorter than one hash: the
    jobs that waited past it are answered busy without being run."""

    @classmethod
    def server_args(cls):
        return ["--db", cls.db.url, *HASHING, "--worker-threads", "1", "--worker-queue", "1000",
                "--worker-queue-timeout", "0.05", "--auth-rate-limit", "0"]

    def test_jobs_past_their_deadline_are_not_run(self):
        threads, results = flood(self.server.port, n=40, addresses=10)
        start = time.monotonic()
        for t in threads:
            t.join(timeout=60)
        took = time.monotonic() - start
        statuses = [s for s, _, _ in results]
        h.note(f"40 logins at --worker-queue-timeout 0.05 answered in {took:.2f} s: "
               f"{statuses.count(401)} checked, {statuses.count(503)} busy")
        self.assertEqual(len(statuses), 40)
        self.assertTrue(set(statuses) <= {401, 503}, statuses)
        self.assertGreater(statuses.count(503), 20, "jobs past their deadline were run")
        # A login on an idle server still works.
        username, _, pw, player_id = ah.register_ok(self, self.server)
        ah.login_ok(self, self.server, username, pw, player_id)


class QueueFlags(h.AsyncCase):
    def test_bad_timeout_is_a_usage_error(self):
        for value in ("0", "-1", "5000"):
            with self.subTest(value=value):
                s = h.Server("--worker-queue-timeout", value)
                with self.assertRaises(RuntimeError):
                    s.start()


if __name__ == "__main__":
    h.run_main()
