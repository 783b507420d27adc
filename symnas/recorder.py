"""The writer one search uses: its experiment in a store, and its trials as they go.

Every search records, whatever its algorithm or executor: into the SQLite
file ``storage=`` names, or into a :class:`~symnas.store.MemoryStore` (the
default, so that nothing on the trial path asks "is there a store?"). A
search started inside a trial of a recorded search records into the same
store as a child experiment of that trial (:data:`CURRENT_TRIAL`).

Example::

    >>> import symnas as sn
    >>> space = sn.Space(dict(a=sn.oneof([1, 2])))
    >>> result = sn.search(space, "random", lambda arch: arch.genome[0], budget=2, seed=0,
    ...                    progress=False)
    >>> result.store.experiments()[0].done
    2
"""
from __future__ import annotations

import contextlib
import contextvars
import json
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from symnas.protocols import Store
from symnas.records import _algorithm_json
from symnas.store import MemoryStore, SQLiteStore, StoredTrial, StoreError, resolve_path
from symnas.trial import RUNNING
from symnas.writes import BEAT_SECONDS, owner_alive, owner_id

__all__ = ["ParentRef", "CURRENT_TRIAL", "current_trial", "Recorder"]


class ParentRef:
    """The trial a nested search runs in: its store, experiment and trial ids."""

    __slots__ = ("store", "experiment", "trial", "name", "_children")

    def __init__(self, store: str | Store, experiment: int, trial: int, name: str):
        self.store, self.experiment, self.trial, self.name = store, experiment, trial, name
        self._children = 0

    @property
    def durable(self) -> bool:
        """Whether the parent's store is a file (so a worker process can record into it)."""
        return isinstance(self.store, str)

    def child_name(self) -> str:
        """The default name of the next child search of this trial."""
        k, self._children = self._children, self._children + 1
        return f"{self.name}/{self.trial}" + (f".{k}" if k else "")

    def to_json(self) -> dict:
        return {"store": self.store, "experiment": self.experiment, "trial": self.trial,
                "name": self.name}

    @classmethod
    def from_json(cls, d: dict) -> ParentRef:
        return cls(d["store"], d["experiment"], d["trial"], d["name"])

    def __repr__(self) -> str:
        return f"ParentRef({self.name!r}, trial={self.trial}, store={self.store!r})"


CURRENT_TRIAL: contextvars.ContextVar[ParentRef | None] = contextvars.ContextVar(
    "symnas_current_trial", default=None)


def current_trial() -> ParentRef | None:
    """The recorded trial whose evaluator is running now (None outside one)."""
    return CURRENT_TRIAL.get()


def _open(storage: Any, name: str | None, parent: ParentRef | None) -> Store:
    if isinstance(storage, Store):
        return storage
    if storage is None:
        if parent is None:
            return MemoryStore()
        return parent.store if isinstance(parent.store, Store) else SQLiteStore.open(parent.store)
    return SQLiteStore.open(resolve_path(storage, name or (parent.name if parent else None)),
                            create=True)


