#!/usr/bin/env python3
"""gatehouse-server's configuration (docs/operations.md, "Configuration file"): a TOML file
(`--config`, GATEHOUSE_CONFIG) under the environment under the command line, `check-config`,
every flag checked before anything is opened with every problem named by its flag (and its
file and line), never a secret in a message, and `--version` wherever it stands.

Usage: test_config.py PATH/TO/gatehouse-server [unittest args]
"""

import os
import re
import socket
import subprocess
import tempfile
import unittest

import gatehouse_harness as h
from gatehouse_harness import Server

EXIT_TIMEOUT_S = 20.0
REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
EXAMPLE = os.path.join(REPO, "deploy", "gatehouse.toml")
SECRET = "s3cret-" + "q" * 20  # appears in no message, whatever the flag


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def gateway_id_of(server):
    """The gateway id /metrics reports (gatehouse_info's label)."""
    status, _, body = server.http("GET", "/metrics")
    assert status == 200, status
    m = re.search(r'gateway_id="([^"]*)"', body.decode())
    assert m, "gatehouse_info carries the gateway id"
    return m.group(1)


class ConfigCase(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.TemporaryDirectory()
        self.addCleanup(self.dir.cleanup)

    def write(self, text, name="gatehouse.toml"):
        path = os.path.join(self.dir.name, name)
        with open(path, "w", encoding="utf-8") as f:
            f.write(text)
        return path

    def run_to_exit(self, args, env=None):
        """(exit code, stdout, stderr) of a run that is expected to end by itself."""
        p = subprocess.run([h.SERVER_BINARY, *args], stdin=subprocess.DEVNULL,
                           capture_output=True, env=h._clean_env(env), timeout=EXIT_TIMEOUT_S,
                           cwd=self.dir.name)
        return p.returncode, p.stdout.decode("utf-8", "replace"), p.stderr.decode(
            "utf-8", "replace")

    def assert_refused(self, args, *expected, env=None, check_only=True):
        """Exit 2, every `expected` text on stderr, no secret, no ready line."""
        code, out, err = self.run_to_exit((["check-config"] if check_only else []) + args, env)
        self.assertEqual(code, 2, f"{args}: stdout {out!r} stderr {err[-500:]!r}")
        for text in expected:
            self.assertIn(text, err, f"{args}: {text!r} named")
        self.assertNotIn(SECRET, out + err, "a secret was repeated")
        self.assertNotIn("gatehouse ready", out)
        self.assertNotIn("configuration ok", out)
        return err


class ConfigFile(ConfigCase):
    def test_a_file_alone_starts_the_server(self):
        bot_key = "botkey-" + SECRET
        path = self.write(f"""
# Every value from the file: no flag but --config.
listen = "127.0.0.1:0"
jwt-secret = "{SECRET}"
db = "sqlite::memory:"
password-hash-kib = 8192
password_hash_passes = 1          # underscores for dashes
bot-key = ["rover:{bot_key}", "lander:other-key"]
gateway-id = "from-the-file"
ws-compression = true
shutdown-timeout = 2.5
log-level = "info"
""")
        s = Server("--config", path, default_args=False)
        s.jwt_secret = SECRET
        s.start()
        try:
            status, _, body = s.http("GET", "/health")
            self.assertEqual((status, body), (200, b'{"status":"ok"}'))
            self.assertEqual(gateway_id_of(s), "from-the-file")
            # The file's bot key and JWT secret are the ones the server checks.
            self.assertEqual(h.RawWs(s.port, "/ws/bot/" + bot_key).status, 101)
            self.assertEqual(h.RawWs(s.port, "/ws/bot/not-" + bot_key).status, 401)
            self.assertEqual(h.RawWs(s.port, "/ws/player/" + s.token("filed")).status, 101)
            ws = h.RawWs(s.port, "/ws/player/" + s.token("deflated"),
                         headers={"Sec-WebSocket-Extensions": "permessage-deflate"})
            self.assertIn("permessage-deflate", ws.headers.get("sec-websocket-extensions", ""))
            self.assertEqual(s.stop(), 0)
        finally:
            s.kill()
        self.assertNotIn(SECRET, s.stderr_text())

    def test_flags_over_environment_over_file(self):
        file_port, env_port = free_port(), free_port()
        path = self.write(f"""
listen = "127.0.0.1:{file_port}"
gateway-id = "file-id"
jwt-secret = "{SECRET}"
db = "sqlite::memory:"
password-hash-kib = 8192
password-hash-passes = 1
""")
        runs = [
            # (flags, environment, expected gateway id, expected port)
            (["--config", path], {}, "file-id", file_port),
            ([], {"GATEHOUSE_CONFIG": path, "GATEHOUSE_GATEWAY_ID": "env-id"}, "env-id",
             file_port),
            (["--config", path], {"GATEHOUSE_LISTEN": f"127.0.0.1:{env_port}"}, "file-id",
             env_port),
            (["--config", path, "--gateway-id", "flag-id", "--listen", "127.0.0.1:0"],
             {"GATEHOUSE_GATEWAY_ID": "env-id", "GATEHOUSE_LISTEN": f"127.0.0.1:{env_port}"},
             "flag-id", None),
        ]
        for flags, env, want_id, want_port in runs:
            with self.subTest(flags=flags, env=env):
                s = Server(*flags, default_args=False, env=env)
                s.jwt_secret = SECRET
                s.start()
                try:
                    self.assertEqual(gateway_id_of(s), want_id)
                    if want_port is None:
                        self.assertNotIn(s.port, (file_port, env_port))
                    else:
                        self.assertEqual(s.port, want_port)
                    self.assertEqual(s.stop(), 0)
                finally:
                    s.kill()

    def test_the_environment_overrides_a_file_value_that_is_wrong(self):
        # The file's value is never applied, so never checked: GATEHOUSE_ACCESS_TTL wins.
        path = self.write('access-ttl = 0\nlisten = "127.0.0.1:0"\n')
        code, out, err = self.run_to_exit(["check-config", "--config", path],
                                          {"GATEHOUSE_ACCESS_TTL": "60"})
        self.assertEqual((code, out.strip()), (0, "configuration ok"), err)
        self.assert_refused(["--config", path], path + ":1: --access-ttl")

    def test_an_empty_variable_does_not_silently_yield_to_the_file(self):
        path = self.write('gateway-id = "file-id"\nlisten = "127.0.0.1:0"\n')
        self.assert_refused(["--config", path],
                            path + ":1: gateway-id: GATEHOUSE_GATEWAY_ID is empty and read as "
                            "unset; the file's gateway-id would apply: unset one",
                            env={"GATEHOUSE_GATEWAY_ID": ""})
        # Empty but the file does not set that key: nothing to confuse.
        code, out, err = self.run_to_exit(["check-config", "--config", path],
                                          {"GATEHOUSE_ACCESS_TTL": ""})
        self.assertEqual((code, out.strip()), (0, "configuration ok"), err)

    def test_unknown_keys_wrong_types_and_bad_toml_name_file_line_and_key(self):
        cases = [
            (f'listen = "127.0.0.1:0"\nfrobnicate = "{SECRET}"\n', ":2: frobnicate: unknown key"),
            (f'[redis]\nurl = "{SECRET}"\n', ":1: redis:"),
            (f'\njwt-secret = ["{SECRET}"]\n', ":2: jwt-secret: expects a string"),
            (f'publish-key = {{ key = "{SECRET}" }}\n', ":1: publish-key: expects a string"),
            ('access-ttl = "900"\n', ":1: access-ttl: expects a whole number"),
            ("ws-compression = 1\n", ":1: ws-compression: expects true or false"),
            (f'bot-key = ["a:{SECRET}", 7]\n', ":1: bot-key: expects an array of strings"),
            ('log-level = "loud"\n', ":1: log-level: not one of {debug,info,warn,error}"),
            ("ws-rate-limit = -1\n", ":1: ws-rate-limit: not a whole number"),
            ('bot-key = "a:b"\n\nbot_key = "c:d"\n', ":3: bot_key: sets --bot-key"),
            ('config = "other.toml"\n', ":1: config: unknown key"),
            # Not TOML: the line (and column) is named, the unquoted secret is not repeated.
            (f'listen = "127.0.0.1:0"\njwt-secret = {SECRET}\n', ":2:"),
            (f'jwt-secret = "{SECRET}\n', ":1:"),
        ]
        for text, expected in cases:
            with self.subTest(text=text):
                path = self.write(text)
                self.assert_refused(["--config", path], path + expected)
                # Starting is refused the same way.
                self.assert_refused(["--config", path], path + expected, check_only=False)

    def test_a_missing_file_is_a_usage_error(self):
        missing = os.path.join(self.dir.name, "missing.toml")
        self.assert_refused(["--config", missing], missing)
        self.assert_refused([], missing, env={"GATEHOUSE_CONFIG": missing})
        self.assert_refused(["--config", self.dir.name], self.dir.name, check_only=False)

    def test_the_example_file_checks_ok(self):
        code, out, err = self.run_to_exit(["check-config", "--config", EXAMPLE])
        self.assertEqual((code, out.strip(), err), (0, "configuration ok", ""))
        with open(EXAMPLE, encoding="utf-8") as f:
            keys = {line.split("=", 1)[0].strip().lstrip("# ").replace("_", "-")
                    for line in f if re.match(r"^#? ?[a-z][a-z0-9_-]* = ", line)}
        # Every flag --help lists is shown in the example (set, or commented out).
        _, help_text, _ = self.run_to_exit(["--help"])
        flags = set(re.findall(r"^  --([a-z][a-z0-9-]*)", help_text, re.M))
        flags -= {"help", "version", "config"}
        self.assertGreater(len(flags), 50)
        self.assertEqual(sorted(flags - keys), [], "flags missing from deploy/gatehouse.toml")
        self.assertEqual(sorted(keys - flags), [], "keys that are not flags")


class CheckConfig(ConfigCase):
    def test_ok_with_flags_only(self):
        for args in (["check-config"], ["check-config", "--listen", "localhost:8080"],
                     ["--listen", "[::1]:0", "check-config", "--redis", "redis://127.0.0.1:1"]):
            with self.subTest(args=args):
                code, out, err = self.run_to_exit(args)
                self.assertEqual((code, out.strip(), err), (0, "configuration ok", ""))
        # Opens nothing: the SQLite file it names is not created.
        code, out, _ = self.run_to_exit(["check-config", "--db", "sqlite:users.db"])
        self.assertEqual((code, out.strip()), (0, "configuration ok"))
        self.assertFalse(os.path.exists(os.path.join(self.dir.name, "users.db")))

    def test_every_problem_at_once_each_naming_its_flag(self):
        err = self.assert_refused(
            ["--access-ttl", "0", "--refresh-ttl", "0", "--ping-interval", "90000",
             "--http-idle-timeout", "0", "--drain-spread-ms", "4000000",
             "--update-log-size", "0", "--dedupe-window", "86401",
             "--worker-queue-timeout", "0", "--redis-timeout", "0", "--amqp-timeout", "9999",
             "--listen", "nonsense", "--metrics-listen", "127.0.0.1:99999",
             "--trusted-proxies", "10.0.0.0/33", "--gateway-id", "has space",
             "--login-service", "https://login.example", "--otlp-endpoint", "grpc://collector",
             "--command-stream", "", "--amqp-exchange", "",
             "--allowed-origins", "https://ok.example,game.example"],
            "--access-ttl", "--refresh-ttl", "--ping-interval", "--http-idle-timeout",
            "--drain-spread-ms", "--update-log-size", "--dedupe-window",
            "--worker-queue-timeout", "--redis-timeout", "--amqp-timeout", "--listen",
            "--metrics-listen", '--trusted-proxies entry "10.0.0.0/33"', "--gateway-id",
            "--login-service", "--otlp-endpoint", "--command-stream", "--amqp-exchange",
            '--allowed-origins entry "game.example"')
        self.assertEqual(len(err.strip().splitlines()), 19, err)
        for line in err.strip().splitlines():
            self.assertRegex(line, r"--[a-z]", "each line names a flag")

    def test_tls_files_are_checked_and_named(self):
        cert = self.write("not a certificate\n", "cert.pem")
        key = self.write("not a key\n", "key.pem")
        missing = os.path.join(self.dir.name, "missing.pem")
        self.assert_refused(["--tls-cert", missing, "--tls-key", key],
                            f'--tls-cert "{missing}" does not exist')
        self.assert_refused(["--tls-cert", cert, "--tls-key", self.dir.name],
                            f'--tls-key "{self.dir.name}" is not a regular file')
        if os.geteuid() != 0:  # root reads whatever the mode says
            os.chmod(key, 0)
            self.assert_refused(["--tls-cert", cert, "--tls-key", key],
                                f'--tls-key "{key}" is not readable')
            os.chmod(key, 0o600)
        # Readable files are all check-config looks at; the start names both flags when their
        # content is not a certificate and its key.
        code, out, _ = self.run_to_exit(["check-config", "--tls-cert", cert, "--tls-key", key])
        self.assertEqual((code, out.strip()), (0, "configuration ok"))
        code, out, err = self.run_to_exit(["--listen", "127.0.0.1:0", "--tls-cert", cert,
                                           "--tls-key", key])
        self.assertEqual(code, 1, err[-500:])
        self.assertIn(f"--tls-cert {cert} and --tls-key {key}", err)
        self.assertNotIn("gatehouse ready", out)

    def test_secrets_are_never_repeated(self):
        cases = {
            "--redis": ["--redis", f"http://user:{SECRET}@127.0.0.1:6379"],
            "--amqp": ["--amqp", f"amqps://user:{SECRET}@127.0.0.1/"],
            "--db": ["--db", f"mysql://user:{SECRET}@db/gatehouse"],
            "--bot-key entry 2": ["--bot-key", f"ok:key,{SECRET}"],
            "--amqp and --redis": ["--amqp", f"amqp://u:{SECRET}@h/",
                                   "--redis", f"redis://u:{SECRET}@h:6379"],
        }
        for expected, args in cases.items():
            with self.subTest(expected):
                self.assert_refused(args, expected)
                self.assert_refused(args, expected, check_only=False)

    def test_file_problems_name_the_file_and_line(self):
        path = self.write(f"""listen = "127.0.0.1:0"
jwt-secret = "{SECRET}"
access-ttl = 0
redis = "http://user:{SECRET}@127.0.0.1"
""")
        err = self.assert_refused(["--config", path], f"{path}:3: --access-ttl",
                                  f"{path}:4: --redis")
        # A flag's problem names no file when the flag did not come from it.
        err = self.assert_refused(["--config", path, "--access-ttl", "0", "--redis", ""],
                                  "--access-ttl")
        self.assertNotIn(path + ":3", err)
        self.assertNotIn("--redis", err)

    def test_environment_problems_name_the_flag(self):
        self.assert_refused([], "--update-log-ttl", env={"GATEHOUSE_UPDATE_LOG_TTL": "0"})
        self.assert_refused([], "--listen", env={"GATEHOUSE_LISTEN": "localhost"})

    def test_a_bad_flag_stops_the_start_before_anything_is_opened(self):
        busy = socket.socket()
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        try:
            # A busy port would be exit 1, a new database file would be created: neither
            # happens, the bad flag is found first.
            db = os.path.join(self.dir.name, "users.db")
            self.assert_refused(["--listen", f"127.0.0.1:{busy.getsockname()[1]}",
                                 "--db", "sqlite:" + db, "--max-message-bytes", "0",
                                 "--redis", "redis://127.0.0.1:1"], "--max-message-bytes",
                                check_only=False)
            self.assertFalse(os.path.exists(db))
        finally:
            busy.close()


class Version(ConfigCase):
    def test_version_wherever_it_stands(self):
        bad = self.write("this is not toml\n")
        for args in (["--version"], ["check-config", "--version"],
                     ["--version", "check-config"], ["--listen", "nonsense", "--version"],
                     ["--config", bad, "--version"]):
            with self.subTest(args=args):
                code, out, err = self.run_to_exit(args)
                self.assertEqual(code, 0, err)
                self.assertRegex(out, r"^gatehouse-server \d+\.\d+\.\d+\n$")

    def test_help_names_the_config_flag_and_the_subcommand(self):
        code, out, _ = self.run_to_exit(["--help"])
        self.assertEqual(code, 0)
        for text in ("--config", "GATEHOUSE_CONFIG", "--version", "check-config"):
            self.assertIn(text, out)


if __name__ == "__main__":
    h.run_main()
