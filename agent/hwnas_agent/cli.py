"""The ``hwnas-agent`` command: serve (network), run (an offline bundle), token, fingerprint."""
from __future__ import annotations

import argparse
import ipaddress
import json
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


def _serve(args: argparse.Namespace) -> int:
    from hwnas_agent.protocol import read_token
    from hwnas_agent.server import MiB, AgentServer, log

    token = read_token(args.token_file)
    workdir = Path(args.workdir or Path.home() / ".cache" / "hwnas-agent").resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    try:
        server = AgentServer(args.host, args.port, token, workdir, max_file_bytes=args.max_file_mb * MiB,
                             max_store_bytes=args.max_store_mb * MiB, idle_timeout=args.idle_timeout)
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


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="hwnas-agent", description="Time model files on this device for hwnas.",
                                epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--version", action="version", version=f"hwnas-agent {__version__}")
    sub = p.add_subparsers(dest="command", required=True)
    s = sub.add_parser("serve", help="serve timing requests over TCP (authenticated)")
    s.add_argument("--port", type=_port, default=7878, help="TCP port [7878]; 0 picks a free one")
    s.add_argument("--host", default="127.0.0.1", help="address to listen on [127.0.0.1: this device only]")
    s.add_argument("--token-file", required=True, help="file with the shared token (hwnas-agent token --out FILE)")
    s.add_argument("--workdir", help="where received model files are kept [~/.cache/hwnas-agent]")
    s.add_argument("--max-file-mb", type=int, default=256, help="largest model file accepted [256]")
    s.add_argument("--max-store-mb", type=int, default=2048, help="model files kept before the oldest go [2048]")
    s.add_argument("--idle-timeout", type=float, default=600.0, help="close a connection idle this long, s [600]")
    s.set_defaults(fn=_serve)
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
    except (ValueError, OSError) as e:
        print(f"hwnas-agent: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
