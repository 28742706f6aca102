"""hwnas/measuring/derive.py: a LUT for a space that differs by a few blocks (a new class count) measures only
those blocks, copies the rest, calibrates as a build does, and records its base; search and predict on a LUT that
lacks a few blocks name the exact command that fills them."""
import json
import shlex
import time

import numpy as np
import pytest

from hwnas.latency.lut import LUT, LUTError, content_digest, content_table, fingerprint_diff
from hwnas.measuring.derive import derive_lut
from hwnas.spaces.base import load_space_file

from conftest import ROOT, cli_here, run_cli

SHIPPED = ROOT / "luts" / "amd-epyc-avx512-2c_ort-cpu_demo.json"


def _space_file(tmp_path, **changes):
    d = json.loads((ROOT / "hwnas" / "spaces" / "demo.json").read_text())
    d.update(changes)
    path = tmp_path / f"{d['name']}.json"
    path.write_text(json.dumps(d))
    return path


def test_a_new_class_count_measures_only_the_head_and_records_its_base(demo_lut_path, tmp_path):
    space_file = _space_file(tmp_path, name="demo-3", num_classes=3)
    out = tmp_path / "d3.json"
    r = derive_lut(demo_lut_path, load_space_file(space_file), out, resolutions=[24], calibrate=False, processes=0,
                   progress=False, command="pytest")
    assert r.measured_keys == ("head:r2:i128:o3:m256:hswish",)
    base, lut = LUT.load(demo_lut_path), LUT.load(out)
    assert r.copied == len(lut.entries) - 1 == len(base.entries) - 1
    for key, entry in lut.entries.items():
        if key != r.measured_keys[0]:
            assert entry["median_ms"] == base.entries[key]["median_ms"]
    assert lut.derived["base"] == {**lut.derived["base"], "path": str(demo_lut_path),
                                   "digest": content_digest(content_table(base))}
    assert lut.derived["measured"] == list(r.measured_keys) and lut.space["num_classes"] == 3
    assert lut.settings["policy"] == base.settings["policy"]  # timed as the base was: one policy per LUT
    assert "1 measured here (head:r2:i128:o3:m256:hswish)" in r.lines()[0]
    again = derive_lut(demo_lut_path, load_space_file(space_file), out, resolutions=[24], calibrate=False,
                       processes=0, progress=False)
    assert again.build.measured == 0 and LUT.load(out).derived == lut.derived  # resumed: nothing measured twice


def test_derive_refusals(demo_lut_path, tmp_path):
    space = load_space_file(_space_file(tmp_path, name="demo-3", num_classes=3))
    same = load_space_file(ROOT / "hwnas" / "spaces" / "demo.json")
    with pytest.raises(LUTError, match="already a LUT of space 'demo'"):
        derive_lut(demo_lut_path, same, tmp_path / "x.json", progress=False)
    with pytest.raises(LUTError, match="is the base LUT"):
        derive_lut(demo_lut_path, space, demo_lut_path, progress=False)
    foreign = tmp_path / "foreign.json"
    d = json.loads(demo_lut_path.read_text())
    d["fingerprint"]["cpu_model"] = "Some Other CPU"
    foreign.write_text(json.dumps(d))
    with pytest.raises(LUTError, match="measured on another device.*cpu_model.*--transfer-from"):
        derive_lut(foreign, space, tmp_path / "y.json", progress=False)
    with pytest.raises(LUTError, match="timed with the full timing policy.*drop --quick"):
        derive_lut(SHIPPED, space, tmp_path / "z.json", quick=True, progress=False)
    other = tmp_path / "other.json"
    other.write_text(demo_lut_path.read_text())
    with pytest.raises(LUTError, match="not a LUT of space 'demo-3' derived from"):
        derive_lut(demo_lut_path, space, other, progress=False)


