"""search() and sample(): what a user calls; the trial path itself is :mod:`symnas.engine`.

Evaluators. ``evaluator(arch)`` gets an :class:`~symnas.arch.Arch` (lazy:
``arch.genome``, ``arch.dna``, ``arch.value``, ``arch.build()``) and returns a
number or a dict of metrics. If its first parameter is annotated ``nn.Module``
or named ``model``, it gets the built module instead. If it accepts ``seed=``,
it gets the trial's seed. An evaluator that declares ``metric`` (a Task, the
NAS-Bench-201 table) makes that metric the default objective.

Failures. An evaluator that raises, or returns NaN/inf, makes a ``failed``
trial with the error text (logged at warning on the ``symnas`` logger); the
search goes on. Algorithms are told ``None`` for a failed trial (PyGlove
generators ``-inf``). A value that lacks the objective stops the search at
its first trial (:class:`~symnas.engine.ConfigurationError`). A search whose
every trial fails raises :class:`SearchFailed`, quoting the first failure.

Deduplication (``dedup=True``). An architecture already evaluated in this
search is not evaluated again and costs no budget: the algorithm is told the
recorded reward at once and asked for another proposal.

Example::

    >>> import symnas as sn
    >>> space = sn.Space(dict(a=sn.oneof([1, 2, 3]), b=sn.oneof([1, 2])))
    >>> result = sn.search(space, "evolution", lambda arch: sum(arch.genome), budget=6,
    ...                    seed=0, progress=False)
    >>> result.best.metrics
    {'reward': 3.0}
"""
from __future__ import annotations

import logging
from typing import Any, Callable, Iterator, Sequence

from symnas import executors
from symnas.driver import Driver, prepare, resolve
from symnas.engine import ConfigurationError, Engine, SearchFailed, replay, run_black_box, run_weight_sharing
from symnas.fidelity import plan
from symnas.objective import ObjectiveLike, Objectives
from symnas.protocols import WeightSharingAlgorithm, declared_metric
from symnas.pruners import Reporting
from symnas.recorder import Recorder
from symnas.records import MemoryStore
from symnas.result import SearchResult
from symnas.space import Space
from symnas.trial import Outcome, Trial, evaluator_call

logger = logging.getLogger("symnas")

__all__ = ["search", "sample", "SearchFailed", "SearchInterrupted", "ConfigurationError",
           "Feedback"]


