#!/usr/bin/env python3
"""deploy/grafana/gatehouse-dashboard.json, checked three ways:

- as a dashboard: valid JSON, a `datasource` variable every panel and query uses, an
  `instance` variable, unique panel ids, panels inside the 24-column grid, and panels for what
  an operator looks at first (connections, commands, updates, drops, bus and store, memory and
  CPU);
- by name: every metric name in every panel's PromQL `expr` (functions, label matchers, range
  selectors and grouping labels stripped; `_bucket`/`_sum`/`_count` taken to their histogram
  family) is a family documented in docs/operations.md, and so, through
  tests/server/test_metrics.py, one the server registers;
- by Prometheus itself (Debian's prometheus package): `promtool check rules` parses every
  query, and a real Prometheus scraping a real gatehouse-server on a real redis-server every
  second evaluates every query without error and returns series for each whose families that
  server renders.

Usage: test_grafana_dashboard.py PATH/TO/gatehouse-server [unittest args]
"""

import http.client
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import unittest
import urllib.parse

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(REPO, "tests", "server"))

import gatehouse_harness as h  # noqa: E402
from metrics_docs import documented_families, family_of  # noqa: E402
import redis_helpers as rh  # noqa: E402
from redis_fixture import RedisServer, free_port  # noqa: E402

DASHBOARD = os.path.join(REPO, "deploy", "grafana", "gatehouse-dashboard.json")
PROMETHEUS = shutil.which("prometheus") or "/usr/bin/prometheus"
PROMTOOL = shutil.which("promtool") or "/usr/bin/promtool"
PROMETHEUS_START_TIMEOUT_S = 30.0
SCRAPES_TIMEOUT_S = 30.0

# PromQL words that look like names but are not metrics.
KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "offset", "bool",
            "and", "or", "unless", "inf", "nan"}
# What an operator looks at first: one family of each must be on the dashboard.
REQUIRED = {
    "connections": "gatehouse_connections",
    "commands": "gatehouse_commands_accepted_total",
    "refusals": "gatehouse_commands_refused_total",
    "updates": "gatehouse_updates_received_total",
    "drops": "gatehouse_updates_delivered_total",
    "slow consumers": "gatehouse_slow_consumers_closed_total",
    "bus": "gatehouse_bus_connected",
    "redis": "gatehouse_redis_connected",
    "store": "gatehouse_store_up",
    "memory": "process_resident_memory_bytes",
    "cpu": "process_cpu_seconds_total",
    "build": "gatehouse_build_info",
    "ack latency": "gatehouse_command_ack_seconds",
    "update delivery latency": "gatehouse_update_delivery_seconds",
    "HTTP by status and route": "gatehouse_http_request_duration_seconds",
    "Redis round trip": "gatehouse_redis_roundtrip_seconds",
    "password hashing": "gatehouse_password_hash_seconds",
}


def load_dashboard():
    with open(DASHBOARD, encoding="utf-8") as f:
        return json.load(f)


def all_panels(dashboard):
    """Every panel, those inside collapsed rows included."""
    out = []
    for p in dashboard["panels"]:
        out.append(p)
        out.extend(p.get("panels", []))
    return out


def queries(dashboard):
    """(panel title, refId, expr) of every panel target."""
    return [(p["title"], t["refId"], t["expr"]) for p in all_panels(dashboard)
            for t in p.get("targets", [])]


def metric_names(expr):
    """The metric names a PromQL expression reads."""
    s = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    s = re.sub(r"\{[^}]*\}", " ", s)
    s = re.sub(r"\[[^\]]*\]", " ", s)
    s = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", s)
    s = re.sub(r"\$\w+", " ", s)
    names = []
    for m in re.finditer(r"(?<![\w.])[a-zA-Z_:][a-zA-Z0-9_:]*", s):
        if s[m.end():].lstrip().startswith("("):
            continue  # a function or an aggregation
        if m.group().lower() in KEYWORDS:
            continue
        names.append(m.group())
    return names


def variable_query_metrics(dashboard):
    """The metrics the template variables' `label_values(METRIC, LABEL)` queries read."""
    out = []
    for v in dashboard["templating"]["list"]:
        if v["type"] != "query":
            continue
        q = v["query"]["query"] if isinstance(v["query"], dict) else v["query"]
        m = re.fullmatch(r"label_values\(\s*([a-zA-Z_:][a-zA-Z0-9_:]*)\s*,\s*\w+\s*\)", q)
        if not m:
            raise AssertionError(f"variable {v['name']}: unexpected query {q!r}")
        out.append(m.group(1))
    return out


