"""Offline bundles: for devices hwnas cannot reach over the network (air-gapped boards, phones over adb).

``hwnas profile ... --export-bundle DIR`` writes model files and ``manifest.json``; on the device,
``hwnas-agent run DIR --out timings.json`` times them with the same rules as the network path (fresh worker
processes, ``passes`` passes in alternating order, more passes where the two lowest medians disagree), saving
after every batch so a killed run continues; ``hwnas profile ... --import-timings timings.json`` builds the LUT.
"""
from __future__ import annotations

import json
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from hwnas_agent import device
from hwnas_agent.protocol import digest
from hwnas_agent.worker import Worker

BUNDLE_FORMAT, TIMINGS_FORMAT, VERSION = "hwnas-bundle", "hwnas-timings", 1


class BundleError(ValueError):
    """A bundle or timings file that cannot be used; the message says what to do."""


@dataclass(frozen=True)
class RunReport:
    timed: int       # measurements made by this call
    resumed: int     # items that already had all their passes in the timings file
    extra: int       # measurements made because two processes disagreed
    seconds: float


def manifest_digest(bundle: Path) -> str:
    return digest((bundle / "manifest.json").read_bytes())


def load_manifest(bundle: Path) -> dict[str, Any]:
    path = bundle / "manifest.json"
    try:
        manifest = json.loads(path.read_text())
    except OSError as e:
        raise BundleError(f"{path}: {e.strerror or e}; give the directory hwnas profile --export-bundle wrote") from None
    except json.JSONDecodeError as e:
        raise BundleError(f"{path} is not JSON ({e}); export the bundle again") from None
    if not isinstance(manifest, dict) or manifest.get("format") != BUNDLE_FORMAT or manifest.get("version") != VERSION:
        raise BundleError(f"{path} is not an hwnas bundle manifest (format {BUNDLE_FORMAT!r} version {VERSION})")
    _check_manifest(manifest, path)
    root = bundle.resolve()
    for item in manifest["items"]:
        f = (bundle / item["file"]).resolve()
        if root not in f.parents:
            raise BundleError(f"{path}: item {item['id']!r} names {item['file']!r}, outside the bundle; refused")
    return manifest


def _whole(v: Any, low: int) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v >= low


def _check_manifest(manifest: dict, path: Path) -> None:
    """Every field run_bundle reads, of the type it needs (a damaged manifest was a KeyError or TypeError)."""
    def bad(what: str) -> BundleError:
        return BundleError(f"{path}: {what}; the manifest was edited or is corrupt: export the bundle again")

    items = manifest.get("items")
    if not isinstance(items, list) or not items:
        raise bad("'items' must be a non-empty list")
    for i, it in enumerate(items):
        if not (isinstance(it, dict) and isinstance(it.get("id"), str) and isinstance(it.get("file"), str)
                and isinstance(it.get("sha256"), str) and _whole(it.get("passes", 2), 1)):
            raise bad(f"item {i} needs 'id', 'file', 'sha256' (text) and 'passes' (a whole number >= 1)")
    if not isinstance(manifest.get("settings"), dict):
        raise bad("'settings' must be an object")
    if not _whole(manifest.get("chunk", 24), 1) or not _whole(manifest.get("extra_passes", 3), 0):
        raise bad("'chunk' must be a whole number >= 1 and 'extra_passes' one >= 0")
    agree = manifest.get("agree", 0.05)
    if not isinstance(agree, (int, float)) or isinstance(agree, bool) or not 0 <= agree < 10:
        raise bad("'agree' must be a number >= 0")


def _check_timings(data: Any, out: Path, fix: str = "move it away and run again to time the bundle anew, or "
                                                     "choose another --out") -> None:
    """A timings file to continue (or import): an object whose results are runs with positive medians."""
    def bad(what: str) -> BundleError:
        return BundleError(f"{out} is damaged ({what}); {fix}")

    if not isinstance(data, dict):
        raise bad("not a JSON object")
    if not isinstance(data.get("device"), dict) or not isinstance(data.get("results"), dict):
        raise bad("'device' and 'results' must be objects")
    for key, r in data["results"].items():
        runs = r.get("runs") if isinstance(r, dict) else None
        if not isinstance(runs, list) or not all(
                isinstance(m, dict) and isinstance(m.get("median_ms"), (int, float))
                and not isinstance(m.get("median_ms"), bool) and m["median_ms"] > 0 for m in runs):
            raise bad(f"item {key!r} has no list of runs with positive medians")


