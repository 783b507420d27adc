"""What a store holds, read back: experiment and trial rows, and the shared read side.

:class:`BaseStore` reads every store the same way in terms of two methods
(``experiments()`` and ``trials()``); :class:`MemoryStore` is the store of a
search run without ``storage=`` (the SQLite file store is
:class:`symnas.store.SQLiteStore`).
"""
from __future__ import annotations

import dataclasses
import json
import sqlite3
import time
from typing import Any, Sequence

from symnas import protocols
from symnas.archfile import ArchFile
from symnas.trial import DONE, FAILED, PRUNED, RUNNING, best_of, fidelity_rank, jsonable

__all__ = ["StoreError", "StoredTrial", "Experiment", "StoredArch", "BaseStore", "MemoryStore",
           "best_sql", "top_sql"]


class StoreError(ValueError):
    """A store file that cannot be used as asked (not a store, another space...)."""


# ---- rows --------------------------------------------------------------------------------
def _dump(x: Any) -> str | None:
    return None if x is None else json.dumps(jsonable(x))


def _load(text: str | None) -> Any:
    return None if text is None else json.loads(text)


def _fidelity(x: Any) -> Any:
    """A stored fidelity: an int when it is one (epochs), as it was given."""
    if x is None:
        return None
    return int(x) if float(x).is_integer() else float(x)


def _reward(x: Any) -> Any:
    if isinstance(x, list):
        return tuple(float(v) for v in x)
    return None if x is None else float(x)


@dataclasses.dataclass
class StoredTrial:
    """One trial row."""
    id: int
    genome: list
    status: str
    metrics: dict
    reward: Any
    error: str | None
    seed: int | None
    seconds: float | None
    started: float | None
    finished: float | None
    attempts: int
    ask_seq: int | None
    tell_seq: int | None
    dna: Any = None
    program: Any = None
    decisions: dict | None = None
    fidelity: float | None = None     # the budget it was asked for (None: no fidelities)
    cost: float = 1.0                 # in full evaluations
    continues: int | None = None      # the trial whose training it continues
    curve: list | None = None         # [[step, value], ...]

    @classmethod
    def from_row(cls, r: sqlite3.Row) -> StoredTrial:
        keys = r.keys()
        cost = r["cost"] if "cost" in keys else None
        return cls(id=r["id"], genome=json.loads(r["genome"]), status=r["status"],
                   metrics=_load(r["metrics"]) or {}, reward=_reward(_load(r["reward"])),
                   error=r["error"], seed=r["seed"], seconds=r["seconds"], started=r["started"],
                   finished=r["finished"], attempts=r["attempts"], ask_seq=r["ask_seq"],
                   tell_seq=r["tell_seq"], dna=_load(r["dna"]), program=_load(r["program"]),
                   decisions=_load(r["decisions"]),
                   fidelity=_fidelity(r["fidelity"]) if "fidelity" in keys else None,
                   cost=1.0 if cost is None else float(cost),
                   continues=r["continues"] if "continues" in keys else None,
                   curve=_load(r["curve"]) if "curve" in keys else None)

    @classmethod
    def of(cls, trial: Any, ask_seq: int | None, tell_seq: int | None) -> StoredTrial:
        """The row of a live trial (the memory store's copy)."""
        return cls(id=trial.id, genome=list(trial.arch.genome), status=trial.status,
                   metrics=dict(trial.metrics), reward=trial.reward, error=trial.error,
                   seed=trial.seed, seconds=trial.seconds, started=trial.started,
                   finished=time.time() if trial.status != RUNNING else None,
                   attempts=trial.attempts, ask_seq=ask_seq, tell_seq=tell_seq,
                   fidelity=trial.fidelity, cost=trial.cost, continues=trial.continues,
                   curve=[list(p) for p in trial.curve] if trial.curve is not None else None)

    def to_trial(self, arch: Any):
        from symnas.trial import Trial
        t = Trial(self.id, arch, seed=self.seed, started=self.started or 0.0,
                  fidelity=self.fidelity)
        t.status, t.metrics, t.reward, t.error = self.status, dict(self.metrics), self.reward, self.error
        t.seconds, t.attempts = self.seconds or 0.0, self.attempts
        t.cost, t.continues = self.cost, self.continues
        t.curve = [list(p) for p in self.curve] if self.curve is not None else None
        return t


