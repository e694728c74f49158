#!/usr/bin/python3
"""The end-to-end benchmark matrix: gatehouse-server against the Node peer, in one run.

For every repetition, every workload runs once against gatehouse and once against the Node
peer (bench/peers/node), alternately, each run on a fresh redis-server and a fresh server
process; with `--baseline PATH`, also once against another gatehouse-server binary (an older
build), placed and run exactly as gatehouse is. The load generator
(build/release/bench/load/gatehouse_load) prints one JSON line per run; this script keeps them
all (raw.jsonl), prints a table of medians with the spread between repetitions and the paired
ratios (gatehouse ÷ each other server within one repetition, then the median of those), writes
summary.json, and plots roundtrip latency against offered load (roundtrip.png, with gnuplot).

CPU placement (see bench/README.md): the server under test alone on core 1 (`taskset -c 1`);
the generator, redis-server and the echo service together on core 0. Both servers get the same
single core, so the comparison is per core; what runs on core 0 is the same for both.

    bench/run_matrix.py [--reps 3] [--quick] [--threads 1] [--workloads a,b] [--servers a,b]
                        [--baseline OTHER/gatehouse-server] [--variant NAME="FLAGS"]...
                        [--redis-module PATH|none] [--no-module NAME]... [--ratio A/B]...

The redis-server of every gatehouse server (gatehouse, baseline, logged, the variants) loads
the gatehouse Redis module (redis_module/, GATEHOUSE.APPEND) when it is built, unless that
server is named with --no-module; the Node peer's Redis never does.

Every wait is bounded and every process this script starts is stopped by its PID.
"""

import argparse
import datetime
import json
import os
import re
import resource
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO, "tests", "server"))
from redis_fixture import RedisServer  # noqa: E402  (the tests' own redis-server fixture)

READY_RE = re.compile(r"ready listen=(\S+):(\d+)\s*$")
START_TIMEOUT_S = 15.0
STOP_TIMEOUT_S = 8.0
STREAM_MAXLEN = 100000  # both servers trim the command stream alike (XADD MAXLEN ~)
CHANNEL = "ws_updates_channel"
STREAM = "gateway:commands"

# Workload parameters: (full, quick). Durations are the measured window, after a warmup.
WORKLOADS = {
    "ingress": ({"connections": 100, "window": 8}, {"connections": 20, "window": 8}),
    "fanout": ({"connections": 1000, "window": 1000}, {"connections": 200, "window": 500}),
    "broadcast": ({"connections": 1000, "window": 16}, {"connections": 200, "window": 16}),
    "roundtrip": ({"connections": 50, "rate": 5000}, {"connections": 20, "rate": 2000}),
    "connect": ({"connections": 5000, "concurrency": 128},
                {"connections": 500, "concurrency": 64}),
}
TIMING = ({"warmup": 1, "duration": 5}, {"warmup": 0.5, "duration": 1.5})
SWEEP_RATES = ([1000, 2500, 5000, 10000, 20000], [1000, 5000])

# The figures the table shows per workload: (field, higher is better).
HEADLINE = {
    "ingress": [("acks_per_s", True), ("p50_us", False), ("p99_us", False), ("p999_us", False),
                ("redis_us_per_ack", False)],
    "fanout": [("delivered_per_s", True), ("p50_us", False), ("p99_us", False),
               ("p999_us", False)],
    "broadcast": [("deliveries_per_s", True), ("p50_us", False), ("p99_us", False)],
    "roundtrip": [("p50_us", False), ("p99_us", False), ("p999_us", False),
                  ("echoes_per_s", True)],
    "connect": [("connections_per_s", True), ("rss_per_conn_bytes", False)],
}
COMMON = [("gen_cpu", None), ("redis_cpu", None), ("server_cpu", None), ("load_1m", None)]
# The servers: gatehouse (this build), baseline (--baseline, another gatehouse-server binary,
# run exactly as gatehouse is), logged (this build again, with fanout and broadcast published
# through the update log's FCALL gatehouse_publish instead of PUBLISH: the cost of the log,
# docs/protocol.md 6.4) and the Node peer. Ratios are gatehouse ÷ each of the others.
SERVERS = ("gatehouse", "baseline", "logged", "node")
GATEHOUSE_BUILDS = ("gatehouse", "baseline", "logged")
LOGGED_WORKLOADS = ("fanout", "broadcast")


