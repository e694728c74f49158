#!/usr/bin/python3
"""What one command costs Redis: the plain XADD against FCALL gatehouse_append (docs/protocol.md 6.5).

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

Every `__rand_int__` draws from --keyspace values (default 10^9), so the "fresh" commands are
fresh: with redis-benchmark's usual 1000, all but the first thousand pairs were duplicates.
--prefill N[,N...] first fills the window hashes the function reads (the current window's, its
neighbours') with N remembered pairs each, as a gateway taking C commands per second fills them
to C x --dedupe-window (docs/protocol.md 6.5): what a lookup and a remember cost Redis once the hash
no longer fits the CPU's caches. It also prints Redis's memory per remembered pair.

    bench/redis_append_cost.py [--reps 3] [--commands 400000] [--prefill 0,1000000,5000000]
"""

import argparse
import os
import shutil
import statistics
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO, "tests", "server"))
sys.path.insert(0, os.path.join(REPO, "bench"))
from gatehouse_harness import Server  # noqa: E402
from redis_fixture import RedisServer  # noqa: E402
from redis_function_cost import rps  # noqa: E402

STREAM = "cost:commands"
WINDOW = 120
FIELDS = ["type", "bench.cmd", "payload", '{"seq":12345,"t":987654321}', "codec", "json",
          "correlation_id", "c__rand_int__", "player_id", "bench-p7", "connection_id",
          "a1b2c3d4e5f60718", "gateway_id", "gw-cost", "client", "player", "ts_ms",
          "1765000000000"]


def append_call(n, pair, module=False):
    argv = (["GATEHOUSE.APPEND"] if module else ["FCALL", "gatehouse_append", "1"]) + \
        [STREAM, str(WINDOW), "100000", "gw-cost"]
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
MODULE_CASES = [
    ("GATEHOUSE.APPEND, 1 command", 1, append_call(1, "8:bench-p7:c__rand_int__", True)),
    ("GATEHOUSE.APPEND, 16 commands", 16, append_call(16, "8:bench-p7:c__rand_int__", True)),
    ("GATEHOUSE.APPEND, 64 commands", 64, append_call(64, "8:bench-p7:c__rand_int__", True)),
    ("  64 gateway-assigned ids (module)", 64, append_call(64, "", True)),
    ("  64 duplicates (module)", 64, append_call(64, "8:bench-p7:dup", True)),
]


# Fills a window hash with n pairs shaped like the benchmark's (and ids like a stream's), in
# chunks so no single call holds a huge Lua table.
PREFILL_LUA = """
local key, from, to = KEYS[1], tonumber(ARGV[1]), tonumber(ARGV[2])
local t = {}
for i = from, to - 1 do
  t[#t + 1] = '8:bench-p' .. (i % 1000) .. ':f' .. i
  t[#t + 1] = '1765000000000-' .. i
  if #t >= 2000 then redis.call('HSET', key, unpack(t)); t = {} end
end
if #t > 0 then redis.call('HSET', key, unpack(t)) end
return redis.call('HLEN', key)
"""


def redis_cpu_s(r):
    info = r.info("cpu")
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


def prefill(r, n):
    """n pairs in the hashes of the previous, current and next window: a run that crosses a
    window boundary still looks up two full hashes and remembers into a full one."""
    if n == 0:
        return
    w = int(r.time()[0]) // WINDOW
    for k in (w - 1, w, w + 1):
        for start in range(0, n, 200000):
            r.eval(PREFILL_LUA, 1, f"{STREAM}:dedupe:{k}", start, min(n, start + 200000))


