"""Trials and the primitives every trial goes through, wherever it runs.

A :class:`Trial` is one evaluation of one architecture: id, the architecture
(genome, lazily its DNA and program), metrics, status, error text, seed and
timings. The primitives here are the only code that evaluates and settles a
trial; the search loop (:mod:`symnas.engine`) and the worker processes
(:mod:`symnas.executors`) both call them.

Status and "best" have one definition each: :data:`RUNNING`, :data:`DONE`,
:data:`FAILED`; a trial counts towards "best" when it is done and feasible
(:func:`counts`), and :func:`best_of` picks the best of any trials or stored
rows.

Example::

    >>> from symnas.objective import Objectives
    >>> objs = Objectives.parse("acc")
    >>> t = settle(Trial(0, arch=None), {"acc": 0.9}, objs)
    >>> t.status, t.reward
    ('done', 0.9)
    >>> settle(Trial(1, arch=None), float("nan"), objs).status
    'failed'
"""
from __future__ import annotations

import contextlib
import inspect
import math
import os
import signal
import threading
import time
import traceback
from collections.abc import Iterator
from typing import Any, Callable, Iterable, TypeVar

from symnas.objective import Objectives

RUNNING, DONE, FAILED = "running", "done", "failed"
STATUSES = (RUNNING, DONE, FAILED)

__all__ = ["RUNNING", "DONE", "FAILED", "STATUSES", "Trial", "Outcome", "evaluator_call",
           "trial_seed", "evaluate", "settle", "format_error", "counts", "best_of", "jsonable",
           "TrialTimeout", "time_limit"]


class Trial:
    """One evaluation of one architecture."""

    __slots__ = ("id", "arch", "metrics", "status", "error", "seconds", "seed", "reward",
                 "started", "attempts", "__weakref__")

    def __init__(self, id: int, arch: Any, *, seed: int | None = None, started: float = 0.0):
        self.id = id
        self.arch = arch
        self.metrics: dict[str, Any] = {}
        self.status = RUNNING
        self.error: str | None = None
        self.seconds = 0.0
        self.seed = seed
        self.reward: Any = None
        self.started = started
        self.attempts = 1

    # ---- the architecture -------------------------------------------------------
    @property
    def genome(self) -> tuple:
        return self.arch.genome

    @property
    def dna(self) -> Any:
        return self.arch.dna

    @property
    def decisions(self) -> dict:
        return self.arch.decisions

    def build(self) -> Any:
        """A fresh ``nn.Module`` of this trial's architecture."""
        return self.arch.build()

    def save(self, path: str | os.PathLike) -> str:
        """Writes the architecture and its metrics as JSON (reload with ``sn.load``)."""
        return self.arch.save(path, metrics=jsonable(self.metrics), trial=self.id)

    @property
    def ok(self) -> bool:
        return self.status == DONE

    def to_json(self, program: bool = True) -> dict:
        data = {"id": self.id, "genome": list(self.genome), "status": self.status,
                "metrics": jsonable(self.metrics), "reward": jsonable(self.reward),
                "error": self.error, "seconds": self.seconds, "seed": self.seed,
                "decisions": jsonable(self.decisions)}
        if program:
            data["dna"] = self.arch.dna.to_json()
            data["program"] = self.arch.program_json()
        return data

    def __repr__(self) -> str:
        body = f"error={self.error!r}" if self.status == FAILED else f"metrics={self.metrics}"
        return f"Trial(id={self.id}, status={self.status}, {body})"


def jsonable(x: Any) -> Any:
    """``x`` with every value JSON can write (non-finite floats as text, scalars unwrapped)."""
    if isinstance(x, dict):
        return {str(k): jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [jsonable(v) for v in x]
    if isinstance(x, float) and not math.isfinite(x):
        return str(x)
    if hasattr(x, "item") and callable(x.item):  # numpy / torch scalars
        return x.item()
    if isinstance(x, (str, int, float, bool)) or x is None:
        return x
    return str(x)


# ---- "best": one definition -------------------------------------------------------------
def counts(trial: Any) -> bool:
    """Whether a trial (or stored row) competes for "best": done, and not infeasible."""
    return trial.status == DONE and trial.metrics.get("feasible", True) is not False


T = TypeVar("T")


def best_of(trials: Iterable[T], objectives: Objectives) -> T | None:
    """The best of ``trials`` by the first objective among those that :func:`counts`."""
    best, key = None, -math.inf
    for t in trials:
        if counts(t) and objectives[0].name in t.metrics:  # type: ignore[attr-defined]
            k = objectives.scalar(t.metrics)  # type: ignore[attr-defined]
            if best is None or k > key:
                best, key = t, k
    return best


# ---- evaluating ---------------------------------------------------------------------------
def evaluator_call(evaluator: Callable) -> Callable[[Any, int | None], Any]:
    """Adapts an evaluator to ``call(arch, seed)`` once, by its signature.

    The first parameter gets the built module when it is named ``model`` or
    annotated ``nn.Module``; a ``seed`` parameter (or ``**kwargs``) gets the seed.
    """
    fn = evaluator
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):
        return lambda arch, seed: fn(arch)
    params = list(sig.parameters.values())
    wants_seed = "seed" in sig.parameters or any(p.kind == p.VAR_KEYWORD for p in params)
    wants_model = False
    if params:
        p0 = params[0]
        ann = p0.annotation
        if p0.name == "model":
            wants_model = True
        elif isinstance(ann, str):
            wants_model = ann.split(".")[-1] == "Module"
        elif isinstance(ann, type):
            wants_model = any(c.__name__ == "Module" and c.__module__.startswith("torch.nn")
                              for c in ann.__mro__)
    if wants_model and wants_seed:
        return lambda arch, seed: fn(arch.build(), seed=seed)
    if wants_model:
        return lambda arch, seed: fn(arch.build())
    if wants_seed:
        return lambda arch, seed: fn(arch, seed=seed)
    return lambda arch, seed: fn(arch)


