"""The SQLite store's write side: events in one transaction each, owners, claims, heartbeats.

Every write that the trial path makes (a trial started, a trial finished) is
one ``BEGIN IMMEDIATE`` transaction that also takes the experiment's next
event number (``experiments.seq``), so the order of asks and tells is
recorded exactly even when several processes write to one experiment.

Owners. The process running an experiment is its *owner* (``host:pid``) and
keeps a heartbeat; so is the process running each trial. An owner is alive
while its heartbeat is fresh and, on this host, its process exists. A second
process may not run an experiment whose owner is alive unless both asked to
share it; then each *claims* a trial inside a transaction, so every trial id
and every architecture is claimed exactly once and the budget holds across
all of them.
"""
from __future__ import annotations

import contextlib
import json
import os
import socket
import sqlite3
import time
from collections.abc import Iterator
from typing import Any

from symnas.records import StoredTrial, StoreError, _algorithm_json, _dump
from symnas.trial import DONE, FAILED, PRUNED, RUNNING

STALE_SECONDS = 30.0       # a heartbeat older than this is stale
BEAT_SECONDS = 2.0         # how often a live owner beats

__all__ = ["owner_id", "owner_alive", "SQLiteWrites", "STALE_SECONDS", "BEAT_SECONDS"]


def _versions() -> dict:
    from importlib import metadata
    out: dict[str, str | None] = {}
    for pkg in ("symnas", "pyglove", "torch"):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            out[pkg] = None
    return out


def owner_id() -> str:
    """This process as an owner: ``host:pid``."""
    return f"{socket.gethostname()}:{os.getpid()}"


def owner_alive(owner: str | None, heartbeat: float | None, now: float | None = None) -> bool:
    """Whether ``owner`` still runs: a fresh heartbeat and, on this host, a live process."""
    if not owner or heartbeat is None:
        return False
    if (now or time.time()) - heartbeat > STALE_SECONDS:
        return False
    host, _, pid = owner.rpartition(":")
    if host == socket.gethostname() and pid.isdigit():
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
    return True