def concrete(expr, rate_interval):
    """The expression as Grafana sends it, with the dashboard's variables filled in."""
    return expr.replace("$__rate_interval", rate_interval).replace("$instance", ".*")


class Dashboard(unittest.TestCase):
    def setUp(self):
        self.dashboard = load_dashboard()

    def test_identity_and_variables(self):
        d = self.dashboard
        self.assertEqual(d["uid"], "gatehouse-overview")
        self.assertTrue(d["title"])
        variables = {v["name"]: v for v in d["templating"]["list"]}
        self.assertEqual(variables["datasource"]["type"], "datasource")
        self.assertEqual(variables["datasource"]["query"], "prometheus")
        self.assertEqual(variables["instance"]["datasource"]["uid"], "${datasource}")

    def test_panels(self):
        panels = all_panels(self.dashboard)
        ids = [p["id"] for p in panels]
        self.assertEqual(len(ids), len(set(ids)), "panel ids must be unique")
        for p in panels:
            with self.subTest(panel=p["title"]):
                g = p["gridPos"]
                self.assertGreaterEqual(g["x"], 0)
                self.assertLessEqual(g["x"] + g["w"], 24)
                if p["type"] == "row":
                    continue
                self.assertIn(p["type"], {"timeseries", "stat"})
                self.assertEqual(p["datasource"]["uid"], "${datasource}")
                self.assertTrue(p["targets"])
                for t in p["targets"]:
                    self.assertEqual(t["datasource"]["uid"], "${datasource}")
                    self.assertTrue(t["expr"].strip())

    def test_every_queried_family_is_documented(self):
        documented = documented_families()
        used = set()
        for title, ref, expr in queries(self.dashboard):
            names = metric_names(expr)
            with self.subTest(panel=title, ref=ref):
                self.assertTrue(names, f"no metric found in {expr!r}")
                for name in names:
                    family = family_of(name, documented)
                    self.assertIsNotNone(family, f"{name} (in {expr!r}) is not a family "
                                                 "documented in docs/operations.md")
                    used.add(family)
        for name in variable_query_metrics(self.dashboard):
            self.assertIn(name, documented)
        for what, family in REQUIRED.items():
            self.assertIn(family, used, f"no panel shows {what}")

    def test_the_extraction_itself(self):
        self.assertEqual(
            metric_names('histogram_quantile(0.99, sum by (le, route) (rate('
                         'x_seconds_bucket{instance=~"$instance",route="/a b"}[$__rate_interval])))'),
            ["x_seconds_bucket"])
        self.assertEqual(metric_names("time() - process_start_time_seconds{a=\"b\"}"),
                         ["process_start_time_seconds"])
        self.assertEqual(metric_names("sum(a_total) / count(b) + 1e3 * on (x) c offset 5m"),
                         ["a_total", "b", "c"])
        self.assertEqual(family_of("x_seconds_bucket", {"x_seconds"}), "x_seconds")
        self.assertIsNone(family_of("x_seconds_bucket", {"y"}))

    def test_promtool_parses_every_query(self):
        self.assertTrue(os.path.exists(PROMTOOL),
                        "promtool not found: ./dev.sh setup installs Debian's prometheus")
        rules = {"groups": [{"name": "dashboard", "rules": [
            {"record": f"dashboard:query_{i}", "expr": concrete(expr, "1m")}
            for i, (_, _, expr) in enumerate(queries(self.dashboard))]}]}
        with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
            json.dump(rules, f)  # JSON is YAML
        try:
            r = subprocess.run([PROMTOOL, "check", "rules", f.name], capture_output=True,
                               text=True, timeout=60)
        finally:
            os.unlink(f.name)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)


