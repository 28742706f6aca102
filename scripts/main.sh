#!/usr/bin/env bash
# The main command: sets up .venv if needed, then runs `hwnas demo`: the whole pipeline on the
# embedded Fashion-MNIST subset and the network-demo space (LUT -> search with NASWOT under a budget -> the 6 best
# trained briefly and re-ranked -> finalize with a MEASURED verdict). About 3.5-4.5 minutes on 2 CPU cores with a
# matching shipped LUT (more when it must transfer one to this machine); outputs in runs/demo/ (run it again to
# resume or reuse). Extra arguments go to `hwnas demo` (e.g. --space demo, --profiler ort-mobile, --refine 8, --force).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="$(bash "$root/scripts/env.sh" demo)"  # only what the demo uses; the test command adds the dev extras
cd "$root"
exec "$venv/bin/hwnas" demo "$@"