def test_cli_derive_flags_and_the_fill_command(demo_lut_path, tmp_path):
    space_file = _space_file(tmp_path, name="demo-3", num_classes=3)
    r = cli_here("profile", "--lut", str(demo_lut_path), "--space-file", str(space_file), "--transfer-from",
                 str(demo_lut_path), "--out", str(tmp_path / "x.json"))
    assert r.returncode == 2 and "--transfer-from does not go with --lut BASE" in r.stderr
    r = cli_here("profile", "--lut", str(demo_lut_path), "--out", str(tmp_path / "x.json"))
    assert r.returncode == 2 and "--space-file" in r.stderr
    # predict and search on the base name the derive, with this very space file
    r = cli_here("predict", "--lut", str(demo_lut_path), "--space-file", str(space_file), "--sample", "1",
                 "--resolution", "24")
    want = (f"hwnas profile --lut {demo_lut_path} --space-file {space_file} --resolutions 24 --out "
            f"{demo_lut_path.with_name(demo_lut_path.stem + '_demo-3.json')}")
    assert r.returncode == 2 and "no entry for 1 block(s)" in r.stderr and want in r.stderr, r.stderr
    r = cli_here("search", "--lut", str(demo_lut_path), "--space-file", str(space_file), "--out",
                 str(tmp_path / "run"), "--population", "4", "--generations", "1")
    assert r.returncode == 2 and f"hwnas profile --lut {demo_lut_path} --space-file {space_file} --out" in r.stderr
    # a full build into a LUT of another space says how to reuse it
    r = cli_here("profile", "--profiler", "torch-cpu", "--space-file", str(space_file), "--resolutions", "24",
                 "--quick", "--out", str(demo_lut_path))
    assert r.returncode == 2 and f"hwnas profile --lut {demo_lut_path} --space-file SPACE" in r.stderr


def test_num_classes_data_takes_the_class_count_of_the_data(tmp_path):
    space_file = _space_file(tmp_path, name="demo-data", num_classes="data")
    data = tmp_path / "three.npz"
    rng = np.random.default_rng(0)
    np.savez(data, x=rng.integers(0, 256, (30, 8, 8, 1), dtype=np.uint8), y=np.arange(30) % 3)
    r = cli_here("sample", "--space-file", str(space_file), "--data", str(data))
    assert r.returncode == 0 and json.loads(r.stdout)["space"] == "demo-data"
    from hwnas.evaluate.data import load_space_for_data

    assert load_space_for_data(space_file, str(data)).num_classes == 3
    r = cli_here("sample", "--space-file", str(space_file))
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "add --data DATA" in r.stderr, r.stderr


def _matches_here(lut: LUT) -> bool:
    from hwnas.measuring.measure import profiler_for

    try:
        return not fingerprint_diff(lut.fingerprint, profiler_for(lut).fingerprint())
    except Exception:  # the profiler cannot run here
        return False


@pytest.mark.slow
def test_a_three_class_demo_derived_from_the_shipped_lut_end_to_end(tmp_path):
    """The shipped demo LUT and a 3-class copy of its space: search names the derive, the derive measures the one
    head block and calibrates on 3-class networks, and the search then runs on the derived LUT."""
    base = LUT.load(SHIPPED)
    if not _matches_here(base):
        pytest.skip(f"{SHIPPED.name} was not measured on this kind of machine")
    space_file = _space_file(tmp_path, name="demo-3", num_classes=3)
    shipped = tmp_path / SHIPPED.name  # the derived LUT is written beside its base: here, not in luts/
    shipped.write_bytes(SHIPPED.read_bytes())
    r = run_cli("search", "--lut", str(shipped), "--space-file", str(space_file), "--out", str(tmp_path / "no"),
                "--population", "4", "--generations", "1")
    assert r.returncode == 2, r.stderr
    command = r.stderr.split("fill them with ")[1].strip()
    args = shlex.split(command)
    assert args[:4] == ["hwnas", "profile", "--lut", str(shipped)]
    out = args[args.index("--out") + 1]
    assert out.startswith(str(tmp_path))
    start = time.perf_counter()
    d = run_cli(*args[1:], "--calib-archs", "6", "--processes", "1", timeout=900)
    seconds = time.perf_counter() - start
    assert d.returncode == 0, d.stderr
    assert "127 blocks copied, 1 measured here (head:r2:i128:o3:m256:hswish)" in d.stdout, d.stdout
    lut = LUT.load(out)
    assert lut.derived["measured"] == ["head:r2:i128:o3:m256:hswish"] and lut.derived["copied"] == 127
    assert lut.calibration["complete"] and all(row["arch"]["space"] == "demo-3" for row in lut.calibration["data"])
    assert lut.reference is not None
    print(f"derive of a 3-class demo from {SHIPPED.name}: {seconds:.0f} s (1 block, 6 calibration networks)")
    s = run_cli("search", "--lut", out, "--space-file", str(space_file), "--out", str(tmp_path / "run"),
                "--population", "4", "--generations", "1")
    assert s.returncode == 0, s.stderr
