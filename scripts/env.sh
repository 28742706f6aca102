#!/usr/bin/env bash
# Create or reuse .venv and install hwnas (editable).
#   bash scripts/env.sh        with the dev extras (the test command: pytest, hypothesis, ray, optuna, pymoo, mkdocs ...)
#   bash scripts/env.sh demo   with only what `hwnas demo` uses (the main command: the base + matplotlib for pareto.png)
# Re-installs only when pyproject.toml or constraints.txt changed, or more extras are asked for than are there
# (a venv with the dev extras serves the demo as it is).
set -euo pipefail
case "${1:-dev}" in
    dev) extras=dev ;;
    demo) extras=plot ;;
    *) echo "usage: bash scripts/env.sh [dev|demo]" >&2; exit 2 ;;
esac
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${HWNAS_VENV:-$root/.venv}"
py="${PYTHON:-python3}"
if [ ! -x "$venv/bin/python" ]; then
    echo "[hwnas] creating virtual environment in $venv" >&2
    "$py" -m venv "$venv"
fi
stamp="$venv/.hwnas-install-stamp"
want="$(cat "$root/pyproject.toml" "$root/constraints.txt" | sha256sum | cut -d' ' -f1)"
have="$(cat "$stamp" 2>/dev/null || true)"  # "<digest> <extras>" (a digest alone: the dev extras, as before)
have_extras="${have#* }"; [ "$have_extras" = "$have" ] && have_extras=dev
if [ "${have%% *}" != "$want" ] || { [ "$have_extras" != dev ] && [ "$have_extras" != "$extras" ]; }; then
    if [ -n "$have" ] && [ "$have_extras" = dev ]; then extras=dev; fi  # a changed pyproject: keep what was there
    echo "[hwnas] installing hwnas and its dependencies ([$extras] extras; torch pinned by constraints.txt)" >&2
    "$venv/bin/python" -m pip install -q --upgrade pip >&2
    "$venv/bin/python" -m pip install -q -c "$root/constraints.txt" -e "$root[$extras]" >&2
    echo "$want $extras" > "$stamp"
fi
# Fashion-MNIST (--data fashion-mnist, its tests) from Debian's package; never fails the set-up.
# No apt call when the files are there; HWNAS_NO_APT=1 skips the install.
fmnist=/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz
how="Fashion-MNIST not installed (tests that need it skip): apt-get install dataset-fashion-mnist as root, or use --data idx:DIR"
if [ ! -f "$fmnist" ]; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null && [ -z "${HWNAS_NO_APT:-}" ]; then
        echo "[hwnas] installing Debian's dataset-fashion-mnist (30 MB)" >&2
        { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq dataset-fashion-mnist; } \
            >/dev/null 2>&1 || echo "[hwnas] apt-get failed; $how" >&2
    else
        echo "[hwnas] $how" >&2
    fi
fi
echo "$venv"
