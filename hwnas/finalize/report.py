"""Human-readable reports: report.md and pareto.png for a finalize bundle or a search run.

Everything is rendered from files on disk (report.json, the run's store), so
``hwnas report`` can redraw them at any time. Predicted and measured latencies
always carry their label.
"""
from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator, Sequence

from hwnas.core import jsonio
from hwnas.core.errors import InputError
from hwnas.core.files import atomic_write, atomic_write_text

if TYPE_CHECKING:
    from hwnas.search.records import SearchRecord


def plot_front(path: Path, evaluated: Sequence[SearchRecord], front: Sequence[SearchRecord],
               budget_ms: float | None, pick: tuple[str, float, float] | None = None,
               measured_ms: float | None = None, title: str = "") -> str | None:
    """Draw the front, and the ``pick`` (arch id, latency ms, accuracy) as a star; returns None when drawn,
    else why not (matplotlib missing)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return "matplotlib is not installed (pip install 'hwnas[plot]')"
    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=110)
    if evaluated:
        ax.scatter([r.latency_ms for r in evaluated], [r.accuracy for r in evaluated], s=8, c="0.75",
                   label=f"evaluated ({len(evaluated)})")
    if front:
        f = sorted(front, key=lambda r: r.latency_ms)
        ax.plot([r.latency_ms for r in f], [r.accuracy for r in f], "o-", c="tab:blue", ms=4,
                label=f"front ({len(f)})")
    if budget_ms is not None:
        ax.axvline(budget_ms, c="tab:red", ls="--", label=f"budget {budget_ms:g} ms")
    if pick is not None:
        pick_id, pick_ms, pick_acc = pick
        ax.scatter([pick_ms], [pick_acc], marker="*", s=220, c="gold", edgecolors="k",
                   zorder=5, label=f"pick {pick_id} (predicted)")
        if measured_ms is not None:
            ax.scatter([measured_ms], [pick_acc], marker="D", s=60, c="tab:green", edgecolors="k",
                       zorder=5, label=f"pick measured {measured_ms:.3f} ms")
    ax.set_xlabel("latency, ms (predicted from the LUT)")
    ax.set_ylabel("accuracy (search evaluator)")
    ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    try:
        atomic_write(path, lambda f: fig.savefig(f, format="png"))  # never half a picture over the old one
    finally:
        plt.close(fig)
    return None


LABELS = {"latency_ms": "latency, ms (predicted from the LUT)", "params_m": "parameters, M", "macs_m": "MACs, M",
          "memory_mb": "peak activation memory, MB (fp32)"}
LIMITS = {"latency_ms": "budget_ms", "params_m": "max_params_m", "macs_m": "max_macs_m", "memory_mb": "max_memory_mb"}


def plot_projections(path: Path, evaluated: Sequence[SearchRecord], front: Sequence[SearchRecord],
                     objectives: Sequence[str], constraints: dict[str, Any], pick: SearchRecord | None = None,
                     title: str = "", measured_ms: float | None = None, pick_label: str = "best") -> str | None:
    """A front of more than two objectives, drawn as its 2-D projections: accuracy against each cost, one
    panel each, points only (a front point may look dominated in one panel: it is better in another, so no line
    joins them). ``pick`` as a star (``pick_label``), its ``measured_ms`` as a diamond on the latency panel.
    None when drawn."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return "matplotlib is not installed (pip install 'hwnas[plot]')"
    fig = projections_figure(plt, evaluated, front, objectives, constraints, pick, title, measured_ms, pick_label)
    try:
        atomic_write(path, lambda f: fig.savefig(f, format="png"))
    finally:
        plt.close(fig)
    return None


