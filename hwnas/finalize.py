"""Finalize a search: the chosen arch as ONNX that is checked, proven equal to PyTorch, and measured.

``finalize(run_dir, out)``: inherited supernet weights (optionally fine-tuned) ->
test accuracy -> ONNX (opset 17, fixed shape, checker with full_check, shape
inference) -> parity with PyTorch on real validation images -> ORT-format model
-> optional static int8 (QDQ) -> latency MEASURED with the LUT's own profiler and
settings -> a PASS/FAIL verdict against the budget, and the bundle on disk.
"""
from __future__ import annotations

import json
import os
import platform
import shutil
import sqlite3
import sys
import tempfile
import time
import warnings
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import torch
from torch import nn

from hwnas import jsonio
from hwnas.errors import CheckFailed, InputError
from hwnas.evaluate.data import Splits, load_data
from hwnas.evaluate.supernet import CheckpointError, accuracy, load_supernet, recalibrate_bn
from hwnas.evaluate.train import train_arch
from hwnas.lut import LUT, atomic_write_text, current_umask, fsync_dir, now_iso
from hwnas.predict import latency_predictor
from hwnas.profiling import retry_while_noisy
from hwnas.space import Arch, Space, space_from_dict
from hwnas.store import RunStore, StoreError

OPSET = 17
PARITY_ATOL = 1e-4


class FinalizeError(InputError):
    """Bad input to finalize (run directory, pick, checkpoint, output directory)."""


class ParityError(CheckFailed):
    """The exported ONNX model does not compute what the PyTorch model computes."""

    code = 1  # a check failed (CLI exit code)


# -- reading a run ---------------------------------------------------------------
@dataclass
class Run:
    path: Path
    config: dict[str, Any]
    front: list[dict[str, Any]]
    evals: dict[str, dict[str, Any]]
    commands: list[str]

    @property
    def space(self) -> Space:
        return space_from_dict(self.config["space"], source=f"{self.path}: space")

    @property
    def budget_ms(self) -> float | None:
        return self.config.get("constraints", {}).get("budget_ms")


def read_run(run_dir: str | Path) -> Run:
    path = Path(run_dir)
    if not path.is_dir():
        raise FinalizeError(f"run directory {str(path)!r} does not exist; run `hwnas search ... --out {path}` first")
    db = path / "run.sqlite"
    if not db.is_file():
        raise FinalizeError(f"{path} is not a search run (no run.sqlite); give the --out directory of `hwnas search`")
    try:
        store = RunStore(db, readonly=True)  # a reader never writes the run it reads
        try:
            store.require_complete()
            config = store.get_meta("config")
            evaluator = (config or {}).get("evaluator")
            evals = store.evals(evaluator) if evaluator else {}
            commands = store.get_meta("commands") or []
        finally:
            store.close()
    except StoreError as e:  # incomplete, empty, corrupt
        raise FinalizeError(str(e)) from None
    except (sqlite3.DatabaseError, ValueError) as e:  # damaged past its table list, or its JSON
        raise FinalizeError(f"{db}: the run store is corrupt or unreadable ({e}); run the search again") from None
    if not isinstance(config, dict) or "space" not in config or "lut" not in config:
        raise FinalizeError(f"{db} has no complete run configuration; the run directory is damaged")
    front_file = path / "front.json"
    front: list[dict[str, Any]] = []
    if front_file.is_file():
        try:
            front = json.loads(front_file.read_text())["front"]
        except (ValueError, KeyError, TypeError) as e:
            raise FinalizeError(f"{front_file} is corrupt ({e}); `hwnas search ... --resume` rewrites it") from None
    return Run(path, config, front, evals, commands)


def pick_record(run: Run, pick: str = "best") -> dict[str, Any]:
    """``best``: the most accurate feasible arch of the front; otherwise an arch id from the run."""
    if pick == "best":
        if not run.front:
            raise FinalizeError(f"{run.path}: the front is empty (no architecture met every constraint); "
                                f"relax the constraints and search again, or --pick an ARCH_ID from the run")
        return max(run.front, key=lambda r: (r["accuracy"], -r["latency_ms"], r["arch_id"]))
    for r in run.front:
        if r["arch_id"] == pick:
            return r
    if pick in run.evals:
        return run.evals[pick]
    ids = ", ".join(r["arch_id"] for r in run.front[:10])
    raise FinalizeError(f"arch {pick!r} is not in run {run.path} ({len(run.evals)} archs evaluated); "
                        f"front: {ids or 'empty'}")


