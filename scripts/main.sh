#!/usr/bin/env bash
# The main command: sets up .venv if needed, then runs a real profile -> predict -> measure
# round on this machine (about 2 minutes on 2 cores). Outputs land in runs/quickstart/.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="$(bash "$root/scripts/env.sh")"
cd "$root"
hwnas="$venv/bin/hwnas"
out=runs/quickstart
mkdir -p "$out"
echo "== 1. profile: time every mbv3 block at 160 px with ONNX Runtime (CPU) into a LUT"
"$hwnas" profile --profiler ort-cpu --space mbv3 --resolutions 160 --calib-archs 12 --out "$out/ort-cpu_mbv3_160.json"
echo
echo "== 2. predict: latency of 5 random 160 px architectures from that LUT"
"$hwnas" predict --lut "$out/ort-cpu_mbv3_160.json" --sample 5 --resolution 160 --seed 7
echo
echo "== 3. measure: the same architectures end-to-end with the same profiler, against the prediction"
"$hwnas" measure --lut "$out/ort-cpu_mbv3_160.json" --sample 5 --resolution 160 --seed 7