def projections_figure(plt: Any, evaluated: Sequence[SearchRecord], front: Sequence[SearchRecord],
                       objectives: Sequence[str], constraints: dict[str, Any], pick: SearchRecord | None = None,
                       title: str = "", measured_ms: float | None = None, pick_label: str = "best") -> Any:
    """The figure of :func:`plot_projections` (``plt``: matplotlib.pyplot), not yet saved."""
    costs = [o for o in objectives if o != "accuracy"]
    fig, axes = plt.subplots(1, len(costs), figsize=(4.2 * len(costs), 4.2), dpi=110, sharey=True, squeeze=False)
    for ax, o in zip(axes[0], costs):
        if evaluated:
            ax.scatter([getattr(r, o) for r in evaluated], [r.accuracy for r in evaluated], s=8, c="0.75",
                       label=f"evaluated ({len(evaluated)})")
        if front:
            ax.scatter([getattr(r, o) for r in front], [r.accuracy for r in front], s=16, c="tab:blue",
                       label=f"front in {len(objectives)} objectives ({len(front)})")
        limit = constraints.get(LIMITS.get(o, ""))
        if limit is not None:
            ax.axvline(limit, c="tab:red", ls="--", label=f"limit {limit:g}")
        if pick is not None:
            ax.scatter([getattr(pick, o)], [pick.accuracy], marker="*", s=220, c="gold", edgecolors="k", zorder=5,
                       label=f"{pick_label} {pick.arch_id}" + (" (predicted)" if o == "latency_ms" else ""))
            if measured_ms is not None and o == "latency_ms":
                ax.scatter([measured_ms], [pick.accuracy], marker="D", s=60, c="tab:green", edgecolors="k",
                           zorder=5, label=f"{pick_label} measured {measured_ms:.3f} ms")
        ax.set_xlabel(LABELS.get(o, o))
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="lower right")
    axes[0][0].set_ylabel("accuracy (search evaluator)")
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return fig


def _ms(v: float | None) -> str:
    return "—" if v is None else f"{v:.3f} ms"


def lut_change_note(path: Any, digest: Any, table: Any = None) -> str | None:
    """What differs when the LUT at ``path`` no longer has the content ``digest`` it had (None when it still
    has, or nothing can be compared: no digest recorded, the file gone or unreadable)."""
    from hwnas.latency.lut import LUT, content_digest, content_table, describe_change

    if not digest or not path or not Path(path).is_file():
        return None
    try:
        now = content_table(LUT.load(path))
    except (InputError, OSError):
        return None
    if content_digest(now) == digest:
        return None
    return f"the LUT {path} changed since ({describe_change(table, now)}; content digest {digest} then, " \
           f"{content_digest(now)} now)"


