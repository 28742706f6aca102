"""The ``hwnas`` command. Thin: parses flags, calls the library, prints results.

Exit codes: 0 success, 1 a check failed (e.g. a verdict), 2 bad input (file,
flag, architecture, LUT), 3 the requested profiler/provider is unavailable here,
4 an internal error (a bug: one line, the traceback written to a file), 5 a verdict
too uncertain to give (finalize: the latency measured twice was too noisy to tell PASS from FAIL),
130 interrupted (work saved so far is kept), 141 the reader of stdout went away (`| head`: nothing said).
"""
from __future__ import annotations

import argparse
import errno
import json
import math
import os
import shlex
import sys
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

from hwnas.core import jsonio
from hwnas.core.errors import (EXIT_BROKEN_PIPE, EXIT_FAIL, EXIT_INPUT, EXIT_INTERNAL, EXIT_INTERRUPTED, EXIT_OK,
                               EXIT_UNCERTAIN, HwnasError)


class CLIError(HwnasError):
    """A flag or a combination of flags the command cannot take (exit 2 unless told)."""

    def __init__(self, message: str, code: int = EXIT_INPUT):
        super().__init__(message)
        self.exit_code = code


def _examples(text: str) -> str:
    return "examples:\n" + "\n".join(f"  {line}" for line in text.strip().splitlines())


class OneLineParser(argparse.ArgumentParser):
    """argparse, but a bad flag is one line (``hwnas CMD: error: ...``), like every other hwnas error."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(EXIT_INPUT, f"{self.prog}: error: {message} (see `{self.prog} --help`)\n")


# -- argument types: bad flags are refused by argparse (exit 2, one line naming the flag) ---------
def positive_int(text: str) -> int:
    """A whole number >= 1 (epochs, batch size, population, N)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got {value}")
    return value


def seed_int(text: str) -> int:
    """A seed: a whole number >= 0. Python's random seeds with the absolute value, so --seed -1 was the run of
    --seed 1 under another name."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 0, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 0, got {value} (a negative seed would give "
                                         f"the run of seed {-value})")
    return value


MAX_SAMPLE = 100_000  # archs one `predict --sample` lists: each is sampled, priced and printed (about 10^4 a second)


def sample_count(text: str) -> int:
    """``predict --sample N``: 0 (not given) to :data:`MAX_SAMPLE`. 10,000,000 printed nothing for minutes while
    every arch was sampled in memory first."""
    value = positive_int(text) if text.strip() != "0" else 0
    if value > MAX_SAMPLE:
        raise argparse.ArgumentTypeError(f"expected at most {MAX_SAMPLE:,} archs a call (each is sampled, priced and "
                                         f"printed), got {value:,}; ask for fewer, or run it again with other --seed "
                                         f"values for more")
    return value


def finite_positive(text: str) -> float:
    """A finite number > 0 (a budget or a limit: nan would switch the constraint off, inf means none)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number > 0, got {text!r}") from None
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"expected a finite number > 0, got {text!r}"
                                         + ("; leave the flag out for no limit" if math.isinf(value) else ""))
    return value


def fraction_or_percent(text: str) -> float:
    """A safety margin as a percentage (``5%``) or a fraction (``0.05``), from 0 up to but not including 100 %."""
    t = text.strip()
    try:
        value = float(t[:-1]) / 100 if t.endswith("%") else float(t)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a percentage (5%) or a fraction (0.05), got {text!r}") from None
    if not math.isfinite(value) or not 0 <= value < 1:
        hint = f" (did you mean {t}%?)" if not t.endswith("%") and math.isfinite(value) and 1 <= value < 100 else ""
        raise argparse.ArgumentTypeError(f"expected a percentage from 0% to below 100% or a fraction from 0 to "
                                         f"below 1, got {text!r}{hint}")
    return value


def duration(text: str) -> float:
    """A duration in seconds: plain seconds or with units (90, 90s, 30m, 2h, 1h30m; hwnas.core.durations)."""
    from hwnas.core.durations import DurationError, parse_duration

    try:
        return parse_duration(text)
    except DurationError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


class DeprecatedFlag(argparse.Action):
    """An old spelling of a flag, accepted for one release: its value goes where the new flag's does, and a warning
    line on stderr names the new spelling (one meaning per flag: ``--device`` is an agent's address, ``--compute``
    the torch device; ``--wall-time`` and ``--device-time`` say whose time)."""

    def __init__(self, option_strings: Sequence[str], dest: str, new: str, **kwargs: Any):
        self.new = new
        kwargs.setdefault("help", f"deprecated spelling of {new} (accepted until the next release)")
        super().__init__(option_strings, dest, **kwargs)

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: Any,
                 option_string: str | None = None) -> None:
        print(f"{parser.prog}: warning: {option_string} is deprecated, use {self.new} (the old spelling is accepted "
              f"until the next release)", file=sys.stderr)
        setattr(namespace, self.dest, values)


def pin_choice(text: str) -> str:
    """'auto', 'none' or a CPU index (checked against this process's CPUs when measuring)."""
    if text in ("auto", "none") or (text.isdigit()):
        return text
    raise argparse.ArgumentTypeError(f"expected 'auto', 'none' or a CPU index such as 1, got {text!r}")


def _broken_link(text: str) -> None:
    """A symbolic link that loops or points nowhere is no place to write: say which, before any work."""
    if os.path.islink(text) and not os.path.exists(text):
        try:
            os.stat(text)
        except OSError as e:
            what = ("loops (it points back at itself)" if e.errno == errno.ELOOP
                    else f"points to {os.readlink(text)!r}, which does not exist")
            raise argparse.ArgumentTypeError(f"{text} is a symbolic link that {what}; give a real path") from None


def file_path(text: str) -> Path:
    """An output file path: not an existing directory, nor a broken symbolic link."""
    _broken_link(text)
    path = Path(text)
    if path.is_dir():
        raise argparse.ArgumentTypeError(f"{text} is a directory; give a file path, e.g. {path / 'out.json'}")
    return path


def dir_path(text: str) -> Path:
    """An output directory path: not an existing file, nor a broken symbolic link."""
    _broken_link(text)
    path = Path(text)
    if path.exists() and not path.is_dir():
        raise argparse.ArgumentTypeError(f"{text} is a file; give a directory (it is created)")
    return path


# -- shared argument groups ----------------------------------------------------
def _add_space(p: argparse.ArgumentParser, default: str | None = "mbv3") -> None:
    shipped = ", ".join(sorted(f.stem for f in (Path(__file__).parents[1] / "spaces").glob("*.json")))
    p.add_argument("--space", default=default, help=f"shipped space name ({shipped}) [default: %(default)s]")
    p.add_argument("--space-file", type=Path, help="custom space definition (JSON/TOML/YAML); overrides --space")


def _add_space_data(p: argparse.ArgumentParser) -> None:
    """``--data`` on a command that reads no images: only for a space file whose class count is the data's."""
    p.add_argument("--data", metavar="DATA",
                   help="only for a --space-file that says \"num_classes\": \"data\": the data set whose class "
                        "count it takes (as given to search, supernet and finalize)")


def _space_file(args: argparse.Namespace):
    """``--space-file``, its ``"num_classes": "data"`` resolved with ``--data`` (loaded together, never apart)."""
    from hwnas.spaces.base import classes_from_data, load_space_file

    data = getattr(args, "data", None)
    if data and classes_from_data(args.space_file):
        from hwnas.evaluate.data import load_space_for_data

        return load_space_for_data(args.space_file, data, getattr(args, "split_seed", 0) or 0)
    return load_space_file(args.space_file)


def _space(args: argparse.Namespace, lut=None):
    from hwnas.spaces.base import get_space

    if getattr(args, "space_file", None):
        return _space_file(args)
    if lut is not None and getattr(args, "space", None) in (None, lut.space.get("name")):
        return lut.search_space()
    return get_space(args.space or "mbv3")


def _profiler_options(args: argparse.Namespace, lut=None) -> dict[str, Any]:
    """The profiler flags as ``create_profiler`` options. With a LUT, a flag left at its default
    (``--threads 1``, ``--pin-cpu auto``) means "as the LUT was built" (``hwnas.measuring.measure.lut_profiler_options``)."""
    from hwnas.measuring.measure import AUTO_PIN, lut_profiler_options, profiler_options

    flags: dict[str, Any] = {}
    if lut is None or args.threads != 1:
        flags["threads"] = args.threads
    if lut is None or args.pin_cpu != AUTO_PIN:
        pin = args.pin_cpu
        flags["pin_cpu"] = pin if pin == AUTO_PIN else None if pin == "none" else int(pin)
    if getattr(args, "quick", False):
        from hwnas.profilers.base import TimingPolicy

        flags["policy"] = TimingPolicy.quick()
    precision = getattr(args, "precision", None)
    if lut is not None and precision is not None:  # the LUT's precision is what is measured; another is refused
        from hwnas.measuring.precision import check_same

        check_same(f"the LUT {lut.path}", lut.precision, "--precision", precision,
                   f"drop --precision (the LUT's, {lut.precision}, is used), or give a LUT built with it")
    elif precision not in (None, "fp32"):
        flags["precision"] = precision  # fp32 is every profiler's default (torch-cpu takes no precision)
    batch = getattr(args, "profile_batch_size", None)
    if lut is not None and batch is not None:  # likewise the LUT's batch size
        from hwnas.measuring.precision import check_same_batch

        check_same_batch(f"the LUT {lut.path}", lut.batch_size, "--batch-size", batch,
                         f"drop --batch-size (the LUT's, {lut.batch_size}, is used), or give a LUT built at it")
    elif batch not in (None, 1):
        flags["batch_size"] = batch  # batch 1 is every profiler's default (only torch-cuda* take another)
    if getattr(args, "xnnpack", None) is False:
        flags["xnnpack"] = False  # only litert-cpu takes it (others refuse the option by name)
    return profiler_options(**flags) if lut is None else lut_profiler_options(lut, **flags)


