"""Clients that do not read (issue 14, items 1 and 2), against the real server on loopback.

- A WebSocket client that never reads but keeps sending pings and garbage frames: every reply
  and pong it provokes counts against one bound, reading from it pauses while its replies wait
  unwritten, so the server's memory stays bounded and other clients are served.
- An event-stream client that never reads while updates pile up for it: the slow-consumer
  policy ends the stream, and its socket is released within seconds (not left waiting for a
  write that never completes).
"""

import os
import socket
import struct
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "server"))
import gatehouse_harness as h  # noqa: E402


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def fd_count(pid):
    return len(os.listdir(f"/proc/{pid}/fd"))


def masked_frame(opcode, payload):
    mask = os.urandom(4)
    n = len(payload)
    head = bytes([0x80 | opcode])
    head += bytes([0x80 | n]) if n < 126 else bytes([0x80 | 126]) + struct.pack(">H", n)
    return head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


class NeverReadingFlood(h.ServerTestCase):
    @classmethod
    def server_args(cls):
        # A small send buffer, so the bound is reached within the test's few seconds.
        return ["--send-buffer-bytes", "262144", "--ws-rate-limit", "100"]

    @classmethod
    def setUpClass(cls):
        # In a sanitizer build ASan keeps freed memory in a quarantine (256 MiB by default),
        # which RSS would show as growth however bounded the server is; a small one lets RSS
        # show what the server really holds.
        cls.server = h.Server(*cls.server_args(), publish_key=cls.publish_key,
                              bot_keys=cls.bot_keys,
                              env={"ASAN_OPTIONS": "abort_on_error=0:detect_leaks=1:"
                                                   "quarantine_size_mb=4"}).start()

    def test_memory_stays_bounded_and_others_are_served(self):
        pid = self.server.proc.pid
        token = self.server.token("flooder")
        ws = h.RawWs(self.server.port, f"/ws/player/{token}", rcvbuf=4096)
        self.assertEqual(ws.status, 101)
        # Pings (each answered with a pong) and text that is not JSON (each answered with an
        # error, rate-limited or not): the replies are what used to pile up without bound.
        blob = (masked_frame(0x9, b"p" * 125) + masked_frame(0x1, b"{not json" + b"x" * 90)) * 256
        ws.sock.setblocking(False)
        rss_before = rss_kib(pid)
        sent = 0
        stalled_since = None
        deadline = time.monotonic() + 8.0
        while time.monotonic() < deadline:
            try:
                sent += ws.sock.send(blob[sent % len(blob):])
                stalled_since = None
            except BlockingIOError:
                # The server stopped reading: our send buffer and its receive buffer are full.
                stalled_since = stalled_since or time.monotonic()
                if time.monotonic() - stalled_since > 1.5:
                    break
                time.sleep(0.01)
            except OSError:
                break  # closed by the server: bounded too
        rss_after = rss_kib(pid)
        h.note(f"flood: sent {sent / 1e6:.1f} MB; server RSS {rss_before} -> {rss_after} KiB")
        self.assertIsNotNone(stalled_since, "the server kept reading a client that never reads")
        # What it may hold: twice the send buffer of replies, a read buffer per thread, and
        # allocator (and sanitizer) slack; the unbounded server grew by hundreds of MB here.
        self.assertLess(rss_after - rss_before, 32 * 1024, "server memory grew under the flood")
        # Everyone else is still served while the flooder sits there.
        status, _, _ = self.server.http("GET", "/health")
        self.assertEqual(status, 200)
        ws.sock.close()


class SlowEventStream(h.ServerTestCase):
    @classmethod
    def server_args(cls):
        return ["--send-buffer-bytes", "65536", "--slow-consumer", "close"]

    def test_socket_released_within_seconds(self):
        pid = self.server.proc.pid
        token = self.server.token("sse-sleeper")
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.settimeout(5)
        sock.connect(("127.0.0.1", self.server.port))
        sock.sendall(f"GET /sse/player HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}"
                     "\r\n\r\n".encode())
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = sock.recv(1)
            self.assertTrue(chunk, "stream closed before its head")
            head += chunk
        self.assertIn(b"text/event-stream", head)
        self.server.wait_metric("gatehouse_event_streams", lambda v: v == 1)
        fds_open = fd_count(pid)
        # Updates pile up for the stream, which is never read from again.
        payload = {"blob": "x" * 8000}
        for i in range(400):
            status, _ = self.server.publish({"player_id": "sse-sleeper", "type": "fill",
                                             "payload": payload})
            if status != 202:
                self.fail(f"POST /updates answered {status}")
            if self.server.metric("gatehouse_slow_consumers_closed_total") >= 1:
                break
        self.server.wait_metric("gatehouse_slow_consumers_closed_total", lambda v: v >= 1)
        closed_at = time.monotonic()
        # The stream is unregistered, and its descriptor closed, within seconds.
        self.server.wait_metric("gatehouse_event_streams", lambda v: v == 0, timeout=5.0)
        deadline = time.monotonic() + 5.0
        while fd_count(pid) >= fds_open:
            self.assertLess(time.monotonic(), deadline,
                            "the slow stream's socket is still open 5 s after it was closed")
            time.sleep(0.05)
        h.note(f"slow stream released {time.monotonic() - closed_at:.2f} s after the close")
        sock.close()


if __name__ == "__main__":
    h.run_main()
