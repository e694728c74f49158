#!/usr/bin/python3
"""Idle WebSocket connections held by one server: how many, and the server's RSS per connection.

    bench/idle_connections.py                            # 100,000 on gatehouse --threads 1
    bench/idle_connections.py --connections 20000 --servers gatehouse,baseline,node \\
        --baseline /work/baseline/build/release/server/gatehouse-server

For each server (a fresh redis-server and a fresh server process, placed as bench/run_matrix.py
places them: the server alone on core 1, gatehouse with --threads 1; everything else on core
0), it reads the server's VmRSS, then starts `gatehouse_load idle` generators one after the
other, each opening its share of the connections (each connection its own player, with its own
JWT) from the loopback source addresses 127.0.0.2-127.0.0.9 (`--source-addresses`: one
ephemeral port range, about 28k ports, per address towards the server's one port). Once every
generator holds its connections, it waits `--settle` seconds and reads VmRSS again:

    rss_per_conn_bytes = (VmRSS with every connection open - VmRSS before) / connections

which is the connect workload's figure (bench/README.md) at a larger count. Then the
generators are stopped (SIGTERM: each prints its JSON line, and a connection the server
dropped while held makes that run not clean), and the server too. Results go to
build/bench-results/idle-<UTC time>/ (raw.jsonl, table.txt) and are printed.

Descriptors: the server needs one per connection and each generator one per connection it
holds, so the script raises RLIMIT_NOFILE (soft and hard) for itself and thus for everything it
starts, to what the count needs. Raising a hard limit needs CAP_SYS_RESOURCE; without it the
run stops with exit status 2, or, with --fit-fd-limit, holds the largest count that fits under
the hard limit instead (and says so). Every wait is bounded; every process is stopped by its
PID; everything listens on and connects to loopback addresses only.
"""

import argparse
import datetime
import json
import os
import resource
import secrets
import subprocess
import sys
import tempfile
import time

import run_matrix as matrix

SERVER_SPARE_FDS = 512  # the server's own descriptors: listener, epoll, Redis, SQLite, logs
GENERATOR_SPARE_FDS = 64  # the generator's: epoll, stdio


def log(msg):
    print(f"idle_connections: {msg}", file=sys.stderr, flush=True)


def raise_nofile(need):
    """Raises this process's RLIMIT_NOFILE to at least `need` (children inherit it).

    Returns the soft limit in force afterwards."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft >= need:
        return soft
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (need, max(need, hard)))
    except (ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def vm_status(pid):
    """VmRSS, RssAnon and VmHWM of `pid`, in bytes."""
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "RssAnon", "RssFile", "VmHWM"):
                out[key] = int(value.split()[0]) * 1024
    return out


def tcp_sockstat():
    """The kernel's TCP line of /proc/net/sockstat (in use, orphans, memory in pages)."""
    with open("/proc/net/sockstat") as f:
        for line in f:
            if line.startswith("TCP:"):
                parts = line.split()[1:]
                return {parts[i]: int(parts[i + 1]) for i in range(0, len(parts) - 1, 2)}
    return {}