@dataclasses.dataclass
class Experiment:
    """One experiment row with its trial counts."""
    id: int
    name: str
    parent_experiment: int | None
    parent_trial: int | None
    space: dict
    fingerprint: str
    algorithm: str | None
    seed: int | None
    objectives: Any
    budget: int | None
    versions: dict
    created: float | None
    finished: float | None
    done: int = 0
    failed: int = 0
    running: int = 0
    status: str | None = None     # running | finished | interrupted (None: not recorded)
    pruned: int = 0
    fidelity: list | None = None  # the fidelity levels of a multi-fidelity search
    pruner: dict | None = None    # the pruner's name and settings

    @property
    def trials(self) -> int:
        return self.done + self.failed + self.running + self.pruned


class StoredArch(ArchFile):
    """An architecture read from a store whose space cannot be rebuilt here.

    It has what the store recorded (genome, DNA, decisions, program) and can
    still be saved in ``sn.load``'s format.
    """

    def __init__(self, row: StoredTrial, space_json: dict):
        self.genome = tuple(row.genome)
        self.row, self.space_json = row, space_json

    @property
    def decisions(self) -> dict:
        return self.row.decisions or {}

    @property
    def dna(self):
        import pyglove as pg
        if self.row.dna is None:
            raise StoreError("this trial's DNA was not recorded (it did not finish).")
        return pg.from_json(self.row.dna)

    def program_json(self) -> Any:
        if self.row.program is None:
            raise StoreError(f"trial {self.row.id}'s program was not recorded (only the best 10 "
                             "trials' are) and the space cannot be rebuilt here: make the "
                             "space's classes importable (run from the project, or set PYTHONPATH).")
        return self.row.program

    @property
    def value(self) -> Any:
        """The materialized program (its classes must be importable)."""
        import pyglove as pg
        program = self.program_json()
        return program if "traced" in self.space_json else pg.from_json(program, auto_import=True)

    def _dna_json(self) -> Any:
        return self.row.dna

    def _traced_name(self) -> str | None:
        return self.space_json.get("traced")

    def build(self):
        from symnas.saved import LoadedArch
        return LoadedArch(self.to_json()).build()

    def __repr__(self) -> str:
        return f"StoredArch({self.decisions})"


# ---- the store ---------------------------------------------------------------------------

class BaseStore(protocols.Store):
    """What every store reads the same way, in terms of ``experiments()`` and ``trials()``."""

    def experiment(self, exp: int | str | Experiment | None = None) -> Experiment:
        """An experiment by id or name (default: the first top-level one)."""
        if isinstance(exp, Experiment):
            return exp
        exps = self.experiments()
        if not exps:
            raise StoreError(f"{self.path!r} holds no experiment yet.")
        if exp is None:
            return next(e for e in exps if e.parent_experiment is None)
        for e in exps:
            if e.id == exp or e.name == exp:
                return e
        raise StoreError(f"no experiment {exp!r} in {self.path!r}; it has "
                         f"{[e.name for e in exps][:20]}.")

    def children(self, exp: int | str | Experiment) -> list[Experiment]:
        """The nested experiments run inside the trials of ``exp``."""
        e = self.experiment(exp)
        return [c for c in self.experiments() if c.parent_experiment == e.id]

    def space(self, exp: int | str | Experiment | None = None):
        """The experiment's Space, rebuilt from its JSON (its classes must be importable)."""
        from symnas.space import Space
        e = self.experiment(exp)
        try:
            space = Space.from_json(e.space)
        except Exception as err:  # noqa: BLE001 - reported with the fix
            raise StoreError(f"cannot rebuild the space of experiment {e.name!r}: {err}. Import "
                             "the module that defines its classes first.") from err
        if space.fingerprint() != e.fingerprint:
            raise StoreError(f"the space rebuilt for {e.name!r} differs from the recorded one "
                             f"(fingerprint {space.fingerprint()} != {e.fingerprint}).")
        return space

    def result(self, exp: int | str | Experiment | None = None, *, space: Any = None):
        """The experiment as a :class:`SearchResult` (its finished and failed trials).

        Architectures are :class:`~symnas.arch.Arch` objects when the space can
        be rebuilt here, else :class:`StoredArch` (recorded decisions and program).
        """
        from symnas.result import SearchResult
        e = self.experiment(exp)
        if space is None:
            try:
                space = self.space(e)
            except StoreError:
                space = None
        rows = [r for r in self.trials(e) if r.status != RUNNING]
        trials = [r.to_trial(space.arch(r.genome) if space is not None
                             else StoredArch(r, e.space)) for r in rows]
        return SearchResult(space, e.objectives, trials, name=e.name, algorithm=e.algorithm)

    def best(self, exp: int | str | Experiment | None = None) -> StoredTrial | None:
        """The best trial row (:func:`symnas.trial.best_of`'s pick); SQL on a store file."""
        e = self.experiment(exp)
        conn = getattr(self, "conn", None)
        if isinstance(conn, sqlite3.Connection) and _sql_name(e.objectives[0].name):
            return best_sql(conn, e.id, e.objectives)
        return best_of(self.trials(e), e.objectives)

    def spent(self, exp: int | str | Experiment | None = None) -> float:
        """The budget an experiment's trials spent, in full evaluations (each trial: its cost)."""
        e = self.experiment(exp)
        conn = getattr(self, "conn", None)
        if isinstance(conn, sqlite3.Connection):
            row = conn.execute("SELECT COALESCE(SUM(COALESCE(cost, 1)), 0) FROM trials WHERE "
                               "experiment=?", (e.id,)).fetchone()
            return round(float(row[0]), 9)
        return round(sum(t.cost for t in self.trials(e)), 9)

    def top(self, exp: int | str | Experiment | None = None,
            limit: int | None = None) -> list[StoredTrial]:
        """Trial rows, done ones first, best first objective first (``symnas show``'s order)."""
        e = self.experiment(exp)
        conn = getattr(self, "conn", None)
        if isinstance(conn, sqlite3.Connection) and _sql_name(e.objectives[0].name):
            return top_sql(conn, e.id, e.objectives, limit)
        o = e.objectives[0]
        sign = o.sign
        rows = sorted(self.trials(e), key=lambda t: (t.status != DONE, -fidelity_rank(t),
                                                     -sign * float(t.metrics.get(o.name, 0) or 0)))
        return rows[:limit] if limit else rows



    def keep_programs(self, exp_id: int, trials: Sequence[Any]) -> None:
        """Keeps the DNA and program of these trials (the best ones) for exports."""

    def close_experiment(self, exp_id: int, status: str = "finished") -> None:
        """Ends this process's run of an experiment (``finished`` or ``interrupted``)."""
        self.update_experiment(exp_id, status=status,
                               finished=time.time() if status == "finished" else None)


