"""The latency lookup table (LUT) file: what each block costs on one device with one profiler.

JSON, one object::

    {"format": "hwnas-lut", "schema_version": 1,
     "profiler": "ort-cpu", "settings": {...}, "fingerprint": {...},
     "created": "...", "updated": "...", "command": "...", "hwnas_version": "...",
     "space": {...search space definition...}, "space_digest": "...",
     "entries": {"<layer key>": {"median_ms": .., "p10_ms": .., "p90_ms": .., "std_ms": .., "cv": .., "n": ..}},
     "calibration": null | {...},
     "reference": null | {...a few whole networks measured in several fresh processes: see hwnas.measuring.drift},
     "transfer": null | {...a LUT fitted from a donor LUT and a few networks measured here: see hwnas.measuring.transfer},
     "derived": {...absent unless its blocks were copied from a base LUT of another space: see hwnas.measuring.derive}}

Writes are atomic (temp file + rename), so a killed profiling run leaves either
the previous or the new file, never half of one.
"""
from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

from hwnas.core import jsonio
from hwnas.core.errors import InputError
from hwnas.core.files import atomic_write_text

FORMAT = "hwnas-lut"
SCHEMA_VERSION = 1
ENTRY_FIELDS = ("median_ms", "p10_ms", "p90_ms", "std_ms", "cv", "n")
# A calibration's raw features per network, in this order (hwnas.latency.predict computes them; the calibration
# record is linear in them).
FEATURES = ("lut_sum_ms", "io_melems", "blocks", "one")

REQUIRED = ("format", "schema_version", "profiler", "settings", "fingerprint", "created", "command", "space", "entries")
# Fingerprint fields that change latency; the others (OS patch level, numpy) are informative only.
# The range of every number a LUT holds (issue 47: entries or coefficients of 1e308 are finite, yet their sum is inf).
# No block or network hwnas prices takes 1,000 s; a calibration coefficient (a scale, ms per Melem, ms per block, ms)
# of a million is no fit of any device. Within them, a prediction of thousands of blocks stays far from overflow.
MAX_MS = 1e6
MAX_COEF = 1e6
MAX_N = 10**9
DEVICE_FIELDS = ("cpu_model", "cpu_flags", "cpu_count", "machine", "profiler", "threads", "torch", "onnxruntime",
                 "providers_used", "providers_requested", "opt_level", "gpu", "gpu_capability", "cuda",
                 "openvino", "openvino_device", "ai_edge_litert", "xnnpack")


class LUTError(InputError):
    """A LUT file is missing, corrupt, foreign or from another schema; the message says what to do."""


def _record_error(source: str, field: str, fix: str) -> Callable[[str], LUTError]:
    """The one wording of a damaged record of a LUT file: which field, what is wrong with it, and ``fix``."""
    return lambda what: LUTError(f"{source}: field '{field}' {what}; the file was edited or is corrupt: {fix}")


def _check_reference(ref: Any, source: str) -> None:
    """The drift reference (hwnas.measuring.drift): a few arch dicts and their positive, finite medians."""
    bad = _record_error(source, "reference", "rebuild the LUT, or delete the 'reference' field (drift checks then "
                                             "use calibration)")

    if not isinstance(ref, dict):
        raise bad("must be an object or null")
    archs, best, noise = ref.get("archs"), ref.get("best_ms"), ref.get("noise_pct")
    if not isinstance(archs, list) or not archs or not all(isinstance(a, dict) for a in archs):
        raise bad("needs 'archs', a non-empty list of architecture objects")
    if (not isinstance(best, list) or len(best) != len(archs)
            or not all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and v > 0
                       for v in best)):
        raise bad("needs 'best_ms', one positive finite number per arch")
    if not isinstance(noise, (int, float)) or isinstance(noise, bool) or not math.isfinite(noise) or noise < 0:
        raise bad("needs 'noise_pct', a finite number >= 0")


def _check_transfer(t: Any, source: str) -> None:
    """A transfer LUT's record (hwnas.measuring.transfer): its donor, how many networks, the leave-one-out error."""
    bad = _record_error(source, "transfer", f"transfer it again (hwnas profile --transfer-from DONOR --networks N "
                                            f"--out {source} --force)")

    if not isinstance(t, dict):
        raise bad("must be an object or null")
    if not isinstance(t.get("donor"), dict) or not isinstance(t["donor"].get("path"), str):
        raise bad("needs 'donor', an object naming the donor LUT's 'path'")
    n = t.get("networks")
    if not isinstance(n, int) or isinstance(n, bool) or n < 1:
        raise bad("needs 'networks', a whole number >= 1")
    loo = t.get("loo_mape_pct")
    if loo is not None and not (_finite(loo) and loo >= 0):
        raise bad("has a 'loo_mape_pct' that is not a finite number >= 0 (or null)")


