#!/usr/bin/env python3
"""/metrics of gatehouse-server: every family it renders is documented in docs/operations.md
("Metrics"), every family documented there is one the sources register, and every family name
in the sources is documented, so the table cannot rot either way; promtool's lint of the
exposition; `--metrics-listen`; the build and process families.

Usage: test_metrics.py PATH/TO/gatehouse-server [unittest args]

The scrapes are of real servers: in process, and on a real redis-server (redis_fixture.py).
The RabbitMQ bus's families are checked through the sources (its broker takes a minute to start
on a loaded machine; tests/server/test_amqp_bus.py scrapes them).
"""

import http.client
import os
import re
import shutil
import ssl
import subprocess
import tempfile
import time
import unittest

import gatehouse_harness as h
from gatehouse_harness import Server, parse_metrics
from metrics_docs import documented_families, family_of, source_families
import redis_helpers as rh

PROMTOOL = shutil.which("promtool") or "/usr/bin/promtool"
METRICS_LINE_RE = re.compile(r"serving /metrics on (\S+):(\d+)$", re.M)


def rendered_families(parsed):
    """The families a scrape declares (its `# TYPE` lines); every sample must belong to one."""
    families = set(parsed["types"])
    for name, _, _ in parsed["samples"]:
        if family_of(name, families) is None:
            raise AssertionError(f"sample {name} has no # TYPE line")
    return families


def http_get(host, port, path, timeout=5.0):
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    finally:
        conn.close()


def metrics_address(server, timeout=3.0):
    """(host, port) of the server's metrics listener, from its `serving /metrics on` line."""
    deadline = time.monotonic() + timeout
    while True:
        m = METRICS_LINE_RE.search(server.stderr_text())
        if m:
            return m.group(1), int(m.group(2))
        if time.monotonic() >= deadline:
            raise AssertionError("no 'serving /metrics on' line; stderr: "
                                 + server.stderr_text()[-1500:])
        time.sleep(0.05)


def scrape(case, host, port):
    status, headers, body = http_get(host, port, "/metrics")
    case.assertEqual(status, 200)
    case.assertTrue(headers["content-type"].startswith("text/plain; version=0.0.4"))
    return parse_metrics(body.decode())


class DocumentedBothWays(unittest.TestCase):
    """The sources against the table, with no server."""

    def test_every_documented_family_is_registered_in_the_sources(self):
        documented = documented_families()
        self.assertGreater(len(documented), 40, "the Metrics tables were not found")
        registered = source_families()
        self.assertEqual(sorted(documented - set(registered)), [],
                         "documented in docs/operations.md but registered nowhere in src/ or "
                         "server/")

    def test_every_family_in_the_sources_is_documented(self):
        documented = documented_families()
        missing = {f: where for f, where in source_families().items() if f not in documented}
        self.assertEqual(missing, {}, "registered but not in docs/operations.md's Metrics tables")


class ScrapeCase:
    """What every scraped server must show; `cls.server` and `cls.scrape_address` are set by
    the class."""

    expected_families = ()

    def scraped(self):
        return scrape(self, *self.scrape_address)

    def test_every_rendered_family_is_documented(self):
        families = rendered_families(self.scraped())
        for family in self.expected_families:
            self.assertIn(family, families)
        self.assertEqual(sorted(families - documented_families()), [],
                         "rendered on /metrics but not in docs/operations.md")

    def test_promtool_finds_nothing_to_lint(self):
        """Prometheus's own linter: HELP and TYPE, counter and unit suffixes, the format."""
        self.assertTrue(os.path.exists(PROMTOOL),
                        "promtool not found: ./dev.sh setup installs Debian's prometheus")
        r = subprocess.run([PROMTOOL, "check", "metrics"], input=self.scraped()["text"],
                           capture_output=True, text=True, timeout=60)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)

    def test_build_info(self):
        parsed = self.scraped()
        self.assertEqual(parsed["types"]["gatehouse_build_info"], "gauge")
        info = [(labels, v) for n, labels, v in parsed["samples"] if n == "gatehouse_build_info"]
        self.assertEqual(len(info), 1)
        labels, value = info[0]
        self.assertEqual(value, 1)
        self.assertRegex(labels["version"], r"^\d+\.\d+\.\d+$")
        self.assertTrue(labels["compiler"])
        # The version is the one --version prints.
        out = os.popen(f"'{self.server.binary}' --version").read().split()
        self.assertEqual(out[-1], labels["version"])

    def test_process_families(self):
        parsed = self.scraped()
        value = {n: v for n, labels, v in parsed["samples"] if n.startswith("process_")}
        self.assertEqual(parsed["types"]["process_cpu_seconds_total"], "counter")
        self.assertGreater(value["process_resident_memory_bytes"], 1 << 20)
        self.assertGreaterEqual(value["process_virtual_memory_bytes"],
                                value["process_resident_memory_bytes"])
        self.assertGreaterEqual(value["process_cpu_seconds_total"], 0)
        self.assertGreaterEqual(value["process_open_fds"], 4)  # stdio, the listeners
        self.assertGreaterEqual(value["process_max_fds"], value["process_open_fds"])
        self.assertGreaterEqual(value["process_threads"], 2)
        started = value["process_start_time_seconds"]
        self.assertLess(abs(started - self.server.started_at), 30)


