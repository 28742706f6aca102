"""Issue 28 items 14, 15 and 17: resume and interrupt advice that works, the train evaluator's options checked before
the search, a population larger than the space refused and a large search's cost said."""
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


# -- item 14 ------------------------------------------------------------------
def test_resume_with_a_strategy_option_the_run_began_without_says_drop_it(tmp_path):
    out = tmp_path / "r"
    kw = dict(evaluator="proxy:synflow", population=6, seed=0, progress=False)
    run_search(DEMO_LUT, out, generations=1, **kw)
    with pytest.raises(StoreError, match=r"began with strategy options mutate_prob=None.*To continue it exactly, "
                                         r"drop --strategy-option mutate_prob=0\.05 \(the run began without it\)"):
        run_search(DEMO_LUT, out, generations=2, resume=True, strategy_options={"mutate_prob": 0.05}, **kw)


def test_supernet_resume_names_the_setting_that_differs(tiny_supernet, demo):
    from dataclasses import replace

    from hwnas.evaluate.supernet import CheckpointError, train_supernet

    path, cfg, _ = tiny_supernet
    with pytest.raises(CheckpointError, match=r"other settings \(epochs 3 in the checkpoint, 4 now\); resume with "
                                              r"the same ones"):
        train_supernet(demo, path, replace(cfg, epochs=4), resume=True, device="cpu", progress=False)


@pytest.mark.slow
def test_an_interrupted_search_says_add_resume(tmp_path):
    out = tmp_path / "r"
    proc = subprocess.Popen([sys.executable, "-m", "hwnas", "search", "--lut", DEMO_LUT, "--population", "8",
                             "--generations", "100000", "--out", str(out)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, cwd=ROOT,
                            # a background job (CI's nohup ... &) inherits SIGINT ignored, and Python then never raises
                            # KeyboardInterrupt: the search rightly ran on. Undo that, as a terminal's Ctrl-C finds it
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.monotonic() + 300
    while not (out / "run.lock").is_file() or (out / "run.lock").read_text() != f"{proc.pid}\n":
        assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read().decode()[-2000:]
        time.sleep(0.05)
    time.sleep(1.0)
    os.kill(proc.pid, signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130 and "add --resume to the same command to continue" in err.decode(), err


# -- item 15 ------------------------------------------------------------------
@pytest.mark.parametrize("option, says", [("max_epochs=0", "train max_epochs= must be a whole number >= 1, got 0"),
                                          ("batch_size=0", "train batch_size= must be a whole number >= 1"),
                                          ("lr=-1", "train lr= must be a finite number > 0"),
                                          ("epochs=0", "its options: data")])
def test_the_train_evaluator_checks_its_options_before_the_search(tmp_path, option, says):
    _error(cli_here("search", "--lut", DEMO_LUT, "--evaluator", "train", "--evaluator-option", option,
                    "--population", "4", "--generations", "1", "--out", str(tmp_path / "r")), says)
    assert not (tmp_path / "r").exists()


# -- item 17 ------------------------------------------------------------------
def test_a_population_larger_than_the_space_is_refused_and_a_large_search_says_its_cost(tmp_path, capsys):
    _error(cli_here("search", "--lut", CELL_LUT, "--population", "100000", "--generations", "1",
                    "--out", str(tmp_path / "r")),
           "--population 100,000 is more than the 15,625 archs space 'cell-demo' holds")
    assert not (tmp_path / "r").exists()
    from hwnas.search.run import check_population
    from hwnas.spaces.base import get_space

    check_population(get_space("cell-demo"), 2000, 6)
    assert "note: up to 12,000 evaluations" in capsys.readouterr().err


# -- issue 47 -----------------------------------------------------------------
def test_a_search_on_a_lut_of_overflowing_numbers_names_the_field_not_coverage(tmp_path):
    """Entries of 1e308 each pass a finite check, but any arch's sum is inf: the search said "the LUT does not
    cover this architecture ... Fill it with ...". The LUT file and its field are named instead, before any work."""
    data = json.loads((LUTS / "amd-epyc-2c_ort-cpu_demo.json").read_text())
    for e in data["entries"].values():
        e["median_ms"] = 1e308
    lut = tmp_path / "lut.json"
    lut.write_text(json.dumps(data))
    line = _error(cli_here("search", "--lut", str(lut), "--population", "4", "--generations", "1",
                           "--out", str(tmp_path / "r")), str(lut), "median_ms=1e+308", "at most")
    assert "cover" not in line and "Fill" not in line
    assert not (tmp_path / "r").exists()


def test_the_evaluation_cap_holds_before_the_proposals_are_made(tmp_path, capsys):
    """`--population 100000 --max-evaluations 5` proposed the whole first generation, one arch at a time, before
    evaluating any (minutes), and its note said "up to 2,000,000 evaluations". The strategy now makes no more
    proposals than can be evaluated (its stored state has seen 2 archs, not the population), and the note counts
    the cap."""
    from hwnas.search.run import check_population
    from hwnas.search.store import RunStore
    from hwnas.spaces.base import get_space

    for strategy in ("nsga2", "random"):
        out = tmp_path / strategy
        r = cli_here("search", "--lut", DEMO_LUT, "--evaluator", "proxy:synflow", "--strategy", strategy,
                     "--population", "3000", "--max-evaluations", "2", "--out", str(out))
        assert r.returncode == 0, r.stderr
        assert "stopped: 2 evaluations reached (--max-evaluations)" in r.stdout
        store = RunStore(out / "run.sqlite")
        try:
            gen, state = store.last_generation()
        finally:
            store.close()
        assert gen == 0 and len(state["seen"]) == 2, (strategy, len(state["seen"]))
    check_population(get_space("demo"), 100_000, 100_000, max_evaluations=5)
    assert "note" not in capsys.readouterr().err
    check_population(get_space("demo"), 100_000, 20, max_evaluations=20_000)
    assert "note: up to 20,000 evaluations (--max-evaluations" in capsys.readouterr().err


def test_search_data_none_means_data_free_as_score_s_does(demo_lut_path, tmp_path):
    r = cli_here("search", "--lut", str(demo_lut_path), "--evaluator", "proxy:macs", "--data", "none",
                 "--population", "4", "--generations", "1", "--out", str(tmp_path / "run"))
    assert r.returncode in (0, 1), r.stderr
    assert "data" not in json.loads((tmp_path / "run" / "best.json").read_text())["config"]
    r = cli_here("search", "--lut", str(demo_lut_path), "--evaluator", "proxy:naswot", "--data", "none",
                 "--population", "4", "--generations", "1", "--out", str(tmp_path / "run2"))
    assert r.returncode == 2 and "--data" in r.stderr and not (tmp_path / "run2").exists()