def _check_derived(d: Any, source: str) -> None:
    """A derived LUT's record (hwnas.measuring.derive): the base LUT's path and digest, the blocks measured here."""
    bad = _record_error(source, "derived", f"derive it again (hwnas profile --lut BASE --space-file SPACE "
                                           f"--out {source} --force)")

    if not isinstance(d, dict):
        raise bad("must be an object")
    base = d.get("base")
    if not isinstance(base, dict) or not isinstance(base.get("path"), str) or not isinstance(base.get("digest"), str):
        raise bad("needs 'base', an object naming the base LUT's 'path' and 'digest'")
    measured, copied = d.get("measured"), d.get("copied")
    if not isinstance(measured, list) or not all(isinstance(k, str) for k in measured):
        raise bad("needs 'measured', the list of the block keys measured here")
    if not isinstance(copied, int) or isinstance(copied, bool) or copied < 0:
        raise bad("needs 'copied', a whole number >= 0 of blocks copied from the base")


def now_iso() -> str:
    return datetime.now(timezone.utc).replace(microsecond=0).isoformat()


@dataclass
class LUT:
    profiler: str
    settings: dict[str, Any]
    fingerprint: dict[str, Any]
    space: dict[str, Any]
    entries: dict[str, dict[str, Any]] = field(default_factory=dict)
    calibration: dict[str, Any] | None = None
    reference: dict[str, Any] | None = None
    transfer: dict[str, Any] | None = None   # set when fitted from a donor LUT (hwnas.measuring.transfer), not built
    derived: dict[str, Any] | None = None    # set when its blocks were copied from a base LUT (hwnas.measuring.derive)
    command: str = ""
    created: str = field(default_factory=now_iso)
    updated: str = ""
    hwnas_version: str = ""
    path: Path | None = field(default=None, compare=False)
    _parsed: tuple[Any, Any] | None = field(default=None, compare=False, repr=False)  # (space dict, its Space)

    # -- access --------------------------------------------------------------
    def median(self, key: str) -> float:
        return self.entries[key]["median_ms"]

    def missing(self, keys: list[str]) -> list[str]:
        return [k for k in keys if k not in self.entries]

    def search_space(self):
        """The space this LUT was built for, of its kind (``mbv3``, ``cell``): parsed once, when the LUT was read
        (and again only if ``space`` was replaced since)."""
        from hwnas.spaces.base import space_from_dict

        if self._parsed is None or self._parsed[0] is not self.space:
            self._parsed = (self.space, space_from_dict(self.space, source=f"{self.path or 'LUT'}: space"))
        return self._parsed[1]

    @property
    def precision(self) -> str:
        return self.settings.get("precision", "fp32")

    @property
    def batch_size(self) -> int:
        """The batch its entries were timed at (torch-cuda profilers take one); 1 for every other LUT. Every
        prediction of this LUT is ms per batch of this size, and every measurement against it is made at it."""
        return int(self.settings.get("batch_size", 1))

    @property
    def label(self) -> str:
        fp = self.fingerprint
        dev = fp.get("gpu") or fp.get("cpu_model", "?")
        batch = f", batch {self.batch_size}" if self.batch_size != 1 else ""
        return f"{self.profiler} on {dev} ({fp.get('threads', '?')} thread(s)){batch}" + (f", {self.provenance}"
                                                                                       if self.provenance else "")

    @property
    def provenance(self) -> str:
        """'transferred from DONOR (..., N networks, leave-one-out MAPE x %)' for a transfer LUT, else '': said
        beside every prediction made with it, since its blocks were fitted, not measured."""
        t = self.transfer
        if not t:
            return ""
        donor = t.get("donor", {})
        loo = t.get("loo_mape_pct")
        err = f", leave-one-out MAPE {loo:.1f} %" if isinstance(loo, (int, float)) and math.isfinite(loo) else ""
        return (f"transferred from {donor.get('path', '?')} ({donor.get('label', '?')}; {t.get('networks', '?')} "
                f"networks measured here{err})")

    # -- serialisation -------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        from hwnas import __version__
        from hwnas.spaces.base import space_from_dict

        return {
            "format": FORMAT,
            "schema_version": SCHEMA_VERSION,
            "profiler": self.profiler,
            "settings": self.settings,
            "fingerprint": self.fingerprint,
            "created": self.created,
            "updated": self.updated or self.created,
            "command": self.command,
            "hwnas_version": self.hwnas_version or __version__,
            "space": self.space,
            "space_digest": space_from_dict(self.space).digest,
            "entries": {k: self.entries[k] for k in sorted(self.entries)},
            "calibration": self.calibration,
            "reference": self.reference,
            **({"transfer": self.transfer} if self.transfer else {}),
            **({"derived": self.derived} if self.derived else {}),
        }

    def save(self, path: str | Path | None = None) -> Path:
        path = Path(path or self.path or "")
        if not path.name:
            raise LUTError("no path to save the LUT to")
        self.updated = now_iso()
        atomic_write_text(path, jsonio.dumps(self.to_dict(), indent=1) + "\n")
        self.path = path
        return path

    @classmethod
    def from_dict(cls, data: Any, source: str = "LUT") -> "LUT":
        if not isinstance(data, dict):
            raise LUTError(f"{source}: not a LUT (top level is {type(data).__name__}, expected an object)")
        if data.get("format") != FORMAT:
            raise LUTError(f"{source}: not an hwnas LUT (format={data.get('format')!r}, expected {FORMAT!r}); "
                           f"build one with: hwnas profile --profiler NAME --out {source}")
        version = data.get("schema_version")
        if version != SCHEMA_VERSION:
            raise LUTError(f"{source}: LUT schema version {version!r}, this hwnas reads version {SCHEMA_VERSION}; "
                           f"rebuild it with hwnas profile (same --profiler and --out)")
        missing = [k for k in REQUIRED if k not in data]
        if missing:
            raise LUTError(f"{source}: missing field(s) {missing}; the file is incomplete or hand-edited; rebuild it")
        for name, kind in (("settings", dict), ("fingerprint", dict), ("space", dict), ("entries", dict),
                           ("profiler", str)):
            if not isinstance(data[name], kind):
                raise LUTError(f"{source}: field {name!r} must be {kind.__name__}, got {type(data[name]).__name__}")
        for key, entry in data["entries"].items():
            _check_entry(key, entry, source)
        calib = data.get("calibration")
        if calib is not None:
            _check_calibration(calib, source)
        ref = data.get("reference")
        if ref is not None:
            _check_reference(ref, source)
        transfer = data.get("transfer")
        if transfer is not None:
            _check_transfer(transfer, source)
        derived = data.get("derived")
        if derived is not None:
            _check_derived(derived, source)
        batch = data["settings"].get("batch_size", 1)
        if isinstance(batch, bool) or not isinstance(batch, int) or batch < 1:
            raise LUTError(f"{source}: settings.batch_size must be a whole number >= 1, got {batch!r}; the file was "
                           f"edited or is corrupt: rebuild the LUT")
        from hwnas.spaces.base import SpaceError, space_from_dict

        try:
            parsed = space_from_dict(data["space"], source="space")
        except SpaceError as e:
            raise LUTError(f"{source}: its search space is invalid: {e}") from None
        return cls(
            profiler=data["profiler"], settings=data["settings"], fingerprint=data["fingerprint"],
            space=data["space"], entries=dict(data["entries"]), calibration=calib, reference=ref,
            transfer=transfer, derived=derived, command=data["command"],
            created=data["created"], updated=data.get("updated", ""), hwnas_version=data.get("hwnas_version", ""),
            _parsed=(data["space"], parsed),
        )

    @classmethod
    def load(cls, path: str | Path) -> "LUT":
        path = Path(path)
        problem = jsonio.path_problem(path, "a LUT", "a JSON file")
        if problem:  # not "does not exist; build it there"
            raise LUTError(problem)
        if not path.exists():
            raise LUTError(f"LUT file {str(path)!r} does not exist; build it with "
                           f"hwnas profile --profiler NAME --out {path}")
        try:
            data = jsonio.loads_file(path, LUTError, "a LUT")
        except LUTError as e:
            raise LUTError(f"{e}; rebuild it or re-run the profile command, which resumes from the last good "
                           f"save") from None
        lut = cls.from_dict(data, source=str(path))
        lut.path = path
        return lut