def agreeing(medians: list[float], tolerance: float) -> bool:
    low = sorted(medians)[:2]
    return len(low) == 2 and low[1] <= low[0] * (1.0 + tolerance)


def _save(out: Path, data: dict) -> None:
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, indent=1))
    os.replace(tmp, out)


def _medians(results: dict[str, dict], item_id: str) -> list[float]:
    return [r["median_ms"] for r in results.get(item_id, {}).get("runs", [])]


def run_bundle(bundle: Path, out: Path, progress: bool = True) -> RunReport:
    """Time every item of ``bundle`` (each in ``item["passes"]`` fresh processes, more while the two calmest
    disagree) into ``out``; an existing ``out`` of the same bundle and device is continued."""
    manifest = load_manifest(bundle)
    settings, items = manifest["settings"], manifest["items"]
    chunk = int(manifest.get("chunk", 24))
    tolerance, extra_passes = float(manifest.get("agree", 0.05)), int(manifest.get("extra_passes", 3))
    bdigest = manifest_digest(bundle)
    fp = device.fingerprint()
    if out.exists():
        try:
            data = json.loads(out.read_text())
        except json.JSONDecodeError:
            raise BundleError(f"{out} is not a timings file (not JSON); choose another --out") from None
        if not isinstance(data, dict) or data.get("format") == TIMINGS_FORMAT:
            _check_timings(data, out)
        if not isinstance(data, dict) or data.get("format") != TIMINGS_FORMAT or data.get("bundle") != bdigest:
            raise BundleError(f"{out} holds timings of another bundle; choose another --out to time {bundle}")
        diff = [k for k in ("cpu_model", "machine", "cpu_count", "onnxruntime") if data["device"].get(k) != fp.get(k)]
        if diff:
            raise BundleError(f"{out} was begun on another device ({', '.join(diff)} differ); continue it there, "
                              f"or choose another --out")
    else:
        data = {"format": TIMINGS_FORMAT, "version": VERSION, "bundle": bdigest, "manifest": manifest,
                "device": fp, "results": {}, "complete": False}
    results: dict[str, dict] = data["results"]
    want = {it["id"]: int(it.get("passes", 2)) for it in items}
    resumed = sum(1 for it in items if len(_medians(results, it["id"])) >= want[it["id"]])
    start, counts = time.perf_counter(), {"timed": 0, "extra": 0}
    total = sum(want.values())

    def one_pass(p: int, todo: list[dict], extra: bool) -> None:
        order = todo[::-1] if p % 2 else list(todo)
        size = chunk if p % 2 == 0 else max(1, chunk - chunk // 3)  # other neighbours, other processes
        for i in range(0, len(order), size):
            worker = Worker(int(settings.get("threads", 1)), settings.get("pin", "auto"))
            try:
                for it in order[i:i + size]:
                    path = bundle / it["file"]
                    if digest(path.read_bytes()) != it["sha256"]:
                        raise BundleError(f"{path} does not match the manifest's SHA-256: copy the bundle again")
                    m = worker.time(path, settings)["measurement"]
                    results.setdefault(it["id"], {"runs": []})["runs"].append(m)
                    counts["extra" if extra else "timed"] += 1
            finally:
                data["pinning"] = worker.pinning
                worker.close()
            data["thermal_c"] = device.thermal()
            _save(out, data)
            if progress:
                done = sum(min(len(_medians(results, k)), n) for k, n in want.items())
                print(f"[hwnas-agent] {done}/{total} measurements"
                      + (f" (+{counts['extra']} where two processes disagreed)" if counts["extra"] else ""),
                      file=sys.stderr, flush=True)

    for p in range(max(want.values(), default=0)):
        one_pass(p, [it for it in items if want[it["id"]] > p and len(_medians(results, it["id"])) <= p], False)
    for p in range(extra_passes):
        todo = [it for it in items if want[it["id"]] >= 2 and not agreeing(_medians(results, it["id"]), tolerance)
                and len(_medians(results, it["id"])) < want[it["id"]] + p + 1]
        if not todo:
            break
        one_pass(want[todo[0]["id"]] + p, todo, True)
    data["complete"] = True
    _save(out, data)
    return RunReport(counts["timed"], resumed, counts["extra"], time.perf_counter() - start)
