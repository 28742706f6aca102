"""The ``hwnas-agent`` command: serve (network), run (an offline bundle), token, fingerprint."""
from __future__ import annotations

import argparse
import ipaddress
import json
import math
import os
import sys
from pathlib import Path
from typing import Optional, Sequence

from hwnas_agent import __version__

EXAMPLES = """examples:
  hwnas-agent token --out ~/.hwnas-agent-token          # once; copy the file to the host (scp), keep it private
  hwnas-agent serve --port 7878 --token-file ~/.hwnas-agent-token
  hwnas-agent serve --host 0.0.0.0 --port 7878 --token-file TOKEN   # reachable from the network (trusted LAN only)
  hwnas-agent run bundle/ --out timings.json             # offline: time an exported bundle, resumable
  hwnas-agent fingerprint
on the host:  hwnas profile --profiler ort-cpu --space demo --out luts/board.json --device tcp://BOARD:7878 --token-file TOKEN
"""


class OptionError(ValueError):
    """A start-up option that cannot work: ``hwnas-agent serve: error: argument OPTION: what to do`` (exit 2)."""

    def __init__(self, option: str, message: str):
        super().__init__(f"argument {option}: {message}")


def _workdir(path: Path) -> Path:
    """The work directory and its model store, created when missing; a file, or one that cannot be created, is
    refused naming --workdir (it was only "[Errno 17] File exists")."""
    models = path / "models"
    for p in (path, models):
        if p.exists() and not p.is_dir():
            raise OptionError("--workdir", f"{p} is a file, not a directory; give a directory (it is created) or "
                                           f"move the file away")
    if models.is_symlink():
        raise OptionError("--workdir", f"{models} is a symbolic link; the agent keeps its model files in a "
                                       f"directory of its own: remove the link")
    try:
        models.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as e:
        raise OptionError("--workdir", f"cannot create {models} ({e.strerror or e}); give a directory this user "
                                       f"can write") from None
    return path


def _serve(args: argparse.Namespace) -> int:
    from hwnas_agent.protocol import read_token
    from hwnas_agent.server import MiB, AgentServer, log

    try:
        token = read_token(args.token_file)
    except ValueError as e:
        raise OptionError("--token-file", str(e)) from None
    workdir = _workdir(Path(args.workdir or Path.home() / ".cache" / "hwnas-agent").resolve())
    try:
        server = AgentServer(args.host, args.port, token, workdir, max_file_bytes=args.max_file_mb * MiB,
                             max_store_bytes=args.max_store_mb * MiB, idle_timeout=args.idle_timeout,
                             handshake_timeout=args.handshake_timeout, max_handshakes=args.max_handshakes)
    except OSError as e:  # the port is taken or privileged, the host is not an address of this device
        raise OSError(f"cannot listen on {args.host}:{args.port}: {e.strerror or e}; give another --port (0 picks a "
                      f"free one) or an address of this device as --host (127.0.0.1, 0.0.0.0)") from None
    host, port = server.server_address[:2]
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        log(f"WARNING: listening on {host}, not loopback: whoever reaches port {port} and holds the token can make "
            f"this device time models")
    print(f"hwnas-agent {__version__} listening on {host}:{port} (work dir {workdir}; pid {os.getpid()})",
          flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        return 130
    finally:
        server.server_close()
    return 0


def _run(args: argparse.Namespace) -> int:
    from hwnas_agent.bundle import run_bundle

    report = run_bundle(Path(args.bundle), Path(args.out), progress=not args.quiet)
    print(f"{report.timed} item(s) timed now, {report.resumed} resumed from {args.out}; "
          f"{report.extra} extra pass(es) where two processes disagreed; {report.seconds:.0f} s")
    return 0


def _token(args: argparse.Namespace) -> int:
    from hwnas_agent.protocol import new_token

    out = Path(args.out)
    if out.exists() and not args.force:
        print(f"hwnas-agent: {out} exists; --force replaces it", file=sys.stderr)
        return 2
    fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(new_token() + "\n")
    print(f"wrote a new token to {out} (mode 600); give the same file to the host with --token-file")
    return 0


def _fingerprint(_args: argparse.Namespace) -> int:
    from hwnas_agent.device import fingerprint

    print(json.dumps(fingerprint(), indent=1))
    return 0


def _port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a port number 0-65535, got {text!r}") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"expected a port number 0-65535 (0: a free one), got {value}")
    return value


def _whole_mb(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = None
    if value is None or value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number of MiB >= 1, got {text!r}")
    return value


def _whole(low: int):
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = None
        if value is None or value < low:
            raise argparse.ArgumentTypeError(f"expected a whole number >= {low}, got {text!r}")
        return value
    return parse


def _seconds(high: float):
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            value = math.nan
        if not (math.isfinite(value) and 0 < value <= high):
            raise argparse.ArgumentTypeError(f"expected a number of seconds > 0 and at most {high:g}, got {text!r}")
        return value
    return parse


class AgentParser(argparse.ArgumentParser):
    """A refused flag is one line naming it and where help is, exit 2 (as hwnas's own commands)."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message} (see `{self.prog} --help`)\n")


def build_parser() -> argparse.ArgumentParser:
    p = AgentParser(prog="hwnas-agent", description="Time model files on this device for hwnas.",
                    epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--version", action="version", version=f"hwnas-agent {__version__}")
    sub = p.add_subparsers(dest="command", required=True)
    s = sub.add_parser("serve", help="serve timing requests over TCP (authenticated)")
    s.add_argument("--port", type=_port, default=7878, help="TCP port [7878]; 0 picks a free one")
    s.add_argument("--host", default="127.0.0.1", help="address to listen on [127.0.0.1: this device only]")
    s.add_argument("--token-file", required=True, help="file with the shared token (hwnas-agent token --out FILE)")
    s.add_argument("--workdir", help="where received model files are kept [~/.cache/hwnas-agent]")
    s.add_argument("--max-file-mb", type=_whole_mb, default=256, help="largest model file accepted [256]")
    s.add_argument("--max-store-mb", type=_whole_mb, default=2048, help="model files kept before the oldest go [2048]")
    s.add_argument("--idle-timeout", type=_seconds(7 * 86400), default=600.0,
                   help="close a logged-in connection idle this long, s [600]")
    s.add_argument("--handshake-timeout", type=_seconds(600), default=10.0,
                   help="a connection must log in (prove the token) within this long in all, s [10]")
    s.add_argument("--max-handshakes", type=_whole(1), default=32,
                   help="connections logging in at once, apart from the 8 logged-in clients [32]")
    s.set_defaults(fn=_serve, parser=s)
    r = sub.add_parser("run", help="time an offline bundle (from hwnas profile --export-bundle); resumable")
    r.add_argument("bundle", help="the bundle directory (with manifest.json)")
    r.add_argument("--out", required=True, help="timings file to write (continued when it exists)")
    r.add_argument("--quiet", action="store_true", help="no progress lines")
    r.set_defaults(fn=_run)
    t = sub.add_parser("token", help="write a new random token file (mode 600)")
    t.add_argument("--out", required=True)
    t.add_argument("--force", action="store_true")
    t.set_defaults(fn=_token)
    f = sub.add_parser("fingerprint", help="print this device's fingerprint (JSON)")
    f.set_defaults(fn=_fingerprint)
    return p


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.fn(args)
    except OptionError as e:
        args.parser.error(str(e))
    except (ValueError, OSError) as e:
        print(f"hwnas-agent: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
