"""Offline device bundles: a LUT of a device hwnas cannot reach over the network.

``export_bundle`` writes every block of the space, the calibration networks and the drift-reference networks
as the model files the profiler would time, plus a manifest (space digest, profiler settings, timing policy,
how many fresh processes each item needs); ``hwnas-agent run`` times them on the device; ``import_timings``
builds the LUT from its timings file with the same code as a live build (``build_lut``): hwnas.measuring.replay hands
the recorded measurements back in the order the agent made them, so the lowest-median and agreement rules give
what they would have given live.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence


from hwnas.core.progress import progress as progress_bar
from hwnas.core import jsonio
from hwnas.spaces.blocks import build_model
from hwnas.measuring.replay import BundleError
from hwnas.measuring.stability import EXTRA_PASSES, agreement_tolerance
from hwnas.core.files import atomic_write_text
from hwnas.latency.lut import now_iso
from hwnas.measuring.measure import available_profiler
from hwnas.profilers._remote import REPLAY, remote_settings

BUNDLE_FORMAT, TIMINGS_FORMAT, VERSION = "hwnas-bundle", "hwnas-timings", 1



@dataclass(frozen=True)
class ExportReport:
    path: Path
    blocks: int
    networks: int
    files: int
    bytes: int


def _items(space: Any, resolutions: Sequence[int], calib_archs: int, seed: int, passes: int,
           calibrate: bool) -> list[tuple[str, int, Any]]:
    """(id, fresh processes wanted, a LayerDesc or an Arch) for everything a build would measure."""
    from hwnas.measuring.sampling import sample_archs
    from hwnas.measuring.drift import REFERENCE_NETS, REFERENCE_PROCESSES

    out: dict[str, list] = {d.key: [d.key, passes, d] for d in space.all_layers(resolutions)}
    if calibrate:
        for a in sample_archs(space, calib_archs, seed, resolutions):
            out.setdefault(f"arch:{a.id}", [f"arch:{a.id}", 0, a])[1] = max(passes, 1)
        for a in sample_archs(space, REFERENCE_NETS, seed=seed + 7919):
            entry = out.setdefault(f"arch:{a.id}", [f"arch:{a.id}", 0, a])
            entry[1] = max(entry[1], REFERENCE_PROCESSES, 2)
    return [tuple(v) for v in out.values()]


def export_bundle(profiler_name: str, space: Any, out_dir: str | Path, *, resolutions: Sequence[int] | None = None,
                  profiler_options: dict[str, Any] | None = None, calib_archs: int = 30, seed: int = 0,
                  processes: int = 2, calibrate: bool = True, command: str = "",
                  progress: bool = True) -> ExportReport:
    """Write the bundle a device agent times offline (``hwnas-agent run DIR --out timings.json``)."""
    out = Path(out_dir)
    if out.exists() and any(out.iterdir()):
        raise BundleError(f"--export-bundle {out} exists and is not empty; give a new directory")
    options = dict(profiler_options or {})
    profiler = available_profiler(profiler_name, options)
    if not hasattr(profiler, "model_file"):
        raise BundleError(f"profiler {profiler_name!r} times PyTorch modules here; bundles need one that times model "
                          f"files on a device (ort-cpu, ort-mobile)")
    resolutions = tuple(resolutions) if resolutions is not None else tuple(space.resolutions)
    passes = max(1, processes)
    models = out / "models"
    models.mkdir(parents=True)
    manifest_items, fmt, total = [], "onnx", 0
    items = _items(space, resolutions, calib_archs, seed, passes, calibrate)
    from hwnas_agent.protocol import digest

    for item_id, n, what in progress_bar(items, desc=f"exporting the bundle ({profiler_name})", unit="model",
                                         disable=not progress, dynamic_ncols=True):
        if item_id.startswith("arch:"):
            module, shape, kind = build_model(what), (1, space.in_channels, what.resolution, what.resolution), "network"
        else:
            module, shape, kind = what.build(), what.input_shape, "block"
        data, fmt = profiler.model_file(module, shape)
        sha = digest(data)
        (models / f"{sha}.{fmt}").write_bytes(data)
        total += len(data)
        manifest_items.append({"id": item_id, "kind": kind, "passes": n, "file": f"models/{sha}.{fmt}", "sha256": sha,
                               **({"arch": what.to_dict()} if kind == "network" else {})})
    settings = remote_settings(profiler, fmt)
    manifest = {"format": BUNDLE_FORMAT, "version": VERSION, "created": now_iso(), "command": command,
                "profiler": profiler_name, "profiler_settings": profiler.settings(), "space": space.to_dict(),
                "space_digest": space.digest, "resolutions": list(resolutions), "calibrate": calibrate,
                "calib_archs": calib_archs, "seed": seed, "processes": passes, "settings": settings,
                "agree": agreement_tolerance(options), "extra_passes": EXTRA_PASSES, "chunk": 24,
                "items": manifest_items}
    atomic_write_text(out / "manifest.json", jsonio.dumps(manifest, indent=1))
    blocks = sum(1 for it in manifest_items if it["kind"] == "block")
    return ExportReport(out, blocks, len(manifest_items) - blocks, len(manifest_items), total)


def check_timings(path: str | Path, profiler_name: str, space: Any, options: dict[str, Any]) -> dict[str, Any]:
    """The timings file's manifest, once it is shown to belong to this command (space, profiler, settings)."""
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except OSError as e:
        raise BundleError(f"cannot read --import-timings {str(path)!r}: {e.strerror or e}") from None
    except json.JSONDecodeError as e:
        raise BundleError(f"--import-timings {path} is not JSON ({e}); copy it from the device again") from None
    if not isinstance(data, dict) or data.get("format") != TIMINGS_FORMAT or "manifest" not in data:
        raise BundleError(f"{path} is not a timings file of `hwnas-agent run`")
    if not data.get("complete"):
        raise BundleError(f"{path} is incomplete (the agent was stopped): run `hwnas-agent run BUNDLE --out "
                          f"{path.name}` on the device again to finish it, then import")
    try:
        from hwnas_agent.bundle import BundleError as AgentBundleError, _check_manifest, _check_timings

        _check_timings(data, path, "copy it from the device again, or time the bundle there anew")
        if not isinstance(data["manifest"], dict):
            raise AgentBundleError(f"{path}: its 'manifest' is not an object")
        _check_manifest(data["manifest"], path)
    except AgentBundleError as e:  # a median of -1 was found only in the LUT written; a list as results was
        raise BundleError(f"--import-timings {e}") from None
    manifest = data["manifest"]
    problems = []
    if manifest.get("space_digest") != space.digest:
        problems.append(f"its bundle was exported for space {manifest.get('space', {}).get('name')!r} "
                        f"(digest {manifest.get('space_digest')}), this command's is {space.name!r} ({space.digest})")
    precision = manifest.get("profiler_settings", {}).get("precision", "fp32")
    if precision != options.get("precision", "fp32"):  # a LUT never mixes precisions
        problems.append(f"its bundle holds {precision} models and this command builds a "
                        f"{options.get('precision', 'fp32')} LUT (--precision {precision} imports it)")
    if manifest.get("profiler") != profiler_name:
        problems.append(f"its bundle was exported for profiler {manifest.get('profiler')!r}, not {profiler_name!r}")
    profiler = available_profiler(profiler_name, {**options, "device": REPLAY + str(path)})
    here = remote_settings(profiler, manifest["settings"].get("format", "onnx"))
    diff = [k for k in ("threads", "pin", "opt_level", "format", "providers", "xnnpack", "policy")
            if here.get(k) != manifest["settings"].get(k)]
    if diff:
        problems.append(f"its settings differ from this command's in {', '.join(diff)} (exported with "
                        + ", ".join(f"{k}={manifest['settings'].get(k)!r}" for k in diff) + ")")
    if problems:
        raise BundleError(f"--import-timings {path} does not belong to this command: " + "; ".join(problems)
                          + ". Import it with the flags it was exported with, or export a new bundle")
    return manifest