def log(msg):
    print(f"run_matrix: {msg}", file=sys.stderr, flush=True)


def _raise_nofile():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def pin(pid, cpus):
    """Pins every thread of `pid` to `cpus` (taskset -a -p)."""
    subprocess.run(["taskset", "-a", "-p", "-c", cpus, str(pid)], check=True,
                   stdout=subprocess.DEVNULL, timeout=10)


class Proc:
    """A child process with stdout and stderr in files, stopped by PID (SIGTERM, then KILL)."""

    def __init__(self, name, argv, log_dir, cwd=None):
        self.name = name
        self.out_path = os.path.join(log_dir, f"{name}.stdout")
        self.err_path = os.path.join(log_dir, f"{name}.stderr")
        self._out = open(self.out_path, "wb")
        self._err = open(self.err_path, "wb")
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=self._out,
                                     stderr=self._err, cwd=cwd, preexec_fn=_raise_nofile)
        self.pid = self.proc.pid

    def wait_line(self, pattern, timeout=START_TIMEOUT_S):
        """Waits (bounded) for a stdout line matching `pattern`; returns the match."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with open(self.out_path, "rb") as f:
                for line in f.read().decode("utf-8", "replace").splitlines():
                    m = re.search(pattern, line)
                    if m:
                        return m
            if self.proc.poll() is not None:
                break
            time.sleep(0.02)
        self.stop()
        raise RuntimeError(f"{self.name}: no line /{pattern}/ within {timeout} s (exit "
                           f"{self.proc.poll()}); stderr: {self.stderr_tail()}")

    def stderr_tail(self, n=1500):
        with open(self.err_path, "rb") as f:
            return f.read().decode("utf-8", "replace")[-n:]

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        self._out.close()
        self._err.close()
        return self.proc.returncode


def wait_http_ready(host, port, timeout=START_TIMEOUT_S):
    """gatehouse answers GET /ready 200 once its bus is connected."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://{host}:{port}/ready", timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.05)
    raise RuntimeError(f"gatehouse /ready did not answer 200 within {timeout} s")


def start_gatehouse(binary, redis_url, secret, threads, cpus, log_dir, wrap=(), timeout=None,
                    flags=()):
    """gatehouse-server as the matrix runs it; `wrap` goes before the binary (a profiler),
    `flags` after the matrix's own (a --variant's)."""
    p = Proc("gatehouse", ["taskset", "-c", cpus, *wrap, binary, "--listen", "127.0.0.1:0",
                           "--redis", redis_url, "--jwt-secret", secret, "--threads",
                           str(threads), "--ws-rate-limit", "0", "--db", "sqlite::memory:",
                           "--log-level", "warn", "--stream-maxlen", str(STREAM_MAXLEN),
                           "--command-stream", STREAM, "--updates-channel", CHANNEL, *flags],
             log_dir)
    m = p.wait_line(r"^gatehouse ready listen=(\S+):(\d+)$", timeout or START_TIMEOUT_S)
    wait_http_ready(m.group(1), int(m.group(2)))
    return p, int(m.group(2))


def start_echo(binary, redis_port, cpus, log_dir):
    """The roundtrip workload's pipelined consumer-group echo service."""
    p = Proc("echo", ["taskset", "-c", cpus, binary, "--redis-port", str(redis_port),
                      "--stream", STREAM, "--channel", CHANNEL], log_dir)
    p.wait_line(r"^echo ready$")
    return p


def start_node(node_dir, redis_url, secret, cpus, log_dir):
    p = Proc("node", ["taskset", "-c", cpus, shutil.which("node") or "node", "server.js",
                      "--listen", "127.0.0.1:0", "--redis", redis_url, "--jwt-secret", secret,
                      "--stream-maxlen", str(STREAM_MAXLEN), "--command-stream", STREAM,
                      "--updates-channel", CHANNEL], log_dir, cwd=node_dir)
    m = p.wait_line(r"^node-peer ready listen=(\S+):(\d+)$")
    return p, int(m.group(2))


