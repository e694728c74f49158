#!/usr/bin/env python3
"""An update larger than the send buffer (issue 14, item 7), against the real server.

A valid update whose frame is larger than `--send-buffer-bytes` used to close the connection of
every recipient as a slow consumer, however promptly it read. Now the gateway refuses such an
update before fan-out: its recipients (WebSocket in JSON and MessagePack, and an event stream)
stay connected and get the updates published after it; the refusal is counted in
`gatehouse_updates_oversized_total` and logged with sizes, never content.

Usage: test_oversized_updates.py PATH/TO/gatehouse-server [unittest args]
"""

import os
import secrets
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "server"))
import gatehouse_harness as h  # noqa: E402
import accounts_helpers as ah  # noqa: E402

SEND_BUFFER = 32768


class OversizedUpdates(h.ServerTestCase):
    @classmethod
    def server_args(cls):
        return ["--send-buffer-bytes", str(SEND_BUFFER), "--max-message-bytes", "262144",
                "--slow-consumer", "close", "--log-level", "debug"]

    async def test_refused_at_the_listener_recipients_stay(self):
        sub = "p_" + secrets.token_hex(8)
        a = await h.Client.player(self.server, sub, codec="json")
        b = await h.Client.player(self.server, sub, codec="msgpack")
        sse = await ah.SseStream.open(self.server, token=self.server.token(sub))
        self.assertEqual(sse.status, 200)
        try:
            before = self.server.metric("gatehouse_updates_oversized_total")
            closed_before = self.server.metric("gatehouse_slow_consumers_closed_total")
            marker = "secret-payload-" + secrets.token_hex(6)
            big = marker + "x" * (2 * SEND_BUFFER)
            for target in ({"player_id": sub}, {"broadcast": True}):
                self.server.publish_ok({**target, "type": "big", "payload": {"blob": big}})
                self.server.publish_ok({**target, "type": "after", "payload": {"n": 1}})
                # The next thing each recipient gets is the later update, on an open connection.
                for c in (a, b):
                    got = await c.recv_until(lambda e: e["type"] == "after")
                    self.assertEqual([e["type"] for e in got], ["after"], got)
                got = await sse.events_until(lambda e: e["event"] == "after")
                self.assertEqual([e["event"] for e in got], ["after"])

            value = self.server.wait_metric("gatehouse_updates_oversized_total",
                                            lambda v: v >= before + 2)
            self.assertEqual(value, before + 2)
            self.assertEqual(self.server.metric("gatehouse_slow_consumers_closed_total"),
                             closed_before, "a recipient was closed as a slow consumer")
            # Still connected, and still served.
            self.server.publish_ok({"player_id": sub, "type": "later", "payload": None})
            for c in (a, b):
                self.assertEqual((await c.recv())["type"], "later")
            self.assertEqual((await sse.next_event())["event"], "later")

            log = self.server.stderr_text()
            self.assertRegex(log, r"dropped an update of \d+ bytes for 3 connection\(s\): its "
                                  r"frame of \d+ bytes is larger than the send buffer "
                                  rf"\({SEND_BUFFER} bytes\)")
            self.assertNotIn(marker, log, "update content in the log")
        finally:
            await a.close()
            await b.close()
            await sse.close()

    async def test_an_update_that_fits_is_delivered(self):
        sub = "p_" + secrets.token_hex(8)
        a = await h.Client.player(self.server, sub, codec="json")
        try:
            blob = "y" * (SEND_BUFFER - 200)  # the frame is under the send buffer
            self.server.publish_ok({"player_id": sub, "type": "fits", "payload": blob})
            env = await a.recv()
            self.assertEqual((env["type"], env["payload"]), ("fits", blob))
        finally:
            await a.close()


if __name__ == "__main__":
    h.run_main()