def render_bundle_md(r: dict[str, Any], png_note: str | None = None) -> str:
    lat, acc, m = r["latency"], r["accuracy"], r["latency"]["measured"]
    verdict = lat["verdict"]
    if verdict == "PASS":
        line = f"**PASS** — measured median {m['median_ms']:.3f} ms is within the budget of {lat['budget_ms']:g} ms"
    elif verdict == "FAIL":
        line = (f"**FAIL** — measured median {m['median_ms']:.3f} ms is over the budget of {lat['budget_ms']:g} ms "
                f"by {lat['gap_ms']:.3f} ms ({lat['gap_ms'] / lat['budget_ms'] * 100:.1f} %)")
    elif verdict == "UNCERTAIN":
        u = lat.get("uncertain") or {}
        line = (f"**UNCERTAIN** — measured median {m['median_ms']:.3f} ms against the budget of "
                f"{lat['budget_ms']:g} ms, but the measurement was too noisy to decide, twice: "
                f"{'; '.join(u.get('spread') or [])}. What to do: {u.get('advice')}.")
    else:
        line = f"no latency budget was set; measured median {m['median_ms']:.3f} ms"
    out = [f"# hwnas finalize report — arch `{r['arch_id']}`", "", line, ""]
    if lat.get("below_budget"):
        from hwnas.finalize.result import below_budget_line

        text = below_budget_line(lat["budget_ms"], lat["below_budget"])
        out += [text[0].upper() + text[1:] + ".", ""]
    lut = r.get("lut") or {}
    if lut.get("matches_run") is False:
        out += [f"> **WARNING: finalized with a LUT that is not the one the run was searched with** (content digest "
                f"`{lut.get('digest')}`, the run's `{lut.get('run_digest')}`, --accept-lut-change): the predicted "
                f"latency below is this LUT's, not the search's.", ""]
    if lat.get("drift") and lat["drift"]["exceeds_noise"]:
        out += [f"> **WARNING: the device's speed drifted {lat['drift']['pct']:+.1f} % since the LUT was built**, "
                f"more than the LUT's own noise: part of the prediction error is the device, not the LUT "
                f"(see the corrected error below).", ""]
    if lat["fingerprint_diff"]:
        out += ["> **WARNING: measured on a different device/profiler than the LUT was built on** — measured and "
                "predicted latencies are not comparable:", ">"]
        out += [f"> - {k}: LUT `{v[0]}` vs here `{v[1]}`" for k, v in lat["fingerprint_diff"].items()] + [""]
    out += ["## Latency", "", "| | value |", "|---|---|",
            f"| profiler | {lat['profiler']} (settings of the LUT) |",
            f"| precision | {lat.get('precision', 'fp32')} (the LUT's) |",
            f"| measured file | {lat['measured_file']} |",
            f"| **measured** median | {m['median_ms']:.3f} ms |",
            f"| measured p10 / p90 | {m['p10_ms']:.3f} / {m['p90_ms']:.3f} ms |",
            f"| measured CV, samples | {m['cv'] * 100:.1f} %, n={m['n']} |",
            f"| **predicted** (LUT{', ' + r['lut']['provenance'] if (r.get('lut') or {}).get('provenance') else ''}) "
            f"| {_ms(lat['predicted_ms'])} |"]
    if lat["prediction_error_pct"] is not None:
        out.append(f"| prediction error (raw) | {lat['prediction_error_pct']:+.1f} % |")
    drift = lat.get("drift")
    if drift:
        out.append(f"| prediction error, corrected for drift | {lat['prediction_error_drift_corrected_pct']:+.1f} % |")
        out.append(f"| drift since the LUT was built | {drift['describe']} |")
    out.append(f"| budget | {_ms(lat['budget_ms'])} (the verdict uses the raw measured median) |")
    if lat.get("first_measurement"):
        f = lat["first_measurement"]
        out.append(f"| first measurement (too noisy, repeated) | median {f['median_ms']:.3f} ms, p10 / p90 "
                   f"{f['p10_ms']:.3f} / {f['p90_ms']:.3f} ms, CV {f['cv'] * 100:.1f} % |")
    out += ["", "## Accuracy", "", "| | % |", "|---|---|",
            f"| search score ({acc['evaluator']}) | {acc['search_score']:.2f} |",
            f"| validation, {_weights_said(r['weights'])} | {acc['val_inherited']:.2f} |"]
    if "val_finetuned" in acc:
        out.append(f"| validation after {r['weights'].get('finetune_epochs')} fine-tuning epoch(s) | "
                   f"{acc['val_finetuned']:.2f} |")
    out += [f"| **test** (held out, {acc['test_images']} images, PyTorch) | {acc['test']:.2f} |",
            f"| test, ONNX Runtime | {acc['onnx_test']:.2f} |", ""]
    q = r.get("int8")
    if q:
        out += ["## int8", "", f"{q['format']}, activations {q['activations']}, weights {q['weights']}, "
                f"reduce_range {q['reduce_range']}, calibrated on {q['calibration_images']} training images.", "",
                "| | fp32 | int8 |", "|---|---|---|",
                f"| test accuracy | {q['fp32_test_accuracy']:.2f} % | {q['test_accuracy']:.2f} % |"]
        if "top1_agreement_pct" in q:
            out.append(f"| top-1 agreement with fp32 ({q['test_images']} test images) | | "
                       f"{q['top1_agreement_pct']:.1f} % |")
        if q.get("measured"):
            out.append(f"| measured median | {m['median_ms']:.3f} ms | {q['measured']['median_ms']:.3f} ms "
                       f"({q['speedup_vs_fp32']:.2f}x) |")
        elif q.get("note"):
            out.append(f"| latency | | {q['note']} |")
        out.append("")
    p = r["parity"]
    out += ["## Model", "",
            _describe_arch(r),
            f"- {r['params_m']:.3f} M parameters, {r['macs_m']:.1f} M MACs",
            f"- weights: {r['weights']['source']}",
            f"- ONNX opset {r['onnx']['opset']}, input `{r['onnx']['input']['name']}` {r['onnx']['input']['shape']}, "
            f"output `{r['onnx']['output']['name']}` {r['onnx']['output']['shape']}; {r['onnx']['checker']}; "
            f"shape inference passed",
            f"- parity with PyTorch on {p['images']} validation images: max |diff| {p['max_abs_diff']:.2e} "
            f"(tolerance {p['tolerance']:g}), top-1 agrees on {p['top1_agree']}/{p['images']}",
            f"- files: {', '.join(r['files'])}", "", *_using_it(r),
            "## How it was made", "",
            f"- command: `{r['command']}`", f"- run: `{r['run']}`",
            f"- LUT: `{r['lut']['path']}` ({r['lut']['profiler']})",
            f"- data: {r['data']['data']} (split seed {r['data']['split_seed']}, sizes train/val/test "
            f"{r['data']['sizes']})",
            f"- versions: " + ", ".join(f"{k} {v}" for k, v in r["versions"].items()),
            f"- created {r['created']} in {r['seconds']} s", ""]
    out.append("![front](pareto.png)" if png_note is None else f"(pareto.png not drawn: {png_note})")
    return "\n".join(out) + "\n"