def resolve_lut(run: Run, lut: str | Path | None) -> LUT:
    candidates = [Path(lut)] if lut else [Path(run.config["lut"]), run.path / Path(run.config["lut"]).name]
    for c in candidates:
        if c.is_file():
            return LUT.load(c)
    raise FinalizeError(f"the run's LUT {run.config['lut']!r} was not found; pass it with --lut")


# -- weights -------------------------------------------------------------------------
def inherited_model(run: Run, arch: Arch, checkpoint: str | Path | None, splits: Splits | None,
                    data: str | None, seed: int = 0) -> tuple[nn.Module, Splits, dict[str, Any]]:
    """The arch with the supernet's weights (BN recalibrated); or trained from scratch when the run
    has no supernet (e.g. a proxy search) and none is given."""
    ev_cfg = run.config.get("evaluator_config", {})
    ckpt = checkpoint or ev_cfg.get("checkpoint")
    if ckpt:
        if not Path(ckpt).is_file():
            raise FinalizeError(f"the supernet checkpoint {str(ckpt)!r} is missing; pass another with --checkpoint, "
                                f"or train it again with `hwnas supernet`")
        try:
            net, blob = load_supernet(ckpt)
        except CheckpointError as e:
            raise FinalizeError(str(e)) from None
        trained_on = blob["config"]["data"]
        splits = splits or load_data(data or trained_on, blob["config"]["split_seed"],
                                     limit=blob["config"].get("data_limit") if (data or trained_on) == trained_on
                                     else None)
        net.check(arch)
        ch = arch.space.in_channels
        recalibrate_bn(net, lambda x: net(x, arch), splits, arch.resolution, ch, batches=4, seed=seed)
        model = net.extract(arch).eval()
        return model, splits, {"source": "supernet", "checkpoint": str(Path(ckpt).resolve()),
                               "supernet_epochs": blob["epochs_done"]}
    searched_on = ev_cfg.get("data", "digits")
    splits = splits or load_data(data or searched_on, ev_cfg.get("split_seed", 0),
                                 limit=ev_cfg.get("data_limit") if (data or searched_on) == searched_on else None)
    r = train_arch(arch, splits, max_epochs=12, patience=3, seed=seed)
    return r.model, splits, {"source": "trained from scratch (the run used no supernet)",
                             "epochs": r.epochs_run}


# -- ONNX ------------------------------------------------------------------------------
def export(model: nn.Module, arch: Arch, path: Path) -> dict[str, Any]:
    import onnx

    shape = (1, arch.space.in_channels, arch.resolution, arch.resolution)
    with tempfile.TemporaryDirectory() as tmp:
        raw = Path(tmp) / "raw.onnx"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(model.eval(), (torch.zeros(*shape),), str(raw), opset_version=OPSET, dynamo=False,
                              input_names=["input"], output_names=["logits"])
        proto = onnx.load(str(raw))
    onnx.checker.check_model(proto, full_check=True)
    inferred = onnx.shape_inference.infer_shapes(proto, check_type=True, strict_mode=True)
    onnx.save(inferred, str(path))
    out_dims = [d.dim_value for d in inferred.graph.output[0].type.tensor_type.shape.dim]
    return {"opset": OPSET, "input": {"name": "input", "shape": list(shape)},
            "output": {"name": "logits", "shape": out_dims}, "checker": "onnx.checker full_check passed",
            "bytes": path.stat().st_size}


def ort_session(path: Path, threads: int = 1):
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.log_severity_level = 3
    return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])


def ort_predict(sess, x: torch.Tensor) -> np.ndarray:
    inputs = sess.get_inputs()  # none when the output ignores the input (a cell network with no path)
    feed = (lambda i: {inputs[0].name: x[i:i + 1].numpy()}) if inputs else (lambda i: {})
    return np.concatenate([sess.run(None, feed(i))[0] for i in range(len(x))])


