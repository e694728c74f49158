"""A real PostgreSQL for tests: Debian's server binaries, a cluster made with initdb in a
temporary directory, run as the `postgres` user (when the tests run as root) on a free
127.0.0.1 port, stopped by PID.

The cluster is tuned for tests, not for keeping data (fsync off); its unix socket lives in the
temporary directory. The superuser `postgres` connects over that socket without a password
(what the fixture itself uses, through `psql`); over TCP every role needs its password
(scram-sha-256), so gatehouse connects as it would in production. `create_database()` gives
each test its own database, owned by the role `gatehouse`.

One cluster per test suite: `shared()` starts it at the first call and stops it at exit, or
uses the cluster a CTest fixture started for the whole run (`start_shared` / `stop_shared`,
run as a script: `postgres_fixture.py start|stop DIR`). Every wait is bounded.

Usage as a script:
    postgres_fixture.py start DIR   start a cluster in DIR/cluster, write DIR/cluster.json
    postgres_fixture.py stop DIR    stop the cluster DIR/cluster.json names, remove DIR/cluster
    postgres_fixture.py pause DIR   SIGSTOP its postmaster and backends (resume: SIGCONT)
"""

import atexit
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

PG_BIN = os.environ.get("GATEHOUSE_TEST_PG_BIN", "/usr/lib/postgresql/15/bin")
START_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 10.0
# Where the cluster a CTest fixture started is described; set by tests/CMakeLists.txt.
SHARED_ENV = "GATEHOUSE_TEST_POSTGRES_DIR"
APP_ROLE = "gatehouse"


