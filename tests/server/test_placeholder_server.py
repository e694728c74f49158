#!/usr/bin/env python3
"""Integration test of the placeholder gatehouse-server's start-up contract (PROTOCOL.md s. 1).

Usage: test_placeholder_server.py PATH/TO/gatehouse-server

Runs the real binary on real loopback sockets: the ready line on stdout, flags and their
environment twins, exit codes for bad input and a busy port, and a clean exit on signals.
Only 127.0.0.1 is ever used. Every child is killed in a finally, whatever happens.
"""

import os
import re
import select
import signal
import socket
import subprocess
import sys
import tempfile
import time

READY_TIMEOUT_S = 10.0
EXIT_TIMEOUT_S = 5.0
READY_RE = re.compile(r"^gatehouse ready listen=(\S+):(\d+)$")


class Server:
    """One gatehouse-server child: stdout is a pipe we read, stderr goes to a temp file."""

    def __init__(self, binary, args, env_overrides=None):
        env = dict(os.environ)
        # The checks decide which listen settings the child sees, not the calling shell.
        env.pop("GATEHOUSE_LISTEN", None)
        env.pop("GATEHOUSE_THREADS", None)
        env.update(env_overrides or {})
        # A file, not a pipe: a chatty child can never block on a stderr nobody drains.
        self.stderr_file = tempfile.TemporaryFile()
        self.proc = subprocess.Popen(
            [binary, *args],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=self.stderr_file,
            env=env,
        )
        self._stdout_buf = b""

    def read_line(self, timeout):
        """The next stdout line (without newline), or None on timeout or EOF."""
        deadline = time.monotonic() + timeout
        fd = self.proc.stdout.fileno()
        while b"\n" not in self._stdout_buf:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            ready, _, _ = select.select([fd], [], [], left)
            if not ready:
                return None
            chunk = os.read(fd, 4096)
            if not chunk:
                return None
            self._stdout_buf += chunk
        line, _, self._stdout_buf = self._stdout_buf.partition(b"\n")
        return line.decode("utf-8", "replace")

    def wait_ready(self):
        """(host, port) from the ready line, or None."""
        line = self.read_line(READY_TIMEOUT_S)
        if line is None:
            return None
        m = READY_RE.match(line)
        if not m:
            print(f"    unexpected stdout line: {line!r}")
            return None
        return m.group(1), int(m.group(2))

    def wait_exit(self, timeout):
        """The exit code, or None if still running after timeout."""
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None

    def stderr_text(self):
        self.stderr_file.seek(0)
        return self.stderr_file.read().decode("utf-8", "replace")

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.proc.stdout.close()
        self.stderr_file.close()


class Checks:
    def __init__(self):
        self.passed = 0
        self.failed = 0

    def check(self, name, ok, detail=""):
        if ok:
            self.passed += 1
            print(f"PASS {name}")
        else:
            self.failed += 1
            print(f"FAIL {name}" + (f": {detail}" if detail else ""))
        sys.stdout.flush()
        return ok