def trial_seed(seed: int | None, trial_id: int) -> int:
    """The seed a trial's evaluator gets: stable in (search seed, trial id)."""
    return ((seed or 0) * 1_000_003 + trial_id * 7919) % (2 ** 31)


class Outcome:
    """What running a trial gave: the evaluator's value, or its error, or a crash."""

    __slots__ = ("value", "error", "seconds", "crashed", "program")

    def __init__(self, value: Any = None, error: str | None = None, seconds: float = 0.0,
                 crashed: bool = False, program: Any = None):
        self.value, self.error, self.seconds = value, error, seconds
        self.crashed, self.program = crashed, program

    @classmethod
    def from_json(cls, d: dict) -> Outcome:
        return cls(d.get("value"), d.get("error"), d.get("seconds", 0.0), False, d.get("program"))

    def to_json(self) -> dict:
        out: dict[str, Any] = {"seconds": self.seconds}
        if self.error is not None:
            out["error"] = self.error
        else:
            out["value"] = jsonable(self.value)
        if self.program is not None:
            out["program"] = self.program
        return out

    def apply(self, trial: Trial, objectives: Objectives) -> Trial:
        """Settles ``trial`` with this outcome: status, metrics, reward, error, seconds."""
        trial.seconds = self.seconds
        if self.error is not None:
            trial.status, trial.error = FAILED, self.error
            return trial
        return settle(trial, self.value, objectives)


def evaluate(call: Callable[[Any, int | None], Any], arch: Any, seed: int | None) -> Outcome:
    """Runs one evaluation; an exception becomes the outcome's error (the search goes on)."""
    t0 = time.perf_counter()
    try:
        value = call(arch, seed)
    except Exception as e:  # noqa: BLE001 - a failing trial is recorded, the search goes on
        return Outcome(error=format_error(e), seconds=time.perf_counter() - t0)
    return Outcome(value, seconds=time.perf_counter() - t0)


def settle(trial: Trial, value: Any, objectives: Objectives) -> Trial:
    """Sets a trial's metrics, reward and status from an evaluator's value.

    A value the objectives reject (NaN, a string, a missing metric) fails the
    trial with that error. A trial that breaks a constraint is done but
    infeasible (``metrics["feasible"] = False``) and gets no reward.
    """
    try:
        metrics = objectives.metrics(value)
        feasible = objectives.feasible(metrics) if objectives.constraints else True
    except Exception as e:  # noqa: BLE001 - recorded as the trial's failure
        trial.status, trial.error = FAILED, format_error(e)
        return trial
    trial.metrics = metrics
    if feasible:
        trial.reward = objectives.reward(metrics)
    else:
        metrics["feasible"] = False
        trial.reward = None
    trial.status = DONE
    return trial


class TrialTimeout(Exception):
    """A trial ran longer than the search's ``trial_timeout``."""

    def __init__(self, seconds: float):
        super().__init__(f"timed out after {seconds:g} s (trial_timeout={seconds:g})")
        self.seconds = seconds


@contextlib.contextmanager
def time_limit(seconds: float | None) -> Iterator[bool]:
    """Raises :class:`TrialTimeout` in this thread after ``seconds`` (POSIX main thread only).

    Yields whether the limit is enforced: elsewhere (Windows, a worker thread)
    it is not, and the caller should say so.
    """
    usable = (seconds is not None and hasattr(signal, "setitimer")
              and threading.current_thread() is threading.main_thread())
    if not usable:
        yield False
        return

    def expire(signum: int, frame: Any) -> None:
        raise TrialTimeout(float(seconds or 0))

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, float(seconds or 0))
    try:
        yield True
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def format_error(e: BaseException) -> str:
    """The error text a failed trial records: the message and the last frames."""
    return f"{type(e).__name__}: {e}\n" + "".join(
        traceback.format_exception(type(e), e, e.__traceback__)[-3:])
