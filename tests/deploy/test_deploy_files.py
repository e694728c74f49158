#!/usr/bin/env python3
"""The deployment files, checked with what runs without a container engine:

- deploy/compose.yaml parsed with python3-yaml: its services, images and builds, environment
  (every GATEHOUSE_* variable a real flag of the server; both gateways on the same bus,
  database and JWT secret), health checks, depends_on conditions, the balancer's port, and the
  gateways trusting exactly the balancer's network;
- deploy/haproxy.cfg validated by HAProxy itself (`haproxy -c`), with the addresses the
  compose file gives it and with loopback ones (what tests/deploy/test_fleet.py runs);
- deploy/Dockerfile read instruction by instruction: multi-stage on Debian 12, every RUN a
  script of this repository that exists, is executable and parses (`bash -n`), a non-root
  USER, a HEALTHCHECK on /ready, EXPOSE 8080, the server as ENTRYPOINT;
- deploy/build-in-container.sh: its build packages are all on dev.sh's list, and its
  `runtime-packages` step, run on the server binary, names installed Debian packages.

The build itself is not run here (minutes of compiling); docs/deployment.md says how.

Usage: test_deploy_files.py PATH/TO/gatehouse-server [unittest args]
"""

import ipaddress
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import unittest
import urllib.parse

import yaml  # Debian's python3-yaml

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DEPLOY = os.path.join(REPO, "deploy")
COMPOSE = os.path.join(DEPLOY, "compose.yaml")
HAPROXY_CFG = os.path.join(DEPLOY, "haproxy.cfg")
DOCKERFILE = os.path.join(DEPLOY, "Dockerfile")
BUILD_SCRIPT = os.path.join(DEPLOY, "build-in-container.sh")
ENV_EXAMPLE = os.path.join(DEPLOY, "env.example")
HAPROXY = shutil.which("haproxy") or "/usr/sbin/haproxy"
SERVER = ""

GATEWAYS = ("gateway-1", "gateway-2")
EXPECTED_SERVICES = {"gateway-1", "gateway-2", "demo-game", "loadbalancer", "redis", "postgres"}
INTERPOLATION = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::?[-?+][^}]*)?\}")


def read(path):
    with open(path, encoding="utf-8") as f:
        return f.read()


def env_example():
    values = {}
    for line in read(ENV_EXAMPLE).splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            name, _, value = line.partition("=")
            values[name] = value
    return values


def interpolate(text, values):
    """What docker compose makes of `${VAR}`, `${VAR:?message}` and `${VAR:-default}`, with
    `values` as its .env file."""
    def one(m):
        name = m.group(1)
        if name not in values:
            raise AssertionError(f"{text!r} uses ${{{name}}}, which deploy/env.example lacks")
        return values[name]
    return INTERPOLATION.sub(one, text)


def server_env_names():
    """Every GATEHOUSE_* variable gatehouse-server reads: the environment twin of each flag
    its --help lists."""
    p = subprocess.run([SERVER, "--help"], capture_output=True, text=True, timeout=30)
    flags = set(re.findall(r"^\s+(--[a-z][a-z0-9-]*)", p.stdout, re.MULTILINE))
    flags.discard("--help")
    return {"GATEHOUSE_" + f[2:].upper().replace("-", "_") for f in flags}


