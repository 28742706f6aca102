"""The whole path: weights -> accuracy -> ONNX + parity -> .ort (+ int8) -> measured verdict -> the bundle."""
from __future__ import annotations

import platform
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from hwnas.core import jsonio
from hwnas.evaluate.scoring import accuracy
from hwnas.evaluate.train import train_arch
from hwnas.finalize.bundle import REPORT_FORMAT, bundle_files, check_out, publish, staging_dir
from hwnas.finalize.mobile import int8_checks, quant_settings_for, quantize_int8, to_ort_format
from hwnas.finalize.onnx_export import PARITY_ATOL, check_parity, export, onnx_accuracy
from hwnas.finalize.preprocess import embed_in_onnx, preprocessing_for, write_bundle_preprocessing
from hwnas.finalize.result import FinalizeResult
from hwnas.finalize.source import TRAIN_EPOCHS, check_lut_for_run, inherited_model, pick_record, resolve_lut
from hwnas.finalize.verdict import NOISY_ROBUST_CV, latency_verdict, measure_artifact
from hwnas.core.files import atomic_write_text
from hwnas.latency.lut import LUT, now_iso
from hwnas.search.runs import Run, read_run
from hwnas.search.records import SearchRecord
from hwnas.spaces.base import SpaceArch, layer_costs
from hwnas.profilers import ProfilerConfigError, capability, get_profiler_class


def finalize(run_dir: str | Path, out: str | Path, pick: str = "best", finetune_epochs: int = 0,
             train_epochs: int = TRAIN_EPOCHS,
             int8: bool = False, profiler: str | None = None, force: bool = False, processes: int = 2,
             checkpoint: str | Path | None = None, data: str | None = None, lut: str | Path | None = None,
             parity_images: int = 64, parity_atol: float = PARITY_ATOL, seed: int = 0, command: str | None = None,
             log: Any = print, accept_lut_change: bool = False, max_cv: float = NOISY_ROBUST_CV) -> FinalizeResult:
    """Build the bundle in a directory beside ``out`` and move it into place only when every step and
    check passed: a failure (parity, a measurement, Ctrl-C) leaves the old bundle, or nothing.

    ``train_epochs``: how long a pick is trained from scratch when the run has no supernet (early stopping on
    the validation split). ``accept_lut_change``: go on with a LUT whose content is not the one the run was searched with (refused
    otherwise, before any export); ``max_cv``: the robust CV over which a measurement is too noisy for a verdict
    (hwnas.finalize.verdict.decide)."""
    start = time.perf_counter()
    run = read_run(run_dir)
    record = pick_record(run, pick)
    arch = run.space.arch_from_dict(record.arch, source=f"arch {record.arch_id}")
    lut_obj = resolve_lut(run, lut)
    lut_match = check_lut_for_run(run, lut_obj, record, arch, accept_lut_change, log)
    check_profiler_precision(lut_obj, profiler or lut_obj.profiler)
    out = Path(out)
    check_out(out, force)
    log(f"finalizing arch {arch.id} (resolution {arch.resolution}, {arch.summary}) from {run.path}")
    with staging_dir(out, log) as stage:
        report = build_bundle(run, record, arch, lut_obj, stage, out, pick=pick, finetune_epochs=finetune_epochs,
                              train_epochs=train_epochs,
                              int8=int8, profiler_name=profiler or lut_obj.profiler, processes=processes,
                              checkpoint=checkpoint, data=data, parity_images=parity_images,
                              parity_atol=parity_atol, seed=seed, command=command, log=log, start=start,
                              lut_match=lut_match, max_cv=max_cv)
        publish(stage, out)
    return FinalizeResult(out, report)


