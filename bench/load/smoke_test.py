#!/usr/bin/python3
"""bench.load_smoke: every workload of gatehouse_load for about a second against a real
gatehouse-server on a real redis-server (with gatehouse_bench_echo for roundtrip).

Asserts that each run prints exactly one JSON line that parses, is clean (ok, exit 0), lost
nothing and counted more than zero of what it measures; and that the generator does report a
failure: with a wrong JWT secret every connection must be refused and the run not be ok.
Speed is never asserted here.

    smoke_test.py GATEHOUSE_SERVER GATEHOUSE_LOAD GATEHOUSE_BENCH_ECHO

Prints "N passed, N failed"; exit status 0 only when nothing failed.
"""

import os
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))  # bench/, for run_matrix
import run_matrix  # noqa: E402

SHORT = {"warmup": 0.3, "duration": 1, "drain": 5}
CASES = [
    ("ingress", {"connections": 10, "window": 4}, "acks", None),
    ("fanout", {"connections": 20, "window": 100}, "delivered", "lost"),
    ("broadcast", {"connections": 20, "window": 8}, "delivered", "lost"),
    ("roundtrip", {"connections": 10, "rate": 500}, "echoes", "lost"),
    ("connect", {"connections": 200, "concurrency": 32}, "welcomed", None),
]


def main():
    if len(sys.argv) != 4:
        print(__doc__, file=sys.stderr)
        return 2
    server, load, echo = (os.path.abspath(a) for a in sys.argv[1:])
    # One thread and no taskset on CPUs the CI machine may not have: placement is the matrix's
    # business, not the smoke test's.
    args = run_matrix.parse_args(["--gatehouse", server, "--load", load, "--echo", echo,
                                  "--server-cpus", "0-1023", "--client-cpus", "0-1023"])
    logs = tempfile.mkdtemp(prefix="gatehouse-bench-smoke-")
    passed = failed = 0

    def check(name, ok, detail=""):
        nonlocal passed, failed
        if ok:
            passed += 1
            print(f"PASS {name}")
        else:
            failed += 1
            print(f"FAIL {name}: {detail}")
        sys.stdout.flush()

    for workload, params, count_field, lost_field in CASES:
        try:
            r = run_matrix.one_run(args, "gatehouse", workload, dict(params, **SHORT), logs)
        except Exception as e:  # noqa: BLE001 - any failure of the run is this case's failure
            check(workload, False, f"{type(e).__name__}: {e}")
            continue
        problems = []
        if r.get("workload") != workload or r.get("server") != "gatehouse":
            problems.append("wrong workload/server echoed")
        if not r.get("ok") or r.get("exit_code") != 0:
            problems.append("run not clean")
        if not isinstance(r.get(count_field), int) or r[count_field] <= 0:
            problems.append(f"{count_field} not > 0")
        if lost_field and r.get(lost_field) != 0:
            problems.append(f"{lost_field} = {r.get(lost_field)}")
        if workload == "connect" and not (r.get("rss_after_bytes", 0) > 0):
            problems.append("server RSS not read")
        if not (0 <= r.get("gen_cpu", -1) <= 4):
            problems.append("gen_cpu missing")
        check(workload, not problems, f"{'; '.join(problems)}: {r}")

    # The generator must notice failure, not report a refused run as a fast one.
    bad_secret_args = run_matrix.parse_args(["--gatehouse", server, "--load", load, "--echo", echo,
                                             "--server-cpus", "0-1023", "--client-cpus",
                                             "0-1023"])
    try:
        r = _run_with_wrong_secret(bad_secret_args, logs)
        check("connect_wrong_secret_fails",
              r.get("ok") is False and r.get("exit_code") == 1 and r.get("welcomed") == 0
              and r.get("failed_opens") == 20, str(r))
    except Exception as e:  # noqa: BLE001
        check("connect_wrong_secret_fails", False, f"{type(e).__name__}: {e}")

    print(f"{passed} passed, {failed} failed")
    return 0 if failed == 0 else 1


def _run_with_wrong_secret(args, logs):
    redis = run_matrix.RedisServer()
    srv = None
    try:
        redis.start()
        srv, port = run_matrix.start_gatehouse(args.gatehouse, redis.url, "the-right-secret", 1,
                                               args.server_cpus, logs)
        return run_matrix.run_load(args.load, "connect", port, "a-wrong-secret", "gatehouse",
                                   srv.pid, redis.port,
                                   {"connections": 20, "concurrency": 8, "duration": 1},
                                   args.client_cpus, logs)
    finally:
        if srv is not None:
            srv.stop()
        redis.close()


if __name__ == "__main__":
    sys.exit(main())
