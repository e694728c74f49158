#!/usr/bin/env bash
# CTest consumer.without_optional_deps: an in-process gateway builds, links and runs against an
# installed gatehouse on a machine without hiredis, rabbitmq-c, SQLite, libpq and libsodium; and
# asking for the components that need them fails, saying why.
#
# Usage: run_without_optional_deps.sh BUILD_DIR SOURCE_DIR WORK_DIR GENERATOR MAKE_PROGRAM
#                                     CXX_COMPILER CXX_FLAGS BUILD_TYPE
#
# The build machine has those libraries (the rest of the build needs them), so the script hides
# them: it installs gatehouse into WORK_DIR/prefix, then re-runs itself in a private mount
# namespace (unshare -m, which needs root or CAP_SYS_ADMIN) where their headers, libraries,
# pkg-config files and CMake packages are covered by empty directories and /dev/null, checks
# that they are really gone, and only then builds the consumers. Without a mount namespace the
# test cannot prove anything, so it fails and says so.
set -euo pipefail

say() { printf 'without_optional_deps: %s\n' "$*"; }
fail() {
    printf 'without_optional_deps: FAILED: %s\n' "$*" >&2
    exit 1
}

if [[ "${1:-}" != --inside ]]; then
    (($# == 8)) || fail "usage: $0 BUILD_DIR SOURCE_DIR WORK_DIR GENERATOR MAKE_PROGRAM CXX CXX_FLAGS BUILD_TYPE"
    export GH_BUILD_DIR="$1" GH_SOURCE_DIR="$2" GH_WORK_DIR="$3" GH_GENERATOR="$4"
    export GH_MAKE_PROGRAM="$5" GH_CXX="$6" GH_CXX_FLAGS="$7" GH_BUILD_TYPE="$8"
    rm -rf "$GH_WORK_DIR"
    mkdir -p "$GH_WORK_DIR"
    cmake --install "$GH_BUILD_DIR" --prefix "$GH_WORK_DIR/prefix" >"$GH_WORK_DIR/install.log" ||
        fail "cmake --install failed: $(cat "$GH_WORK_DIR/install.log")"
    if ! probe="$(unshare -m --propagation private true 2>&1)"; then
        fail "cannot create a mount namespace (unshare -m: ${probe:-no message}). This test hides" \
            "hiredis, rabbitmq-c, SQLite, libpq and libsodium inside one and needs root or" \
            "CAP_SYS_ADMIN;" \
            "without it nothing is proven, so it does not pass."
    fi
    exec unshare -m --propagation private "$0" --inside
fi

# --- Inside the mount namespace: nothing done here is visible outside it.
work="$GH_WORK_DIR"
empty_dir="$work/empty"
mkdir -p "$empty_dir"
hidden=0
hide() {
    local path
    for path in "$@"; do
        # Symbolic links resolve to files hidden here too (checked below), and a bind mount on
        # a link would land on its target anyway.
        if [[ -L "$path" || ! -e "$path" ]]; then
            continue
        elif [[ -d "$path" ]]; then
            mount --bind "$empty_dir" "$path"
        else
            mount --bind /dev/null "$path"
        fi
        hidden=$((hidden + 1))
    done
}

shopt -s nullglob
for prefix in /usr /usr/local; do
    hide "$prefix"/include/{hiredis,sodium,postgresql} "$prefix"/include/{sqlite3.h,sqlite3ext.h,sodium.h,libpq-fe.h}
    hide "$prefix"/include/{amqp.h,amqp_framing.h,amqp_tcp_socket.h,amqp_ssl_socket.h}
    for libdir in "$prefix"/lib "$prefix"/lib64 "$prefix"/lib/*-linux-gnu; do
        hide "$libdir"/libhiredis* "$libdir"/libsqlite3* "$libdir"/libsodium* "$libdir"/libpq.*
        hide "$libdir"/librabbitmq*
        hide "$libdir"/cmake/{Hiredis,hiredis,hiredis_ssl,SQLite3,sodium,PostgreSQL,rabbitmq-c}
        for pcdir in "$libdir"/pkgconfig "$prefix"/share/pkgconfig; do
            hide "$pcdir"/{hiredis,hiredis_ssl,sqlite3,libsodium,libpq,librabbitmq}.pc
        done
    done
done
shopt -u nullglob
say "hid $hidden files and directories of hiredis, rabbitmq-c, SQLite, libpq and libsodium"

# Check that they are gone: pkg-config knows none of them, and a program using any of them
# neither compiles nor links. A control program on zlib must still build, so that a broken
# compiler cannot pass for hidden libraries.
probe_dir="$work/probes"
mkdir -p "$probe_dir"
builds() { # builds NAME SOURCE LINK_FLAGS...
    local name="$1" source="$2"
    shift 2
    printf '%s\n' "$source" >"$probe_dir/$name.cpp"
    "$GH_CXX" -I/usr/include/postgresql "$probe_dir/$name.cpp" -o "$probe_dir/$name" "$@" \
        >"$probe_dir/$name.log" 2>&1
}
for module in hiredis librabbitmq sqlite3 libsodium libpq; do
    if pkg-config --exists "$module" 2>/dev/null; then fail "pkg-config still finds $module"; fi
done
builds zlib_control $'#include <zlib.h>\nint main() { return zlibVersion()[0] == 0; }' -lz ||
    fail "the control program on zlib does not build: $(cat "$probe_dir/zlib_control.log")"
# NAME HEADER SYMBOL (a C function of the library) LINK_FLAG
probes=(
    hiredis hiredis/hiredis.h redisFree -lhiredis
    librabbitmq amqp.h amqp_version -lrabbitmq
    sqlite3 sqlite3.h sqlite3_libversion_number -lsqlite3
    libsodium sodium.h sodium_init -lsodium
    libpq libpq-fe.h PQlibVersion -lpq
)
for ((i = 0; i < ${#probes[@]}; i += 4)); do
    name="${probes[i]}" header="${probes[i + 1]}" symbol="${probes[i + 2]}" flag="${probes[i + 3]}"
    if builds "${name}_header" "#include <$header>"$'\nint main() { return 0; }'; then
        # A header covered by /dev/null is found but empty: then its declarations must be gone.
        if builds "${name}_use" "#include <$header>"$'\nint main() { return &'"$symbol"$' != 0; }'; then
            fail "a program using <$header> still compiles"
        fi
    fi
    # The library without its header: a library covered by /dev/null is found but empty.
    if builds "${name}_link" 'extern "C" int '"$symbol"$'();\nint main() { return '"$symbol"$'(); }' \
        "$flag"; then
        fail "the linker still finds $symbol in $flag"
    fi
done
say "checked: pkg-config, the compiler and the linker find none of them"

configure() { # configure SOURCE BUILD [extra cmake args...]
    local source="$1" build="$2"
    shift 2
    cmake -S "$source" -B "$build" -G "$GH_GENERATOR" -DCMAKE_MAKE_PROGRAM="$GH_MAKE_PROGRAM" \
        -DCMAKE_CXX_COMPILER="$GH_CXX" -DCMAKE_CXX_FLAGS="$GH_CXX_FLAGS" \
        -DCMAKE_BUILD_TYPE="$GH_BUILD_TYPE" -DCMAKE_PREFIX_PATH="$work/prefix" \
        -DCMAKE_FIND_USE_PACKAGE_REGISTRY=OFF "$@"
}

# The in-process gateway: configure, build, run.
consumer="$GH_SOURCE_DIR/tests/consumer/in_process_project"
configure "$consumer" "$work/in_process" >"$work/in_process.log" 2>&1 ||
    fail "configuring the in-process consumer failed: $(cat "$work/in_process.log")"
cmake --build "$work/in_process" >>"$work/in_process.log" 2>&1 ||
    fail "building the in-process consumer failed: $(cat "$work/in_process.log")"
output="$("$work/in_process/in_process_gateway" 2>&1)" ||
    fail "the in-process consumer failed: $output"
[[ "$output" == *"in-process gateway ok"* ]] || fail "unexpected output: $output"
say "$output"

# Asking for a component whose dependencies are missing fails at configure time, naming it and
# what it needs.
for case in "redis|hiredis" "amqp|librabbitmq" "accounts|libsodium"; do
    component="${case%%|*}" needs="${case#*|}"
    if configure "$GH_SOURCE_DIR/tests/consumer/components_project" "$work/components_$component" \
        -DGATEHOUSE_COMPONENTS="$component" >"$work/components_$component.log" 2>&1; then
        fail "find_package(gatehouse COMPONENTS $component) succeeded without $needs"
    fi
    log="$(cat "$work/components_$component.log")"
    if [[ "$log" != *"component $component (gatehouse::$component)"* || "$log" != *"$needs"* ]]; then
        fail "find_package(gatehouse COMPONENTS $component) failed without saying why: $log"
    fi
    say "COMPONENTS $component fails as it should: $(grep -m1 "component $component" <<<"$log" | sed 's/^ *//')"
done
# gatehouse itself, from source: with the optional components off it configures without them
# (the in-process consumer above shows what it builds needs none of them); with their defaults
# it stops at once, naming what is missing.
source_build="$work/source"
if ! cmake -S "$GH_SOURCE_DIR" -B "$source_build/core" -G "$GH_GENERATOR" \
    -DCMAKE_MAKE_PROGRAM="$GH_MAKE_PROGRAM" -DCMAKE_CXX_COMPILER="$GH_CXX" \
    -DGATEHOUSE_BUILD_REDIS=OFF -DGATEHOUSE_BUILD_AMQP=OFF -DGATEHOUSE_BUILD_ACCOUNTS=OFF -DGATEHOUSE_BUILD_TESTS=OFF \
    -DGATEHOUSE_BUILD_SERVER=OFF -DGATEHOUSE_BUILD_EXAMPLES=OFF -DGATEHOUSE_BUILD_BINDINGS=OFF \
    >"$source_build.core.log" 2>&1; then
    fail "gatehouse without its optional components does not configure: $(cat "$source_build.core.log")"
fi
if cmake -S "$GH_SOURCE_DIR" -B "$source_build/default" -G "$GH_GENERATOR" \
    -DCMAKE_MAKE_PROGRAM="$GH_MAKE_PROGRAM" -DCMAKE_CXX_COMPILER="$GH_CXX" \
    -DGATEHOUSE_BUILD_TESTS=OFF -DGATEHOUSE_BUILD_SERVER=OFF -DGATEHOUSE_BUILD_EXAMPLES=OFF \
    -DGATEHOUSE_BUILD_BINDINGS=OFF >"$source_build.default.log" 2>&1; then
    fail "gatehouse with gatehouse::redis configured without hiredis"
fi
grep -q "hiredis" "$source_build.default.log" ||
    fail "gatehouse without hiredis failed to configure without naming it: $(cat "$source_build.default.log")"
say "gatehouse from source: configures with GATEHOUSE_BUILD_REDIS/AMQP/ACCOUNTS=OFF, and names hiredis otherwise"
say "ok"
