"""Reading a finished search run: its directory as one :class:`Run` (configuration, front, evaluations).

Beside :mod:`hwnas.search.store` (the SQLite file a search writes); finalize and report read runs through here.
"""
from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hwnas.core.errors import InputError
from hwnas.search.records import SearchRecord
from hwnas.spaces.base import Space, space_from_dict
from hwnas.search.store import SALVAGE, RunStore, StoreError


class RunError(InputError):
    """A run directory that is missing, not a search run, incomplete or damaged (``FinalizeError`` is this)."""


@dataclass
class Run:
    path: Path
    config: dict[str, Any]
    front: list[SearchRecord]
    evals: dict[str, SearchRecord]
    commands: list[str]
    lut_table: dict[str, Any] | None = None  # what the run's LUT held when it began (hwnas.latency.lut.content_table)

    @property
    def space(self) -> Space:
        return space_from_dict(self.config["space"], source=f"{self.path}: space")

    @property
    def budget_ms(self) -> float | None:
        return self.config.get("constraints", {}).get("budget_ms")

    @property
    def margin(self) -> float | None:
        """The safety margin below the budget the pick was kept to (``hwnas search --margin``), as a fraction."""
        return self.config.get("constraints", {}).get("margin")


def read_run(run_dir: str | Path) -> Run:
    """The finished run in ``run_dir`` (``hwnas search --out``), read-only; RunError saying what to do if not."""
    path = Path(run_dir)
    if not path.is_dir():
        raise RunError(f"run directory {str(path)!r} does not exist; run `hwnas search ... --out {path}` first")
    db = path / "run.sqlite"
    if not db.is_file():
        raise RunError(f"{path} is not a search run (no run.sqlite); give the --out directory of `hwnas search`")
    try:
        store = RunStore(db, readonly=True)  # a reader never writes the run it reads
        try:
            store.require_complete()
            config = store.get_meta("config")
            evaluator = (config or {}).get("evaluator")
            evals = store.evals(evaluator) if evaluator else {}
            commands = store.get_meta("commands") or []
            lut_table = store.get_meta("lut_table")
        finally:
            store.close()
    except StoreError as e:  # incomplete, empty, corrupt
        raise RunError(str(e)) from None
    except (sqlite3.DatabaseError, ValueError) as e:  # damaged past its table list, or its JSON
        raise RunError(f"{db}: the run store is corrupt or unreadable ({e}); to repair it, {SALVAGE}; then run "
                       f"this again") from None
    if not isinstance(config, dict) or "space" not in config or "lut" not in config:
        raise RunError(f"{db} has no complete run configuration; the run directory is damaged")
    front_file = path / "front.json"
    front: list[SearchRecord] = []
    if front_file.is_file():
        try:
            front = [SearchRecord.from_dict(r, f"front[{i}]")
                     for i, r in enumerate(json.loads(front_file.read_text())["front"])]
        except (ValueError, KeyError, TypeError) as e:
            raise RunError(f"{front_file} is corrupt ({e}); `hwnas search ... --resume` rewrites it") from None
    return Run(path, config, front, evals, commands, lut_table)
