"""Delivery classes and slow clients (docs/protocol.md 6.6), against the real server on loopback,
with the in-process bus and POST /updates.

For each class, a client that stops reading while updates pile up for it:
- droppable: updates are dropped and counted, the connection stays open and the server's
  memory bounded; once the client reads again it gets later updates and its commands acked;
- latest: once the client reads again it sees the last value of each key, not every value;
- reliable (the default): the connection is closed with 4008 `slow consumer`.
And a client that sends commands as fast as it can but never reads: the server stops reading
it instead of growing (issue 17 measured 824 MB in 25 s before the per-connection bound).
"""

import http.client
import json
import os
import shutil
import socket
import ssl
import subprocess
import tempfile
import time
import unittest

import gatehouse_harness as h
from gatehouse_harness import RawWs

SEND_BUFFER = 65536


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS")


class DeliveryClasses(h.ServerTestCase):
    UPDATE_BYTES = 40_000
    # 40 MB for a client that reads nothing: far more than the loopback socket pair buffers
    # with a 4 KiB receive buffer, and than a bounded server may hold for it.
    MAX_UPDATES = 4000

    @classmethod
    def server_args(cls):
        # The default slow-consumer policy (queue) is the contract's.
        return ["--send-buffer-bytes", str(SEND_BUFFER), "--max-message-bytes", "1048576",
                "--ws-rate-limit", "0",
                # POST /updates goes through the update log (docs/protocol.md 6.4), which keeps each
                # player's last updates by design (40 MB of these at the default 1000): one is
                # enough here, where what is measured is the connection's queue.
                "--update-log-size", "1"]

    @classmethod
    def setUpClass(cls):
        # ASan keeps freed memory in a quarantine (256 MiB by default) that RSS would show as
        # growth however bounded the server is; a small one lets RSS show what it holds.
        cls.server = h.Server(*cls.server_args(), publish_key=cls.publish_key,
                              bot_keys=cls.bot_keys,
                              env={"ASAN_OPTIONS": "abort_on_error=0:detect_leaks=1:"
                                                   "quarantine_size_mb=4"}).start()

    # -- helpers -------------------------------------------------------------------------------

    def delivered(self, delivery, outcome):
        return self.server.metric("gatehouse_updates_delivered_total", delivery=delivery,
                                  outcome=outcome)

    def stalled_consumer(self, player):
        raw = RawWs(self.server.port, "/ws/player/" + self.server.token(player), rcvbuf=4096,
                    ssl_context=self.server.ssl_context)
        self.assertEqual(raw.status, 101)
        self.assertEqual(json.loads(raw.recv_message()[1])["type"], "welcome")
        return raw  # and from now on nobody reads it, until the test says so

    def flood(self, delivery, message_for, stop_when, check_every=10):
        """Publishes message_for(i) (updates of class `delivery` for one connection) on one
        persistent connection until stop_when() holds (checked every few updates) or
        MAX_UPDATES are out; returns how many were published. After each few it waits until
        the gateway has delivered them (each counted once by outcome), so that what piles up
        is the connection's queue, not the bus's backlog of updates not yet routed."""
        if self.server.tls:
            conn = http.client.HTTPSConnection("127.0.0.1", self.server.port, timeout=5,
                                               context=self.server.ssl_context)
        else:
            conn = http.client.HTTPConnection("127.0.0.1", self.server.port, timeout=5)
        headers = {"Content-Type": "application/json",
                   "Authorization": f"Bearer {self.publish_key}"}
        routed_before = self.server.metric("gatehouse_updates_delivered_total",
                                           delivery=delivery)
        try:
            for i in range(self.MAX_UPDATES):
                conn.request("POST", "/updates", body=json.dumps(message_for(i)),
                             headers=headers)
                resp = conn.getresponse()
                body = resp.read()
                self.assertEqual(resp.status, 202, body)
                if i % check_every == check_every - 1:
                    routed = self.server.wait_metric(
                        "gatehouse_updates_delivered_total",
                        lambda v, n=i + 1: v >= routed_before + n, timeout=10,
                        delivery=delivery)
                    self.assertEqual(routed, routed_before + i + 1, "updates not routed")
                    if stop_when():
                        return i + 1
            return self.MAX_UPDATES
        finally:
            conn.close()

    def drain(self, raw, quiet=0.7, limit=30.0):
        """Reads until `quiet` seconds pass without a message; returns the data messages'
        envelopes, and the close code if a close frame came."""
        seen = []
        deadline = time.monotonic() + limit
        while time.monotonic() < deadline:
            try:
                m = raw.recv_message(quiet)
            except socket.timeout:
                return seen, None
            if m is None:
                return seen, "eof"
            if m[0] == "close":
                return seen, m[1]
            seen.append(json.loads(m[1]))
        self.fail("the server kept sending for longer than the drain limit")

    def command_is_acked(self, raw, cid):
        raw.send_text(json.dumps({"type": "t", "correlation_id": cid}))
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            m = raw.recv_message(max(0.05, deadline - time.monotonic()))
            if m is None or m[0] == "close":
                return False
            env = json.loads(m[1])
            if env.get("correlation_id") == cid:
                return env["type"] == "ack"
        return False

    # -- the classes ---------------------------------------------------------------------------

    def test_a_bad_delivery_or_key_is_a_malformed_update(self):
        before = self.server.metric("gatehouse_updates_malformed_total")
        for bad in ({"delivery": "urgent"}, {"delivery": "latest"},
                    {"delivery": "latest", "key": ""}, {"delivery": "latest", "key": 7},
                    {"delivery": "latest", "key": "k" * 257}, {"delivery": True}):
            with self.subTest(bad=bad):
                status, body = self.server.publish({"player_id": "p", "type": "t", **bad})
                self.assertEqual(status, 400, body)
                self.assertIn(b"invalid_update", body)
        self.assertEqual(self.server.metric("gatehouse_updates_malformed_total"), before + 6)
        for good in ({"delivery": "reliable"}, {"delivery": None}, {"delivery": "droppable"},
                     {"delivery": "latest", "key": "k" * 256}):
            with self.subTest(good=good):
                status, body = self.server.publish({"player_id": "p", "type": "t", **good})
                self.assertEqual(status, 202, body)

    def test_droppable_updates_are_dropped_and_counted_connection_stays_open(self):
        raw = self.stalled_consumer("dropper")
        try:
            pid = self.server.proc.pid
            dropped_before = self.delivered("droppable", "dropped")
            closed_before = self.server.metric("gatehouse_slow_consumers_closed_total")
            blob = "d" * self.UPDATE_BYTES
            rss_before = rss_kib(pid)
            # Well past the first drop, so that a server that queued them would show it.
            published = self.flood(
                "droppable",
                lambda i: {"player_id": "dropper", "type": "bulk", "delivery": "droppable",
                           "payload": {"i": i, "blob": blob}},
                lambda: self.delivered("droppable", "dropped") >= dropped_before + 1000)
            rss_after = rss_kib(pid)
            dropped = self.server.wait_metric(
                "gatehouse_updates_delivered_total", lambda v: v >= dropped_before + 1000,
                delivery="droppable", outcome="dropped") - dropped_before
            h.note(f"droppable: {published} published ({published * self.UPDATE_BYTES / 1e6:.0f}"
                   f" MB), {dropped:.0f} dropped; server RSS {rss_before} -> {rss_after} KiB")
            self.assertGreaterEqual(dropped, 1000)
            self.assertGreaterEqual(self.server.metric("gatehouse_send_queue_dropped_total"),
                                    dropped)
            # Bounded: twice the send buffer, and allocator slack; not the MB published.
            self.assertLess(rss_after - rss_before, 16 * 1024, "server memory grew")
            self.assertEqual(self.server.metric("gatehouse_slow_consumers_closed_total"),
                             closed_before)

            # Reading again: what was queued arrives, in order with gaps, and the connection
            # still answers commands.
            seen, closed = self.drain(raw)
            self.assertIsNone(closed, "the connection was closed")
            numbers = [e["payload"]["i"] for e in seen]
            self.assertEqual(numbers, sorted(numbers))
            self.assertLess(len(numbers), published)
            for env in seen:
                # A logged update's update_id is the client's; routing keys never are.
                self.assertEqual(set(env) - {"update_id"}, {"type", "payload"},
                                 "no routing key reaches clients")
            self.server.publish_ok({"player_id": "dropper", "type": "after", "delivery":
                                    "droppable", "payload": 1})
            m = raw.recv_message(5)
            self.assertEqual(json.loads(m[1])["type"], "after")
            self.assertTrue(self.command_is_acked(raw, "after-drops"))
        finally:
            raw.close()

    def test_latest_updates_coalesce_to_the_last_value_per_key(self):
        raw = self.stalled_consumer("mover")
        keys = [f"unit:{n}" for n in range(4)]
        try:
            coalesced_before = self.delivered("latest", "coalesced")
            # Small enough that one queued value per key fits in the send buffer: past twice
            # it, latest updates close the connection too.
            blob = "l" * (SEND_BUFFER // 16)
            last = {}

            def message(i):
                key = keys[i % len(keys)]
                last[key] = i
                return {"player_id": "mover", "type": "pos", "delivery": "latest", "key": key,
                        "payload": {"key": key, "i": i, "blob": blob}}

            published = self.flood(
                "latest", message, lambda: self.delivered("latest", "coalesced") >= coalesced_before + 100)
            coalesced = self.server.wait_metric(
                "gatehouse_updates_delivered_total", lambda v: v >= coalesced_before + 100,
                delivery="latest", outcome="coalesced") - coalesced_before
            self.assertGreaterEqual(coalesced, 100)
            self.assertEqual(self.delivered("latest", "closed"), 0)

            seen, closed = self.drain(raw)
            self.assertIsNone(closed, "the connection was closed")
            by_key = {}
            for env in seen:
                # A logged update's update_id is the client's; routing keys never are.
                self.assertEqual(set(env) - {"update_id"}, {"type", "payload"},
                                 "no routing key reaches clients")
                by_key.setdefault(env["payload"]["key"], []).append(env["payload"]["i"])
            h.note(f"latest: {published} published, {len(seen)} delivered, {coalesced:.0f} "
                   f"coalesced")
            self.assertEqual(set(by_key), set(keys))
            for key, values in by_key.items():
                self.assertEqual(values, sorted(values), f"{key}: values out of order")
                self.assertEqual(values[-1], last[key], f"{key}: not its last value")
            self.assertLess(len(seen), published, "every value was delivered: nothing coalesced")
            self.assertTrue(self.command_is_acked(raw, "after-latest"))
        finally:
            raw.close()

    def test_reliable_updates_close_a_stalled_client_with_4008(self):
        raw = self.stalled_consumer("stuck")
        try:
            closed_before = self.delivered("reliable", "closed")
            slow_before = self.server.metric("gatehouse_slow_consumers_closed_total")
            blob = "r" * self.UPDATE_BYTES
            published = self.flood(
                "reliable",
                lambda i: {"player_id": "stuck", "type": "bulk", "payload": {"i": i, "blob": blob}},
                lambda: self.server.metric("gatehouse_slow_consumers_closed_total") > slow_before,
                check_every=2)
            # Read at once: the close frame waits behind what is queued, and the server gives a
            # peer that does not answer it 2 s.
            seen, code = self.drain(raw, limit=10)
            h.note(f"reliable: {published} published, {len(seen)} delivered before the close")
            self.assertEqual(code, 4008)
            self.assertEqual(self.server.wait_metric("gatehouse_slow_consumers_closed_total",
                                                     lambda v: v > slow_before), slow_before + 1)
            self.assertGreater(self.delivered("reliable", "closed"), closed_before)
            self.assertGreaterEqual(self.server.wait_metric(
                "gatehouse_connections_closed_total", lambda v: v >= 1, code="4008"), 1)
            numbers = [e["payload"]["i"] for e in seen]
            self.assertEqual(numbers, list(range(len(numbers))), "reliable: none lost before it")
        finally:
            raw.close()

    def test_a_client_that_sends_commands_and_never_reads_is_bounded(self):
        pid = self.server.proc.pid
        raw = self.stalled_consumer("chatty")
        accepted_before = self.server.metric("gatehouse_commands_accepted_total")
        frame = b""
        for n in range(200):
            cmd = json.dumps({"type": "move", "payload": {"n": n, "pad": "p" * 64}}).encode()
            mask = bytes(4)  # a zero mask leaves the payload as it is
            frame += bytes([0x81, 0x80 | 126]) + len(cmd).to_bytes(2, "big") + mask + cmd \
                if len(cmd) >= 126 else bytes([0x81, 0x80 | len(cmd)]) + mask + cmd
        raw.sock.setblocking(False)
        rss_before = rss_kib(pid)
        sent, stalled_since, ended = 0, None, None
        deadline = time.monotonic() + 10.0
        while time.monotonic() < deadline:
            try:
                sent += raw.sock.send(frame)
                stalled_since = None
            except BlockingIOError:
                # The server stopped reading: our send buffer and its receive buffer are full.
                stalled_since = stalled_since or time.monotonic()
                if time.monotonic() - stalled_since > 1.5:
                    ended = "stalled"
                    break
                time.sleep(0.01)
            except OSError:
                # Its acks passed twice the send buffer: closed with 4008, then (the close
                # unanswered) cut off after the close timeout.
                ended = "closed"
                break
        rss_after = rss_kib(pid)
        accepted = self.server.metric("gatehouse_commands_accepted_total") - accepted_before
        h.note(f"command flood: sent {sent / 1e6:.1f} MB, {accepted:.0f} commands acked, "
               f"{ended}; server RSS {rss_before} -> {rss_after} KiB")
        self.assertIsNotNone(ended, "the server kept reading a client that never reads")
        if ended == "closed":
            self.assertGreaterEqual(self.server.metric("gatehouse_connections_closed_total",
                                                       code="4008"), 1)
        self.assertGreater(accepted, 0)
        # What it may hold: twice the send buffer of acks, a read buffer per thread, allocator
        # slack, and the commands it acked, which the in-process bus keeps by design (its last
        # 100,000 entries, about 600 bytes each): with the rate limit off, the kernel's socket
        # buffers take some 30,000 acks (and so as many commands) before the server stops
        # reading. The unbounded server grew by some 330 MB in this loop's 10 s.
        self.assertLess(rss_after - rss_before, 64 * 1024, "server memory grew under the flood")
        status, _, _ = self.server.http("GET", "/health")
        self.assertEqual(status, 200)
        raw.close()


@unittest.skipUnless(shutil.which("openssl"), "needs the openssl command")
class DeliveryClassesTls(DeliveryClasses):
    """The same over TLS, whose writer hands everything queued to one asynchronous write at a
    time: what is in that write is never withdrawn, what is queued behind it is."""

    # A raw non-blocking flood is a plain-socket test; TLS adds nothing to it.
    test_a_client_that_sends_commands_and_never_reads_is_bounded = None

    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.TemporaryDirectory()
        cert = os.path.join(cls.dir.name, "cert.pem")
        key = os.path.join(cls.dir.name, "key.pem")
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes",
                        "-keyout", key, "-out", cert, "-days", "2",
                        "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
                       check=True, capture_output=True, timeout=30)
        cls.server = h.Server(*cls.server_args(), "--tls-cert", cert, "--tls-key", key,
                              publish_key=cls.publish_key, bot_keys=cls.bot_keys,
                              env={"ASAN_OPTIONS": "abort_on_error=0:detect_leaks=1:"
                                                   "quarantine_size_mb=4"})
        cls.server.tls = True
        cls.server.ssl_context = ssl.create_default_context(cafile=cert)
        cls.server.start()

    @classmethod
    def tearDownClass(cls):
        try:
            super().tearDownClass()
        finally:
            cls.dir.cleanup()


if __name__ == "__main__":
    h.run_main()
