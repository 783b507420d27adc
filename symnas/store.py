"""The experiment store: every search and every trial in one SQLite file.

``sn.search(..., storage="runs/x.sqlite")`` records the experiment (the space
as JSON and its fingerprint, the algorithm and its settings, seed, objectives,
budget, versions) and each trial as it starts and as it ends, one committed
write each (WAL mode), so a killed search loses nothing it recorded.
``resume=True`` continues the experiment of the same name: finished trials
are replayed into the algorithm and interrupted ones run again. A
multi-fidelity search also records each trial's fidelity, cost, the trial
whose training it continues (a promotion) and its curve of intermediate
values; a pruned trial has status ``pruned`` and the pruner's reason as its
``error`` (schema 3).

Both stores implement :class:`symnas.protocols.Store`: :class:`SQLiteStore`
keeps a file (``Store`` is its older name); :class:`MemoryStore` keeps the
searches of this process and is what a search without ``storage=`` records
into. The writer a search uses is :class:`symnas.recorder.Recorder`.

Reading::

    store = SQLiteStore.open("runs/x.sqlite")
    for exp in store.experiments():
        print(exp.name, exp.done, exp.failed)
    result = store.result("x")           # a SearchResult
    result.best.save("best.json")
"""
from __future__ import annotations

import json
import os
import sqlite3
import time
from pathlib import Path
from typing import Any, Sequence

from symnas.records import (
    BaseStore,
    Experiment,
    MemoryStore,
    StoredArch,
    StoredTrial,
    StoreError,
    _load,
    _objectives,
)
from symnas.trial import DONE, FAILED, PRUNED, RUNNING, best_of
from symnas.writes import SQLiteWrites

__all__ = ["SQLiteStore", "Store", "MemoryStore", "StoreError", "StoredTrial", "Experiment",
           "StoredArch", "resolve_path", "find_run", "best_value"]

SCHEMA_VERSION = 3
FORMAT = f"symnas.store/{SCHEMA_VERSION}"
DEFAULT_DIR = "runs"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT);
CREATE TABLE IF NOT EXISTS experiments (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    parent_experiment INTEGER,
    parent_trial INTEGER,
    space TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    algorithm TEXT,
    algorithm_text TEXT,
    seed INTEGER,
    objectives TEXT NOT NULL,
    budget INTEGER,
    versions TEXT,
    created REAL,
    finished REAL,
    status TEXT,                -- running | finished | interrupted (NULL in version-1 files)
    owner TEXT,                 -- host:pid of the process running it (NULL: none)
    heartbeat REAL,             -- the owner's last sign of life
    shared INTEGER NOT NULL DEFAULT 0,
    seq INTEGER NOT NULL DEFAULT 0,   -- the experiment's event counter (asks and tells)
    fidelity TEXT,              -- JSON: the fidelity levels of a multi-fidelity search
    pruner TEXT,                -- JSON: the pruner (name and settings)
    UNIQUE (name, parent_experiment, parent_trial)
);
CREATE TABLE IF NOT EXISTS trials (
    experiment INTEGER NOT NULL REFERENCES experiments(id),
    id INTEGER NOT NULL,
    genome TEXT NOT NULL,
    dna TEXT,
    program TEXT,
    decisions TEXT,
    metrics TEXT,
    reward TEXT,
    status TEXT NOT NULL,
    error TEXT,
    seed INTEGER,
    started REAL,
    finished REAL,
    seconds REAL,
    attempts INTEGER NOT NULL DEFAULT 1,
    ask_seq INTEGER,
    tell_seq INTEGER,
    owner TEXT,                 -- host:pid of the process running it
    heartbeat REAL,             -- last sign of life of the process running it
    fidelity REAL,              -- the budget it was asked for (epochs); NULL: no fidelities
    cost REAL,                  -- in full evaluations (NULL: 1)
    continues INTEGER,          -- the trial whose training it continues (a promotion)
    curve TEXT,                 -- JSON [[step, value], ...]: its intermediate values
    PRIMARY KEY (experiment, id)
);
"""

# Migrations: MIGRATIONS[v] turns a version-v file into version v + 1 (one transaction).
MIGRATIONS: dict[int, str] = {
    1: """
ALTER TABLE experiments ADD COLUMN status TEXT;
ALTER TABLE experiments ADD COLUMN owner TEXT;
ALTER TABLE experiments ADD COLUMN heartbeat REAL;
ALTER TABLE experiments ADD COLUMN shared INTEGER NOT NULL DEFAULT 0;
ALTER TABLE experiments ADD COLUMN seq INTEGER NOT NULL DEFAULT 0;
ALTER TABLE trials ADD COLUMN owner TEXT;
ALTER TABLE trials ADD COLUMN heartbeat REAL;
UPDATE experiments SET
    status = CASE WHEN finished IS NULL THEN 'interrupted' ELSE 'finished' END,
    seq = COALESCE((SELECT MAX(MAX(COALESCE(ask_seq, -1)), MAX(COALESCE(tell_seq, -1))) + 1
                    FROM trials WHERE trials.experiment = experiments.id), 0);