def _weights_said(weights: dict[str, Any]) -> str:
    """What the first accuracy row measured: weights inherited from a supernet, or a training from scratch."""
    if weights.get("source") == "supernet":
        return "weights inherited from the supernet"
    return f"trained from scratch ({weights.get('epochs', '?')} epochs)"


def _using_it(r: dict[str, Any]) -> list[str]:
    """How to feed the model (bundles from before preprocess.json have no such section)."""
    if "classes" not in r:
        return []
    classes = r["classes"]
    shown = ", ".join(f"{i} `{c}`" for i, c in enumerate(classes[:20])) + (" ..." if len(classes) > 20 else "")
    return ["## Using it", "",
            "- `python predict.py IMAGE.png` classifies image files (onnxruntime, numpy and Pillow only)",
            "- the preprocessing (scale to 0..1, the training split's per-channel mean/std, bilinear resize to the "
            "input size) and the class names are in `preprocess.json` and in every model's metadata "
            "(key `hwnas.preprocess`)",
            f"- output index → class: {shown}", ""]


def write_bundle_report(report: dict[str, Any], run: Any, out: Path) -> None:
    """report.md and pareto.png: a front of 2 objectives as a line, of more as points in 2-D projections (a line
    through a 3-objective front projected on accuracy-latency zigzags: its points are not ordered there)."""
    measured = report["latency"]["measured"]["median_ms"]
    objectives = run.config.get("objectives") or ["accuracy", "latency_ms"]
    title = f"{run.path.name}: {report['latency']['profiler']}, pick {report['arch_id']}"
    if len(objectives) > 2:
        note = plot_projections(out / "pareto.png", list(run.evals.values()), run.front, objectives,
                                run.config.get("constraints", {}), run.evals.get(report["arch_id"]),
                                title=f"{title}; front in {len(objectives)} objectives, 2-D projections",
                                measured_ms=measured, pick_label="pick")
    else:
        pick = (report["arch_id"], report["latency"]["predicted_ms"] if report["latency"]["predicted_ms"] is not None
                else measured, report["accuracy"]["search_score"])
        note = plot_front(out / "pareto.png", list(run.evals.values()), run.front, run.budget_ms, pick, measured,
                          title=title)
    atomic_write_text(out / "report.md", render_bundle_md(report, note))


def render_run_md(run: Any) -> str:
    c = run.config
    objectives = c.get("objectives") or ["accuracy", "latency_ms"]
    front = sorted(run.front, key=lambda r: r.latency_ms)
    out = [f"# hwnas search run `{run.path.name}`", "",
           f"- LUT: `{c['lut']}` ({c.get('lut_profiler')}{', ' + c['lut_provenance'] if c.get('lut_provenance') else ''}); "
           f"latencies below are **predicted**",
           f"- space: {c['space']['name']}; evaluator: {c['evaluator']}; strategy {c['strategy']}, "
           f"population {c['population']}, seed {c['seed']}",
           f"- constraints: {jsonio.dumps(c.get('constraints', {}))}",
           f"- objectives: {', '.join(objectives)}" + (
               " (the front is non-dominated in all of them; best: the most accurate, then the fastest)"
               if len(objectives) > 2 else ""),
           f"- {len(run.evals)} archs evaluated; front of {len(front)}"]
    stopped = getattr(run, "stopped", None)
    if stopped:
        out.append(f"- stopped: {stopped.get('message')}")
    outside = getattr(run, "outside", None)
    if outside and outside.get("total"):
        out.append("- evaluations outside the constraints: " + ", ".join(
            f"{k} {v} ({outside['after_first_generation'].get(k, 0)} after the first generation)"
            for k, v in outside["total"].items()))
    memory = "memory_mb" in objectives
    out += [f"- commands: " + "; ".join(f"`{x}`" for x in run.commands), "",
            "| arch | accuracy | predicted latency | params (M) | MMACs |" + (" memory (MB) |" if memory else ""),
            "|---|---|---|---|---|" + ("---|" if memory else "")]
    out += [f"| `{r.arch_id}` | {r.accuracy:.3f} | {r.latency_ms:.3f} ms | {r.params_m:.3f} | "
            f"{r.macs_m:.1f} |" + (f" {r.memory_mb:.3f} |" if memory else "") for r in front]
    return "\n".join(out) + "\n"


