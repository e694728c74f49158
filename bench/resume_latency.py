#!/usr/bin/python3
"""Resume latency: how long a client that missed N logged updates waits to have them all.

One gatehouse-server (the release build) on a fresh redis-server. For each sample: a player
connects, gets one logged update (its update id), disconnects; N updates are published to it
through the update log (FCALL gatehouse_publish, pipelined, all answered); the client then
reconnects with `?resume=<id>` and the clock runs from the start of the connect to the
`gatehouse.resumed` message, with every missed update checked (N of them, in order, each with
an update id). The same sample also times a plain connect to its welcome, on the same server
a moment earlier, so the figure to read is the difference and the ratio of the two in one run.

    bench/resume_latency.py [--samples 200] [--missed 100]
                            [--gatehouse build/release/server/gatehouse-server]

CPU placement as in run_matrix.py: the server on core 1, redis-server and this script on
core 0. Every wait is bounded; every process started is stopped by its PID.
"""

import argparse
import asyncio
import json
import os
import statistics
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO, "tests", "server"))
from gatehouse_harness import Server  # noqa: E402  (the tests' own server fixture)
from redis_fixture import RedisServer  # noqa: E402

import websockets  # noqa: E402

CHANNEL = "bench_updates"
RECV_TIMEOUT_S = 10.0


def percentile(values, p):
    s = sorted(values)
    return s[min(len(s) - 1, int(round(p / 100.0 * (len(s) - 1))))]


async def recv_json(ws):
    return json.loads(await asyncio.wait_for(ws.recv(), RECV_TIMEOUT_S))


def publish_logged(r, player, count, first):
    """`count` logged updates for `player`, numbered from `first`, in one pipeline."""
    pipe = r.pipeline(transaction=False)
    for i in range(first, first + count):
        msg = json.dumps({"player_id": player, "type": "bench.missed", "payload": {"n": i}})
        pipe.execute_command("FCALL", "gatehouse_publish", 0, CHANNEL, msg)
    for reply in pipe.execute():
        if not isinstance(reply, list) or len(reply) != 2:
            raise RuntimeError(f"FCALL gatehouse_publish answered {reply!r}")


async def one_sample(server, r, player, missed):
    url = f"{server.ws_base}/ws/player/{server.token(player)}"
    # A plain connect, for scale.
    t0 = time.perf_counter()
    async with websockets.connect(url, max_size=None) as ws:
        welcome = await recv_json(ws)
        connect_s = time.perf_counter() - t0
        if welcome.get("type") != "welcome":
            raise RuntimeError(f"want welcome, got {welcome}")
        publish_logged(r, player, 1, 0)
        first = await recv_json(ws)
        last_id = first.get("update_id")
        if first.get("type") != "bench.missed" or not last_id:
            raise RuntimeError(f"want a logged update with an update_id, got {first}")
    publish_logged(r, player, missed, 1)
    t0 = time.perf_counter()
    async with websockets.connect(f"{url}?resume={last_id}", max_size=None) as ws:
        welcome = await recv_json(ws)
        if welcome.get("type") != "welcome":
            raise RuntimeError(f"want welcome, got {welcome}")
        for i in range(1, missed + 1):
            m = await recv_json(ws)
            if m.get("type") != "bench.missed" or m.get("payload", {}).get("n") != i or \
                    not m.get("update_id"):
                raise RuntimeError(f"replay: want update {i}, got {m}")
        done = await recv_json(ws)
        resume_s = time.perf_counter() - t0
        if done != {"type": "gatehouse.resumed", "payload": {"replayed": missed}}:
            raise RuntimeError(f"want gatehouse.resumed with {missed}, got {done}")
    return connect_s, resume_s


async def run(args, server, r):
    connects, resumes = [], []
    deadline = time.monotonic() + args.time_limit
    for k in range(args.samples):
        if time.monotonic() > deadline:
            print(f"resume_latency: stopped after {k} samples (--time-limit)", file=sys.stderr)
            break
        c, s = await one_sample(server, r, f"bench-resume-{k}", args.missed)
        connects.append(c)
        resumes.append(s)
    return connects, resumes


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--samples", type=int, default=200)
    ap.add_argument("--missed", type=int, default=100, help="updates missed per sample")
    ap.add_argument("--time-limit", type=float, default=300.0, help="seconds, at most")
    ap.add_argument("--gatehouse", default=os.path.join(REPO, "build", "release", "server",
                                                         "gatehouse-server"))
    args = ap.parse_args(argv)
    if not os.path.exists(args.gatehouse):
        sys.exit(f"resume_latency: {args.gatehouse} not found: cmake --preset release && "
                 "cmake --build build/release --target gatehouse-server")
    redis = RedisServer()
    server = None
    try:
        redis.start()
        os.sched_setaffinity(redis.proc.pid, {0})
        os.sched_setaffinity(0, {0})
        server = Server("--redis", redis.url, "--updates-channel", CHANNEL, "--threads", "1",
                        "--log-level", "warn", binary=args.gatehouse).start()
        if (os.cpu_count() or 1) > 1:
            os.sched_setaffinity(server.proc.pid, {1})
        connects, resumes = asyncio.run(run(args, server, redis.client()))
    finally:
        if server:
            server.stop()
        redis.close()
    ms = 1000.0
    p50c, p99c = percentile(connects, 50) * ms, percentile(connects, 99) * ms
    p50r, p99r = percentile(resumes, 50) * ms, percentile(resumes, 99) * ms
    print(json.dumps({"samples": len(resumes), "missed": args.missed,
                      "connect_p50_ms": round(p50c, 3), "connect_p99_ms": round(p99c, 3),
                      "resume_p50_ms": round(p50r, 3), "resume_p99_ms": round(p99r, 3),
                      "resume_mean_ms": round(statistics.mean(resumes) * ms, 3)}))
    print(f"{len(resumes)} samples, {args.missed} missed updates each: plain connect to "
          f"welcome p50 {p50c:.2f} ms p99 {p99c:.2f} ms; resume to gatehouse.resumed p50 "
          f"{p50r:.2f} ms p99 {p99r:.2f} ms (p50 ratio {p50r / p50c:.2f}x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
