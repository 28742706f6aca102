"""``hwnas profile``: build a LUT here, derive one, transfer one from a donor, or export and import an offline bundle."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Callable

from hwnas.app.args import (CLIError, DeprecatedFlag, add_profiler_flags, add_quiet, add_space, add_space_data,
                            command_line, duration, file_path, positive_int, profiler_options_of, seed_int,
                            space_from_file, space_of)
from hwnas.core.errors import EXIT_OK


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
    space = space_of(args)
    build = dict(resolutions=args.resolutions, calibrate=not args.no_calibrate, calib_archs=args.calib_archs,
                 seed=args.seed, processes=args.processes, paired=args.paired)
    options = profiler_options_of(args)
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
            report = build_lut(args.profiler, space, args.out, profiler_options=profiler_options_of(args),
                               command=command_line(), force=args.force, cv_threshold=args.cv_threshold,
                               recalibrate=args.recalibrate, **build)
    else:
        report = build_lut(args.profiler, space, args.out, profiler_options=options, command=command_line(),
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
    r = derive_lut(args.lut, space_of(args), args.out, profiler_name=args.profiler, resolutions=args.resolutions,
                   quick=args.quick, command=command_line(), force=args.force, cv_threshold=args.cv_threshold,
                   calibrate=not args.no_calibrate, calib_archs=args.calib_archs, seed=args.seed,
                   processes=args.processes, progress=not args.quiet,
                   threads=None if args.threads == 1 else args.threads)
    return _said(r)


def _said(r) -> int:
    """A derive or transfer result: its lines on stdout, its warning (a poor fit, a chained donor) on stderr."""
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
    space = space_from_file(args) if args.space_file else get_space(args.space) if args.space else None
    if args.measurements or args.suggest is not None:
        return _transfer_offline(args, space)
    r = transfer_lut(args.transfer_from, args.profiler, args.out, space=space, networks=args.networks or 20,
                     resolutions=args.resolutions, profiler_options=profiler_options_of(args), processes=args.processes,
                     seed=args.seed, time_budget_s=args.device_time, force=args.force, command=command_line())
    return _said(r)


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
                                   space=space, seed=args.seed, command=command_line(), force=args.force)
    return _said(r)


def _export_bundle(args: argparse.Namespace) -> int:
    from hwnas.measuring.bundle import export_bundle

    if not args.profiler:
        raise CLIError("--export-bundle needs --profiler NAME (what the device runs: ort-cpu or ort-mobile)")
    if args.agent_url:
        raise CLIError("--export-bundle is for a device hwnas cannot reach; with --device the build times there")
    report = export_bundle(args.profiler, space_of(args), args.export_bundle, resolutions=args.resolutions,
                           profiler_options=profiler_options_of(args), calib_archs=args.calib_archs, seed=args.seed,
                           processes=args.processes, calibrate=not args.no_calibrate, command=command_line())
    print(f"bundle {report.path}: {report.blocks} blocks and {report.networks} whole networks, "
          f"{report.bytes / 1e6:.1f} MB. On the device (onnxruntime + numpy; pip install ./agent):\n"
          f"  hwnas-agent run {report.path.name} --out timings.json\n"
          f"then here, with the same flags:  hwnas profile --profiler {args.profiler} ... "
          f"--import-timings timings.json --out LUT.json")
    return EXIT_OK


def parser_profile(add: Callable[..., argparse.ArgumentParser]) -> None:
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
    add_profiler_flags(p, required=False)
    add_space(p, default=None)
    add_space_data(p)
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
    add_quiet(p)