class Prometheus:
    """A real Prometheus on 127.0.0.1 scraping `targets` every second, its data in a temp dir."""

    def __init__(self, targets):
        self.dir = tempfile.mkdtemp(prefix="gatehouse-prometheus-")
        self.port = free_port()
        config = {"global": {"scrape_interval": "1s", "scrape_timeout": "1s",
                             "evaluation_interval": "1s"},
                  "scrape_configs": [{"job_name": "gatehouse",
                                      "static_configs": [{"targets": targets}]}]}
        self.config = os.path.join(self.dir, "prometheus.yml")
        with open(self.config, "w") as f:
            json.dump(config, f)
        self.log = open(os.path.join(self.dir, "prometheus.log"), "wb")
        self.proc = subprocess.Popen(
            [PROMETHEUS, f"--config.file={self.config}",
             f"--storage.tsdb.path={os.path.join(self.dir, 'data')}",
             f"--web.listen-address=127.0.0.1:{self.port}"],
            stdin=subprocess.DEVNULL, stdout=self.log, stderr=subprocess.STDOUT,
            start_new_session=True)
        deadline = time.monotonic() + PROMETHEUS_START_TIMEOUT_S
        while True:
            try:
                if self.get("/-/ready")[0] == 200:
                    break
            except OSError:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("prometheus did not start: " + self.log_text()[-1500:])
            time.sleep(0.1)

    def get(self, path):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            conn.request("GET", path)
            resp = conn.getresponse()
            return resp.status, resp.read()
        finally:
            conn.close()

    def query(self, expr):
        """The /api/v1/query answer as JSON (status, data or error)."""
        _, body = self.get("/api/v1/query?" + urllib.parse.urlencode({"query": expr}))
        return json.loads(body)

    def log_text(self):
        with open(os.path.join(self.dir, "prometheus.log"), "rb") as f:
            return f.read().decode("utf-8", "replace")

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)


class AgainstARealPrometheus(unittest.TestCase):
    """gatehouse-server on Redis, with its metrics on --metrics-listen, scraped every second."""

    @classmethod
    def setUpClass(cls):
        cls.redis = RedisServer().start()
        cls.server = None
        cls.prometheus = None
        try:
            cls.server = rh.redis_gateway(cls.redis.url, rh.unique("gh:commands"),
                                          rh.unique("gh:updates"), rh.unique("gw"),
                                          "--metrics-listen", "127.0.0.1:0").start()
            m = re.search(r"serving /metrics on (\S+)$", cls.server.stderr_text(), re.M)
            cls.target = m.group(1)
            host, port = cls.target.rsplit(":", 1)
            conn = http.client.HTTPConnection(host, int(port), timeout=5)
            conn.request("GET", "/metrics")
            cls.rendered = set(h.parse_metrics(conn.getresponse().read().decode())["types"])
            conn.close()
            cls.prometheus = Prometheus([cls.target])
            # Enough scrapes for a rate() over 10 s.
            deadline = time.monotonic() + SCRAPES_TIMEOUT_S
            while True:
                r = cls.prometheus.query("count_over_time(gatehouse_build_info[1m])")
                result = r.get("data", {}).get("result", [])
                if result and float(result[0]["value"][1]) >= 4:
                    break
                if time.monotonic() > deadline:
                    raise RuntimeError("prometheus did not scrape the gateway: " +
                                       cls.prometheus.log_text()[-1500:])
                time.sleep(0.25)
        except BaseException:
            cls.tearDownClass()
            raise

    @classmethod
    def tearDownClass(cls):
        problems = []
        try:
            if cls.prometheus:
                cls.prometheus.stop()
            if cls.server:
                problems = rh.stop_and_check(cls.server)
        finally:
            cls.redis.close()
        if problems:
            raise AssertionError("\n".join(problems))

    def test_every_query_evaluates(self):
        documented = documented_families()
        for title, ref, expr in queries(load_dashboard()):
            with self.subTest(panel=title, ref=ref):
                r = self.prometheus.query(concrete(expr, "10s"))
                self.assertEqual(r["status"], "success", r.get("error"))
                families = {family_of(n, documented) for n in metric_names(expr)}
                if families <= self.rendered:
                    self.assertTrue(r["data"]["result"],
                                    f"{expr!r} returned no series though the server renders "
                                    f"{sorted(families)}")

    def test_the_instance_variable_lists_the_gateway(self):
        body = self.prometheus.get("/api/v1/label/instance/values?" + urllib.parse.urlencode(
            {"match[]": variable_query_metrics(load_dashboard())[0]}))[1]
        self.assertEqual(json.loads(body)["data"], [self.target])


if __name__ == "__main__":
    h.run_main()