def run_load(load_bin, workload, port, secret, label, server_pid, redis_port, params, cpus,
             log_dir, redis_pid=0):
    """Runs the generator once (pinned to `cpus`); returns its JSON line as a dict."""
    argv = ["taskset", "-c", cpus, load_bin, workload, "--port", str(port), "--secret", secret,
            "--label", label, "--server-pid", str(server_pid), "--redis-port", str(redis_port),
            "--channel", CHANNEL, "--redis-pid", str(redis_pid)]
    for k, v in params.items():
        argv += [f"--{k}", str(v)]
    bound = params.get("warmup", 1) + params.get("duration", 5) + params.get("drain", 5) + 120
    with open(os.path.join(log_dir, "load.stderr"), "ab") as err:
        r = subprocess.run(argv, stdout=subprocess.PIPE, stderr=err, timeout=bound,
                           preexec_fn=_raise_nofile)
    lines = [ln for ln in r.stdout.decode("utf-8", "replace").splitlines() if ln.startswith("{")]
    if len(lines) != 1:
        raise RuntimeError(f"gatehouse_load {workload}: want one JSON line, got {len(lines)} "
                           f"(exit {r.returncode})")
    result = json.loads(lines[0])
    result["exit_code"] = r.returncode
    return result


def one_run(args, server, workload, params, log_dir):
    """Fresh redis-server + server (+ echo service): one generator run. Returns its result."""
    secret = "bench-" + secrets.token_hex(16)
    module = redis_module_for(args, server)
    redis = RedisServer(module=module)
    procs = []
    try:
        redis.start()
        pin(redis.proc.pid, args.client_cpus)
        if server in GATEHOUSE_BUILDS or server in args.variants:
            binary = args.baseline if server == "baseline" else args.gatehouse
            srv, port = start_gatehouse(binary, redis.url, secret, args.threads,
                                        args.server_cpus, log_dir,
                                        flags=args.variants.get(server, ()))
        else:
            srv, port = start_node(args.node_dir, redis.url, secret, args.node_cpus, log_dir)
        procs.append(srv)
        if workload == "roundtrip":
            procs.append(start_echo(args.echo, redis.port, args.client_cpus, log_dir))
        if server == "logged" and workload in LOGGED_WORKLOADS:
            params = dict(params, **{"publish-via": "fcall"})
        result = run_load(args.load, workload, port, secret, server, srv.pid, redis.port,
                          params, args.client_cpus, log_dir, redis_pid=redis.proc.pid)
        result["redis_module"] = module
        result["load_1m"] = os.getloadavg()[0]  # the machine is shared: how busy it was
        # Redis's CPU time per acknowledged command (redis_cpu is a fraction of one core).
        if workload == "ingress" and result.get("acks_per_s") and \
                isinstance(result.get("redis_cpu"), (int, float)):
            result["redis_us_per_ack"] = result["redis_cpu"] * 1e6 / result["acks_per_s"]
        if srv.proc.poll() is not None:
            result["ok"] = False
            result["server_died"] = srv.proc.returncode
        # What the server asked of Redis (commands a function ran count too): calls and
        # microseconds per call, e.g. commands per FCALL = XADD calls / FCALL calls.
        stats = redis.client().info("commandstats")
        result["redis_commandstats"] = {k.removeprefix("cmdstat_"): {
            "calls": v["calls"], "usec_per_call": v["usec_per_call"]} for k, v in stats.items()}
        return result
    finally:
        for p in reversed(procs):
            p.stop()
        redis.close()


def redis_module_for(args, server):
    """The Redis module `server`'s redis-server loads: the gatehouse module for the gatehouse
    servers not named by --no-module, none for the Node peer."""
    if server == "node" or server in args.no_module or not args.redis_module:
        return None
    return args.redis_module


def spread(values):
    """max/min - 1, as a percentage; 0 for fewer than two values."""
    vals = [v for v in values if isinstance(v, (int, float))]
    if len(vals) < 2 or min(vals) <= 0:
        return 0.0
    return 100.0 * (max(vals) / min(vals) - 1.0)


def run_key(r):
    """The summary key of one run: the workload, and for roundtrip its offered rate."""
    return r["workload"] + (f"@{int(r['rate'])}" if r["workload"] == "roundtrip" else "")