def window_fields(r):
    w = int(r.time()[0]) // WINDOW
    return r.hlen(f"{STREAM}:dedupe:{w}")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--commands", type=int, default=400000)
    ap.add_argument("--keyspace", type=int, default=1000000000,
                    help="values each __rand_int__ draws from (default 10^9: fresh pairs)")
    ap.add_argument("--prefill", default="0",
                    help="comma-separated pairs per window hash before the runs (default 0)")
    ap.add_argument("--gatehouse", default=os.path.join(REPO, "build", "release", "server",
                                                         "gatehouse-server"))
    ap.add_argument("--module", default=os.path.join(REPO, "build", "release", "redis_module",
                                                      "gatehouse_redis.so"),
                    help="the gatehouse Redis module: its GATEHOUSE.APPEND is measured too "
                         "when the file exists")
    args = ap.parse_args(argv)
    # Absolute: redis-server runs in a directory of its own.
    module = os.path.abspath(args.module) if os.path.exists(args.module) else None
    all_cases = CASES + (MODULE_CASES if module else [])
    sizes = [int(x) for x in args.prefill.split(",") if x]
    if not shutil.which("redis-benchmark"):
        sys.exit("redis_append_cost: redis-benchmark not found (Debian package redis-tools)")
    two = (os.cpu_count() or 1) > 1
    redis = RedisServer(module=module)
    server = None
    tables = []
    try:
        redis.start()
        if two:
            os.sched_setaffinity(redis.proc.pid, {1})
        server = Server("--redis", redis.url, "--log-level", "warn",
                        binary=args.gatehouse).start()
        r = redis.client()
        for size in sizes:
            # With a prefilled hash, the cases that look pairs up (and XADD, the reference).
            cases = [c for c in all_cases
                     if size == 0 or c[0] == "XADD" or "64 commands" in c[0]]
            r.execute_command("FLUSHDB")  # functions stay
            mem = r.info("memory")["used_memory"]
            started = time.monotonic()
            prefill(r, size)
            per_pair = (r.info("memory")["used_memory"] - mem) / (3 * size) if size else 0
            fill_s = time.monotonic() - started
            results = {name: [] for name, _, _ in cases}
            cpu = {name: [] for name, _, _ in cases}
            fields = []
            for _ in range(args.reps):
                for name, n, cmd in cases:
                    if size == 0:
                        r.execute_command("FLUSHDB")  # each case from an empty hash
                    r.delete(STREAM)
                    if "duplicates" in name:
                        r.execute_command(*append_call(1, "8:bench-p7:dup", "module" in name))
                    calls = max(1000, args.commands // n)
                    fields.append(window_fields(r))
                    before = redis_cpu_s(r)
                    results[name].append(n * rps(redis.port, cmd, calls, 0 if two else None,
                                                 args.keyspace))
                    cpu[name].append((redis_cpu_s(r) - before) * 1e6 / (calls * n))
            # What an expiring window costs: Redis frees a hash in its main thread (unless
            # lazyfree-lazy-expire), blocking every client meanwhile; DEL frees the same way.
            free_ms = 0.0
            if size:
                w = int(r.time()[0]) // WINDOW
                started = time.monotonic()
                r.delete(f"{STREAM}:dedupe:{w - 1}")  # prefilled, only read
                free_ms = (time.monotonic() - started) * 1e3
            tables.append((size, per_pair, fill_s, free_ms, min(fields), max(fields), cases,
                           results, cpu))
    finally:
        if server:
            server.stop()
        redis.close()
    for size, per_pair, fill_s, free_ms, lo, hi, cases, results, cpu in tables:
        base = statistics.median(cpu["XADD"])
        print(f"\nprefill {size:,} pairs per window hash (the current one held {lo:,} to "
              f"{hi:,} at the start of a run)" +
              (f"; {per_pair:.0f} bytes of Redis memory per pair, filled in {fill_s:.0f} s, "
               f"DEL of a full hash blocked Redis {free_ms:.0f} ms" if size else ""))
        print(f"{'call':38s} {'commands/s':>12s} {'Redis CPU us/cmd':>17s} {'x XADD':>7s}")
        for name, _, _ in cases:
            m = statistics.median(results[name])
            c = statistics.median(cpu[name])
            print(f"{name:38s} {m:12,.0f} {c:17.2f} {c / base:7.2f}")
    print(f"medians of {args.reps} runs of about {args.commands} pipelined commands, "
          f"__rand_int__ from {args.keyspace:,} values")
    return 0


if __name__ == "__main__":
    sys.exit(main())