def check_parity(model: nn.Module, onnx_path: Path, x: torch.Tensor, atol: float = PARITY_ATOL) -> dict[str, Any]:
    """ONNX Runtime vs PyTorch on real images: max |diff| <= atol and the same top-1 for every image."""
    with torch.no_grad():
        ref = model.eval()(x).numpy()
    got = ort_predict(ort_session(onnx_path), x)
    diff = float(np.abs(ref - got).max())
    same_top1 = int((ref.argmax(1) == got.argmax(1)).sum())
    result = {"images": len(x), "max_abs_diff": diff, "tolerance": atol, "top1_agree": same_top1}
    if diff > atol or same_top1 != len(x):
        raise ParityError(f"ONNX output differs from PyTorch on {len(x)} validation images: max |diff| {diff:.3g} "
                          f"(tolerance {atol:g}), top-1 agrees on {same_top1}/{len(x)}. The export is wrong; "
                          f"nothing was written as a final model")
    return result


def onnx_accuracy(path: Path, splits: Splits, part: str, arch: Arch) -> float:
    x, y = splits.tensors(part, arch.resolution, arch.space.in_channels)
    pred = ort_predict(ort_session(path), x).argmax(1)
    return 100.0 * float((pred == y.numpy()).mean())


def to_ort_format(onnx_path: Path, out: Path) -> Path:
    from profilers.ort_mobile import convert_to_ort

    with tempfile.TemporaryDirectory(prefix="hwnas-ort-") as tmp:
        made = convert_to_ort(onnx_path, Path(tmp))
        target = out / "model.ort"
        target.write_bytes(made.read_bytes())
    return target


def has_vnni() -> bool:
    from profilers._host import cpu_flags

    return any(f in cpu_flags() for f in ("avx512_vnni", "avx_vnni", "amx_int8"))


def quantize_int8(onnx_path: Path, out_path: Path, splits: Splits, arch: Arch, n_calib: int = 128) -> dict[str, Any]:
    """Static QDQ int8 calibrated on training images. Without VNNI: uint8 activations, int8 weights,
    reduce_range (avoids the saturation of 8-bit products on AVX2)."""
    from onnxruntime.quantization import (CalibrationDataReader, QuantFormat, QuantType, quantize_static)
    from onnxruntime.quantization.shape_inference import quant_pre_process

    x, _ = splits.tensors("train", arch.resolution, arch.space.in_channels)
    calib = x[:n_calib].numpy()

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.it = iter(calib[i:i + 1] for i in range(len(calib)))

        def get_next(self):
            batch = next(self.it, None)
            return None if batch is None else {"input": batch}

    reduce_range = not has_vnni()
    with tempfile.TemporaryDirectory() as tmp:
        pre = Path(tmp) / "pre.onnx"
        quant_pre_process(str(onnx_path), str(pre), skip_symbolic_shape=True)
        quantize_static(str(pre), str(out_path), Reader(), quant_format=QuantFormat.QDQ,
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8, per_channel=True,
                        reduce_range=reduce_range)
    return {"format": "QDQ static", "activations": "uint8", "weights": "int8 per-channel",
            "reduce_range": reduce_range, "calibration_images": len(calib), "bytes": out_path.stat().st_size}


