"""The experiment store: every search and every trial in one SQLite file.

``sn.search(..., storage="runs/x.sqlite")`` records the experiment (the space
as JSON and its fingerprint, the algorithm and its settings, seed, objectives,
budget, versions) and each trial as it starts and as it ends, one committed
write each (WAL mode), so a killed search loses nothing it recorded.
``resume=True`` continues the experiment of the same name: finished trials
are replayed into the algorithm and interrupted ones run again.

A search run inside a trial of a recorded search (a nested flow) records into
the same file as a child experiment of that trial, and resumes with it.

Reading::

    store = Store.open("runs/x.sqlite")
    for exp in store.experiments():
        print(exp.name, exp.done, exp.failed)
    result = store.result("x")           # a SearchResult
    result.best.save("best.json")
"""
from __future__ import annotations

import contextlib
import contextvars
import dataclasses
import json
import math
import os
import sqlite3
import time
from pathlib import Path
from typing import Any, Iterator, Sequence

from symnas.arch import ArchFile

FORMAT = "symnas.store/1"
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
    PRIMARY KEY (experiment, id)
);
"""


class StoreError(ValueError):
    """A store file that cannot be used as asked (not a store, another space...)."""


# ---- the parent of nested searches -------------------------------------------------------
class ParentRef:
    """The trial a nested search runs in: store file, experiment and trial ids."""

    __slots__ = ("store", "experiment", "trial", "name", "_children")

    def __init__(self, store: str, experiment: int, trial: int, name: str):
        self.store, self.experiment, self.trial, self.name = store, experiment, trial, name
        self._children = 0

    def child_name(self) -> str:
        """The default name of the next child search of this trial."""
        k, self._children = self._children, self._children + 1
        return f"{self.name}/{self.trial}" + (f".{k}" if k else "")

    def to_json(self) -> dict:
        return {"store": self.store, "experiment": self.experiment, "trial": self.trial,
                "name": self.name}

    @classmethod
    def from_json(cls, d: dict) -> "ParentRef":
        return cls(d["store"], d["experiment"], d["trial"], d["name"])

    def __repr__(self) -> str:
        return f"ParentRef({self.name!r}, trial={self.trial}, store={self.store!r})"


CURRENT_TRIAL: contextvars.ContextVar[ParentRef | None] = contextvars.ContextVar(
    "symnas_current_trial", default=None)


def current_trial() -> ParentRef | None:
    """The recorded trial whose evaluator is running now (None outside one)."""
    return CURRENT_TRIAL.get()


# ---- rows --------------------------------------------------------------------------------
def _dump(x: Any) -> str | None:
    from symnas.result import _jsonable
    return None if x is None else json.dumps(_jsonable(x))


def _load(text: str | None) -> Any:
    return None if text is None else json.loads(text)


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

    @classmethod
    def from_row(cls, r: sqlite3.Row) -> "StoredTrial":
        return cls(id=r["id"], genome=json.loads(r["genome"]), status=r["status"],
                   metrics=_load(r["metrics"]) or {}, reward=_reward(_load(r["reward"])),
                   error=r["error"], seed=r["seed"], seconds=r["seconds"], started=r["started"],
                   finished=r["finished"], attempts=r["attempts"], ask_seq=r["ask_seq"],
                   tell_seq=r["tell_seq"], dna=_load(r["dna"]), program=_load(r["program"]),
                   decisions=_load(r["decisions"]))

    def to_trial(self, arch: Any):
        from symnas.result import Trial
        t = Trial(self.id, arch, seed=self.seed, started=self.started or 0.0)
        t.status, t.metrics, t.reward, t.error = self.status, dict(self.metrics), self.reward, self.error
        t.seconds, t.attempts = self.seconds or 0.0, self.attempts
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

    @property
    def trials(self) -> int:
        return self.done + self.failed + self.running


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
        from symnas.arch import LoadedArch
        return LoadedArch(self.to_json()).build()

    def __repr__(self) -> str:
        return f"StoredArch({self.decisions})"


# ---- the store ---------------------------------------------------------------------------
_OPEN: dict[str, "Store"] = {}


class Store:
    """A symnas experiment store (one SQLite file)."""

    def __init__(self, path: str | os.PathLike, conn: sqlite3.Connection):
        self.path = str(path)
        self.conn = conn
        self._inode: int | None = None

    # -- opening
    @classmethod
    def open(cls, path: str | os.PathLike, *, create: bool = False) -> "Store":
        """Opens a store (``create=True``: a new file is made if there is none).

        A file that is not a symnas store raises :class:`StoreError` and is not
        touched.
        """
        path = os.path.abspath(os.fspath(path))
        cached = _OPEN.get(path)
        if cached is not None:
            try:
                if os.stat(path).st_ino == cached._inode:
                    return cached
            except OSError:
                pass
            _OPEN.pop(path, None)      # the file was removed or replaced since
            cached.conn.close()
        if os.path.isdir(path):
            raise StoreError(f"{path!r} is a folder, not a store file; pass the .sqlite file, "
                             "or pass the folder as storage= to sn.search with a name=.")
        exists = os.path.exists(path) and os.path.getsize(path) > 0
        if exists:
            cls._check(path)
        elif not create:
            raise StoreError(f"no symnas store at {path!r}.")
        else:
            os.makedirs(os.path.dirname(path), exist_ok=True)
        conn = sqlite3.connect(path, timeout=60, isolation_level=None, check_same_thread=False)
        conn.row_factory = sqlite3.Row
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")   # WAL + NORMAL: durable across a process kill
        if not exists:
            conn.executescript(_SCHEMA)
            conn.execute("INSERT OR IGNORE INTO meta VALUES ('format', ?), ('created', ?)",
                         (FORMAT, repr(time.time())))
        store = cls(path, conn)
        store._inode = os.stat(path).st_ino
        _OPEN[path] = store
        return store

    @staticmethod
    def _check(path: str) -> None:
        with open(path, "rb") as f:
            head = f.read(16)
        if head != b"SQLite format 3\x00":
            raise StoreError(f"{path!r} is not a symnas store (not an SQLite file); it was left "
                             "untouched. Choose another storage= path.")
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=60)
        try:
            row = conn.execute("SELECT value FROM meta WHERE key='format'").fetchone()
        except sqlite3.DatabaseError:
            row = None
        finally:
            conn.close()
        if row is None or row[0] != FORMAT:
            raise StoreError(f"{path!r} is an SQLite file but not a symnas store (format "
                             f"{row[0] if row else 'missing'!r}, expected {FORMAT!r}); it was left "
                             "untouched. Choose another storage= path.")

    def close(self) -> None:
        _OPEN.pop(self.path, None)
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
                done=c.get("done", 0), failed=c.get("failed", 0), running=c.get("running", 0)))
        return out

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

    def trials(self, exp: int | str | Experiment | None = None) -> list[StoredTrial]:
        """The trial rows of an experiment, by id."""
        e = self.experiment(exp)
        return [StoredTrial.from_row(r) for r in self.conn.execute(
            "SELECT * FROM trials WHERE experiment=? ORDER BY id", (e.id,))]

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
        rows = [r for r in self.trials(e) if r.status != "running"]
        trials = [r.to_trial(space.arch(r.genome) if space is not None
                             else StoredArch(r, e.space)) for r in rows]
        return SearchResult(space, e.objectives, trials, name=e.name, algorithm=e.algorithm)


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


def _versions() -> dict:
    from importlib import metadata
    out = {}
    for pkg in ("symnas", "pyglove", "torch"):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            out[pkg] = None
    return out


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


# ---- the writer one search uses ----------------------------------------------------------
class Recorder:
    """Writes one search's experiment and trials; created by ``sn.search``."""

    def __init__(self, store: Store, exp_id: int, name: str, parent: ParentRef | None,
                 history: list[StoredTrial]):
        self.store, self.conn, self.exp_id = store, store.conn, exp_id
        self.path, self.name, self.parent, self.history = store.path, name, parent, history
        seqs = [s for h in history for s in (h.ask_seq, h.tell_seq) if s is not None]
        self._seq = max(seqs) + 1 if seqs else 0

    @classmethod
    def begin(cls, storage: Any, *, space: Any, algorithm: Any, seed: int | None, objectives: Any,
              budget: int, name: str | None, resume: bool, parent: Any) -> "Recorder | None":
        """Opens or creates the experiment a search records into (None: no recording)."""
        if parent is False:
            parent = None
        elif parent is None:
            parent = CURRENT_TRIAL.get()
        elif not isinstance(parent, ParentRef):
            raise TypeError(f"parent= takes sn.store.current_trial() (a ParentRef), got {parent!r}.")
        if storage is None or storage is False:
            if parent is None or storage is False:
                return None
            store = Store.open(parent.store)
        elif isinstance(storage, Store):
            store = storage
        else:
            store = Store.open(resolve_path(storage, name or (parent.name if parent else None)),
                               create=True)
        if parent is not None and os.path.abspath(parent.store) != store.path:
            parent = None   # a search recorded elsewhere is not a child
        if parent is not None:
            name = name or parent.child_name()
            resume = True   # a child of a re-run trial continues where it stopped
        name = name or Path(store.path).stem
        fingerprint = space.fingerprint()
        pe, pt = (parent.experiment, parent.trial) if parent else (None, None)
        row = store.conn.execute(
            "SELECT id, fingerprint FROM experiments WHERE name=? AND parent_experiment IS ? "
            "AND parent_trial IS ?", (name, pe, pt)).fetchone()
        if row is not None:
            if not resume:
                raise StoreError(f"experiment {name!r} already exists in {store.path!r}; pass "
                                 "resume=True to continue it, or choose a new name= (or storage=).")
            if row["fingerprint"] != fingerprint:
                raise StoreError(
                    f"experiment {name!r} in {store.path!r} searched a different space "
                    f"(fingerprint {row['fingerprint']}, this space {fingerprint}); the store was "
                    "left untouched. Resume with the same space, or choose a new name=.")
            store.conn.execute("UPDATE experiments SET budget=?, finished=NULL WHERE id=?",
                               (budget, row["id"]))
            history = store.trials(row["id"])
            return cls(store, row["id"], name, parent, history)
        try:
            space_json = json.dumps(space.to_json())
        except Exception as err:  # noqa: BLE001
            raise StoreError(f"cannot record the space as JSON ({err}); a recorded search needs "
                             "a space whose values PyGlove can write as JSON.") from err
        algo_json, algo_text = _algorithm_json(algorithm)
        cur = store.conn.execute(
            "INSERT INTO experiments (name, parent_experiment, parent_trial, space, fingerprint, "
            "algorithm, algorithm_text, seed, objectives, budget, versions, created) "
            "VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
            (name, pe, pt, space_json, fingerprint, algo_json, algo_text, seed,
             json.dumps(objectives.to_json()), budget, json.dumps(_versions()), time.time()))
        return cls(store, cur.lastrowid, name, parent, [])

    def _next_seq(self) -> int:
        s, self._seq = self._seq, self._seq + 1
        return s

    def start(self, trial: Any) -> None:
        """Records a trial as running (before it is evaluated)."""
        trial.started = time.time()
        self.conn.execute(
            "INSERT OR REPLACE INTO trials (experiment, id, genome, status, seed, started, "
            "attempts, ask_seq) VALUES (?,?,?,?,?,?,?,?)",
            (self.exp_id, trial.id, json.dumps(list(trial.arch.genome)), "running", trial.seed,
             trial.started, trial.attempts, self._next_seq()))

    def retry(self, trial: Any, error: str | None) -> None:
        """Records another attempt of a trial whose worker died."""
        self.conn.execute("UPDATE trials SET attempts=?, error=? WHERE experiment=? AND id=?",
                          (trial.attempts, error, self.exp_id, trial.id))

    def finish(self, trial: Any, program: Any = None) -> None:
        """Records a trial's outcome (after the algorithm was told).

        ``program``: the materialized program's JSON when a worker built it.
        """
        dna = decisions = None
        program = json.dumps(program, default=str) if program is not None else None
        arch = trial.arch
        if trial.status == "done":
            # The genome identifies the architecture (the space is recorded); the DNA and the
            # program cost a millisecond or more to build, so they are written only when the
            # evaluator already built them.
            try:
                decisions = _dump(arch.decisions)
                if getattr(arch, "_dna", None) is not None:
                    dna = json.dumps(arch.dna.to_json())
                if program is None and getattr(arch, "_value", None) is not None:
                    program = json.dumps(arch.program_json(), default=str)
            except Exception:  # noqa: BLE001 - the genome alone still identifies it
                pass
        self.conn.execute(
            "UPDATE trials SET status=?, metrics=?, reward=?, error=?, seconds=?, finished=?, "
            "attempts=?, tell_seq=?, dna=?, program=?, decisions=? WHERE experiment=? AND id=?",
            (trial.status, _dump(trial.metrics), _dump(trial.reward), trial.error, trial.seconds,
             time.time(), trial.attempts, self._next_seq(), dna, program, decisions,
             self.exp_id, trial.id))

    def parent_ref(self, trial: Any) -> ParentRef:
        """The reference a nested search in ``trial`` records its parent by."""
        return ParentRef(self.path, self.exp_id, trial.id, self.name)

    @contextlib.contextmanager
    def parent_of(self, trial: Any) -> Iterator[None]:
        """Makes ``trial`` the parent of searches started inside this block."""
        token = CURRENT_TRIAL.set(self.parent_ref(trial))
        try:
            yield
        finally:
            CURRENT_TRIAL.reset(token)

    def close(self, result: Any = None, top: int = 10) -> None:
        """Marks the experiment finished; writes the DNA and program of the ``top`` best
        trials that lack them, so exports need not rebuild the space."""
        if result is not None and result.space is not None:
            best = result.top_k(top)
            ids = [t.id for t in best]
            have = {r[0] for r in self.conn.execute(
                f"SELECT id FROM trials WHERE experiment=? AND program IS NOT NULL AND id IN "
                f"({','.join('?' * len(ids))})", (self.exp_id, *ids))} if ids else set()
            for t in best:
                if t.id in have:
                    continue
                try:
                    self.conn.execute(
                        "UPDATE trials SET dna=?, program=? WHERE experiment=? AND id=?",
                        (json.dumps(t.arch.dna.to_json()),
                         json.dumps(t.arch.program_json(), default=str), self.exp_id, t.id))
                except Exception:  # noqa: BLE001 - the genome still identifies it
                    pass
        self.conn.execute("UPDATE experiments SET finished=? WHERE id=?", (time.time(), self.exp_id))


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
    o = exp.objectives[0]
    vals = [float(t.metrics[o.name]) for t in trials if t.status == "done" and o.name in t.metrics
            and t.metrics.get("feasible", True) is not False]
    vals = [v for v in vals if math.isfinite(v)]
    if not vals:
        return None
    return max(vals) if o.mode == "max" else min(vals)