def _add_profiler_flags(p: argparse.ArgumentParser, required: bool = True) -> None:
    p.add_argument("--profiler", required=required, help="profiler name (see `hwnas profile --list`)")
    p.add_argument("--threads", type=positive_int, default=1,
                   help="threads the runtime may use [default: 1, as on a phone]")
    p.add_argument("--pin-cpu", default="auto", type=pin_choice,
                   help="pin the process to this CPU index, 'none', or 'auto' (the last CPU when --threads 1)")
    p.add_argument("--quick", action="store_true", help="short timing runs (~10x faster, noisier): previews, tests")
    p.add_argument("--precision", choices=["fp32", "fp16", "int8"], default=None,
                   help="time fp32 models, int8 ones (static QDQ, per-channel weights; ort-cpu, ort-mobile) or fp16 "
                        "ones (module.half(); torch-cuda, torch-cuda-graph) [fp32; with --lut: the LUT's]")
    p.add_argument("--no-xnnpack", dest="xnnpack", action="store_false", default=None,
                   help="litert-cpu: LiteRT's built-in kernels, without the XNNPACK delegate [XNNPACK on; with --lut: "
                        "the LUT's]")
    # dest profile_batch_size: supernet's --batch-size is the training batch, not the profiler's
    p.add_argument("--batch-size", dest="profile_batch_size", type=positive_int, default=None, metavar="N",
                   help="time every block and network at batch N (torch-cuda, torch-cuda-graph); the LUT records it "
                        "and its predictions are ms per batch of N [1; with --lut: the LUT's]")
    _add_device_flags(p)


def _add_probe_flags(p: argparse.ArgumentParser) -> None:
    _add_profiler_flags(p, required=False)
    p.set_defaults(profiler="ort-cpu")  # the probe needs one; ort-cpu times what most LUTs here are built with
    _add_space(p)
    _add_space_data(p)
    p.add_argument("--seconds", type=finite_positive, default=15.0,
                   help="how long to time the block and the network, alternately [15]")
    p.add_argument("--json", type=file_path, metavar="OUT", help="also write the result, every window included, here")


def _add_quiet(p: argparse.ArgumentParser) -> None:
    p.add_argument("--quiet", action="store_true",
                   help="no progress (bars on a terminal, a few plain lines elsewhere) and no step-by-step log: only "
                        "the result, warnings and errors")


def _log(args: argparse.Namespace) -> Callable[[str], None]:
    """What a command's step-by-step log goes to: print, or nothing with --quiet."""
    return (lambda _line: None) if getattr(args, "quiet", False) else print


def _add_device_flags(p: argparse.ArgumentParser) -> None:
    # dest agent_url: `--device` names a device agent everywhere (the torch device is `supernet --compute`)
    p.add_argument("--device", dest="agent_url", metavar="tcp://HOST:PORT",
                   help="measure on that device through its hwnas-agent (ORT profilers) instead of on this host")
    p.add_argument("--token-file", help="the agent's shared token file (with --device)")


# -- commands ------------------------------------------------------------------
def cmd_profile(args: argparse.Namespace) -> int:
    from hwnas.measuring.profiling import build_lut
    from hwnas.profilers import list_profilers

    if args.list:
        for info in list_profilers():
            state = "available" if info.unavailable is None else f"unavailable: {info.unavailable}"
            print(f"{info.name:12s} {state}  [{info.source}]")
        return EXIT_OK
    _refuse_paired_offline(args)  # before any work: an export would otherwise write a whole unpaired bundle
    if args.export_bundle:
        return _export_bundle(args)
    if args.lut:
        return _derive(args)
    if args.transfer_from:
        return _transfer(args)
    if args.networks is not None or args.device_time is not None or args.measurements or args.suggest is not None:
        raise CLIError("--networks, --device-time, --measurements and --suggest go with --transfer-from DONOR_LUT")
    if not args.profiler or not args.out:
        raise CLIError("profile needs --profiler NAME and --out FILE (or --list)")
    space = _space(args)
    build = dict(resolutions=args.resolutions, calibrate=not args.no_calibrate, calib_archs=args.calib_archs,
                 seed=args.seed, processes=args.processes, paired=args.paired)
    options = _profiler_options(args)
    if args.import_timings:
        if args.agent_url:
            raise CLIError("--import-timings builds the LUT from an offline bundle's timings; drop --device")
        from hwnas.measuring.bundle import check_timings
        from hwnas.measuring.measure import target_device
        from hwnas.profilers._remote import REPLAY

        manifest = check_timings(args.import_timings, args.profiler, space, options)
        build = dict(resolutions=manifest["resolutions"], calibrate=manifest["calibrate"],
                     calib_archs=manifest["calib_archs"], seed=manifest["seed"], processes=manifest["processes"])
        with target_device(REPLAY + str(Path(args.import_timings).resolve())):
            report = build_lut(args.profiler, space, args.out, profiler_options=_profiler_options(args),
                               command=_command(), force=args.force, cv_threshold=args.cv_threshold,
                               recalibrate=args.recalibrate, **build)
    else:
        report = build_lut(args.profiler, space, args.out, profiler_options=options, command=_command(),
                           force=args.force, cv_threshold=args.cv_threshold, recalibrate=args.recalibrate, **build)
    for line in report.lines():
        print(line)
    if warning := report.warning():
        print(warning, file=sys.stderr)
    return EXIT_OK


PAIRED_OFFLINE = ("for paired measurement build through the agent over the network (--device tcp://HOST:PORT "
                  "--token-file FILE; a phone over USB: adb forward tcp:7878 tcp:7878), or drop --paired for a "
                  "plain bundle")


def _refuse_paired_offline(args: argparse.Namespace) -> None:
    """Paired measurement needs the reference network timed beside every item, live: an offline bundle (its
    export, its agent run, its import) times each item on its own, so the two do not mix (issue 27)."""
    offline = "--export-bundle" if args.export_bundle else "--import-timings" if args.import_timings else None
    if offline is None:
        return
    if args.paired:
        raise CLIError(f"--paired does not go with {offline}: an offline bundle is timed unpaired; {PAIRED_OFFLINE}")
    if args.import_timings and args.out and not args.force and Path(args.out).is_file():
        from hwnas.latency.lut import LUT, LUTError

        try:
            pairing = LUT.load(args.out).settings.get("pairing")
        except LUTError:
            return  # not a LUT: the build says what is wrong with it
        if pairing:
            raise CLIError(f"--out {args.out} is a paired LUT (built with --paired) and an offline bundle's timings "
                           f"are unpaired: give another --out (or --force to start it over), or {PAIRED_OFFLINE}")


def _derive(args: argparse.Namespace) -> int:
    """``profile --lut BASE --space-file NEW --out LUT``: the blocks NEW shares with BASE copied, the rest measured."""
    from hwnas.measuring.derive import derive_lut

    for flag, given in (("--transfer-from", args.transfer_from), ("--import-timings", args.import_timings),
                        ("--export-bundle", args.export_bundle), ("--paired", args.paired),
                        ("--recalibrate", args.recalibrate), ("--networks", args.networks),
                        ("--measurements", args.measurements), ("--suggest", args.suggest),
                        ("--precision", args.precision), ("--batch-size", args.profile_batch_size)):
        if given not in (None, False):
            raise CLIError(f"{flag} does not go with --lut BASE (a derive copies BASE's blocks and measures the "
                           f"others as BASE was built); drop {flag}")
    if not args.out:
        raise CLIError("--lut BASE needs --out FILE (the derived LUT to write) and --space-file or --space (the new "
                       "space)")
    if not args.space_file and not args.space:
        raise CLIError("--lut BASE derives a LUT for another space: give it with --space-file FILE (or --space NAME)")
    r = derive_lut(args.lut, _space(args), args.out, profiler_name=args.profiler, resolutions=args.resolutions,
                   quick=args.quick, command=_command(), force=args.force, cv_threshold=args.cv_threshold,
                   calibrate=not args.no_calibrate, calib_archs=args.calib_archs, seed=args.seed,
                   processes=args.processes, progress=not args.quiet,
                   threads=None if args.threads == 1 else args.threads)
    for line in r.lines():
        print(line)
    if warning := r.warning():
        print(warning, file=sys.stderr)
    return EXIT_OK


