#!/usr/bin/env bash
# The main command: sets up .venv if needed, then runs `hwnas demo`: the whole pipeline on the
# embedded Fashion-MNIST subset (LUT -> supernet -> search under a budget -> finalize with a MEASURED verdict).
# About 4 minutes on 2 CPU cores (5-6.5 when it must transfer a LUT to this machine, 6-7 to build one); outputs in runs/demo/ (run it again to resume or reuse).
# Extra arguments go to `hwnas demo` (e.g. --data digits, --profiler ort-mobile, --epochs 15, --force).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="$(bash "$root/scripts/env.sh" demo)"  # only what the demo uses; the test command adds the dev extras
cd "$root"
exec "$venv/bin/hwnas" demo "$@"
