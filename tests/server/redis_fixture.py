"""A real redis-server for tests: started on a free 127.0.0.1 port, stopped by PID.

No configuration file, no persistence (`--save ''`, `--appendonly no`), so a stopped server
leaves nothing behind and a restarted one starts empty unless `keep_data` asks otherwise.
Every wait is bounded.
"""

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time

import redis  # Debian's python3-redis

REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"
START_TIMEOUT_S = 10.0


def free_port():
    """A TCP port free on 127.0.0.1 right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def gatehouse_module(server_binary=None):
    """The path of the gatehouse Redis module (redis_module/, GATEHOUSE.APPEND) this build made:
    CTest passes it in GATEHOUSE_REDIS_MODULE; run by hand, it sits beside the server's build
    directory (<build>/server/gatehouse-server -> <build>/redis_module/gatehouse_redis.so)."""
    path = os.environ.get("GATEHOUSE_REDIS_MODULE")
    if not path and server_binary:
        build = os.path.dirname(os.path.dirname(os.path.abspath(server_binary)))
        path = os.path.join(build, "redis_module", "gatehouse_redis.so")
    if not path or not os.path.exists(path):
        raise RuntimeError(f"the gatehouse Redis module is not built ({path or 'no path'}): "
                           "build the gatehouse_redis_module target")
    return path


class RedisServer:
    """One redis-server child process.

    `stop()` ends it with SIGTERM (SIGKILL after a bounded wait), `kill()` with SIGKILL at once
    (a crash), `start()` again brings it back on the same port, as an operator restarting Redis
    would. `keep_data=True` makes a restart keep the dataset (an RDB file in a temp dir, saved
    on SIGTERM), so that a test can check what a stream held before the outage.
    """

    def __init__(self, port=None, password=None, keep_data=False, module=None, extra_args=()):
        self.port = port or free_port()
        self.password = password
        self.keep_data = keep_data
        self.module = module  # a Redis module to load (the gatehouse module: redis_module/)
        self.extra_args = list(extra_args)  # more redis-server flags, e.g. --enable-module-command
        self.dir = tempfile.mkdtemp(prefix="gatehouse-redis-")
        self.proc = None
        self._log = None

    @property
    def url(self):
        auth = f":{self.password}@" if self.password else ""
        return f"redis://{auth}127.0.0.1:{self.port}"

    def start(self):
        args = [REDIS_SERVER, "--port", str(self.port), "--bind", "127.0.0.1",
                "--dir", self.dir, "--appendonly", "no", "--daemonize", "no",
                "--protected-mode", "yes", "--loglevel", "warning"]
        args += ["--save", "3600 1", "--dbfilename", "dump.rdb"] if self.keep_data else \
            ["--save", ""]
        if self.password:
            args += ["--requirepass", self.password]
        if self.module:
            args += ["--loadmodule", self.module]
        args += self.extra_args
        self._log = open(os.path.join(self.dir, "redis.log"), "ab")
        self.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=self._log,
                                     stderr=subprocess.STDOUT)
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"redis-server exited with {self.proc.returncode}: "
                                   f"{self.log_text()[-800:]}")
            try:
                if self.client().ping():
                    return self
            except redis.exceptions.RedisError:
                time.sleep(0.02)
        self.kill()
        raise RuntimeError(f"redis-server did not answer PING within {START_TIMEOUT_S} s")

    def client(self, **kw):
        """A python3-redis client on this server (bytes in, bytes out)."""
        return redis.Redis(host="127.0.0.1", port=self.port, password=self.password,
                           socket_timeout=5, socket_connect_timeout=2, **kw)

    def stop(self, timeout=5.0):
        """SIGTERM (Redis saves first when keep_data), then SIGKILL if it lingers."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()

    def kill(self):
        """SIGKILL: Redis dies mid-whatever, as in a crash (nothing saved)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass

    def pause(self):
        """SIGSTOP: Redis keeps its sockets but answers nothing (a hung server)."""
        self.proc.send_signal(signal.SIGSTOP)

    def resume(self):
        self.proc.send_signal(signal.SIGCONT)

    def log_text(self):
        try:
            with open(os.path.join(self.dir, "redis.log"), "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def close(self):
        """Stops the server and removes its directory."""
        if self.proc is not None and self.proc.poll() is None:
            try:
                self.resume()
            except (OSError, ProcessLookupError):
                pass
        self.stop()
        if self._log:
            self._log.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.close()