def _transfer(args: argparse.Namespace) -> int:
    """``profile --transfer-from DONOR --networks N``: a LUT fitted from the donor and N networks measured here."""
    from hwnas.spaces.base import get_space
    from hwnas.measuring.transfer import transfer_lut

    for flag, given in (("--import-timings", args.import_timings), ("--export-bundle", args.export_bundle),
                        ("--paired", args.paired), ("--recalibrate", args.recalibrate),
                        ("--no-calibrate", args.no_calibrate)):
        if given:
            raise CLIError(f"{flag} does not go with --transfer-from (a transfer measures whole networks here and "
                           f"fits; drop {flag}, or drop --transfer-from to build the LUT in full)")
    if not args.out:
        raise CLIError("--transfer-from needs --out FILE (the transfer LUT to write; with --suggest, the CSV)")
    space = _space_file(args) if args.space_file else get_space(args.space) if args.space else None
    if args.measurements or args.suggest is not None:
        return _transfer_offline(args, space)
    r = transfer_lut(args.transfer_from, args.profiler, args.out, space=space, networks=args.networks or 20,
                     resolutions=args.resolutions, profiler_options=_profiler_options(args), processes=args.processes,
                     seed=args.seed, time_budget_s=args.device_time, force=args.force, command=_command())
    for line in r.lines():
        print(line)
    if warning := r.warning():
        print(warning, file=sys.stderr)
    return EXIT_OK


def _transfer_offline(args: argparse.Namespace, space) -> int:
    """``--measurements FILE`` (a LUT from timings measured elsewhere) or ``--suggest N`` (which networks to
    measure there): nothing is measured on this machine."""
    from hwnas.measuring.measurements import suggest_networks, transfer_from_measurements

    if args.measurements and args.suggest is not None:
        raise CLIError("--measurements and --suggest are two steps: first --suggest N --out list.csv, measure those "
                       "networks on the device, then --measurements list.csv --out LUT")
    for flag, given in (("--networks", args.networks), ("--device-time", args.device_time),
                        ("--device", getattr(args, "agent_url", None))):
        if given is not None:
            raise CLIError(f"{flag} measures on a device; with --measurements/--suggest nothing is measured here: "
                           f"drop {flag}")
    if args.suggest is not None:
        chosen = suggest_networks(args.transfer_from, args.suggest, args.out, space=space, seed=args.seed,
                                  resolutions=args.resolutions, force=args.force)
        print(f"wrote {args.out}: {len(chosen)} networks (arch,ms with ms empty); time each on the device with your "
              f"tool, fill in ms, then: hwnas profile --transfer-from {args.transfer_from} --measurements "
              f"{args.out} --out LUT")
        return EXIT_OK
    r = transfer_from_measurements(args.transfer_from, args.measurements, args.out, profiler_name=args.profiler,
                                   space=space, seed=args.seed, command=_command(), force=args.force)
    for line in r.lines():
        print(line)
    if warning := r.warning():
        print(warning, file=sys.stderr)
    return EXIT_OK


def _export_bundle(args: argparse.Namespace) -> int:
    from hwnas.measuring.bundle import export_bundle

    if not args.profiler:
        raise CLIError("--export-bundle needs --profiler NAME (what the device runs: ort-cpu or ort-mobile)")
    if args.agent_url:
        raise CLIError("--export-bundle is for a device hwnas cannot reach; with --device the build times there")
    report = export_bundle(args.profiler, _space(args), args.export_bundle, resolutions=args.resolutions,
                           profiler_options=_profiler_options(args), calib_archs=args.calib_archs, seed=args.seed,
                           processes=args.processes, calibrate=not args.no_calibrate, command=_command())
    print(f"bundle {report.path}: {report.blocks} blocks and {report.networks} whole networks, "
          f"{report.bytes / 1e6:.1f} MB. On the device (onnxruntime + numpy; pip install ./agent):\n"
          f"  hwnas-agent run {report.path.name} --out timings.json\n"
          f"then here, with the same flags:  hwnas profile --profiler {args.profiler} ... "
          f"--import-timings timings.json --out LUT.json")
    return EXIT_OK


def _load_archs(args: argparse.Namespace, space) -> list:
    return list(_archs(args, space))


def _archs(args: argparse.Namespace, space) -> Iterable:
    """The archs of ``--archs``, ``--arch`` or ``--sample N``; sampled ones one at a time (``predict`` prints
    them as they come)."""
    if getattr(args, "archs", None):  # one list file: JSON list, JSON Lines, or the kind's text form a line
        from hwnas.spaces.archlist import read_arch_list

        return read_arch_list(space, args.archs)
    if args.arch:  # a file of one arch, or of one per line (JSON Lines: what `hwnas sample --n N --out` writes)
        from hwnas.spaces.base import ArchError

        return [space.arch_from_dict(data, source=where) for p in args.arch
                for where, data in jsonio.loads_records(p, ArchError, "architecture file")]
    import random

    rng = random.Random(args.seed)
    return (_at_resolution(space.sample(rng), args.resolution) for _ in range(args.sample))


def _at_resolution(arch, resolution: int | None):
    if resolution is None:
        return arch
    from dataclasses import replace

    out = replace(arch, resolution=resolution)
    out.validate("--resolution")
    return out


PLUGIN_KINDS = ("profiler", "strategy", "evaluator", "space")  # hwnas.core.registry.HOMES (not imported to build flags)


def cmd_plugins(args: argparse.Namespace) -> int:
    from dataclasses import asdict

    from hwnas.core.registry import plugin_options, registries

    if args.options:
        found = plugin_options(args.options, args.kind)
        if args.json:
            print(json.dumps([f.to_dict() for f in found], indent=2, default=repr))
            return EXIT_OK
        print("\n".join(line for f in found for line in f.lines()))
        return EXIT_OK
    infos = [info for registry in registries(args.kind) for info in registry.infos()]
    if args.json:
        print(json.dumps([asdict(i) for i in infos], indent=2))
        return EXIT_OK
    for info in infos:
        state = "available" if info.unavailable is None else f"unavailable: {info.unavailable}"
        print(f"{info.kind:9s} {info.name:18s} {info.source:14s} {state}")
    return EXIT_OK


def cmd_predict(args: argparse.Namespace) -> int:
    from hwnas.latency.lut import LUT
    from hwnas.latency.predict import latency_predictor
    from hwnas.spaces.base import macs_m

    if not args.arch and not getattr(args, "archs", None) and args.sample < 1:
        raise CLIError("predict needs --arch FILE [FILE ...], --archs LIST or --sample N (N >= 1)")
    if len(args.lut) > 1:
        return _compare(args)
    lut = LUT.load(args.lut[0])
    _warn_noisy(lut)
    space = _space(args, lut)
    predictor = latency_predictor(lut, space)

    def rows_of(archs: list) -> list[dict]:
        feats = predictor.features_many(archs)  # once: the prediction and the raw LUT sum both come from it
        preds = predictor.calibration.apply(feats)
        return [{"arch_id": a.id, "resolution": a.resolution, "summary": a.summary,
                 "predicted_ms": round(float(p), 4), "lut_sum_ms": round(float(f[0]), 4), "macs_m": round(macs_m(a), 1),
                 **a.report_fields()}
                for a, p, f in zip(archs, preds, feats)]

    if args.json:
        rows = rows_of(_load_archs(args, space))
        print(jsonio.dumps({"lut": str(args.lut[0]), "profiler": lut.profiler, "precision": lut.precision,
                            "calibration": predictor.calibration.model, "lut_provenance": lut.provenance or None,
                            "predictions": rows}, indent=1))
        return EXIT_OK
    import itertools

    # sampled archs are priced and printed 1,000 at a time: the first lines come at once, not after all of them
    todo = iter(_archs(args, space))
    archs: list = []
    first = True
    while chunk := list(itertools.islice(todo, 1000)):
        rows = rows_of(chunk)
        if first:
            print(f"predicted latency ({lut.label}, {lut.precision}; calibration: {predictor.calibration.model})")
            first = False
        for r in rows:
            print(f"  {r['arch_id']}  res {r['resolution']:3d}  {r['summary']}  {r['macs_m']:7.1f} MMACs  "
                  f"predicted {r['predicted_ms']:8.3f} ms  (LUT sum {r['lut_sum_ms']:.3f} ms)")
        sys.stdout.flush()
        if args.breakdown:
            archs += chunk
    if args.breakdown:
        for a in archs:
            print(f"\n{a.id} per block (LUT medians, uncalibrated):")
            for key, ms in predictor.breakdown(a):
                print(f"  {ms:8.4f} ms  {key}")
    return EXIT_OK


def _warn_noisy(lut: Any) -> None:
    """A LUT its build found noisy: said on stderr by every command that predicts with it, with the finishing
    command (hwnas.latency.quality)."""
    from hwnas.latency.quality import quality_warning

    if warning := quality_warning(lut):
        print(warning, file=sys.stderr)


def _compare(args: argparse.Namespace) -> int:
    """``predict --lut A --lut B``: the LUTs' predictions side by side (hwnas.latency.compare)."""
    from hwnas.latency.compare import compare_luts, render
    from hwnas.latency.lut import LUT

    luts = [LUT.load(p) for p in args.lut]
    archs = _load_archs(args, _space(args, luts[0]))
    comparison = compare_luts(luts, archs, blocks=args.breakdown or args.json)
    print(jsonio.dumps(comparison.to_dict(), indent=1) if args.json else render(comparison, args.breakdown))
    return EXIT_OK