""",
    2: """
ALTER TABLE experiments ADD COLUMN fidelity TEXT;
ALTER TABLE experiments ADD COLUMN pruner TEXT;
ALTER TABLE trials ADD COLUMN fidelity REAL;
ALTER TABLE trials ADD COLUMN cost REAL;
ALTER TABLE trials ADD COLUMN continues INTEGER;
ALTER TABLE trials ADD COLUMN curve TEXT;
""",
}


def _has_column(conn: sqlite3.Connection, statement: str) -> bool:
    """Whether an ``ALTER TABLE t ADD COLUMN c ...`` statement's column is there already."""
    words = statement.split()
    if [w.upper() for w in words[:2]] != ["ALTER", "TABLE"] or len(words) < 6 \
            or [w.upper() for w in words[3:5]] != ["ADD", "COLUMN"]:
        return False
    return any(r[1] == words[5] for r in conn.execute(f"PRAGMA table_info({words[2]})"))


def migrate(conn: sqlite3.Connection, version: int) -> None:
    """Brings a store file of schema ``version`` up to :data:`SCHEMA_VERSION`, in place.

    A column a migration adds that the file already has is left as it is.
    """
    while version < SCHEMA_VERSION:
        conn.execute("BEGIN IMMEDIATE")
        try:
            for statement in MIGRATIONS[version].split(";"):
                if statement.strip() and not _has_column(conn, statement):
                    conn.execute(statement)
            version += 1
            conn.execute("UPDATE meta SET value=? WHERE key='format'",
                         (f"symnas.store/{version}",))
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise


_OPEN: dict[tuple[str, bool], SQLiteStore] = {}   # (path, readonly)


