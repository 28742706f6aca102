#!/usr/bin/env python3
"""Run every bad input we know of against the real CLI and print input -> exit code -> message (markdown).

    python tools/bad_inputs_table.py > docs/bad-inputs.md

Each case runs `python -m hwnas ...` in a fresh temporary directory with files made for it.
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


def _npz_classes(tmp: Path, k: int) -> str:
    """A user's .npz of k classes (10 tiny grey images each)."""
    import numpy as np

    p = tmp / f"classes{k}.npz"
    rng = np.random.default_rng(0)
    np.savez(p, x=rng.integers(0, 255, (10 * k, 8, 8), dtype=np.uint8), y=np.repeat(np.arange(k), 10))
    return str(p)


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


def _all_entries(**changes) -> Callable[[dict], None]:
    return lambda d: [e.update(changes) for e in d["entries"].values()]


def _measurements(tmp: Path, scale: float) -> str:
    """A measurements CSV of the 5 networks --suggest picks from the demo LUT, each the donor's prediction x scale."""
    import csv

    from hwnas.latency.lut import LUT
    from hwnas.latency.predict import latency_predictor
    from hwnas.measuring.measurements import suggest_networks

    lut = LUT.load(DEMO_LUT)
    predictor = latency_predictor(lut, lut.search_space())
    archs = suggest_networks(DEMO_LUT, 5, tmp / "suggested.csv")
    with open(tmp / "m.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["arch", "ms"])
        w.writerows([a.to_json(), f"{predictor.predict(a) * scale:.6g}"] for a in archs)
    return str(tmp / "m.csv")


def _space_with(tmp: Path, **changes) -> str:
    data = json.loads((ROOT / "hwnas" / "spaces" / "demo.json").read_text())
    data.update(changes)
    p = tmp / "space.json"
    p.write_text(json.dumps(data).replace('"NaN"', "NaN").replace('"Infinity"', "Infinity"))
    return str(p)


def _split_folders(tmp: Path, test_classes: tuple[str, ...]) -> str:
    """An image folder laid out root/train/CLASS/*.png, root/test/CLASS/*.png (3 tiny grey PNGs a class)."""
    import numpy as np
    from PIL import Image

    root = tmp / "images"
    for split, classes in (("train", ("cat", "dog")), ("test", test_classes)):
        for c in classes:
            (root / split / c).mkdir(parents=True)
            for i in range(3):
                Image.fromarray(np.full((8, 8), 40 * i, np.uint8)).save(root / split / c / f"{i}.png")
    return str(root)


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


def _run(tmp: Path, lut: str | None = None) -> Path:
    """A finished small search run (proxy evaluator, 4 archs) in ``tmp/run``."""
    from hwnas.search import run_search

    run_search(lut or str(DEMO_LUT), tmp / "run", population=4, generations=1, seed=0, progress=False)
    return tmp / "run"


def _changed_lut_run(tmp: Path) -> str:
    """A run searched with a copy of the demo LUT, whose every median was then scaled by 1.1."""
    lut = tmp / "lut.json"
    lut.write_bytes(DEMO_LUT.read_bytes())
    _run(tmp, str(lut))
    data = json.loads(lut.read_text())
    for e in data["entries"].values():
        e["median_ms"] *= 1.1
    lut.write_text(json.dumps(data))
    return str(lut)


def _damaged_run(tmp: Path) -> str:
    """A finished run whose store has one 4 KB page (the evals index) overwritten."""
    import sqlite3

    db = _run(tmp) / "run.sqlite"
    with sqlite3.connect(db) as con:
        page = con.execute("SELECT rootpage FROM sqlite_master WHERE name='sqlite_autoindex_evals_1'").fetchone()[0]
        size = con.execute("PRAGMA page_size").fetchone()[0]
    with open(db, "r+b") as f:
        f.seek((page - 1) * size)
        f.write(b"\xff" * size)
    return str(db.parent)


def _loop(tmp: Path) -> str:
    p = tmp / "loop"
    p.symlink_to(p)
    return str(p)


def _space_text(tmp: Path, text: str) -> str:
    p = tmp / "space.json"
    p.write_text(text)
    return str(p)


def _progress_dir(tmp: Path) -> str:
    """A transfer's --out whose progress file path is taken by a directory."""
    (tmp / "t.json.transfer-progress.json").mkdir()
    return str(tmp / "t.json")


def _token(tmp: Path) -> str:
    return _bytes(tmp, "token", b"0123456789abcdef-bad-inputs-token")


def _timings(tmp: Path, results) -> str:
    manifest = {"format": "hwnas-bundle", "version": 1, "settings": {}, "items": [
        {"id": "k", "file": "models/a.onnx", "sha256": "0" * 64, "passes": 2}]}
    return _bytes(tmp, "timings.json", json.dumps({"format": "hwnas-timings", "complete": True, "device": {},
                                                    "manifest": manifest, "results": results}).encode())


def _measurements_edited(tmp: Path, edit: Callable[[list[list[str]]], None]) -> str:
    """The 5-network measurements CSV of :func:`_measurements` (the donor's own predictions) with its rows
    (``[arch, ms]`` lists, the header left out) changed by ``edit``."""
    import csv

    p = Path(_measurements(tmp, 1.0))
    rows = list(csv.reader(p.open()))
    body = rows[1:]
    edit(body)
    with open(p, "w", newline="") as f:
        csv.writer(f).writerows([rows[0], *body])
    return str(p)


def _shipped_space(tmp: Path, name: str, **changes) -> str:
    data = json.loads((ROOT / "hwnas" / "spaces" / f"{name}.json").read_text())
    data.update(changes)
    p = tmp / "space.json"
    p.write_text(json.dumps(data))
    return str(p)


def _self_naming_mixed(tmp: Path) -> str:
    return _shipped_space(tmp, "mixed-demo", cell=str(tmp / "space.json"))


def _network_base(tmp: Path) -> str:
    """A network-demo arch (what `hwnas sample --space network-demo --seed 1` writes)."""
    import random

    from hwnas.spaces.base import get_space

    p = tmp / "base.json"
    p.write_text(get_space("network-demo").sample(random.Random(1)).to_json())
    return str(p)


def _scale(tmp: Path, *args: str, out: str | None = None) -> list[str]:
    base = _network_base(tmp)
    return ["scale", "--lut", NET_LUT, "--arch", base, "--budget-ms", "1", "--evaluator", "none", "--quiet",
            "--out", out or str(tmp / "scaled.json"), *args]


L = str(DEMO_LUT)
NET_LUT = str(ROOT / "luts" / "amd-epyc-avx512-2c_ort-cpu_network-demo.json")
DARTS4 = ("Genotype(normal=[('sep_conv_3x3', 0), ('sep_conv_3x3', 1), ('sep_conv_3x3', 0), ('sep_conv_3x3', 1), "
          "('sep_conv_3x3', 1), ('skip_connect', 0), ('skip_connect', 0), ('dil_conv_3x3', 2)], "
          "normal_concat=[2, 3, 4, 5], reduce=[('max_pool_3x3', 0), ('max_pool_3x3', 1), ('skip_connect', 2), "
          "('max_pool_3x3', 1), ('max_pool_3x3', 0), ('skip_connect', 2), ('skip_connect', 2), ('max_pool_3x3', 1)], "
          "reduce_concat=[2, 3, 4, 5])\n")
CELL_LUT = str(ROOT / "luts" / "amd-epyc-2c_ort-cpu_cell-demo.json")
DEMO_SPACE = (ROOT / "hwnas" / "spaces" / "demo.json").read_text()
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
    # issue 28
    ("search --resume with the LUT changed since", lambda t: ["search", "--lut", _changed_lut_run(t), "--population", "4", "--generations", "2", "--out", str(t / "run"), "--resume"]),
    ("finalize with a LUT of another space", lambda t: ["finalize", str(_run(t)), "--lut", CELL_LUT, "--out", str(t / "dist")]),
    ("report on a damaged run.sqlite", lambda t: ["report", _damaged_run(t)]),
    ("search --resume on a damaged run.sqlite", lambda t: ["search", "--lut", L, "--population", "4", "--generations", "1", "--out", _damaged_run(t), "--resume"]),
    ("search --seed -1", lambda t: ["search", "--lut", L, "--seed", "-1", "--out", str(t / "r")]),
    ("sample --seed -1", lambda t: ["sample", "--space", "demo", "--seed", "-1"]),
    ("arch file with a key twice", lambda t: ["predict", "--lut", L, "--arch", _arch(t, json.dumps(GOOD_ARCH).replace('"resolution": 24,', '"resolution": 24, "resolution": 32,'))]),
    ("space file with a key twice", lambda t: ["sample", "--space-file", _space_text(t, '{"name": "twice", ' + DEMO_SPACE.lstrip()[1:])]),
    ("sample --out a symlink loop", lambda t: ["sample", "--space", "demo", "--out", _loop(t)]),
    ("search --out a symlink loop", lambda t: ["search", "--lut", L, "--out", _loop(t)]),
    ("search --out /proc/x", lambda t: ["search", "--lut", L, "--population", "4", "--generations", "1", "--out", "/proc/x"]),
    ("predict --lut a symlink loop", lambda t: ["predict", "--lut", _loop(t), "--sample", "1"]),
    ("predict --lut a directory", lambda t: ["predict", "--lut", str(t), "--sample", "1"]),
    ("arch of the other space kind", lambda t: ["predict", "--lut", L, "--arch", _arch(t, json.dumps({"space": "cell-demo", "resolution": 16, "ops": ["none"] * 6}))]),
    ("predict --lut an mbv3 LUT --space demo", lambda t: ["predict", "--lut", str(ROOT / "luts" / "amd-epyc-2c_ort-cpu_mbv3.json"), "--space", "demo", "--sample", "1"]),
    ("a space of 10,000 resolutions", lambda t: ["predict", "--lut", L, "--space-file", _space_with(t, resolutions=list(range(16, 10016))), "--sample", "1"]),
    ("predict --arch JSON Lines with a broken line", lambda t: ["predict", "--lut", L, "--arch", _arch(t, json.dumps(GOOD_ARCH) + "\n{broken\n")]),
    ("measure a file that is not ONNX", lambda t: ["measure", "--profiler", "ort-cpu", _bytes(t, "m.onnx", b"not a model")]),
    ("measure a directory", lambda t: ["measure", "--profiler", "ort-cpu", str(t)]),
    ("search --evaluator supernet, checkpoint a directory", lambda t: ["search", "--lut", L, "--evaluator", "supernet", "--evaluator-option", f"checkpoint={t}", "--out", str(t / "r")]),
    ("search --evaluator train max_epochs=0", lambda t: ["search", "--lut", L, "--evaluator", "train", "--evaluator-option", "max_epochs=0", "--out", str(t / "r")]),
    # the sweep of transfer, int8, the agent (after issue 28)
    ("profile --transfer-from --networks 0", lambda t: ["profile", "--transfer-from", L, "--networks", "0", "--out", str(t / "t.json")]),
    ("profile --transfer-from --device-time 10x", lambda t: ["profile", "--transfer-from", L, "--device-time", "10x", "--out", str(t / "t.json")]),
    ("profile --transfer-from a donor of another space", lambda t: ["profile", "--transfer-from", CELL_LUT, "--space", "demo", "--out", str(t / "t.json")]),
    ("profile --transfer-from an int8 donor, fp32 here", lambda t: ["profile", "--transfer-from", _lut_with(t, lambda d: d["settings"].update(precision="int8")), "--out", str(t / "t.json")]),
    ("profile --transfer-from, progress file a directory", lambda t: ["profile", "--transfer-from", L, "--networks", "1", "--out", _progress_dir(t)]),
    ("profile --import-timings with a median of -1", lambda t: ["profile", "--profiler", "ort-cpu", "--space", "demo", "--import-timings", _timings(t, {"k": {"runs": [{"median_ms": -1}]}}), "--out", str(t / "l.json")]),
    ("profile --import-timings, results a list", lambda t: ["profile", "--profiler", "ort-cpu", "--space", "demo", "--import-timings", _timings(t, [1]), "--out", str(t / "l.json")]),
    ("measure --device tcp://127.0.0.1:abc", lambda t: ["measure", "--profiler", "ort-cpu", "--space", "demo", "--sample", "1", "--device", "tcp://127.0.0.1:abc", "--token-file", _token(t)]),
    ("measure --device tcp://127.0.0.1:99999", lambda t: ["measure", "--profiler", "ort-cpu", "--space", "demo", "--sample", "1", "--device", "tcp://127.0.0.1:99999", "--token-file", _token(t)]),
    ("measure --device '' (an unset variable)", lambda t: ["measure", "--profiler", "ort-cpu", "--space", "demo", "--sample", "1", "--device", "", "--token-file", _token(t)]),
    ("plugins --kind nonsense", lambda t: ["plugins", "--kind", "nonsense"]),
    ("search --population 100000 on cell-demo", lambda t: ["search", "--lut", CELL_LUT, "--population", "100000", "--generations", "1", "--out", str(t / "r")]),
    # issue 47, items 6-10
    ("LUT entries all 1e308 (their sum is inf)", lambda t: ["predict", "--lut", _lut_with(t, _all_entries(median_ms=1e308)), "--sample", "1"]),
    ("search on a LUT whose entries are 1e308", lambda t: ["search", "--lut", _lut_with(t, _all_entries(median_ms=1e308)), "--population", "4", "--generations", "1", "--out", str(t / "r")]),
    ("LUT calibration coef 1e308", lambda t: ["predict", "--lut", _lut_with(t, lambda d: d["calibration"].update(coef=[1e308, 0, 0, 0])), "--sample", "1"]),
    ("profile --measurements 10^5x faster than the donor (no plausible fit)", lambda t: ["profile", "--transfer-from", L, "--measurements", _measurements(t, 1e-5), "--out", str(t / "t.json")]),
    ("predict --sample 10000000", lambda t: ["predict", "--lut", L, "--sample", "10000000"]),
    ("predict --lut /dev/zero", lambda t: ["predict", "--lut", "/dev/zero", "--sample", "1"]),
    ("predict --lut /dev/urandom", lambda t: ["predict", "--lut", "/dev/urandom", "--sample", "1"]),
    ("predict --lut a FIFO", lambda t: ["predict", "--lut", _fifo(t), "--sample", "1"]),
    ("predict --arch /dev/zero", lambda t: ["predict", "--lut", L, "--arch", "/dev/zero"]),
    ("predict --arch a FIFO", lambda t: ["predict", "--lut", L, "--arch", _fifo(t)]),
    ("sample --space-file /dev/zero", lambda t: ["sample", "--space-file", "/dev/zero"]),
    ("sample --space-file a directory", lambda t: ["sample", "--space-file", str(t)]),
    ("search --objectives accuracy accuracy latency_ms", lambda t: ["search", "--lut", L, "--objectives", "accuracy", "accuracy", "latency_ms", "--out", str(t / "r")]),
    # issue 44: no silent data set, class counts that match
    ("search --evaluator proxy:naswot with no --data", lambda t: ["search", "--lut", L, "--evaluator", "proxy:naswot", "--population", "4", "--generations", "1", "--out", str(t / "r")]),
    ("search --data of 3 classes on a 10-class space", lambda t: ["search", "--lut", L, "--data", _npz_classes(t, 3), "--population", "4", "--generations", "1", "--out", str(t / "r")]),
    ("search --data X --evaluator-option data=Y", lambda t: ["search", "--lut", L, "--data", "digits", "--evaluator", "proxy:naswot", "--evaluator-option", "data=fashion-small", "--out", str(t / "r")]),
    ("supernet with no --data", lambda t: ["supernet", "--space", "demo", "--out", str(t / "sn.pt")]),
    ("score --evaluator train with no --data", lambda t: ["score", "--space", "demo", "--archs", _arch(t, json.dumps([GOOD_ARCH])), "--evaluator", "train"]),
    ("LUT calibration.data median_ms -1", lambda t: ["predict", "--lut", _lut_with(t, lambda d: d["calibration"]["data"][0]["measured"].update(median_ms=-1)), "--sample", "1"]),
    # issue 47: the sweep of this turn's surfaces (space kinds, --measurements/--suggest, score, scale)
    ("network space attention_heads 0", lambda t: ["sample", "--space-file", _shipped_space(t, "network-demo", attention_heads=0)]),
    ("mixed space whose cell names its own file", lambda t: ["sample", "--space-file", _self_naming_mixed(t)]),
    ("cell space with ops ['none'] only", lambda t: ["sample", "--space-file", _shipped_space(t, "nb201", ops=["none"])]),
    ("DARTS's 4-node genotype on darts-demo (3 nodes)", lambda t: ["score", "--space", "darts-demo", "--data", "none", "--archs", _bytes(t, "g.txt", DARTS4.encode())]),
    ("profile --measurements a row of 1e308 ms", lambda t: ["profile", "--transfer-from", L, "--measurements", _measurements_edited(t, lambda rows: rows[0].__setitem__(1, "1e308")), "--out", str(t / "t.json")]),
    ("profile --measurements every row 9e5 ms (a fit past the LUT's bounds)", lambda t: ["profile", "--transfer-from", L, "--measurements", _measurements_edited(t, lambda rows: [r.__setitem__(1, "9e5") for r in rows]), "--out", str(t / "t.json")]),
    ("profile --measurements one network twice, 1000x apart", lambda t: ["profile", "--transfer-from", L, "--measurements", _measurements_edited(t, lambda rows: rows.append([rows[0][0], str(float(rows[0][1]) * 1000)])), "--out", str(t / "t.json")]),
    ("profile --suggest --out an existing (filled-in) list", lambda t: ["profile", "--transfer-from", L, "--suggest", "3", "--out", _bytes(t, "list.csv", b"arch,ms\nmine,1.0\n")]),
    ("score --json the --archs file itself", lambda t: ["score", "--space", "demo", "--data", "none", "--archs", _arch(t, json.dumps([GOOD_ARCH])), "--json", str(t / "arch.json")]),
    ("scale --out the --arch file itself", lambda t: _scale(t, out=str(t / "base.json"))),
    ("scale --alpha-beta-gamma nan,1.1,1.15", lambda t: _scale(t, "--alpha-beta-gamma", "nan,1.1,1.15")),
    ("scale --alpha-beta-gamma 1,1,1", lambda t: _scale(t, "--alpha-beta-gamma", "1,1,1")),
    ("scale --alpha-beta-gamma with --grid", lambda t: _scale(t, "--alpha-beta-gamma", "1.2,1.1,1.15", "--grid")),
    # issue 44: a LUT derived for another space, a space's class count from the data, split folders; issue 41: flags
    ("profile --lut BASE for BASE's own space", lambda t: ["profile", "--lut", L, "--space", "demo", "--out", str(t / "d.json")]),
    ("profile --lut BASE --transfer-from", lambda t: ["profile", "--lut", L, "--space-file", _space_with(t, num_classes=3), "--transfer-from", L, "--out", str(t / "d.json")]),
    ("space \"num_classes\": \"data\" without --data", lambda t: ["sample", "--space-file", _space_with(t, num_classes="data")]),
    ("image folder whose train/ and test/ classes differ", lambda t: ["sample", "--space-file", _space_with(t, num_classes="data"), "--data", _split_folders(t, ("cat", "owl"))]),
    ("search --wall-time 10x", lambda t: ["search", "--lut", L, "--wall-time", "10x", "--out", str(t / "r")]),
    ("plugins --options an unknown name", lambda t: ["plugins", "--options", "nope"]),
    # issue 49: the noise probe
    ("probe --seconds 0", lambda t: ["probe", "--seconds", "0"]),
    ("probe --seconds nan", lambda t: ["probe", "--seconds", "nan"]),
    ("probe --profiler an unknown name", lambda t: ["probe", "--profiler", "nope", "--seconds", "1"]),
    ("probe --space an unknown name", lambda t: ["probe", "--space", "nope", "--seconds", "1"]),
]