def build_bundle(run: Run, record: SearchRecord, arch: SpaceArch, lut_obj: LUT, stage: Path, out: Path, *, pick: str,
                 finetune_epochs: int, int8: bool, profiler_name: str, processes: int, train_epochs: int,
                 checkpoint: str | Path | None, data: str | None, parity_images: int, parity_atol: float,
                 seed: int, command: str | None, log: Any, start: float,
                 lut_match: dict[str, Any] | None = None, max_cv: float = NOISY_ROBUST_CV) -> dict[str, Any]:
    """Every file of the bundle into ``stage`` (paths in the report name ``out``, where it will be);
    ``lut_match``: the LUT's content digest against the run's (``check_lut_for_run``), for the report."""
    from hwnas import __version__

    space = run.space
    model, splits, weights = inherited_model(run, arch, checkpoint, None, data, seed, train_epochs)
    ch = space.in_channels
    acc: dict[str, Any] = {"search_score": record.accuracy, "evaluator": run.config.get("evaluator")}
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
    pre = preprocessing_for(splits, arch, export_info["input"]["name"], export_info["output"]["name"])
    embed_in_onnx(onnx_path, pre)  # before the .ort and int8 files are made from it: they carry it too
    write_bundle_preprocessing(stage, pre)
    x_val, _ = splits.tensors("val", arch.resolution, ch)
    parity = check_parity(model, onnx_path, x_val[:parity_images], parity_atol)
    log(f"ONNX: checker and shape inference passed; parity on {parity['images']} validation images: "
        f"max |diff| {parity['max_abs_diff']:.2e}, top-1 agrees on all")
    acc["onnx_test"] = onnx_accuracy(onnx_path, splits, "test", arch)
    ort_path = to_ort_format(onnx_path, stage)
    ir_path, ir_info = None, None
    if _runs_openvino_ir(profiler_name) or _runs_openvino_ir(lut_obj.profiler):
        from hwnas.finalize.openvino_ir import check_ir_parity, export_ir

        ir_path, ir_info = export_ir(onnx_path, stage)
        ir_info["parity"] = check_ir_parity(model, ir_path, x_val[:parity_images], parity_atol)
        log(f"OpenVINO IR: {ir_path.name}/{ir_path.with_suffix('.bin').name}; parity on "
            f"{ir_info['parity']['images']} validation images: max |diff| {ir_info['parity']['max_abs_diff']:.2e}, "
            f"top-1 agrees on all")

    quant = None
    if lut_obj.precision == "int8":  # the search priced int8: the int8 model is what is judged and shipped
        q_path, q_ort, quant = _int8_model(onnx_path, stage, splits, arch, lut_obj, log)
        quant.update(target=True, measured=None,
                     note="the latency verdict above is this int8 model's (the LUT is int8)")
        latency, m, fingerprint_here = latency_verdict(lut_obj, profiler_name, arch, model, q_path, q_ort, out,
                                                       run.budget_ms, processes, log, margin=run.margin,
                                                       max_cv=max_cv)
    else:
        latency, m, fingerprint_here = latency_verdict(lut_obj, profiler_name, arch, model, onnx_path, ort_path,
                                                       out, run.budget_ms, processes, log, margin=run.margin,
                                                       max_cv=max_cv, ir_path=ir_path)
    if int8 and quant is None:
        q_path, _, quant = _int8_model(onnx_path, stage, splits, arch, lut_obj, log)
        quant["target"] = False
        if capability(get_profiler_class(profiler_name), "measures_onnx_files"):
            qm, *_ = measure_artifact(lut_obj, profiler_name, q_path, model, arch, processes, warn=False)
            quant["measured"] = qm.to_dict()
            quant["speedup_vs_fp32"] = m.median_ms / qm.median_ms
            log(f"int8: test accuracy {quant['test_accuracy']:.2f} % (fp32 {acc['onnx_test']:.2f} %), "
                f"measured {qm.median_ms:.3f} ms ({quant['speedup_vs_fp32']:.2f}x fp32)")
        else:
            quant["measured"] = None
            quant["note"] = f"{profiler_name} does not run ONNX files; finalize with --profiler ort-cpu to time it"

    layers = arch.layers()
    macs, params = layer_costs(layers)
    report = {
        "format": REPORT_FORMAT, "version": 1, "created": now_iso(),
        "run": str(run.path.resolve()), "pick": pick, "arch_id": arch.id, "arch": arch.to_dict(),
        "params_m": params / 1e6, "macs_m": macs / 1e6,
        "weights": weights, "data": splits.config(), "classes": list(pre.classes),
        "preprocess": "preprocess.json (also in every model's metadata, key hwnas.preprocess); predict.py applies it",
        "accuracy": acc, "onnx": export_info, "parity": parity, "openvino_ir": ir_info,
        "latency": latency, "int8": quant,
        "files": bundle_files(stage),
        "lut": {"path": str(lut_obj.path), "profiler": lut_obj.profiler, "fingerprint": lut_obj.fingerprint,
                "provenance": lut_obj.provenance or None, **(lut_match or {})},
        "fingerprint_here": fingerprint_here,
        "versions": {"hwnas": __version__, "python": platform.python_version(), "torch": torch.__version__,
                     **_versions()},
        "command": command or " ".join(sys.argv), "seconds": round(time.perf_counter() - start, 1),
    }
    from hwnas.finalize.report import write_bundle_report

    write_bundle_report(report, run, stage)
    report["files"] = bundle_files(stage)
    atomic_write_text(stage / "report.json", jsonio.dumps(report, indent=1, default=str))
    return report