class MemoryStore(BaseStore):
    """The searches of this process, in memory (a search without ``storage=`` records here).

    Example::

        >>> import symnas as sn
        >>> store = MemoryStore()
        >>> space = sn.Space(dict(a=sn.oneof([1, 2])))
        >>> _ = sn.search(space, "random", lambda a: 1.0, budget=2, storage=store, name="x",
        ...               progress=False)
        >>> [(e.name, e.done) for e in store.experiments()]
        [('x', 2)]
    """

    path = None

    def __init__(self) -> None:
        self._exps: list[dict] = []
        self._trials: dict[int, dict[int, Any]] = {}   # exp -> trial id -> [trial, ask, tell]

    def find_experiment(self, name: str, parent: tuple[int, int] | None) -> dict | None:
        return next((e for e in self._exps if e["name"] == name and e["parent"] == parent), None)

    def create_experiment(self, record: dict) -> int:
        exp_id = len(self._exps) + 1
        self._exps.append(dict(record, id=exp_id, created=time.time(), finished=None))
        self._trials[exp_id] = {}
        return exp_id

    def update_experiment(self, exp_id: int, **fields: Any) -> None:
        self._exps[exp_id - 1].update(fields)

    def _seq(self, exp_id: int) -> int:
        exp = self._exps[exp_id - 1]
        exp["seq"] = exp.get("seq", 0) + 1
        return exp["seq"] - 1

    def start_trial(self, exp_id: int, trial: Any) -> None:
        trial.started = time.time()
        self._trials[exp_id][trial.id] = [trial, self._seq(exp_id), None]

    def finish_trial(self, exp_id: int, trial: Any, program: Any = None) -> None:
        self._trials[exp_id][trial.id][2] = self._seq(exp_id)

    def retry_trial(self, exp_id: int, trial: Any, error: str | None) -> None:
        pass   # the live trial carries its attempts

    def give_up(self, exp_id: int, trial_id: int, reason: str) -> None:
        row = self._trials[exp_id].get(trial_id)
        if row is not None:
            row[0].status, row[0].error, row[2] = FAILED, reason, self._seq(exp_id)

    def experiments(self) -> list[Experiment]:
        out = []
        for e in self._exps:
            statuses = [t.status for t, _, _ in self._trials[e["id"]].values()]
            parent = e["parent"] or (None, None)
            out.append(Experiment(
                id=e["id"], name=e["name"], parent_experiment=parent[0], parent_trial=parent[1],
                space=e["space"], fingerprint=e["fingerprint"] or "",
                algorithm=_algorithm_json(e["algorithm"])[1], seed=e["seed"],
                objectives=e["objectives"], budget=e["budget"], versions={},
                created=e["created"], finished=e["finished"], done=statuses.count(DONE),
                failed=statuses.count(FAILED), running=statuses.count(RUNNING),
                pruned=statuses.count(PRUNED), fidelity=e.get("fidelity"), pruner=e.get("pruner")))
        return out

    def trials(self, exp: int | str | Experiment | None = None) -> list[StoredTrial]:
        e = self.experiment(exp)
        return [StoredTrial.of(t, ask, tell)
                for _, (t, ask, tell) in sorted(self._trials[e.id].items())]

    def space(self, exp: int | str | Experiment | None = None) -> Any:
        return self.experiment(exp).space

    def __repr__(self) -> str:
        return f"MemoryStore({len(self._exps)} experiments)"