def search(space: Any, algorithm: Any, evaluator: Callable, budget: float | None = None, *,
           seed: int | None = None, objective: ObjectiveLike = None,
           constraints: Sequence = (), dedup: bool = True, name: str | None = None,
           callbacks: Sequence[Callable[[Trial], None]] = (), storage: Any = None,
           resume: bool | str = False, executor: Any = "inline", progress: bool | None = None,
           max_retries: int = 1, parent: Any = None, shared: bool = False,
           trial_timeout: float | None = None, exact: bool = False, fidelity: Any = None,
           pruner: Any = None, time_budget: float | None = None) -> SearchResult:
    """Searches ``space`` with ``algorithm`` for ``budget`` evaluations of ``evaluator``.

    Returns a :class:`SearchResult` with every trial (``result.store`` holds
    the record). ``callbacks`` are called with each finished trial, for every
    kind of algorithm.

    - ``storage``: a SQLite file (``"runs/x.sqlite"``), a folder (the file is
      ``<folder>/<name>.sqlite``), ``True`` (``runs/<name>.sqlite``) or a
      :class:`symnas.protocols.Store`. Every trial is recorded as it starts
      and ends. A search run inside a trial of a recorded search records into
      the same store as its child experiment (``parent`` overrides the parent).
    - ``resume=True`` continues the experiment of the same ``name``: finished
      trials are replayed into the algorithm, interrupted ones run again (at
      most ``max_retries`` more times). The space, algorithm, seed and
      objectives must be the ones recorded (``resume="force"`` accepts changes;
      a new budget is always fine).
    - ``shared=True``: several processes run one experiment together; each
      trial is claimed once in the store and every process hears the others'
      results. Without it, an experiment a live process runs is refused.
    - ``executor``: ``"inline"`` (default), ``"process:N"`` (N local worker
      processes) or ``sn.executors.Ray(num_workers=N)``; trials whose worker
      dies are retried ``max_retries`` times. ``trial_timeout`` (seconds) fails
      a trial that runs longer ("timed out after N s"); its worker is replaced.
    - ``exact=True``: results are told in trial order, so a seeded parallel
      search is exactly reproducible (at some cost in throughput).
    - ``progress``: a progress bar on stderr (default: when it is a terminal).
    - ``fidelity=[12, 200]``: training budgets (epochs) the evaluator takes as
      ``epochs=``; ``budget`` then counts full evaluations (a 12-epoch trial
      costs 12/200). ``"hyperband"``, ``"asha"`` and ``"dehb"`` choose each
      trial's fidelity; any other algorithm's trials run at the highest, and
      ``pruner="median" | "asha" | "curve"`` stops those whose reported
      values (``report=``) say they will not pay (status ``pruned``).
      See :mod:`symnas.fidelity` and :mod:`symnas.pruners`.
    - ``time_budget``: seconds after which no new trial starts.

    Ctrl-C records the experiment as interrupted and raises
    :class:`SearchInterrupted` saying how to resume.
    """
    if not isinstance(space, Space):
        space = Space(space)
    given = algorithm                  # recorded as the user wrote it (a name stays a name)
    algorithm = resolve(algorithm)
    weight_sharing = isinstance(algorithm, WeightSharingAlgorithm)
    if budget is None and not weight_sharing:
        raise TypeError("sn.search needs budget= (the number of evaluations) for a black-box "
                        f"algorithm such as {type(algorithm).__name__}.")
    if budget is not None and budget < 1:
        raise ValueError(f"budget must be at least 1, got {budget}.")
    if max_retries < 0:
        raise ValueError(f"max_retries must be >= 0, got {max_retries}.")
    if trial_timeout is not None and not trial_timeout > 0:
        raise ValueError(f"trial_timeout must be a positive number of seconds, got {trial_timeout}.")
    if weight_sharing and (fidelity is not None or pruner is not None):
        raise ValueError(f"{type(algorithm).__name__} trains one supernet; fidelity= and pruner= "
                         "are for black-box and multi-fidelity algorithms (leave them out).")
    levels, rule = plan(algorithm, evaluator_call(evaluator), fidelity, pruner,
                        resumes=getattr(evaluator, "resumable", False) is True)
    check_space = getattr(evaluator, "check_space", None)
    if callable(check_space):
        check_space(space)               # the evaluator's own limits (a supernet's Space)
    if shared and (storage is None or isinstance(storage, MemoryStore)):
        raise ValueError("shared=True needs storage= (a SQLite file the processes share).")
    default = declared_metric(algorithm) if weight_sharing else None
    objectives = Objectives.parse(objective, constraints,
                                  default=default or declared_metric(evaluator))
    exe = executors.get(executor)
    if weight_sharing and not isinstance(exe, executors.Inline):
        raise ValueError(f"{type(algorithm).__name__} trains one supernet in this process; "
                         f"executor={executor!r} does not apply to it (leave executor out).")
    # before anything is recorded: the evaluator must reach the executor
    exe.start(executors.TrialContext(space, evaluator, timeout=trial_timeout))
    recorder = Recorder.begin(storage, space=space, algorithm=given, seed=seed,
                              objectives=objectives, budget=budget, name=name, resume=resume,
                              parent=parent, shared=shared,
                              fidelity=levels.to_json() if levels else None,
                              pruner=rule.to_json() if rule else None)
    result = SearchResult(space, objectives, name=recorder.name, algorithm=algorithm)
    result.store = recorder.store
    if weight_sharing and recorder.finished:     # a finished one-shot search: its record
        done = recorder.store.result(recorder.exp_id, space=space)
        done.store = recorder.store
        recorder.close(None)
        return done
    driver: Any = None
    running: list[Trial] = []
    reporting = Reporting(objectives, rule) if levels is not None else None
    if not weight_sharing:
        def fresh() -> Driver:
            return Driver(space, prepare(algorithm, space, seed, len(objectives),
                                         levels.levels if levels else None), objectives,
                          dedup=dedup, levels=len(levels.levels) if levels else 1)
        driver = fresh()
        if recorder.history:
            driver, running = replay(recorder, driver, result, fresh, reporting)
        result.algorithm = driver.algorithm
    observers = list(callbacks)
    bar = _progress_bar(progress, None if budget is None or levels is not None else int(budget),
                        objectives, recorder, result)
    if bar is not None:
        observers.insert(0, bar.update)
    engine = Engine(space, objectives, recorder, result, seed=seed, observers=observers,
                    fidelity=levels, reporting=reporting)
    try:
        if weight_sharing:
            run_weight_sharing(engine, algorithm, evaluator)
        else:
            run_black_box(engine, driver, exe, budget or 0, running, max_retries, exact,
                          time_budget)
    except KeyboardInterrupt:
        if bar is not None:
            bar.close()
        recorder.close(result, status="interrupted")
        raise _interrupted(result, recorder) from None
    except BaseException:
        if bar is not None:
            bar.close()
        recorder.close(result, status="interrupted")
        raise
    if bar is not None:
        bar.close()
    recorder.close(result)
    check_not_all_failed(result)
    return result


