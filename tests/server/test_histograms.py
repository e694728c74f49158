#!/usr/bin/env python3
"""gatehouse-server's latency histograms on /metrics (docs/operations.md, Metrics): after
commands over WebSocket and POST /commands, a logged update, a registration, logins and an HTTP
request that failed, every histogram family is there, typed `histogram`, each series
consistent (buckets cumulative, `le` increasing, `+Inf` == `_count`), and the counts grew by
what was done (HTTP durations by route pattern and status).

Usage: test_histograms.py PATH/TO/gatehouse-server [unittest args]

One redis-server (redis_fixture.py) and one gatehouse-server on it, so that the Redis round
trip is a real one.
"""

import asyncio
import json
import math

import gatehouse_harness as h
from gatehouse_harness import Client
import accounts_helpers as ah
import redis_helpers as rh

HISTOGRAMS = (
    "gatehouse_http_request_duration_seconds",
    "gatehouse_command_ack_seconds",
    "gatehouse_update_delivery_seconds",
    "gatehouse_redis_roundtrip_seconds",
    "gatehouse_password_hash_seconds",
)


def series(parsed, family):
    """{labels without le (as a sorted tuple): {"buckets": [(le, v)], "sum": s, "count": c}}."""
    out = {}
    for name, labels, value in parsed["samples"]:
        if name not in (family + "_bucket", family + "_sum", family + "_count"):
            continue
        key = tuple(sorted((k, v) for k, v in labels.items() if k != "le"))
        s = out.setdefault(key, {"buckets": [], "sum": None, "count": None})
        if name.endswith("_bucket"):
            s["buckets"].append((labels["le"], value))
        elif name.endswith("_sum"):
            s["sum"] = value
        else:
            s["count"] = value
    return out


def count(parsed, family, **labels):
    """The count of the series with exactly these labels; 0 before its first observation (the
    HTTP durations' series appear with their route and status)."""
    want = tuple(sorted((k, str(v)) for k, v in labels.items()))
    s = series(parsed, family).get(want)
    return 0 if s is None else s["count"]


class Histograms(rh.OneRedisGateway):
    def check_consistent(self, parsed, first=False):
        """Every histogram series on /metrics is a well-formed Prometheus histogram. On the
        `first` scrape the HTTP durations may have no series yet (none was answered)."""
        for family in HISTOGRAMS:
            if first and family == "gatehouse_http_request_duration_seconds":
                continue
            self.assertEqual(parsed["types"].get(family), "histogram", family)
            found = series(parsed, family)
            self.assertTrue(found, f"{family} has no series")
            for key, s in found.items():
                where = f"{family}{dict(key)}"
                les = [le for le, _ in s["buckets"]]
                self.assertEqual(les[-1], "+Inf", where)
                bounds = [float(le) for le in les[:-1]]
                self.assertEqual(bounds, sorted(set(bounds)), f"{where}: le not increasing")
                values = [v for _, v in s["buckets"]]
                self.assertEqual(values, sorted(values), f"{where}: buckets not cumulative")
                self.assertEqual(values[-1], s["count"], f"{where}: +Inf bucket != _count")
                self.assertIsNotNone(s["sum"], where)
                self.assertTrue(math.isfinite(s["sum"]) and s["sum"] >= 0, where)
                if s["count"] == 0:
                    self.assertEqual(s["sum"], 0, where)

    def fcall_publish(self, message):
        return self.r.execute_command("FCALL", "gatehouse_publish", 0, self.channel,
                                      json.dumps(message))

    async def test_histograms_count_what_was_done(self):
        before = self.server.metrics()
        self.check_consistent(before, first=True)

        # Three commands over a WebSocket, one over POST /commands.
        c = await Client.player(self.server, "hist-ws")
        try:
            for i in range(3):
                ack = await c.command(correlation_id=f"h-{i}")
                rh.check_ack(self, ack, f"h-{i}")
            r = await asyncio.to_thread(ah.post, self.server, "/commands",
                                        {"type": "player_action", "payload": 1},
                                        token=self.server.token("hist-http"))
            ah.check_json(self, r, 202)

            # A logged update for the connected player: its id carries its publish time.
            await asyncio.to_thread(self.fcall_publish, {"player_id": "hist-ws", "type": "news",
                                                         "payload": {"n": 1}})
            got = await c.recv_until(lambda e: e.get("type") == "news")
            self.assertIn("update_id", got[-1])
        finally:
            await c.close()

        # An account: one hash (register), two verifies (a good and a bad login).
        username, _, password, _ = await asyncio.to_thread(ah.register_ok, self, self.server)
        await asyncio.to_thread(ah.login_ok, self, self.server, username, password)
        r = await asyncio.to_thread(ah.login, self.server, username, password + "-wrong")
        ah.check_problem(self, r, 401)

        # A request that failed.
        status, _, _ = await asyncio.to_thread(self.server.http, "GET", "/no-such-route")
        self.assertEqual(status, 404)

        after = self.server.metrics()
        self.check_consistent(after)

        def grew(family, by, **labels):
            got = count(after, family, **labels) - count(before, family, **labels)
            self.assertGreaterEqual(got, by, f"{family}{labels} grew by {got}")
            return got

        self.assertEqual(grew("gatehouse_command_ack_seconds", 3, transport="ws"), 3)
        self.assertEqual(grew("gatehouse_command_ack_seconds", 1, transport="http"), 1)
        self.assertEqual(grew("gatehouse_update_delivery_seconds", 1), 1)
        # Four appends (batched or not) and the logged publish: at least two replies.
        grew("gatehouse_redis_roundtrip_seconds", 2)
        self.assertEqual(grew("gatehouse_password_hash_seconds", 1, operation="hash"), 1)
        self.assertEqual(grew("gatehouse_password_hash_seconds", 2, operation="verify"), 2)
        # Every HTTP answer under its route pattern and status; an unknown path as `other`.
        http = "gatehouse_http_request_duration_seconds"
        self.assertEqual(grew(http, 1, route="other", status=404), 1)
        self.assertEqual(grew(http, 1, route="/commands", status=202), 1)
        self.assertEqual(grew(http, 1, route="/register", status=201), 1)
        self.assertEqual(grew(http, 1, route="/login", status=200), 1)
        self.assertEqual(grew(http, 1, route="/login", status=401), 1)
        # The scrape before this one was answered, and timed, too.
        grew(http, 1, route="/metrics", status=200)
        # On loopback an ack takes well under ten seconds: every ack is in a finite bucket.
        ws = series(after, "gatehouse_command_ack_seconds")[(("transport", "ws"),)]
        self.assertEqual(dict(ws["buckets"])["10"], ws["count"])


if __name__ == "__main__":
    h.run_main()
