"""The run store: one SQLite file per search run, safe against a killed process.

Every evaluated architecture is written as soon as it is evaluated; a
generation (its members, the strategy's state, the hypervolume) is committed
in one transaction. After ``kill -9``, resuming restores the strategy from the
last committed generation and re-uses every stored evaluation, so the run ends
with the same front as an uninterrupted one. A run whose search finished carries a
``complete`` marker; readers (finalize, report) open the file read-only and refuse
a run without it.

One search at a time writes a run directory: :class:`RunLock` is an exclusive
``flock`` on ``run.lock``, held for the search's whole life and dropped by the OS
when the process ends, however it ends.

A store damaged on disk (a bad sector, a copy cut short) is found by ``PRAGMA quick_check`` whenever it is
opened, for writing or reading: readers refuse it rather than show part of a run, and :func:`salvage`
copies every row still readable into a new store beside the damaged one, which a resume then completes.
"""
from __future__ import annotations

import json
import os
import sqlite3
import urllib.parse
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable

from hwnas.core import jsonio
from hwnas.core.errors import InputError
from hwnas.latency.lut import now_iso

if TYPE_CHECKING:
    from hwnas.search.records import SearchRecord

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS evals (
    arch_id TEXT NOT NULL, evaluator TEXT NOT NULL, arch TEXT NOT NULL, accuracy REAL NOT NULL,
    latency_ms REAL NOT NULL, params_m REAL NOT NULL, macs_m REAL NOT NULL, memory_mb REAL NOT NULL,
    layers INTEGER NOT NULL, created TEXT NOT NULL, PRIMARY KEY (arch_id, evaluator));
CREATE TABLE IF NOT EXISTS members (
    generation INTEGER NOT NULL, arch_id TEXT NOT NULL, strategy TEXT NOT NULL, violation REAL NOT NULL,
    PRIMARY KEY (generation, arch_id));
CREATE TABLE IF NOT EXISTS failures (
    arch_id TEXT NOT NULL, evaluator TEXT NOT NULL, arch TEXT NOT NULL, error TEXT NOT NULL, created TEXT NOT NULL,
    PRIMARY KEY (arch_id, evaluator));
CREATE TABLE IF NOT EXISTS generations (
    generation INTEGER PRIMARY KEY, strategy_state TEXT NOT NULL, hypervolume REAL NOT NULL,
    best_feasible_accuracy REAL, evaluations INTEGER NOT NULL, finished TEXT NOT NULL);
"""
RECORD_FIELDS = ("accuracy", "latency_ms", "params_m", "macs_m", "memory_mb", "layers")
TABLES = ("meta", "evals", "members", "generations")  # required to read a run ("failures" came later: optional)
INCOMPLETE = "incomplete run: rerun the search with --resume"
SALVAGE = ("run the search's command again with --resume --salvage: it keeps the damaged file as "
           "run.sqlite.damaged, copies every readable evaluation into a new run.sqlite and resumes, "
           "evaluating none of them again")

try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX: no lock, as before
    fcntl = None  # type: ignore[assignment]


class StoreError(InputError):
    """A run directory's store is missing, corrupt or belongs to another configuration."""


class IncompleteRunError(StoreError):
    """The run's search has not finished (killed, interrupted or still running)."""


class DamagedStoreError(StoreError):
    """The store's file is damaged (``PRAGMA quick_check`` fails): :func:`salvage` is the way out."""


class DiskFullError(StoreError):
    """The run's disk refused a write (full, over quota, or an I/O error): free space, then run again."""


def is_write_failure(e: BaseException) -> bool:
    """A write the disk refused, not a mistake of hwnas or of the input: ENOSPC/EDQUOT/EIO, or SQLite's
    SQLITE_FULL/SQLITE_IOERR (what it raises when the disk is full as it writes a page, a journal or a -shm)."""
    import errno

    if isinstance(e, OSError):
        return e.errno in (errno.ENOSPC, errno.EDQUOT, errno.EIO, errno.EFBIG)
    if isinstance(e, sqlite3.Error):
        code = getattr(e, "sqlite_errorcode", None)
        if code is not None:
            return code & 0xFF in (sqlite3.SQLITE_FULL, sqlite3.SQLITE_IOERR)
        return "disk is full" in str(e) or "disk I/O error" in str(e)
    return False


