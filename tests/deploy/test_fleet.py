#!/usr/bin/env python3
"""deploy/compose.yaml's fleet without containers: two gatehouse-server processes on one Redis
(with the gatehouse Redis module loaded, as compose's) and one PostgreSQL, behind a real
HAProxy running deploy/haproxy.cfg itself (its addresses given through the environment
variables the file reads), all on loopback.

A player registers through the balancer on one gateway, logs in on the other, plays over a
WebSocket on one, reconnects to the other and goes on playing, refreshes the session on the
other instance than the one that issued it; the per-address limit counts the client address
HAProxy forwards (X-Forwarded-For from a --trusted-proxies peer), fleet-wide through Redis, so
two clients behind the one balancer are limited separately. Then the database goes away: both
gateways' /ready turns 503, the balancer stops sending them traffic, and all of it comes back
with the database.

Which gateway served a request: a WebSocket's welcome names it (its connection id begins with
the gateway id); for plain requests, each gateway logs every request at --log-level debug with
the client address. With two gateways up, round robin and one request at a time, requests
alternate, so a throw-away GET /health steers the next request to a chosen gateway.

Every process is started here on free 127.0.0.x ports and stopped by PID; every wait is
bounded.

Usage: test_fleet.py PATH/TO/gatehouse-server [unittest args]
"""

import asyncio
import http.client
import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(REPO, "tests", "server"))

import websockets  # noqa: E402

import gatehouse_harness as h  # noqa: E402
from postgres_fixture import PostgresServer  # noqa: E402
from redis_fixture import RedisServer, free_port, gatehouse_module  # noqa: E402

HAPROXY = shutil.which("haproxy") or "/usr/sbin/haproxy"
HAPROXY_CFG = os.path.join(REPO, "deploy", "haproxy.cfg")
# Per address and minute over register/login/refresh/logout (counted in Redis, so fleet-wide).
AUTH_RATE_LIMIT = 5
# HAProxy checks /ready every 2 s and needs 2 answers either way (deploy/haproxy.cfg); the
# gateways probe the store every 2 s, and a store call gives up after 5 s.
FLIP_TIMEOUT_S = 20.0
# Client source addresses: HAProxy forwards them in X-Forwarded-For.
PLAYER_ADDRESS = "127.0.0.2"
LIMITED_ADDRESS = "127.0.0.3"
OTHER_ADDRESS = "127.0.0.4"
SETUP_ADDRESS = "127.0.0.5"


class HAProxy:
    """deploy/haproxy.cfg in a haproxy process of its own, in the foreground (-db)."""

    def __init__(self, bind_port, gateways):
        self.port = bind_port
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("GATEHOUSE_")}
        self.env.update({"GATEHOUSE_LB_BIND": f"127.0.0.1:{bind_port}",
                         "GATEHOUSE_GATEWAY_1": f"127.0.0.1:{gateways[0]}",
                         "GATEHOUSE_GATEWAY_2": f"127.0.0.1:{gateways[1]}"})
        self.proc = None
        self._out = None

    def start(self):
        self._out = tempfile.TemporaryFile()
        self.proc = subprocess.Popen([HAPROXY, "-db", "-f", HAPROXY_CFG], env=self.env,
                                     stdin=subprocess.DEVNULL, stdout=self._out,
                                     stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"haproxy exited with {self.proc.returncode}: "
                                   f"{self.output()[-1500:]}")
            try:
                if http_request(self.port, "GET", "/haproxy/health", timeout=1)[0] == 200:
                    return self
            except OSError:
                pass
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"haproxy did not answer within 10 s: {self.output()[-1500:]}")

    def output(self):
        self._out.seek(0)
        return self._out.read().decode("utf-8", "replace")

    def stop(self):
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)  # hard stop: connections are cut
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=5)