def held_listener():
    """A socket listening on a free 127.0.0.1 port, to make that port busy."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind(("127.0.0.1", 0))
    s.listen(1)
    return s


def tcp_connect_then_eof(port):
    """Connects to 127.0.0.1:port; True if the connect works and the server then closes."""
    with socket.create_connection(("127.0.0.1", port), timeout=5.0) as c:
        c.settimeout(5.0)
        try:
            data = c.recv(16)
        except ConnectionResetError:
            data = b""
        return data == b""


def expect_exit(checks, binary, name, args, env, want_code, want_stderr=True):
    server = Server(binary, args, env)
    try:
        code = server.wait_exit(EXIT_TIMEOUT_S)
        err = server.stderr_text().strip()
        ok = code == want_code and (bool(err) or not want_stderr)
        detail = f"exit code {code} (want {want_code}), stderr: {err[-300:]!r}"
        checks.check(name, ok, detail)
        if ok and err:
            print(f"    stderr: {err.splitlines()[0][:200]}")
    finally:
        server.kill()


def main():
    if len(sys.argv) != 2:
        print(__doc__.strip().splitlines()[2], file=sys.stderr)
        return 2
    binary = sys.argv[1]
    checks = Checks()

    # 1. Start on port 0, read the ready line, talk to it, stop it with SIGTERM.
    server = Server(binary, ["--listen", "127.0.0.1:0"])
    try:
        ready = server.wait_ready()
        checks.check(
            "--listen 127.0.0.1:0 prints the ready line within 10 s",
            ready is not None and ready[0] == "127.0.0.1" and 0 < ready[1] < 65536,
            f"got {ready!r}, stderr: {server.stderr_text()[-300:]!r}",
        )
        if ready is not None:
            port = ready[1]
            try:
                ok = tcp_connect_then_eof(port)
                checks.check(f"TCP connect to 127.0.0.1:{port} succeeds, server closes it", ok,
                             "connected but the server did not close the connection")
            except OSError as e:
                checks.check(f"TCP connect to 127.0.0.1:{port} succeeds", False, str(e))
            # A second connection proves the accept loop re-arms after the first.
            try:
                ok = tcp_connect_then_eof(port)
                checks.check("a second TCP connection is accepted too", ok)
            except OSError as e:
                checks.check("a second TCP connection is accepted too", False, str(e))

            server.proc.send_signal(signal.SIGTERM)
            code = server.wait_exit(EXIT_TIMEOUT_S)
            checks.check("SIGTERM exits 0 within 5 s", code == 0, f"exit code {code}")
            extra = server.read_line(0.5)
            checks.check("stdout carries only the ready line", extra is None,
                         f"extra line {extra!r}")
    finally:
        server.kill()

    # 2. The environment twin is used when no flag is given; SIGINT also exits 0.
    server = Server(binary, [], {"GATEHOUSE_LISTEN": "127.0.0.1:0"})
    try:
        ready = server.wait_ready()
        checks.check(
            "GATEHOUSE_LISTEN=127.0.0.1:0 is used when --listen is absent",
            ready is not None and ready[0] == "127.0.0.1" and ready[1] != 0,
            f"got {ready!r}, stderr: {server.stderr_text()[-300:]!r}",
        )
        if ready is not None:
            server.proc.send_signal(signal.SIGINT)
            code = server.wait_exit(EXIT_TIMEOUT_S)
            checks.check("SIGINT exits 0 within 5 s", code == 0, f"exit code {code}")
    finally:
        server.kill()

    # 3. A flag wins over its variable: the variable names a busy port, which would fail to bind.
    busy = held_listener()
    try:
        busy_port = busy.getsockname()[1]
        server = Server(binary, ["--listen", "127.0.0.1:0"],
                        {"GATEHOUSE_LISTEN": f"127.0.0.1:{busy_port}"})
        try:
            ready = server.wait_ready()
            checks.check(
                "--listen wins over GATEHOUSE_LISTEN",
                ready is not None and ready[0] == "127.0.0.1" and ready[1] not in (0, busy_port),
                f"got {ready!r}, stderr: {server.stderr_text()[-300:]!r}",
            )
        finally:
            server.kill()

        # 4. Binding a port that is already in use fails with exit 1 and an error, no ready line.
        server = Server(binary, ["--listen", f"127.0.0.1:{busy_port}"])
        try:
            code = server.wait_exit(EXIT_TIMEOUT_S)
            err = server.stderr_text()
            line = server.read_line(0.5)
            checks.check(
                "a busy port exits 1 with an error on stderr and no ready line",
                code == 1 and "cannot listen" in err and line is None,
                f"exit code {code}, stdout {line!r}, stderr: {err[-300:]!r}",
            )
            if err.strip():
                print(f"    stderr: {err.strip().splitlines()[-1][:200]}")
        finally:
            server.kill()
    finally:
        busy.close()

    # 5. Bad input is a usage error: exit 2 with a message, never a half-started server.
    for bad in ["nonsense", "127.0.0.1", "127.0.0.1:", "127.0.0.1:65536", "127.0.0.1:80x",
                "localhost:0", "::1:0", "[::1:0", "300.0.0.1:0"]:
        expect_exit(checks, binary, f"--listen {bad!r} exits 2", ["--listen", bad], None, 2)
    expect_exit(checks, binary, "a bad GATEHOUSE_LISTEN exits 2", [],
                {"GATEHOUSE_LISTEN": "not-an-address"}, 2)
    expect_exit(checks, binary, "an unknown flag (--redis) exits 2",
                ["--listen", "127.0.0.1:0", "--redis", "redis://127.0.0.1:6379"], None, 2)
    expect_exit(checks, binary, "a stray positional argument exits 2",
                ["--listen", "127.0.0.1:0", "extra"], None, 2)
    expect_exit(checks, binary, "--threads 0 exits 2", ["--listen", "127.0.0.1:0", "--threads",
                                                        "0"], None, 2)
    expect_exit(checks, binary, "--help exits 0", ["--help"], None, 0, want_stderr=False)

    # 6. --threads N runs (more threads than cores must still work and stop cleanly).
    server = Server(binary, ["--listen", "127.0.0.1:0"], {"GATEHOUSE_THREADS": "4"})
    try:
        ready = server.wait_ready()
        ok = ready is not None
        if ok:
            try:
                ok = tcp_connect_then_eof(ready[1])
            except OSError:
                ok = False
            server.proc.send_signal(signal.SIGTERM)
            ok = server.wait_exit(EXIT_TIMEOUT_S) == 0 and ok
        checks.check("GATEHOUSE_THREADS=4 serves and stops cleanly", ok,
                     f"stderr: {server.stderr_text()[-300:]!r}")
    finally:
        server.kill()

    print(f"{checks.passed} passed, {checks.failed} failed")
    return 0 if checks.failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