class InProcess(ScrapeCase, h.AsyncCase):
    """The in-process bus, /metrics on the main listener."""

    expected_families = ("gatehouse_connections", "gatehouse_commands_deduplicated_total",
                         "gatehouse_info", "gatehouse_store_up", "gatehouse_build_info",
                         "process_cpu_seconds_total")

    @classmethod
    def setUpClass(cls):
        started = time.time()
        cls.server = Server().start()
        cls.server.started_at = started
        cls.scrape_address = ("127.0.0.1", cls.server.port)

    @classmethod
    def tearDownClass(cls):
        problems = rh.stop_and_check(cls.server)
        if problems:
            raise AssertionError("\n".join(problems))

    def test_no_metrics_listener_line(self):
        self.assertIsNone(METRICS_LINE_RE.search(self.server.stderr_text()))


class OnRedisWithMetricsListen(ScrapeCase, rh.OneRedisGateway):
    """A real redis-server, /metrics on `--metrics-listen 127.0.0.1:0` only."""

    expected_families = ("gatehouse_redis_connected", "gatehouse_redis_commands_appended_total",
                         "gatehouse_commands_deduplicated_total", "gatehouse_build_info",
                         "process_resident_memory_bytes")

    @classmethod
    def extra_args(cls):
        return ["--metrics-listen", "127.0.0.1:0"]

    @classmethod
    def setUpClass(cls):
        started = time.time()
        super().setUpClass()
        cls.server.started_at = started
        cls.scrape_address = metrics_address(cls.server)

    def test_metrics_listener_serves_metrics_and_health_only(self):
        host, port = self.scrape_address
        self.assertNotEqual(port, self.server.port)
        self.assertEqual(host, "127.0.0.1")
        status, _, body = http_get(host, port, "/health")
        self.assertEqual((status, body), (200, b'{"status":"ok"}'))
        for path in ("/ready", "/login", "/commands", "/ws/player", "/sse/player", "/"):
            with self.subTest(path=path):
                self.assertEqual(http_get(host, port, path)[0], 404)

    def test_main_listener_no_longer_serves_metrics(self):
        status, headers, _ = self.server.http("GET", "/metrics")
        self.assertEqual(status, 404)
        self.assertEqual(headers["content-type"], "application/problem+json")
        # Everything else is still there.
        self.assertEqual(self.server.http("GET", "/health")[0], 200)
        self.assertEqual(self.server.http("GET", "/ready")[0], 200)

    def test_the_ready_line_is_unchanged(self):
        self.assertRegex(self.server.stdout_text().split("\n", 1)[0], h.READY_RE)


@unittest.skipUnless(shutil.which("openssl"), "needs the openssl command")
class MetricsListenWithTls(unittest.TestCase):
    """With --tls-cert the metrics listener speaks TLS too, with the same certificate."""

    def test_https_metrics(self):
        with tempfile.TemporaryDirectory() as d:
            cert, key = os.path.join(d, "cert.pem"), os.path.join(d, "key.pem")
            subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes",
                            "-keyout", key, "-out", cert, "-days", "2", "-subj", "/CN=127.0.0.1",
                            "-addext", "subjectAltName=IP:127.0.0.1"],
                           check=True, capture_output=True, timeout=30)
            server = Server("--tls-cert", cert, "--tls-key", key,
                            "--metrics-listen", "127.0.0.1:0").start()
            try:
                host, port = metrics_address(server)
                conn = http.client.HTTPSConnection(
                    host, port, timeout=5, context=ssl.create_default_context(cafile=cert))
                try:
                    conn.request("GET", "/metrics")
                    resp = conn.getresponse()
                    body = resp.read().decode()
                finally:
                    conn.close()
                self.assertEqual(resp.status, 200)
                self.assertIn("gatehouse_build_info{", body)
                # Plain HTTP is not served there.
                with self.assertRaises((http.client.HTTPException, OSError)):
                    http_get(host, port, "/metrics", timeout=3)
            finally:
                self.assertEqual(rh.stop_and_check(server), [])


class MetricsListenRefused(unittest.TestCase):
    """A --metrics-listen that cannot be bound: the server does not start."""

    def test_port_in_use(self):
        first = Server().start()
        try:
            second = Server("--metrics-listen", f"127.0.0.1:{first.port}")
            with self.assertRaises(RuntimeError):
                second.start()
            self.assertNotEqual(second.proc.wait(timeout=5), 0)
            self.assertIn(f"cannot listen for metrics on 127.0.0.1:{first.port}",
                          second.stderr_text())
            self.assertIn(f"cannot listen on 127.0.0.1:0 or 127.0.0.1:{first.port}",
                          second.stderr_text())
        finally:
            self.assertEqual(rh.stop_and_check(first), [])


if __name__ == "__main__":
    h.run_main()
