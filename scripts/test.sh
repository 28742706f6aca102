#!/usr/bin/env bash
# The test command: sets up .venv if needed, then runs the test suite, in one of its two stages.
#   bash scripts/test.sh          stage 1: every test but the few slow end-to-end ones (pytest -m "not slow")
#   bash scripts/test.sh --slow   stage 2: only those (pytest -m slow)
#   bash scripts/test.sh --all    every test, both stages in one pytest run
# CI runs stage 1, then stage 2 (.ci/run). Other arguments go to pytest after the stage flag
# (e.g. `bash scripts/test.sh tests/test_cli.py -x`, `bash scripts/test.sh --all tests/test_demo.py`);
# a -m of your own replaces the stage's marker expression.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
stage=fast
case "${1:-}" in
    --fast|--slow|--all) stage="${1#--}"; shift ;;
esac
case "$stage" in
    fast) marker=(-m "not slow") ;;
    slow) marker=(-m slow) ;;
    all) marker=() ;;
esac
for arg in "$@"; do
    case "$arg" in -m|-m?*) marker=() ;; esac
done
venv="$(bash "$root/scripts/env.sh")"
cd "$root"
if [ "$stage" = fast ] && [ ${#marker[@]} -gt 0 ]; then
    echo "[hwnas] stage 1 of 2: every test but the slow end-to-end ones (stage 2: bash scripts/test.sh --slow; CI runs both)" >&2
elif [ "$stage" = slow ] && [ ${#marker[@]} -gt 0 ]; then
    echo "[hwnas] stage 2 of 2: the slow end-to-end tests (pytest -m slow)" >&2
fi
exec "$venv/bin/python" -m pytest ${marker[@]+"${marker[@]}"} "$@"
