#!/usr/bin/python3
"""Profiles gatehouse-server under one workload of the matrix, placed as the matrix places it.

    bench/profile.py ingress                  # perf record -g on the server, 4 s of the window
    bench/profile.py fanout --perf-seconds 3
    bench/profile.py connect --heaptrack      # the server under heaptrack (allocations)
    bench/profile.py ingress -- --window 16   # generator flags after -- (they win)

A fresh redis-server and gatehouse-server (--threads 1 on core 1; generator and Redis on
core 0), the workload's matrix parameters (bench/run_matrix.py, full size), one generator run,
then the servers stopped by PID. It prints the generator's JSON line and the command that
shows the profile (`perf report` or `heaptrack_print`). docs/benchmarks.md ("Where the misses
come from") was made this way. Needs the release build (./dev.sh bench builds it) and perf or
heaptrack (Debian: linux-perf, heaptrack).
"""

import argparse
import os
import secrets
import signal
import subprocess
import sys

import run_matrix as matrix

RedisServer = matrix.RedisServer


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("workload", choices=sorted(matrix.WORKLOADS))
    ap.add_argument("--heaptrack", action="store_true", help="heaptrack instead of perf")
    ap.add_argument("--perf-seconds", type=float, default=4.0,
                    help="how long perf records, from the generator's start (default 4)")
    ap.add_argument("--out", default=os.path.join(matrix.REPO, "build", "profile"),
                    help="where perf.data / heaptrack files and logs go")
    argv = sys.argv[1:]
    load_args = argv[argv.index("--") + 1:] if "--" in argv else []
    args = ap.parse_args(argv[:argv.index("--")] if "--" in argv else argv)
    build = os.path.join(matrix.REPO, "build", "release")
    gatehouse = os.path.join(build, "server", "gatehouse-server")
    load = os.path.join(build, "bench", "load", "gatehouse_load")
    echo = os.path.join(build, "bench", "load", "gatehouse_bench_echo")
    os.makedirs(args.out, exist_ok=True)

    params = dict(matrix.WORKLOADS[args.workload][0], **matrix.TIMING[0])
    argv_extra = [str(a) for k, v in params.items() for a in (f"--{k}", v)] + load_args
    secret = "bench-" + secrets.token_hex(16)
    redis = RedisServer()
    procs = []
    try:
        redis.start()
        matrix.pin(redis.proc.pid, "0")
        server_argv = ["taskset", "-c", "1"]
        heap_file = os.path.join(args.out, "heaptrack.gatehouse")
        if args.heaptrack:
            server_argv += ["heaptrack", "-o", heap_file]
        server_argv += [gatehouse, "--listen", "127.0.0.1:0", "--redis", redis.url,
                        "--jwt-secret", secret, "--threads", "1", "--ws-rate-limit", "0",
                        "--db", "sqlite::memory:", "--log-level", "warn",
                        "--stream-maxlen", str(matrix.STREAM_MAXLEN),
                        "--command-stream", matrix.STREAM, "--updates-channel", matrix.CHANNEL]
        srv = matrix.Proc("gatehouse", server_argv, args.out)
        procs.append(srv)
        m = srv.wait_line(r"^gatehouse ready listen=(\S+):(\d+)$", timeout=60)
        port = int(m.group(2))
        # Under heaptrack the PID the matrix knows is heaptrack's shell; the server is its child.
        server_pid = srv.pid
        if args.heaptrack:
            children = subprocess.run(["pgrep", "-P", str(srv.pid)], stdout=subprocess.PIPE,
                                      text=True, check=False).stdout.split()
            server_pid = int(children[0]) if children else srv.pid
        if args.workload == "roundtrip":
            e = matrix.Proc("echo", ["taskset", "-c", "0", echo, "--redis-port", str(redis.port),
                                     "--stream", matrix.STREAM, "--channel", matrix.CHANNEL],
                            args.out)
            procs.append(e)
            e.wait_line(r"^echo ready$")
        perf = None
        perf_file = os.path.join(args.out, "perf.data")
        if not args.heaptrack:
            perf = subprocess.Popen(["perf", "record", "-g", "-o", perf_file, "-p",
                                     str(server_pid), "--", "sleep", str(args.perf_seconds)],
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        run = subprocess.run(
            ["taskset", "-c", "0", load, args.workload, "--port", str(port), "--secret", secret,
             "--server-pid", str(server_pid), "--redis-port", str(redis.port),
             "--redis-pid", str(redis.proc.pid), "--channel", matrix.CHANNEL] + argv_extra,
            stdout=subprocess.PIPE, text=True, timeout=300, preexec_fn=matrix._raise_nofile,
            check=False)
        print(run.stdout.strip())
        if perf:
            perf.wait(timeout=args.perf_seconds + 60)
            print(f"perf report -i {perf_file} --no-children --sort dso,sym")
        if args.heaptrack:
            # heaptrack writes its file when the server exits by itself, after SIGTERM.
            os.kill(server_pid, signal.SIGTERM)
            srv.proc.wait(timeout=60)
            print(f"heaptrack_print -f {heap_file}.zst --print-peaks 1")
        return run.returncode
    finally:
        for p in reversed(procs):
            p.stop()
        redis.close()


if __name__ == "__main__":
    sys.exit(main())
