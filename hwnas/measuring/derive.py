"""A LUT for a space that differs from a LUT's by a few blocks: measure only those, copy the rest.

A new class count changes one block of a space (the head: ``head:r2:i128:o3:m256:hswish`` for 3 classes where
the base has ``...:o10:...``); another head width, a stage more or a resolution more change a few. Every other
block is the same descriptor, so the same LUT key, timed by the same profiler on the same device: its entry is
copied. The new blocks are measured as the base's were (its profiler, threads, pinning, timing policy), then the
LUT is calibrated and its drift reference recorded on whole networks of the new space, as any build does
(:func:`hwnas.measuring.profiling.build_lut`, which also makes a derive resumable). The LUT records its base (path
and content digest) and which blocks were measured here (``derived``).
"""
from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

from hwnas.latency.lut import LUT, LUTError, content_digest, content_table, fingerprint_diff, now_iso
from hwnas.measuring.measure import available_profiler, lut_profiler_options
from hwnas.measuring.profiling import LutBuildResult, build_lut
from hwnas.spaces.base import Space


@dataclass(frozen=True)
class DeriveResult:
    """What a derive did: the base, how many blocks were copied from it, which were measured here, and the build
    that measured them and calibrated (:class:`LutBuildResult`)."""

    base: Path
    copied: int
    measured_keys: tuple[str, ...]
    build: LutBuildResult

    def lines(self) -> list[str]:
        """What ``hwnas profile --lut BASE`` prints on stdout."""
        keys = ", ".join(self.measured_keys[:4]) + (f" … (+{len(self.measured_keys) - 4} more)"
                                                    if len(self.measured_keys) > 4 else "")
        return [f"derived from {self.base}: {self.copied} blocks copied, {len(self.measured_keys)} measured here"
                + (f" ({keys})" if keys else ""), *self.build.lines()]

    def warning(self) -> str | None:
        return self.build.warning()


def base_options(base: LUT, **overrides: Any) -> dict[str, Any]:
    """The profiler options the base LUT was built with, its timing policy included: new blocks are timed as the
    copied ones were (a LUT keeps one policy)."""
    from hwnas.profilers.base import TimingPolicy

    options = lut_profiler_options(base, **overrides)
    if isinstance(base.settings.get("policy"), dict):
        options["policy"] = TimingPolicy.of(base.settings["policy"])
    return options


def check_base(base: LUT, profiler: Any) -> None:
    """The base's blocks may be copied only into a LUT of the same device, runtime and way of measuring."""
    where = base.path or "the base LUT"
    if base.transfer:
        raise LUTError(f"{where} is a LUT {base.provenance}: its blocks were fitted, not measured; derive from a LUT "
                       f"built block by block, or transfer again with this space (hwnas profile --transfer-from "
                       f"DONOR --space-file SPACE ...)")
    if base.settings.get("pairing"):
        raise LUTError(f"{where} is a paired LUT (--paired); deriving from one is not supported yet: build the new "
                       f"space in full with --paired")
    diff = fingerprint_diff(base.fingerprint, profiler.fingerprint())
    if diff:
        fields = ", ".join(f"{k}: base {a!r}, here {b!r}" for k, (a, b) in diff.items())
        raise LUTError(f"{where} was measured on another device or runtime ({fields}); its blocks cannot be copied "
                       f"into a LUT of this one: transfer it instead (hwnas profile --transfer-from {where} "
                       f"--space-file SPACE --out LUT), or build the space in full")
    mine, theirs = profiler.settings().get("policy"), base.settings.get("policy")
    if theirs is not None and mine != theirs:
        raise LUTError(f"{where} was timed with another timing policy ({theirs}) than this run ({mine}); a LUT keeps "
                       f"one policy: drop --quick (the base's is used)")


