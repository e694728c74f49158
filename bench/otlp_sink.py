#!/usr/bin/env python3
"""A do-nothing OTLP/HTTP receiver for benchmarks of tracing (docs/benchmarks.md, "Tracing"):
reads each POST, answers 200 `{}`, and counts requests and bytes (printed at exit), without
parsing, so that it costs the machine as little as a receiver can.

Usage: otlp_sink.py PORT        (then --otlp-endpoint http://127.0.0.1:PORT)
"""

import http.server
import signal
import sys
import threading

requests = 0
received = 0
lock = threading.Lock()


class Sink(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self):  # noqa: N802 (http.server's naming)
        global requests, received
        n = int(self.headers.get("Content-Length", "0"))
        while n > 0:
            chunk = self.rfile.read(min(n, 1 << 20))
            if not chunk:
                break
            n -= len(chunk)
            with lock:
                received += len(chunk)
        with lock:
            requests += 1
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, *args):
        pass


def main():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Sink)
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown).start())
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    print(f"otlp_sink: {requests} requests, {received} bytes", flush=True)


if __name__ == "__main__":
    main()