def cmd_measure(args: argparse.Namespace) -> int:
    from hwnas.latency.lut import LUT
    from hwnas.measuring.measured import measure_targets

    lut = LUT.load(args.lut) if args.lut else None
    if lut is not None:
        _warn_noisy(lut)
    name = args.profiler or (lut.profiler if lut else None)
    if not name:
        raise CLIError("measure needs --profiler NAME (or --lut FILE to use the LUT's profiler)")
    opts = _profiler_options(args, lut)
    space = _space(args, lut)
    archs = _load_archs(args, space) if (args.arch or args.sample) else []
    if not args.model and not archs:
        raise CLIError("measure needs a model file, --arch FILE or --sample N")
    r = measure_targets(name, opts, lut=lut, space=space, model=args.model, archs=archs, processes=args.processes,
                        drift_check=not args.no_drift_check, precision=args.precision)
    if args.json:
        print(jsonio.dumps(r.to_dict(), indent=1))
    else:
        for item in r.items:
            print(item.line())
    return EXIT_OK


def cmd_search(args: argparse.Namespace) -> int:
    from hwnas.search import Constraints, SearchConfig, run_search

    space = _space(args) if args.space_file else None
    constraints = Constraints(budget_ms=args.budget_ms, max_params_m=args.max_params_m,
                              max_memory_mb=args.max_memory_mb, min_accuracy=args.min_accuracy,
                              max_layers=args.max_layers, max_macs_m=args.max_macs_m, margin=args.margin)
    config = SearchConfig(
        evaluator=args.evaluator, evaluator_options=_key_values(args.evaluator_option, "--evaluator-option"),
        strategy=args.strategy, strategy_options=_key_values(args.strategy_option, "--strategy-option"),
        population=args.population, generations=args.generations, seed=args.seed, constraints=constraints,
        objectives=args.objectives, space=space, workers=args.workers, executor=args.executor,
        ray_address=args.ray_address, max_evaluations=args.max_evaluations, time_budget_s=args.wall_time,
        stop_when_stalled=args.stop_when_stalled, proposals=args.proposals, resume=args.resume,
        salvage=args.salvage, command=_command(), data=None if args.data == "none" else args.data,  # as score's
        refine=args.refine, refine_epochs=args.refine_epochs)
    result = run_search(args.lut, args.out, config)
    for line in result.lines(out=args.out):
        print(line)
    return EXIT_OK if result.best else EXIT_FAIL


def cmd_sample(args: argparse.Namespace) -> int:
    space = _space(args)
    import random

    rng = random.Random(args.seed)
    archs = [_at_resolution(space.sample(rng), args.resolution) for _ in range(args.n)]
    text = "\n".join(a.to_json() for a in archs) if args.n > 1 else jsonio.dumps(archs[0].to_dict(), indent=1)
    if args.out:
        from hwnas.core.files import atomic_write_text

        atomic_write_text(Path(args.out), text + "\n")  # a full disk leaves the old file, never half of the new
        print(f"wrote {args.out}")
    else:
        print(text)
    return EXIT_OK


def _key_values(items: Sequence[str] | None, flag: str) -> dict[str, Any]:
    """``KEY=VALUE`` flags as a dict; values read as JSON where they parse (numbers, true/false, null)."""
    out: dict[str, Any] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise CLIError(f"{flag} takes KEY=VALUE, got {item!r}")
        try:
            out[key] = json.loads(value)
        except json.JSONDecodeError:
            out[key] = value
    return out


def cmd_score(args: argparse.Namespace) -> int:
    """``hwnas score``: an accuracy evaluator's scores for a list of archs, as ``predict`` gives latencies."""
    from hwnas.evaluate.arch_scores import score_archs
    from hwnas.spaces.archlist import read_arch_list

    space = _space(args)
    if args.json:
        from hwnas.core.files import refuse_overwriting_inputs

        refuse_overwriting_inputs(args.json, "--json", {"--archs": args.archs})
    archs = read_arch_list(space, args.archs)
    result = score_archs(archs, args.evaluator, _key_values(args.evaluator_option, "--evaluator-option"),
                         data=args.data)
    if args.json:
        from hwnas.core.files import atomic_write_text

        atomic_write_text(Path(args.json), jsonio.dumps(result.to_dict(), indent=1) + "\n")
    if not args.quiet or not args.json:
        print("\n".join(result.lines()))
    if args.json:
        print(f"scores written to {args.json}")
    return EXIT_OK


def cmd_scale(args: argparse.Namespace) -> int:
    """``hwnas scale``: compound scaling of a base arch under a latency budget, priced by the LUT."""
    from hwnas.latency.compound import compound_scale
    from hwnas.core.files import atomic_write_text
    from hwnas.latency.lut import LUT
    from hwnas.latency.predict import latency_predictor

    from hwnas.core.files import refuse_overwriting_inputs

    refuse_overwriting_inputs(args.out, "--out", {"--arch": args.arch, "--lut": args.lut,
                                                  "--space-file": args.space_file})
    if args.alpha_beta_gamma and args.grid:
        raise CLIError("--alpha-beta-gamma scales with those coefficients only and --grid searches the grid: give one")
    lut = LUT.load(args.lut)
    space = _space(args, lut)
    predictor = latency_predictor(lut, space)
    base = space.load_arch(args.arch)
    coefficients = None
    if args.alpha_beta_gamma:
        try:
            coefficients = [tuple(float(v) for v in args.alpha_beta_gamma.split(","))]
            assert len(coefficients[0]) == 3
        except (ValueError, AssertionError):
            raise CLIError(f"--alpha-beta-gamma takes three numbers a,b,g (e.g. 1.2,1.1,1.15), got "
                           f"{args.alpha_beta_gamma!r}") from None
    score = None
    if args.evaluator != "none":
        from hwnas.evaluate.arch_scores import score_archs

        score = lambda archs: score_archs(archs, args.evaluator, data=args.data).scores  # noqa: E731
    result = compound_scale(predictor, base, args.budget_ms, coefficients, score,
                            None if args.evaluator == "none" else args.evaluator)
    print("\n".join(result.lines()))
    atomic_write_text(Path(args.out), jsonio.dumps(result.pick.arch.to_dict(), indent=1) + "\n")
    p = result.pick
    print(f"wrote {args.out}: alpha {p.alpha:g}, beta {p.beta:g}, gamma {p.gamma:g}, phi {p.phi:g}; predicted "
          f"{p.predicted_ms:.3f} ms ({lut.label}); measure it: hwnas measure --lut {args.lut} --arch {args.out}")
    return EXIT_OK


def cmd_supernet(args: argparse.Namespace) -> int:
    from hwnas.evaluate.supernet import SupernetConfig, default_sampling, train_supernet

    space = _space(args)
    cfg = SupernetConfig(data=args.data, split_seed=args.split_seed, data_limit=args.data_limit,
                         epochs=args.epochs, batch_size=args.batch_size,
                         lr=args.lr, random_subnets=args.random_subnets, seed=args.seed,
                         distill=not args.no_distill,
                         # the kind's default: a cell space trains fair (tau 0.692 against 0.511 for uniform on
                         # cell-demo, docs/bench-evaluators.md)
                         sampling=args.sampling or default_sampling(space))
    r = train_supernet(space, args.out, cfg, resume=args.resume, force=args.force, command=_command(),
                       device=args.compute)
    last = r.history[-1] if r.history else {}
    print(f"supernet {args.out}: {r.epochs_done} epochs" + (f" (resumed after {r.resumed_from})" if r.resumed_from
                                                           else "") + f" in {r.seconds:.0f} s on {r.device}; "
          f"validation accuracy "
          f"largest {last.get('val_acc_largest', float('nan')):.2f} %, smallest "
          f"{last.get('val_acc_smallest', float('nan')):.2f} %")
    print(f"search with it: hwnas search --lut LUT --evaluator supernet --evaluator-option checkpoint={args.out} ...")
    return EXIT_OK


def cmd_predictor(args: argparse.Namespace) -> int:
    from hwnas.evaluate import create_evaluator
    from hwnas.evaluate.predictor import fit_on_evaluator
    from hwnas.evaluate.supernet import read_checkpoint
    from hwnas.spaces.base import space_from_dict

    if args.out.exists() and not args.force:
        raise CLIError(f"{args.out} already exists; choose another --out or add --force")
    space = space_from_dict(read_checkpoint(args.checkpoint)["space"], source=f"{args.checkpoint}: space")
    sn = create_evaluator("supernet", checkpoint=str(args.checkpoint))
    _log(args)(f"scoring {args.archs} random archs of {space.name!r} with the supernet, then fitting the MLP ...")
    predictor, fit, _ = fit_on_evaluator(space, sn, args.archs, seed=args.seed, epochs=args.epochs)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    predictor.save(args.out)
    print(f"accuracy predictor {args.out}: trained on {fit.n_train} archs; on {fit.n_val} held out: Kendall tau "
          f"{fit.val_kendall_tau:.3f} vs the supernet, mean abs error {fit.val_mae:.2f} points")
    print(f"search with it: hwnas search --lut LUT --evaluator predictor --evaluator-option path={args.out} ...")
    return EXIT_OK


