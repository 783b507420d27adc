"""Trials and the primitives every trial goes through, wherever it runs.

A :class:`Trial` is one evaluation of one architecture: id, the architecture
(genome, lazily its DNA and program), metrics, status, error text, seed and
timings. The primitives here are the only code that evaluates and settles a
trial; the search loop (:mod:`symnas.engine`) and the worker processes
(:mod:`symnas.executors`) both call them.

Status and "best" have one definition each: :data:`RUNNING`, :data:`DONE`,
:data:`FAILED`, :data:`PRUNED` (stopped early by a pruner, or by the evaluator
raising :class:`Pruned`); a trial counts towards "best" when it is done and
feasible (:func:`counts`: a pruned trial never counts), and :func:`best_of`
picks the best of any trials or stored rows: the highest fidelity first (a
trial without one is a full evaluation), then the first objective.

Multi-fidelity. A trial may carry a ``fidelity`` (the training budget it was
asked for, e.g. epochs); an evaluator that takes ``epochs=`` or ``fidelity=``
gets it, and one that takes ``report=`` gets a :class:`Reporter` to report
intermediate values to (``report(value, step)``), which raises
:class:`Pruned` when the trial's pruning rule says stop.

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

RUNNING, DONE, FAILED, PRUNED = "running", "done", "failed", "pruned"
STATUSES = (RUNNING, DONE, FAILED, PRUNED)

__all__ = ["RUNNING", "DONE", "FAILED", "PRUNED", "STATUSES", "Trial", "Outcome",
           "evaluator_call", "EvaluatorCall", "trial_seed", "evaluate", "settle", "format_error",
           "counts", "best_of", "fidelity_rank", "jsonable", "TrialTimeout", "time_limit",
           "Pruned", "Reporter"]


class Trial:
    """One evaluation of one architecture."""

    __slots__ = ("id", "arch", "metrics", "status", "error", "seconds", "seed", "reward",
                 "started", "attempts", "fidelity", "cost", "continues", "curve", "report_spec",
                 "__weakref__")

    def __init__(self, id: int, arch: Any, *, seed: int | None = None, started: float = 0.0,
                 fidelity: float | None = None):
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
        self.fidelity = fidelity          # the budget asked for (epochs...); None: no fidelities
        self.cost = 1.0                   # in full evaluations (a 12 of 200 epochs trial: 0.06)
        self.continues: int | None = None  # the trial whose training this one continues
        self.curve: list | None = None    # intermediate values: [[step, value], ...]
        self.report_spec: dict | None = None  # how it reports and is pruned (sent with it)

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
        if self.fidelity is not None:
            data.update(fidelity=self.fidelity, cost=self.cost, continues=self.continues)
        if self.curve is not None:
            data["curve"] = jsonable(self.curve)
        if program:
            data["dna"] = self.arch.dna.to_json()
            data["program"] = self.arch.program_json()
        return data

    def __repr__(self) -> str:
        body = f"error={self.error!r}" if self.status == FAILED else f"metrics={self.metrics}"
        at = f", fidelity={self.fidelity:g}" if self.fidelity is not None else ""
        return f"Trial(id={self.id}, status={self.status}{at}, {body})"


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


def fidelity_rank(trial: Any) -> float:
    """How a trial's fidelity ranks for "best": its fidelity; none (a full evaluation) is highest."""
    f = getattr(trial, "fidelity", None)
    return math.inf if f is None else float(f)


def best_of(trials: Iterable[T], objectives: Objectives) -> T | None:
    """The best of ``trials`` that :func:`counts`: highest fidelity first, then first objective.

    Among trials of one fidelity (every search without ``fidelity=``) it is the
    best first objective; ties go to the earliest. SQL twin:
    :func:`symnas.records.best_sql`.

    >>> objs = Objectives.parse("acc")
    >>> low = settle(Trial(0, None, fidelity=12), {"acc": 0.9}, objs)
    >>> high = settle(Trial(1, None, fidelity=200), {"acc": 0.8}, objs)
    >>> best_of([low, high], objs).id       # the 200-epoch result beats a 12-epoch one
    1
    """
    best, key = None, (-math.inf, -math.inf)
    for t in trials:
        if counts(t) and objectives[0].name in t.metrics:  # type: ignore[attr-defined]
            k = (fidelity_rank(t), objectives.scalar(t.metrics))  # type: ignore[attr-defined]
            if best is None or k > key:
                best, key = t, k
    return best