def free_port():
    """A TCP port free on 127.0.0.1 right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _as_postgres():
    """Popen keyword arguments that run a child as `postgres` when we are root (initdb and
    postgres refuse to run as root); nothing otherwise."""
    if os.geteuid() != 0:
        return {}
    return {"user": "postgres", "group": "postgres", "extra_groups": []}


def _pid_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie child of ours counts as gone.
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().split(b") ", 1)[1][:1] != b"Z"
    except (OSError, IndexError):
        return False


class PostgresServer:
    """One PostgreSQL cluster: `start()`, `create_database()`, `url()`, `stop()` (SIGINT: a
    fast shutdown; SIGKILL if it lingers), `pause()`/`resume()` (SIGSTOP/SIGCONT of the
    postmaster and its backends: a server that stopped answering), `close()` (stop and remove
    the directory). Run as a script, `pause DIR` / `resume DIR` do the same to a cluster
    `start DIR` started."""

    def __init__(self, port=None, password=None, directory=None):
        self.port = port or free_port()
        self.password = password or "pg-" + secrets.token_hex(12)
        self.dir = directory or tempfile.mkdtemp(prefix="gatehouse-pg-")
        self.data = os.path.join(self.dir, "data")
        self.pid = None
        self._proc = None

    # --- lifecycle ---------------------------------------------------------------------------

    def start(self):
        os.makedirs(self.dir, exist_ok=True)
        os.chmod(self.dir, 0o755)  # the unix socket lives here; clients run as another user
        if os.geteuid() == 0:
            shutil.chown(self.dir, "postgres", "postgres")
        if not os.path.isdir(self.data):
            self._initdb()
        log = open(os.path.join(self.dir, "postgres.log"), "ab")
        try:
            self._proc = subprocess.Popen(
                [os.path.join(PG_BIN, "postgres"), "-D", self.data, "-p", str(self.port),
                 "-c", "listen_addresses=127.0.0.1", "-c", f"unix_socket_directories={self.dir}",
                 "-c", "fsync=off", "-c", "synchronous_commit=off",
                 "-c", "full_page_writes=off", "-c", "max_connections=300",
                 "-c", "shared_buffers=32MB"],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True, **_as_postgres())
        finally:
            log.close()
        self.pid = self._proc.pid
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise RuntimeError(f"postgres exited with {self._proc.returncode}: "
                                   f"{self.log_text()[-1500:]}")
            if self._ready():
                self.psql(f"DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = "
                          f"'{APP_ROLE}') THEN CREATE ROLE {APP_ROLE} LOGIN PASSWORD "
                          f"'{self.password}'; END IF; END $$")
                return self
            time.sleep(0.05)
        self.kill()
        raise RuntimeError(f"postgres did not accept connections within {START_TIMEOUT_S} s: "
                           f"{self.log_text()[-1500:]}")

    def _initdb(self):
        pwfile = os.path.join(self.dir, "pwfile")
        with open(pwfile, "w") as f:
            f.write(self.password + "\n")
        if os.geteuid() == 0:
            shutil.chown(pwfile, "postgres", "postgres")
        os.chmod(pwfile, 0o600)
        p = subprocess.run(
            [os.path.join(PG_BIN, "initdb"), "-D", self.data, "-U", "postgres",
             f"--pwfile={pwfile}", "--auth-local=trust", "--auth-host=scram-sha-256",
             "-E", "UTF8", "--locale=C.UTF-8", "--no-sync", "--no-instructions"],
            stdin=subprocess.DEVNULL, capture_output=True, timeout=120, **_as_postgres())
        os.unlink(pwfile)
        if p.returncode != 0:
            raise RuntimeError(f"initdb failed ({p.returncode}): {p.stderr.decode()[-1500:]}")

    def _ready(self):
        p = subprocess.run([os.path.join(PG_BIN, "pg_isready"), "-q", "-h", self.dir,
                            "-p", str(self.port), "-t", "1"],
                           stdin=subprocess.DEVNULL, capture_output=True, timeout=10)
        return p.returncode == 0

    def _signal(self, sig):
        if self.pid is not None and _pid_alive(self.pid):
            try:
                os.kill(self.pid, sig)
            except ProcessLookupError:
                pass

    def _wait_gone(self, timeout):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._proc is not None:
                if self._proc.poll() is not None:
                    return True
            elif not _pid_alive(self.pid):
                return True
            time.sleep(0.02)
        return False

    def stop(self):
        """Fast shutdown (SIGINT: sessions are ended), then SIGKILL if it lingers."""
        if self.pid is None:
            return
        self.resume()
        self._signal(signal.SIGINT)
        if not self._wait_gone(STOP_TIMEOUT_S):
            self.kill()
        self.pid = None
        self._proc = None

    def kill(self):
        """SIGKILL to the postmaster and its backends."""
        if self.pid is None:
            return
        self._family_signal(signal.SIGKILL)
        self._wait_gone(5)
        self.pid = None
        self._proc = None

    def _family(self):
        """The postmaster and its children (backends call setsid(): not in its group)."""
        pids = [self.pid]
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                with open(f"/proc/{entry}/stat", "rb") as f:
                    fields = f.read().rsplit(b") ", 1)[1].split()
            except (OSError, IndexError):
                continue
            if int(fields[1]) == self.pid:
                pids.append(int(entry))
        return pids

    def _family_signal(self, sig):
        if self.pid is None:
            return
        for pid in self._family():
            try:
                os.kill(pid, sig)
            except (ProcessLookupError, PermissionError):
                pass

    def pause(self):
        """SIGSTOP to the postmaster and its backends: connections stay open, nothing answers."""
        self._family_signal(signal.SIGSTOP)

    def resume(self):
        self._family_signal(signal.SIGCONT)

    def close(self):
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.close()

    # --- use ---------------------------------------------------------------------------------

    def psql(self, sql, database="postgres"):
        """Runs `sql` as the superuser over the unix socket; returns its output (unaligned,
        tuples only)."""
        p = subprocess.run(
            [os.path.join(PG_BIN, "psql"), "-h", self.dir, "-p", str(self.port), "-U", "postgres",
             "-d", database, "-v", "ON_ERROR_STOP=1", "-qAtX", "-c", sql],
            stdin=subprocess.DEVNULL, capture_output=True, timeout=30)
        if p.returncode != 0:
            raise RuntimeError(f"psql failed: {p.stderr.decode()[-800:]}")
        return p.stdout.decode()

    def create_database(self, prefix="gh"):
        """A new empty database owned by `gatehouse`; returns its name."""
        name = f"{prefix}_{secrets.token_hex(6)}"
        self.psql(f"CREATE DATABASE {name} OWNER {APP_ROLE}")
        return name

    def drop_database(self, name):
        self.psql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")

    def url(self, database, password=None):
        """The --db URL of `database` for the `gatehouse` role, over TCP."""
        pw = self.password if password is None else password
        return f"postgresql://{APP_ROLE}:{pw}@127.0.0.1:{self.port}/{database}"

    def log_text(self):
        try:
            with open(os.path.join(self.dir, "postgres.log"), "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    # --- sharing -----------------------------------------------------------------------------

    def describe(self):
        return {"port": self.port, "password": self.password, "dir": self.dir, "pid": self.pid}

    @classmethod
    def attach(cls, description):
        """The cluster `describe()` wrote (started by another process); stop() still works."""
        s = cls(port=description["port"], password=description["password"],
                directory=description["dir"])
        s.pid = description["pid"]
        return s


def start_shared(directory):
    os.makedirs(directory, exist_ok=True)
    os.chmod(directory, 0o755)  # the postgres user reaches its cluster through it
    stop_shared(directory)  # a cluster left over by an interrupted run
    server = PostgresServer(directory=os.path.join(directory, "cluster")).start()
    with open(os.path.join(directory, "cluster.json.tmp"), "w") as f:
        json.dump(server.describe(), f)
    os.replace(os.path.join(directory, "cluster.json.tmp"),
               os.path.join(directory, "cluster.json"))
    return server


def stop_shared(directory):
    path = os.path.join(directory, "cluster.json")
    try:
        with open(path) as f:
            description = json.load(f)
    except (OSError, ValueError):
        shutil.rmtree(os.path.join(directory, "cluster"), ignore_errors=True)
        return
    os.unlink(path)
    PostgresServer.attach(description).close()


_shared = None


def shared():
    """The suite's cluster: the one the CTest fixture started (GATEHOUSE_TEST_POSTGRES_DIR),
    when it answers, else one started now and stopped at exit."""
    global _shared
    if _shared is not None:
        return _shared
    directory = os.environ.get(SHARED_ENV)
    if directory:
        try:
            with open(os.path.join(directory, "cluster.json")) as f:
                candidate = PostgresServer.attach(json.load(f))
            if _pid_alive(candidate.pid) and candidate._ready():
                candidate.stop = lambda: None  # not ours to stop
                candidate.close = lambda: None
                _shared = candidate
                return _shared
        except (OSError, ValueError, KeyError, subprocess.TimeoutExpired):
            pass
    _shared = PostgresServer().start()
    atexit.register(_shared.close)
    return _shared


if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] not in ("start", "stop", "pause", "resume"):
        sys.exit(__doc__)
    verb, where = sys.argv[1], sys.argv[2]
    if verb == "start":
        s = start_shared(where)
        print(f"postgres pid {s.pid} on 127.0.0.1:{s.port}")
    elif verb == "stop":
        stop_shared(where)
    else:
        with open(os.path.join(where, "cluster.json")) as f:
            s = PostgresServer.attach(json.load(f))
        s.pause() if verb == "pause" else s.resume()