def paired(results, key, a, b, field):
    """gatehouse ÷ other within each repetition, for `field` of runs under `key`.

    Both runs of a repetition ran back to back on the same machine, so their ratio cancels
    most of a slow spell that hits both; the median of these ratios is the figure to read. Only
    repetitions where both runs were clean and reported the field count."""
    by_rep = {}
    for r in results:
        if run_key(r) == key and r.get("server") in (a, b):
            by_rep.setdefault(r.get("rep"), {})[r["server"]] = r
    per_rep = []
    for rep in sorted(by_rep, key=lambda x: -1 if x is None else x):
        pair = by_rep[rep]
        ra, rb = pair.get(a), pair.get(b)
        if not ra or not rb or not ra.get("ok") or not rb.get("ok"):
            continue
        va, vb = ra.get(field), rb.get(field)
        if isinstance(va, (int, float)) and isinstance(vb, (int, float)) and vb > 0:
            per_rep.append({"rep": rep, "ratio": va / vb})
    if not per_rep:
        return None
    ratios = [x["ratio"] for x in per_rep]
    return {"median": statistics.median(ratios), "min": min(ratios), "max": max(ratios),
            "per_rep": per_rep}


def summarise(results, servers, extra=()):
    """{key: {server: {field: {median, spread_pct}}, ratio: {...}, paired: {...}}}.

    key = workload[@rate]. `ratio` is {"gatehouse/OTHER": {field: ratio of the medians}};
    `paired` is {"gatehouse/OTHER": {field: {median, min, max, per_rep}}} (see paired())."""
    summary = {}
    for r in results:
        summary.setdefault(run_key(r), {}).setdefault(r["server"], []).append(r)
    out = {}
    for key, by_server in summary.items():
        workload = key.split("@")[0]
        fields = HEADLINE[workload] + COMMON
        entry = {}
        for server, runs in by_server.items():
            entry[server] = {"runs": len(runs), "failed_runs": sum(1 for x in runs if not x.get("ok"))}
            for field, _ in fields:
                vals = [x[field] for x in runs if isinstance(x.get(field), (int, float))]
                if vals:
                    entry[server][field] = {"median": statistics.median(vals),
                                            "spread_pct": spread(vals)}
        for a, b in ratio_pairs(servers, extra):
            if a not in entry or b not in entry:
                continue
            name = f"{a}/{b}"
            entry.setdefault("ratio", {})[name] = {}
            entry.setdefault("paired", {})[name] = {}
            for field, _ in HEADLINE[workload]:
                va = entry[a].get(field, {}).get("median")
                vb = entry[b].get(field, {}).get("median")
                if va and vb:
                    entry["ratio"][name][field] = va / vb
                p = paired(results, key, a, b, field)
                if p:
                    entry["paired"][name][field] = p
        out[key] = entry
    return out


def ratio_pairs(servers, extra=()):
    """(gatehouse, other) for every other server in the run; with no gatehouse, first ÷ rest;
    then the --ratio pairs."""
    if not servers:
        return []
    first = "gatehouse" if "gatehouse" in servers else servers[0]
    pairs = [(first, s) for s in servers if s != first]
    return pairs + [p for p in extra if p not in pairs]


def fmt(v):
    if v is None:
        return "-"
    if abs(v) >= 1000:
        return f"{v:,.0f}"
    if abs(v) >= 10:
        return f"{v:.1f}"
    return f"{v:.2f}"


