"""What every ``hwnas`` command shares: argument types that refuse bad values in one line, the flags several
commands take, and reading a space, its archs and a profiler's options from them."""
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
from hwnas.core.errors import EXIT_INPUT, HwnasError


class CLIError(HwnasError):
    """A flag or a combination of flags the command cannot take (exit 2 unless told)."""

    def __init__(self, message: str, code: int = EXIT_INPUT):
        super().__init__(message)
        self.exit_code = code


def with_examples(text: str) -> str:
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
def add_space(p: argparse.ArgumentParser, default: str | None = "mbv3") -> None:
    shipped = ", ".join(sorted(f.stem for f in (Path(__file__).parents[1] / "spaces").glob("*.json")))
    p.add_argument("--space", default=default, help=f"shipped space name ({shipped}) [default: %(default)s]")
    p.add_argument("--space-file", type=Path, help="custom space definition (JSON/TOML/YAML); overrides --space")


def add_space_data(p: argparse.ArgumentParser) -> None:
    """``--data`` on a command that reads no images: only for a space file whose class count is the data's."""
    p.add_argument("--data", metavar="DATA",
                   help="only for a --space-file that says \"num_classes\": \"data\": the data set whose class "
                        "count it takes (as given to search, supernet and finalize)")


def space_from_file(args: argparse.Namespace):
    """``--space-file``, its ``"num_classes": "data"`` resolved with ``--data`` (loaded together, never apart)."""
    from hwnas.spaces.base import classes_from_data, load_space_file

    data = getattr(args, "data", None)
    if data and classes_from_data(args.space_file):
        from hwnas.evaluate.data import load_space_for_data

        return load_space_for_data(args.space_file, data, getattr(args, "split_seed", 0) or 0)
    return load_space_file(args.space_file)


def space_of(args: argparse.Namespace, lut=None):
    from hwnas.spaces.base import get_space

    if getattr(args, "space_file", None):
        return space_from_file(args)
    if lut is not None and getattr(args, "space", None) in (None, lut.space.get("name")):
        return lut.search_space()
    return get_space(args.space or "mbv3")


def profiler_options_of(args: argparse.Namespace, lut=None) -> dict[str, Any]:
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


def add_profiler_flags(p: argparse.ArgumentParser, required: bool = True) -> None:
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
    add_device_flags(p)


def add_probe_flags(p: argparse.ArgumentParser) -> None:
    add_profiler_flags(p, required=False)
    p.set_defaults(profiler="ort-cpu")  # the probe needs one; ort-cpu times what most LUTs here are built with
    add_space(p)
    add_space_data(p)
    p.add_argument("--seconds", type=finite_positive, default=15.0,
                   help="how long to time the block and the network, alternately [15]")
    p.add_argument("--json", type=file_path, metavar="OUT", help="also write the result, every window included, here")


def add_quiet(p: argparse.ArgumentParser) -> None:
    p.add_argument("--quiet", action="store_true",
                   help="no progress (bars on a terminal, a few plain lines elsewhere) and no step-by-step log: only "
                        "the result, warnings and errors")


def log_of(args: argparse.Namespace) -> Callable[[str], None]:
    """What a command's step-by-step log goes to: print, or nothing with --quiet."""
    return (lambda _line: None) if getattr(args, "quiet", False) else print


def add_device_flags(p: argparse.ArgumentParser) -> None:
    # dest agent_url: `--device` names a device agent everywhere (the torch device is `supernet --compute`)
    p.add_argument("--device", dest="agent_url", metavar="tcp://HOST:PORT",
                   help="measure on that device through its hwnas-agent (ORT profilers) instead of on this host")
    p.add_argument("--token-file", help="the agent's shared token file (with --device)")


def load_archs(args: argparse.Namespace, space) -> list:
    return list(archs_of(args, space))


def archs_of(args: argparse.Namespace, space) -> Iterable:
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
    return (at_resolution(space.sample(rng), args.resolution) for _ in range(args.sample))


def at_resolution(arch, resolution: int | None):
    if resolution is None:
        return arch
    from dataclasses import replace

    out = replace(arch, resolution=resolution)
    out.validate("--resolution")
    return out


def warn_noisy(lut: Any) -> None:
    """A LUT its build found noisy: said on stderr by every command that predicts with it, with the finishing
    command (hwnas.latency.quality)."""
    from hwnas.latency.quality import quality_warning

    if warning := quality_warning(lut):
        print(warning, file=sys.stderr)


def key_values(items: Sequence[str] | None, flag: str) -> dict[str, Any]:
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


def command_line() -> str:
    """The command line as the user typed it (``python -m hwnas`` is recorded as ``hwnas``)."""
    prog = Path(sys.argv[0]).name
    return " ".join(shlex.quote(a) for a in ["hwnas" if prog in ("cli.py", "__main__.py") else prog, *sys.argv[1:]])
