#!/usr/bin/python3
"""What one command costs Redis: the plain XADD against FCALL gatehouse_append (PROTOCOL.md 6.5).

Starts a redis-server and a gatehouse-server on it (which loads the `gatehouse` function
library), and runs redis-benchmark (pipelined, as bench/redis_function_cost.py does) against:

- `XADD`                              the path without de-duplication (--dedupe-window 0)
- `FCALL gatehouse_append`, N commands   one call carrying N fresh commands with their pairs,
                                        as the gateway batches them (N = 1, 16, 64)
- the same, 64 gateway-assigned ids   pairs empty: nothing looked up or remembered
- the same, 64 duplicates             every pair already remembered: nothing appended

Every command has the nine section 4 fields of the ingress benchmark's commands. The table
gives the median commands per second and the microseconds of Redis CPU per command, measured
from redis-server's own `INFO cpu` (user + system) around each run, so a slow
redis-benchmark (it formats 20-odd arguments per command) does not count (redis-benchmark
pinned to one core and redis-server to the other, as far as the machine has two).

    bench/redis_append_cost.py [--reps 3] [--commands 400000]
"""

import argparse
import os
import shutil
import statistics
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO, "tests", "server"))
sys.path.insert(0, os.path.join(REPO, "bench"))
from gatehouse_harness import Server  # noqa: E402
from redis_fixture import RedisServer  # noqa: E402
from redis_function_cost import rps  # noqa: E402

STREAM = "cost:commands"
FIELDS = ["type", "bench.cmd", "payload", '{"seq":12345,"t":987654321}', "codec", "json",
          "correlation_id", "c__rand_int__", "player_id", "bench-p7", "connection_id",
          "a1b2c3d4e5f60718", "gateway_id", "gw-cost", "client", "player", "ts_ms",
          "1765000000000"]


def append_call(n, pair):
    argv = ["FCALL", "gatehouse_append", "1", STREAM, "120", "100000", "gw-cost"]
    values = [v for i, v in enumerate(FIELDS) if i % 2 == 1 and FIELDS[i - 1] != "gateway_id"]
    for _ in range(n):
        argv += [pair, "0", *values]
    return argv


CASES = [
    ("XADD", 1, ["XADD", STREAM, "MAXLEN", "~", "100000", "*", *FIELDS]),
    ("FCALL gatehouse_append, 1 command", 1, append_call(1, "8:bench-p7:c__rand_int__")),
    ("FCALL gatehouse_append, 16 commands", 16, append_call(16, "8:bench-p7:c__rand_int__")),
    ("FCALL gatehouse_append, 64 commands", 64, append_call(64, "8:bench-p7:c__rand_int__")),
    ("  64 gateway-assigned ids", 64, append_call(64, "")),
    ("  64 duplicates", 64, append_call(64, "8:bench-p7:dup")),
]


def redis_cpu_s(r):
    info = r.info("cpu")
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--commands", type=int, default=400000)
    ap.add_argument("--gatehouse", default=os.path.join(REPO, "build", "release", "server",
                                                         "gatehouse-server"))
    args = ap.parse_args(argv)
    if not shutil.which("redis-benchmark"):
        sys.exit("redis_append_cost: redis-benchmark not found (Debian package redis-tools)")
    two = (os.cpu_count() or 1) > 1
    redis = RedisServer()
    server = None
    try:
        redis.start()
        if two:
            os.sched_setaffinity(redis.proc.pid, {1})
        server = Server("--redis", redis.url, "--log-level", "warn",
                        binary=args.gatehouse).start()
        r = redis.client()
        results = {name: [] for name, _, _ in CASES}
        cpu = {name: [] for name, _, _ in CASES}
        for _ in range(args.reps):
            for name, n, cmd in CASES:
                r.execute_command("FLUSHDB")  # functions stay
                if "duplicates" in name:
                    r.execute_command(*append_call(1, "8:bench-p7:dup"))
                calls = max(1000, args.commands // n)
                before = redis_cpu_s(r)
                results[name].append(n * rps(redis.port, cmd, calls, 0 if two else None))
                cpu[name].append((redis_cpu_s(r) - before) * 1e6 / (calls * n))
    finally:
        if server:
            server.stop()
        redis.close()
    base = statistics.median(cpu["XADD"])
    print(f"{'call':38s} {'commands/s':>12s} {'Redis CPU us/cmd':>17s} {'x XADD':>7s}")
    for name, _, _ in CASES:
        m = statistics.median(results[name])
        c = statistics.median(cpu[name])
        print(f"{name:38s} {m:12,.0f} {c:17.2f} {c / base:7.2f}")
    print(f"medians of {args.reps} runs of about {args.commands} pipelined commands")
    return 0


if __name__ == "__main__":
    sys.exit(main())
