#!/usr/bin/env bash
# The one prepared GPU run of issue 33, for the device tool's machine (an H200: 10 min per command, ~15 min in
# all, start-up included). Resumable: every step skips when its output exists, and a LUT build cut short by
# the time check (or a kill) resumes from its saved entries when the script runs again on the same machine.
#
#   bash scripts/gpu_device_run.sh              # run what is left, within the time budget of this call
#   bash scripts/gpu_device_run.sh --dry-run    # print the plan (steps, commands, done / to run / deferred)
#   bash scripts/gpu_device_run.sh --budget-s 300 [--dry-run]
#
# What it writes: working files under $HWNAS_GPU_WORK (default .gpu-run/ in the repository, git-ignored, kept
# between calls while the machine stays warm); after every step a copy of what matters to $OUT (the device tool
# brings back at most 8 files): $OUT/summary.md (each step: status, seconds), $OUT/run.log, $OUT/gpu-run.tgz
# (LUTs, fidelity JSONs, step logs and results).
#
# Torch with CUDA (HWNAS_TORCH):
#   system (default) a virtual environment with --system-site-packages over the machine's python3, whose torch
#                    is a CUDA build (the device image's: torch 2.11.0+cu130 with its nvidia-* libraries, as the
#                    H100 LUT was built); hwnas installs into it --no-deps (onnx, onnxruntime, numpy, tqdm and
#                    pytest are in the image): nothing is downloaded.
#   pypi             bash scripts/env.sh into .venv-gpu with PyPI as the index: constraints.txt pins torch==2.13.0,
#                    and PyPI's manylinux x86_64 torch wheel IS the CUDA build (the +cpu build this repository's
#                    CI uses comes from a local wheel folder). Roughly 0.9 GB for torch and ~2.5 GB of nvidia-*
#                    wheels (cuDNN, cuBLAS, NCCL, ...): ~3.5 GB to fetch, ~6-7 GB installed, minutes of the budget
#                    (estimates, not measured here). Only where the machine can reach a package registry.
set -uo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

dry=0
env_only=0
budget="${HWNAS_GPU_BUDGET_S:-540}"   # of a 600 s command: the rest for packing and the reply
while [ $# -gt 0 ]; do
    case "$1" in
        --dry-run) dry=1 ;;
        --env) env_only=1 ;;  # only the environment step (the plan's first step runs this)
        --budget-s) shift; budget="${1:?--budget-s needs seconds}" ;;
        -h|--help) sed -n '2,26p' "$0"; exit 0 ;;
        *) echo "gpu_device_run.sh: unknown argument $1 (--dry-run, --budget-s N)" >&2; exit 2 ;;
    esac
    shift
done
case "$budget" in ''|*[!0-9]*) echo "gpu_device_run.sh: --budget-s must be whole seconds, got $budget" >&2; exit 2 ;; esac

work="${HWNAS_GPU_WORK:-$root/.gpu-run}"
out="${OUT:-$work/out}"
torch_from="${HWNAS_TORCH:-system}"
case "$torch_from" in system|pypi) ;; *) echo "gpu_device_run.sh: HWNAS_TORCH is system or pypi, got $torch_from" >&2; exit 2 ;; esac
venv="$root/.venv-gpu"
py="$venv/bin/python"
start=$(date +%s)
deadline=$((start + budget))
planned=0   # dry run: seconds of the steps that would run, to show what the budget defers