# The device agent (issue 47). Start-up options of `hwnas-agent serve`: refused in one line, exit 2.
def _agent_token(tmp: Path) -> str:
    p = Path(_token(tmp))
    p.chmod(0o600)
    return str(p)


def _fifo(tmp: Path) -> str:
    os.mkfifo(tmp / "fifo", 0o600)
    return str(tmp / "fifo")


def _serve(tmp: Path, *args: str) -> list[str]:
    """``hwnas-agent serve`` with ``args``, a private token and a work dir in ``tmp`` unless ``args`` give them."""
    argv = ["serve", "--port", "0", *args]
    if "--token-file" not in args:
        argv += ["--token-file", _agent_token(tmp)]
    if "--workdir" not in args:
        argv += ["--workdir", str(tmp / "work")]
    return argv


AGENT_CASES: list[tuple[str, Callable[[Path], list[str]]]] = [
    ("hwnas-agent serve --max-file-mb -1", lambda t: _serve(t, "--max-file-mb", "-1")),
    ("hwnas-agent serve --max-store-mb 0", lambda t: _serve(t, "--max-store-mb", "0")),
    ("hwnas-agent serve --idle-timeout nan", lambda t: _serve(t, "--idle-timeout", "nan")),
    ("hwnas-agent serve --idle-timeout -1", lambda t: _serve(t, "--idle-timeout", "-1")),
    ("hwnas-agent serve --handshake-timeout 0", lambda t: _serve(t, "--handshake-timeout", "0")),
    ("hwnas-agent serve --max-handshakes 0", lambda t: _serve(t, "--max-handshakes", "0")),
    ("hwnas-agent serve --token-file /dev/zero", lambda t: _serve(t, "--token-file", "/dev/zero")),
    ("hwnas-agent serve --token-file a FIFO", lambda t: _serve(t, "--token-file", _fifo(t))),
    ("hwnas-agent serve --token-file readable by others", lambda t: _serve(t, "--token-file", _token(t))),
    ("hwnas-agent serve --workdir a file", lambda t: _serve(t, "--workdir", _file(t))),
    ("hwnas-agent serve --port 99999", lambda t: _serve(t, "--port", "99999")),
]