def derive_lut(base_path: str | Path, space: Space, out: str | Path, *, profiler_name: str | None = None,
               resolutions: Iterable[int] | None = None, quick: bool = False, command: str | None = None,
               force: bool = False, cv_threshold: float = 0.05, calibrate: bool = True, calib_archs: int = 30,
               seed: int = 0, processes: int = 2, progress: bool = True, threads: int | None = None) -> DeriveResult:
    """The LUT of ``space`` at ``out``: the blocks ``base_path`` holds copied, the others measured here as the base's
    were, then calibrated (and the drift reference recorded) on networks of ``space``. ``quick``: the user asked
    for the quick policy, which must then be the base's. Run again after an interruption, it resumes."""
    from hwnas.profilers.base import TimingPolicy

    base_path, out = Path(base_path), Path(out)
    base = LUT.load(base_path)
    if profiler_name not in (None, base.profiler):
        raise LUTError(f"--profiler {profiler_name}: {base_path} was built with {base.profiler!r}, whose blocks are "
                       f"copied; drop --profiler, or derive from a LUT of {profiler_name!r}")
    if base.space == space.to_dict():
        raise LUTError(f"{base_path} is already a LUT of space {space.name!r}; use it as it is (hwnas profile "
                       f"--profiler {base.profiler} --space-file SPACE --out {base_path} fills any blocks it lacks)")
    if out.resolve() == base_path.resolve():
        raise LUTError(f"--out {out} is the base LUT; a derived LUT is a new file: give another --out")
    overrides: dict[str, Any] = {} if threads is None else {"threads": threads}
    options = base_options(base, **overrides)
    if quick and options.get("policy") != TimingPolicy.quick():
        raise LUTError(f"--quick: {base_path} was timed with the full timing policy and a LUT keeps one policy, so "
                       f"the new blocks are timed as its blocks were; drop --quick")
    profiler = available_profiler(base.profiler, options, "the base LUT's profiler")
    check_base(base, profiler)
    resolutions = tuple(resolutions) if resolutions is not None else space.resolutions
    keys = list(dict.fromkeys(d.key for d in space.all_layers(resolutions)))
    copied = [k for k in keys if k in base.entries]
    measured = tuple(k for k in keys if k not in base.entries)
    if not copied:
        raise LUTError(f"space {space.name!r} shares no block with {base_path} (space "
                       f"{base.space.get('name')!r}); there is nothing to copy: build it in full (hwnas profile "
                       f"--profiler {base.profiler} --space-file SPACE --out {out})")
    digest = content_digest(content_table(base))
    record = {"base": {"path": str(base_path), "digest": digest, "space": base.space.get("name"),
                       "label": base.label}, "copied": len(copied), "measured": list(measured), "created": now_iso()}
    if out.exists() and not force:
        try:
            existing = LUT.load(out)
        except LUTError as e:
            raise LUTError(f"{e}\n(--force starts a new derived LUT at {out}, discarding the file)") from None
        if (existing.derived or {}).get("base", {}).get("digest") != digest or existing.space != space.to_dict():
            raise LUTError(f"{out} exists and is not a LUT of space {space.name!r} derived from {base_path} (as it "
                           f"is now); choose another --out, or --force to start it over")
    else:
        fresh = LUT(profiler=base.profiler, settings=profiler.settings(), fingerprint=profiler.fingerprint(),
                    space=space.to_dict(), entries={k: dict(base.entries[k]) for k in copied}, derived=record,
                    command=command or " ".join(sys.argv), path=out)
        fresh.save(out)
    if progress:
        print(f"derive: {len(copied)} blocks copied from {base_path}, {len(measured)} to measure", file=sys.stderr)
    build = build_lut(base.profiler, space, out, resolutions=resolutions, profiler_options=options, command=command,
                      cv_threshold=cv_threshold, calibrate=calibrate, calib_archs=calib_archs, seed=seed,
                      progress=progress, processes=processes)
    return DeriveResult(base_path, len(copied), measured, build)

