#!/usr/bin/python3
"""Profiles gatehouse-server under one workload of the matrix, placed as the matrix places it.

    bench/profile.py ingress                  # perf record -g on the server, 4 s of the window
    bench/profile.py fanout --perf-seconds 3
    bench/profile.py connect --heaptrack      # the server under heaptrack (allocations)
    bench/profile.py ingress -- --window 16   # generator flags after -- (they win)
    bench/profile.py broadcast --gatehouse /work/baseline/build/release/server/gatehouse-server

A fresh redis-server and gatehouse-server (--threads 1 on core 1; generator and Redis on
core 0), the workload's matrix parameters (bench/run_matrix.py, full size), one generator run,
then the servers stopped by PID. It prints the generator's JSON line and the command that
shows the profile (`perf report` or `heaptrack_print`). docs/benchmarks.md ("Where the misses
come from") was made this way. Needs the release build (./dev.sh bench builds it) and perf or
heaptrack (Debian: linux-perf, heaptrack).
"""

import argparse
import json
import os
import secrets
import signal
import subprocess
import sys

import run_matrix as matrix


def load_params(workload, extra):
    """The matrix's full-size parameters for `workload`, then `--flag value` pairs from extra."""
    params = dict(matrix.WORKLOADS[workload][0], **matrix.TIMING[0])
    if len(extra) % 2:
        raise SystemExit("profile.py: generator flags after -- go in --flag value pairs")
    for flag, value in zip(extra[::2], extra[1::2]):
        params[flag.lstrip("-")] = number(value)
    return params


def number(text):
    """`text` as an int or a float when it is one (run_load adds up the durations), else as is."""
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("workload", choices=sorted(matrix.WORKLOADS))
    ap.add_argument("--heaptrack", action="store_true", help="heaptrack instead of perf")
    ap.add_argument("--perf-seconds", type=float, default=4.0,
                    help="how long perf records, from the generator's start (default 4)")
    ap.add_argument("--out", default=os.path.join(matrix.REPO, "build", "profile"),
                    help="where perf.data / heaptrack files and logs go")
    ap.add_argument("--gatehouse", default=None, metavar="PATH",
                    help="the gatehouse-server binary to profile (default: this tree's release "
                         "build; e.g. a --baseline binary of run_matrix.py)")
    ap.add_argument("--call-graph", default=None, metavar="MODE",
                    help="perf record --call-graph MODE (e.g. dwarf; default: -g, frame "
                         "pointers)")
    argv = sys.argv[1:]
    split = argv.index("--") if "--" in argv else len(argv)
    args = ap.parse_args(argv[:split])
    params = load_params(args.workload, argv[split + 1:])
    build = os.path.join(matrix.REPO, "build", "release")
    os.makedirs(args.out, exist_ok=True)

    secret = "bench-" + secrets.token_hex(16)
    heap_file = os.path.join(args.out, "heaptrack.gatehouse")
    redis = matrix.RedisServer()
    procs = []
    try:
        redis.start()
        matrix.pin(redis.proc.pid, "0")
        wrap = ["heaptrack", "-o", heap_file] if args.heaptrack else []
        binary = args.gatehouse or os.path.join(build, "server", "gatehouse-server")
        srv, port = matrix.start_gatehouse(binary, redis.url, secret, 1, "1", args.out,
                                           wrap=wrap, timeout=60)
        procs.append(srv)
        # Under heaptrack the PID the matrix knows is heaptrack's shell; the server is its child.
        server_pid = srv.pid
        if args.heaptrack:
            children = subprocess.run(["pgrep", "-P", str(srv.pid)], stdout=subprocess.PIPE,
                                      text=True, check=False).stdout.split()
            server_pid = int(children[0]) if children else srv.pid
        if args.workload == "roundtrip":
            procs.append(matrix.start_echo(os.path.join(build, "bench", "load",
                                                        "gatehouse_bench_echo"),
                                           redis.port, "0", args.out))
        perf = None
        perf_file = os.path.join(args.out, "perf.data")
        if not args.heaptrack:
            graph = ["--call-graph", args.call_graph] if args.call_graph else ["-g"]
            perf = subprocess.Popen(["perf", "record", *graph, "-o", perf_file, "-p",
                                     str(server_pid), "--", "sleep", str(args.perf_seconds)],
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        result = matrix.run_load(os.path.join(build, "bench", "load", "gatehouse_load"),
                                 args.workload, port, secret, "gatehouse", server_pid,
                                 redis.port, params, "0", args.out, redis_pid=redis.proc.pid)
        print(json.dumps(result))
        if perf:
            perf.wait(timeout=args.perf_seconds + 60)
            print(f"perf report -i {perf_file} --no-children --sort dso,sym")
        if args.heaptrack:
            # heaptrack writes its file when the server exits by itself, after SIGTERM.
            os.kill(server_pid, signal.SIGTERM)
            srv.proc.wait(timeout=60)
            print(f"heaptrack_print -f {heap_file}.zst --print-peaks 1")
        return result["exit_code"]
    finally:
        for p in reversed(procs):
            p.stop()
        redis.close()


if __name__ == "__main__":
    sys.exit(main())
