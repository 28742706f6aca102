"""Issue 28 items 10 and 12: an arch of another space kind is named as that, a LUT of another space gets advice that
works, and long lists are not echoed whole."""
import json
import os
import signal
import subprocess
import sys
import time

import pytest

from conftest import ROOT, cli_here
from hwnas.search import run_search
from hwnas.search.store import StoreError

LUTS = ROOT / "luts"
DEMO_LUT = str(LUTS / "amd-epyc-2c_ort-cpu_demo.json")
CELL_LUT = str(LUTS / "amd-epyc-2c_ort-cpu_cell-demo.json")
ARCH = {"space": "demo", "resolution": 24, "width": 1.0, "kernels": [[3], [3], [3], [3]],
        "expands": [[2], [2], [2], [2]]}


def _error(r, *says):
    err = [ln for ln in r.stderr.splitlines() if ln.strip() and not ln.startswith(("note:", "WARNING"))]
    assert r.returncode == 2 and len(err) == 1 and "internal error" not in err[0], r.stderr
    for s in says:
        assert s in err[0], (s, err[0])
    return err[0]


def _onnx(path, inputs=1, dynamic=False):
    import onnx
    from onnx import TensorProto, helper

    dims = ["N", 3, 8, 8] if dynamic else [1, 3, 8, 8]
    ins = [helper.make_tensor_value_info(f"x{i}", TensorProto.FLOAT, dims) for i in range(inputs)]
    out = helper.make_tensor_value_info("y", TensorProto.FLOAT, dims)
    node = helper.make_node("Relu", ["x0"], ["y"]) if inputs == 1 else helper.make_node("Add", ["x0", "x1"], ["y"])
    model = helper.make_model(helper.make_graph([node], "g", ins, [out]), opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return str(path)


# -- item 10 ------------------------------------------------------------------
def test_an_arch_of_the_other_kind_and_a_lut_of_another_space(tmp_path):
    cell = tmp_path / "cell.json"
    cell.write_text(json.dumps({"space": "cell-demo", "resolution": 16, "ops": ["none"] * 6}))
    _error(cli_here("predict", "--lut", DEMO_LUT, "--arch", str(cell)),
           "arch is for space 'cell-demo' (kind cell), not 'demo' (kind mbv3)")
    cell.write_text(json.dumps({"resolution": 16, "ops": ["none"] * 6}))
    _error(cli_here("predict", "--lut", DEMO_LUT, "--arch", str(cell)), "arch is for another kind of space")
    mb = tmp_path / "mb.json"
    mb.write_text(json.dumps(ARCH))
    _error(cli_here("predict", "--lut", CELL_LUT, "--arch", str(mb)),
           "arch is for space 'demo' (kind mbv3), not 'cell-demo' (kind cell)")
    # the LUT of another space: the advice builds a new LUT (profile refuses to mix spaces in one file)
    line = _error(cli_here("predict", "--lut", str(LUTS / "amd-epyc-2c_ort-cpu_mbv3.json"), "--space", "demo",
                           "--sample", "1"), "--space demo")
    assert line.rstrip().endswith("--out " + str(LUTS / "amd-epyc-2c_ort-cpu_mbv3_demo.json")), line


# -- item 12 ------------------------------------------------------------------
def test_long_lists_are_not_echoed_whole(tmp_path):
    space = json.loads((ROOT / "hwnas" / "spaces" / "demo.json").read_text())
    space["resolutions"] = list(range(16, 10016))
    path = tmp_path / "big.json"
    path.write_text(json.dumps(space))
    line = _error(cli_here("predict", "--lut", DEMO_LUT, "--space-file", str(path), "--sample", "1"),
                  "values must be from 8 to 4096, got [4097, 4098, 4099, 4100, 4101] and 5,914 more")
    assert len(line) < 300
    from hwnas.app.cli import _one_line

    capped = _one_line("x: got " + str(list(range(10_000))))
    assert capped == "x: got [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, … (10,000 values)]"
    assert _one_line(str(list(range(32)))) == str(list(range(32)))  # a list a user reads whole stays whole
    assert len(_one_line("y" * 100_000)) < 2000


