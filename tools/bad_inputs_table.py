#!/usr/bin/env python3
"""Run every bad input we know of against the real CLI and print input -> exit code -> message (markdown).

    python tools/bad_inputs_table.py > docs/bad-inputs.md

Each case runs `python -m hwnas.cli ...` in a fresh temporary directory with files made for it.
tests/test_bad_inputs.py runs the same cases and asserts exit code 2 and a one-line message.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parents[1]
DEMO_LUT = ROOT / "luts" / "amd-epyc-2c_ort-cpu_demo.json"
GOOD_ARCH = {"space": "demo", "resolution": 24, "width": 1.0, "kernels": [[3], [3], [3], [3]],
             "expands": [[2], [2], [2], [2]]}


def _arch(tmp: Path, text: str | bytes) -> str:
    p = tmp / "arch.json"
    p.write_bytes(text if isinstance(text, bytes) else text.encode())
    return str(p)


def _arch_with(tmp: Path, **changes) -> str:
    return _arch(tmp, json.dumps({**GOOD_ARCH, **changes}))


def _lut_with(tmp: Path, edit: Callable[[dict], None]) -> str:
    data = json.loads(DEMO_LUT.read_text())
    edit(data)
    p = tmp / "lut.json"
    p.write_text(json.dumps(data))
    return str(p)


def _first_entry(d: dict) -> dict:
    return d["entries"][sorted(d["entries"])[0]]


def _space_with(tmp: Path, **changes) -> str:
    data = json.loads((ROOT / "hwnas" / "spaces" / "demo.json").read_text())
    data.update(changes)
    p = tmp / "space.json"
    p.write_text(json.dumps(data).replace('"NaN"', "NaN").replace('"Infinity"', "Infinity"))
    return str(p)


def _report_without(tmp: Path, key: str) -> str:
    d = tmp / "bundle"
    d.mkdir()
    (d / "report.json").write_text(json.dumps({"format": "hwnas-finalize-report", "version": 1, "arch_id": "x"}))
    return str(d)


def _file(tmp: Path, name: str = "existing.txt") -> str:
    p = tmp / name
    p.write_text("mine")
    return str(p)


def _bytes(tmp: Path, name: str, data: bytes) -> str:
    p = tmp / name
    p.write_bytes(data)
    return str(p)


L = str(DEMO_LUT)
# (what, argv builder)
CASES: list[tuple[str, Callable[[Path], list[str]]]] = [
    ("arch value 1e400", lambda t: ["predict", "--lut", L, "--arch", _arch(t, json.dumps(GOOD_ARCH).replace('24,', '1e400,'))]),
    ("arch value Infinity", lambda t: ["predict", "--lut", L, "--arch", _arch(t, json.dumps(GOOD_ARCH).replace('24,', 'Infinity,'))]),
    ('arch "depths": 5', lambda t: ["predict", "--lut", L, "--arch", _arch_with(t, depths=5)]),
    ("arch JSON nested 100k deep", lambda t: ["predict", "--lut", L, "--arch", _arch(t, "[" * 100_000 + "]" * 100_000)]),
    ("arch kernel 3.5", lambda t: ["predict", "--lut", L, "--arch", _arch_with(t, kernels=[[3.5], [3], [3], [3]])]),
    ("arch resolution 24.5", lambda t: ["predict", "--lut", L, "--arch", _arch_with(t, resolution=24.5)]),
    ("arch kernel true", lambda t: ["predict", "--lut", L, "--arch", _arch_with(t, kernels=[[True], [3], [3], [3]])]),
    ("arch file not UTF-8", lambda t: ["predict", "--lut", L, "--arch", _arch(t, b"\xff\xfe{\x00")]),
    ("arch path is a directory", lambda t: ["predict", "--lut", L, "--arch", str(t)]),
    ("predict without --arch or --sample", lambda t: ["predict", "--lut", L]),
    ("LUT entry median -1", lambda t: ["predict", "--lut", _lut_with(t, lambda d: _first_entry(d).update(median_ms=-1.0)), "--sample", "1"]),
    ("LUT entry p90 NaN", lambda t: ["predict", "--lut", _lut_with(t, lambda d: _first_entry(d).update(p90_ms=float("nan"))), "--sample", "1"]),
    ("LUT entry n -3", lambda t: ["predict", "--lut", _lut_with(t, lambda d: _first_entry(d).update(n=-3)), "--sample", "1"]),
    ("LUT entry cv NaN", lambda t: ["predict", "--lut", _lut_with(t, lambda d: _first_entry(d).update(cv=float("nan"))), "--sample", "1"]),
    ("LUT calibration coef NaN", lambda t: ["predict", "--lut", _lut_with(t, lambda d: d["calibration"]["coef"].__setitem__(0, float("nan"))), "--sample", "1"]),
    ("LUT calibration coef negative", lambda t: ["predict", "--lut", _lut_with(t, lambda d: d["calibration"].update(coef=[-1.0, 0, 0, 0])), "--sample", "1"]),
    ("LUT calibration coef a scalar", lambda t: ["predict", "--lut", _lut_with(t, lambda d: d["calibration"].update(coef=1.0)), "--sample", "1"]),
    ("LUT calibration coef wrong length", lambda t: ["predict", "--lut", _lut_with(t, lambda d: d["calibration"].update(coef=[1.0, 0.0])), "--sample", "1"]),
    ("LUT calibration coef not numbers", lambda t: ["predict", "--lut", _lut_with(t, lambda d: d["calibration"].update(coef=["a", "b", "c", "d"])), "--sample", "1"]),
    ("space file expands NaN", lambda t: ["sample", "--space-file", _space_with(t, expands=[2, "NaN"])]),
    ("space file width multiplier Infinity", lambda t: ["sample", "--space-file", _space_with(t, width_mults=["Infinity"])]),
    ("search --budget-ms nan", lambda t: ["search", "--lut", L, "--evaluator", "proxy:synflow", "--budget-ms", "nan", "--out", str(t / "r")]),
    ("search --budget-ms inf", lambda t: ["search", "--lut", L, "--evaluator", "proxy:synflow", "--budget-ms", "inf", "--out", str(t / "r")]),
    ("search --budget-ms -1", lambda t: ["search", "--lut", L, "--evaluator", "proxy:synflow", "--budget-ms", "-1", "--out", str(t / "r")]),
    ("search --max-params-m nan", lambda t: ["search", "--lut", L, "--evaluator", "proxy:synflow", "--max-params-m", "nan", "--out", str(t / "r")]),
    ("search --out an existing file", lambda t: ["search", "--lut", L, "--evaluator", "proxy:synflow", "--out", _file(t)]),
    ("search --evaluator-option foo=1", lambda t: ["search", "--lut", L, "--evaluator", "proxy:naswot", "--evaluator-option", "foo=1", "--out", str(t / "r")]),
    ("search --evaluator-option sede=3 (typo)", lambda t: ["search", "--lut", L, "--evaluator", "proxy:naswot", "--evaluator-option", "sede=3", "--out", str(t / "r")]),
    ("search --generations 0", lambda t: ["search", "--lut", L, "--evaluator", "proxy:synflow", "--generations", "0", "--out", str(t / "r")]),
    ("search with a corrupt predictor .pt", lambda t: ["search", "--lut", L, "--evaluator", "predictor", "--evaluator-option", f"path={_bytes(t, 'p.pt', b'not a torch file')}", "--out", str(t / "r")]),
    ("truncated .npz data", lambda t: ["supernet", "--space", "demo", "--data", _bytes(t, "d.npz", (ROOT / "hwnas/data/digits.npz").read_bytes()[:5000]), "--out", str(t / "s.pt")]),
    ("supernet --epochs 0", lambda t: ["supernet", "--space", "demo", "--epochs", "0", "--out", str(t / "s.pt")]),
    ("supernet --epochs -1", lambda t: ["supernet", "--space", "demo", "--epochs", "-1", "--out", str(t / "s.pt")]),
    ("supernet --batch-size 0", lambda t: ["supernet", "--space", "demo", "--batch-size", "0", "--out", str(t / "s.pt")]),
    ("sample --out a directory", lambda t: ["sample", "--space", "demo", "--out", str(t)]),
    ("sample --n 0", lambda t: ["sample", "--space", "demo", "--n", "0"]),
    ("finalize --out an existing file", lambda t: ["finalize", str(t), "--out", _file(t)]),
    ("report on a report.json lacking keys", lambda t: ["report", _report_without(t, "run")]),
    ("profile --out a directory", lambda t: ["profile", "--profiler", "ort-cpu", "--space", "demo", "--out", str(t)]),
    ("--pin-cpu abc", lambda t: ["measure", "--profiler", "ort-cpu", "--space", "demo", "--sample", "1", "--pin-cpu", "abc"]),
    ("--pin-cpu 999", lambda t: ["measure", "--profiler", "ort-cpu", "--space", "demo", "--sample", "1", "--pin-cpu", "999"]),
]


def run_case(argv_of: Callable[[Path], list[str]]) -> tuple[int, str]:
    with tempfile.TemporaryDirectory(prefix="hwnas-bad-") as tmp:
        argv = argv_of(Path(tmp))
        r = subprocess.run([sys.executable, "-m", "hwnas.cli", *argv], capture_output=True, text=True, cwd=ROOT,
                           env={**os.environ, "PYTHONUNBUFFERED": "1"}, timeout=300)
        lines = [ln for ln in r.stderr.splitlines() if ln.strip() and not ln.startswith(("note:", "WARNING"))]
        return r.returncode, (lines[-1] if lines else r.stdout.strip().splitlines()[-1:] and r.stdout.strip().splitlines()[-1] or "")


def main() -> int:
    print("# Bad inputs and what hwnas says\n")
    print("Generated by `python tools/bad_inputs_table.py` (each case runs the real CLI in a temporary "
          "directory); `tests/test_bad_inputs.py` asserts every row: exit code 2, one line, no traceback. "
          "Temporary paths are shown as `TMP`.\n")
    print("| input | exit | message |\n|---|---|---|")
    for what, argv_of in CASES:
        code, msg = run_case(argv_of)
        msg = msg.replace("|", "\\|")
        import re
        msg = re.sub(r"/tmp/hwnas-bad-[^/\s'\"]+", "TMP", msg)
        print(f"| {what} | {code} | {msg} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
