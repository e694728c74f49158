#!/usr/bin/env bash
# deploy/build-in-container.sh: the steps of deploy/Dockerfile, as a plain script, so that they
# run (and are tested) the same way with or without a container engine. On Debian 12:
#
#   build-in-container.sh deps                  install the build packages (apt-get, as root)
#   build-in-container.sh build SRC OUT         build the release preset's gatehouse-server and
#                                               gatehouse-demo-game from SRC; put them in OUT/bin
#                                               and the Debian packages they link in
#                                               OUT/runtime-packages.txt; and the gatehouse Redis
#                                               module (install-module) in OUT/lib
#   build-in-container.sh install-module SO OUT put the Redis module SO in
#                                               OUT/lib/gatehouse_redis.so, stripped, once it is
#                                               checked to load on any Redis 7 host: it exports
#                                               RedisModule_OnLoad and links nothing beyond the
#                                               C library (no C++ runtime)
#   build-in-container.sh runtime PACKAGES_FILE install those packages (and curl, for the
#                                               health check) and create the `gatehouse` user
#   build-in-container.sh runtime-packages BIN...
#                                               print the Debian packages BIN... link (one a line)
#   build-in-container.sh healthcheck           GET /ready on this host's listener (the image's
#                                               HEALTHCHECK): exit 0 on 200, 1 otherwise
#
# GATEHOUSE_BUILD_DIR (default SRC/build/release) and GATEHOUSE_BUILD_JOBS (default nproc)
# adjust `build`.
set -euo pipefail

# What building gatehouse-server and gatehouse-demo-game needs: the build tools and libraries
# of dev.sh's package list, without its test, fuzz and style tools (tests, benchmarks, examples
# and bindings are not built here). tests/deploy checks that each one is on dev.sh's list.
readonly build_packages=(
    cmake ninja-build g++ pkg-config ca-certificates
    libasio-dev libssl-dev zlib1g-dev libmsgpack-cxx-dev libprotobuf-dev
    protobuf-compiler libfmt-dev libspdlog-dev libcli11-dev nlohmann-json3-dev libsimdjson-dev
    libhiredis-dev libsodium-dev libsqlite3-dev libpq-dev libtomlplusplus-dev
)
# The image's health check probes /ready with curl.
readonly runtime_extra_packages=(curl ca-certificates)
# The unprivileged account the server runs as in the image.
readonly service_user=gatehouse
readonly service_uid=10001
readonly service_home=/var/lib/gatehouse
# The Redis module's file in OUT (deploy/Dockerfile's `redis` stage copies it from there).
readonly module_file=lib/gatehouse_redis.so
# What a module may link: the C library, which every redis-server has. libstdc++ and libgcc
# are linked into it (redis_module/CMakeLists.txt): the official redis image need not have them.
readonly module_allowed_libs='^(libc|libm|libdl|libpthread|librt|ld-linux[-a-z0-9_.]*)\.so\.[0-9]+$'

log() { printf 'build-in-container: %s\n' "$*" >&2; }
die() {
    log "error: $*"
    exit 1
}

