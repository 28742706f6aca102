#!/usr/bin/env bash
# Create or reuse .venv and install hwnas (editable) with the dev extras.
# Re-installs only when pyproject.toml or constraints.txt changed.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${HWNAS_VENV:-$root/.venv}"
py="${PYTHON:-python3}"
if [ ! -x "$venv/bin/python" ]; then
    echo "[hwnas] creating virtual environment in $venv" >&2
    "$py" -m venv "$venv"
fi
stamp="$venv/.hwnas-install-stamp"
want="$(cat "$root/pyproject.toml" "$root/constraints.txt" | sha256sum | cut -d' ' -f1)"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
    echo "[hwnas] installing hwnas and its dependencies (torch pinned by constraints.txt)" >&2
    "$venv/bin/python" -m pip install -q --upgrade pip >&2
    "$venv/bin/python" -m pip install -q -c "$root/constraints.txt" -e "$root[dev]" >&2
    echo "$want" > "$stamp"
fi
echo "$venv"