# -- measuring ------------------------------------------------------------------------------
def measure_artifact(lut: LUT, profiler_name: str, path: Path, model: nn.Module, arch: Arch,
                     processes: int, shown_as: Path | None = None) -> tuple[Any, str, dict[str, Any], dict[str, Any]]:
    """Measure with the LUT's profiler and settings; ORT profilers time the file, torch ones the module.

    Returns (measurement, what was timed, fingerprint fields differing from the LUT's, this fingerprint);
    what was timed names ``shown_as`` (where the file will be) when given."""
    from hwnas.isolate import measure_isolated
    from hwnas.measure import lut_profiler_options, profiler_for, warn_if_foreign

    options = lut_profiler_options(lut)
    profiler = (profiler_for(lut, **options) if profiler_name == lut.profiler
                else _named_profiler(profiler_name, lut, **options))
    diff = warn_if_foreign(lut, profiler)
    if hasattr(profiler, "measure_onnx"):
        what = str(shown_as or path)
        if processes > 0:
            m = _calm(lambda n: measure_isolated(profiler_name, options, "file", [str(path)], passes=n)[0], processes)
        else:
            m = profiler.measure_onnx(path)
    else:
        what = "the PyTorch module the ONNX file was exported from"
        state = path.with_name("model.pt")
        torch.save(model.state_dict(), state)
        if processes > 0:
            m = _calm(lambda n: measure_isolated(profiler_name, options, "module", [(str(state), arch.to_dict())],
                                                 space_dict=arch.space.to_dict(), passes=n)[0], processes)
        else:
            m = profiler.measure(model, (1, arch.space.in_channels, arch.resolution, arch.resolution))
    return m, what, {k: list(v) for k, v in diff.items()}, profiler.fingerprint()


def drift_of_prediction(lut: LUT, predicted: float | None, measured_ms: float, processes: int,
                        log: Any) -> dict[str, Any]:
    """Re-measure the LUT's reference networks: how much of the prediction error is the device's change of speed.

    Only when the prediction is comparable (same profiler) and measuring happens in fresh processes.
    """
    from hwnas.drift import NO_REFERENCE, check_drift
    from hwnas.measure import lut_profiler_options

    if predicted is None or processes <= 0:
        return {"drift": None, "prediction_error_drift_corrected_pct": None}
    drift = check_drift(lut, lut_profiler_options(lut))
    if drift is None:
        log(NO_REFERENCE)
        return {"drift": None, "prediction_error_drift_corrected_pct": None}
    fixed = drift.correct(measured_ms)
    log(f"drift: {drift.describe()}")
    if drift.warning():
        log(drift.warning())
    return {"drift": drift.to_dict(), "prediction_error_drift_corrected_pct": (predicted - fixed) / fixed * 100}


def _calm(measure: Any, processes: int, cv_threshold: float = 0.05, retries: int = 2) -> Any:
    """The LUT's rule for the verdict's number: lowest median of ``processes`` fresh processes, then one more
    process at a time while the robust CV is over ``cv_threshold`` (seen here: the same file 0.110 ms in one
    process, 0.208 ms in the next, on a shared host)."""
    return retry_while_noisy(measure(processes), lambda: measure(1), cv_threshold, retries)[0]


def _named_profiler(name: str, lut: LUT, **options: Any):
    from profilers import ProfilerUnavailable, create_profiler

    p = create_profiler(name, **{"threads": lut.settings.get("threads", 1), **options})
    reason = p.availability()
    if reason:
        raise ProfilerUnavailable(f"profiler {name!r} is unavailable here: {reason}")
    return p


# -- the bundle directory ----------------------------------------------------------------------
REPORT_FORMAT = "hwnas-finalize-report"


def is_bundle(path: Path) -> bool:
    """A directory ``hwnas finalize`` made (its report.json says so)."""
    try:
        return json.loads((path / "report.json").read_text()).get("format") == REPORT_FORMAT
    except (OSError, ValueError, AttributeError):
        return False


def check_out(out: Path, force: bool) -> None:
    """Refuse before any work. --force replaces a bundle as a whole, so it must be one: anything
    else in --out is the user's, not ours to delete."""
    if out.exists() and not out.is_dir():
        raise FinalizeError(f"--out {out} is a file; a bundle is a directory: choose another --out")
    if not out.exists() or not any(out.iterdir()):
        return
    if not force:
        raise FinalizeError(f"{out} already holds files; choose another --out, or add --force to replace the bundle")
    if not is_bundle(out):
        raise FinalizeError(f"{out} holds files but no finalize bundle (no hwnas report.json); --force replaces "
                            f"only a bundle made by `hwnas finalize`: choose another --out, or empty it yourself")


@contextmanager
def staging_dir(out: Path) -> Iterator[Path]:
    """A new directory beside ``out`` (same file system, so publishing is a rename), with the mode a
    plain mkdir would give; removed unless :func:`publish` moved it into place."""
    out.parent.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".partial", dir=out.parent))
    try:
        stage.chmod(0o777 & ~current_umask())  # mkdtemp makes 0700
        yield stage
    finally:
        shutil.rmtree(stage, ignore_errors=True)


