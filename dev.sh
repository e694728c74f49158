#!/usr/bin/env bash
# dev.sh: the one entry point for working on gatehouse. On a fresh Debian 12 machine:
#   ./dev.sh run     install what is missing, build, start gatehouse-server in the foreground
#   ./dev.sh test    install what is missing, build, run the whole test suite
# Run ./dev.sh help for the other subcommands.
set -euo pipefail

# The caller's directory, so `run` can hand relative paths in server arguments to the server
# unchanged; everything else works from the repository root.
readonly caller_dir="$PWD"
readonly repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$repo_root"

# Debian 12 packages the project needs. Keep this the only list: setup installs exactly these.
readonly packages=(
    # build: compiler, generator and tools CMake needs
    cmake ninja-build g++ pkg-config git ca-certificates
    # libs: the libraries gatehouse and gatehouse-server link or include
    libasio-dev libssl-dev zlib1g-dev libmsgpack-cxx-dev libprotobuf-dev
    protobuf-compiler libfmt-dev libspdlog-dev libcli11-dev nlohmann-json3-dev libsimdjson-dev
    libtomlplusplus-dev
    libhiredis-dev libsodium-dev libsqlite3-dev libpq-dev librabbitmq-dev
    # tests: unit-test framework, the real Redis and PostgreSQL the integration tests start,
    # their scripts, and the microbenchmarks the ci preset builds
    catch2 redis-server postgresql python3 python3-websockets python3-msgpack python3-redis openssl libbenchmark-dev
    # tests of the transport: Boost.Beast's HTTP parser (header-only) checks ours differentially,
    # and outside clients (Autobahn's WebSocket client, requests, curl) drive the real server.
    # Debian's Boost 1.74 (libboost-dev): libmsgpack-cxx-dev depends on it, and libboost1.81-dev
    # conflicts with it, so installing 1.81 would remove msgpack-c.
    libboost-dev python3-autobahn python3-requests curl
    # RabbitMQ (issue 20, docs/amqp.md): the broker the amqp suites start, and pika, the
    # Python client they and the example service use
    rabbitmq-server python3-pika
    # the JSON Schema validator (Draft 2020-12) that checks docs/openapi.json against OpenAPI 3.1
    python3-jsonschema
    # tests of deploy/: the load balancer the fleet test runs and `haproxy -c` validates, and
    # the YAML parser that reads the compose file
    haproxy python3-yaml
    # tests of /metrics and deploy/grafana: promtool lints the exposition and parses the
    # dashboard's queries, and a real Prometheus evaluates them against a real server
    prometheus
    # tests of the bindings (pybind11 module) and the browser demo (headless Chromium, driven by
    # playwright-core from the npm registry with the machine's Node.js)
    pybind11-dev python3-dev chromium
    # bench/micro/histogram_bench.cpp compares metric_histogram with prometheus-cpp (issue 19)
    prometheus-cpp-dev
    # fuzz: clang with libFuzzer and the sanitizer runtimes
    clang libclang-rt-14-dev
    # style: the formatter `test` checks with and `format` applies, and the linter `test` runs
    clang-format clang-tidy
)

# Directories whose C++ sources are formatted and format-checked.
readonly format_dirs=(include src server tests examples bench demo bindings redis_module)

log() { printf 'dev.sh: %s\n' "$*" >&2; }
die() {
    log "error: $*"
    exit 1
}

usage() {
    cat <<'EOF'
usage: ./dev.sh COMMAND [ARGS...]

  run [server args...]  install missing packages, build the release preset, then run
                        gatehouse-server in the foreground (default --listen 0.0.0.0:8080)
                        with the demo game and its browser client at / (GATEHOUSE_DEMO=0: off)
  test                  install missing packages, check formatting, build and run the tests
                        (preset ci: ASan+UBSan) and the fuzzers (preset fuzz); the last line
                        is "test: N passed, M failed"
  setup                 install the missing Debian packages (apt-get; sudo when not root)
  build [preset]        configure and build one CMake preset (default: dev)
  format                apply clang-format in place to the C++ sources
  bench [matrix args...]
                        install what is missing (packages, gnuplot-nox, the Node peer's npm
                        packages), build the release preset's server and load generator, run
                        bench/run_matrix.py (e.g. --quick, --reps 5, --threads 2); see
                        bench/README.md
  help                  this text

environment:
  GATEHOUSE_FUZZ_SECONDS  how long `test` runs each fuzzer (default 30)
EOF
}

