#!/usr/bin/python3
"""What one publish costs Redis: plain PUBLISH against the update log's FCALL.

Starts a redis-server and a gatehouse-server on it (which loads the `gatehouse` function
library, docs/protocol.md 6.4), adds a one-line library whose function only PUBLISHes (the floor of
any Redis function call), and runs redis-benchmark (pipelined, 1000 players) against:

- `PUBLISH`                         the unlogged path
- `FCALL floor`                     a function that only PUBLISHes
- `FCALL gatehouse_publish` broadcast    decoded, not logged, PUBLISHed
- `FCALL gatehouse_publish` player       decoded, XADD to the player's log, PEXPIRE, PUBLISH

Each is run `--reps` times, alternating; the table gives the median requests per second and
the microseconds of Redis CPU per call that implies (redis-benchmark pinned to one core and
redis-server to the other, as far as the machine has two).

    bench/redis_function_cost.py [--reps 3] [--requests 200000]
"""

import argparse
import os
import shutil
import statistics
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO, "tests", "server"))
from gatehouse_harness import Server  # noqa: E402
from redis_fixture import RedisServer  # noqa: E402

CHANNEL = "cost_updates"
FLOOR_LIBRARY = ("#!lua name=cost_floor\n"
                 "redis.register_function('floor', function(keys, args)\n"
                 "  redis.call('PUBLISH', args[1], args[2]) return {} end)\n")
PLAYER = ('{"player_id":"bench-p__rand_int__","type":"bench.update",'
          '"payload":{"seq":12345,"t":987654321}}')
BROADCAST = '{"broadcast":true,"type":"bench.update","payload":{"seq":12345,"t":987654321}}'
CASES = [
    ("PUBLISH", ["PUBLISH", CHANNEL, PLAYER]),
    ("FCALL floor (PUBLISH only)", ["FCALL", "floor", "0", CHANNEL, PLAYER]),
    ("FCALL gatehouse_publish, broadcast", ["FCALL", "gatehouse_publish", "0", CHANNEL,
                                           BROADCAST]),
    ("FCALL gatehouse_publish, player", ["FCALL", "gatehouse_publish", "0", CHANNEL, PLAYER]),
]


def rps(port, argv, requests, cpu, keyspace=1000):
    """Requests per second; __rand_int__ draws from [0, keyspace)."""
    cmd = ["redis-benchmark", "-p", str(port), "-n", str(requests), "-P", "64", "-c", "4",
           "-r", str(keyspace), "-q", "--csv", *argv]
    if cpu is not None:
        cmd = ["taskset", "-c", str(cpu), *cmd]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=300, check=True).stdout
    # --csv: a header line, then "name","rps" and six latencies; the name is the command,
    # quotes unescaped, so the numbers are read from the end.
    line = [ln for ln in out.splitlines() if ln.strip()][-1]
    return float(line.split(",")[-7].strip('"'))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--requests", type=int, default=200000)
    ap.add_argument("--gatehouse", default=os.path.join(REPO, "build", "release", "server",
                                                         "gatehouse-server"))
    args = ap.parse_args(argv)
    if not shutil.which("redis-benchmark"):
        sys.exit("redis_function_cost: redis-benchmark not found (Debian package redis-tools)")
    two = (os.cpu_count() or 1) > 1
    redis = RedisServer()
    server = None
    try:
        redis.start()
        if two:
            os.sched_setaffinity(redis.proc.pid, {1})
        server = Server("--redis", redis.url, "--updates-channel", CHANNEL, "--log-level",
                        "warn", binary=args.gatehouse).start()
        r = redis.client()
        r.execute_command("FUNCTION", "LOAD", "REPLACE", FLOOR_LIBRARY)
        results = {name: [] for name, _ in CASES}
        for _ in range(args.reps):
            for name, cmd in CASES:
                r.execute_command("FLUSHDB")  # the logs start empty every run (functions stay)
                results[name].append(rps(redis.port, cmd, args.requests, 0 if two else None))
    finally:
        if server:
            server.stop()
        redis.close()
    base = statistics.median(results["PUBLISH"])
    print(f"{'call':38s} {'calls/s':>12s} {'us/call':>8s} {'x PUBLISH':>9s}")
    for name, _ in CASES:
        m = statistics.median(results[name])
        print(f"{name:38s} {m:12,.0f} {1e6 / m:8.2f} {base / m:9.2f}")
    print(f"medians of {args.reps} runs of {args.requests} pipelined calls, 1000 players")
    return 0


if __name__ == "__main__":
    sys.exit(main())