def _check_entry(key: str, entry: Any, source: str) -> None:
    if not isinstance(entry, dict):
        raise LUTError(f"{source}: entry {key!r} must be an object with {list(ENTRY_FIELDS)}")
    missing = [f for f in ENTRY_FIELDS if f not in entry]
    if missing:
        raise LUTError(f"{source}: entry {key!r} lacks {missing}")
    med = entry["median_ms"]
    if not _finite(med) or med <= 0 or med > MAX_MS:
        raise LUTError(f"{source}: entry {key!r} has median_ms={med!r}; latencies must be positive numbers of at "
                       f"most {MAX_MS:g} ms. The file was edited or is corrupt: rebuild the entry (same profile "
                       f"command, --force for the whole LUT)")
    for name in ENTRY_FIELDS[1:]:
        v = entry[name]
        top = MAX_N if name == "n" else MAX_MS
        if not _finite(v) or v < 0 or v > top or (name == "n" and (v < 1 or float(v) != int(v))):
            want = f"a whole number from 1 to {MAX_N:g}" if name == "n" else f"a number from 0 to {MAX_MS:g}"
            raise LUTError(f"{source}: entry {key!r} has {name}={v!r}; it must be {want}. The file was edited or "
                           f"is corrupt: rebuild the entry (same profile command, --force for the whole LUT)")