# ---- evaluating ---------------------------------------------------------------------------
class EvaluatorCall:
    """An evaluator adapted once, by its signature, to ``call(arch, seed, fidelity, report)``.

    The first parameter gets the built module when it is named ``model`` or
    annotated ``nn.Module``; a ``seed`` parameter (or ``**kwargs``) gets the
    seed; an ``epochs`` or ``fidelity`` parameter gets the trial's fidelity
    (``**kwargs``: as ``fidelity=``), a ``report`` parameter (or ``**kwargs``)
    the :class:`Reporter`. ``fidelity_param`` and ``reports`` say what it takes.

    >>> call = EvaluatorCall(lambda arch, epochs, report=None: epochs)
    >>> call.fidelity_param, call.reports, call("arch", 0, 12)
    ('epochs', True, 12)
    """

    __slots__ = ("fn", "wants_model", "wants_seed", "fidelity_param", "reports")

    def __init__(self, evaluator: Callable):
        self.fn = evaluator
        self.wants_model = self.wants_seed = self.reports = False
        self.fidelity_param: str | None = None
        try:
            sig = inspect.signature(evaluator)
        except (TypeError, ValueError):
            return
        params = list(sig.parameters.values())
        names = sig.parameters
        var_kw = any(p.kind == p.VAR_KEYWORD for p in params)
        self.wants_seed = "seed" in names or var_kw
        self.reports = "report" in names or var_kw
        self.fidelity_param = ("epochs" if "epochs" in names else "fidelity" if "fidelity" in names
                               else "fidelity" if var_kw else None)
        if params:
            p0 = params[0]
            ann = p0.annotation
            if p0.name == "model":
                self.wants_model = True
            elif isinstance(ann, str):
                self.wants_model = ann.split(".")[-1] == "Module"
            elif isinstance(ann, type):
                self.wants_model = any(c.__name__ == "Module" and c.__module__.startswith("torch.nn")
                                       for c in ann.__mro__)

    def __call__(self, arch: Any, seed: int | None = None, fidelity: Any = None,
                 report: Any = None) -> Any:
        kwargs: dict[str, Any] = {}
        if self.wants_seed:
            kwargs["seed"] = seed
        if fidelity is not None and self.fidelity_param is not None:
            kwargs[self.fidelity_param] = fidelity
        if report is not None and self.reports:
            kwargs["report"] = report
        return self.fn(arch.build() if self.wants_model else arch, **kwargs)


def evaluator_call(evaluator: Callable) -> EvaluatorCall:
    """Adapts an evaluator to ``call(arch, seed, fidelity=None, report=None)`` once (an
    :class:`EvaluatorCall`)."""
    return evaluator if isinstance(evaluator, EvaluatorCall) else EvaluatorCall(evaluator)


def trial_seed(seed: int | None, trial_id: int) -> int:
    """The seed a trial's evaluator gets: stable in (search seed, trial id)."""
    return ((seed or 0) * 1_000_003 + trial_id * 7919) % (2 ** 31)