class Recorder:
    """Writes one search's experiment and trials into a :class:`~symnas.protocols.Store`.

    For a file store it also keeps this process's heartbeat (a daemon thread)
    and, for a shared experiment, claims trials and reads the others' results.
    """

    def __init__(self, store: Store, exp_id: int, name: str, parent: ParentRef | None,
                 history: list[StoredTrial], shared: bool = False):
        self.store, self.exp_id, self.name, self.parent = store, exp_id, name, parent
        self.history = history
        self.shared = shared
        seqs = [s for h in history for s in (h.ask_seq, h.tell_seq) if s is not None]
        self.synced = max(seqs) if seqs else -1      # the last event this process has seen
        self._beat: _Heartbeat | None = None
        if store.path is not None:
            self._beat = _Heartbeat(store.path, exp_id)
            self._beat.start()

    @property
    def path(self) -> str | None:
        return self.store.path

    @classmethod
    def begin(cls, storage: Any, *, space: Any, algorithm: Any, seed: int | None,
              objectives: Any, budget: float | None, name: str | None, resume: bool | str,
              parent: Any = None, shared: bool = False, fidelity: Any = None,
              pruner: Any = None) -> Recorder:
        """Opens or creates the experiment a search records into.

        ``resume=True`` continues an experiment that recorded the same space,
        algorithm, seed, objectives, fidelity levels and pruner (a different budget is fine);
        ``resume="force"`` accepts other differences. A live process that owns
        the experiment is never overwritten: the search is refused unless both
        asked for ``shared=True``.
        """
        if parent is False:
            parent = None
        elif parent is None:
            parent = CURRENT_TRIAL.get()
        elif not isinstance(parent, ParentRef):
            raise TypeError(f"parent= takes sn.recorder.current_trial() (a ParentRef), "
                            f"got {parent!r}.")
        if storage is False:
            storage, parent = None, None
        store = _open(storage, name, parent)
        if parent is not None and not _same_store(parent.store, store):
            parent = None   # a search recorded elsewhere is not a child
        if parent is not None:
            name = name or parent.child_name()
            resume = resume or True   # a child of a re-run trial continues where it stopped
        name = name or (Path(store.path).stem if store.path else "search")
        fingerprint = space.fingerprint() if store.path else None
        found = store.find_experiment(name, (parent.experiment, parent.trial) if parent else None)
        if found is None:
            exp_id = store.create_experiment({
                "name": name, "parent": (parent.experiment, parent.trial) if parent else None,
                "space": space, "fingerprint": fingerprint, "algorithm": algorithm, "seed": seed,
                "objectives": objectives, "budget": budget, "shared": shared,
                "fidelity": fidelity, "pruner": pruner})
            return cls(store, exp_id, name, parent, [], shared)
        where = f"experiment {name!r} in {store.path!r}"
        _check_owner(found, where, shared)
        if not resume:
            raise StoreError(f"{where} already exists; pass resume=True to continue it, or "
                             "choose a new name= (or storage=).")
        if fingerprint is not None and found["fingerprint"] != fingerprint:
            raise StoreError(
                f"{where} searched a different space (fingerprint {found['fingerprint']}, this "
                f"space {fingerprint}); the store was left untouched. Resume with the same "
                "space, or choose a new name=.")
        if resume != "force" and store.path is not None:
            _check_same_search(found, where, algorithm=algorithm, seed=seed,
                               objectives=objectives, fidelity=fidelity, pruner=pruner)
        store.update_experiment(found["id"], budget=budget, finished=None, status=RUNNING,
                                owner=owner_id(), heartbeat=time.time(),
                                shared=int(bool(shared or found.get("shared"))))
        return cls(store, found["id"], name, parent, store.trials(found["id"]),
                   bool(shared or found.get("shared")))

    @property
    def finished(self) -> bool:
        """Whether the resumed experiment had already ended with no trial running."""
        return bool(self.history) and all(h.status != RUNNING for h in self.history)

    def start(self, trial: Any) -> None:
        """Records a trial as running (before it is evaluated)."""
        self.store.start_trial(self.exp_id, trial)

    def claim(self, trial: Any, budget: float | None, seed_of: Any = None) -> Any:
        """Claims a trial of a shared experiment (see ``SQLiteWrites.claim_trial``)."""
        return self.store.claim_trial(  # type: ignore[attr-defined]
            self.exp_id, trial, budget, seed_of)

    def news(self) -> list[StoredTrial]:
        """Trials the other processes of a shared experiment finished since the last call."""
        if not self.shared:
            return []
        rows = self.store.news(self.exp_id, self.synced)  # type: ignore[attr-defined]
        if rows:
            self.synced = max(self.synced, max(r.tell_seq or 0 for r in rows))
        return rows

    def stale(self) -> list[tuple[StoredTrial, str | None]]:
        """Running trials of a shared experiment whose process is gone."""
        if not self.shared:
            return []
        return self.store.stale_trials(self.exp_id)  # type: ignore[attr-defined]

    def take_over(self, row: StoredTrial, owner: str | None) -> bool:
        return self.store.take_over(self.exp_id, row.id, owner)  # type: ignore[attr-defined]

    def give_up(self, trial_id: int, reason: str) -> None:
        """Fails a trial that is not to run again (its process died too often)."""
        self.store.give_up(self.exp_id, trial_id, reason)  # type: ignore[attr-defined]

    def retry(self, trial: Any, error: str | None) -> None:
        """Records another attempt of a trial whose worker died."""
        self.store.retry_trial(self.exp_id, trial, error)

    def finish(self, trial: Any, program: Any = None) -> None:
        """Records a trial's outcome (after the algorithm was told)."""
        self.store.finish_trial(self.exp_id, trial, program)

    def parent_ref(self, trial: Any) -> ParentRef:
        """The reference a nested search in ``trial`` records its parent by."""
        return ParentRef(self.store.path or self.store, self.exp_id, trial.id, self.name)

    @contextlib.contextmanager
    def parent_of(self, trial: Any) -> Iterator[None]:
        """Makes ``trial`` the parent of searches started inside this block."""
        token = CURRENT_TRIAL.set(self.parent_ref(trial))
        try:
            yield
        finally:
            CURRENT_TRIAL.reset(token)

    def close(self, result: Any = None, top: int = 10, status: str = "finished") -> None:
        """Ends the run: ``finished`` (programs of the ``top`` best trials kept, so exports
        need not rebuild the space) or ``interrupted``."""
        if self._beat is not None:
            self._beat.stop()
        if status == "finished" and result is not None and result.space is not None:
            self.store.keep_programs(self.exp_id, result.top_k(top))
        self.store.close_experiment(self.exp_id, status)


