"""``hwnas plugins``: every profiler, strategy, evaluator and space kind, built in or installed."""
from __future__ import annotations

import argparse
import json
from typing import Callable

from hwnas.core.errors import EXIT_OK


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


def parser_plugins(add: Callable[..., argparse.ArgumentParser]) -> None:
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