class Outcome:
    """What running a trial gave: the evaluator's value, or its error, or a crash.

    ``curve`` holds the intermediate values it reported; ``pruned`` is why it
    was stopped early (its ``value`` is then the last value it reported).
    """

    __slots__ = ("value", "error", "seconds", "crashed", "program", "curve", "pruned")

    def __init__(self, value: Any = None, error: str | None = None, seconds: float = 0.0,
                 crashed: bool = False, program: Any = None, curve: list | None = None,
                 pruned: str | None = None):
        self.value, self.error, self.seconds = value, error, seconds
        self.crashed, self.program = crashed, program
        self.curve, self.pruned = curve, pruned

    @classmethod
    def from_json(cls, d: dict) -> Outcome:
        return cls(d.get("value"), d.get("error"), d.get("seconds", 0.0), False, d.get("program"),
                   d.get("curve"), d.get("pruned"))

    def to_json(self) -> dict:
        out: dict[str, Any] = {"seconds": self.seconds}
        if self.error is not None:
            out["error"] = self.error
        else:
            out["value"] = jsonable(self.value)
        if self.program is not None:
            out["program"] = self.program
        if self.curve is not None:
            out["curve"] = jsonable(self.curve)
        if self.pruned is not None:
            out["pruned"] = self.pruned
        return out

    def apply(self, trial: Trial, objectives: Objectives) -> Trial:
        """Settles ``trial`` with this outcome: status, metrics, reward, error, seconds, curve."""
        trial.seconds = self.seconds
        if self.curve is not None:
            trial.curve = [list(p) for p in self.curve]
        if self.error is not None:
            trial.status, trial.error = FAILED, self.error
            return trial
        if self.pruned is not None:     # the reward stays: the value it was stopped with
            if self.value is not None:
                settle(trial, self.value, objectives)
            trial.status, trial.error = PRUNED, self.pruned
            return trial
        return settle(trial, self.value, objectives)


class Pruned(Exception):
    """Stops a trial early: raised by :class:`Reporter` when its pruning rule says so.

    An evaluator may raise it itself (as ``optuna.TrialPruned``); the trial is
    then recorded as ``pruned`` with the last value it reported.
    """


class Reporter:
    """The ``report=`` callback a trial's evaluator gets: ``report(value, step=None)``.

    ``value`` is a number or a metrics dict holding ``metric``; ``step`` is
    the fidelity reached (epochs), by default the number of reports so far.
    Each value is kept in :attr:`curve`; after each one, ``decide(curve)``
    (the trial's pruning rule, if any) may return the reason to stop, and then
    the call raises :class:`Pruned`.

    >>> r = Reporter("acc", decide=lambda curve: "too low" if curve[-1][1] < 0.5 else None)
    >>> r({"acc": 0.6}, step=1)
    >>> r(0.4)
    Traceback (most recent call last):
    ...
    symnas.trial.Pruned: too low
    >>> r.curve, r.last
    ([[1, 0.6], [2, 0.4]], 0.4)
    """

    __slots__ = ("metric", "decide", "curve", "last")

    def __init__(self, metric: str, decide: Callable[[list], str | None] | None = None):
        self.metric, self.decide = metric, decide
        self.curve: list[list] = []
        self.last: Any = None

    def __call__(self, value: Any, step: float | None = None) -> None:
        if isinstance(value, dict):
            if self.metric not in value:
                raise KeyError(f"report() got metrics {sorted(value)} without the objective "
                               f"{self.metric!r}; report a number or a dict holding it.")
            number = value[self.metric]
        else:
            number = value
        number = float(number)
        step = len(self.curve) + 1 if step is None else step
        self.curve.append([step, number])
        self.last = value
        if self.decide is not None:
            reason = self.decide(self.curve)
            if reason:
                raise Pruned(reason)


def evaluate(call: Callable[..., Any], arch: Any, seed: int | None, fidelity: Any = None,
             reporter: Reporter | None = None) -> Outcome:
    """Runs one evaluation; an exception becomes the outcome's error (the search goes on).

    With a ``reporter`` the outcome carries the reported curve, and a
    :class:`Pruned` raised inside makes it a pruned outcome.
    """
    t0 = time.perf_counter()
    try:
        value = (call(arch, seed) if fidelity is None and reporter is None
                 else call(arch, seed, fidelity, reporter))
    except Pruned as e:
        curve = reporter.curve if reporter is not None else None
        last = reporter.last if reporter is not None else None
        return Outcome(last, seconds=time.perf_counter() - t0, curve=curve,
                       pruned=str(e) or "stopped by the evaluator")
    except Exception as e:  # noqa: BLE001 - a failing trial is recorded, the search goes on
        return Outcome(error=format_error(e), seconds=time.perf_counter() - t0,
                       curve=reporter.curve if reporter is not None and reporter.curve else None)
    return Outcome(value, seconds=time.perf_counter() - t0,
                   curve=reporter.curve if reporter is not None and reporter.curve else None)


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