# ---- "best" in SQL: the same definition as symnas.trial.counts / best_of -----------------
def _sql_name(name: str) -> bool:
    """Whether a metric name can be a quoted SQLite JSON path key (``$."name"``)."""
    return '"' not in name


# symnas.trial.counts, with the first objective present, as an SQL condition: done, "feasible"
# not JSON false, and the objective a number (a done trial always has it as a finite number:
# symnas.objective.Objectives.metrics).
_COUNTS_SQL = (f"status = '{DONE}' AND json_type(metrics, '$.\"feasible\"') IS NOT 'false' "
               "AND json_type(metrics, :path) IN ('integer', 'real')")


# symnas.trial.fidelity_rank as SQL: a trial without a fidelity first, then the highest.
_FIDELITY_ORDER = "(fidelity IS NULL) DESC, fidelity DESC"


def best_sql(conn: sqlite3.Connection, exp_id: int, objectives: Any) -> StoredTrial | None:
    """:func:`symnas.trial.best_of` over an experiment's rows, in one SQL query.

    The highest fidelity (none: a full evaluation, highest of all), then the
    largest ``sign * value`` of the first objective; ties go to the lowest id,
    as ``best_of`` keeps the first of equals in id order. A pruned trial is
    not done, so it never counts.
    """
    o = objectives[0]
    row = conn.execute(
        f"SELECT * FROM trials WHERE experiment = :exp AND {_COUNTS_SQL} "
        f"ORDER BY {_FIDELITY_ORDER}, :sign * json_extract(metrics, :path) DESC, id LIMIT 1",
        {"exp": exp_id, "path": f'$."{o.name}"', "sign": o.sign}).fetchone()
    return None if row is None else StoredTrial.from_row(row)


def top_sql(conn: sqlite3.Connection, exp_id: int, objectives: Any,
            limit: int | None = None) -> list[StoredTrial]:
    """Rows with done ones first, then by fidelity and the first objective, best first (ties: by id)."""
    o = objectives[0]
    rows = conn.execute(
        f"SELECT * FROM trials WHERE experiment = :exp ORDER BY status != '{DONE}', "
        f"{_FIDELITY_ORDER}, :sign * COALESCE(json_extract(metrics, :path), 0) DESC, id "
        "LIMIT :limit",
        {"exp": exp_id, "path": f'$."{o.name}"', "sign": o.sign, "limit": limit or -1})
    return [StoredTrial.from_row(r) for r in rows]


def _objectives(text: str):
    from symnas.objective import Objective, Objectives
    d = json.loads(text)
    objs = [Objective(o["name"], o["mode"]) for o in d["objectives"]]
    constraints = []
    for c in d.get("constraints") or ():
        try:
            constraints.append(Objectives.parse(objs, [c]).constraints[0])
        except ValueError:   # a function constraint: recorded by name only
            pass
    return Objectives(objs, constraints)

def _algorithm_json(algorithm: Any) -> tuple[str | None, str]:
    import pyglove as pg
    if isinstance(algorithm, str):
        return json.dumps(algorithm), algorithm
    try:
        text = pg.format(algorithm, compact=True, hide_default_values=True)
    except Exception:  # noqa: BLE001
        text = repr(algorithm)
    try:
        return json.dumps(pg.to_json(algorithm), default=str), text
    except Exception:  # noqa: BLE001 - recorded as text only
        return None, text