class Compose(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.doc = yaml.safe_load(read(COMPOSE))
        cls.services = cls.doc["services"]
        cls.env = env_example()

    def service_env(self, name):
        env = self.services[name].get("environment", {})
        self.assertIsInstance(env, dict, f"{name}: environment as a mapping")
        return {k: interpolate(str(v), self.env) for k, v in env.items()}

    def depends(self, name):
        deps = self.services[name].get("depends_on", {})
        self.assertIsInstance(deps, dict, f"{name}: depends_on with conditions")
        return {k: v.get("condition") for k, v in deps.items()}

    def test_services(self):
        self.assertEqual(set(self.services), EXPECTED_SERVICES)

    def test_every_service_has_an_image_or_a_build_that_exists(self):
        for name, s in self.services.items():
            self.assertTrue("image" in s or "build" in s, name)
            if "build" in s:
                context = os.path.normpath(os.path.join(DEPLOY, s["build"]["context"]))
                self.assertEqual(context, REPO, f"{name} builds from the repository root")
                dockerfile = os.path.join(context, s["build"]["dockerfile"])
                self.assertTrue(os.path.isfile(dockerfile), f"{name}: {dockerfile}")
            if "image" in s and "build" not in s:
                # Pulled images: pinned to a major version on Debian 12, never `latest`.
                self.assertRegex(s["image"], r"^[a-z0-9]+:[0-9.]+-bookworm$", name)

    def test_gateways_share_bus_database_and_secret(self):
        a, b = (self.service_env(g) for g in GATEWAYS)
        self.assertEqual({k: v for k, v in a.items() if k != "GATEHOUSE_GATEWAY_ID"},
                         {k: v for k, v in b.items() if k != "GATEHOUSE_GATEWAY_ID"})
        self.assertNotEqual(a["GATEHOUSE_GATEWAY_ID"], b["GATEHOUSE_GATEWAY_ID"])
        self.assertEqual(self.services["gateway-1"]["image"],
                         self.services["gateway-2"]["image"])
        # The secret comes from the .env file, and compose refuses to start without it.
        raw = self.services["gateway-1"]["environment"]["GATEHOUSE_JWT_SECRET"]
        self.assertRegex(raw, r"^\$\{GATEHOUSE_JWT_SECRET:\?")
        self.assertEqual(a["GATEHOUSE_JWT_SECRET"], self.env["GATEHOUSE_JWT_SECRET"])

    def test_gateway_environment_names_real_flags(self):
        known = server_env_names()
        self.assertIn("GATEHOUSE_TRUSTED_PROXIES", known)
        for g in GATEWAYS:
            for name in self.service_env(g):
                self.assertIn(name, known, f"{g}: {name} is no flag's variable")

    def test_gateways_use_redis_and_postgresql_services(self):
        env = self.service_env("gateway-1")
        redis_url = urllib.parse.urlsplit(env["GATEHOUSE_REDIS"])
        self.assertEqual((redis_url.scheme, redis_url.hostname), ("redis", "redis"))
        db = urllib.parse.urlsplit(env["GATEHOUSE_DB"])
        self.assertEqual((db.scheme, db.hostname, db.port), ("postgresql", "postgres", 5432))
        pg = self.service_env("postgres")
        self.assertEqual(db.username, pg["POSTGRES_USER"])
        self.assertEqual(db.password, pg["POSTGRES_PASSWORD"])
        self.assertEqual(db.path.lstrip("/"), pg["POSTGRES_DB"])
        self.assertEqual(db.password, self.env["POSTGRES_PASSWORD"])
        self.assertEqual(urllib.parse.quote(db.password, safe=""), db.password,
                         "the example password needs no escaping in the URL")

    def test_gateways_wait_for_healthy_redis_and_postgres(self):
        for g in GATEWAYS:
            self.assertEqual(self.depends(g),
                             {"redis": "service_healthy", "postgres": "service_healthy"}, g)

    def test_healthchecks(self):
        for name in ("gateway-1", "gateway-2", "loadbalancer", "redis", "postgres"):
            hc = self.services[name].get("healthcheck")
            self.assertIsNotNone(hc, name)
            self.assertEqual(hc["test"][0], "CMD", name)
        for g in GATEWAYS:
            self.assertEqual(self.services[g]["healthcheck"]["test"],
                             ["CMD", "/usr/local/bin/gatehouse-build", "healthcheck"])
        self.assertIn("/haproxy/health", " ".join(self.services["loadbalancer"]["healthcheck"]
                                                  ["test"]))
        self.assertEqual(self.services["redis"]["healthcheck"]["test"][1:], ["redis-cli", "ping"])
        self.assertEqual(self.services["postgres"]["healthcheck"]["test"][1], "pg_isready")

    def test_gateways_drain_before_sigkill(self):
        for g in GATEWAYS:
            grace = self.services[g]["stop_grace_period"]
            self.assertGreater(int(grace.rstrip("s")), 10, "more than --shutdown-timeout")

    def test_load_balancer(self):
        lb = self.services["loadbalancer"]
        self.assertEqual(lb["ports"], ["8080:8080"])
        self.assertEqual(lb["build"]["dockerfile"], "deploy/haproxy.Dockerfile")
        self.assertIn("COPY deploy/haproxy.cfg /etc/haproxy/haproxy.cfg",
                      read(os.path.join(DEPLOY, "haproxy.Dockerfile")))
        env = self.service_env("loadbalancer")
        self.assertEqual(env["GATEHOUSE_LB_BIND"], ":8080")
        self.assertEqual({env["GATEHOUSE_GATEWAY_1"], env["GATEHOUSE_GATEWAY_2"]},
                         {g + ":8080" for g in GATEWAYS})
        self.assertEqual(self.depends("loadbalancer"),
                         {g: "service_started" for g in GATEWAYS})
        # Only the balancer publishes a port.
        for name, s in self.services.items():
            if name != "loadbalancer":
                self.assertNotIn("ports", s, name)

    def test_gateways_trust_the_balancer_network_only(self):
        lb_address = ipaddress.ip_address(
            self.services["loadbalancer"]["networks"]["edge"]["ipv4_address"])
        edge = ipaddress.ip_network(
            self.doc["networks"]["edge"]["ipam"]["config"][0]["subnet"])
        self.assertIn(lb_address, edge)
        trusted = [ipaddress.ip_network(c.strip()) for c in
                   self.service_env("gateway-1")["GATEHOUSE_TRUSTED_PROXIES"].split(",")]
        self.assertEqual(trusted, [edge])
        # The edge network holds the balancer and the gateways, nothing else.
        on_edge = {n for n, s in self.services.items()
                   if "edge" in (s.get("networks") or [])}
        self.assertEqual(on_edge, {"loadbalancer", *GATEWAYS})
        self.assertTrue(self.doc["networks"]["backend"]["internal"])

    def test_demo_game_service(self):
        game = self.services["demo-game"]
        self.assertEqual(game["entrypoint"], ["/usr/local/bin/gatehouse-demo-game"])
        self.assertEqual(game["image"], self.services["gateway-1"]["image"])
        self.assertEqual(self.service_env("demo-game")["GATEHOUSE_REDIS"],
                         self.service_env("gateway-1")["GATEHOUSE_REDIS"])
        self.assertEqual(self.depends("demo-game"), {"redis": "service_healthy"})

    def test_env_example_is_the_only_source_of_secrets(self):
        used = set(INTERPOLATION.findall(read(COMPOSE)))
        self.assertEqual(used, set(self.env))
        self.assertIn(".env", read(os.path.join(DEPLOY, ".gitignore")).split())


def haproxy_check(env_overrides):
    env = {k: v for k, v in os.environ.items() if not k.startswith("GATEHOUSE_")}
    env.update(env_overrides)
    return subprocess.run([HAPROXY, "-c", "-f", HAPROXY_CFG], capture_output=True, text=True,
                          env=env, timeout=30)


class HAProxyConfig(unittest.TestCase):
    def test_valid_with_loopback_addresses(self):
        p = haproxy_check({"GATEHOUSE_LB_BIND": "127.0.0.1:18080",
                           "GATEHOUSE_GATEWAY_1": "127.0.0.1:18081",
                           "GATEHOUSE_GATEWAY_2": "127.0.0.1:18082"})
        out = p.stdout + p.stderr
        self.assertEqual(p.returncode, 0, out)
        self.assertIn("Configuration file is valid", out)
        self.assertNotIn("[WARNING]", out)
        self.assertNotIn("[ALERT]", out)

    def test_valid_with_the_compose_defaults(self):
        # The service names do not resolve outside compose: HAProxy warns and starts anyway
        # (init-addr none), and finds them through the compose resolver once they exist.
        p = haproxy_check({})
        out = p.stdout + p.stderr
        self.assertEqual(p.returncode, 0, out)
        self.assertNotIn("[ALERT]", out)

    def test_settings(self):
        text = read(HAPROXY_CFG)
        lines = [ln.split("#", 1)[0].split() for ln in text.splitlines()]
        words = [" ".join(ln) for ln in lines if ln]
        for expected in ("mode http", "option forwardfor", "balance roundrobin",
                         "option httpchk", "http-check expect status 200",
                         "timeout tunnel 1h"):
            self.assertIn(expected, words)
        self.assertTrue(any(w.startswith("http-check send meth GET uri /ready") for w in words))
        self.assertFalse(any(w.startswith(("cookie", "stick")) for w in words),
                         "no stickiness: any gateway serves any player")


def dockerfile_instructions(path):
    """(stage index, INSTRUCTION, arguments) for each instruction, continuations joined."""
    out, stage, pending = [], -1, ""
    for raw in read(path).splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        line = pending + line
        pending = ""
        word, _, rest = line.partition(" ")
        word = word.upper()
        if word == "FROM":
            stage += 1
        out.append((stage, word, rest.strip()))
    return out


class Dockerfile(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.ins = dockerfile_instructions(DOCKERFILE)
        cls.last_stage = max(s for s, _, _ in cls.ins)

    def of(self, word, stage=None):
        return [a for s, w, a in self.ins if w == word and (stage is None or s == stage)]

    def test_multi_stage_on_debian_12(self):
        froms = self.of("FROM")
        self.assertGreaterEqual(len(froms), 2)
        for f in froms:
            self.assertRegex(f, r"^debian:bookworm(-slim)?( AS \w+)?$")
        self.assertTrue(froms[0].endswith(" AS build"))

    def copies(self, stage):
        """{destination: (source, from-stage or None)} of a stage's COPY instructions."""
        out = {}
        for args in self.of("COPY", stage):
            parts = shlex.split(args)
            source_stage = None
            if parts[0].startswith("--from="):
                source_stage = parts.pop(0)[len("--from="):]
            *sources, dest = parts
            for src in sources:
                target = dest if not dest.endswith("/") else dest + os.path.basename(src)
                out[target] = (src, source_stage)
        return out

    def test_every_run_is_a_script_of_this_repository(self):
        build_script = read(BUILD_SCRIPT)
        for stage in range(self.last_stage + 1):
            copies = self.copies(stage)
            for args in self.of("RUN", stage):
                argv = json.loads(args)  # exec form: no shell one-liners to go untested
                self.assertIn(argv[0], copies, f"RUN {args}: its program is not copied in")
                src, from_stage = copies[argv[0]]
                if from_stage is None:
                    path = os.path.join(REPO, src)
                    self.assertTrue(os.path.isfile(path), src)
                    self.assertTrue(os.access(path, os.X_OK), f"{src} is not executable")
                    p = subprocess.run(["bash", "-n", path], capture_output=True, text=True)
                    self.assertEqual(p.returncode, 0, p.stderr)
                else:
                    # Copied from the build stage, where the script installed itself there.
                    self.assertEqual(from_stage, "build")
                    self.assertIn(f'"$out/bin/{os.path.basename(src)}"', build_script)
                self.assertIn(f"\n        {argv[1]})", build_script,
                              f"RUN {args}: the script has no '{argv[1]}' command")

    def test_copied_sources_exist(self):
        for stage in range(self.last_stage + 1):
            for dest, (src, from_stage) in self.copies(stage).items():
                if from_stage is None:
                    self.assertTrue(os.path.exists(os.path.join(REPO, src)), src)

    def test_runtime_stage(self):
        runtime = self.last_stage
        users = self.of("USER", runtime)
        self.assertEqual(len(users), 1)
        uid = users[0].split(":")[0]
        self.assertNotIn(uid, ("root", "0"))
        self.assertIn(f"--uid \"$service_uid\"", read(BUILD_SCRIPT))
        self.assertIn(f"readonly service_uid={uid}", read(BUILD_SCRIPT))
        self.assertEqual(self.of("EXPOSE", runtime), ["8080"])
        entry = json.loads(self.of("ENTRYPOINT", runtime)[0])
        self.assertEqual(entry, ["/usr/local/bin/gatehouse-server"])
        copied = self.copies(runtime)
        self.assertEqual(copied["/usr/local/bin/gatehouse-server"][1], "build")
        self.assertEqual(copied["/usr/local/bin/gatehouse-demo-game"][1], "build")
        health = self.of("HEALTHCHECK", runtime)
        self.assertEqual(len(health), 1)
        self.assertIn('CMD ["/usr/local/bin/gatehouse-build", "healthcheck"]', health[0])
        # ... which asks /ready.
        self.assertRegex(read(BUILD_SCRIPT), r'"\$scheme://127\.0\.0\.1:\$port/ready"')

    def test_dockerignore_keeps_build_trees_out(self):
        ignored = read(os.path.join(REPO, ".dockerignore")).split()
        self.assertIn("build/", ignored)
        self.assertIn(".git/", ignored)


class BuildScript(unittest.TestCase):
    def test_parses(self):
        p = subprocess.run(["bash", "-n", BUILD_SCRIPT], capture_output=True, text=True)
        self.assertEqual(p.returncode, 0, p.stderr)

    def test_build_packages_are_on_dev_sh_list(self):
        def package_list(path, name):
            text = read(path)
            body = re.search(r"readonly " + name + r"=\((.*?)\n\)", text, re.DOTALL).group(1)
            words = []
            for line in body.splitlines():
                words += line.split("#", 1)[0].split()
            return words
        dev = set(package_list(os.path.join(REPO, "dev.sh"), "packages"))
        build = package_list(BUILD_SCRIPT, "build_packages")
        self.assertGreater(len(build), 10)
        self.assertEqual([p for p in build if p not in dev], [])

    def test_runtime_packages_of_the_server(self):
        p = subprocess.run([BUILD_SCRIPT, "runtime-packages", SERVER], capture_output=True,
                           text=True, timeout=60)
        self.assertEqual(p.returncode, 0, p.stderr)
        packages = p.stdout.split()
        for expected in ("libc6", "libssl3", "libsodium23", "libhiredis0.14"):
            self.assertIn(expected, packages)
        for pkg in packages:
            q = subprocess.run(["dpkg-query", "-W", "-f=${Status}", pkg], capture_output=True,
                               text=True)
            self.assertEqual(q.stdout, "install ok installed", pkg)
            self.assertFalse(pkg.endswith("-dev"), pkg)

    def test_unknown_command_fails_with_usage(self):
        p = subprocess.run([BUILD_SCRIPT, "nonsense"], capture_output=True, text=True)
        self.assertEqual(p.returncode, 1)
        self.assertIn("build-in-container.sh deps", p.stderr)


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    SERVER = os.path.abspath(sys.argv.pop(1))
    unittest.main(verbosity=2)
