"""``symnas recover``: the readable experiments and trials of a damaged store, in a new file.

The damaged file is only read (through :func:`symnas.storecheck.salvage`);
every experiment row and every trial row SQLite can still read is copied into
a new store of the current schema, where it can be shown, exported or resumed.
A trial whose experiment row is lost is dropped (its space is gone with it);
trials left running are recorded as running with no owner, so a resume
treats them as interrupted.

Example::

    symnas recover runs/x.sqlite runs/x-recovered.sqlite
    sn.search(space, algo, evaluate, budget=200, storage="runs/x-recovered.sqlite",
              name="x", resume=True)
"""
from __future__ import annotations

import dataclasses
import os
import sqlite3
import time

from symnas import storecheck
from symnas.records import StoreError
from symnas.store import SQLiteStore
from symnas.trial import RUNNING

__all__ = ["Recovered", "recover"]


@dataclasses.dataclass
class Recovered:
    """What :func:`recover` copied, and what it could not."""
    path: str
    experiments: int
    trials: int
    dropped: int                    # trials whose experiment row was unreadable
    missing: dict[str, list[int]]   # experiment name -> trial ids absent below its highest id
    unreadable: int                 # runs of rows SQLite could not read

    def __str__(self) -> str:
        gaps = "; ".join(f"{name!r}: {_ids(ids)}" for name, ids in self.missing.items())
        return (f"recovered {self.experiments} experiment(s) and {self.trials} trial(s) into "
                f"{self.path}" + (f"; {self.dropped} trial(s) dropped (their experiment row is "
                                  "unreadable)" if self.dropped else "")
                + (f"; trial ids missing: {gaps}" if gaps else ""))


def _ids(ids: list[int]) -> str:
    """``[1, 2, 3, 7]`` -> ``'1-3, 7'``."""
    runs: list[list[int]] = []
    for i in ids:
        if runs and i == runs[-1][1] + 1:
            runs[-1][1] = i
        else:
            runs.append([i, i])
    return ", ".join(f"{a}-{b}" if b > a else f"{a}" for a, b in runs)


def recover(src: str | os.PathLike, dst: str | os.PathLike) -> Recovered:
    """Copies the readable rows of store ``src`` into the new store ``dst`` (``src`` is only read)."""
    src, dst = os.path.abspath(os.fspath(src)), os.path.abspath(os.fspath(dst))
    if os.path.exists(dst) and os.path.getsize(dst) > 0:
        raise StoreError(f"{dst!r} exists; symnas recover writes a new file. Choose another path.")
    with open(src, "rb") as f:
        if f.read(16) != storecheck.MAGIC:
            raise storecheck.NotSQLiteFile(src, "is not an SQLite file", "there is nothing to recover.")
    with storecheck.salvage(src) as conn:
        try:
            row = conn.execute("SELECT value FROM meta WHERE key='format'").fetchone()
        except sqlite3.DatabaseError:
            row = None      # an unreadable meta table: the experiments and trials decide
        if row is not None and not str(row[0]).startswith(storecheck.FORMAT_PREFIX):
            raise storecheck.NotAStore(src, "is an SQLite file but not a symnas store",
                                       "there is nothing to recover.")
        exps, lost_e = storecheck.readable_rows(conn, "experiments")
        trials, lost_t = storecheck.readable_rows(conn, "trials")
    if not exps:
        raise storecheck.DamagedStore(src, "has no readable experiment row",
                                      "nothing can be recovered from it.")
    store = SQLiteStore.open(dst, create=True)
    c = store.conn
    ok = False
    try:
        with store._transaction():
            names = {r["id"]: r["name"] for r in exps}
            _copy(c, "experiments", exps)
            kept = [t for t in trials if t["experiment"] in names]
            _copy(c, "trials", kept)
            c.execute(   # a new file: nobody runs these experiments; events continue after the last
                "UPDATE experiments SET owner=NULL, heartbeat=NULL, shared=0, "
                "status=CASE WHEN finished IS NULL THEN 'interrupted' ELSE 'finished' END, "
                "seq=COALESCE((SELECT MAX(MAX(COALESCE(ask_seq, -1)), MAX(COALESCE(tell_seq, -1))) + 1 "
                "FROM trials WHERE trials.experiment = experiments.id), 0)")
            c.execute("UPDATE trials SET owner=NULL, heartbeat=NULL WHERE status=?", (RUNNING,))
            c.execute("INSERT OR REPLACE INTO meta VALUES ('recovered_from', ?), ('recovered', ?)",
                      (src, repr(time.time())))
        ok = True
    finally:
        store.close()
        if not ok:
            for p in (dst, dst + "-wal", dst + "-shm"):
                if os.path.exists(p):
                    os.remove(p)
    have: dict[int, set[int]] = {}
    for t in kept:
        have.setdefault(t["experiment"], set()).add(t["id"])
    missing = {names[e]: sorted(set(range(max(ids) + 1)) - ids) for e, ids in have.items()}
    return Recovered(dst, len(exps), len(kept), len(trials) - len(kept),
                     {k: v for k, v in missing.items() if v}, lost_e + lost_t)


def _copy(conn: sqlite3.Connection, table: str, rows: list[sqlite3.Row]) -> None:
    """Inserts rows with the columns both schemas have (an older file lacks some)."""
    if not rows:
        return
    have = {r[1] for r in conn.execute(f"PRAGMA table_info({table})")}
    cols = [k for k in rows[0].keys() if k in have]
    conn.executemany(f"INSERT INTO {table} ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})",
                     [tuple(r[k] for k in cols) for r in rows])