# -- the steps: NAME ESTIMATE_S NEEDS (the step whose output it reads, or -) then the command (run with bash -c in the repository) ------------
gpu="nvidia-h200"
L="$work/luts"; F="$work/fidelity"; T="$work/training"
lut() { echo "$L/${gpu}_$1.json"; }
fid="--n 30 --seed 1 --rounds 2 --processes 1"
build="--processes 1 --calib-archs 30"
sn="--data-limit 300"   # GPU and CPU train the same 3,000 images: steps/s of the same work
STEPS=(  # in the order of the issue's priorities; the time check defers what does not fit to the next call
"env|45|-|bash scripts/gpu_device_run.sh --env"
"cuda-tests|45|-|$py -m pytest -q -m cuda -p no:cacheprovider tests/test_cuda_graph.py tests/test_profilers.py tests/test_device.py"
"lut-graph-b1|100|-|$py tools/profile_device.py --profiler torch-cuda-graph --space demo --precision fp32 --batch-size 1 $build --out $(lut torch-cuda-graph_demo)"
"fid-graph-b1|60|lut-graph-b1|$py tools/bench_fidelity.py --lut $(lut torch-cuda-graph_demo) $fid --json $F/fidelity_torch-cuda-graph_demo.json"
"lut-eager-b1|100|-|$py tools/profile_device.py --profiler torch-cuda --space demo --precision fp32 --batch-size 1 $build --out $(lut torch-cuda_demo)"
"fid-eager-b1|60|lut-eager-b1|$py tools/bench_fidelity.py --lut $(lut torch-cuda_demo) $fid --json $F/fidelity_torch-cuda_demo.json"
"supernet-gpu|40|-|$py tools/bench_gpu_training.py supernet --compute cuda $sn --out $T/supernet_cuda.json"
"supernet-cpu|60|-|$py tools/bench_gpu_training.py supernet --compute cpu $sn --out $T/supernet_cpu.json"
"train-auto|30|-|$py tools/bench_gpu_training.py train --data-limit 300 --out $T/train_auto.json"
"lut-graph-b32|100|-|$py tools/profile_device.py --profiler torch-cuda-graph --space demo --precision fp32 --batch-size 32 $build --out $(lut torch-cuda-graph_demo_b32)"
"fid-graph-b32|60|lut-graph-b32|$py tools/bench_fidelity.py --lut $(lut torch-cuda-graph_demo_b32) $fid --json $F/fidelity_torch-cuda-graph_demo_b32.json"
"lut-graph-fp16-b32|100|-|$py tools/profile_device.py --profiler torch-cuda-graph --space demo --precision fp16 --batch-size 32 $build --out $(lut torch-cuda-graph_demo_fp16_b32)"
"fid-graph-fp16-b32|60|lut-graph-fp16-b32|$py tools/bench_fidelity.py --lut $(lut torch-cuda-graph_demo_fp16_b32) $fid --json $F/fidelity_torch-cuda-graph_demo_fp16_b32.json"
"lut-mbv3-graph-b1|150|-|$py tools/profile_device.py --profiler torch-cuda-graph --space mbv3 --resolutions 224 --precision fp32 --batch-size 1 $build --out $(lut torch-cuda-graph_mbv3_224)"
"fid-mbv3-graph-b1|90|lut-mbv3-graph-b1|$py tools/bench_fidelity.py --lut $(lut torch-cuda-graph_mbv3_224) $fid --json $F/fidelity_torch-cuda-graph_mbv3_224.json"
)

# -- the environment (its own step, so a second call finds it done) ------------------------------------------------
make_env() {
    if [ "$torch_from" = pypi ]; then
        PIP_INDEX_URL=https://pypi.org/simple PIP_FIND_LINKS= HWNAS_VENV="$venv" HWNAS_NO_APT=1 bash scripts/env.sh
    else
        [ -x "$py" ] || python3 -m venv --system-site-packages "$venv" || return 1
        "$py" -m pip install -q --no-deps --no-build-isolation -e . || return 1
    fi
    "$py" - <<'EOF'
import sys, torch
print(f"torch {torch.__version__}, CUDA {torch.version.cuda}, GPU {torch.cuda.is_available() and torch.cuda.get_device_name(0)}")
sys.exit(0 if torch.cuda.is_available() else 1)
EOF
}
if [ "$env_only" = 1 ]; then make_env; exit $?; fi