def _finite(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _check_calibration(calib: Any, source: str) -> None:
    """The whole-network fit: ``coef`` one finite number per feature, a positive scale on the block sum,
    and positive predictions for the networks it was fitted on (a fit that predicts <= 0 ms is corrupt)."""
    def bad(what: str) -> LUTError:
        return LUTError(f"{source}: field 'calibration' {what}; the file was edited or is corrupt: refit it with "
                        f"hwnas profile ... --recalibrate (same --profiler/--out)")

    if not isinstance(calib, dict):
        raise bad("must be an object or null")
    coef = calib.get("coef")
    if coef is None:
        return  # not fitted (yet): the predictor uses the plain block sum
    if not isinstance(coef, list) or len(coef) != len(FEATURES) or not all(_finite(c) for c in coef):
        raise bad(f"has coef={coef!r:.80}; it must list {len(FEATURES)} finite numbers, one per {list(FEATURES)}")
    if any(abs(c) > MAX_COEF for c in coef):
        raise bad(f"has coef={coef!r:.120}; each must lie within ±{MAX_COEF:g} (no device's fit is that large)")
    if coef[0] <= 0:
        raise bad(f"scales the block sum by {coef[0]!r}; the scale must be > 0")
    data = calib.get("data", [])
    if not isinstance(data, list):
        raise bad(f"has 'data' of type {type(data).__name__}; it must be a list of the networks it was fitted on")
    for i, row in enumerate(data):
        feats = row.get("features") if isinstance(row, dict) else None
        measured = row.get("measured") if isinstance(row, dict) else None
        if (not isinstance(feats, list) or len(feats) != len(coef)
                or not all(_finite(f) and 0 <= f <= MAX_MS for f in feats)):
            raise bad(f"data[{i}] has features={feats!r:.80}; they must list {len(coef)} numbers from 0 to "
                      f"{MAX_MS:g}, one per {list(FEATURES)}")
        med = measured.get("median_ms") if isinstance(measured, dict) else None
        if not _finite(med) or med <= 0 or med > MAX_MS:
            raise bad(f"data[{i}] (network {row.get('arch_id')!r}) has measured.median_ms={med!r}; a measured "
                      f"latency must be a positive number of at most {MAX_MS:g} ms")
        if sum(c * f for c, f in zip(coef, feats)) <= 0:
            raise bad(f"predicts <= 0 ms for network {row.get('arch_id')!r} it was fitted on")


def fingerprint_diff(a: dict[str, Any], b: dict[str, Any], fields: tuple[str, ...] = DEVICE_FIELDS) -> dict[str, tuple]:
    """Fields that differ between two fingerprints and matter for latency: {field: (a, b)}."""
    return {f: (a.get(f), b.get(f)) for f in fields if (f in a or f in b) and a.get(f) != b.get(f)}


# -- what a LUT's predictions are made of: recorded by a run, checked by resume, finalize and report ----
def content_table(lut: LUT) -> dict[str, Any]:
    """Each entry's median and the calibration (model, coefficients): everything a prediction reads.

    Timestamps, the command and the drift reference are left out: rewriting a LUT without changing a
    number keeps its digest."""
    calib = lut.calibration or {}
    return {"entries": {k: lut.entries[k]["median_ms"] for k in sorted(lut.entries)},
            "calibration": {"model": calib.get("model"), "coef": calib["coef"]} if calib.get("coef") else None}


def content_digest(table: dict[str, Any]) -> str:
    """The digest of :func:`content_table`: equal digests, equal predictions."""
    return hashlib.sha256(jsonio.dumps(table, sort_keys=True).encode()).hexdigest()[:16]


def describe_change(old: dict[str, Any] | None, new: dict[str, Any]) -> str:
    """What changed between two :func:`content_table` s, in a few words ("12 of 128 entries differ (e.g. ...)")."""
    if not isinstance(old, dict) or not isinstance(old.get("entries"), dict):
        return "its content differs"
    a, b = old["entries"], new["entries"]
    changed = sorted(k for k in set(a) & set(b) if a[k] != b[k])
    added, removed = len(set(b) - set(a)), len(set(a) - set(b))
    parts = []
    if changed:
        k = changed[0]
        parts.append(f"{len(changed)} of {len(a)} entries differ (e.g. {k[:60]}: {a[k]:.4g} ms then, {b[k]:.4g} ms now)")
    if added:
        parts.append(f"{added} entr{'y' if added == 1 else 'ies'} added")
    if removed:
        parts.append(f"{removed} entr{'y' if removed == 1 else 'ies'} removed")
    if old.get("calibration") != new.get("calibration"):
        parts.append("the calibration changed")
    return ", ".join(parts) or "its content differs"
