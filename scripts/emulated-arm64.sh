#!/usr/bin/env bash
# An emulated 64-bit ARM "device" on this x86_64 host: Debian's arm64 python3.11 (extracted from
# its .deb files) run by qemu-user, with numpy's and onnxruntime's aarch64 wheels on its path.
# See docs/emulated-arm64.md.
#
#   scripts/emulated-arm64.sh setup            build ROOT (idempotent; prints ROOT on stdout)
#   scripts/emulated-arm64.sh check [--ready]  exit 0, or exit 1 with a one-line reason on stdout
#   scripts/emulated-arm64.sh run CMD ARGS...  run CMD with ROOT/bin first on PATH, inside a mount
#                                              namespace where /proc/cpuinfo is ROOT/cpuinfo
#   scripts/emulated-arm64.sh root             print ROOT
#
# ROOT is ${HWNAS_ARM64_ROOT:-$HOME/.cache/hwnas/arm64}. `run` execs all the way down (this
# script -> unshare -> bash -> CMD), so the pid a caller starts IS the command's pid: a signal
# sent to it reaches the command (for `run python3 ...`, the qemu process that is the emulated
# python) and its exit status comes back unchanged. Processes the command itself starts are its
# business, as on a native run: start `run` in a new session and kill the process group to take
# them down too. `run`'s own failures (not set up, bind mount refused) exit 125.
set -euo pipefail

ROOT="${HWNAS_ARM64_ROOT:-$HOME/.cache/hwnas/arm64}"
QEMU="${HWNAS_QEMU_AARCH64:-qemu-aarch64-static}"
# The emulated CPU model: cortex-a76 makes qemu's feature bits (HWCAP, MIDR) match ROOT/cpuinfo.
CPU="${HWNAS_ARM64_CPU:-cortex-a76}"
ORT_VERSION="${HWNAS_ARM64_ORT_VERSION:-1.32.0}"     # the host venv's onnxruntime
NUMPY_VERSION="${HWNAS_ARM64_NUMPY_VERSION:-2.4.6}"  # the host venv's numpy
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
RECIPE="hwnas-arm64 v2 cpu=$CPU onnxruntime==$ORT_VERSION numpy==$NUMPY_VERSION"
STAMP="$ROOT/.hwnas-arm64-stamp"

# Debian bookworm arm64 packages: python3.11 and the shared libraries its stdlib modules link
# (the dependency closure of python3.11-minimal + libpython3.11-stdlib + libstdc++6, less
# dpkg/tar/perl), and media-types for mimetypes/http.server.
DEBS=(
    python3.11-minimal libpython3.11-minimal libpython3.11-stdlib
    libc6 libgcc-s1 gcc-12-base libstdc++6 zlib1g libexpat1 libffi8 libssl3
    libbz2-1.0 liblzma5 libcrypt1 libdb5.3 libncursesw6 libtinfo6 libreadline8 libsqlite3-0
    libuuid1 libnsl2 libtirpc3 libgssapi-krb5-2 libk5crypto3 libkeyutils1 libkrb5-3
    libkrb5support0 libcom-err2
)
DEBS_ALL=(media-types)

log() { echo "[arm64] $*" >&2; }
die() { echo "[arm64] error: $*" >&2; exit 1; }

unshare_cmd() {  # unshare for a private mount namespace; as non-root, with a user namespace
    if [ "$(id -u)" = 0 ]; then echo "unshare -m"; else echo "unshare -m -r"; fi
}

# A CPU description in aarch64 /proc/cpuinfo format: 4 Cortex-A76 cores (r4p1, as in the
# Raspberry Pi 5's BCM2712). onnxruntime's cpuinfo reads the MIDR fields to name the cores.
write_cpuinfo() {
    local i
    for i in 0 1 2 3; do
        printf 'processor\t: %d\n' "$i"
        printf 'BogoMIPS\t: 108.00\n'
        printf 'Features\t: fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm lrcpc dcpop asimddp\n'
        printf 'CPU implementer\t: 0x41\n'
        printf 'CPU architecture: 8\n'
        printf 'CPU variant\t: 0x4\n'
        printf 'CPU part\t: 0xd0b\n'
        printf 'CPU revision\t: 1\n\n'
    done
}