def run_agent_case(argv_of: Callable[[Path], list[str]]) -> tuple[int, str]:
    """A case of :data:`AGENT_CASES` as a real ``python -m hwnas_agent`` process (bounded: 60 s, 4 GiB)."""
    import resource

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (4 << 30, 4 << 30))

    with tempfile.TemporaryDirectory(prefix="hwnas-bad-") as tmp:
        argv = argv_of(Path(tmp))
        r = subprocess.run([sys.executable, "-m", "hwnas_agent", *argv], capture_output=True, text=True,
                           cwd=ROOT / "agent", timeout=60, preexec_fn=limit)
        lines = [ln for ln in r.stderr.splitlines() if ln.strip()]  # all of them: the rule is one
        return r.returncode, "\n".join(lines) if lines else r.stdout.strip()


def agent_request_rows() -> list[tuple[str, str]]:
    """What a running agent answers to the bad requests of issue 47: (request, what happens). A real
    ``hwnas-agent serve`` on 127.0.0.1 with a 2 s handshake deadline and 3 places for connections logging in."""
    import socket
    import struct
    import time

    from hwnas_agent.client import AgentClient, AgentError
    from hwnas_agent.protocol import MAGIC, digest, recv

    rows = []
    with tempfile.TemporaryDirectory(prefix="hwnas-bad-") as tmp:
        t = Path(tmp)
        token = _agent_token(t)
        proc = subprocess.Popen([sys.executable, "-m", "hwnas_agent", *_serve(t, "--token-file", token,
                                                                             "--handshake-timeout", "2",
                                                                             "--max-handshakes", "3")],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT / "agent")
        try:
            port = int(proc.stdout.readline().split("127.0.0.1:")[1].split()[0])
            url = f"tcp://127.0.0.1:{port}"

            def frame(body: bytes) -> bytes:
                return MAGIC + struct.pack(">I", len(body)) + body

            def raw(body: bytes, login: bool) -> str:
                c = AgentClient(url, token).connect() if login else None
                s = c.sock if c else socket.create_connection(("127.0.0.1", port), timeout=10)
                if not login:
                    recv(s)
                s.sendall(frame(body))
                reply, _ = recv(s)
                closed = s.recv(1) == b""
                s.close()
                return f"{reply['error']}{' (connection closed)' if closed else ''}"

            deep = b"[" * 30_000 + b"]" * 30_000
            rows.append(("a JSON header nested 30,000 deep, before login", raw(deep, False)))
            rows.append(("a JSON header nested 30,000 deep, after login", raw(deep, True)))
            rows.append(('settings {"threads": 1e999}', raw(b'{"op":"time","sha256":"' + b"0" * 64
                                                            + b'","settings":{"threads":1e999}}', True)))
            data = b"\x08\x07" + b"0" * 64
            sha = digest(data)
            (t / "outside.onnx").write_bytes(data)
            os.utime(t / "outside.onnx", (1e9, 1e9))
            (t / "work" / "models" / f"{sha}.onnx").symlink_to(t / "outside.onnx")
            c = AgentClient(url, token).connect()
            have = c.request({"op": "has", "sha256": [sha]})["have"]
            timed = c.request({"op": "time", "sha256": sha, "settings": {}})["error"]
            touched = (t / "outside.onnx").stat().st_mtime != 1e9
            rows.append(("a model's name in the store a symbolic link to a file elsewhere",
                         f"has: {have}; time: {timed}; the file elsewhere "
                         + ("TOUCHED (its mtime changed)" if touched else "is not timed and its mtime is unchanged")))
            rows.append(('settings {"threads": 1e300} (a stored model)',
                         c.request({"op": "time", "sha256": c.upload(data), "settings": {"threads": 1e300}})["error"]))
            c.close()
            t0 = time.monotonic()
            silent = [socket.create_connection(("127.0.0.1", port), timeout=10) for _ in range(3)]
            for s in silent:
                recv(s)
            try:
                AgentClient(url, token).connect()
                busy = "logged in"
            except AgentError as e:
                busy = str(e).replace(url, "tcp://127.0.0.1:PORT")
            for s in silent:
                s.settimeout(10)
                s.recv(1)
                s.close()
            rows.append(("a 4th connection while 3 (--max-handshakes) have not logged in", busy))
            rows.append(("a connection that never logs in (or sends a byte a second)",
                         f"closed {time.monotonic() - t0:.1f} s after it connected (--handshake-timeout 2 here; "
                         f"default 10), holding no measuring slot meanwhile"))
        finally:
            proc.kill()
            proc.wait()
    rows.append(("a model file on a full disk", _full_disk_put()))
    return rows


