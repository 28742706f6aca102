"""The ``hwnas`` command. Thin: parses flags, calls the library, prints results.

Exit codes: 0 success, 1 a check failed (e.g. a verdict), 2 bad input (file,
flag, architecture, LUT), 3 the requested profiler/provider is unavailable here,
4 an internal error (a bug: one line, the traceback written to a file), 5 a verdict
too uncertain to give (finalize: the latency measured twice was too noisy to tell PASS from FAIL),
130 interrupted (work saved so far is kept), 141 the reader of stdout went away (`| head`: nothing said).
"""
from __future__ import annotations

import argparse
import os
import sys
from typing import Callable, Sequence

from hwnas.app.args import (CLIError, OneLineParser, command_line, with_examples)
from hwnas.app.commands import plugins, predict, profile, search, ship
from hwnas.core.errors import (EXIT_BROKEN_PIPE, EXIT_INPUT, EXIT_INTERNAL, EXIT_INTERRUPTED, EXIT_OK, HwnasError)


# -- parser ----------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog="hwnas", formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Hardware-aware NAS: profile your device into a latency LUT, search your space under your latency "
                    "budget, and ship an ONNX model whose latency was measured.",
        epilog=with_examples("""
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
        p = sub.add_parser(name, help=help, description=help, epilog=with_examples(examples),
                           formatter_class=argparse.RawDescriptionHelpFormatter)
        p.set_defaults(func=fn)
        p.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help="show tracebacks")
        return p

    profile.parser_profile(add)
    predict.parser_predict(add)
    predict.parser_measure(add)
    search.parser_search(add)
    search.parser_supernet(add)
    search.parser_predictor(add)
    ship.parser_finalize(add)
    predict.parser_probe(add)
    ship.parser_report(add)
    ship.parser_demo(add)
    search.parser_score(add)
    search.parser_scale(add)
    predict.parser_sample(add)
    plugins.parser_plugins(add)
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
            f.write(f"command: {command_line()}\n\n")
            traceback.print_exc(file=f)
    except OSError as e:  # the temporary folder is full or read-only: the one line is still said
        return f"nowhere: {tempfile.gettempdir()} refused it ({e.strerror})"
    return path