def table(summary, servers, extra=()):
    rows = []
    pairs = ratio_pairs(servers, extra)
    head = ["workload", "figure"] + [f"{s} (spread)" for s in servers]
    for a, b in pairs:
        head.append(f"{a}/{b} paired (range)")
    if pairs:
        head.append("better")
    rows.append(head)
    for key in sorted(summary, key=lambda k: (list(WORKLOADS).index(k.split("@")[0]),
                                              int(k.split("@")[1]) if "@" in k else 0)):
        entry = summary[key]
        workload = key.split("@")[0]
        for field, higher in HEADLINE[workload] + COMMON:
            row = [key, field]
            for s in servers:
                f = entry.get(s, {}).get(field)
                fails = entry.get(s, {}).get("failed_runs", 0)
                cell = f"{fmt(f['median'])} ({f['spread_pct']:.0f}%)" if f else "-"
                if fails and field == HEADLINE[workload][0][0]:
                    cell += f" [{fails} failed]"
                row.append(cell)
            for a, b in pairs:
                p = entry.get("paired", {}).get(f"{a}/{b}", {}).get(field)
                row.append(f"{p['median']:.2f}x ({p['min']:.2f}-{p['max']:.2f})" if p else "")
            if pairs:
                row.append("" if higher is None else ("higher" if higher else "lower"))
            rows.append(row)
    widths = [max(len(r[i]) for r in rows) for i in range(len(head))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def plot(summary, servers, out_dir):
    """roundtrip.dat + roundtrip.png (gnuplot): p50/p99 against offered rate."""
    rates = sorted({int(k.split("@")[1]) for k in summary if k.startswith("roundtrip@")})
    if len(rates) < 2:
        return None
    dat = os.path.join(out_dir, "roundtrip.dat")
    with open(dat, "w") as f:
        f.write("# rate " + " ".join(f"{s}_p50_us {s}_p99_us" for s in servers) + "\n")
        for rate in rates:
            entry = summary[f"roundtrip@{rate}"]
            cells = []
            for s in servers:
                for q in ("p50_us", "p99_us"):
                    v = entry.get(s, {}).get(q, {}).get("median")
                    cells.append(f"{v:.1f}" if v else "NaN")
            f.write(f"{rate} " + " ".join(cells) + "\n")
    gnuplot = shutil.which("gnuplot")
    if not gnuplot:
        log("gnuplot not found: roundtrip.dat written, no PNG (apt-get install gnuplot-nox)")
        return None
    png = os.path.join(out_dir, "roundtrip.png")
    curves = []
    for i, s in enumerate(servers):
        curves.append(f"'{dat}' using 1:{2 + 2 * i} with linespoints lw 2 title '{s} p50'")
        curves.append(f"'{dat}' using 1:{3 + 2 * i} with linespoints lw 2 dt 2 title '{s} p99'")
    script = "\n".join([
        "set terminal pngcairo size 900,560 noenhanced" if _has_cairo(gnuplot)
        else "set terminal png size 900,560 noenhanced",
        f"set output '{png}'",
        "set title 'roundtrip: command -> XADD -> echo service -> PUBLISH -> client'",
        "set xlabel 'offered load (commands/s)'",
        "set ylabel 'latency (us)'",
        "set logscale y",
        "set grid",
        "set key top left",
        "plot " + ", ".join(curves),
    ])
    subprocess.run([gnuplot], input=script.encode(), check=True, timeout=30)
    return png


def _has_cairo(gnuplot):
    r = subprocess.run([gnuplot, "-e", "set terminal"], capture_output=True, timeout=10)
    return b"pngcairo" in r.stdout + r.stderr


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--reps", type=int, default=3, help="repetitions of the matrix (default 3)")
    ap.add_argument("--quick", action="store_true", help="smoke run: small, short workloads")
    ap.add_argument("--threads", type=int, default=1, help="gatehouse --threads (default 1)")
    ap.add_argument("--workloads", default=",".join(WORKLOADS),
                    help="comma-separated subset of " + ",".join(WORKLOADS))
    ap.add_argument("--servers", default=None,
                    help="comma-separated subset of gatehouse,baseline,logged,node (default "
                         "gatehouse,node; gatehouse,baseline,node with --baseline); logged is "
                         "this gatehouse with fanout and broadcast published through the "
                         "update log (FCALL gatehouse_publish)")
    ap.add_argument("--baseline", default=None, metavar="PATH",
                    help="another gatehouse-server binary (e.g. an older commit's release "
                         "build), run as the server `baseline`, placed and run exactly as "
                         "gatehouse; the table adds gatehouse/baseline paired ratios")
    ap.add_argument("--variant", action="append", default=[], metavar='NAME="FLAGS"',
                    help="this gatehouse build with extra server flags, run as the server NAME "
                         "(repeatable; list NAME in --servers), e.g. off=\"--dedupe-window 0\"")
    ap.add_argument("--redis-module", default=None, metavar="PATH",
                    help="the gatehouse Redis module the gatehouse servers' redis-server loads "
                         "(default: redis_module/gatehouse_redis.so of --gatehouse's build when "
                         "it exists; `none`: no module)")
    ap.add_argument("--no-module", action="append", default=[], metavar="NAME",
                    help="run server NAME (a gatehouse build or a --variant) on a redis-server "
                         "without the module (repeatable, or comma-separated): its gateway "
                         "appends through FCALL gatehouse_append")
    ap.add_argument("--ratio", action="append", default=[], metavar="A/B",
                    help="also the paired ratio of server A to server B (repeatable), e.g. "
                         "off/node next to the gatehouse/OTHER ones")
    ap.add_argument("--rates", default=None,
                    help="roundtrip offered loads, commands/s (default 1000,2500,5000,10000,"
                         "20000; --quick 1000,5000)")
    ap.add_argument("--results", default=None,
                    help="results directory (default build/bench-results/<UTC time>)")
    ap.add_argument("--server-cpus", default=None,
                    help="taskset list for gatehouse (default 1; with --threads N, cores 1..N "
                         "when the machine has more, else all cores)")
    ap.add_argument("--node-cpus", default="1", help="taskset list for the Node peer (default 1)")
    ap.add_argument("--client-cpus", default="0",
                    help="taskset list for the generator, redis-server, echo (default 0)")
    build = os.path.join(REPO, "build", "release")
    ap.add_argument("--gatehouse", default=os.path.join(build, "server", "gatehouse-server"))
    ap.add_argument("--load", default=os.path.join(build, "bench", "load", "gatehouse_load"))
    ap.add_argument("--echo", default=os.path.join(build, "bench", "load", "gatehouse_bench_echo"))
    ap.add_argument("--node-dir", default=os.path.join(REPO, "bench", "peers", "node"))
    args = ap.parse_args(argv)
    ncpu = os.cpu_count() or 1
    if args.server_cpus is None:
        if args.threads <= 1:
            args.server_cpus = "1" if ncpu > 1 else "0"
        elif ncpu > args.threads:
            args.server_cpus = f"1-{args.threads}"
        else:
            args.server_cpus = f"0-{ncpu - 1}"
            log(f"--threads {args.threads} on {ncpu} cores: gatehouse shares core 0 with the "
                "generator and Redis; read the figures as rough scaling only")
    args.workloads = [w for w in args.workloads.split(",") if w]
    if args.servers is None:
        args.servers = "gatehouse,baseline,node" if args.baseline else "gatehouse,node"
    args.servers = [s for s in args.servers.split(",") if s]
    variants = {}
    for v in args.variant:
        name, eq, flags = v.partition("=")
        if not eq or not name or name in SERVERS:
            ap.error(f"--variant {v}: NAME=FLAGS with a NAME not in " + ",".join(SERVERS))
        variants[name] = flags.split()
    args.variants = variants
    for w in args.workloads:
        if w not in WORKLOADS:
            ap.error(f"unknown workload {w}")
    for s in args.servers:
        if s not in SERVERS and s not in variants:
            ap.error(f"unknown server {s}")
    if "baseline" in args.servers and not args.baseline:
        ap.error("server baseline needs --baseline PATH")
    if args.baseline:
        args.baseline = os.path.abspath(args.baseline)
    if args.redis_module is None:
        # <build>/server/gatehouse-server -> <build>/redis_module/gatehouse_redis.so
        beside = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(args.gatehouse))),
                              "redis_module", "gatehouse_redis.so")
        args.redis_module = beside if os.path.exists(beside) else ""
    elif args.redis_module in ("", "none"):
        args.redis_module = ""
    else:
        args.redis_module = os.path.abspath(args.redis_module)  # redis-server has its own cwd
        if not os.path.exists(args.redis_module):
            ap.error(f"--redis-module {args.redis_module}: no such file")
    args.ratios = []
    for v in args.ratio:
        a, slash, b = v.partition("/")
        if not slash or a not in args.servers or b not in args.servers or a == b:
            ap.error(f"--ratio {v}: A/B with two different servers of --servers")
        args.ratios.append((a, b))
    args.no_module = [n for v in args.no_module for n in v.split(",") if n]
    for n in args.no_module:
        if n not in args.servers:
            ap.error(f"--no-module {n}: not one of --servers")
        if n == "node":
            ap.error("--no-module node: the Node peer's Redis never loads the module")
    if args.reps < 1:
        ap.error("--reps must be >= 1")
    args.rates = ([int(x) for x in args.rates.split(",")] if args.rates
                  else SWEEP_RATES[1 if args.quick else 0])
    return args


