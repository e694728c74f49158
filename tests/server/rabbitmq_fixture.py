"""A real RabbitMQ broker for tests: Debian's rabbitmq-server on free 127.0.0.1 ports, stopped by
PID.

Everything the broker writes lives in one temporary directory: its node name (a random one on
localhost), its Mnesia database and message store, its logs, its Erlang cookie ($HOME), an
empty plugin list (no management listener). The Erlang port mapper is a private `epmd` on a
free loopback port, started and stopped here by PID, so no daemon outlives the test and two
test files never share one. The distribution port is bound to 127.0.0.1 too. The broker runs
as the current user (root on CI works as well). A restart keeps the directory, so durable
queues and persistent messages survive it as they would in production. Every wait is bounded.
Starting takes a few seconds: share one broker per test file.
"""

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid

import pika  # Debian's python3-pika

RABBITMQ_SERVER = "/usr/lib/rabbitmq/bin/rabbitmq-server"
EPMD = shutil.which("epmd") or next(
    (os.path.join(root, "epmd") for root, _, files in os.walk("/usr/lib/erlang")
     if "epmd" in files), "epmd")
START_TIMEOUT_S = 60.0
EPMD_START_TIMEOUT_S = 30.0


def free_port():
    """A TCP port free on 127.0.0.1 right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class RabbitMQServer:
    """One broker (and its private epmd) as child processes.

    `stop()` ends it with SIGTERM (SIGKILL after a bounded wait), `kill()` with SIGKILL at once
    (a crash), `start()` again brings it back on the same ports with the same data.
    """

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="gatehouse-rabbitmq-")
        self.port = free_port()
        self.dist_port = free_port()
        self.epmd_port = free_port()
        self.node = f"gatehouse_test_{uuid.uuid4().hex[:8]}@localhost"
        self.proc = None
        self.epmd = None
        self._log = None

    @property
    def url(self):
        return f"amqp://guest:guest@127.0.0.1:{self.port}/"

    def _env(self):
        env = {k: v for k, v in os.environ.items() if not k.startswith(("RABBITMQ_", "ERL_"))}
        env.update({
            "HOME": self.dir,  # the Erlang cookie
            "RABBITMQ_NODENAME": self.node,
            "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1",
            "RABBITMQ_NODE_PORT": str(self.port),
            "RABBITMQ_DIST_PORT": str(self.dist_port),
            "ERL_EPMD_PORT": str(self.epmd_port),
            "ERL_EPMD_ADDRESS": "127.0.0.1",
            "RABBITMQ_MNESIA_BASE": os.path.join(self.dir, "mnesia"),
            "RABBITMQ_LOG_BASE": os.path.join(self.dir, "log"),
            "RABBITMQ_CONFIG_FILE": os.path.join(self.dir, "rabbitmq"),
            "RABBITMQ_ADVANCED_CONFIG_FILE": os.path.join(self.dir, "advanced.config"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": os.path.join(self.dir, "enabled_plugins"),
            "RABBITMQ_PID_FILE": os.path.join(self.dir, "rabbitmq.pid"),
            "RABBITMQ_LOGS": "-",
            "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS":
                "-kernel inet_dist_use_interface {127,0,0,1}",
        })
        return env

    def start(self):
        with open(os.path.join(self.dir, "enabled_plugins"), "w") as f:
            f.write("[].\n")
        with open(os.path.join(self.dir, "rabbitmq.conf"), "w") as f:
            f.write("log.console = true\nlog.console.level = warning\n")
        self._log = open(os.path.join(self.dir, "rabbitmq.log"), "ab")
        if self.epmd is None or self.epmd.poll() is not None:
            self.epmd = subprocess.Popen(
                [EPMD, "-port", str(self.epmd_port), "-address", "127.0.0.1"],
                stdin=subprocess.DEVNULL, stdout=self._log, stderr=subprocess.STDOUT,
                env=self._env())
            # The broker must find this epmd listening: one it cannot reach, it would start
            # itself as a daemon (`epmd -daemon`, its own session), which no PID here names.
            self._wait_for_epmd()
        self.proc = subprocess.Popen([RABBITMQ_SERVER], stdin=subprocess.DEVNULL,
                                     stdout=self._log, stderr=subprocess.STDOUT,
                                     env=self._env(), cwd=self.dir, start_new_session=True)
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"rabbitmq-server exited with {self.proc.returncode}: "
                                   f"{self.log_text()[-1500:]}")
            try:
                self.connection().close()
                return self
            except pika.exceptions.AMQPError:
                time.sleep(0.2)
        self.kill()
        raise RuntimeError(f"rabbitmq-server did not accept AMQP within {START_TIMEOUT_S} s: "
                           f"{self.log_text()[-1500:]}")

    def _wait_for_epmd(self):
        deadline = time.monotonic() + EPMD_START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.epmd.poll() is not None:
                raise RuntimeError(f"epmd exited with {self.epmd.returncode}: "
                                   f"{self.log_text()[-500:]}")
            try:
                socket.create_connection(("127.0.0.1", self.epmd_port), timeout=1).close()
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"epmd did not listen within {EPMD_START_TIMEOUT_S} s")

    def connection(self):
        """A pika BlockingConnection to this broker."""
        params = pika.ConnectionParameters(
            host="127.0.0.1", port=self.port, credentials=pika.PlainCredentials("guest", "guest"),
            connection_attempts=1, socket_timeout=2, blocked_connection_timeout=5)
        return pika.BlockingConnection(params)

    def _beam_pid(self):
        try:
            with open(os.path.join(self.dir, "rabbitmq.pid")) as f:
                return int(f.read().strip())
        except (OSError, ValueError):
            return None

    def _signal(self, sig):
        # The shell script, the Erlang VM and its helpers (erl_child_setup, inet_gethost) share
        # the session start() made, whose group id is the script's PID: all of them, even
        # before the VM wrote its PID file.
        if self.proc is not None:
            try:
                os.killpg(self.proc.pid, sig)
            except ProcessLookupError:
                pass
        beam = self._beam_pid()
        if beam:
            try:
                os.kill(beam, sig)
            except ProcessLookupError:
                pass

    def stop(self, timeout=15.0):
        """SIGTERM: the broker shuts down cleanly; SIGKILL if it lingers."""
        if self.proc is None or self.proc.poll() is not None:
            return
        beam = self._beam_pid()
        if beam:
            try:
                os.kill(beam, signal.SIGTERM)
            except ProcessLookupError:
                pass
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()

    def kill(self):
        """SIGKILL to the Erlang VM: the broker dies mid-whatever, as in a crash."""
        if self.proc is None:
            return
        self._signal(signal.SIGKILL)
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass
        try:
            os.unlink(os.path.join(self.dir, "rabbitmq.pid"))
        except OSError:
            pass

    def ctl(self, *args, timeout=60):
        """Runs rabbitmqctl against this broker; its CompletedProcess (text)."""
        return subprocess.run(["/usr/lib/rabbitmq/bin/rabbitmqctl", "-n", self.node, *args],
                              env=self._env(), capture_output=True, text=True, timeout=timeout,
                              stdin=subprocess.DEVNULL)

    def pause(self):
        """SIGSTOP to the Erlang VM: the broker keeps its sockets but answers nothing."""
        self._signal_beam(signal.SIGSTOP)

    def resume(self):
        self._signal_beam(signal.SIGCONT)

    def _signal_beam(self, sig):
        beam = self._beam_pid()
        if beam:
            os.kill(beam, sig)

    def queue_depth(self, queue):
        """Messages ready in `queue` (a passive declare)."""
        conn = self.connection()
        try:
            return conn.channel().queue_declare(queue, passive=True).method.message_count
        finally:
            conn.close()

    def log_text(self):
        try:
            with open(os.path.join(self.dir, "rabbitmq.log"), "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def close(self):
        """Ends the broker (SIGKILL: its data goes with the directory, so a clean shutdown
        would only cost time) and its epmd, and removes the directory."""
        self.kill()
        if self.epmd is not None and self.epmd.poll() is None:
            self.epmd.kill()
            self.epmd.wait(timeout=5)
        if self._log:
            self._log.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.close()


# As a script, for a test in another language (tests/unit/amqp_bus_broker_test.cpp):
#   rabbitmq_fixture.py start DIR   start a broker, write DIR/broker.json (url, port, pids, dir)
#   rabbitmq_fixture.py stop DIR    end the processes DIR/broker.json names, remove its dir
def _main(argv):
    import json
    import sys
    if len(argv) != 3 or argv[1] not in ("start", "stop"):
        sys.exit("usage: rabbitmq_fixture.py start|stop DIR")
    state = os.path.join(argv[2], "broker.json")
    if argv[1] == "start":
        os.makedirs(argv[2], exist_ok=True)
        b = RabbitMQServer()
        b.start()
        with open(state, "w") as f:
            json.dump({"url": b.url, "port": b.port, "dir": b.dir, "beam": b._beam_pid(),
                       "shell": b.proc.pid, "epmd": b.epmd.pid}, f)
        # The children outlive this script; `stop` ends them by PID.
        os._exit(0)
    with open(state) as f:
        s = json.load(f)
    if s.get("shell"):
        try:
            os.killpg(s["shell"], signal.SIGKILL)  # the session start() made (see _signal)
        except ProcessLookupError:
            pass
    for pid in (s.get("beam"), s.get("shell"), s.get("epmd")):
        if pid:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
    shutil.rmtree(s["dir"], ignore_errors=True)
    os.unlink(state)


if __name__ == "__main__":
    import sys
    _main(sys.argv)
