"""The run store: one SQLite file per search run, safe against a killed process.

Every evaluated architecture is written as soon as it is evaluated; a
generation (its members, the strategy's state, the hypervolume) is committed
in one transaction. After ``kill -9``, resuming restores the strategy from the
last committed generation and re-uses every stored evaluation, so the run ends
with the same front as an uninterrupted one.
"""
from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any, Iterable

from hwnas.errors import InputError
from hwnas.lut import now_iso

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS evals (
    arch_id TEXT NOT NULL, evaluator TEXT NOT NULL, arch TEXT NOT NULL, accuracy REAL NOT NULL,
    latency_ms REAL NOT NULL, params_m REAL NOT NULL, macs_m REAL NOT NULL, memory_mb REAL NOT NULL,
    layers INTEGER NOT NULL, created TEXT NOT NULL, PRIMARY KEY (arch_id, evaluator));
CREATE TABLE IF NOT EXISTS members (
    generation INTEGER NOT NULL, arch_id TEXT NOT NULL, strategy TEXT NOT NULL, violation REAL NOT NULL,
    PRIMARY KEY (generation, arch_id));
CREATE TABLE IF NOT EXISTS generations (
    generation INTEGER PRIMARY KEY, strategy_state TEXT NOT NULL, hypervolume REAL NOT NULL,
    best_feasible_accuracy REAL, evaluations INTEGER NOT NULL, finished TEXT NOT NULL);
"""
RECORD_FIELDS = ("accuracy", "latency_ms", "params_m", "macs_m", "memory_mb", "layers")


class StoreError(InputError):
    """A run directory's store is missing, corrupt or belongs to another configuration."""


class RunStore:
    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self.db = sqlite3.connect(self.path)
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=NORMAL")
            self.db.executescript(SCHEMA)
        except sqlite3.DatabaseError as e:
            raise StoreError(f"{self.path}: not a usable run store ({e}); it may be corrupt. "
                             f"Start a new run with another --out") from None

    def close(self) -> None:
        self.db.close()

    # -- meta ----------------------------------------------------------------
    def get_meta(self, key: str) -> Any:
        row = self.db.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
        return json.loads(row[0]) if row else None

    def set_meta(self, key: str, value: Any) -> None:
        with self.db:
            self.db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, json.dumps(value, sort_keys=True)))

    # -- evaluations ---------------------------------------------------------
    def add_evals(self, evaluator: str, records: Iterable[dict[str, Any]]) -> None:
        rows = [(r["arch_id"], evaluator, json.dumps(r["arch"], sort_keys=True), *(r[f] for f in RECORD_FIELDS),
                 now_iso()) for r in records]
        with self.db:
            self.db.executemany("INSERT OR IGNORE INTO evals VALUES (?,?,?,?,?,?,?,?,?,?)", rows)

    def evals(self, evaluator: str) -> dict[str, dict[str, Any]]:
        cur = self.db.execute(f"SELECT arch_id, arch, {', '.join(RECORD_FIELDS)} FROM evals WHERE evaluator=?",
                              (evaluator,))
        out = {}
        for row in cur:
            out[row[0]] = {"arch_id": row[0], "arch": json.loads(row[1]), **dict(zip(RECORD_FIELDS, row[2:]))}
        return out

    # -- generations ---------------------------------------------------------
    def commit_generation(self, generation: int, strategy: str, members: list[tuple[str, float]],
                          state: dict[str, Any], hypervolume: float, best_acc: float | None, evaluations: int) -> None:
        with self.db:
            self.db.executemany("INSERT OR REPLACE INTO members VALUES (?,?,?,?)",
                                [(generation, aid, strategy, v) for aid, v in members])
            self.db.execute("INSERT OR REPLACE INTO generations VALUES (?,?,?,?,?,?)",
                            (generation, json.dumps(state), hypervolume, best_acc, evaluations, now_iso()))

    def last_generation(self) -> tuple[int, dict[str, Any]] | None:
        row = self.db.execute("SELECT generation, strategy_state FROM generations ORDER BY generation DESC LIMIT 1"
                              ).fetchone()
        return (row[0], json.loads(row[1])) if row else None

    def history(self) -> list[dict[str, Any]]:
        cur = self.db.execute("SELECT generation, hypervolume, best_feasible_accuracy, evaluations, finished "
                              "FROM generations ORDER BY generation")
        return [dict(zip(("generation", "hypervolume", "best_feasible_accuracy", "evaluations", "finished"), r))
                for r in cur]

    def evaluated_ids(self) -> list[str]:
        """Archs that were part of a committed generation, in order."""
        cur = self.db.execute("SELECT DISTINCT arch_id FROM members m JOIN generations g USING (generation) "
                              "ORDER BY generation, arch_id")
        return [r[0] for r in cur]