def _full_disk_put() -> str:
    """A 256 KiB model file sent to an agent whose --workdir is a 128 KiB tmpfs (mounting needs root)."""
    from hwnas_agent.client import AgentClient, AgentError

    with tempfile.TemporaryDirectory(prefix="hwnas-bad-") as tmp:
        t = Path(tmp)
        disk = t / "disk"
        disk.mkdir()
        m = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=128k", "tmpfs", str(disk)], capture_output=True,
                           text=True)
        if m.returncode != 0:
            return f"(not run here: mounting a small tmpfs needs root: {m.stderr.strip()})"
        try:
            token = _agent_token(t)
            proc = subprocess.Popen([sys.executable, "-m", "hwnas_agent", *_serve(t, "--token-file", token,
                                                                                 "--workdir", str(disk / "work"))],
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT / "agent")
            try:
                port = int(proc.stdout.readline().split("127.0.0.1:")[1].split()[0])
                c = AgentClient(f"tcp://127.0.0.1:{port}", token).connect()
                try:
                    c.upload(b"\x08" + b"0" * 256 * 1024)
                    said = "stored"
                except AgentError as e:
                    said = str(e).split(": ", 1)[1].replace(str(disk), "DISK")
                left = [p.name for p in (disk / "work" / "models").iterdir()]
                alive = c.fingerprint() and "the connection goes on"
                c.close()
                return f"{said} ({'no temp file left' if not left else f'left: {left}'}; {alive})"
            finally:
                proc.kill()
                proc.wait()
        finally:
            subprocess.run(["umount", "-l", str(disk)], check=False)