def publish(stage: Path, out: Path) -> None:
    """Put the finished bundle at ``out`` with one rename. An old bundle is renamed aside first and deleted
    only once the new one is in place; if the second rename fails, the old one is put back."""
    for f in stage.iterdir():
        _fsync_file(f)
    fsync_dir(stage)
    old = None
    if out.exists() and any(out.iterdir()):
        old = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".old", dir=out.parent))
        os.replace(out, old)  # onto the empty directory mkdtemp made
    try:
        os.replace(stage, out)  # onto nothing, or an empty directory
    except BaseException:
        if old is not None:
            os.replace(old, out)
        raise
    fsync_dir(out.parent)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def _fsync_file(path: Path) -> None:
    if path.is_file():
        with open(path, "rb") as f:
            os.fsync(f.fileno())


# -- the whole path ---------------------------------------------------------------------------
def finalize(run_dir: str | Path, out: str | Path, pick: str = "best", finetune_epochs: int = 0,
             int8: bool = False, profiler: str | None = None, force: bool = False, processes: int = 2,
             checkpoint: str | Path | None = None, data: str | None = None, lut: str | Path | None = None,
             parity_images: int = 64, parity_atol: float = PARITY_ATOL, seed: int = 0, command: str | None = None,
             log: Any = print) -> dict[str, Any]:
    """Build the bundle in a directory beside ``out`` and move it into place only when every step and
    check passed: a failure (parity, a measurement, Ctrl-C) leaves the old bundle, or nothing."""
    start = time.perf_counter()
    run = read_run(run_dir)
    record = pick_record(run, pick)
    arch = run.space.arch_from_dict(record["arch"], source=f"arch {record['arch_id']}")
    lut_obj = resolve_lut(run, lut)
    out = Path(out)
    check_out(out, force)
    log(f"finalizing arch {arch.id} (resolution {arch.resolution}, {arch.summary}) from {run.path}")
    with staging_dir(out) as stage:
        report = build_bundle(run, record, arch, lut_obj, stage, out, pick=pick, finetune_epochs=finetune_epochs,
                              int8=int8, profiler_name=profiler or lut_obj.profiler, processes=processes,
                              checkpoint=checkpoint, data=data, parity_images=parity_images,
                              parity_atol=parity_atol, seed=seed, command=command, log=log, start=start)
        publish(stage, out)
    return report


