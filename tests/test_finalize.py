import json
import os
import shutil
import stat
import time

import numpy as np
import onnx
import pytest
import torch

from hwnas.finalize import FinalizeError, ParityError, check_parity, finalize, read_run
from hwnas.finalize.report import rerender


@pytest.fixture(scope="module")
def bundle(tiny_run, tmp_path_factory):
    out = tmp_path_factory.mktemp("dist") / "tiny"
    report = finalize(tiny_run, out, processes=0, int8=True, profiler="ort-cpu", command="pytest", log=lambda s: None)
    return out, report


def test_bundle_holds_checked_models_and_reports(bundle, tiny_run):
    out, r = bundle
    for name in ("model.onnx", "model.ort", "model.int8.onnx", "report.json", "report.md"):
        assert (out / name).is_file(), name
    model = onnx.load(str(out / "model.onnx"))
    onnx.checker.check_model(model, full_check=True)
    assert model.opset_import[0].version >= 17
    assert [i.name for i in model.graph.input] == ["input"] and [o.name for o in model.graph.output] == ["logits"]
    dims = [d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim]
    assert dims == [1, 3, r.report["arch"]["resolution"], r.report["arch"]["resolution"]]
    assert r.report["parity"]["max_abs_diff"] <= 1e-4 and r.report["parity"]["top1_agree"] == r.report["parity"]["images"]
    saved = json.loads((out / "report.json").read_text())
    assert saved["arch_id"] == r.arch_id and saved["command"] == "pytest"
    assert saved["run"] == str(tiny_run.resolve())
    front = json.loads((tiny_run / "front.json").read_text())["front"]
    assert r.arch_id == max(front, key=lambda x: (x["accuracy"], -x["latency_ms"]))["arch_id"]


def test_verdict_is_from_the_measured_median(bundle):
    _, r = bundle
    lat = r.report["latency"]
    m = lat["measured"]
    assert m["median_ms"] > 0 and m["p10_ms"] <= m["median_ms"] <= m["p90_ms"]
    assert lat["verdict"] == ("PASS" if m["median_ms"] <= lat["budget_ms"] else "FAIL")
    assert lat["profiler"] == "ort-cpu" and lat["predicted_ms"] is None  # the LUT is torch-cpu: not comparable
    assert "profiler" in lat["fingerprint_diff"]  # and the report says why
    assert "WARNING" in (bundle[0] / "report.md").read_text()


def test_accuracies_and_int8(bundle):
    _, r = bundle
    acc = r.report["accuracy"]
    assert 0 <= acc["test"] <= 100 and abs(acc["onnx_test"] - acc["test"]) <= 1.0
    q = r.int8
    assert q["format"] == "QDQ static" and q["measured"]["median_ms"] > 0 and 0 <= q["test_accuracy"] <= 100
    qmodel = onnx.load(str(bundle[0] / "model.int8.onnx"))
    assert any(n.op_type == "QuantizeLinear" for n in qmodel.graph.node)


def test_ort_file_runs_and_matches(bundle):
    import onnxruntime as ort

    out, r = bundle
    res = r.report["arch"]["resolution"]
    x = np.random.default_rng(0).standard_normal((1, 3, res, res)).astype(np.float32)
    a = ort.InferenceSession(str(out / "model.onnx"), providers=["CPUExecutionProvider"]).run(None, {"input": x})[0]
    b = ort.InferenceSession(str(out / "model.ort"), providers=["CPUExecutionProvider"]).run(None, {"input": x})[0]
    assert np.abs(a - b).max() < 1e-4


def _store_state(run_dir):
    db = run_dir / "run.sqlite"
    return db.read_bytes(), db.stat().st_mtime_ns, sorted(p.name for p in run_dir.iterdir())