cmd_setup() {
    local missing=() pkg
    for pkg in "${packages[@]}"; do
        if [[ "$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null || true)" != "install ok installed" ]]; then
            missing+=("$pkg")
        fi
    done
    # Node.js and npm by command, not by package: a machine may have them from elsewhere
    # (NodeSource's nodejs bundles npm and conflicts with Debian's npm package).
    command -v node >/dev/null 2>&1 || missing+=(nodejs)
    command -v npm >/dev/null 2>&1 || missing+=(npm)
    if ((${#missing[@]} == 0)); then
        log "setup: all ${#packages[@]} packages are installed"
        return 0
    fi
    log "setup: installing ${missing[*]}"

    local sudo=()
    if ((EUID != 0)); then
        command -v sudo >/dev/null 2>&1 ||
            die "missing packages: ${missing[*]}; run as root or install sudo, or run: apt-get install ${missing[*]}"
        sudo=(sudo)
    fi
    # rabbitmq-server, redis-server and postgresql start their service from their postinst
    # unless policy-rc.d forbids it. The tests start their own on free ports; in a container
    # without an init system such a start fails (rabbitmq-server's postinst then fails the
    # whole install) or leaves a daemon and an epmd running. So, on a machine without a
    # policy of its own, starts are denied while installing.
    local policy=/usr/sbin/policy-rc.d own_policy=0 rc=0
    if [[ ! -e $policy ]]; then
        printf '#!/bin/sh\n# dev.sh setup: no service starts while installing\nexit 101\n' |
            "${sudo[@]}" tee "$policy" >/dev/null
        "${sudo[@]}" chmod 755 "$policy"
        own_policy=1
    fi
    { "${sudo[@]}" apt-get update &&
        "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive \
            apt-get install -y --no-install-recommends "${missing[@]}"; } || rc=$?
    if ((own_policy)); then
        "${sudo[@]}" rm -f "$policy"
    fi
    return "$rc"
}

# build_preset PRESET [extra `cmake --build` args...]
build_preset() {
    local preset="$1"
    shift
    # Explicit returns: callers test this in an `if`, where bash ignores set -e.
    cmake --preset "$preset" || return 1
    cmake --build --preset "$preset" -j"$(nproc)" "$@" || return 1
}

cmd_build() {
    (($# <= 1)) || die "build takes at most one preset name"
    build_preset "${1:-dev}"
}

cmd_run() {
    # Setup and build talk on stderr, so that stdout carries only what the server writes there
    # (its ready line), as it would for the bare binary. Only the server target is built: a
    # broken test or benchmark must not stop anyone from running it.
    {
        cmd_setup
        build_preset release --target gatehouse-server gatehouse-demo-game
    } >&2
    cd "$caller_dir"
    # The demo game and its browser client at / are on unless the caller says otherwise
    # (GATEHOUSE_DEMO=0): the first run shows the whole loop (docs/getting-started.md).
    export GATEHOUSE_DEMO="${GATEHOUSE_DEMO:-1}"
    exec "$repo_root/build/release/server/gatehouse-server" "$@"
}

# The C++ sources under format_dirs that git tracks or would track (not ignored), NUL-separated.
format_files() {
    local dir existing=()
    for dir in "${format_dirs[@]}"; do
        [[ -e "$dir" ]] && existing+=("$dir")
    done
    ((${#existing[@]} > 0)) || return 0
    if ! git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
        # An unpacked tarball has no git to ask what is ignored; all sources are then ours.
        find "${existing[@]}" -type f \( -name '*.hpp' -o -name '*.cpp' \) -print0
        return 0
    fi
    git ls-files -z -co --exclude-standard -- "${existing[@]}" |
        while IFS= read -r -d '' f; do
            # ls-files -c also lists tracked files deleted from the work tree.
            if [[ ("$f" == *.hpp || "$f" == *.cpp) && -f "$f" ]]; then
                printf '%s\0' "$f"
            fi
        done
}

cmd_format() {
    local files=()
    mapfile -d '' files < <(format_files)
    ((${#files[@]} > 0)) || {
        log "format: no files"
        return 0
    }
    clang-format -i -- "${files[@]}"
    log "format: formatted ${#files[@]} files"
}

# Totals over every step of `test`; each ctest test counts once, and so does each step that
# ran no ctest (format check, a failed configure or build) so that a failure there can never
# hide behind "0 failed".
total_passed=0
total_failed=0

check_format() {
    local files=()
    mapfile -d '' files < <(format_files)
    log "test: clang-format check of ${#files[@]} files"
    if ((${#files[@]} == 0)) || clang-format --dry-run --Werror -- "${files[@]}"; then
        total_passed=$((total_passed + 1))
    else
        log "test: FAILED clang-format check (./dev.sh format fixes it)"
        total_failed=$((total_failed + 1))
    fi
}

# clang-tidy (.clang-tidy's checks, as errors) over the library, server, examples and benchmarks,
# using the compile commands of the ci build; run after that build. Tests are left out: Catch2's
# macros expand to code the bugprone checks were not written for.
check_tidy() {
    local files=() f
    mapfile -d '' files < <(format_files)
    local sources=()
    for f in "${files[@]}"; do
        [[ "$f" == *.cpp && "$f" != tests/* && "$f" != */tests/* ]] && sources+=("$f")
    done
    log "test: clang-tidy on ${#sources[@]} files"
    if [[ -f build/ci/compile_commands.json ]] &&
        printf '%s\0' "${sources[@]}" |
        xargs -0 -n 4 -P "$(nproc)" clang-tidy -p build/ci --quiet --warnings-as-errors='*'; then
        total_passed=$((total_passed + 1))
    else
        log "test: FAILED clang-tidy"
        total_failed=$((total_failed + 1))
    fi
}

# run_ctest PRESET [--targets=a,b,...] [extra ctest args...]: build PRESET (all of it, or only
# the listed targets), run its tests, add up the results.
run_ctest() {
    local preset="$1"
    shift
    local build_args=()
    if [[ "${1:-}" == --targets=* ]]; then
        local list="${1#--targets=}"
        build_args=(--target ${list//,/ })
        shift
    fi
    local log_file="build/ctest-$preset.log"
    if ! build_preset "$preset" "${build_args[@]}"; then
        log "test: FAILED to configure or build preset $preset; its tests did not run"
        total_failed=$((total_failed + 1))
        return 0
    fi
    mkdir -p build
    local rc=0
    ctest --preset "$preset" --no-tests=error "$@" 2>&1 | tee "$log_file" || rc=$?

    # ctest's summary: "95% tests passed, 1 tests failed out of 20".
    local summary
    summary="$(grep -E '^[0-9]+% tests passed, [0-9]+ tests? failed out of [0-9]+' "$log_file" |
        tail -n 1 || true)"
    if [[ "$summary" =~ ([0-9]+)\ tests?\ failed\ out\ of\ ([0-9]+) ]]; then
        local failed="${BASH_REMATCH[1]}" total="${BASH_REMATCH[2]}"
        total_passed=$((total_passed + total - failed))
        total_failed=$((total_failed + failed))
        # ctest failing without failing a test (e.g. a test it could not even start).
        if ((rc != 0 && failed == 0)); then
            log "test: ctest --preset $preset exited $rc"
            total_failed=$((total_failed + 1))
        fi
    else
        log "test: FAILED ctest --preset $preset printed no summary (exit $rc); see $log_file"
        total_failed=$((total_failed + 1))
    fi
}

# playwright-core for the browser test (tests/browser), exactly as package-lock.json pins it.
# Counted as a step: should it fail, browser.demo fails too and says why.
install_browser_test_deps() {
    log "test: npm ci in tests/browser"
    if npm ci --prefix tests/browser --no-audit --no-fund; then
        total_passed=$((total_passed + 1))
    else
        log "test: FAILED npm ci in tests/browser (the browser test cannot run)"
        total_failed=$((total_failed + 1))
    fi
}

cmd_test() {
    cmd_setup
    # Read by the fuzz tests when they run (not when they are configured), so changing it needs
    # no rebuild.
    export GATEHOUSE_FUZZ_SECONDS="${GATEHOUSE_FUZZ_SECONDS:-30}"

    check_format
    install_browser_test_deps
    run_ctest ci -j2
    check_tidy
    # ThreadSanitizer over what runs on several threads: the unit tests (connection manager,
    # bus, gateway), the server suites driving the real server's I/O threads, and the
    # embedding example. Only their targets are built; the tests of other targets are skipped.
    local tsan_targets=gatehouse_unit_tests,gatehouse-server,gatehouse_server_ws_client_test
    tsan_targets+=,example_embedding_tour,example_spdlog_logging,gatehouse_demo_game_tests
    tsan_targets+=,gatehouse-demo-game,gatehouse_server_log_test,gatehouse_redis_module
    # Left out: single-threaded codecs and examples, the bindings and the protocol page's
    # examples (a Python interpreter would need the TSan runtime preloaded to load the codec
    # module), the browser test (Chromium under a TSan server is only slow, not more thorough)
    # and the --version check (most of its programs are not built here).
    run_ctest tsan --targets="$tsan_targets" -j2 \
        -E 'consumer|noexcept|example_|bench|bindings|protocol_examples|browser|version'
    # Each fuzzer runs for a fixed time on one core, so two at once fit the two-core machines.
    run_ctest fuzz -j2

    echo "test: $total_passed passed, $total_failed failed"
    ((total_failed == 0))
}

# The end-to-end benchmark matrix (bench/README.md): gatehouse-server against the Node peer.
cmd_bench() {
    {
        cmd_setup
        # gnuplot draws the roundtrip latency plot; a benchmark-only need, so not in `packages`.
        if ! command -v gnuplot >/dev/null 2>&1; then
            local sudo=()
            ((EUID == 0)) || sudo=(sudo)
            "${sudo[@]}" apt-get update
            "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive \
                apt-get install -y --no-install-recommends gnuplot-nox
        fi
        (cd bench/peers/node && npm ci --no-audit --no-fund)
        build_preset release --target gatehouse-server gatehouse_load gatehouse_bench_echo \
            gatehouse_redis_module
    } >&2
    /usr/bin/python3 bench/run_matrix.py "$@"
}

main() {
    local cmd="${1:-help}"
    (($# > 0)) && shift
    case "$cmd" in
        setup) (($# == 0)) || die "setup takes no arguments"; cmd_setup ;;
        build) cmd_build "$@" ;;
        run) cmd_run "$@" ;;
        test) (($# == 0)) || die "test takes no arguments"; cmd_test ;;
        format) (($# == 0)) || die "format takes no arguments"; cmd_format ;;
        bench) cmd_bench "$@" ;;
        help | -h | --help) usage ;;
        *)
            usage >&2
            die "unknown command '$cmd'"
            ;;
    esac
}

main "$@"
