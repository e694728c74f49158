#!/usr/bin/python3
"""RabbitMQ against Redis as gatehouse's bus, in the same run (issue 20, docs/benchmarks.md).

For each repetition and each bus, a fresh gatehouse-server (`--redis` on a fresh redis-server,
or `--amqp` on the run's one rabbitmq-server, its queues purged) and bench/load's generator:

- ingress: 100 connections, 8 commands in flight each: acked commands per second and the ack
  latency (on RabbitMQ an ack waits for the broker's publisher confirm of a persistent message
  on a durable queue, i.e. its write to disk; on Redis for the XADD's reply);
- fanout: 1000 connections, updates targeted at one player each, 1000 in flight: delivered
  updates per second and the publish-to-client latency (PUBLISH on Redis, a message on the
  fanout exchange on RabbitMQ).

Both buses run with their defaults (Redis without persistence, as the test fixture starts it;
RabbitMQ with persistent messages, as the gateway publishes them). Processes are pinned as
run_matrix.py pins them: the server on --server-cpus, the generator and the broker on
--client-cpus. Only 127.0.0.1; every process stopped by PID.

Usage: bench/amqp_vs_redis.py [--reps 3] [--quick] [--gatehouse PATH] [--load PATH]
"""

import argparse
import os
import secrets
import statistics
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(REPO, "tests", "server"))

import run_matrix as rm  # noqa: E402  (Proc, pin, run_load, wait_http_ready, READY_RE)
from rabbitmq_fixture import RabbitMQServer  # noqa: E402
from redis_fixture import RedisServer  # noqa: E402

EXCHANGE = "bench.commands"
UPDATES = "bench.updates"
WORKLOADS = {
    "ingress": {"connections": 100, "window": 8},
    "fanout": {"connections": 1000, "window": 1000},
}


def start_server(binary, bus_args, secret, cpus, log_dir):
    p = rm.Proc("gatehouse", ["taskset", "-c", cpus, binary, "--listen", "127.0.0.1:0",
                              *bus_args, "--jwt-secret", secret, "--threads", "1",
                              "--ws-rate-limit", "0", "--db", "sqlite::memory:",
                              "--log-level", "warn"], log_dir)
    m = p.wait_line(rm.READY_RE)
    port = int(m.group(2))
    rm.wait_http_ready("127.0.0.1", port)
    return p, port


def one_run(args, bus, workload, params, rabbit, log_dir):
    secret = "bench-" + secrets.token_hex(16)
    redis = None
    server = None
    try:
        if bus == "redis":
            redis = RedisServer().start()
            rm.pin(redis.proc.pid, args.client_cpus)
            bus_args = ["--redis", redis.url]
            broker_pid, extra = redis.proc.pid, {"redis-port": redis.port}
        else:
            try:  # the commands of the previous run; absent before the first run
                conn = rabbit.connection()
                conn.channel().queue_purge(EXCHANGE)
                conn.close()
            except Exception:
                pass
            bus_args = ["--amqp", rabbit.url, "--amqp-exchange", EXCHANGE,
                        "--amqp-updates-exchange", UPDATES]
            broker_pid = rabbit._beam_pid()
            extra = {"amqp-port": rabbit.port, "amqp-exchange": UPDATES}
        server, port = start_server(args.gatehouse, bus_args, secret, args.server_cpus, log_dir)
        redis_port = extra.pop("redis-port", 0)
        result = rm.run_load(args.load, workload, port, secret, bus, server.pid, redis_port,
                             dict(params, **extra), args.client_cpus, log_dir,
                             redis_pid=broker_pid)
        if server.proc.poll() is not None:
            result["ok"] = False
            result["server_died"] = server.proc.returncode
        return result
    finally:
        if server is not None:
            server.stop()
        if redis is not None:
            redis.close()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--quick", action="store_true", help="1 s runs, one repetition")
    build = os.path.join(REPO, "build", "release")
    ap.add_argument("--gatehouse", default=os.path.join(build, "server", "gatehouse-server"))
    ap.add_argument("--load", default=os.path.join(build, "bench", "load", "gatehouse_load"))
    ap.add_argument("--server-cpus", default="1" if (os.cpu_count() or 1) > 1 else "0")
    ap.add_argument("--client-cpus", default="0")
    args = ap.parse_args()
    timing = {"warmup": 0.5, "duration": 1.5} if args.quick else {"warmup": 1, "duration": 5}
    reps = 1 if args.quick else args.reps
    log_dir = tempfile.mkdtemp(prefix="gatehouse-amqp-bench-")
    rabbit = RabbitMQServer().start()
    rm.pin(rabbit._beam_pid(), args.client_cpus)
    results = {}
    try:
        for rep in range(reps):
            for workload, params in WORKLOADS.items():
                for bus in ("redis", "amqp"):
                    r = one_run(args, bus, workload, dict(params, **timing), rabbit, log_dir)
                    results.setdefault((workload, bus), []).append(r)
                    rm.log(f"rep {rep + 1} {workload} {bus}: ok={r.get('ok')} "
                           f"{r.get('acks_per_s') or r.get('delivered_per_s'):.0f}/s "
                           f"p50 {r.get('p50_us')} us p99 {r.get('p99_us')} us "
                           f"server cpu {r.get('server_cpu')} broker cpu {r.get('redis_cpu')}")
    finally:
        rabbit.close()

    def med(rows, key):
        vals = [r[key] for r in rows if r.get(key) is not None]
        return statistics.median(vals) if vals else float("nan")

    print(f"\n{reps} repetition(s), medians; logs in {log_dir}\n")
    print("| workload | bus | per s | p50 us | p99 us | server CPU | broker CPU | generator CPU "
          "| all ok |")
    print("|---|---|---|---|---|---|---|---|---|")
    for (workload, bus), rows in results.items():
        rate_key = "acks_per_s" if workload == "ingress" else "delivered_per_s"
        print(f"| {workload} | {bus} | {med(rows, rate_key):.0f} | {med(rows, 'p50_us'):.0f} | "
              f"{med(rows, 'p99_us'):.0f} | {med(rows, 'server_cpu'):.2f} | "
              f"{med(rows, 'redis_cpu'):.2f} | {med(rows, 'gen_cpu'):.2f} | "
              f"{all(r.get('ok') for r in rows)} |")
    ok = all(r.get("ok") for rows in results.values() for r in rows)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