class RunStore:
    def __init__(self, path: str | Path, readonly: bool = False):
        """``readonly``: for readers (finalize, report), which must never change the run they read."""
        self.path = Path(path)
        self.db = _connect_readonly(self.path) if readonly else _connect(self.path)

    def close(self) -> None:
        self.db.close()

    # -- completion ----------------------------------------------------------
    def mark_incomplete(self) -> None:
        """A search is (again) writing the run: readers must wait for :meth:`mark_complete`."""
        with self.db:
            self.db.execute("DELETE FROM meta WHERE key='complete'")

    def mark_complete(self, info: dict[str, Any]) -> None:
        """The search finished and wrote its outputs. The file then leaves WAL mode, so it is one plain file
        again and a read-only reader creates no -wal/-shm files beside it."""
        self.set_meta("complete", {**info, "finished": now_iso()})
        try:
            self.db.execute("PRAGMA journal_mode=DELETE")
        except sqlite3.OperationalError:
            pass  # a reader has it open; WAL is as safe, only less tidy

    def require_complete(self) -> dict[str, Any]:
        info = self.get_meta("complete")
        if not info:
            raise IncompleteRunError(f"{self.path.parent}: {INCOMPLETE} (its search was stopped before the end, "
                                     f"or is still running)")
        return info

    # -- meta ----------------------------------------------------------------
    def get_meta(self, key: str) -> Any:
        row = self.db.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
        return json.loads(row[0]) if row else None

    def set_meta(self, key: str, value: Any) -> None:
        with self.db:
            self.db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, jsonio.dumps(value, sort_keys=True)))

    # -- evaluations ---------------------------------------------------------
    def add_evals(self, evaluator: str, records: Iterable[SearchRecord]) -> None:
        rows = [(r.arch_id, evaluator, jsonio.dumps(r.arch, sort_keys=True), *(getattr(r, f) for f in RECORD_FIELDS),
                 now_iso()) for r in records]
        with self.db:
            self.db.executemany("INSERT OR IGNORE INTO evals VALUES (?,?,?,?,?,?,?,?,?,?)", rows)

    def add_failure(self, evaluator: str, arch: dict[str, Any], arch_id: str, error: str) -> None:
        """An arch the evaluator raised for: kept with its message, never evaluated again (a resumed run
        scores it as failed at once)."""
        with self.db:
            self.db.execute("INSERT OR IGNORE INTO failures VALUES (?,?,?,?,?)",
                            (arch_id, evaluator, jsonio.dumps(arch, sort_keys=True), error, now_iso()))

    def failures(self, evaluator: str) -> dict[str, str]:
        """arch id -> the evaluator's error message."""
        try:
            return dict(self.db.execute("SELECT arch_id, error FROM failures WHERE evaluator=?", (evaluator,)))
        except sqlite3.OperationalError:  # a run store from before failures were recorded, opened read-only
            return {}

    def evals(self, evaluator: str) -> dict[str, SearchRecord]:
        """arch id -> the stored record of every arch ``evaluator`` scored."""
        # here, not at the top: hwnas.search imports this module
        from hwnas.search.records import SearchRecord

        cur = self.db.execute(f"SELECT arch_id, arch, {', '.join(RECORD_FIELDS)} FROM evals WHERE evaluator=?",
                              (evaluator,))
        return {row[0]: SearchRecord(arch_id=row[0], arch=json.loads(row[1]), **dict(zip(RECORD_FIELDS, row[2:])))
                for row in cur}

    # -- generations ---------------------------------------------------------
    def commit_generation(self, generation: int, strategy: str, members: list[tuple[str, float]],
                          state: dict[str, Any], hypervolume: float, best_acc: float | None, evaluations: int,
                          meta: dict[str, Any] | None = None) -> None:
        """``meta``: keys of the meta table written in the same transaction (what the run knows at this
        generation: its elapsed time, its counts of evaluations outside the constraints)."""
        with self.db:
            self.db.executemany("INSERT OR REPLACE INTO meta VALUES (?, ?)",
                                [(k, jsonio.dumps(v, sort_keys=True)) for k, v in (meta or {}).items()])
            self.db.executemany("INSERT OR REPLACE INTO members VALUES (?,?,?,?)",
                                [(generation, aid, strategy, v) for aid, v in members])
            self.db.execute("INSERT OR REPLACE INTO generations VALUES (?,?,?,?,?,?)",
                            (generation, jsonio.dumps(state), hypervolume, best_acc, evaluations, now_iso()))
            # resume needs the last state only: a model-based strategy's state (weights, optimiser, archive)
            # would otherwise grow the file by megabytes per generation
            self.db.execute("UPDATE generations SET strategy_state='{}' WHERE generation < ?", (generation,))

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