class SQLiteWrites:
    """Mixin of :class:`symnas.store.SQLiteStore`: everything the trial path writes."""

    conn: sqlite3.Connection
    path: str | None

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            yield self.conn
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        self.conn.execute("COMMIT")

    def _seq(self, exp_id: int) -> int:
        """The experiment's next event number (inside a transaction)."""
        row = self.conn.execute("UPDATE experiments SET seq = seq + 1 WHERE id=? RETURNING seq",
                                (exp_id,)).fetchone()
        return int(row[0]) - 1

    # -- experiments
    def find_experiment(self, name: str, parent: tuple[int, int] | None) -> dict | None:
        pe, pt = parent if parent else (None, None)
        row = self.conn.execute(
            "SELECT id, fingerprint, algorithm_text, seed, objectives, status, owner, heartbeat, "
            "shared, budget, fidelity, pruner FROM experiments WHERE name=? AND parent_experiment IS ? AND "
            "parent_trial IS ?", (name, pe, pt)).fetchone()
        return dict(row) if row is not None else None

    def create_experiment(self, record: dict) -> int:
        space = record["space"]
        try:
            space_json = json.dumps(space.to_json())
        except Exception as err:  # noqa: BLE001
            raise StoreError(f"cannot record the space as JSON ({err}); a recorded search needs "
                             "a space whose values PyGlove can write as JSON.") from err
        algo_json, algo_text = _algorithm_json(record["algorithm"])
        pe, pt = record["parent"] if record["parent"] else (None, None)
        with self._transaction() as c:   # find-or-create is atomic across processes
            row = c.execute("SELECT id, shared, owner FROM experiments WHERE name=? AND "
                            "parent_experiment IS ? AND parent_trial IS ?",
                            (record["name"], pe, pt)).fetchone()
            if row is not None:          # another process created it a moment ago
                if record.get("shared") and row["shared"]:
                    return int(row["id"])
                raise StoreError(
                    f"experiment {record['name']!r} in {self.path!r} was just created by process "
                    f"{row['owner']}; it was left untouched. Run both searches with shared=True "
                    "and resume=True to work on it together, or choose a new name=.")
            return self._insert_experiment(record, space_json, algo_json, algo_text, pe, pt)

    def _insert_experiment(self, record: dict, space_json: str, algo_json: str | None,
                           algo_text: str, pe: int | None, pt: int | None) -> int:
        cur = self.conn.execute(
            "INSERT INTO experiments (name, parent_experiment, parent_trial, space, fingerprint, "
            "algorithm, algorithm_text, seed, objectives, budget, versions, created, status, "
            "owner, heartbeat, shared, fidelity, pruner) "
            "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
            (record["name"], pe, pt, space_json,
             record["fingerprint"] or record["space"].fingerprint(),
             algo_json, algo_text, record["seed"], json.dumps(record["objectives"].to_json()),
             record["budget"], json.dumps(_versions()), time.time(), RUNNING, owner_id(),
             time.time(), int(bool(record.get("shared"))), _dump(record.get("fidelity")),
             _dump(record.get("pruner"))))
        return int(cur.lastrowid or 0)

    def update_experiment(self, exp_id: int, **fields: Any) -> None:
        allowed = ("budget", "finished", "status", "owner", "heartbeat", "shared")
        for key in fields:
            if key not in allowed:
                raise ValueError(f"cannot update experiment field {key!r}; one of {allowed}.")
        sets = ", ".join(f"{k}=?" for k in fields)
        self.conn.execute(f"UPDATE experiments SET {sets} WHERE id=?", (*fields.values(), exp_id))

    def close_experiment(self, exp_id: int, status: str = "finished") -> None:
        """Ends this process's run of an experiment (``finished`` or ``interrupted``)."""
        me = owner_id()
        others = self.conn.execute(
            "SELECT owner, MAX(heartbeat) FROM trials WHERE experiment=? AND status=? AND "
            "owner IS NOT NULL AND owner != ? GROUP BY owner", (exp_id, RUNNING, me)).fetchall()
        if any(owner_alive(o, hb) for o, hb in others):
            status = RUNNING      # a sharing process still runs it
        self.conn.execute(
            "UPDATE experiments SET status=?, finished=?, owner=CASE WHEN owner=? THEN NULL "
            "ELSE owner END WHERE id=?",
            (status, time.time() if status == "finished" else None, me, exp_id))

    def beat(self, exp_id: int) -> None:
        """The heartbeat of this process's experiment and running trials."""
        now, me = time.time(), owner_id()
        with self._transaction() as c:
            c.execute("UPDATE experiments SET heartbeat=? WHERE id=? AND owner=?", (now, exp_id, me))
            c.execute("UPDATE trials SET heartbeat=? WHERE experiment=? AND owner=? AND status=?",
                      (now, exp_id, me, RUNNING))

    # -- trials
    def start_trial(self, exp_id: int, trial: Any) -> None:
        trial.started = time.time()
        with self._transaction() as c:
            c.execute(
                "INSERT OR REPLACE INTO trials (experiment, id, genome, status, seed, started, "
                "attempts, ask_seq, owner, heartbeat, fidelity, cost, continues) "
                "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (exp_id, trial.id, json.dumps(list(trial.arch.genome)), RUNNING, trial.seed,
                 trial.started, trial.attempts, self._seq(exp_id), owner_id(), trial.started,
                 trial.fidelity, trial.cost, trial.continues))

    def claim_trial(self, exp_id: int, trial: Any, budget: float | None,
                    seed_of: Any = None) -> StoredTrial | str:
        """Claims a new trial of a shared experiment: its id is the next free one.

        Returns ``"claimed"`` (``trial.id`` set, recorded as running), ``"budget"``
        (the experiment has spent its budget: the trials' costs, running ones
        included), or the existing row when the architecture was already
        claimed at this fidelity (by any process).
        """
        genome = json.dumps(list(trial.arch.genome))
        with self._transaction() as c:
            row = c.execute("SELECT * FROM trials WHERE experiment=? AND genome=? AND fidelity IS ?",
                            (exp_id, genome, trial.fidelity)).fetchone()
            if row is not None:
                return StoredTrial.from_row(row)
            spent, top = c.execute("SELECT COALESCE(SUM(COALESCE(cost, 1)), 0), MAX(id) FROM "
                                   "trials WHERE experiment=?", (exp_id,)).fetchone()
            if budget is not None and spent >= budget - 1e-9:
                return "budget"
            trial.id = 0 if top is None else int(top) + 1
            trial.seed = seed_of(trial.id) if seed_of is not None else trial.seed
            trial.started = time.time()
            c.execute(
                "INSERT INTO trials (experiment, id, genome, status, seed, started, attempts, "
                "ask_seq, owner, heartbeat, fidelity, cost, continues) "
                "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (exp_id, trial.id, genome, RUNNING, trial.seed, trial.started, trial.attempts,
                 self._seq(exp_id), owner_id(), trial.started, trial.fidelity, trial.cost,
                 trial.continues))
        return "claimed"

    def retry_trial(self, exp_id: int, trial: Any, error: str | None) -> None:
        self.conn.execute("UPDATE trials SET attempts=?, error=?, owner=?, heartbeat=? "
                          "WHERE experiment=? AND id=?",
                          (trial.attempts, error, owner_id(), time.time(), exp_id, trial.id))

    def finish_trial(self, exp_id: int, trial: Any, program: Any = None) -> None:
        """Records a trial's outcome; ``program`` is the program's JSON when a worker built it.

        The genome identifies the architecture (the space is recorded); the DNA
        and the program cost a millisecond or more to build, so they are
        written only when the evaluator already built them.
        """
        dna = decisions = None
        text = json.dumps(program, default=str) if program is not None else None
        arch = trial.arch
        if trial.status in (DONE, PRUNED):
            try:
                decisions = _dump(arch.decisions)
                if getattr(arch, "_dna", None) is not None:
                    dna = json.dumps(arch.dna.to_json())
                if text is None and getattr(arch, "_value", None) is not None:
                    text = json.dumps(arch.program_json(), default=str)
            except Exception:  # noqa: BLE001 - the genome alone still identifies it
                pass
        with self._transaction() as c:
            c.execute(
                "UPDATE trials SET status=?, metrics=?, reward=?, error=?, seconds=?, finished=?, "
                "attempts=?, tell_seq=?, dna=?, program=?, decisions=?, cost=?, curve=? "
                "WHERE experiment=? AND id=? AND status='running'",
                (trial.status, _dump(trial.metrics), _dump(trial.reward), trial.error,
                 trial.seconds, time.time(), trial.attempts, self._seq(exp_id), dna, text,
                 decisions, trial.cost, _dump(trial.curve), exp_id, trial.id))

    def news(self, exp_id: int, since: int) -> list[StoredTrial]:
        """Trials other processes finished after event ``since`` (tell order)."""
        return [StoredTrial.from_row(r) for r in self.conn.execute(
            "SELECT * FROM trials WHERE experiment=? AND tell_seq > ? AND (owner IS NULL OR "
            "owner != ?) ORDER BY tell_seq", (exp_id, since, owner_id()))]

    def stale_trials(self, exp_id: int) -> list[tuple[StoredTrial, str | None]]:
        """Running trials whose process is gone, with that process (their owner)."""
        me = owner_id()
        rows = self.conn.execute("SELECT * FROM trials WHERE experiment=? AND status=?",
                                 (exp_id, RUNNING)).fetchall()
        return [(StoredTrial.from_row(r), r["owner"]) for r in rows
                if r["owner"] != me and not owner_alive(r["owner"], r["heartbeat"])]

    def take_over(self, exp_id: int, trial_id: int, owner: str | None) -> bool:
        """Claims a stale trial for this process (False: someone else took it first)."""
        with self._transaction() as c:
            cur = c.execute("UPDATE trials SET owner=?, heartbeat=? "
                            "WHERE experiment=? AND id=? AND status=? AND owner IS ?",
                            (owner_id(), time.time(), exp_id, trial_id, RUNNING, owner))
        return cur.rowcount == 1

    def give_up(self, exp_id: int, trial_id: int, reason: str) -> None:
        """Fails a running trial with ``reason`` (it is not run again)."""
        with self._transaction() as c:
            c.execute("UPDATE trials SET status=?, error=?, finished=?, tell_seq=? "
                      "WHERE experiment=? AND id=? AND status=?",
                      (FAILED, reason, time.time(), self._seq(exp_id), exp_id, trial_id, RUNNING))

    def keep_programs(self, exp_id: int, trials: Any) -> None:
        ids = [t.id for t in trials]
        if not ids:
            return
        have = {r[0] for r in self.conn.execute(
            f"SELECT id FROM trials WHERE experiment=? AND program IS NOT NULL AND id IN "
            f"({','.join('?' * len(ids))})", (exp_id, *ids))}
        for t in trials:
            if t.id in have:
                continue
            try:
                self.conn.execute(
                    "UPDATE trials SET dna=?, program=? WHERE experiment=? AND id=?",
                    (json.dumps(t.arch.dna.to_json()),
                     json.dumps(t.arch.program_json(), default=str), exp_id, t.id))
            except Exception:  # noqa: BLE001 - the genome still identifies it
                pass