def test_torch_profiler_measures_the_module(tiny_run, tmp_path):
    before = _store_state(tiny_run)
    r = finalize(tiny_run, tmp_path / "t", processes=0, log=lambda s: None)
    assert _store_state(tiny_run) == before  # the run store is read, never written (no -wal/-shm either)
    assert r.report["latency"]["measured_file"].startswith("the PyTorch module")
    lat = r.report["latency"]
    assert lat["profiler"] == "torch-cpu" and lat["predicted_ms"] is not None and not lat["fingerprint_diff"]
    assert "PyTorch module" in lat["measured_file"]
    # the stored median is rounded to 1 ns; the error was computed before rounding
    assert lat["prediction_error_pct"] == pytest.approx((lat["predicted_ms"] - lat["measured"]["median_ms"])
                                                        / lat["measured"]["median_ms"] * 100, abs=1e-2)


def _tree(folder):
    return {p.name: p.read_bytes() for p in folder.iterdir()}


def test_output_is_not_overwritten_without_force(bundle, tiny_run):
    out, _ = bundle
    before = _tree(out)
    with pytest.raises(FinalizeError, match="already holds files.*--force"):
        finalize(tiny_run, out, processes=0, log=lambda s: None)
    assert _tree(out) == before


def test_force_replaces_only_a_bundle(tiny_run, tmp_path):
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("not a bundle")
    with pytest.raises(FinalizeError, match="no finalize bundle.*--force replaces only a bundle"):
        finalize(tiny_run, mine, force=True, processes=0, log=lambda s: None)
    assert _tree(mine) == {"notes.txt": b"not a bundle"}


def test_a_failed_check_leaves_the_old_bundle_and_no_partial_one(bundle, tiny_run):
    out, _ = bundle
    before = _tree(out)
    with pytest.raises(ParityError, match="nothing was written as a final model"):  # a tolerance nothing meets
        finalize(tiny_run, out, force=True, processes=0, parity_atol=-1.0, log=lambda s: None)
    assert _tree(out) == before
    assert sorted(p.name for p in out.parent.iterdir()) == [out.name]  # no staging directory left beside it