# -- running and packing ------------------------------------------------------------------------------------------
pack() {  # what matters, to $OUT: three files, far under the device tool's limits
    [ "$dry" = 1 ] && return 0
    mkdir -p "$out"
    {
        echo "# GPU device run ($(date -u +%FT%TZ)), budget ${budget} s per call"
        echo
        echo "| step | status | seconds |"
        echo "|---|---|---|"
        [ -f "$work/steps.tsv" ] && awk -F'\t' '{print "| " $1 " | " $2 " | " $3 " |"}' "$work/steps.tsv"
    } > "$out/summary.md"
    cp -f "$work/run.log" "$out/run.log" 2>/dev/null
    tar -czf "$out/gpu-run.tgz" -C "$work" --exclude='*.pt' --exclude=out luts fidelity training logs steps.tsv 2>/dev/null
    return 0
}

run_step() {  # NAME EST NEEDS CMD
    local name="$1" est="$2" needs="$3" cmd="$4" done_mark="$work/done/$1" now left rc t0
    now=$(date +%s); left=$((deadline - now))
    if [ -e "$done_mark" ]; then
        printf '[done]     %-20s %s\n' "$name" "(skipped: $done_mark exists)"
        return 0
    fi
    if [ "$needs" != - ] && [ ! -e "$work/done/$needs" ] && [ "$dry" = 0 ]; then
        printf '[waiting]  %-20s needs step %s, not finished yet: run the script again\n' "$name" "$needs" \
            | tee -a "$work/run.log"
        return 0
    fi
    if [ "$dry" = 1 ]; then
        planned=$((planned + est))
        if [ "$planned" -le "$budget" ]; then state="[run]"; else state="[deferred]"; fi
        printf '%-10s %-20s ~%4s s  %s\n' "$state" "$name" "$est" "$cmd"
        return 0
    fi
    if [ "$left" -lt "$est" ]; then
        printf '[deferred] %-20s ~%s s needed, %s s left in this call: run the script again\n' "$name" "$est" "$left" \
            | tee -a "$work/run.log"
        return 0
    fi
    echo "[run]      $name (~$est s, $left s left): $cmd" | tee -a "$work/run.log"
    t0=$(date +%s)
    # a build killed at the deadline keeps its saved entries: the next call resumes it (hwnas profile resumes)
    PYTHONUNBUFFERED=1 timeout --signal=INT --kill-after=15 "$left" bash -c "$cmd" > "$work/logs/$name.log" 2>&1
    rc=$?
    local secs=$(( $(date +%s) - t0 ))
    tail -n 25 "$work/logs/$name.log" >> "$work/run.log"
    if [ "$rc" = 0 ]; then
        touch "$done_mark"
        printf '%s\tok\t%s\n' "$name" "$secs" >> "$work/steps.tsv"
    elif [ "$rc" = 124 ] || [ "$rc" = 130 ]; then
        printf '%s\tcut at the time check (resumes)\t%s\n' "$name" "$secs" >> "$work/steps.tsv"
    else
        printf '%s\tfailed rc=%s (see logs/%s.log)\t%s\n' "$name" "$rc" "$name" "$secs" >> "$work/steps.tsv"
    fi
    echo "[$([ "$rc" = 0 ] && echo ok || echo "rc=$rc")]       $name in ${secs} s" | tee -a "$work/run.log"
    pack
    [ "$name" = env ] && [ "$rc" != 0 ] && { echo "no CUDA torch: nothing else can run" | tee -a "$work/run.log"; pack; exit 3; }
    return 0
}

if [ "$dry" = 1 ]; then
    echo "plan (dry run: nothing runs, nothing is written): work $work, out $out, torch from $torch_from, budget ${budget} s"
else
    mkdir -p "$work/done" "$work/logs" "$L" "$F" "$T" "$out"
    echo "== $(date -u +%FT%TZ) call with budget ${budget} s" >> "$work/run.log"
    command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm --format=csv \
        >> "$work/run.log" 2>&1
fi
for s in "${STEPS[@]}"; do
    IFS='|' read -r name est needs cmd <<< "$s"
    run_step "$name" "$est" "$needs" "$cmd"
done
pack
if [ "$dry" = 1 ]; then
    echo "total of the steps to run: ~${planned} s (budget ${budget} s per call; [deferred] steps wait for the next call)"
fi
exit 0
