"""The one trial path: ask -> run -> settle -> tell -> record, with observers on it.

Every trial of every search goes through :class:`Engine`: black-box
searches under any executor (:func:`run_black_box`; the inline executor is
the one-slot case), weight-sharing searches (:func:`run_weight_sharing`,
whose algorithm reports through a :class:`~symnas.protocols.Session`), and
hand-written loops (:func:`symnas.search.sample`). The engine starts a
trial (records it as running), settles it from its outcome, tells the
algorithm, records the outcome and then calls the observers (the progress
bar, the user's callbacks) — in that order, always.

Multi-fidelity searches take the same path: a proposal is an architecture
and a fidelity (:meth:`symnas.driver.Driver.propose`); the engine prices it
(:class:`symnas.fidelity.Fidelity`: ``budget`` counts full evaluations), gives
a trial that continues an earlier trial of the same architecture that trial's
seed (so a Task resumes its training exactly), and sends each trial out with
its reporting spec (the metric, the pruner and its snapshot:
:class:`symnas.pruners.Reporting`).

A configuration mistake stops the search at its first finished trial
(:class:`ConfigurationError`): an evaluator whose value lacks the objective or
a constraint's metric fails the same way for every architecture, so the
trial is recorded and the search ends there instead of spending its budget.

Example::

    >>> import symnas as sn
    >>> space = sn.Space(dict(a=sn.oneof([1, 2, 3])))
    >>> r = sn.search(space, "random", lambda arch: {"acc": 1.0}, budget=3, objective="loss",
    ...               progress=False)
    Traceback (most recent call last):
    ...
    symnas.engine.ConfigurationError: ...objective 'loss' is not among the evaluator's metrics...
"""
from __future__ import annotations

import logging
import re
import time
from typing import Any, Callable, Sequence

from symnas.objective import Objectives
from symnas.protocols import Executor, Metrics, Session
from symnas.recorder import Recorder
from symnas.result import SearchResult
from symnas.trial import DONE, FAILED, PRUNED, RUNNING, Outcome, Trial, trial_seed

logger = logging.getLogger("symnas")

Observer = Callable[[Trial], None]
STALE_CHECK_SECONDS = 5.0     # how often a shared search looks for abandoned trials
EPS = 1e-9                    # slack when comparing fractional costs with the budget

__all__ = ["SearchFailed", "ConfigurationError", "Engine", "run_black_box",
           "run_weight_sharing", "replay"]


class SearchFailed(RuntimeError):
    """Every trial of a search failed; ``result`` holds them."""

    def __init__(self, message: str, result: SearchResult):
        super().__init__(message)
        self.result = result


class ConfigurationError(SearchFailed):
    """The first finished trial shows the search is set up wrong (a missing metric)."""


def config_problem(objectives: Objectives, value: Any) -> str | None:
    """What is wrong with the search's set-up, judging by one evaluator value (None: nothing).

    A value that lacks the objective or a constraint's metric, or is not a
    number or a dict of metrics at all, would fail every trial alike.
    """
    try:
        objectives.check_metrics(value)
    except (KeyError, TypeError) as e:
        return str(e.args[0]) if e.args else str(e)
    except ValueError:
        return None     # NaN/inf: this architecture's failure, not the set-up's
    return None


