#!/usr/bin/env python3
"""Runs examples/unreal_client against a real `gatehouse-server --demo`.

Usage: run_example.py PATH/TO/gatehouse-server PATH/TO/gatehouse-example-unreal-client

The client checks every answer of the game itself and exits non-zero on the first wrong one;
this script only provides the server and runs the client twice:
  1. registering and logging in over HTTP (POST /register, POST /login), then idling past the
     server's pings (--ping-interval 1, --idle-timeout 3: an unanswered ping would close it);
  2. with an access token minted here, as a game whose backend issues tokens would.
It fails when either run fails, times out, or the server does not stop cleanly (exit 0, no
sanitizer report). Only 127.0.0.1; every wait bounded.
"""

import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "tests", "server"))

from gatehouse_harness import Server  # noqa: E402

CLIENT_TIMEOUT_S = 40


def run_client(client, server, *args):
    argv = [client, "--server", f"127.0.0.1:{server.port}", *args]
    print("$", " ".join(a if not a.startswith("ey") else "<token>" for a in argv), flush=True)
    try:
        done = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                              timeout=CLIENT_TIMEOUT_S)
    except subprocess.TimeoutExpired as e:
        print(f"client timed out after {CLIENT_TIMEOUT_S} s; output: {e.stdout!r}")
        return False
    print(done.stdout, end="")
    print(done.stderr, end="", file=sys.stderr)
    if done.returncode != 0 or "all checks passed" not in done.stdout:
        print(f"client exit code {done.returncode}")
        return False
    return True


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    binary, client = (os.path.abspath(a) for a in sys.argv[1:])
    server = Server("--demo", "--ping-interval", "1", "--idle-timeout", "3",
                    binary=binary).start()
    ok = False
    try:
        ok = run_client(client, server, "--username", "unreal_player", "--password",
                        "correct-horse-battery", "--register", "--idle-seconds", "5")
        ok = run_client(client, server, "--token", server.token("unreal-token-player")) and ok
    finally:
        code = server.stop()
        report = server.sanitizer_report()
        if code != 0 or report:
            print(f"server exit code {code}; {report or server.stderr_text()[-1500:]}")
            ok = False
    print("example_unreal_client:", "passed" if ok else "FAILED")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
