"""Issue 28 items 9, 11, 13 and 16: a file that is not what it must be (a model that is not ONNX, a symlink loop or a
directory where a file goes, JSON Lines, a supernet of another space) is named, with the fix; exit 2."""
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


# -- item 9 -------------------------------------------------------------------
def test_measure_names_what_is_wrong_with_the_users_model_file(tmp_path):
    from hwnas.measuring.modelfile import check_model_file

    good = _onnx(tmp_path / "good.onnx")
    assert check_model_file(good) == ("x0", (1, 3, 8, 8))
    text = tmp_path / "notes.onnx"
    text.write_text("not a model")
    cut = tmp_path / "cut.onnx"
    cut.write_bytes((tmp_path / "good.onnx").read_bytes()[:40])
    for path, says in ((text, "not a model ONNX Runtime can load"), (cut, "not a model ONNX Runtime can load"),
                       (_onnx(tmp_path / "two.onnx", inputs=2), "has 2 inputs ('x0', 'x1')"),
                       (_onnx(tmp_path / "dyn.onnx", dynamic=True), "input 'x0' has a dynamic shape ['N', 3, 8, 8]")):
        for profiler in ("ort-cpu", "ort-mobile"):
            _error(cli_here("measure", "--profiler", profiler, str(path)), f"{path}", says)


# -- items 11 and 16 ----------------------------------------------------------
def test_a_symlink_loop_or_a_directory_is_not_called_missing(tmp_path):
    loop = tmp_path / "loop.json"
    loop.symlink_to(loop)
    dangling = tmp_path / "gone.json"
    dangling.symlink_to(tmp_path / "nowhere.json")
    for lut in (loop, dangling, tmp_path):
        line = _error(cli_here("predict", "--lut", str(lut), "--sample", "1"))
        assert "does not exist; build it" not in line and "rebuild it" not in line, line
    _error(cli_here("predict", "--lut", str(loop), "--sample", "1"), "is a symbolic link that loops")
    _error(cli_here("predict", "--lut", str(dangling), "--sample", "1"), "is a symbolic link to", "nowhere.json")
    _error(cli_here("predict", "--lut", str(tmp_path), "--sample", "1"), "is a directory; expected a LUT")
    _error(cli_here("predict", "--lut", DEMO_LUT, "--arch", str(loop)), "is a symbolic link that loops")
    _error(cli_here("measure", "--profiler", "ort-cpu", str(tmp_path)), "is a directory; expected a model file")
    _error(cli_here("search", "--lut", DEMO_LUT, "--evaluator", "supernet", "--evaluator-option",
                    f"checkpoint={tmp_path}", "--out", str(tmp_path / "r")), "is a directory; expected a supernet")
    assert not (tmp_path / "r").exists()


def test_a_supernet_of_another_space_is_refused_naming_the_checkpoint(tiny_supernet, tmp_path):
    ckpt = str(tiny_supernet[0])
    line = _error(cli_here("search", "--lut", CELL_LUT, "--evaluator", "supernet", "--evaluator-option",
                           f"checkpoint={ckpt}", "--out", str(tmp_path / "r")),
                  f"{ckpt}: a supernet of space 'demo' (kind mbv3), but the search is over 'cell-demo' (kind cell)",
                  "hwnas supernet --space cell-demo")
    assert "arch " not in line.split(":", 2)[2][:40] and not (tmp_path / "r").exists()


# -- item 13 ------------------------------------------------------------------
def test_predict_reads_what_sample_writes(tmp_path):
    out = tmp_path / "three.jsonl"
    assert cli_here("sample", "--space", "demo", "--n", "3", "--out", str(out)).returncode == 0
    r = cli_here("predict", "--lut", DEMO_LUT, "--arch", str(out), "--json")
    assert r.returncode == 0, r.stderr
    assert len(json.loads(r.stdout)["predictions"]) == 3
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps(ARCH) + "\n{broken\n")
    _error(cli_here("predict", "--lut", DEMO_LUT, "--arch", str(bad)), f"{bad} line 2: not valid JSON")