class Engine:
    """The books of one search: trial ids, the record, the observers, the result."""

    def __init__(self, space: Any, objectives: Objectives, recorder: Recorder,
                 result: SearchResult, *, seed: int | None,
                 observers: Sequence[Observer] = (), fidelity: Any = None,
                 reporting: Any = None):
        self.space, self.objectives, self.recorder = space, objectives, recorder
        self.result, self.seed, self.observers = result, seed, list(observers)
        self.fidelity, self.reporting = fidelity, reporting
        self.next_id = max((t.id for t in result.trials), default=-1) + 1
        self.checked = any(t.status == DONE for t in result.trials)
        self.spent = sum(t.cost for t in result.trials)   # in full evaluations, running ones too
        self.trained: dict[tuple, tuple[float, int | None, int]] = {}  # genome -> (fidelity, seed, id)
        for t in sorted(result.trials, key=lambda t: t.id):
            self.learn(t)

    def plan(self, trial: Trial, fidelity: Any = None) -> None:
        """Sets a new trial's fidelity, cost, the trial it continues (and its seed), reporting."""
        if self.fidelity is None:
            return
        f = fidelity if fidelity is not None else self.fidelity.max
        trial.fidelity = f
        start = 0.0
        prev = self.trained.get(tuple(trial.genome))
        if prev is not None and prev[0] < f:
            trial.continues, trial.seed = prev[2], prev[1]
            if self.fidelity.resumes:
                start = prev[0]
        trial.cost = self.fidelity.cost(f, start)
        trial.report_spec = self.reporting.spec() if self.reporting is not None else None

    def learn(self, trial: Any) -> None:
        """Remembers a finished trial's training, for a later trial that continues it."""
        f = getattr(trial, "fidelity", None)
        if trial.status == DONE and f is not None:
            prev = self.trained.get(tuple(trial.genome))
            if prev is None or prev[0] < f:
                self.trained[tuple(trial.genome)] = (f, trial.seed, trial.id)

    def charge(self, trial: Trial) -> None:
        """Charges a settled trial for what it trained, not what was planned.

        A stopped (pruned) run costs up to its last reported step. On a resumable evaluator
        (a Task) a trial that started before its planned epoch, such as a promotion whose
        checkpoint was gone (evicted, or in another worker process), costs from there: the
        Task says where in ``resumed_from``, a stopped run's curve (one value per epoch) starts
        after it. The start only ever moves earlier, so what another search left behind never
        makes a trial cheaper than planned.
        """
        if self.fidelity is None or trial.fidelity is None:
            return
        f, curve = float(trial.fidelity), trial.curve or []
        stopped = trial.status == PRUNED and bool(curve)
        began = None
        if self.fidelity.resumes:
            began = (float(curve[0][0]) - 1 if stopped else
                     (trial.metrics or {}).get("resumed_from") if trial.status == DONE else None)
        if not stopped and began is None:
            return
        start = f - trial.cost * self.fidelity.max              # where the plan began
        if began is not None:
            start = min(start, max(0.0, float(began)))
        upto = min(f, float(curve[-1][0])) if stopped else f
        cost = max(0.0, self.fidelity.cost(upto, start))
        self.spent += cost - trial.cost
        trial.cost = cost

    def start(self, arch: Any, fidelity: Any = None) -> Trial:
        """A new trial of ``arch`` (at ``fidelity``), recorded as running."""
        trial = Trial(self.next_id, arch, seed=trial_seed(self.seed, self.next_id))
        self.next_id += 1
        self.plan(trial, fidelity)
        self.spent += trial.cost
        self.recorder.start(trial)
        return trial

    def settle(self, trial: Trial, outcome: Outcome) -> None:
        """Sets the trial's outcome; stops the search on a configuration mistake."""
        outcome.apply(trial, self.objectives)
        self.charge(trial)
        if trial.status == PRUNED:
            return
        self.learn(trial)
        if self.checked or outcome.error is not None:
            return
        if trial.status == FAILED:
            problem = config_problem(self.objectives, outcome.value)
            if problem is not None:
                self.finish(trial, outcome.program)
                raise ConfigurationError(
                    f"the search stopped at its first trial: {problem} (trial {trial.id} is "
                    "recorded as failed).", self.result)
        else:
            self.checked = True

    def finish(self, trial: Trial, program: Any = None, tell: Callable | None = None) -> None:
        """Tells the algorithm, records the trial, and shows it to the observers."""
        self.result.trials.append(trial)
        if tell is not None:
            tell(trial.arch, trial.reward, trial.fidelity)
        if self.reporting is not None:
            self.reporting.observe(trial)
        self.recorder.finish(trial, program)
        if trial.status == FAILED:
            logger.warning("trial %d failed: %s", trial.id,
                           (trial.error or "").splitlines()[0] if trial.error else "")
        for observer in self.observers:
            observer(trial)


def run_black_box(engine: Engine, driver: Any, executor: Executor, budget: float,
                  running: Sequence[Trial] = (), max_retries: int = 1,
                  ordered: bool = False, time_budget: float | None = None) -> None:
    """Keeps ``executor.slots`` trials in flight; tells the algorithm as each one ends.

    New trials start while the cost spent (full evaluations; every trial
    costs 1 without ``fidelity=``) is below ``budget`` and, with
    ``time_budget``, while fewer than that many seconds have passed.

    ``running`` are trials of a resumed search that were interrupted: each
    runs again, unless its process already stopped while running it more than
    ``max_retries`` times (then it fails: a trial that hangs or kills its
    process is never re-run forever). A trial whose worker crashed is retried
    up to ``max_retries`` times. ``ordered=True`` tells the algorithm the
    results in trial order, and asks for new trials only then, so a seeded
    parallel search proposes exactly the same trials every time (slots wait
    for the slowest earlier trial: see benchmarks/exact_parallel.py).
    A shared experiment (several processes) claims each trial in the store
    and hears the other processes' results as they are recorded.
    """
    deadline = None if time_budget is None else time.monotonic() + time_budget
    _Loop(engine, driver, executor, budget, max_retries, ordered, deadline).run(running)


