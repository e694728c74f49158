#!/usr/bin/env python3
"""Slowloris (a probe that already passed when issue 14 was filed; kept as a regression test),
against the real server.

Forty connections from twenty loopback addresses dribble their request headers one byte at a
time, each well within any per-read timeout. The server drops every one of them once
--http-header-timeout has passed (a 408 or a plain close), and serves a normal client promptly
all the while. tests/server/test_http11.py checks one dribbling connection in detail (the 408,
a second request on a kept-alive connection); this is the many-attackers shape.

The descriptor-limit probe is tests/server/test_http11.py's FdExhaustion (server.http11): not
repeated here.

Usage: test_slowloris.py PATH/TO/gatehouse-server [unittest args]
"""

import http.client
import os
import select
import socket
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "server"))
import gatehouse_harness as h  # noqa: E402

CONNECTIONS = 40
ADDRESSES = 20
HEADER_TIMEOUT_S = 1
BUDGET_S = 6.0  # the timeout, the sweep's granularity and a busy sanitizer build


class Slowloris(h.ServerTestCase):
    @classmethod
    def server_args(cls):
        return ["--http-header-timeout", str(HEADER_TIMEOUT_S), "--http-idle-timeout", "30"]

    def health_latency(self):
        start = time.monotonic()
        conn = http.client.HTTPConnection("127.0.0.1", self.server.port, timeout=5)
        try:
            conn.request("GET", "/health")
            self.assertEqual(conn.getresponse().status, 200)
        finally:
            conn.close()
        return time.monotonic() - start

    def test_dribbling_headers_are_dropped_and_others_served(self):
        header = (b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: " + b"a" * 400)
        socks = {}
        for i in range(CONNECTIONS):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind((f"127.0.0.{100 + i % ADDRESSES}", 0))
            s.settimeout(5)
            s.connect(("127.0.0.1", self.server.port))
            s.setblocking(False)
            socks[s] = 0  # bytes of the header sent so far
        start = time.monotonic()
        closed_after = {}
        worst_health = 0.0
        try:
            while socks.keys() - closed_after.keys():
                elapsed = time.monotonic() - start
                self.assertLess(elapsed, BUDGET_S,
                                f"{len(socks) - len(closed_after)} of {CONNECTIONS} dribbling "
                                f"connections still open after {elapsed:.1f} s "
                                f"(--http-header-timeout {HEADER_TIMEOUT_S})")
                for s in list(socks.keys() - closed_after.keys()):
                    sent = socks[s]
                    if sent >= len(header):
                        continue
                    try:
                        s.send(header[sent:sent + 1])
                        socks[s] = sent + 1
                    except (BlockingIOError, InterruptedError):
                        pass
                    except OSError:  # reset or broken pipe: the server closed it
                        closed_after[s] = time.monotonic() - start
                # One byte each per 0.1 s; wake early for whatever the server sends or closes.
                readable, _, _ = select.select(list(socks.keys() - closed_after.keys()), [], [],
                                               0.1)
                for s in readable:
                    try:
                        data = s.recv(4096)
                    except OSError:
                        data = b""
                    if data:
                        self.assertTrue(data.startswith(b"HTTP/1.1 408"), data[:100])
                        data = b""
                        try:
                            data = s.recv(4096)  # then the close
                        except BlockingIOError:
                            continue
                        except OSError:
                            pass
                    if not data:
                        closed_after[s] = time.monotonic() - start
                if elapsed > HEADER_TIMEOUT_S / 2:
                    worst_health = max(worst_health, self.health_latency())
        finally:
            for s in socks:
                s.close()
        slowest = max(closed_after.values())
        h.note(f"{CONNECTIONS} dribbling connections from {ADDRESSES} addresses dropped after "
               f"{min(closed_after.values()):.2f}-{slowest:.2f} s; /health took at most "
               f"{worst_health * 1000:.0f} ms meanwhile")
        self.assertGreaterEqual(min(closed_after.values()), HEADER_TIMEOUT_S * 0.9,
                                "dropped before the header timeout")
        self.assertLess(worst_health, 1.0, "a normal client waited behind the dribblers")
        self.assertLess(self.health_latency(), 1.0)


if __name__ == "__main__":
    h.run_main()