def main(argv=None):
    args = parse_args(argv)
    needed = [(args.load, "gatehouse_load"), (args.echo, "gatehouse_bench_echo")]
    if any(s in args.servers for s in ("gatehouse", "logged", *args.variants)):
        needed.append((args.gatehouse, "gatehouse-server"))
    if "baseline" in args.servers and not os.path.exists(args.baseline):
        sys.exit(f"run_matrix: --baseline {args.baseline} not found")
    for path, what in needed:
        if not os.path.exists(path):
            sys.exit(f"run_matrix: {what} not found at {path}: cmake --preset release && "
                     "cmake --build build/release --target gatehouse-server gatehouse_load "
                     "gatehouse_bench_echo (or ./dev.sh bench)")
    if "node" in args.servers and not os.path.isdir(os.path.join(args.node_dir, "node_modules")):
        sys.exit(f"run_matrix: run `npm ci` in {args.node_dir} first (or ./dev.sh bench)")
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    out_dir = args.results or os.path.join(REPO, "build", "bench-results", stamp)
    os.makedirs(out_dir, exist_ok=True)
    logs = tempfile.mkdtemp(prefix="logs-", dir=out_dir)
    q = 1 if args.quick else 0
    timing = TIMING[q]

    plan = []  # (workload, params) in matrix order; roundtrip once per offered rate
    for w in args.workloads:
        base = dict(WORKLOADS[w][q], **timing)
        if w == "roundtrip":
            for rate in args.rates:
                plan.append((w, dict(base, rate=rate)))
        else:
            plan.append((w, base))

    if "baseline" in args.servers:
        log(f"baseline: {args.baseline}")
    log(f"results in {out_dir}; gatehouse --threads {args.threads} on cpus {args.server_cpus}, "
        f"node on {args.node_cpus}, generator+redis+echo on {args.client_cpus}; "
        f"{len(plan)} workloads x {len(args.servers)} servers x {args.reps} reps")
    log("redis module: " + (args.redis_module or "none") +
        (f" (not for {','.join(args.no_module)})" if args.no_module and args.redis_module else ""))
    results = []
    raw_path = os.path.join(out_dir, "raw.jsonl")
    with open(raw_path, "w") as raw:
        for rep in range(args.reps):
            for workload, params in plan:
                for server in args.servers:
                    if server == "logged" and workload not in LOGGED_WORKLOADS:
                        continue  # no update log in that workload: it would be gatehouse again
                    try:
                        r = one_run(args, server, workload, params, logs)
                    except (RuntimeError, subprocess.SubprocessError, OSError, ValueError) as e:
                        r = {"workload": workload, "server": server, "ok": False,
                             "error": str(e)[-600:], **params}
                    r["rep"] = rep
                    r["threads"] = args.threads if server != "node" else 1
                    results.append(r)
                    raw.write(json.dumps(r) + "\n")
                    raw.flush()
                    head = HEADLINE[workload][0][0]
                    log(f"rep {rep + 1}/{args.reps} {workload:9s} {server:9s} "
                        f"{head}={fmt(r.get(head))} ok={r.get('ok')} "
                        f"module={'yes' if r.get('redis_module') else 'no'} "
                        f"load={fmt(r.get('load_1m'))}"
                        + (f" error={r['error'][:200]}" if "error" in r else ""))

    summary = summarise(results, args.servers, args.ratios)
    text = table(summary, args.servers, args.ratios)
    with open(os.path.join(out_dir, "summary.json"), "w") as f:
        json.dump({"started_utc": stamp, "reps": args.reps, "quick": args.quick,
                   "threads": args.threads, "server_cpus": args.server_cpus,
                   "node_cpus": args.node_cpus, "client_cpus": args.client_cpus,
                   "servers": args.servers, "gatehouse": args.gatehouse,
                   "baseline": args.baseline, "redis_module": args.redis_module or None,
                   "no_module": args.no_module, "summary": summary}, f, indent=2)
    with open(os.path.join(out_dir, "table.txt"), "w") as f:
        f.write(text + "\n")
    png = plot(summary, args.servers, out_dir) if "roundtrip" in args.workloads else None
    print(text)
    print(f"\nmedians of {args.reps} reps; (spread) = max/min - 1 over the reps; paired = the "
          "ratio within each repetition (clean runs only), median (min-max) over the reps. "
          f"Raw: {raw_path}" + (f"; plot: {png}" if png else ""))
    failed = sum(1 for r in results if not r.get("ok"))
    if failed:
        print(f"{failed} of {len(results)} runs were not clean (see raw.jsonl: lost, closed, "
              "error_frames, error)")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