class SQLiteStore(SQLiteWrites, BaseStore):
    """A symnas experiment store in one SQLite file (WAL; one committed write per event)."""

    def __init__(self, path: str | os.PathLike, conn: sqlite3.Connection):
        self.path = str(path)
        self.conn = conn
        self._inode: int | None = None

    readonly = False     # set by open(readonly=True)

    # -- opening
    @classmethod
    def open(cls, path: str | os.PathLike, *, create: bool = False,
             readonly: bool = False) -> SQLiteStore:
        """Opens a store for writing (``create=True``: a new file if there is none) or reading.

        The file is diagnosed first (:func:`symnas.storecheck.inspect`; SQLite's
        ``quick_check`` before any write): one that is not a store, is damaged,
        comes from a newer symnas or cannot be written raises a
        :class:`~symnas.storecheck.StoreFileError` and is unchanged byte for
        byte. ``readonly=True`` never writes (an older schema is read through a
        migrated copy in memory) and works in a read-only folder.
        """
        from symnas import storecheck
        path = os.path.abspath(os.fspath(path))
        key = (path, bool(readonly))
        cached = _OPEN.get(key)
        if cached is not None:
            try:
                if os.stat(path).st_ino == cached._inode:
                    return cached
            except OSError:
                pass
            _OPEN.pop(key, None)      # the file was removed or replaced since
            cached.conn.close()
        if os.path.isdir(path):
            raise StoreError(f"{path!r} is a folder, not a store file; pass the .sqlite file, "
                             "or pass the folder as storage= to sn.search with a name=.")
        exists = os.path.exists(path) and os.path.getsize(path) > 0
        if not exists and (readonly or not create):
            raise StoreError(f"no symnas store at {path!r}" +
                             (" (the file is empty)." if os.path.exists(path) else "."))
        version = cls._check(path, write=not readonly) if exists else SCHEMA_VERSION
        if readonly:
            conn = cls._connect_ro(path, version)
        else:
            storecheck.check_writable(path)
            conn = cls._connect_rw(path, version if exists else None)
        store = cls(path, conn)
        store._inode = os.stat(path).st_ino
        store.readonly = bool(readonly)
        _OPEN[key] = store
        return store

    @staticmethod
    def _connect_rw(path: str, version: int | None) -> sqlite3.Connection:
        """A writing connection (WAL); ``version`` None makes a new store, older ones migrate."""
        from symnas import storecheck
        conn = None
        try:
            if version is None:
                os.makedirs(os.path.dirname(path), exist_ok=True)
            conn = sqlite3.connect(path, timeout=60, isolation_level=None, check_same_thread=False)
            conn.row_factory = sqlite3.Row
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")   # WAL + NORMAL: durable across a process kill
            if version is None:
                conn.executescript(_SCHEMA)
                conn.execute("INSERT OR IGNORE INTO meta VALUES ('format', ?), ('created', ?)",
                             (FORMAT, repr(time.time())))
            elif version < SCHEMA_VERSION:
                migrate(conn, version)
        except (sqlite3.Error, OSError) as err:
            if conn is not None:
                conn.close()
            if isinstance(err, OSError):
                raise storecheck.ReadOnlyStore(path, f"cannot be created ({err.strerror})",
                                               "choose a folder this process may write.") from err
            raise storecheck.explain(path, err, write=True) from err
        return conn

    @staticmethod
    def _connect_ro(path: str, version: int) -> sqlite3.Connection:
        """A reading connection that cannot write; an older schema is migrated in memory."""
        from symnas import storecheck
        conn = storecheck.connect_ro(path)
        if version < SCHEMA_VERSION:
            mem = sqlite3.connect(":memory:", isolation_level=None, check_same_thread=False)
            conn.backup(mem)
            conn.close()
            migrate(mem, version)
            conn = mem
        conn.isolation_level = None
        conn.row_factory = sqlite3.Row
        conn.execute("PRAGMA query_only=1")
        return conn

    @staticmethod
    def _check(path: str, write: bool = True) -> int:
        """The schema version of a store file; raises a StoreFileError (file unchanged) if unusable."""
        from symnas import storecheck
        return storecheck.inspect(path, newest=SCHEMA_VERSION, write=write)

    def close(self) -> None:
        key = (str(self.path), bool(getattr(self, "readonly", False)))
        if _OPEN.get(key) is self:
            _OPEN.pop(key)
        self.conn.close()

    def __repr__(self) -> str:
        return f"Store({self.path!r})"

    # -- reading
    def experiments(self) -> list[Experiment]:
        """Every experiment in the file, in creation order, with trial counts."""
        counts: dict[int, dict[str, int]] = {}
        for r in self.conn.execute(
                "SELECT experiment, status, COUNT(*) FROM trials GROUP BY experiment, status"):
            counts.setdefault(r[0], {})[r[1]] = r[2]
        out = []
        for r in self.conn.execute("SELECT * FROM experiments ORDER BY id"):
            c = counts.get(r["id"], {})
            out.append(Experiment(
                id=r["id"], name=r["name"], parent_experiment=r["parent_experiment"],
                parent_trial=r["parent_trial"], space=json.loads(r["space"]),
                fingerprint=r["fingerprint"], algorithm=r["algorithm_text"], seed=r["seed"],
                objectives=_objectives(r["objectives"]), budget=r["budget"],
                versions=_load(r["versions"]) or {}, created=r["created"], finished=r["finished"],
                done=c.get(DONE, 0), failed=c.get(FAILED, 0), running=c.get(RUNNING, 0),
                status=r["status"] if "status" in r.keys() else None,
                pruned=c.get(PRUNED, 0), fidelity=_load(r["fidelity"]),
                pruner=_load(r["pruner"])))
        return out

    def trials(self, exp: int | str | Experiment | None = None) -> list[StoredTrial]:
        """The trial rows of an experiment, by id."""
        e = self.experiment(exp)
        return [StoredTrial.from_row(r) for r in self.conn.execute(
            "SELECT * FROM trials WHERE experiment=? ORDER BY id", (e.id,))]

    def fail_trial(self, exp_id: int, trial_id: int, reason: str) -> None:
        """Records a running trial as failed with ``reason`` (``symnas fail``); no resume reruns it.

        Raises :class:`StoreError` when the trial does not exist or is not running.
        """
        if self.readonly:
            raise StoreError(f"{self.path!r} was opened read-only; open it with readonly=False "
                             "to fail a trial.")
        row = self.conn.execute("SELECT status FROM trials WHERE experiment=? AND id=?",
                                (exp_id, trial_id)).fetchone()
        if row is None:
            raise StoreError(f"experiment {exp_id} of {self.path!r} has no trial {trial_id}; "
                             "list its trials with `symnas show`.")
        if row[0] != RUNNING:
            raise StoreError(f"trial {trial_id} is {row[0]}, not running; only a running trial "
                             "can be failed.")
        self.give_up(exp_id, trial_id, reason)


Store = SQLiteStore   # the name of the SQLite store before the protocol had implementations


def resolve_path(storage: Any, name: str | None) -> str:
    """The store file for ``storage=``: a file, a folder (``<folder>/<name>.sqlite``) or True."""
    if storage is True:
        storage = DEFAULT_DIR
    p = os.fspath(storage)
    if os.path.isdir(p) or p.endswith(os.sep) or (not os.path.exists(p) and not Path(p).suffix):
        if not name:
            raise ValueError(f"storage={storage!r} names a folder; pass name= too (the file is "
                             "<folder>/<name>.sqlite), or pass a file path.")
        p = os.path.join(p, f"{name.replace('/', '_')}.sqlite")
    return os.path.abspath(p)


def find_run(run: str | os.PathLike, directory: str | os.PathLike = DEFAULT_DIR) -> str:
    """The store file a CLI ``RUN`` names: a path, or a name under ``runs/``."""
    p = os.fspath(run)
    for cand in (p, os.path.join(directory, p), os.path.join(directory, f"{p}.sqlite")):
        if os.path.isfile(cand):
            return cand
    raise StoreError(f"no run {p!r}: not a file, and no {os.path.join(directory, p + '.sqlite')!r}. "
                     f"List runs with `symnas ls {directory}`.")


def best_value(exp: Experiment, trials: Sequence[StoredTrial]) -> float | None:
    """The best first-objective value among finished feasible trials."""
    best = best_of(trials, exp.objectives)
    return None if best is None else float(best.metrics[exp.objectives[0].name])