class _Heartbeat(threading.Thread):
    """Beats for this process's experiment and running trials, on its own connection."""

    def __init__(self, path: str, exp_id: int):
        super().__init__(name="symnas-heartbeat", daemon=True)
        self.path, self.exp_id = path, exp_id
        self._stop_event = threading.Event()
        self.owner = owner_id()

    def run(self) -> None:
        import sqlite3
        try:
            conn = sqlite3.connect(self.path, timeout=5, isolation_level=None)
        except sqlite3.Error:
            return
        try:
            while not self._stop_event.wait(BEAT_SECONDS):
                now = time.time()
                try:
                    conn.execute("UPDATE experiments SET heartbeat=? WHERE id=? AND owner=?",
                                 (now, self.exp_id, self.owner))
                    conn.execute("UPDATE trials SET heartbeat=? WHERE experiment=? AND owner=? "
                                 "AND status=?", (now, self.exp_id, self.owner, RUNNING))
                except sqlite3.Error:   # busy or closed: the next beat tries again
                    pass
        finally:
            conn.close()

    def stop(self) -> None:
        self._stop_event.set()


def _check_owner(found: dict, where: str, shared: bool) -> None:
    """Refuses to run an experiment that a live process owns, unless both share it."""
    owner = found.get("owner")
    if found.get("status") != RUNNING or owner in (None, owner_id()):
        return
    if not owner_alive(owner, found.get("heartbeat")):
        return
    if shared and found.get("shared"):
        return
    ago = time.time() - float(found.get("heartbeat") or 0)
    raise StoreError(
        f"{where} is being run by process {owner} (last heartbeat {ago:.0f} s ago); it was left "
        "untouched. Wait for it to finish, or run both searches with shared=True to work on "
        "it together, or choose a new name=.")


def _check_same_search(found: dict, where: str, *, algorithm: Any, seed: int | None,
                       objectives: Any, fidelity: Any = None, pruner: Any = None) -> None:
    """Refuses a resume that changes what the experiment searches for, or how."""
    diffs = []
    for what, now in (("fidelity", fidelity), ("pruner", pruner)):
        before = json.loads(found[what]) if found.get(what) else None
        if before != (json.loads(json.dumps(now)) if now is not None else None):
            diffs.append(f"{what} {before!r} -> {now!r}")
    recorded = json.loads(found["objectives"]) if found.get("objectives") else None
    if recorded is not None and recorded != json.loads(json.dumps(objectives.to_json())):
        diffs.append(f"objectives {_objectives_text(recorded)} -> "
                     f"{_objectives_text(objectives.to_json())}")
    if found.get("seed") != seed:
        diffs.append(f"seed {found.get('seed')!r} -> {seed!r}")
    text = found.get("algorithm_text")
    if text is not None and not _same_algorithm(text, algorithm):
        diffs.append(f"algorithm {text} -> {_algorithm_json(algorithm)[1]}")
    if diffs:
        raise StoreError(f"{where} was recorded with other settings: {'; '.join(diffs)}. "
                         "The store was left untouched. Resume with the same settings, pass "
                         "resume='force' to continue with the new ones (the trials will mix "
                         "them), or choose a new name=.")


def _objectives_text(d: dict) -> str:
    objs = ", ".join(f"{o['mode']} {o['name']}" for o in d.get("objectives", []))
    cons = d.get("constraints") or []
    return f"[{objs}]" + (f" with {cons}" if cons else "")


def _same_algorithm(recorded_text: str, algorithm: Any) -> bool:
    from symnas.driver import resolve
    if recorded_text == _algorithm_json(algorithm)[1]:
        return True
    try:
        now = _algorithm_json(resolve(algorithm))[1]
        before = _algorithm_json(resolve(recorded_text))[1] if isinstance(recorded_text, str) \
            and "(" not in recorded_text else recorded_text
    except (KeyError, TypeError, ValueError):
        return False
    return now == before


def _same_store(a: Any, b: Store) -> bool:
    if isinstance(a, Store):
        return a is b
    return b.path is not None and os.path.abspath(a) == b.path