# ROOT/bin/python3: a host bash script (so it can be exec'd from anywhere, the emulated python
# included) that execs qemu on Debian's arm64 python3.11. argv[0] is set to this script, so the
# emulated python's sys.executable is the wrapper and subprocess/multiprocessing re-launch work.
write_wrapper() {
    cat <<EOF
#!/bin/bash
# hwnas emulated arm64 python (written by scripts/emulated-arm64.sh setup): execs qemu-user on
# Debian's arm64 python3.11 under this ROOT, with ROOT/site (numpy, onnxruntime) on PYTHONPATH.
root="\$(cd "\${BASH_SOURCE[0]%/*}/.." && pwd -P)"
case ":\${PYTHONPATH:-}:" in
    *":\$root/site:"*) ;;
    *) export PYTHONPATH="\$root/site\${PYTHONPATH:+:\$PYTHONPATH}" ;;
esac
export PYTHONNOUSERSITE=1
exec "\${HWNAS_QEMU_AARCH64:-$QEMU}" -cpu "\${HWNAS_ARM64_CPU:-$CPU}" -L "\$root" \\
    -0 "\$root/bin/python3" "\$root/usr/bin/python3.11" "\$@"
EOF
}

cmd_setup() {
    if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$RECIPE" ]; then
        echo "$ROOT"
        return 0
    fi
    local t0=$SECONDS
    [ "$(uname -m)" = x86_64 ] || log "warning: host is $(uname -m), not x86_64 (untested)"
    command -v apt-get >/dev/null || die "apt-get not found: needs a Debian/Ubuntu host"
    command -v dpkg-deb >/dev/null || die "dpkg-deb not found"
    local need_update=0
    if ! dpkg --print-foreign-architectures | grep -qx arm64; then
        [ "$(id -u)" = 0 ] || die "dpkg has no arm64 architecture: run 'dpkg --add-architecture arm64 && apt-get update' as root, or run setup as root"
        log "dpkg --add-architecture arm64"
        dpkg --add-architecture arm64
        need_update=1
    fi
    if [ $need_update = 1 ] || ! apt-cache show python3.11-minimal:arm64 >/dev/null 2>&1; then
        [ "$(id -u)" = 0 ] || die "apt has no arm64 package lists: run 'apt-get update' as root"
        log "apt-get update (arm64 package lists)"
        apt-get update -qq >&2 || die "apt-get update failed"
    fi
    if ! command -v "$QEMU" >/dev/null; then
        [ "$(id -u)" = 0 ] || die "$QEMU not found: apt-get install qemu-user-static (as root)"
        log "apt-get install qemu-user-static"
        local out
        out="$(DEBIAN_FRONTEND=noninteractive apt-get install -y -qq qemu-user-static 2>&1)" \
            || { echo "$out" >&2; die "apt-get install qemu-user-static failed"; }
    fi
    log "$("$QEMU" --version | head -1)"

    # Never delete a directory this script did not make (HWNAS_ARM64_ROOT=$HOME, say).
    if [ -e "$ROOT" ] && [ ! -f "$STAMP" ] && [ -n "$(ls -A "$ROOT" 2>/dev/null)" ]; then
        die "$ROOT exists, is not empty and has no $(basename "$STAMP"): remove it or set HWNAS_ARM64_ROOT"
    fi
    local tmp="$ROOT.partial.$$"
    rm -rf "$tmp"
    mkdir -p "$tmp/debs" "$tmp/wheels" "$tmp/root/site" "$tmp/root/bin"
    # shellcheck disable=SC2064
    trap "rm -rf '$tmp'" EXIT

    log "apt-get download ${#DEBS[@]} arm64 packages + ${DEBS_ALL[*]}"
    local pkgs=() p
    for p in "${DEBS[@]}"; do pkgs+=("$p:arm64"); done
    (cd "$tmp/debs" && apt-get download -q -o APT::Sandbox::User=root "${pkgs[@]}" "${DEBS_ALL[@]}" >/dev/null) \
        || die "apt-get download failed (needs the arm64 package lists: apt-get update)"
    local deb debs=("$tmp/debs"/*.deb)
    log "dpkg-deb -x ${#debs[@]} packages"
    for deb in "${debs[@]}"; do dpkg-deb -x "$deb" "$tmp/root"; done
    rm -rf "$tmp/root/usr/share/doc" "$tmp/root/usr/share/man" "$tmp/root/usr/share/lintian" \
        "$tmp/root/usr/share/locale"
    # Empty site dirs inside ROOT: qemu's -L looks there first, so the emulated python never
    # falls through to the host's x86 /usr/lib/python3/dist-packages.
    mkdir -p "$tmp/root/usr/lib/python3/dist-packages" "$tmp/root/usr/local/lib/python3.11/dist-packages"

    local py="${PYTHON:-}"
    if [ -z "$py" ]; then
        if [ -x "$here/../.venv/bin/python" ]; then py="$here/../.venv/bin/python"; else py=python3; fi
    fi
    log "pip download (aarch64 wheels, cp311): onnxruntime==$ORT_VERSION numpy==$NUMPY_VERSION"
    "$py" -m pip download -q --disable-pip-version-check --dest "$tmp/wheels" --no-deps \
        --platform manylinux_2_28_aarch64 --platform manylinux_2_17_aarch64 --only-binary=:all: \
        --python-version 3.11 --implementation cp \
        "onnxruntime==$ORT_VERSION" "numpy==$NUMPY_VERSION" >&2 \
        || die "pip download failed (is onnxruntime $ORT_VERSION published for aarch64? set HWNAS_ARM64_ORT_VERSION)"
    local whl
    for whl in "$tmp/wheels"/*.whl; do
        log "unzip $(basename "$whl")"
        "$py" -m zipfile -e "$whl" "$tmp/root/site"
    done

    write_cpuinfo > "$tmp/root/cpuinfo"
    # qemu's -L looks for ROOT/proc/cpuinfo before /proc/cpuinfo: the emulated python sees the
    # arm64 file even outside `run` (`run` bind-mounts it too, for everything in its namespace).
    mkdir -p "$tmp/root/proc"
    ln -s ../cpuinfo "$tmp/root/proc/cpuinfo"
    write_wrapper > "$tmp/root/bin/python3"
    chmod +x "$tmp/root/bin/python3"

    log "smoke test: the emulated python starts and imports numpy"
    "$tmp/root/bin/python3" -c 'import platform, numpy; assert platform.machine() == "aarch64", platform.machine()' \
        || die "the emulated python does not start"

    rm -rf "$ROOT"
    mkdir -p "$(dirname "$ROOT")"
    mv "$tmp/root" "$ROOT"
    rm -rf "$tmp"
    trap - EXIT
    echo "$RECIPE" > "$STAMP"
    log "ready: $ROOT ($(du -sh "$ROOT" | cut -f1)) in $((SECONDS - t0)) s"
    echo "$ROOT"
}

cmd_check() {
    local ready=0
    [ "${1:-}" = --ready ] && ready=1
    local why=""
    if [ "$(uname -s)" != Linux ]; then
        why="not Linux"
    elif ! command -v unshare >/dev/null || ! command -v mount >/dev/null; then
        why="unshare/mount not found (util-linux)"
    elif ! command -v "$QEMU" >/dev/null && { [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; }; then
        why="$QEMU not found and cannot be installed here (apt-get install qemu-user-static as root)"
    else
        local f
        f="$(mktemp)"
        # shellcheck disable=SC2046
        if ! $(unshare_cmd) -- true 2>/dev/null; then
            why="no permission for a mount namespace ($(unshare_cmd) fails; needs root or user namespaces)"
        elif ! $(unshare_cmd) -- mount --bind "$f" /proc/cpuinfo 2>/dev/null; then
            why="cannot bind-mount a file over /proc/cpuinfo inside $(unshare_cmd)"
        fi
        rm -f "$f"
    fi
    if [ -z "$why" ]; then
        if [ -f "$STAMP" ]; then
            if ! "$ROOT/bin/python3" -c 'import platform; assert platform.machine() == "aarch64"' >/dev/null 2>&1; then
                why="$ROOT is set up but its python does not start (rm -rf it and run setup again)"
            fi
        elif [ $ready = 1 ]; then
            why="not set up: run scripts/emulated-arm64.sh setup (a few minutes; needs apt and PyPI)"
        elif ! command -v apt-get >/dev/null; then
            why="not set up, and setup needs apt-get"
        fi
    fi
    if [ -n "$why" ]; then
        echo "$why"
        exit 1
    fi
    if [ -f "$STAMP" ]; then echo "ready: $ROOT"; else echo "can be set up: scripts/emulated-arm64.sh setup"; fi
}

cmd_run() {
    [ $# -ge 1 ] || { echo "usage: $0 run CMD [ARGS...]" >&2; exit 125; }
    if [ ! -f "$STAMP" ]; then
        echo "[arm64] error: not set up: run $0 setup" >&2
        exit 125
    fi
    export HWNAS_ARM64_ROOT="$ROOT"
    export HWNAS_AGENT_PYTHON="$ROOT/bin/python3"
    export PATH="$ROOT/bin:$PATH"
    # shellcheck disable=SC2046,SC2016
    exec $(unshare_cmd) -- /bin/bash -c \
        'mount --bind "$1" /proc/cpuinfo || { echo "[arm64] error: bind mount over /proc/cpuinfo failed" >&2; exit 125; }
         shift; exec "$@"' hwnas-arm64 "$ROOT/cpuinfo" "$@"
}

case "${1:-}" in
    setup) shift; cmd_setup "$@" ;;
    check) shift; cmd_check "$@" ;;
    run) shift; cmd_run "$@" ;;
    root) echo "$ROOT" ;;
    *) awk 'NR > 1 && !/^#/ { exit } NR > 1 { sub(/^# ?/, ""); print }' "$0" >&2; exit 2 ;;
esac