def _connect(path: Path) -> sqlite3.Connection:
    path.parent.mkdir(parents=True, exist_ok=True)
    existed = path.is_file() and path.stat().st_size > 0
    db = None
    try:
        db = sqlite3.connect(path)
        problem = integrity_problem(db) if existed else None
        if problem is None:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            db.executescript(SCHEMA)
    except sqlite3.DatabaseError as e:
        if db is not None:
            db.close()
        if is_write_failure(e):
            raise DiskFullError(f"{path}: {e}") from None
        problem = str(e)
    if problem is not None:
        if db is not None:
            db.close()
        raise DamagedStoreError(f"{path}: the run store is damaged ({shorten(problem)}); {SALVAGE}")
    return db


def integrity_problem(db: sqlite3.Connection) -> str | None:
    """What ``PRAGMA quick_check`` finds wrong with the open store (None: nothing). Pages that are
    unreadable, b-trees that do not hold together: what reading rows would trip over, or silently skip."""
    try:
        rows = db.execute("PRAGMA quick_check").fetchall()
    except sqlite3.DatabaseError as e:
        return str(e)
    text = "; ".join(line.strip() for r in rows for line in str(r[0]).splitlines()
                     if line.strip() and line.strip() != "*** in database main ***")
    return None if text == "ok" else text


def damage(path: Path) -> str | None:
    """What is wrong with the store file at ``path``, read without writing it (None: intact, or no file)."""
    if not path.is_file() or path.stat().st_size == 0:
        return None
    try:
        db = sqlite3.connect(f"file:{urllib.parse.quote(str(path.resolve()))}?mode=ro", uri=True)
    except sqlite3.DatabaseError as e:
        return str(e)
    try:
        return integrity_problem(db)
    finally:
        db.close()


def shorten(problem: str, limit: int = 160) -> str:
    one = " ".join(problem.split())
    return one if len(one) <= limit else one[:limit] + " ..."


def _connect_readonly(path: Path) -> sqlite3.Connection:
    """``mode=ro``: SQLite can neither create the file nor write to it (a plain connect turned a zero-byte
    run.sqlite into a 32 KB empty store)."""
    if not path.is_file():
        raise StoreError(f"{path} does not exist; give the --out directory of `hwnas search`")
    if path.stat().st_size == 0:
        raise IncompleteRunError(f"{path} is empty (0 bytes): the search was stopped before it saved anything; "
                                 f"{INCOMPLETE}")
    open(path, "rb").close()  # unreadable (permissions): the OSError itself says so, not "corrupt"
    uri = f"file:{urllib.parse.quote(str(path.resolve()))}?mode=ro"
    try:
        db = sqlite3.connect(uri, uri=True)
        tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    except sqlite3.DatabaseError as e:
        raise DamagedStoreError(f"{path}: the run store is corrupt or unreadable ({shorten(str(e))}); to repair "
                                f"it, {SALVAGE}; then run this again") from None
    missing = [t for t in TABLES if t not in tables]
    if missing:
        db.close()
        raise StoreError(f"{path}: not an hwnas run store (no table(s) {missing}); "
                         f"give the --out directory of `hwnas search`")
    problem = integrity_problem(db)
    if problem is not None:  # rows past a bad page would be missing from what is read, silently
        db.close()
        raise DamagedStoreError(f"{path}: the run store is damaged ({shorten(problem)}), so what it holds may be "
                                f"partial; to repair it, {SALVAGE}; then run this again")
    return db


class RunLock:
    """Exclusive right to write one run directory, held for a search's whole life.

    A second search on the same run would interleave generations (or stop on "database is locked");
    it is refused at once instead. ``flock`` is released by the OS when the holder exits or is
    killed, so a crashed search never leaves a lock that blocks ``--resume``.
    """

    def __init__(self, folder: Path):
        self.path = Path(folder) / "run.lock"
        self.fd: int | None = None

    def __enter__(self) -> "RunLock":
        self.acquire()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.release()

    def acquire(self) -> None:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
        if fcntl is not None:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = os.read(fd, 32).decode(errors="replace").strip() or "another process"
                os.close(fd)
                raise StoreError(f"another search is running on {self.path.parent} (pid {holder} holds "
                                 f"{self.path.name}); wait for it to finish, or stop it and then add --resume"
                                 ) from None
        try:
            os.ftruncate(fd, 0)
            os.write(fd, f"{os.getpid()}\n".encode())  # after the lock is ours: a reader of the pid sees the holder
        except OSError:  # a full disk: the lock is held all the same (the pid only names the holder), and the
            pass         # store's first write then says what is wrong
        self.fd = fd

    def release(self) -> None:
        if self.fd is not None:
            os.close(self.fd)  # closing the last descriptor drops the flock
            self.fd = None