apt_install() {
    ((EUID == 0)) || die "apt-get needs root (run inside the image build, or with sudo)"
    apt-get update
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "$@"
    # Keeps the image layer small; harmless on a workstation.
    rm -rf /var/lib/apt/lists/*
}

cmd_deps() {
    apt_install "${build_packages[@]}"
}

# The Debian packages that own the shared libraries the given binaries load (ldd), sorted and
# unique. Debian 12 merges /lib into /usr/lib, so a path is looked up as ldd prints it and as
# its /usr twin: dpkg records whichever the package shipped.
cmd_runtime_packages() {
    (($# > 0)) || die "runtime-packages needs at least one binary"
    local bin lib owner
    local -A seen=()
    for bin in "$@"; do
        [[ -x "$bin" ]] || die "not an executable: $bin"
        while read -r lib; do
            [[ -n "$lib" ]] || continue
            owner=""
            local candidate
            for candidate in "$lib" "/usr${lib#/usr}" "$(readlink -f "$lib")" \
                "/usr$(readlink -f "$lib" | sed 's#^/usr##')"; do
                owner="$(dpkg-query -S "$candidate" 2>/dev/null | head -n 1 | cut -d: -f1)" || true
                [[ -n "$owner" ]] && break
            done
            [[ -n "$owner" ]] || die "no Debian package owns $lib (linked by $bin)"
            seen["$owner"]=1
        done < <(ldd "$bin" | awk '$2 == "=>" && $3 ~ /^\// { print $3 }')
    done
    printf '%s\n' "${!seen[@]}" | sort
}

cmd_build() {
    (($# == 2)) || die "usage: build SRC OUT"
    local src out build_dir
    src="$(cd "$1" && pwd)"
    mkdir -p "$2"
    out="$(cd "$2" && pwd)"
    build_dir="${GATEHOUSE_BUILD_DIR:-$src/build/release}"
    log "configuring the release preset in $build_dir"
    # The release preset, without what an image does not ship (tests, benchmarks, examples,
    # bindings), so the build packages above are all it needs.
    (cd "$src" && cmake --preset release -B "$build_dir" \
        -DGATEHOUSE_BUILD_TESTS=OFF -DGATEHOUSE_BUILD_BENCHMARKS=OFF \
        -DGATEHOUSE_BUILD_EXAMPLES=OFF -DGATEHOUSE_BUILD_BINDINGS=OFF -DGATEHOUSE_INSTALL=OFF)
    cmake --build "$build_dir" -j"${GATEHOUSE_BUILD_JOBS:-$(nproc)}" \
        --target gatehouse-server gatehouse-demo-game gatehouse_redis_module
    mkdir -p "$out/bin"
    install -m 0755 "$build_dir/server/gatehouse-server" "$out/bin/gatehouse-server"
    install -m 0755 "$build_dir/demo/game/gatehouse-demo-game" "$out/bin/gatehouse-demo-game"
    strip --strip-unneeded "$out/bin/gatehouse-server" "$out/bin/gatehouse-demo-game"
    install -m 0755 "${BASH_SOURCE[0]}" "$out/bin/gatehouse-build"
    cmd_runtime_packages "$out/bin/gatehouse-server" "$out/bin/gatehouse-demo-game" \
        >"$out/runtime-packages.txt"
    "$out/bin/gatehouse-server" --help >/dev/null
    cmd_install_module "$build_dir/redis_module/gatehouse_redis.so" "$out"
    log "built $out/bin/gatehouse-server and gatehouse-demo-game; runtime packages:" \
        "$(tr '\n' ' ' <"$out/runtime-packages.txt")"
}

# readelf (binutils, which g++ brings) rather than ldd: ldd would resolve the libraries of this
# machine, and what matters is what the file asks of the host that loads it.
cmd_install_module() {
    (($# == 2)) || die "usage: install-module SO OUT"
    local so="$1" out="$2" lib foreign=()
    [[ -f "$so" ]] || die "no Redis module at $so (build the gatehouse_redis_module target)"
    while read -r lib; do
        [[ "$lib" =~ $module_allowed_libs ]] || foreign+=("$lib")
    done < <(readelf -d "$so" | sed -n 's/.*(NEEDED).*\[\(.*\)\]$/\1/p')
    ((${#foreign[@]} == 0)) ||
        die "$so links ${foreign[*]}: a Redis host need not have them (link them in statically)"
    readelf --dyn-syms --wide "$so" |
        awk '$5 == "GLOBAL" && $7 != "UND" { print $8 }' | grep -x RedisModule_OnLoad >/dev/null ||
        die "$so does not export RedisModule_OnLoad: not a Redis module"
    mkdir -p "$out/$(dirname "$module_file")"
    # Executable: Redis 7 refuses to load a module file without execute permission.
    install -m 0755 "$so" "$out/$module_file"
    strip --strip-unneeded "$out/$module_file"
    log "installed the Redis module in $out/$module_file"
}

cmd_runtime() {
    (($# == 1)) || die "usage: runtime PACKAGES_FILE"
    local packages=()
    mapfile -t packages < <(grep -E '^[a-z0-9][a-z0-9.+-]*$' "$1")
    ((${#packages[@]} > 0)) || die "$1 lists no packages"
    apt_install "${packages[@]}" "${runtime_extra_packages[@]}"
    if ! id -u "$service_user" >/dev/null 2>&1; then
        # A system account with no login shell; its home is the working directory, where a
        # sqlite: store would go (a fleet uses PostgreSQL instead).
        groupadd --system --gid "$service_uid" "$service_user"
        useradd --system --uid "$service_uid" --gid "$service_uid" --home-dir "$service_home" \
            --create-home --shell /usr/sbin/nologin "$service_user"
    fi
}

# GET /ready on the port GATEHOUSE_LISTEN names (default 8080), over https when the server
# serves TLS (the certificate is not checked: this is the server asking itself).
cmd_healthcheck() {
    local listen="${GATEHOUSE_LISTEN:-0.0.0.0:8080}"
    local port="${listen##*:}" scheme=http
    [[ -n "${GATEHOUSE_TLS_CERT:-}" ]] && scheme=https
    exec curl --silent --show-error --fail --insecure --max-time 3 --output /dev/null \
        "$scheme://127.0.0.1:$port/ready"
}

main() {
    local cmd="${1:-}"
    (($# > 0)) && shift
    case "$cmd" in
        deps) (($# == 0)) || die "deps takes no arguments"; cmd_deps ;;
        build) cmd_build "$@" ;;
        install-module) cmd_install_module "$@" ;;
        runtime) cmd_runtime "$@" ;;
        runtime-packages) cmd_runtime_packages "$@" ;;
        healthcheck) cmd_healthcheck ;;
        *)
            sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d' >&2
            die "unknown command '${cmd}'"
            ;;
    esac
}

main "$@"