def build_bundle(run: Run, record: dict[str, Any], arch: Arch, lut_obj: LUT, stage: Path, out: Path, *, pick: str,
                 finetune_epochs: int, int8: bool, profiler_name: str, processes: int,
                 checkpoint: str | Path | None, data: str | None, parity_images: int, parity_atol: float,
                 seed: int, command: str | None, log: Any, start: float) -> dict[str, Any]:
    """Every file of the bundle into ``stage`` (paths in the report name ``out``, where it will be)."""
    from hwnas import __version__

    space = run.space
    model, splits, weights = inherited_model(run, arch, checkpoint, None, data, seed)
    ch = space.in_channels
    acc: dict[str, Any] = {"search_score": record["accuracy"], "evaluator": run.config.get("evaluator")}
    acc["val_inherited"] = accuracy(model, splits, "val", arch.resolution, ch)
    if finetune_epochs > 0:
        log(f"fine-tuning {finetune_epochs} epoch(s) ...")
        model = train_arch(arch, splits, max_epochs=finetune_epochs, patience=finetune_epochs, lr=0.01,
                           seed=seed, model=model).model
        weights["finetune_epochs"] = finetune_epochs
        acc["val_finetuned"] = accuracy(model, splits, "val", arch.resolution, ch)
    model.eval()
    acc["test"] = accuracy(model, splits, "test", arch.resolution, ch)
    acc["test_images"] = len(splits.test)
    log(f"accuracy: val {acc.get('val_finetuned', acc['val_inherited']):.2f} %, test {acc['test']:.2f} % "
        f"({len(splits.test)} held-out images)")

    onnx_path = stage / "model.onnx"
    export_info = export(model, arch, onnx_path)
    x_val, _ = splits.tensors("val", arch.resolution, ch)
    parity = check_parity(model, onnx_path, x_val[:parity_images], parity_atol)
    log(f"ONNX: checker and shape inference passed; parity on {parity['images']} validation images: "
        f"max |diff| {parity['max_abs_diff']:.2e}, top-1 agrees on all")
    acc["onnx_test"] = onnx_accuracy(onnx_path, splits, "test", arch)
    ort_path = to_ort_format(onnx_path, stage)

    predicted = latency_predictor(lut_obj, space).predict(arch) if profiler_name == lut_obj.profiler else None
    measured_on = ort_path if profiler_name == "ort-mobile" else onnx_path
    log(f"measuring {measured_on.name} with {profiler_name} ({max(processes, 1)} process(es)) ...")
    m, what, diff, fingerprint_here = measure_artifact(lut_obj, profiler_name, measured_on, model, arch, processes,
                                                       shown_as=out / measured_on.name)
    budget = run.budget_ms
    verdict = "NO BUDGET" if budget is None else ("PASS" if m.median_ms <= budget else "FAIL")  # raw, never corrected
    latency = {"profiler": profiler_name, "measured_file": what, "measured": m.to_dict(),
               "predicted_ms": predicted, "budget_ms": budget, "verdict": verdict,
               "prediction_error_pct": None if predicted is None else (predicted - m.median_ms) / m.median_ms * 100,
               "gap_ms": None if budget is None else m.median_ms - budget, "fingerprint_diff": diff,
               **drift_of_prediction(lut_obj, predicted, m.median_ms, processes, log)}

    quant = None
    if int8:
        q_path = stage / "model.int8.onnx"
        quant = quantize_int8(onnx_path, q_path, splits, arch)
        quant["test_accuracy"] = onnx_accuracy(q_path, splits, "test", arch)
        quant["fp32_test_accuracy"] = acc["onnx_test"]
        if profiler_name in ("ort-cpu", "ort-mobile"):
            qm, *_ = measure_artifact(lut_obj, profiler_name, q_path, model, arch, processes)
            quant["measured"] = qm.to_dict()
            quant["speedup_vs_fp32"] = m.median_ms / qm.median_ms
            log(f"int8: test accuracy {quant['test_accuracy']:.2f} % (fp32 {acc['onnx_test']:.2f} %), "
                f"measured {qm.median_ms:.3f} ms ({quant['speedup_vs_fp32']:.2f}x fp32)")
        else:
            quant["measured"] = None
            quant["note"] = f"{profiler_name} does not run ONNX files; finalize with --profiler ort-cpu to time it"

    layers = arch.layers()
    report = {
        "format": REPORT_FORMAT, "version": 1, "created": now_iso(),
        "run": str(run.path.resolve()), "pick": pick, "arch_id": arch.id, "arch": arch.to_dict(),
        "params_m": sum(d.params for d in layers) / 1e6, "macs_m": sum(d.macs for d in layers) / 1e6,
        "weights": weights, "data": splits.config(), "accuracy": acc, "onnx": export_info, "parity": parity,
        "latency": latency, "int8": quant,
        "files": _files(stage),
        "lut": {"path": str(lut_obj.path), "profiler": lut_obj.profiler, "fingerprint": lut_obj.fingerprint},
        "fingerprint_here": fingerprint_here,
        "versions": {"hwnas": __version__, "python": platform.python_version(), "torch": torch.__version__,
                     **_versions()},
        "command": command or " ".join(sys.argv), "seconds": round(time.perf_counter() - start, 1),
    }
    from hwnas.report import write_bundle_report

    write_bundle_report(report, run, stage)
    report["files"] = _files(stage)
    atomic_write_text(stage / "report.json", jsonio.dumps(report, indent=1, default=str))
    return report


def _files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.is_file() and not p.name.startswith("."))


def _versions() -> dict[str, str]:
    import onnx
    import onnxruntime

    return {"onnx": onnx.__version__, "onnxruntime": onnxruntime.__version__, "numpy": np.__version__}