class Generator:
    """One `gatehouse_load idle` process: opens its share, holds it until SIGTERM."""

    def __init__(self, args, index, count, port, secret, server, server_pid, log_dir):
        self.index = index
        self.count = count
        self.err_path = os.path.join(log_dir, f"load-{server}-{index}.stderr")
        self._err = open(self.err_path, "wb")
        argv = ["taskset", "-c", args.client_cpus, args.load, "idle", "--port", str(port),
                "--secret", secret, "--label", server, "--server-pid", str(server_pid),
                "--connections", str(count), "--concurrency", str(args.concurrency),
                "--player-prefix", f"idle{index}-p", "--source-addresses",
                args.source_addresses, "--duration", str(args.max_hold), "--drain", "1"]
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=self._err)

    def wait_open(self, timeout):
        """Waits (bounded) for the generator's "open" line; returns (welcomed, failed)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with open(self.err_path, "rb") as f:
                for line in f.read().decode("utf-8", "replace").splitlines():
                    if line.startswith("gatehouse_load idle: open "):
                        fields = dict(kv.split("=") for kv in line.split()[3:])
                        return int(fields["welcomed"]), int(fields["failed"])
            if self.proc.poll() is not None:
                break
            time.sleep(0.1)
        raise RuntimeError(f"generator {self.index}: did not report its connections open "
                           f"within {timeout} s (exit {self.proc.poll()})")

    def stop(self):
        """SIGTERM, then its JSON line (None when it printed none)."""
        if self.proc.poll() is None:
            self.proc.terminate()
        try:
            out, _ = self.proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            out, _ = self.proc.communicate(timeout=10)
        self._err.close()
        lines = [ln for ln in out.decode("utf-8", "replace").splitlines() if ln.startswith("{")]
        result = json.loads(lines[0]) if len(lines) == 1 else None
        if result is not None:
            result["exit_code"] = self.proc.returncode
        return result


def run_server(args, server, log_dir):
    """One server: fresh Redis and server, generators open and hold, RSS read, all stopped."""
    secret = "bench-" + secrets.token_hex(16)
    redis = matrix.RedisServer()
    procs, gens = [], []
    result = {"workload": "idle", "server": server, "connections": args.connections,
              "source_addresses": args.source_addresses}
    try:
        redis.start()
        matrix.pin(redis.proc.pid, args.client_cpus)
        if server in matrix.GATEHOUSE_BUILDS:
            binary = args.gatehouse if server == "gatehouse" else args.baseline
            srv, port = matrix.start_gatehouse(binary, redis.url, secret, 1, args.server_cpus,
                                               log_dir)
            result["binary"] = binary
        else:
            srv, port = matrix.start_node(args.node_dir, redis.url, secret, args.node_cpus,
                                          log_dir)
        procs.append(srv)
        result["server_nofile"] = open_files_limit(srv.pid)
        time.sleep(0.5)
        before = vm_status(srv.pid)
        started = time.monotonic()
        remaining, index = args.connections, 0
        welcomed = failed = 0
        while remaining > 0:
            count = min(remaining, args.per_generator)
            gen = Generator(args, index, count, port, secret, server, srv.pid, log_dir)
            gens.append(gen)
            w, f = gen.wait_open(timeout=120)
            welcomed += w
            failed += f
            log(f"{server}: generator {index} holds {w} of {count} ({f} failed); "
                f"{welcomed} open in all")
            if f:
                break
            remaining -= count
            index += 1
        open_s = time.monotonic() - started
        time.sleep(args.settle)
        after = vm_status(srv.pid)
        result.update({
            "welcomed": welcomed, "failed_opens": failed, "generators": len(gens),
            "open_s": round(open_s, 3), "settle_s": args.settle,
            "rss_before_bytes": before["VmRSS"], "rss_after_bytes": after["VmRSS"],
            "rss_anon_before_bytes": before.get("RssAnon"),
            "rss_anon_after_bytes": after.get("RssAnon"),
            "vm_hwm_bytes": after.get("VmHWM"),
            "kernel_tcp": tcp_sockstat(),
        })
        if welcomed:
            result["rss_per_conn_bytes"] = (after["VmRSS"] - before["VmRSS"]) / welcomed
        alive = srv.proc.poll() is None
        gen_results = [g.stop() for g in gens]
        result["generator_results"] = gen_results
        closed = sum((g or {}).get("closed", 0) for g in gen_results)
        result["closed_while_held"] = closed
        result["ok"] = (alive and failed == 0 and welcomed == args.connections and closed == 0
                        and all(g and g.get("ok") for g in gen_results))
        return result
    finally:
        for g in gens:
            if g.proc.poll() is None:
                g.stop()
        for p in reversed(procs):
            p.stop()
        redis.close()


def open_files_limit(pid):
    with open(f"/proc/{pid}/limits") as f:
        for line in f:
            if line.startswith("Max open files"):
                return int(line.split()[3])
    return None


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--connections", type=int, default=100000,
                    help="idle connections to hold on each server (default 100000)")
    ap.add_argument("--servers", default="gatehouse",
                    help="comma-separated subset of gatehouse,baseline,node (default gatehouse)")
    ap.add_argument("--baseline", default=None, metavar="PATH",
                    help="another gatehouse-server binary, run as the server `baseline`")
    ap.add_argument("--source-addresses", default="127.0.0.2-127.0.0.9",
                    help="loopback addresses the generators connect from, round robin "
                         "(default 127.0.0.2-127.0.0.9)")
    ap.add_argument("--per-generator", type=int, default=15000,
                    help="connections per generator process (default 15000)")
    ap.add_argument("--concurrency", type=int, default=128,
                    help="connection attempts in flight per generator (default 128)")
    ap.add_argument("--settle", type=float, default=2.0,
                    help="seconds between the last connection opening and reading RSS")
    ap.add_argument("--max-hold", type=float, default=300,
                    help="a generator lets go of its connections after this long at most")
    ap.add_argument("--fit-fd-limit", action="store_true",
                    help="when the descriptor limit cannot be raised enough, hold as many "
                         "connections as fit under it instead of stopping")
    ap.add_argument("--results", default=None,
                    help="results directory (default build/bench-results/idle-<UTC time>)")
    ap.add_argument("--server-cpus", default="1")
    ap.add_argument("--node-cpus", default="1")
    ap.add_argument("--client-cpus", default="0")
    build = os.path.join(matrix.REPO, "build", "release")
    ap.add_argument("--gatehouse", default=os.path.join(build, "server", "gatehouse-server"))
    ap.add_argument("--load", default=os.path.join(build, "bench", "load", "gatehouse_load"))
    ap.add_argument("--node-dir", default=os.path.join(matrix.REPO, "bench", "peers", "node"))
    args = ap.parse_args(argv)
    args.servers = [s for s in args.servers.split(",") if s]
    for s in args.servers:
        if s not in matrix.SERVERS:
            ap.error(f"unknown server {s}")
    if "baseline" in args.servers and not args.baseline:
        ap.error("server baseline needs --baseline PATH")
    if args.connections < 1 or args.per_generator < 1:
        ap.error("--connections and --per-generator must be >= 1")
    if (os.cpu_count() or 1) < 2:
        args.server_cpus = args.node_cpus = args.client_cpus = "0"
    return args


def main(argv=None):
    args = parse_args(argv)
    for path in [args.load] + [args.gatehouse] * ("gatehouse" in args.servers) + \
            [args.baseline] * ("baseline" in args.servers):
        if not os.path.exists(path):
            sys.exit(f"idle_connections: {path} not found (./dev.sh bench builds the release "
                     "preset's gatehouse-server and gatehouse_load)")
    need = max(args.connections + SERVER_SPARE_FDS,
               min(args.per_generator, args.connections) + GENERATOR_SPARE_FDS)
    limit = raise_nofile(need)
    if limit < need:
        fits = limit - SERVER_SPARE_FDS
        msg = (f"RLIMIT_NOFILE stays at {limit} (raising its hard limit needs "
               f"CAP_SYS_RESOURCE); {args.connections} connections need {need} descriptors "
               "in the server")
        if not args.fit_fd_limit or fits < 1:
            log(msg + "; run where the limit can be raised, or pass --fit-fd-limit")
            return 2
        log(msg + f"; --fit-fd-limit: holding {fits} instead")
        args.connections = fits
        args.per_generator = min(args.per_generator, limit - GENERATOR_SPARE_FDS)
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    out_dir = args.results or os.path.join(matrix.REPO, "build", "bench-results", f"idle-{stamp}")
    os.makedirs(out_dir, exist_ok=True)
    logs = tempfile.mkdtemp(prefix="logs-", dir=out_dir)
    log(f"results in {out_dir}; {args.connections} connections per server from "
        f"{args.source_addresses}, {args.per_generator} per generator; RLIMIT_NOFILE {limit}")
    results = []
    with open(os.path.join(out_dir, "raw.jsonl"), "w") as raw:
        for server in args.servers:
            try:
                r = run_server(args, server, logs)
            except (RuntimeError, subprocess.SubprocessError, OSError, ValueError) as e:
                r = {"workload": "idle", "server": server, "ok": False, "error": str(e)[-600:]}
            results.append(r)
            raw.write(json.dumps(r) + "\n")
            raw.flush()
    rows = [["server", "connections held", "RSS before", "RSS held", "RSS per connection",
             "opened in", "ok"]]
    for r in results:
        per = r.get("rss_per_conn_bytes")
        rows.append([r["server"], f"{r.get('welcomed', 0):,}",
                     f"{r.get('rss_before_bytes', 0) / 2**20:.1f} MiB",
                     f"{r.get('rss_after_bytes', 0) / 2**20:.1f} MiB",
                     f"{per:,.0f} B" if per is not None else "-",
                     f"{r.get('open_s', 0):.1f} s", str(r.get("ok"))
                     + (f" ({r['error'][:120]})" if "error" in r else "")])
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    text = "\n".join("  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip()
                     for row in rows)
    with open(os.path.join(out_dir, "table.txt"), "w") as f:
        f.write(text + "\n")
    print(text)
    return 0 if all(r.get("ok") for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