class _Loop:
    """The state of one black-box run: in flight, queued, held back (ordered), waiting."""

    def __init__(self, engine: Engine, driver: Any, executor: Executor, budget: float,
                 max_retries: int, ordered: bool, deadline: float | None = None):
        self.engine, self.driver, self.executor = engine, driver, executor
        self.budget, self.max_retries, self.ordered = budget, max_retries, ordered
        self.deadline = deadline
        self.recorder = engine.recorder
        self.in_flight: dict[int, Trial] = {}
        self.queue: list[Trial] = []
        self.held: dict[int, tuple[Trial, Outcome]] = {}     # ordered: ended, not yet told
        self.waiting: dict[tuple, Any] = {}                  # shared: claimed by another process
        self.full = False                                    # shared: the budget is claimed
        self._stale_check = 0.0

    def run(self, running: Sequence[Trial]) -> None:
        engine = self.engine
        engine.next_id = max([engine.next_id] + [t.id + 1 for t in running])
        for trial in running:
            engine.spent += trial.cost
            self._requeue(trial, "its process stopped while running it")
        try:
            while True:
                self._sync()
                while self._launch():
                    pass
                if not self.in_flight:
                    break
                for trial_id, outcome in self.executor.wait():
                    self._ended(self.in_flight.pop(trial_id), outcome)
        finally:
            self.executor.shutdown()
        engine.result.trials.sort(key=lambda t: t.id)

    def _launch(self) -> bool:
        """Starts one trial if a slot is free (False: none free, or nothing left to run)."""
        if len(self.in_flight) + len(self.held) >= self.executor.slots:
            return False
        trial = self.queue.pop(0) if self.queue else self._new_trial()
        if trial is None:
            return False
        self.executor.submit(trial, self.recorder.parent_ref(trial))
        self.in_flight[trial.id] = trial
        return True

    def _requeue(self, trial: Trial, why: str) -> None:
        """Runs an interrupted trial again, or fails it when it was tried too often."""
        if trial.attempts > self.max_retries:
            reason = (f"Abandoned: {why} {trial.attempts} times; not run again "
                      f"(max_retries={self.max_retries}).")
            self.recorder.give_up(trial.id, reason)
            trial.status, trial.error = FAILED, reason
            self.engine.result.trials.append(trial)
            self.driver.tell(trial.arch, None, trial.fidelity)
            return
        trial.attempts += 1
        self.recorder.retry(trial, f"retried: {why}")
        self.queue.append(trial)

    def _new_trial(self) -> Trial | None:
        engine, driver = self.engine, self.driver
        while not driver.exhausted and not self.full:
            if not self.recorder.shared and engine.spent >= self.budget - EPS:
                return None
            if self.deadline is not None and time.monotonic() >= self.deadline:
                return None
            proposal = driver.propose()
            if proposal is None:
                return None
            arch, fidelity = proposal
            if not self.recorder.shared:
                return engine.start(arch, fidelity)
            trial = Trial(-1, arch)
            engine.plan(trial, fidelity)
            got = self.recorder.claim(trial, self.budget, _seed_of(engine.seed, trial))
            if got == "claimed":
                return trial
            if got == "budget":
                self.full = True
            elif got.status == RUNNING:          # another process runs it: told when it ends
                self.waiting[driver.key(arch.genome, trial.fidelity)] = arch
            else:
                driver.tell(arch, got.reward, trial.fidelity)
        return None

    def _ended(self, trial: Trial, outcome: Outcome) -> None:
        if outcome.crashed and trial.attempts <= self.max_retries:
            trial.attempts += 1
            self.recorder.retry(trial, outcome.error)
            self.queue.insert(0, trial)
            return
        if not self.ordered:
            self._tell(trial, outcome)
            return
        self.held[trial.id] = (trial, outcome)
        first = min([*self.in_flight, *self.held, *(t.id for t in self.queue)])
        while first in self.held:
            self._tell(*self.held.pop(first))
            self._launch()     # right after each tell: what it proposes depends on no timing
            rest = [*self.in_flight, *self.held, *(t.id for t in self.queue)]
            first = min(rest) if rest else -1

    def _tell(self, trial: Trial, outcome: Outcome) -> None:
        self.engine.settle(trial, outcome)
        self.engine.finish(trial, outcome.program, self.driver.tell)

    def _sync(self) -> None:
        """A shared experiment: the other processes' results, and their abandoned trials."""
        if not self.recorder.shared:
            return
        space, driver, engine = self.engine.space, self.driver, self.engine
        for row in self.recorder.news():
            arch = self.waiting.pop(driver.key(tuple(row.genome), row.fidelity), None)
            trial = row.to_trial(arch or space.arch(row.genome))
            engine.result.trials.append(trial)
            engine.learn(trial)
            driver.tell(trial.arch, trial.reward, trial.fidelity)
            if engine.reporting is not None:
                engine.reporting.observe(trial)
        now = time.monotonic()
        if now - self._stale_check < STALE_CHECK_SECONDS:
            return
        self._stale_check = now
        for row, owner in self.recorder.stale():
            if self.recorder.take_over(row, owner):
                trial = row.to_trial(self.waiting.pop(driver.key(tuple(row.genome), row.fidelity),
                                                      None) or space.arch(row.genome))
                trial.report_spec = engine.reporting.spec() if engine.reporting else None
                trial.status = RUNNING
                self._requeue(trial, "the process running it stopped")