class SearchInterrupted(KeyboardInterrupt):
    """A search stopped by Ctrl-C; its experiment is recorded as interrupted."""

    def __init__(self, message: str, result: SearchResult):
        super().__init__(message)
        self.result = result


def _interrupted(result: SearchResult, recorder: Recorder) -> SearchInterrupted:
    done = len(result.done)
    where = (f" in {recorder.path!r} (experiment {recorder.name!r})" if recorder.path else "")
    how = ("run the same sn.search again with resume=True to continue where it stopped"
           if recorder.path else "pass storage= to be able to resume a search")
    message = f"search interrupted after {done} finished trials{where}; {how}."
    if recorder.parent is None:
        logger.warning("%s", message)
    return SearchInterrupted(message, result)


def _progress_bar(progress: bool | None, budget: int | None, objectives: Objectives,
                  recorder: Recorder, result: SearchResult) -> Any:
    if progress is False:
        return None
    from symnas import progress as progress_mod
    return progress_mod.make(progress, budget, objectives, name=result.name,
                             nested=recorder.parent is not None, start=result.trials)


def check_not_all_failed(result: SearchResult) -> None:
    """Raises SearchFailed, quoting the first failure, when no trial finished."""
    if result.trials and not result.done:
        first = result.trials[0]
        raise SearchFailed(f"all {len(result.trials)} trials failed; the first failed with:\n"
                           f"{first.error}", result)


class Feedback:
    """The callback :func:`sample` yields with each value: ``feedback(reward)``."""

    __slots__ = ("_engine", "_driver", "trial", "_done")

    def __init__(self, engine: Engine, driver: Driver, trial: Trial):
        self._engine, self._driver, self.trial, self._done = engine, driver, trial, False

    @property
    def arch(self) -> Any:
        return self.trial.arch

    @property
    def dna(self) -> Any:
        return self.trial.arch.dna

    def __call__(self, reward: Any) -> None:
        """Reports the value's reward: a number, a tuple, a dict of metrics, or None (failed)."""
        if self._done:
            raise RuntimeError("feedback was already given for this proposal.")
        self._done = True
        objectives = self._engine.objectives
        if isinstance(reward, (list, tuple)):   # signed values, as an algorithm is told
            reward = {o.name: o.sign * float(r) for o, r in zip(objectives, reward)}
        outcome = Outcome(error="FeedbackSkipped: reported as failed") if reward is None \
            else Outcome(reward)
        self._engine.settle(self.trial, outcome)
        self._engine.finish(self.trial, tell=self._driver.tell)

    def skip(self) -> None:
        """Reports the proposal as failed."""
        self(None)


def sample(space: Any, algorithm: Any, budget: int | None = None, *, seed: int | None = None,
           objective: ObjectiveLike = None, dedup: bool = True) -> Iterator[tuple[Any, Feedback]]:
    """Yields ``(value, feedback)`` pairs for hand-written and nested loops.

    ``value`` is the materialized program (a dict of settings, a module...);
    call ``feedback(reward)`` before the next iteration for algorithms that
    learn. The proposals take the same trial path as a search's.

    Example::

        >>> import symnas as sn
        >>> hp = sn.Space(dict(lr=sn.floatv(1e-3, 1e-1)))
        >>> for value, feedback in sn.sample(hp, "random", budget=2, seed=0):
        ...     feedback(-abs(value["lr"] - 0.01))
    """
    if not isinstance(space, Space):
        space = Space(space)
    objectives = Objectives.parse(objective)
    driver = Driver(space, prepare(algorithm, space, seed, len(objectives)), objectives,
                    dedup=dedup)
    recorder = Recorder.begin(None, space=space, algorithm=algorithm, seed=seed,
                              objectives=objectives, budget=budget, name=None, resume=False,
                              parent=False)
    engine = Engine(space, objectives, recorder, SearchResult(space, objectives), seed=seed)
    while budget is None or engine.next_id < budget:
        arch = driver.ask()
        if arch is None:
            return
        trial = engine.start(arch)
        yield arch.value, Feedback(engine, driver, trial)