def check_profiler_precision(lut: LUT, profiler_name: str) -> None:
    """Refuse, before any work, a profiler that cannot time the LUT's precision (torch profilers with an int8
    LUT): its measurement would be an fp32 one judged against an int8 prediction and budget."""
    from hwnas.measuring.precision import (BatchSizeMismatch, PrecisionMismatch, kinds_of, profiler_batch_sizes,
                                           profiler_precisions, takers)

    cls = get_profiler_class(profiler_name)
    if lut.precision != "fp32" and lut.precision not in profiler_precisions(cls):
        raise PrecisionMismatch(f"the LUT {lut.path} is {lut.precision} and profiler {profiler_name!r} times "
                                f"{kinds_of(cls, profiler_precisions(cls))} only; finalize with the LUT's profiler "
                                f"({lut.profiler}) or another that times {lut.precision} "
                                f"({takers('precision', lut.precision)})")
    if lut.batch_size != 1 and profiler_batch_sizes(cls) != "any":
        raise BatchSizeMismatch(f"the LUT {lut.path} is at batch {lut.batch_size} and profiler {profiler_name!r} "
                                f"times batch 1 only; finalize with the LUT's profiler ({lut.profiler}) or another "
                                f"that batches ({takers('batch_size')})")


def _int8_model(onnx_path: Path, stage: Path, splits: Any, arch: SpaceArch, lut: LUT,
                log: Any) -> tuple[Path, Path, dict[str, Any]]:
    """model.int8.onnx (quantized as the LUT says, calibrated on training images), its checks against the fp32
    model on the test split, and model.int8.ort (what ort-mobile runs)."""
    from hwnas.profilers.ort_mobile import int8_target

    settings = quant_settings_for(lut)
    q_path = stage / "model.int8.onnx"
    quant = quantize_int8(onnx_path, q_path, splits, arch, settings=settings)
    embed_in_onnx(q_path, preprocessing_for(splits, arch))  # whatever the quantizer kept of metadata_props
    quant.update(int8_checks(q_path, onnx_path, splits, arch))
    q_ort = to_ort_format(q_path, stage, "model.int8.ort", int8_target(settings.activations))
    log(f"int8: {settings.activations} activations, {settings.weights} weights per channel, reduce_range "
        f"{settings.reduce_range}; test accuracy {quant['test_accuracy']:.2f} % (fp32 {quant['fp32_test_accuracy']:.2f} "
        f"%, {quant['accuracy_delta_pct']:+.2f}), top-1 agrees with fp32 on {quant['top1_agreement_pct']:.1f} % of "
        f"{quant['test_images']} test images")
    return q_path, q_ort, quant


def _runs_openvino_ir(profiler_name: str) -> bool:
    """Whether the profiler runs OpenVINO IR (then finalize writes model.xml beside model.onnx); False for a
    LUT's profiler that is not installed here."""
    try:
        return capability(get_profiler_class(profiler_name), "measures_openvino_ir")
    except ProfilerConfigError:
        return False


def _versions() -> dict[str, str]:
    import onnx
    import onnxruntime

    return {"onnx": onnx.__version__, "onnxruntime": onnxruntime.__version__, "numpy": np.__version__}