def test_force_replaces_the_bundle_as_a_whole(tiny_run, tmp_path):
    out = tmp_path / "b"
    first = finalize(tiny_run, out, processes=0, log=lambda s: None)
    (out / "stale.onnx").write_bytes(b"from an older finalize")
    again = finalize(tiny_run, out, force=True, processes=0, log=lambda s: None)
    assert "stale.onnx" not in _tree(out) and set(again.files) == set(first.files)
    assert json.loads((out / "report.json").read_text())["created"] == again.report["created"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b"]
    mask = os.umask(0)
    os.umask(mask)
    assert stat.S_IMODE(out.stat().st_mode) == 0o777 & ~mask  # not mkdtemp's 0700


def test_bad_runs_give_clear_errors(tiny_run, tmp_path):
    with pytest.raises(FinalizeError, match="does not exist"):
        read_run(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FinalizeError, match="not a search run"):
        read_run(tmp_path / "empty")
    broken = tmp_path / "broken"
    shutil.copytree(tiny_run, broken)
    (broken / "run.sqlite").write_bytes(b"garbage" * 100)
    for f in broken.glob("run.sqlite-*"):
        f.unlink()
    with pytest.raises(FinalizeError, match="corrupt or unreadable"):
        read_run(broken)
    (broken / "run.sqlite").write_bytes(b"")  # what a search killed as it created the file leaves
    with pytest.raises(FinalizeError, match=r"empty \(0 bytes\).*incomplete run: rerun the search with --resume"):
        read_run(broken)
    assert (broken / "run.sqlite").stat().st_size == 0
    with pytest.raises(FinalizeError, match="arch 'ffffffffffff' is not in run"):
        finalize(tiny_run, tmp_path / "x", pick="ffffffffffff", processes=0, log=lambda s: None)
    assert not (tmp_path / "x").exists()


def test_missing_checkpoint(tiny_run, tmp_path):
    with pytest.raises(FinalizeError, match="supernet checkpoint .* is missing"):
        finalize(tiny_run, tmp_path / "y", checkpoint=tmp_path / "gone.pt", processes=0, log=lambda s: None)


def test_parity_failure_stops(bundle, tiny_run):
    out, r = bundle
    from hwnas.finalize import inherited_model, read_run, pick_record

    run = read_run(tiny_run)
    rec = pick_record(run)
    arch = run.space.arch_from_dict(rec.arch)
    model, splits, _ = inherited_model(run, arch, None, None, None)
    x = splits.tensors("val", arch.resolution, 3)[0][:4]
    check_parity(model, out / "model.onnx", x)  # the true model passes
    with torch.no_grad():
        model.blocks[-1].classifier.bias.add_(0.01)  # a different model no longer does
    with pytest.raises(ParityError, match="ONNX output differs from PyTorch"):
        check_parity(model, out / "model.onnx", x)


def test_report_rerenders(bundle, tiny_run):
    out, _ = bundle
    (out / "report.md").unlink()
    paths = rerender(out)
    assert (out / "report.md").is_file() and "arch `" in (out / "report.md").read_text()
    assert paths[0] == out / "report.md"
    rerender(tiny_run)
    text = (tiny_run / "report.md").read_text()
    assert "predicted" in text and "| arch |" in text


def test_pareto_png_is_drawn(bundle):
    pytest.importorskip("matplotlib")
    png = bundle[0] / "pareto.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 5000
    assert "![front](pareto.png)" in (bundle[0] / "report.md").read_text()


def test_best_json_and_pick_best_agree_also_on_a_tie(tiny_run, tmp_path):
    """One rule (hwnas.search.pareto.best_record) for best.json, --pick best and the report: a tie in accuracy and
    latency is decided by arch_id, whatever order the front lists the archs in."""
    from dataclasses import replace

    from hwnas.finalize import pick_record
    from hwnas.search.runs import Run
    from hwnas.search.pareto import best_record

    run = read_run(tiny_run)
    best_json = json.loads((tiny_run / "best.json").read_text())["best"]
    assert best_json["arch_id"] == pick_record(run).arch_id == best_record(run.front).arch_id
    assert best_json == pick_record(run).to_dict()
    top = pick_record(run)
    twin = replace(top, arch_id="0" * len(top.arch_id))  # the same scores under another id
    slower = replace(top, arch_id="f" * len(top.arch_id), latency_ms=top.latency_ms + 1)
    for front in ([top, twin, slower], [slower, twin, top], [twin, slower, top]):
        tied = Run(tmp_path, run.config, front, {}, [])
        assert best_record(front) is pick_record(tied)  # what the search writes to best.json is what finalize takes
        assert pick_record(tied).arch_id == max(top.arch_id, twin.arch_id)


def test_the_verdict_spreads_its_processes_over_a_span(quick_policy):
    """A busy spell of the host can outlast a pair of processes: the verdict keeps measuring (here real
    in-process timings of a real block) until its measurements span the time asked, and keeps the lowest."""
    from dataclasses import asdict

    from hwnas.spaces.blocks import LayerDesc
    from hwnas.finalize.verdict import _calm, verdict_span_s
    from hwnas.profilers import create_profiler

    assert verdict_span_s({}) == 15.0 and verdict_span_s({"policy": asdict(quick_policy)}) == pytest.approx(1.5)
    profiler = create_profiler("torch-cpu", policy=quick_policy)
    desc = LayerDesc.from_key("conv:r28:i3:o8:k3:s1:none")
    seen = []

    def measure(n):
        ms = [profiler.measure(desc.build(), desc.input_shape) for _ in range(n)]
        seen.extend(ms)
        return min(ms, key=lambda m: m.median_ms)

    t = time.perf_counter()
    best = _calm(measure, 2, cv_threshold=1.0, span_s=0.5, max_processes=50)
    assert time.perf_counter() - t >= 0.5 and len(seen) > 2
    assert best.median_ms == min(m.median_ms for m in seen)
    seen.clear()
    _calm(measure, 2, cv_threshold=1.0, span_s=0.0)
    assert len(seen) == 2  # no span asked: the pair (and its agreement rule) only
