#!/usr/bin/env python3
"""Malformed update messages (a probe that already passed when issue 14 was filed; kept as a
regression test), against the real server on a Redis of the test's own.

A publisher that floods the updates channel with hostile messages (garbage, invalid UTF-8, a
nesting bomb, a 1 MiB blob, wrong shapes) must not stop the listener nor reach any client: each
is dropped and counted in `gatehouse_updates_malformed_total`, logged by size and reason but
never by content, and a valid update published after them is delivered.
tests/server/test_redis_bus.py checks each malformed shape once; this is the flood.

Usage: test_malformed_updates.py PATH/TO/gatehouse-server [unittest args]
"""

import asyncio
import json
import os
import secrets
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "server"))
import gatehouse_harness as h  # noqa: E402
import redis_helpers as rh  # noqa: E402

ROUNDS = 100


class MalformedFlood(rh.OneRedisGateway):
    """The server on a Redis of the test's own (tests/server/redis_helpers.py)."""

    async def test_flood_is_counted_never_logged_and_delivery_goes_on(self):
        marker = "leak" + secrets.token_hex(6)
        small = [
            marker.encode(),
            b"\xff\xfe" + marker.encode(),
            json.dumps({"player_id": "victim", "type": "bad type " + marker}).encode(),
            json.dumps({"type": "t", "payload": marker}).encode(),
            json.dumps({"op": "dance", "player_id": "victim", "room": marker}).encode(),
            json.dumps({"player_id": "victim", "type": "t", "payload": 1}).encode() + b" " +
            marker.encode(),
        ]
        # Large ones a few times only: Redis itself disconnects a subscriber that falls more
        # than 8-32 MB behind (client-output-buffer-limit pubsub), which is not the probe.
        large = [
            b"[" * 100000 + b"]" * 100000,
            b"{" + b'"a":{' * 5000 + b"}" * 5001,
            (marker * 100000)[:1 << 20].encode(),
        ]
        rounds = [(small, ROUNDS), (large, 5)]
        c = await h.Client.player(self.server, "victim", "json")
        try:
            before = self.server.metric("gatehouse_updates_malformed_total")

            def flood():
                for shapes, n in rounds:
                    for _ in range(n):
                        pipe = self.r.pipeline(transaction=False)
                        for m in shapes:
                            pipe.publish(self.channel, m)
                        self.assertEqual(pipe.execute(), [1] * len(shapes), "not subscribed")
            await asyncio.to_thread(flood)
            expected = before + sum(len(shapes) * n for shapes, n in rounds)
            after = await asyncio.to_thread(self.server.wait_metric,
                                            "gatehouse_updates_malformed_total",
                                            lambda v: v >= expected, 20.0)
            self.assertEqual(after, expected)
            self.r.publish(self.channel, json.dumps({"player_id": "victim", "type": "ok",
                                                     "payload": 1}))
            env = await c.recv()
            self.assertEqual((env["type"], env["payload"]), ("ok", 1), "a malformed one arrived")
            log = self.server.stderr_text()
            self.assertIn("dropped a malformed update message of", log)
            self.assertNotIn(marker, log, "malformed content in the log")
        finally:
            await c.close()


if __name__ == "__main__":
    h.run_main()