def cmd_finalize(args: argparse.Namespace) -> int:
    from hwnas.finalize import finalize
    from hwnas.finalize.source import TRAIN_EPOCHS

    r = finalize(args.run, args.out, pick=args.pick, finetune_epochs=args.finetune_epochs,
                 train_epochs=args.train_epochs or TRAIN_EPOCHS, int8=args.int8,
                 profiler=args.profiler, force=args.force, processes=args.processes, checkpoint=args.checkpoint,
                 data=args.data, lut=args.lut, command=_command(), accept_lut_change=args.accept_lut_change,
                 max_cv=args.max_cv, log=_log(args))
    for line in r.lines():
        print(line)
    return EXIT_FAIL if r.latency.failed else EXIT_UNCERTAIN if r.latency.uncertain else EXIT_OK


def cmd_probe(args: argparse.Namespace) -> int:
    """``hwnas probe``: how repeatable this device is at the space's scale, and whether a neighbour is the cause."""
    from hwnas.measuring.noise_probe import probe

    result = probe(args.profiler, _space(args), _profiler_options(args), seconds=args.seconds)
    if args.json:
        from hwnas.core.files import atomic_write_text

        atomic_write_text(args.json, jsonio.dumps(result.to_dict(), indent=1) + "\n")
    for line in result.lines():
        print(line)
    return EXIT_OK


def cmd_report(args: argparse.Namespace) -> int:
    from hwnas.finalize.report import rerender

    for path in rerender(args.path):
        print(f"wrote {path}" if path.exists() else f"(not drawn: {path.name})")
    return EXIT_OK


def cmd_demo(args: argparse.Namespace) -> int:
    from hwnas.app.demo import run_demo

    summary = run_demo(args.out, profiler=args.profiler, epochs=args.epochs, population=args.population,
                       generations=args.generations, seed=args.seed, force=args.force, command=_command(),
                       quick=args.quick, space_name=args.space, data=args.data, full_lut=args.full_lut,
                       refine_top=args.refine, refine_epochs=args.refine_epochs, log=_log(args))
    if args.quiet:  # the log said nothing: the result in one line
        print(f"{summary['verdict']}: pick {summary['pick']}, measured {summary['measured_ms']:.3f} ms (budget "
              f"{summary['budget_ms']:g} ms), test accuracy {summary['test_accuracy']:.2f} %; report: "
              f"{summary['report']}")
    return {"FAIL": EXIT_FAIL, "UNCERTAIN": EXIT_UNCERTAIN}.get(summary["verdict"], EXIT_OK)


def _command() -> str:
    """The command line as the user typed it (``python -m hwnas`` is recorded as ``hwnas``)."""
    prog = Path(sys.argv[0]).name
    return " ".join(shlex.quote(a) for a in ["hwnas" if prog in ("cli.py", "__main__.py") else prog, *sys.argv[1:]])