def http_request(port, method, path, body=None, headers=None, source=None, timeout=5.0):
    """(status, body as JSON or bytes) over a fresh connection from `source` (an address)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout,
                                      source_address=(source, 0) if source else None)
    try:
        hdrs = dict(headers or {})
        if body is not None:
            body = json.dumps(body).encode()
            hdrs["Content-Type"] = "application/json"
        conn.request(method, path, body=body, headers=hdrs)
        resp = conn.getresponse()
        data = resp.read()
        try:
            return resp.status, json.loads(data) if data else None
        except ValueError:
            return resp.status, data
    finally:
        conn.close()


class Fleet(h.AsyncCase):
    @classmethod
    def setUpClass(cls):
        cls.started = []
        try:
            cls._start()
        except BaseException:
            cls._stop_all()
            raise

    @classmethod
    def _start(cls):
        # As compose's redis service: with the gatehouse Redis module loaded.
        cls.redis = RedisServer(module=gatehouse_module(h.SERVER_BINARY)).start()
        cls.started.append(cls.redis.close)
        # A cluster of its own (not the suite's shared one): this test stops and restarts it.
        cls.pg = PostgresServer().start()
        cls.started.append(cls.pg.close)
        cls.db_url = cls.pg.url(cls.pg.create_database("fleet"))
        cls.stream = "fleet:commands:" + secrets.token_hex(4)
        cls.channel = "fleet:updates:" + secrets.token_hex(4)
        secret = "fleet-" + secrets.token_hex(16)
        cls.gw = {}
        for name in ("fleet-a", "fleet-b"):
            s = h.Server("--redis", cls.redis.url, "--db", cls.db_url,
                         "--command-stream", cls.stream, "--updates-channel", cls.channel,
                         "--gateway-id", name, "--trusted-proxies", "127.0.0.1/32",
                         "--auth-rate-limit", AUTH_RATE_LIMIT, "--log-level", "debug",
                         jwt_secret=secret)
            cls.gw[name] = s.start()
            cls.started.append(s.kill)
        cls.lb = HAProxy(free_port(), [s.port for s in cls.gw.values()]).start()
        cls.started.append(cls.lb.stop)
        # Both gateways in rotation: /ready through the balancer answers 200 from each.
        # (HAProxy's own checks come from 127.0.0.1; these from a source of their own.)
        seen = set()
        deadline = time.monotonic() + FLIP_TIMEOUT_S
        while seen != set(cls.gw):
            if time.monotonic() > deadline:
                raise RuntimeError(f"only {seen} answered /ready through the balancer")
            before = cls.request_lines("GET /ready", SETUP_ADDRESS)
            status, _ = http_request(cls.lb.port, "GET", "/ready", source=SETUP_ADDRESS)
            if status == 200:
                seen.add(cls.last_served("GET /ready", SETUP_ADDRESS, before))
            time.sleep(0.05)

    @classmethod
    def _stop_all(cls):
        for stop in reversed(cls.started):
            try:
                stop()
            except Exception as e:  # noqa: BLE001 - keep stopping the rest
                print(f"teardown: {e}", file=sys.stderr)

    @classmethod
    def tearDownClass(cls):
        problems = []
        try:
            cls.lb.stop()
            for name, s in cls.gw.items():
                code = s.stop()
                report = s.sanitizer_report()
                if report:
                    problems.append(f"{name}: sanitizer report:\n{report}")
                if code != 0:
                    problems.append(f"{name}: exit code {code}; {s.stderr_text()[-1500:]}")
        finally:
            cls._stop_all()
        if problems:
            raise AssertionError("\n".join(problems))

    # -- which gateway served what ------------------------------------------------------------
    @classmethod
    def request_lines(cls, what, source):
        """How many times each gateway logged `what` ("POST /login") from `source`."""
        line = re.compile(r" debug " + re.escape(what) + r"(\?\S*)? from " +
                          re.escape(source) + r"$", re.MULTILINE)
        return {n: len(line.findall(s.stderr_text())) for n, s in cls.gw.items()}

    @classmethod
    def last_served(cls, what, source, before, timeout=3.0):
        """The gateway whose count of `what` from `source` grew past `before` (the counts
        taken before the request)."""
        deadline = time.monotonic() + timeout
        while True:
            now = cls.request_lines(what, source)
            grown = [n for n in now if now[n] > before[n]]
            if len(grown) == 1:
                return grown[0]
            if time.monotonic() > deadline:
                raise AssertionError(f"{what!r} from {source}: counts {before} -> {now}")
            time.sleep(0.02)

    def lb_http(self, method, path, body=None, headers=None, source=PLAYER_ADDRESS, on=None):
        """A request through the balancer from `source`; with `on`, steered to that gateway
        first. Returns (status, body, the gateway that served it)."""
        if on is not None:
            self.steer(on, source)
        what = f"{method} {path}"
        before = self.request_lines(what, source)
        status, data = http_request(self.lb.port, method, path, body, headers, source)
        served = self.last_served(what, source, before)
        if on is not None:
            self.assertEqual(served, on, f"{what} was steered to {on}")
        return status, data, served

    def steer(self, target, source):
        """Makes the next request through the balancer go to `target`: GET /health until one
        lands on the other gateway (round robin alternates)."""
        for _ in range(4):
            before = self.request_lines("GET /health", source)
            status, _ = http_request(self.lb.port, "GET", "/health", source=source)
            self.assertEqual(status, 200)
            if self.last_served("GET /health", source, before) != target:
                return
        self.fail(f"GET /health never landed on the gateway other than {target}")

    def other(self, name):
        return next(n for n in self.gw if n != name)

    async def open_ws(self, access_token, source=PLAYER_ADDRESS):
        """A WebSocket through the balancer; returns (client, the gateway it landed on)."""
        ws = await websockets.connect(
            f"ws://127.0.0.1:{self.lb.port}/ws/player/{access_token}?codec=json",
            open_timeout=h.RECV_TIMEOUT_S, close_timeout=2, compression=None,
            ping_interval=None, local_addr=(source, 0))
        c = h.Client(ws, "json")
        c.welcome = await c.recv()
        self.assertEqual(c.welcome["type"], "welcome", c.welcome)
        connection_id = c.welcome["payload"]["connection_id"]
        landed = [n for n in self.gw if connection_id.startswith(n + "-")]
        self.assertEqual(len(landed), 1, connection_id)
        return c, landed[0]

    async def play(self, client, gateway, player_id, n):
        """One command, acked, on the stream with this gateway's id."""
        cid = f"move-{n}"
        ack = await client.command("player_action", {"n": n}, cid)
        self.assertEqual(ack["type"], "ack", ack)
        self.assertEqual(ack["correlation_id"], cid)
        stream_id = ack["payload"]["stream_id"]
        entry = self.redis.client().xrange(self.stream, min=stream_id, max=stream_id)
        self.assertEqual(len(entry), 1)
        fields = {k.decode(): v.decode() for k, v in entry[0][1].items()}
        self.assertEqual(fields["gateway_id"], gateway)
        self.assertEqual(fields["player_id"], player_id)
        self.assertEqual(json.loads(fields["payload"]), {"n": n})

    # -- the tests, in order --------------------------------------------------------------------
    def test_1_ready_and_metrics_name_bus_and_store(self):
        for name, s in self.gw.items():
            status, _, body = s.http("GET", "/ready")
            self.assertEqual(status, 200, body)
            self.assertEqual(json.loads(body), {"status": "ready", "bus": "redis",
                                                "bus_connected": True, "store": "postgresql",
                                                "store_up": True})
            metrics = h.parse_metrics(s.http("GET", "/metrics")[2].decode())
            self.assertEqual(h.metric_value(metrics, "gatehouse_info", bus="redis",
                                            store="postgresql", gateway_id=name), 1)
            self.assertEqual(h.metric_value(metrics, "gatehouse_store_up"), 1)
            self.assertEqual(h.metric_value(metrics, "gatehouse_bus_connected"), 1)

    async def test_2_a_session_across_both_gateways(self):
        a, b = self.gw
        username, password = "fleet_" + secrets.token_hex(4), "pw-" + secrets.token_hex(8)
        status, reg, _ = self.lb_http("POST", "/register",
                                      {"username": username, "email": username + "@example.com",
                                       "password": password}, on=a)
        self.assertEqual(status, 201, reg)
        player_id = reg["player_id"]
        # Logged in on the other gateway: the account is in the shared database.
        status, pair, _ = self.lb_http("POST", "/login",
                                       {"username": username, "password": password}, on=b)
        self.assertEqual(status, 200, pair)
        self.assertEqual(pair["player_id"], player_id)

        client, first = await self.open_ws(pair["access_token"])
        try:
            self.assertEqual(client.welcome["payload"]["player_id"], player_id)
            await self.play(client, first, player_id, 1)
        finally:
            await client.close()
        # Reconnecting lands on the other gateway (round robin), with the same token.
        for _ in range(4):
            client, second = await self.open_ws(pair["access_token"])
            if second != first:
                break
            await client.close()
        try:
            self.assertNotEqual(second, first, "reconnects never reached the other gateway")
            await self.play(client, second, player_id, 2)
        finally:
            await client.close()

        # The session goes on through the gateway that did not issue the refresh token.
        status, renewed, _ = self.lb_http("POST", "/token/refresh",
                                          {"refresh_token": pair["refresh_token"]}, on=a)
        self.assertEqual(status, 200, renewed)
        self.assertEqual(renewed["player_id"], player_id)
        self.assertNotEqual(renewed["refresh_token"], pair["refresh_token"])
        # Settings on either gateway: one account, one store.
        for gateway in (a, b):
            status, settings, _ = self.lb_http(
                "GET", "/player/settings",
                headers={"Authorization": "Bearer " + renewed["access_token"]}, on=gateway)
            self.assertEqual(status, 200, settings)
            self.assertEqual(settings["display_name"], username)
        client, _ = await self.open_ws(renewed["access_token"])
        try:
            self.assertEqual(client.welcome["payload"]["player_id"], player_id)
        finally:
            await client.close()
        # The rotated token is spent everywhere: replaying it on the other gateway is refused.
        status, problem, _ = self.lb_http("POST", "/token/refresh",
                                          {"refresh_token": pair["refresh_token"]}, on=b)
        self.assertEqual(status, 401, problem)
        self.assertEqual(problem["code"], "invalid_token")

    def test_3_forwarded_clients_are_limited_separately(self):
        def bad_login(source, headers=None):
            status, body, served = self.lb_http(
                "POST", "/login", {"username": "nobody_" + secrets.token_hex(4),
                                   "password": "wrong-password"}, headers=headers,
                source=source)
            return status, served

        # Requests alternate between the gateways, and the count is one (in Redis): the
        # limit holds fleet-wide. A fixed window may restart once meanwhile: at most twice
        # the limit before the first 429.
        answers = []
        while not answers or answers[-1][0] != 429:
            self.assertLessEqual(len(answers), 2 * AUTH_RATE_LIMIT, answers)
            answers.append(bad_login(LIMITED_ADDRESS))
        self.assertGreaterEqual(len(answers), AUTH_RATE_LIMIT + 1, answers)
        self.assertTrue(all(s == 401 for s, _ in answers[:-1]), answers)
        self.assertEqual({g for _, g in answers}, set(self.gw), "both gateways answered")
        # Another client behind the same balancer has its own budget ...
        self.assertEqual(bad_login(OTHER_ADDRESS)[0], 401)
        # ... and the limited one cannot pose as someone else: the gateways believe only the
        # entry HAProxy appended.
        self.assertEqual(bad_login(LIMITED_ADDRESS, {"X-Forwarded-For": "203.0.113.9"})[0],
                         429)

    def test_4_database_outage_takes_the_fleet_out_of_rotation(self):
        def fleet_ready():
            return {n: json.loads(s.http("GET", "/ready")[2]) for n, s in self.gw.items()}

        def wait_for(predicate, what):
            deadline = time.monotonic() + FLIP_TIMEOUT_S
            while True:
                state = fleet_ready()
                # /health is 200 from any running gateway: a 503 is HAProxy's own, with no
                # gateway in rotation.
                lb_status = http_request(self.lb.port, "GET", "/health")[0]
                if predicate(state, lb_status):
                    return state
                if time.monotonic() > deadline:
                    self.fail(f"{what}: not within {FLIP_TIMEOUT_S} s; /ready {state}, "
                              f"GET /health through the balancer {lb_status}")
                time.sleep(0.2)

        t0 = time.monotonic()
        self.pg.stop()
        try:
            state = wait_for(lambda st, lb: lb == 503 and all(
                r.get("code") == "not_ready" and r.get("store_up") is False
                for r in st.values()), "/ready 503 everywhere")
            for r in state.values():
                self.assertEqual(r["status"], 503)
                self.assertEqual(r["detail"], "the user store is not reachable")
                self.assertTrue(r["bus_connected"])
            for s in self.gw.values():
                self.assertEqual(s.metric("gatehouse_store_up"), 0)
            h.note(f"out of rotation {time.monotonic() - t0:.1f} s after PostgreSQL stopped")
        finally:
            t0 = time.monotonic()
            self.pg.start()
        wait_for(lambda st, lb: lb == 200 and all(r.get("status") == "ready"
                                                  for r in st.values()), "back in rotation")
        h.note(f"back in rotation {time.monotonic() - t0:.1f} s after PostgreSQL started")
        status, _, _ = self.lb_http("POST", "/login", {"username": "after_outage",
                                                       "password": "wrong-password"},
                                    source=OTHER_ADDRESS)
        self.assertEqual(status, 401, "the store answers again")


if __name__ == "__main__":
    h.run_main()
