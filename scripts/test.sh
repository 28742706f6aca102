#!/usr/bin/env bash
# The test command: sets up .venv if needed, then runs the test suite.
# Extra arguments go to pytest (e.g. `bash scripts/test.sh -m "not slow"`).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="$(bash "$root/scripts/env.sh")"
cd "$root"
exec "$venv/bin/python" -m pytest "$@"