def _seed_of(seed: int | None, trial: Trial) -> Callable[[int], int | None]:
    """The seed a claimed trial gets by its id: a continuation keeps its first rung's."""
    kept = trial.seed if trial.continues is not None else None
    return lambda i: trial_seed(seed, i) if kept is None else kept


class _Session(Session):
    """A weight-sharing algorithm's reports, taken through the engine.

    ``checkpoint_path`` is ``<store file>.<experiment name>.ckpt`` (characters
    other than letters, digits, ``_.-`` in the name become ``_``) when the
    search records to a file, else None.
    """

    def __init__(self, engine: Engine, seed: int):
        self.engine, self.seed = engine, seed
        self.objectives = engine.objectives
        self.name = engine.result.name
        path = engine.recorder.path
        self.checkpoint_path = (f"{path}.{re.sub(r'[^A-Za-z0-9_.-]+', '_', str(self.name))}.ckpt"
                                if path and self.name else None)

    def report(self, genome: Sequence, metrics: Metrics) -> Trial:
        trial = self.engine.start(self.engine.space.arch(genome))
        self.engine.settle(trial, Outcome(dict(metrics)))
        self.engine.finish(trial)
        return trial


def run_weight_sharing(engine: Engine, algorithm: Any, evaluator: Any) -> None:
    """Runs a weight-sharing algorithm once; its reports are the search's trials."""
    seed = getattr(algorithm, "seed", None)
    seed = engine.seed if seed is None else seed
    algorithm.run(engine.space, evaluator, _Session(engine, 0 if seed is None else int(seed)))


def replay(recorder: Recorder, driver: Any, result: SearchResult,
           fresh: Callable[[], Any], reporting: Any = None) -> tuple[Any, list[Trial]]:
    """Rebuilds the algorithm's state from the recorded trials of a resumed search.

    The recorded asks and tells are replayed in their order, so a seeded
    algorithm proposes exactly what it proposed before (the same
    architectures at the same fidelities); if it proposes something else (an
    unseeded algorithm), a fresh driver is given the finished trials through
    ``recover`` instead. ``reporting``'s pruner sees the ended trials' curves
    in the same order, and an interrupted trial gets the pruning snapshot it
    started with, so it is judged as before. Returns the driver and the
    interrupted trials (to run again).
    """
    history = recorder.history            # stored trials, in id order
    if recorder.shared:                   # other processes' running trials are theirs
        history = [h for h in history if h.tell_seq is not None]
    events = sorted([(h.ask_seq, 0, h) for h in history] +
                    [(h.tell_seq, 1, h) for h in history if h.tell_seq is not None],
                    key=lambda e: (e[0], e[1]))
    archs: dict[int, Any] = {}
    exact = True
    for _, kind, h in events:
        if kind == 0:
            proposal = driver.propose()
            if proposal is None or list(proposal[0].genome) != list(h.genome) or (
                    driver.multi and not _same_fidelity(proposal[1], h.fidelity)):
                exact = False
                break
            archs[h.id] = proposal[0]
        else:
            driver.tell(archs[h.id], h.reward, h.fidelity)
    if not exact:
        driver = fresh()
        archs = {h.id: driver.space.arch(h.genome) for h in history}
        finished = sorted((h for h in history if h.tell_seq is not None),
                          key=lambda h: h.tell_seq or 0)
        driver.recover([(archs[h.id].genome, h.reward, h.fidelity) for h in finished])
        for h in history:
            driver.seen.setdefault(driver.key(archs[h.id].genome, h.fidelity), None)
    specs: dict[int, Any] = {}
    if reporting is not None:
        for _, kind, h in events:
            if kind == 1:
                reporting.observe(h)
            elif h.tell_seq is None:
                specs[h.id] = reporting.spec()
    running = []
    for h in history:
        trial = h.to_trial(archs[h.id])
        if h.tell_seq is not None:
            result.trials.append(trial)
        elif not recorder.shared:    # interrupted: runs again (a shared run's live ones do not)
            trial.status = RUNNING
            trial.report_spec = specs.get(h.id)
            running.append(trial)
    return driver, running


def _same_fidelity(a: Any, b: Any) -> bool:
    if a is None or b is None:
        return a is None and b is None
    return abs(float(a) - float(b)) <= EPS * max(1.0, abs(float(b)))