def run_case(argv_of: Callable[[Path], list[str]]) -> tuple[int, str]:
    with tempfile.TemporaryDirectory(prefix="hwnas-bad-") as tmp:
        argv = argv_of(Path(tmp))
        r = subprocess.run([sys.executable, "-m", "hwnas", *argv], capture_output=True, text=True, cwd=ROOT,
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
    print_agent()
    return 0


def print_agent() -> None:
    import re

    print("\n## hwnas-agent serve\n")
    print("Its start-up options, each a real `python -m hwnas_agent serve ...` (`tests/test_bad_inputs.py` asserts "
          "every row: exit code 2, one line naming the option, no traceback):\n")
    print("| input | exit | message |\n|---|---|---|")
    for what, argv_of in AGENT_CASES:
        code, msg = run_agent_case(argv_of)
        msg = re.sub(r"/tmp/hwnas-bad-[^/\s'\"]+", "TMP", msg.replace("|", "\\|").replace("\n", " / "))
        print(f"| {what} | {code} | {msg} |", flush=True)
    print("\nBad requests to a running agent, on a real agent over 127.0.0.1 (`tests/test_agent_security.py` "
          "asserts each): every one is answered, and the agent serves on.\n")
    print("| request | what the agent does |\n|---|---|")
    for what, said in agent_request_rows():
        said = re.sub(r"/tmp/hwnas-bad-[^/\s'\"]+", "TMP", said.replace("|", "\\|"))
        print(f"| {what} | {said} |", flush=True)


if __name__ == "__main__":
    if sys.argv[1:] == ["--agent"]:  # only the agent's section (a minute, not the whole table's runs)
        print_agent()
        sys.exit(0)
    sys.exit(main())