REPORT_KEYS = ("run", "arch_id", "arch", "latency", "accuracy", "parity", "onnx", "weights", "data", "files",
               "params_m", "macs_m", "lut", "versions", "command", "created", "seconds")


def rerender(path: str | Path) -> list[Path]:
    """Re-render report.md and pareto.png of a finalize bundle (has report.json) or a search run."""
    from hwnas.finalize.source import FinalizeError
    from hwnas.search.runs import read_run

    path = Path(path)
    bundle = path / "report.json"
    if bundle.is_file():
        report = jsonio.loads_file(bundle, FinalizeError, "a finalize report")
        if not isinstance(report, dict) or report.get("format") != "hwnas-finalize-report":
            raise FinalizeError(f"{bundle} is not an hwnas finalize report")
        missing = [k for k in REPORT_KEYS if k not in report]
        if missing:
            raise FinalizeError(f"{bundle} lacks {missing}: it is not a complete hwnas finalize report (edited, or "
                                f"from another version); run finalize again")
        try:  # a field of the wrong shape (a "lut" that is not an object, say) is refused as the file's fault
            changed = lut_change_note((report.get("lut") or {}).get("path"), (report.get("lut") or {}).get("digest"))
            if changed:
                print(f"WARNING: {changed}; the report shows the LUT as finalize read it", file=sys.stderr)
            write_bundle_report(report, read_run(report["run"]), path)
        except (KeyError, TypeError, ValueError, AttributeError) as e:  # a field inside has the wrong shape
            if isinstance(e, InputError):
                raise
            raise FinalizeError(f"{bundle}: a field has an unexpected shape ({type(e).__name__}: {e}); the file "
                                f"was edited or is from another version: run finalize again") from None
        return [path / "report.md", path / "pareto.png"]
    run = read_run(path)
    from hwnas.search.pareto import best_record

    changed = lut_change_note(run.config.get("lut"), run.config.get("lut_digest"), run.lut_table)
    if changed:
        print(f"WARNING: {changed}: the latencies of the report are the search's predictions, not this LUT's",
              file=sys.stderr)

    best = best_record(run.front)
    pick = (best.arch_id, best.latency_ms, best.accuracy) if best is not None else None
    objectives = run.config.get("objectives") or ["accuracy", "latency_ms"]
    if len(objectives) > 2:
        note = plot_projections(path / "pareto.png", list(run.evals.values()), run.front, objectives,
                                run.config.get("constraints", {}), best,
                                title=f"{path.name}: search front in {len(objectives)} objectives, 2-D projections")
    else:
        note = plot_front(path / "pareto.png", list(run.evals.values()), run.front, run.budget_ms, pick,
                          title=f"{path.name}: search front (predicted latency)")
    made = _front_file(path)
    run.stopped, run.outside = made.get("stopped"), made.get("outside_constraints")
    warning = (f"\n> **WARNING: {changed}**: the predicted latencies above are the search's, not this LUT's.\n"
               if changed else "")
    atomic_write_text(path / "report.md", render_run_md(run) + warning + ("\n![front](pareto.png)\n" if note is None
                                                                  else f"\n(pareto.png not drawn: {note})\n"))
    return [path / "report.md", path / "pareto.png"]


def _front_file(path: Path) -> dict[str, Any]:
    """front.json's run-level keys (why the run stopped, its evaluations outside the constraints); {} when
    the run is from before they were written."""
    import json

    try:
        made = json.loads((path / "front.json").read_text())
    except (OSError, ValueError):
        return {}
    return made if isinstance(made, dict) else {}


def _describe_arch(r: dict) -> str:
    """The arch's line, as its kind describes it (``arch.describe()``): the space is the run's (a bundle names
    its run) or the shipped space of that name; a bundle whose run and space are both gone lists the fields."""
    a = r["arch"]
    for space in _spaces_of(r):
        try:
            return "- " + space.arch_from_dict(a).describe()
        except InputError:
            continue
    return "- " + ", ".join(f"{k} {v}" for k, v in a.items() if k != "space")


def _spaces_of(r: dict) -> Iterator[Any]:
    from hwnas.search.runs import read_run
    from hwnas.spaces.base import get_space

    for find in (lambda: read_run(r["run"]).space, lambda: get_space(r["arch"].get("space", ""))):
        try:
            yield find()
        except (InputError, OSError, KeyError):
            continue