# -- parser ----------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog="hwnas", formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Hardware-aware NAS: profile your device into a latency LUT, search your space under your latency "
                    "budget, and ship an ONNX model whose latency was measured.",
        epilog=_examples("""
hwnas profile --list
hwnas profile --profiler ort-cpu --space mbv3 --out luts/my-ort-cpu.json
hwnas sample --space mbv3 --seed 1 --out arch.json
hwnas predict --lut luts/amd-epyc-2c_ort-cpu_mbv3.json --arch arch.json
hwnas measure --lut luts/amd-epyc-2c_ort-cpu_mbv3.json --arch arch.json
hwnas search --lut luts/amd-epyc-2c_ort-cpu_mbv3.json --budget-ms 8 --out runs/mbv3-8ms
hwnas supernet --space demo --data digits --out runs/sn.pt
hwnas finalize runs/mbv3-8ms --out dist/mbv3-8ms
hwnas report dist/mbv3-8ms
hwnas demo                 # the whole pipeline on embedded data, ~3 min on 2 cores
"""))
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=OneLineParser)

    def add(name: str, fn: Callable, help: str, examples: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help, description=help, epilog=_examples(examples),
                           formatter_class=argparse.RawDescriptionHelpFormatter)
        p.set_defaults(func=fn)
        p.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help="show tracebacks")
        return p

    p = add("profile", cmd_profile, "time every block of a search space on this device and write a LUT",
            """
hwnas profile --list
hwnas profile --profiler ort-cpu --space mbv3 --out luts/my-ort-cpu.json
hwnas profile --profiler torch-cpu --space demo --resolutions 32 --out /tmp/demo.json --no-calibrate
hwnas profile --profiler ort-cpu --space demo --out luts/board.json --device tcp://BOARD:7878 --token-file TOKEN
hwnas profile --profiler ort-mobile --space demo --export-bundle bundle/      # offline: then on the device
  hwnas-agent run bundle/ --out timings.json                                 # ... and back here:
hwnas profile --profiler ort-mobile --space demo --import-timings timings.json --out luts/phone.json
hwnas profile --transfer-from luts/amd-epyc-2c_ort-cpu_demo.json --networks 20 --out luts/here_demo.json
hwnas profile --transfer-from luts/amd-epyc-2c_ort-cpu_mbv3.json --profiler torch-cpu --device-time 90s --out t.json
hwnas profile --lut luts/amd-epyc-avx512-2c_ort-cpu_demo.json --space-file demo-3-classes.json --out luts/demo3.json
hwnas profile --transfer-from luts/DONOR.json --suggest 20 --out list.csv        # networks to time on a device hwnas cannot reach
hwnas profile --transfer-from luts/DONOR.json --measurements list.csv --out luts/phone.json   # ... from your timings
(interrupted? run the same command again: it resumes)""")
    _add_profiler_flags(p, required=False)
    _add_space(p, default=None)
    _add_space_data(p)
    p.add_argument("--lut", type=Path, metavar="BASE_LUT",
                   help="derive: a LUT of this device whose space differs from --space/--space-file by a few blocks "
                        "(another num_classes, say): measure only the blocks BASE_LUT lacks, copy the rest, then "
                        "calibrate on networks of the new space; the LUT records BASE_LUT's path and digest")
    p.add_argument("--transfer-from", type=Path, metavar="DONOR_LUT",
                   help="few-shot: fit this device's LUT from a LUT of another device (same space, CPU to CPU or GPU "
                        "to GPU) and --networks whole networks measured here, instead of timing every block")
    p.add_argument("--networks", type=positive_int, metavar="N",
                   help="with --transfer-from: whole networks to measure (chosen to span the space's latency range "
                        "and block types) [20]")
    p.add_argument("--device-time", type=duration, metavar="DURATION",
                   help="with --transfer-from: the device's time for the whole transfer (90, 90s, 2m, 1h30m); what "
                        "the networks leave goes to measuring the blocks the fit is least sure of, then it refits")
    p.add_argument("--time-budget", dest="device_time", type=duration, metavar="DURATION", action=DeprecatedFlag,
                   new="--device-time")
    p.add_argument("--measurements", type=Path, metavar="CSV",
                   help="with --transfer-from: fit from latencies you measured elsewhere (a CSV 'arch,ms': an arch "
                        "file, inline arch JSON or a NAS-Bench-201 string, and milliseconds), nothing measured here")
    p.add_argument("--suggest", type=int, metavar="N",
                   help="with --transfer-from: write to --out a CSV of the N networks the fit learns most from, for "
                        "you to time on a device hwnas cannot reach (then --measurements)")
    p.add_argument("--list", action="store_true", help="list profilers, available or not (with the reason)")
    p.add_argument("--resolutions", type=int, nargs="+", help="only these input resolutions [default: all]")
    p.add_argument("--out", type=file_path, help="LUT file to write (resumed when it exists)")
    p.add_argument("--export-bundle", type=Path, metavar="DIR",
                   help="write the blocks and networks as model files + a manifest for `hwnas-agent run` on a "
                        "device hwnas cannot reach (offline); no LUT yet")
    p.add_argument("--import-timings", type=Path, metavar="FILE",
                   help="build the LUT from the timings `hwnas-agent run` wrote for an exported bundle")
    p.add_argument("--paired", action="store_true",
                   help="time every block and network in alternation with a fixed reference network, so slow "
                        "spells of a shared or throttling device cancel (ORT profilers; the LUT stays paired)")
    p.add_argument("--force", action="store_true", help="start over even if --out exists")
    p.add_argument("--no-calibrate", action="store_true", help="skip the whole-network calibration")
    p.add_argument("--calibrate", dest="no_calibrate", action="store_false", help="calibrate (the default)")
    p.add_argument("--recalibrate", action="store_true", help="discard the stored calibration and measure it again")
    p.add_argument("--calib-archs", type=positive_int, default=30, help="whole networks measured to calibrate [30]")
    p.add_argument("--cv-threshold", type=float, default=0.05,
                   help="with --processes 0: re-measure entries noisier than this robust CV [0.05]")
    p.add_argument("--processes", type=int, default=2,
                   help="measure each block in N passes of fresh processes, keep the lowest median; "
                        "0 = all in this process (faster, less robust) [2]")
    p.add_argument("--seed", type=seed_int, default=0, help="seed for the calibration archs [0]")
    _add_quiet(p)

    p = add("predict", cmd_predict, "predict network latency from a LUT",
            """
hwnas predict --lut luts/amd-epyc-2c_ort-cpu_mbv3.json --arch arch.json --breakdown
hwnas predict --lut luts/amd-epyc-2c_ort-cpu_mbv3.json --sample 5 --seed 0 --json""")
    p.add_argument("--lut", type=Path, required=True, action="append",
                   help="LUT file; twice or more (--lut fp32.json --lut int8.json) compares them per network and, "
                        "with --breakdown, per block")
    _add_space(p, default=None)
    _add_space_data(p)
    p.add_argument("--arch", type=Path, nargs="+", help="architecture JSON file(s)")
    p.add_argument("--archs", type=Path, metavar="FILE",
                   help="a list of archs in one file: a JSON list, JSON Lines, or for a cell space NAS-Bench-201 "
                        "strings one a line")
    p.add_argument("--sample", type=sample_count, default=0,
                   help=f"predict N random archs instead (at most {MAX_SAMPLE:,}; printed as they are priced)")
    p.add_argument("--resolution", type=int, help="input resolution of the sampled archs [random]")
    p.add_argument("--seed", type=seed_int, default=0, help="seed of the sampled archs (--sample) [0]")
    p.add_argument("--breakdown", action="store_true", help="print each block's LUT latency")
    p.add_argument("--json", action="store_true", help="machine-readable output")

    p = add("measure", cmd_measure, "measure a whole network end-to-end with a profiler (an arch or an ONNX file)",
            """
hwnas measure --lut luts/amd-epyc-2c_ort-cpu_mbv3.json --arch arch.json   # LUT's profiler, plus prediction error
hwnas measure --profiler ort-cpu model.onnx""")
    p.add_argument("model", nargs="?", help="an ONNX (or .ort) file to measure")
    _add_profiler_flags(p, required=False)
    p.add_argument("--lut", type=Path, help="use this LUT's profiler and settings and report the prediction error")
    _add_space(p, default=None)
    _add_space_data(p)
    p.add_argument("--arch", type=Path, nargs="+", help="architecture JSON file(s)")
    p.add_argument("--sample", type=int, default=0, help="measure N random archs")
    p.add_argument("--processes", type=int, default=1,
                   help="measure each arch in N fresh processes, keep the lowest median; 0 = this process [1]")
    p.add_argument("--resolution", type=int, help="input resolution of the sampled archs [random]")
    p.add_argument("--seed", type=seed_int, default=0, help="seed of the sampled archs (--sample) [0]")
    p.add_argument("--json", action="store_true", help="machine-readable output (one JSON object)")
    p.add_argument("--no-drift-check", action="store_true",
                   help="with --lut: skip re-measuring the LUT's reference networks first (saves a few seconds)")
    _add_quiet(p)

    p = add("search", cmd_search, "multi-objective search (accuracy up, latency down) under constraints",
            """
hwnas search --lut luts/amd-epyc-2c_ort-cpu_mbv3.json --budget-ms 8 --evaluator proxy:synflow \\
             --strategy nsga2 --population 50 --generations 20 --seed 0 --out runs/mbv3-8ms
hwnas search ... --out runs/mbv3-8ms --resume      # after an interruption: same flags plus --resume""")
    p.add_argument("--lut", type=Path, required=True, help="LUT file (its space is searched)")
    p.add_argument("--space-file", type=Path, help="search this space instead of the LUT's (same blocks needed)")
    p.add_argument("--space", default=None, help=argparse.SUPPRESS)
    p.add_argument("--out", type=dir_path, required=True, help="run directory")
    p.add_argument("--budget-ms", type=finite_positive, help="latency budget (predicted ms on the LUT's device)")
    p.add_argument("--margin", type=fraction_or_percent, metavar="PCT",
                   help="with --budget-ms: a safety margin below the budget, 5%% or 0.05: every pick is predicted "
                        "at or under budget x (1 - margin), so the measured latency has room for the LUT's error "
                        "(recorded in the run; finalize says how far below the budget the pick is) [none]")
    p.add_argument("--evaluator", default="proxy:meco",
                   help="accuracy evaluator (hwnas plugins --kind evaluator); the default is data-free and the best "
                        "measured one on public ground truth (docs/evaluators.md) [proxy:meco]")
    p.add_argument("--evaluator-option", action="append", metavar="KEY=VALUE",
                   help="evaluator setting, repeatable (e.g. path=predictor.pt for --evaluator predictor)")
    p.add_argument("--strategy", default="nsga2",
                   help="nsga2 | evolution | random | reinforce | progressive | predictor-guided | bayesian | differentiable (needs --evaluator supernet), or a plugin's (entry-point group hwnas.strategies); an "
                        "unknown name is refused with the list found [nsga2]")
    p.add_argument("--strategy-option", action="append", metavar="KEY=VALUE",
                   help="a strategy's own option, e.g. mutate_prob=0.05, crossover_prob=0.8 (nsga2), sample_size=10 "
                        "(evolution), lr=0.005 (reinforce); repeatable; an unknown key is refused with the list")
    p.add_argument("--data", metavar="DATA",
                   help="the images the model is for (fashion-small, an .npz, an image folder ...): an evaluator that "
                        "reads data reads them, and finalize trains and tests the pick on them; checked against the "
                        "space's class count before anything runs; `none`: data-free evaluators only [none]")
    p.add_argument("--refine", type=positive_int, default=0, metavar="K",
                   help="after the search, train the K best archs under the constraints briefly from scratch on "
                        "--data and re-rank them by the mean rank of their score and that accuracy (the "
                        "multi-fidelity scheme of docs/evaluators.md); the pick goes to refine.json, which "
                        "finalize takes [0: off]")
    p.add_argument("--refine-epochs", type=positive_int, default=2, metavar="E",
                   help="epochs of each --refine training [2]")
    p.add_argument("--population", type=positive_int, default=50, help="archs per generation [50]")
    p.add_argument("--generations", type=positive_int, default=20, help="generations to run [20]")
    p.add_argument("--seed", type=seed_int, default=0, help="seed of the strategy (the same seed, the same run) [0]")
    p.add_argument("--workers", type=positive_int, default=1,
                   help="parallel evaluations: local processes, or Ray actors with --executor ray (there 1 = one "
                        "per CPU of the cluster) [1]")
    p.add_argument("--executor", choices=["local", "ray"], default="local",
                   help="where evaluations run: this machine, or Ray (pip install 'hwnas[ray]') [local]")
    p.add_argument("--ray-address", metavar="ADDR",
                   help="with --executor ray: 'auto' or ray://HOST:PORT joins a cluster [a new local Ray]")
    p.add_argument("--resume", action="store_true", help="continue the run in --out")
    p.add_argument("--salvage", action="store_true",
                   help="with --resume: if the run's store is damaged, keep it as run.sqlite.damaged, copy what is "
                        "readable into a new one and resume that (no stored evaluation is repeated)")
    p.add_argument("--max-params-m", type=finite_positive, help="constraint: parameters in millions")
    p.add_argument("--max-memory-mb", type=finite_positive, help="constraint: peak activation memory (fp32) in MB")
    p.add_argument("--min-accuracy", type=finite_positive, help="constraint: minimum accuracy (evaluator's score)")
    p.add_argument("--max-layers", type=positive_int, help="constraint: number of blocks")
    p.add_argument("--max-macs-m", type=finite_positive, help="constraint: multiply-accumulates in millions")
    p.add_argument("--objectives", nargs="+", default=["accuracy", "latency_ms"],
                   help="accuracy latency_ms [params_m macs_m memory_mb]: the front, its hypervolume and front.csv "
                        "use every one given")
    p.add_argument("--proposals", choices=["feasible", "any"], default="feasible",
                   help="feasible: every strategy proposes within the constraints known before evaluating (LUT "
                        "latency, params, MACs, memory, layers); any: unchecked, as before [feasible]")
    p.add_argument("--max-evaluations", type=positive_int, metavar="N",
                   help="stop after N evaluations (the last generation is cut to fit)")
    p.add_argument("--wall-time", type=duration, metavar="DURATION",
                   help="stop when the run's wall time (every session, --resume included) reaches it: 90, 90s, 30m, "
                        "2h, 1h30m")
    p.add_argument("--time-budget", dest="wall_time", type=duration, metavar="DURATION", action=DeprecatedFlag,
                   new="--wall-time")
    p.add_argument("--stop-when-stalled", type=positive_int, metavar="K",
                   help="stop when the front's hypervolume has not grown for K generations")
    _add_quiet(p)

    p = add("supernet", cmd_supernet, "train a weight-sharing supernet of a space on a data set (resumable)",
            """
hwnas supernet --space demo --data digits --epochs 20 --out runs/supernet-demo.pt
hwnas supernet --space cell-demo --data fashion-mnist --data-limit 1000 --epochs 12 --out runs/supernet-cell.pt
hwnas supernet --space-file my_space.json --data ~/data/cifar-10-batches-py --out runs/sn.pt --resume""")
    _add_space(p, default="demo")
    p.add_argument("--data", required=True,
                   help="the images to train on (required: hwnas picks none for you): fashion-small, digits "
                        "(embedded), fashion-mnist (Debian's dataset-fashion-mnist), idx:DIR (MNIST-style IDX "
                        "files), an .npz (x: N x H x W x C uint8, y), a CIFAR python directory or an image folder")
    p.add_argument("--split-seed", type=seed_int, default=0, help="seed of the train/val/test split [0]")
    p.add_argument("--data-limit", type=positive_int, metavar="N",
                   help="keep N images per class (stratified, seeded) before the train/val split; an official "
                        "test set is kept whole: quick runs [all]")
    p.add_argument("--epochs", type=positive_int, default=20, help="training epochs [20]")
    p.add_argument("--batch-size", type=positive_int, default=64, help="training batch size [64]")
    p.add_argument("--lr", type=finite_positive, default=0.1, help="learning rate of SGD (Nesterov momentum; scheduled) [0.1]")
    p.add_argument("--random-subnets", type=int, default=2, help="random subnets per step besides largest/smallest")
    p.add_argument("--sampling", choices=["uniform", "connected", "fair"], default=None,
                   help="random subnets: uniform, or connected only (a cell space's archs whose output some "
                        "path reaches), or fair (cell and darts spaces: FairNAS, one subnet per op, every op of every "
                        "edge (darts: of every node's input position) in exactly one of them each step; strict "
                        "fairness needs --no-distill, which drops the largest arch's teacher pass) [fair for a "
                        "cell space, else uniform]")
    p.add_argument("--no-distill", action="store_true",
                   help="random subnets learn the labels, not the largest subnet's soft labels")
    p.add_argument("--seed", type=seed_int, default=0, help="seed of the weights and the subnets sampled [0]")
    p.add_argument("--compute", default="auto", metavar="auto|cpu|cuda|cuda:N",
                   help="where to train: auto (a CUDA GPU when torch sees one, else every CPU core), cpu, cuda or "
                        "cuda:N [auto]")
    p.add_argument("--device", dest="compute", action=DeprecatedFlag, new="--compute",
                   help="deprecated spelling of --compute (accepted until the next release; --device elsewhere names "
                        "a device agent)")
    p.add_argument("--out", type=file_path, required=True, help="checkpoint file (rewritten every epoch)")
    p.add_argument("--resume", action="store_true", help="continue the checkpoint in --out")
    p.add_argument("--force", action="store_true", help="start over even if --out exists")
    _add_quiet(p)

    p = add("predictor", cmd_predictor, "fit the accuracy predictor (an MLP on Arch.encode()) to supernet accuracy",
            """
hwnas predictor --checkpoint runs/sn-demo.pt --archs 200 --out runs/predictor-demo.pt
then: hwnas search ... --evaluator predictor --evaluator-option path=runs/predictor-demo.pt""")
    p.add_argument("--checkpoint", type=Path, required=True, help="trained supernet (hwnas supernet)")
    p.add_argument("--archs", type=positive_int, default=200, help="random archs to score and fit on (20 %% held out) [200]")
    p.add_argument("--epochs", type=positive_int, default=300, help="MLP training epochs [300]")
    p.add_argument("--seed", type=seed_int, default=0, help="seed of the archs scored and of the MLP [0]")
    p.add_argument("--out", type=file_path, required=True, help="predictor file to write")
    p.add_argument("--force", action="store_true", help="overwrite --out")
    _add_quiet(p)

    p = add("finalize", cmd_finalize, "export a searched arch to ONNX, prove parity, and MEASURE it against the budget",
            """
hwnas finalize runs/demo/search --out dist/demo
hwnas finalize runs/mbv3-8ms --pick 3fa2c81b09de --int8 --finetune-epochs 2 --out dist/mbv3-8ms --force
exit code: 0 PASS (or no budget), 1 FAIL (measured over the budget, or ONNX parity failed), 2 bad input,
5 UNCERTAIN (measured twice, too noisy to tell: the budget inside the measurement's p10-p90, or its CV too high)""")
    p.add_argument("run", type=Path, help="run directory of `hwnas search`")
    p.add_argument("--out", type=dir_path, required=True, help="bundle directory (model.onnx, model.ort, report.*)")
    p.add_argument("--pick", default="best", help="best (most accurate feasible arch) or an ARCH_ID of the run")
    p.add_argument("--finetune-epochs", type=int, default=0, help="fine-tune the inherited weights E epochs [0]")
    p.add_argument("--train-epochs", type=positive_int, metavar="E",
                   help="for a run with no supernet: train the pick from scratch at most E epochs (early stopping "
                        "on the validation split) [12, the reference recipe's]")
    p.add_argument("--int8", action="store_true",
                   help="also write a static QDQ int8 model, with accuracy and latency (implied by an int8 LUT, "
                        "whose int8 model is then the one judged)")
    p.add_argument("--profiler", help="measure with this profiler [the LUT's]")
    p.add_argument("--processes", type=int, default=2,
                   help="measure in N fresh processes, keep the lowest median (as the LUT was built) [2]")
    p.add_argument("--max-cv", type=fraction_or_percent, default=0.10, metavar="PCT",
                   help="a measurement whose robust CV is over this (or whose p10-p90 holds the budget, or whose CV "
                        "is over 25 %%) cannot decide the verdict: it is measured once more, then UNCERTAIN (exit 5) "
                        "if still so; 10%% or 0.10 [10%%]")
    p.add_argument("--checkpoint", type=Path, help="supernet checkpoint [the run's]")
    p.add_argument("--data", help="data set to test (and, for a run with no supernet, train) the pick on [the run's]")
    p.add_argument("--lut", type=Path, help="LUT file [the run's]")
    p.add_argument("--force", action="store_true",
                   help="replace the bundle in --out as a whole (swapped in only once complete)")
    _add_device_flags(p)
    p.add_argument("--accept-lut-change", action="store_true",
                   help="go on with a LUT whose content is not the one the run was searched with (refused "
                        "otherwise); the report records the mismatch")
    _add_quiet(p)

    p = add("probe", cmd_probe, "how repeatable latency is on this device (~15 s), and whether a busy neighbour or "
                                "the device itself is the cause",
            """
hwnas probe                                   # ort-cpu, the mbv3 space, 15 s
hwnas probe --profiler ort-cpu --space nb201 --seconds 20 --json probe.json
hwnas probe --profiler torch-cpu --space demo --pin-cpu 0""")
    _add_probe_flags(p)

    p = add("report", cmd_report, "re-render report.md and pareto.png of a finalize bundle or a search run",
            """
hwnas report dist/demo          # a finalize bundle (has report.json)
hwnas report runs/demo/search   # a search run""")
    p.add_argument("path", type=Path, help="a finalize bundle (with report.json) or a search run directory")

    p = add("demo", cmd_demo, "the whole pipeline on embedded Fashion-MNIST: LUT, accuracy, search, finalize",
            """
hwnas demo                       # ~3-4 min on 2 CPU cores (plus ~2 min when a LUT must be transferred); outputs in runs/demo
hwnas demo --space demo --out runs/demo-mbv3   # the MobileNetV3-style space with a 10-epoch supernet (~4-5 min)
hwnas demo --out runs/demo2 --refine 8 --profiler ort-mobile
(interrupted? run the same command again: every step resumes)""")
    p.add_argument("--out", type=dir_path, default=Path("runs/demo"), help="directory of every step's outputs [runs/demo]")
    p.add_argument("--profiler", default="ort-cpu", help="ort-cpu | ort-mobile | torch-cpu | torch-cuda | torch-cuda-graph [ort-cpu]")
    p.add_argument("--space", default="network-demo", choices=["network-demo", "demo", "cell-demo"],
                   help="network-demo (stages of conv / depthwise-separable / bottleneck / inverted-residual / "
                        "attention layers; accuracy by NASWOT, then the best under the budget trained briefly and "
                        "re-ranked), demo (MobileNetV3-style blocks) or cell-demo (NAS-Bench-201-style cells): "
                        "accuracy by a supernet [network-demo]")
    p.add_argument("--data", default="fashion-small",
                   help="fashion-small (embedded stratified Fashion-MNIST subset, 600 images per class) or digits "
                        "(embedded, 8x8), or any --data of `hwnas supernet` [fashion-small]")
    p.add_argument("--epochs", type=positive_int, default=10, help="supernet training epochs (demo, cell-demo) [10]")
    p.add_argument("--refine", type=positive_int, default=6, metavar="K",
                   help="network-demo: candidates under the budget trained briefly and re-ranked [6]")
    p.add_argument("--refine-epochs", type=positive_int, default=2, metavar="E",
                   help="network-demo: epochs of each of those trainings [2]")
    p.add_argument("--population", type=positive_int, default=24, help="search: archs per generation [24]")
    p.add_argument("--generations", type=positive_int, default=10, help="search: generations [10]")
    p.add_argument("--seed", type=seed_int, default=0, help="seed of every step (supernet or refine, search) [0]")
    p.add_argument("--force", action="store_true", help="start every step over")
    p.add_argument("--quick", action="store_true",
                   help="if a LUT must be built here: short timing runs, one pass (~4x faster to build, noisier); "
                        "for previews")
    p.add_argument("--full-lut", action="store_true",
                   help="when no shipped LUT matches this machine, build one block by block (minutes) instead of "
                        "transferring one from a shipped LUT of the same profiler and space (about a minute)")
    _add_device_flags(p)
    _add_quiet(p)

    p = add("score", cmd_score, "score a list of architectures with an accuracy evaluator (higher = predicted "
            "more accurate): what predict is for latency",
            """
hwnas score --space cell --archs nb201.txt --data none --json scores.json   # NAS-Bench-201 strings, data-free
hwnas sample --space demo --n 20 --out archs.jsonl && hwnas score --space demo --archs archs.jsonl
hwnas score --space demo --archs archs.jsonl --evaluator proxy:naswot --data fashion-small""")
    _add_space(p)
    p.add_argument("--archs", type=Path, required=True, metavar="FILE",
                   help="the archs: a JSON list of arch objects, JSON Lines (hwnas sample --n N --out), or for a cell "
                        "space NAS-Bench-201 strings one a line")
    p.add_argument("--evaluator", help="accuracy evaluator (hwnas plugins --kind evaluator) [proxy:meco, the best "
                                       "measured: docs/evaluators.md]")
    p.add_argument("--evaluator-option", action="append", metavar="KEY=VALUE",
                   help="evaluator setting, repeatable (e.g. checkpoint=sn.pt for --evaluator supernet)")
    p.add_argument("--data", metavar="NAME|none",
                   help="data set for an evaluator that needs data (fashion-small, fashion-mnist, digits, a folder, "
                        "npz:FILE ...); none: data-free evaluators only")
    p.add_argument("--json", type=file_path, metavar="OUT",
                   help="write {evaluator, config, results: [{arch_id, score}, ...]} here, in the order given")
    p.add_argument("--quiet", action="store_true",
                   help="no progress; with --json, print only where the scores went")

    p = add("scale", cmd_scale, "compound scaling (EfficientNet): grow a base arch's depth, width and resolution "
            "together to the largest step whose LUT-predicted latency fits the budget",
            """
hwnas sample --space network-demo --seed 1 --out base.json
hwnas scale --lut luts/LUT.json --arch base.json --budget-ms 0.1 --out scaled.json          # grid, scored by proxy:meco
hwnas scale --lut luts/LUT.json --arch base.json --budget-ms 0.1 --alpha-beta-gamma 1.2,1.1,1.15 --out scaled.json""")
    p.add_argument("--lut", type=Path, required=True, help="LUT of the space, on the target device")
    _add_space(p, default=None)
    p.add_argument("--arch", type=Path, required=True, help="the base architecture (JSON)")
    p.add_argument("--budget-ms", type=finite_positive, required=True, help="latency budget in ms (predicted)")
    p.add_argument("--alpha-beta-gamma", metavar="A,B,G",
                   help="scale with these coefficients only (depth, width, resolution) [the grid with "
                        "alpha*beta^2*gamma^2 within 0.1 of 2]")
    p.add_argument("--grid", action="store_true", help="search the grid (the default without --alpha-beta-gamma)")
    p.add_argument("--evaluator", default="proxy:meco",
                   help="rank the grid's candidates with this evaluator; none: take the one using most of the "
                        "budget [proxy:meco]")
    p.add_argument("--data", help="data set for an evaluator that reads data")
    p.add_argument("--out", type=file_path, required=True, help="the scaled arch (JSON), an arch of the same kind")
    _add_quiet(p)

    p = add("sample", cmd_sample, "write random architecture(s) of a space as JSON",
            "hwnas sample --space mbv3 --seed 1 --out arch.json")
    _add_space(p)
    _add_space_data(p)
    p.add_argument("--n", type=positive_int, default=1, help="how many archs (more than 1: JSON Lines, one a line) [1]")
    p.add_argument("--resolution", type=int, help="input resolution [random]")
    p.add_argument("--seed", type=seed_int, default=0, help="seed of the sampling [0]")
    p.add_argument("--out", type=file_path, help="write here instead of printing")

    p = add("plugins", cmd_plugins, "list every profiler, strategy, evaluator and space kind: built in or from "
            "which installed package, and whether it loads (a profiler: whether it can run here, or why not)",
            """
hwnas plugins
hwnas plugins --kind strategy
hwnas plugins --kind profiler --json
hwnas plugins --options supernet            # an evaluator's --evaluator-option keys and their defaults""")
    p.add_argument("--kind", choices=PLUGIN_KINDS, help="only plugins of this kind")
    p.add_argument("--options", metavar="NAME",
                   help="list the options plugin NAME takes (an evaluator's --evaluator-option keys, a strategy's "
                        "--strategy-option keys, a profiler's) with their defaults, from its registry")
    p.add_argument("--json", action="store_true", help="one JSON list (with each plugin's module:attr target)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    try:
        code = _main(argv)
        if sys.stdout is not None:
            sys.stdout.flush()  # here, not at exit: a closed pipe is then still ours to handle
        return code
    except BrokenPipeError:  # `hwnas plugins | head -1`: the reader left; say nothing, as cat and ls do
        _quiet_stdout()
        return EXIT_BROKEN_PIPE


def _main(argv: Sequence[str] | None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "command", None):
        parser.print_help()
        return EXIT_OK
    said = _unusable_process_state()
    if said:  # before any import of torch (which dies in oneMKL without a current directory) or any work
        if sys.stderr is not None:
            print(f"hwnas {args.command}: error: {said}", file=sys.stderr)
        return EXIT_INPUT
    from hwnas.core.errors import describe_os_error
    from hwnas.core.progress import set_quiet

    set_quiet(bool(getattr(args, "quiet", False)))
    try:
        if getattr(args, "agent_url", None) is not None:
            if not args.agent_url.strip():  # an unset shell variable: --device "$BOARD" measured here, silently
                raise CLIError("--device is empty; give the agent as tcp://HOST:PORT, or leave --device out to "
                               "measure on this host")
            from hwnas.measuring.measure import target_device

            with target_device(args.agent_url, args.token_file):
                return args.func(args)
        if getattr(args, "token_file", None):
            raise CLIError("--token-file goes with --device tcp://HOST:PORT")
        return args.func(args)
    except KeyboardInterrupt:
        again = ("add --resume to the same command to continue" if args.command in ("search", "supernet")
                 else "run the same command again to resume")  # search and supernet refuse an --out without it
        print(f"\ninterrupted; what was saved is kept ({again})", file=sys.stderr)
        return EXIT_INTERRUPTED
    except HwnasError as e:  # the root of every error hwnas raises for the user: its code, one line
        if args.debug:
            raise
        print(f"hwnas {args.command}: error: {_one_line(str(e))}", file=sys.stderr)
        return e.exit_code
    except BrokenPipeError:
        raise
    except Exception as e:  # a bug in hwnas, not bad input: its own exit code, and the traceback kept
        if args.debug:
            raise
        said = describe_os_error(e) if isinstance(e, OSError) else None
        if said is not None:  # the environment refused (permission, space, a read-only disk, a symlink loop)
            print(f"hwnas {args.command}: error: {_one_line(said)}", file=sys.stderr)
            return EXIT_INPUT
        where = _save_traceback(args.command)
        print(f"hwnas {args.command}: internal error: {type(e).__name__}: {_one_line(str(e))} "
              f"(traceback written to {where}; please report it with that file)", file=sys.stderr)
        return EXIT_INTERNAL


def _unusable_process_state() -> str | None:
    """What this process was started without that every command needs: a current directory (deleted under a
    shell that stayed in it: torch then fails to load inside oneMKL, naming a library), a standard output (``>&-``:
    the results had nowhere to go and the flush raised AttributeError). None when both are there."""
    try:
        os.getcwd()
    except OSError:
        return ("the current directory no longer exists (deleted, or its file system unmounted); cd to an existing "
                "directory and run the command again")
    if sys.stdout is None:
        return ("standard output is closed (started with >&-), so the results would go nowhere; give it somewhere "
                "to go (> FILE, or > /dev/null to discard them)")
    return None


def _quiet_stdout() -> None:
    """Point stdout at /dev/null, so the interpreter's flush at exit does not hit the closed pipe again (the
    recipe of Python's signal docs, "Note on SIGPIPE")."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass


def _one_line(msg: str) -> str:
    """Errors are one line (scripts grep them); multi-line messages are joined, and what they echo is capped: a
    list of more than 32 values shows its first 16 and how many there are (a space of 10,000 resolutions made a
    60 KB line), and a line longer than 2,000 characters keeps its head and its tail."""
    import re

    def cap(m: re.Match) -> str:
        items = m.group(1).split(", ")
        return m.group(0) if len(items) <= 32 else f"[{', '.join(items[:16])}, … ({len(items):,} values)]"

    line = " ".join(part.strip() for part in msg.strip().splitlines() if part.strip()) or "(no message)"
    line = re.sub(r"\[([^\[\]]*)\]", cap, line)
    return line if len(line) <= 2000 else f"{line[:1400]} … {line[-500:]}"


def _save_traceback(command: str) -> str:
    """Write the current exception's traceback (and how hwnas was called) to a new file; return its path."""
    import tempfile
    import traceback

    try:
        fd, path = tempfile.mkstemp(prefix=f"hwnas-{command}-traceback-", suffix=".txt")
        with os.fdopen(fd, "w") as f:
            f.write(f"command: {_command()}\n\n")
            traceback.print_exc(file=f)
    except OSError as e:  # the temporary folder is full or read-only: the one line is still said
        return f"nowhere: {tempfile.gettempdir()} refused it ({e.strerror})"
    return path


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
