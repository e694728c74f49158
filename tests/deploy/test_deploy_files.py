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
  `runtime-packages` step, run on the server binary, names installed Debian packages;
- the gatehouse Redis module's way into the compose fleet: the Dockerfile's `redis` stage
  (before the runtime stage) copies what the build script's `install-module` step leaves in
  /out and loads it from where it copied it; compose's redis service builds that stage with
  the same command; and that command line, run by Debian's redis-server on the module this
  build made after `install-module` took it, loads the module, answers GATEHOUSE.APPEND and
  writes an append-only file that a Redis without the module (a replica, a restore) loads;
  and the module's CMake install rule puts it in <libdir>/gatehouse, loadable.

The build itself is not run here (minutes of compiling); docs/deployment.md says how.

Usage: test_deploy_files.py PATH/TO/gatehouse-server [unittest args]
(the module: GATEHOUSE_REDIS_MODULE, or beside the server's build directory)
"""

import ipaddress
import json
import os
import re
import shlex
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time
import unittest
import urllib.parse

import redis  # Debian's python3-redis
import yaml  # Debian's python3-yaml

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                "server"))
from redis_fixture import REDIS_SERVER, free_port, gatehouse_module  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DEPLOY = os.path.join(REPO, "deploy")
COMPOSE = os.path.join(DEPLOY, "compose.yaml")
HAPROXY_CFG = os.path.join(DEPLOY, "haproxy.cfg")
DOCKERFILE = os.path.join(DEPLOY, "Dockerfile")
BUILD_SCRIPT = os.path.join(DEPLOY, "build-in-container.sh")
ENV_EXAMPLE = os.path.join(DEPLOY, "env.example")
HAPROXY = shutil.which("haproxy") or "/usr/sbin/haproxy"
SERVER = ""
CMAKE = os.environ.get("GATEHOUSE_CMAKE") or shutil.which("cmake") or "cmake"
# Where the build stage's build-in-container.sh puts what it builds (`build /src /out`).
BUILD_OUT = "/out"
REDIS_START_TIMEOUT_S = 10.0

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


def stage_copies(instructions, stage):
    """{destination: (source, from-stage or None)} of a stage's COPY instructions."""
    out = {}
    for args in (a for s, w, a in instructions if s == stage and w == "COPY"):
        parts = shlex.split(args)
        source_stage = None
        if parts[0].startswith("--from="):
            source_stage = parts.pop(0)[len("--from="):]
        *sources, dest = parts
        for src in sources:
            target = dest if not dest.endswith("/") else dest + os.path.basename(src)
            out[target] = (src, source_stage)
    return out


class Dockerfile(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.ins = dockerfile_instructions(DOCKERFILE)
        cls.last_stage = max(s for s, _, _ in cls.ins)

    def of(self, word, stage=None):
        return [a for s, w, a in self.ins if w == word and (stage is None or s == stage)]

    def test_multi_stage_on_debian_12(self):
        froms = [f.split(" AS ") for f in self.of("FROM")]
        self.assertTrue(all(len(f) == 2 for f in froms), "every stage is named")
        names = [name for _, name in froms]
        # The runtime stage last: `docker build` without --target makes the server's image.
        self.assertEqual((names[0], names[-1]), ("build", "runtime"))
        for image, name in froms:
            if name == "redis":  # the official image, its Debian 12 variant (RedisStage)
                self.assertEqual(image, "redis:7.0-bookworm")
            else:
                self.assertRegex(image, r"^debian:bookworm(-slim)?$", name)

    def copies(self, stage):
        return stage_copies(self.ins, stage)

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
                else:
                    # What the build stage built, all of it in the build step's OUT.
                    self.assertEqual(from_stage, "build", src)
                    self.assertTrue(src.startswith(BUILD_OUT + "/"), src)

    def test_build_stage_builds_into_out(self):
        builds = [json.loads(a) for a in self.of("RUN", 0) if json.loads(a)[1] == "build"]
        self.assertEqual(len(builds), 1)
        self.assertEqual(builds[0][2:], ["/src", BUILD_OUT])

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


def redis_stage():
    """(its FROM image, its COPY instructions as {destination: (source, from-stage)}, its CMD
    argv) of the Dockerfile's `redis` stage."""
    ins = dockerfile_instructions(DOCKERFILE)
    stage = next(s for s, w, a in ins if w == "FROM" and a.endswith(" AS redis"))
    image = next(a for s, w, a in ins if s == stage and w == "FROM").split(" AS ")[0]
    cmds = [json.loads(a) for s, w, a in ins if s == stage and w == "CMD"]
    return image, stage_copies(ins, stage), cmds[-1] if cmds else None


def option_value(argv, option):
    """The value after `option` in a redis-server command line (None when absent)."""
    return argv[argv.index(option) + 1] if option in argv else None


class RedisStage(unittest.TestCase):
    """The module's way into what operators deploy: build script -> Dockerfile -> compose."""

    @classmethod
    def setUpClass(cls):
        cls.image, cls.copies, cls.cmd = redis_stage()
        cls.module_path = option_value(cls.cmd or [], "--loadmodule")
        cls.compose_redis = yaml.safe_load(read(COMPOSE))["services"]["redis"]

    def test_stage_loads_the_module_it_copies(self):
        self.assertEqual(self.image, "redis:7.0-bookworm")
        self.assertIsNotNone(self.cmd, "the redis stage has a CMD (exec form)")
        self.assertEqual(self.cmd[0], "redis-server")
        self.assertIsNotNone(self.module_path, "redis-server --loadmodule")
        self.assertIn(self.module_path, self.copies, "the module loaded is the one copied in")
        src, from_stage = self.copies[self.module_path]
        self.assertEqual((from_stage, src), ("build", BUILD_OUT + "/lib/gatehouse_redis.so"))
        self.assertEqual(option_value(self.cmd, "--appendonly"), "yes")

    def test_compose_builds_the_stage_with_its_command(self):
        r = self.compose_redis
        self.assertEqual(r["build"], {"context": "..", "dockerfile": "deploy/Dockerfile",
                                      "target": "redis"})
        self.assertEqual(r.get("command", self.cmd), self.cmd)
        gateway_image = yaml.safe_load(read(COMPOSE))["services"]["gateway-1"]["image"]
        self.assertNotEqual(r["image"], gateway_image, "its own tag, not the gateways' image")
        self.assertIn("redis-data:/data", r["volumes"])

    def test_build_script_builds_the_module_and_installs_it(self):
        # The script's build step takes the CMake target's file (redis_module/, OUTPUT_NAME
        # gatehouse_redis: the file this test was given) through install-module into OUT.
        module = gatehouse_module(SERVER)
        self.assertEqual(os.path.basename(os.path.dirname(module)), "redis_module")
        self.assertEqual(os.path.basename(module), "gatehouse_redis.so")
        body = re.search(r"\ncmd_build\(\) \{\n(.*?)\n\}\n", read(BUILD_SCRIPT), re.DOTALL).group(1)
        self.assertRegex(body, r"--target [^\n]*\bgatehouse_redis_module\b")
        self.assertIn('cmd_install_module "$build_dir/redis_module/gatehouse_redis.so" "$out"',
                      body)

    def test_install_module_refuses_what_a_redis_host_cannot_load(self):
        with tempfile.TemporaryDirectory(prefix="gatehouse-deploy-") as out:
            # The server links libstdc++, OpenSSL ...: a Redis host need not have them.
            p = subprocess.run([BUILD_SCRIPT, "install-module", SERVER, out],
                               capture_output=True, text=True, timeout=60)
            self.assertEqual(p.returncode, 1, p.stderr)
            foreign = re.search(r" links (.*): a Redis host need not have them", p.stderr)
            self.assertIsNotNone(foreign, p.stderr)
            self.assertIn("libstdc++.so.6", foreign.group(1).split())
            self.assertNotIn("libc.so.6", foreign.group(1).split())
            # The C library links nothing else, and is no Redis module.
            libc = re.search(r"libc\.so\.6 => (\S+)",
                             subprocess.run(["ldd", SERVER], capture_output=True,
                                            text=True).stdout).group(1)
            p = subprocess.run([BUILD_SCRIPT, "install-module", libc, out],
                               capture_output=True, text=True, timeout=60)
            self.assertEqual(p.returncode, 1, p.stderr)
            self.assertIn("does not export RedisModule_OnLoad", p.stderr)
            self.assertEqual(os.listdir(out), [])

    def test_image_command_loads_the_installed_module(self):
        """The stage's command line as Debian's redis-server runs it, on the file the build
        script's install-module step made of this build's module, at the path the stage copies
        it from (relative to OUT)."""
        with tempfile.TemporaryDirectory(prefix="gatehouse-deploy-") as tmp:
            out, data = os.path.join(tmp, "out"), os.path.join(tmp, "data")
            os.mkdir(data)
            p = subprocess.run([BUILD_SCRIPT, "install-module", gatehouse_module(SERVER), out],
                               capture_output=True, text=True, timeout=60)
            self.assertEqual(p.returncode, 0, p.stderr)
            installed = os.path.join(out, os.path.relpath(self.copies[self.module_path][0],
                                                          BUILD_OUT))
            self.assertTrue(os.path.isfile(installed), installed)
            # Redis 7 refuses a module file without execute permission; COPY keeps the mode.
            self.assertTrue(os.stat(installed).st_mode & stat.S_IXOTH, "executable")

            argv = [installed if a == self.module_path else a for a in self.cmd]
            argv[0] = REDIS_SERVER
            with RedisProcess(argv, data) as r:
                c = r.client
                modules = {m[b"name"]: m for m in c.module_list()}
                self.assertIn(b"gatehouse", modules)
                self.assertEqual(c.config_get("appendonly"), {"appendonly": "yes"})
                reply = c.execute_command(
                    "GATEHOUSE.APPEND", "deploy:commands", 120, 1000, "deploy-gw",
                    "6:player:c-1", 0, "move", "{}", "json", "c-1", "player", "conn-1",
                    "deploy", 1700000000000)
                self.assertEqual(len(reply), 1)
                entry_id = reply[0]
                self.assertRegex(entry_id, rb"^[0-9]+-[0-9]+$")
            # The module propagates plain XADD, HSET and EXPIREAT: what it wrote comes back
            # from the append-only file in a redis-server that has no module.
            plain = [REDIS_SERVER, "--appendonly", "yes"]
            with RedisProcess(plain, data) as r:
                c = r.client
                self.assertEqual(c.module_list(), [])
                entries = c.xrange("deploy:commands")
                self.assertEqual([e for e, _ in entries], [entry_id])
                self.assertEqual(entries[0][1][b"gateway_id"], b"deploy-gw")
                hashes = c.keys("deploy:commands:dedupe:*")
                self.assertEqual(len(hashes), 1)
                self.assertEqual(c.hget(hashes[0], "6:player:c-1"), entry_id)


def cache_value(build_dir, name):
    """A variable of the build's CMakeCache.txt (None when it has none)."""
    with open(os.path.join(build_dir, "CMakeCache.txt"), encoding="utf-8") as f:
        for line in f:
            key, _, value = line.rstrip("\n").partition("=")
            if key.split(":", 1)[0] == name:
                return value
    return None


class InstalledModule(unittest.TestCase):
    """`cmake --install` of this build puts the module in <libdir>/gatehouse, where
    docs/deployment.md tells operators to load it from, in a state Redis 7 loads."""

    def test_install_rule_puts_a_loadable_module_in_libdir_gatehouse(self):
        module = gatehouse_module(SERVER)
        module_build = os.path.dirname(module)  # <build>/redis_module
        build_dir = os.path.dirname(module_build)
        if cache_value(build_dir, "GATEHOUSE_INSTALL") not in ("ON", "TRUE", "1"):
            self.skipTest("this build has GATEHOUSE_INSTALL off")
        libdir = cache_value(build_dir, "CMAKE_INSTALL_LIBDIR")
        with tempfile.TemporaryDirectory(prefix="gatehouse-deploy-") as tmp:
            prefix, data = os.path.join(tmp, "prefix"), os.path.join(tmp, "data")
            os.mkdir(data)
            # The redis_module directory's own install script: the rest of the build need
            # not be built.
            p = subprocess.run([CMAKE, "-DCMAKE_INSTALL_PREFIX=" + prefix, "-P",
                                os.path.join(module_build, "cmake_install.cmake")],
                               capture_output=True, text=True, timeout=60)
            self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
            installed = os.path.join(prefix, libdir, "gatehouse", "gatehouse_redis.so")
            self.assertTrue(os.path.isfile(installed), installed)
            # CMake installs shared objects without execute permission on Debian
            # (CMAKE_INSTALL_SO_NO_EXE); Redis 7 refuses such a module.
            self.assertTrue(os.stat(installed).st_mode & stat.S_IXOTH, "executable")
            with RedisProcess([REDIS_SERVER, "--loadmodule", installed], data) as r:
                self.assertIn(b"gatehouse", [m[b"name"] for m in r.client.module_list()])


class RedisProcess:
    """redis-server with the given command line, on a free loopback port with `data` as its
    working directory (as the image's /data), until the `with` block ends (SIGTERM, bounded)."""

    def __init__(self, argv, data):
        self.port = free_port()
        self.argv = argv + ["--port", str(self.port), "--bind", "127.0.0.1", "--dir", data,
                            "--save", "", "--daemonize", "no", "--loglevel", "warning"]
        self.log_path = os.path.join(data, "redis.log")
        self.proc = None
        self.client = None

    def __enter__(self):
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL, stdout=log,
                                         stderr=subprocess.STDOUT)
        self.client = redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=5,
                                  socket_connect_timeout=2)
        deadline = time.monotonic() + REDIS_START_TIMEOUT_S
        while True:
            if self.proc.poll() is not None:
                raise AssertionError(f"{self.argv[:6]} exited with {self.proc.returncode}: "
                                     f"{read(self.log_path)[-800:]}")
            try:
                if self.client.ping():
                    return self
            except redis.exceptions.RedisError:
                if time.monotonic() > deadline:
                    self.__exit__()
                    raise AssertionError(f"redis-server did not answer PING within "
                                         f"{REDIS_START_TIMEOUT_S} s")
                time.sleep(0.02)

    def __exit__(self, *exc):
        self.client.close()
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)


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