# -- salvage: what is readable of a damaged store, in a new one --------------------------------------------
SALVAGED = ("meta", "evals", "failures")  # generations are replayed: every evaluation is cached, so the replay
# costs no evaluation and, the strategies being seeded, gives the run's own generations again


def salvage(path: Path) -> dict[str, Any]:
    """Keep the damaged store as ``run.sqlite.damaged`` (its -wal beside it) and copy every row still readable
    (the configuration, every evaluation and recorded failure) into a new store at ``path``.

    Returns what was kept: the damaged file's new name and the rows copied per table."""
    path = Path(path)
    aside = path.with_name(path.name + ".damaged")
    n = 1
    while aside.exists():
        n += 1
        aside = path.with_name(f"{path.name}.damaged-{n}")
    for suffix in ("", "-wal", "-shm"):
        if Path(f"{path}{suffix}").exists():
            os.replace(f"{path}{suffix}", f"{aside}{suffix}")
    rows: dict[str, list[tuple]] = {t: [] for t in SALVAGED}
    try:
        src = sqlite3.connect(f"file:{urllib.parse.quote(str(aside.resolve()))}?mode=ro", uri=True)
        try:
            for table in SALVAGED:
                rows[table] = [r for r in readable_rows(src, table) if _valid_row(table, r)]
        finally:
            src.close()
    except sqlite3.DatabaseError:  # not even its header is readable: nothing to copy
        pass
    store = RunStore(path)
    try:
        with store.db:
            store.db.executemany("INSERT OR IGNORE INTO meta VALUES (?, ?)",
                                 [r for r in rows["meta"] if r[0] != "complete"])
            store.db.executemany("INSERT OR IGNORE INTO evals VALUES (?,?,?,?,?,?,?,?,?,?)", rows["evals"])
            store.db.executemany("INSERT OR IGNORE INTO failures VALUES (?,?,?,?,?)", rows["failures"])
        kept = {"damaged": str(aside), **{t: len(r) for t, r in rows.items()},
                "config": any(r[0] == "config" for r in rows["meta"]), "when": now_iso()}
        store.set_meta("salvaged", (store.get_meta("salvaged") or []) + [kept])
    finally:
        store.close()
    return kept


def readable_rows(db: sqlite3.Connection, table: str) -> list[tuple]:
    """Every row of ``table`` that can still be read: the whole table when it reads, else rowid ranges halved
    around the ranges that fail, down to single rows."""
    try:
        return db.execute(f"SELECT * FROM {table}").fetchall()
    except sqlite3.OperationalError as e:
        if "no such table" in str(e):
            return []
    except sqlite3.DatabaseError:
        pass
    try:
        top = db.execute(f"SELECT max(rowid) FROM {table}").fetchone()[0] or 0
    except sqlite3.DatabaseError:  # its right edge is damaged: no table has more rows than this
        top = db.execute("PRAGMA page_count").fetchone()[0] * 64
    out: list[tuple] = []
    todo = [(1, top)]
    while todo:
        lo, hi = todo.pop()
        try:
            out += db.execute(f"SELECT * FROM {table} WHERE rowid BETWEEN ? AND ?", (lo, hi)).fetchall()
        except sqlite3.DatabaseError:
            if lo < hi:
                mid = (lo + hi) // 2
                todo += [(mid + 1, hi), (lo, mid)]
    return out


def _valid_row(table: str, row: tuple) -> bool:
    """A row read from a damaged file is copied only when it has the shape the store writes."""
    import math

    def text(v: Any) -> bool:
        return isinstance(v, str) and bool(v)

    def obj(v: Any) -> bool:
        try:
            return isinstance(json.loads(v), dict)
        except (TypeError, ValueError):
            return False

    try:
        if table == "meta":
            return len(row) == 2 and text(row[0]) and isinstance(row[1], str) and json.loads(row[1]) is not ...
        if table == "evals":
            nums = row[3:9]
            return (len(row) == 10 and text(row[0]) and text(row[1]) and obj(row[2]) and text(row[9])
                    and all(isinstance(v, (int, float)) and math.isfinite(v) for v in nums))
        return len(row) == 5 and text(row[0]) and text(row[1]) and obj(row[2]) and isinstance(row[3], str)
    except (TypeError, ValueError):
        return False
