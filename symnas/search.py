"""search() and sample(): the one trial loop (propose -> evaluate -> feedback -> record).

Any PyGlove ``DNAGenerator`` drives it; symnas algorithms are driven through
their genome protocol (``ask``/``tell``) so no PyGlove DNA is built unless the
evaluator or the record needs one.

Evaluators. ``evaluator(arch)`` gets an :class:`~symnas.arch.Arch` (lazy:
``arch.genome``, ``arch.dna``, ``arch.value``, ``arch.build()``) and returns a
number or a dict of metrics. If its first parameter is annotated ``nn.Module``
or named ``model``, it gets the built module instead. If it accepts ``seed=``,
it gets the trial's seed.

Failures. An evaluator that raises, or returns NaN/inf, makes a ``failed``
trial with the error text; the search goes on. symnas algorithms are told
``None`` for a failed trial; other PyGlove generators are told ``-inf`` (per
objective). A search whose every trial fails raises :class:`SearchFailed`,
quoting the first failure (``err.result`` keeps the trials).

Deduplication (``dedup=True``). An architecture already evaluated in this
search is not evaluated again and costs no budget: the algorithm is told the
recorded reward at once and asked for another proposal. The search ends early
when the space is exhausted.

Durable and parallel runs. ``storage=`` records every trial into a SQLite
store as it starts and ends (:mod:`symnas.store`); ``resume=True`` continues a
killed search exactly: the recorded asks and tells are replayed into the
algorithm in their order, and interrupted trials run again. ``executor=``
runs trials in worker processes or on Ray (:mod:`symnas.executors`), keeping
N in flight and telling the algorithm each result as it arrives. With neither,
the loop is the plain serial one.

Example::

    result = sn.search(space, sn.algorithms.RegularizedEvolution(), evaluate,
                       budget=50, seed=0, objective="acc")
    print(result.best.metrics)
    result = sn.search(space, "evolution", evaluate, budget=500, seed=0,
                       storage="runs/evo.sqlite", resume=True, executor="process:4")
"""
from __future__ import annotations

import inspect
import math
import time
import traceback
import warnings
from typing import Any, Callable, Iterator, Sequence

import pyglove as pg

from symnas.arch import Arch
from symnas.genome import Genome
from symnas.objective import Objectives, ObjectiveLike
from symnas.result import DONE, FAILED, SearchResult, Trial


class SearchFailed(RuntimeError):
    """Every trial of a search failed; ``result`` holds them."""

    def __init__(self, message: str, result: SearchResult):
        super().__init__(message)
        self.result = result


def prepare_algorithm(algorithm: Any, space: Any, seed: int | None) -> Any:
    """A private, seeded copy of ``algorithm`` set up on the space's DNASpec."""
    if isinstance(algorithm, str):
        from symnas import algorithms
        algorithm = algorithms.get(algorithm)
    if not isinstance(algorithm, pg.DNAGenerator):
        raise TypeError(f"algorithm must be a PyGlove DNAGenerator (e.g. sn.algorithms.Random()), "
                        f"got {type(algorithm).__name__}.")
    algo = algorithm.clone(deep=True)
    if seed is not None:
        _seed_unseeded(algo, seed)
    algo.setup(space.dna_spec)
    return algo


def _seed_unseeded(algo: pg.Symbolic, seed: int) -> None:
    """Gives every unset ``seed`` field in the algorithm's tree a seed derived from ``seed``.

    PyGlove's composite generators (e.g. ``pg.evolution.regularized_evolution``)
    keep seeds on nested selectors and mutators, not on the top object.
    """
    count = 0

    def visit(node: Any) -> None:
        nonlocal count
        if isinstance(node, (list, tuple)):
            for item in node:
                visit(item)
        elif isinstance(node, pg.Object):
            args = node.sym_init_args
            if "seed" in args and args["seed"] is None:
                node.rebind(seed=seed + 7919 * count)  # re-runs _on_bound: fresh RNGs
                count += 1
            for key, value in args.items():
                if key != "seed":
                    visit(value)

    visit(algo)


class Driver:
    """Asks an algorithm for new architectures and tells it their rewards.

    Speaks the genome protocol to symnas algorithms and PyGlove's DNA protocol
    to any other generator; with ``dedup`` it answers repeated proposals from
    its record and asks again.
    """

    def __init__(self, space: Any, algorithm: Any, objectives: Objectives, *,
                 dedup: bool = True, max_repeats: int = 1000):
        from symnas.algorithms.base import Algorithm
        self.space = space
        self.algo = algorithm
        self.objectives = objectives
        self.native = isinstance(algorithm, Algorithm)
        self.dedup = dedup
        self.max_repeats = max_repeats
        self.seen: dict[Genome, Any] = {}   # genome -> reward told (None: pending/failed)
        self.exhausted = False
        self._failed_reward = tuple([-math.inf] * len(objectives)) if objectives.multi else -math.inf

    def ask(self) -> Arch | None:
        """The next architecture to evaluate; None when the space is exhausted."""
        gs = self.space.genome_spec
        for _ in range(self.max_repeats):
            if self.native:
                genome, dna = gs.canonical(self.algo.next_genome()), None
            else:
                dna = self.algo.propose()
                genome = gs.from_dna(dna)
            if not self.dedup or genome not in self.seen:
                self.seen[genome] = None
                return Arch(self.space, genome, dna)
            # A repeat: answer from the record without spending budget.
            self._tell(genome, dna, self.seen[genome])
            if len(self.seen) >= self.space.size:
                break
        else:
            warnings.warn(
                f"{type(self.algo).__name__} proposed only already-evaluated architectures "
                f"{self.max_repeats} times in a row ({len(self.seen)} of {self.space.size} seen); "
                "the search stops early. The algorithm has converged: widen its exploration "
                "(e.g. a larger population or mutation rate) or pass dedup=False.", stacklevel=3)
        self.exhausted = True
        return None

    def tell(self, arch: Arch, reward: Any) -> None:
        """Reports a reward (None: failed) for an architecture from :meth:`ask`."""
        self.seen[arch.genome] = reward
        self._tell(arch.genome, arch._dna, reward)

    def _tell(self, genome: Genome, dna: Any, reward: Any) -> None:
        if self.native:
            self.algo.told(genome, reward)
        else:
            self.algo.feedback(dna if dna is not None else self.space.genome_spec.to_dna(genome),
                               self._failed_reward if reward is None else reward)

    def recover(self, history: Sequence[tuple[Genome, Any]]) -> None:
        """Replays finished trials (genome, reward or None) into the algorithm."""
        if self.native:
            self.algo.recover_genomes(history)
        else:
            self.algo.recover([(self.space.genome_spec.to_dna(g),
                                self._failed_reward if r is None else r) for g, r in history])
        for g, r in history:
            self.seen[tuple(g)] = r


def evaluator_call(evaluator: Callable) -> Callable[[Arch, int | None], Any]:
    """Adapts an evaluator to ``call(arch, seed)`` once, by its signature."""
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
        elif ann is not inspect.Parameter.empty:
            try:
                import torch.nn as nn
                wants_model = (isinstance(ann, type) and issubclass(ann, nn.Module)) or \
                    (isinstance(ann, str) and ann.split(".")[-1] == "Module")
            except ImportError:  # pragma: no cover
                pass
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


def run_trial(trial: Trial, call: Callable, objectives: Objectives) -> Trial:
    """Evaluates one trial in place: metrics, reward, status, error, seconds."""
    t0 = time.perf_counter()
    try:
        value = call(trial.arch, trial.seed)
    except Exception as e:  # noqa: BLE001 - a failing trial is recorded, the search goes on
        trial.status, trial.error = FAILED, format_error(e)
    else:
        settle_or_fail(trial, value, objectives)
    trial.seconds = time.perf_counter() - t0
    return trial


def settle_or_fail(trial: Trial, value: Any, objectives: Objectives) -> Trial:
    """``settle_trial``, with an evaluator result it rejects (NaN, wrong type) recorded as the
    trial's failure instead of raised."""
    try:
        settle_trial(trial, value, objectives)
    except Exception as e:  # noqa: BLE001 - recorded as the trial's failure
        trial.status, trial.error = FAILED, format_error(e)
    return trial


def format_error(e: BaseException) -> str:
    """The error text a failed trial records: the message and the last frames."""
    return f"{type(e).__name__}: {e}\n" + "".join(
        traceback.format_exception(type(e), e, e.__traceback__)[-3:])


def settle_trial(trial: Trial, value: Any, objectives: Objectives) -> Trial:
    """Sets a trial's metrics, reward and status from an evaluator's return value.

    Raises what :meth:`Objectives.metrics` raises for a value that is not a
    valid outcome (the caller records the trial as failed).
    """
    metrics = objectives.metrics(value)
    trial.metrics = metrics
    if objectives.constraints and not objectives.feasible(metrics):
        metrics["feasible"] = False
        trial.reward = None
    else:
        trial.reward = objectives.reward(metrics)
    trial.status = DONE
    return trial


def search(space: Any, algorithm: Any, evaluator: Callable, budget: int | None = None, *,
           seed: int | None = None, objective: ObjectiveLike = None,
           constraints: Sequence = (), dedup: bool = True, name: str | None = None,
           callbacks: Sequence[Callable[[Trial], None]] = (), storage: Any = None,
           resume: bool = False, executor: Any = "inline", progress: bool | None = None,
           max_retries: int = 1, parent: Any = None) -> SearchResult:
    """Searches ``space`` with ``algorithm`` for ``budget`` evaluations of ``evaluator``.

    Returns a :class:`SearchResult` with every trial. See the module docstring
    for evaluators, failures and deduplication. ``callbacks`` are called with
    each finished trial.

    Durable and parallel runs:

    - ``storage``: a SQLite file (``"runs/x.sqlite"``), a folder (the file is
      ``<folder>/<name>.sqlite``), ``True`` (``runs/<name>.sqlite``) or a
      :class:`symnas.store.Store`. Every trial is recorded as it starts and ends.
      A search run inside a trial of a recorded search records into the same
      store as its child experiment (``parent`` overrides the parent trial).
    - ``resume=True`` continues the experiment of the same ``name`` in the store:
      finished trials are replayed into the algorithm, interrupted ones run again.
    - ``executor``: ``"inline"`` (default), ``"process:N"`` (N local worker
      processes) or ``sn.executors.Ray(num_workers=N)``; trials whose worker
      dies are retried ``max_retries`` times.
    - ``progress``: a progress bar on stderr (default: when it is a terminal).
    """
    from symnas.space import Space
    if not isinstance(space, Space):
        space = Space(space)
    given = algorithm                  # recorded as the user wrote it (a name stays a name)
    if isinstance(algorithm, str):     # resolved before asking its kind
        from symnas import algorithms
        algorithm = algorithms.get(algorithm)
    weight_sharing = getattr(algorithm, "weight_sharing", False)
    if budget is None and not weight_sharing:
        raise TypeError("sn.search needs budget= (the number of evaluations) for a black-box "
                        f"algorithm such as {type(algorithm).__name__}.")
    if budget is not None and budget < 1:
        raise ValueError(f"budget must be at least 1, got {budget}.")
    if max_retries < 0:
        raise ValueError(f"max_retries must be >= 0, got {max_retries}.")
    objectives = Objectives.parse(objective, constraints)
    if weight_sharing:          # one supernet run; budget is not used
        return _weight_sharing(space, algorithm, evaluator, seed=seed, objectives=objectives,
                               name=name, storage=storage, resume=resume, parent=parent,
                               budget=budget or 1)
    algo = prepare_algorithm(algorithm, space, seed)
    driver = Driver(space, algo, objectives, dedup=dedup)
    result = SearchResult(space, objectives, name=name, algorithm=algo)
    from symnas import executors
    exe = executors.get(executor)
    if exe is not None:      # before anything is recorded: the evaluator must be sendable
        exe.start(executors.TrialContext.of(space, evaluator))
    recorder = _begin_recording(storage, space=space, algorithm=given, seed=seed,
                                objectives=objectives, budget=budget, name=name, resume=resume,
                                parent=parent)
    if recorder is not None:
        result.name = recorder.name
    running: list[Trial] = []
    if recorder is not None and recorder.history:
        driver, running = _replay(recorder, driver, result, lambda: Driver(
            space, prepare_algorithm(algorithm, space, seed), objectives, dedup=dedup))
        result.algorithm = driver.algo
    bar = None
    if progress is not False:
        from symnas import progress as progress_mod
        bar = progress_mod.make(progress, budget, objectives, name=result.name,
                                nested=recorder is not None and recorder.parent is not None,
                                start=result.trials)
    try:
        if exe is None:
            _loop_inline(driver, evaluator_call(evaluator), result, budget, seed, running,
                         recorder, bar, callbacks)
        else:
            _loop_async(driver, exe, result, budget, seed, running, recorder, bar,
                        callbacks, max_retries)
    finally:
        if bar is not None:
            bar.close()
        if recorder is not None:
            recorder.close(result)
    check_not_all_failed(result)
    return result


def _begin_recording(storage: Any, *, parent: Any, **kwargs: Any) -> Any:
    """The experiment's Recorder, or None when nothing asks for recording (the store module
    is not even imported then)."""
    if storage is None and parent is None and not _has_parent_context():
        return None
    from symnas import store as store_mod
    return store_mod.Recorder.begin(storage, parent=parent, **kwargs)


def _weight_sharing(space: Any, algorithm: Any, evaluator: Any, *, seed: int | None,
                    objectives: Objectives, name: str | None, storage: Any, resume: bool,
                    parent: Any, budget: int) -> SearchResult:
    """Runs a weight-sharing algorithm and records its trials like a black-box search's.

    A resumed run whose experiment already finished returns the recorded result
    instead of training the supernet again.
    """
    recorder = _begin_recording(storage, space=space, algorithm=algorithm, seed=seed,
                                objectives=objectives, budget=budget, name=name, resume=resume,
                                parent=parent)
    if recorder is not None and recorder.history and \
            all(h.status != "running" for h in recorder.history):
        return recorder.store.result(recorder.exp_id, space=space)
    result = algorithm.run(space, evaluator, seed=seed, objectives=objectives, name=name)
    if recorder is not None:
        result.name = recorder.name
        for trial in result.trials:
            recorder.start(trial)
            recorder.finish(trial)
        recorder.close(result)
    return result


def _has_parent_context() -> bool:
    import sys
    store_mod = sys.modules.get("symnas.store")
    return store_mod is not None and store_mod.CURRENT_TRIAL.get() is not None


def _loop_inline(driver: Driver, call: Callable, result: SearchResult, budget: int,
                 seed: int | None, running: list[Trial], recorder: Any, bar: Any,
                 callbacks: Sequence[Callable[[Trial], None]]) -> None:
    """The serial loop: ask, evaluate in this process, tell."""
    objectives = result.objectives
    next_id = len(result.trials) + len(running)
    while running or next_id < budget:
        if running:
            trial = running.pop(0)
        else:
            trial = _next_trial(driver, next_id, seed, recorder)
            if trial is None:
                break
            next_id += 1
        if recorder is not None:
            with recorder.parent_of(trial):
                run_trial(trial, call, objectives)
        else:
            run_trial(trial, call, objectives)
        _finish(trial, driver, result, recorder, bar, callbacks)


def _next_trial(driver: Driver, trial_id: int, seed: int | None, recorder: Any) -> Trial | None:
    """A new trial from the algorithm's next proposal, recorded as running (None: exhausted)."""
    arch = driver.ask()
    if arch is None:
        return None
    trial = Trial(trial_id, arch, seed=trial_seed(seed, trial_id))
    if recorder is not None:
        recorder.start(trial)
    return trial


def _finish(trial: Trial, driver: Driver, result: SearchResult, recorder: Any, bar: Any,
            callbacks: Sequence[Callable[[Trial], None]], program: Any = None) -> None:
    result.trials.append(trial)
    driver.tell(trial.arch, trial.reward)
    if recorder is not None:
        recorder.finish(trial, program)
    if bar is not None:
        bar.update(trial)
    for cb in callbacks:
        cb(trial)


def _loop_async(driver: Driver, exe: Any, result: SearchResult, budget: int,
                seed: int | None, running: list[Trial], recorder: Any, bar: Any,
                callbacks: Sequence[Callable[[Trial], None]], max_retries: int) -> None:
    """Keeps ``exe.slots`` trials in flight; tells the algorithm as each one finishes."""
    in_flight: dict[int, Trial] = {}
    queue = list(running)
    next_id = len(result.trials) + len(running)
    try:
        while True:
            while len(in_flight) < exe.slots:
                if queue:
                    trial = queue.pop(0)
                elif next_id < budget and not driver.exhausted:
                    trial = _next_trial(driver, next_id, seed, recorder)
                    if trial is None:
                        break
                    next_id += 1
                else:
                    break
                exe.submit(trial, recorder.parent_ref(trial) if recorder is not None else None)
                in_flight[trial.id] = trial
            if not in_flight:
                break
            for trial_id, outcome in exe.wait():
                trial = in_flight.pop(trial_id)
                if outcome.crashed and trial.attempts <= max_retries:
                    trial.attempts += 1
                    if recorder is not None:
                        recorder.retry(trial, outcome.error)
                    queue.insert(0, trial)
                    continue
                outcome.apply(trial, result.objectives)
                _finish(trial, driver, result, recorder, bar, callbacks, outcome.program)
    finally:
        exe.shutdown()
    result.trials.sort(key=lambda t: t.id)


def _replay(recorder: Any, driver: Driver, result: SearchResult,
            fresh: Callable[[], Driver]) -> tuple[Driver, list[Trial]]:
    """Rebuilds the algorithm's state from the recorded trials of a resumed search.

    The recorded asks and tells are replayed in their order, so a seeded
    algorithm proposes exactly what it proposed before; if it proposes
    something else (an unseeded algorithm), a fresh copy is given the finished
    trials through ``recover`` instead. Returns the driver and the interrupted
    trials (to run again).
    """
    history = recorder.history            # stored trials, in id order
    events = sorted([(h.ask_seq, 0, h) for h in history] +
                    [(h.tell_seq, 1, h) for h in history if h.tell_seq is not None],
                    key=lambda e: (e[0], e[1]))
    archs: dict[int, Arch] = {}
    exact = True
    for _, kind, h in events:
        if kind == 0:
            arch = driver.ask()
            if arch is None or list(arch.genome) != list(h.genome):
                exact = False
                break
            archs[h.id] = arch
        else:
            driver.tell(archs[h.id], h.reward)
    if not exact:
        driver = fresh()
        space = driver.space
        archs = {h.id: space.arch(h.genome) for h in history}
        finished = sorted((h for h in history if h.tell_seq is not None), key=lambda h: h.tell_seq)
        driver.recover([(archs[h.id].genome, h.reward) for h in finished])
        for h in history:
            driver.seen.setdefault(archs[h.id].genome, None)
    running = []
    for h in history:
        trial = h.to_trial(archs[h.id])
        if h.tell_seq is None:
            trial.status = "running"
            running.append(trial)
        else:
            result.trials.append(trial)
    return driver, running


def check_not_all_failed(result: SearchResult) -> None:
    """Raises SearchFailed, quoting the first failure, when no trial finished."""
    if result.trials and not result.done:
        first = result.trials[0]
        raise SearchFailed(f"all {len(result.trials)} trials failed; the first failed with:\n"
                           f"{first.error}", result)


class Feedback:
    """The callback :func:`sample` yields with each value: ``feedback(reward)``."""

    __slots__ = ("_driver", "arch", "_done")

    def __init__(self, driver: Driver, arch: Arch):
        self._driver, self.arch, self._done = driver, arch, False

    def __call__(self, reward: Any) -> None:
        if self._done:
            raise RuntimeError("feedback was already given for this proposal.")
        self._done = True
        if isinstance(reward, dict):
            reward = self._driver.objectives.reward(self._driver.objectives.metrics(reward))
        self._driver.tell(self.arch, None if reward is None else
                          (tuple(reward) if isinstance(reward, (list, tuple)) else float(reward)))

    @property
    def dna(self):
        return self.arch.dna

    def skip(self) -> None:
        """Reports the proposal as failed."""
        self(None)


def sample(space: Any, algorithm: Any, budget: int | None = None, *, seed: int | None = None,
           objective: ObjectiveLike = None, dedup: bool = True) -> Iterator[tuple[Any, Feedback]]:
    """Yields ``(value, feedback)`` pairs for hand-written and nested loops.

    ``value`` is the materialized program (a dict of settings, a module...);
    call ``feedback(reward)`` before the next iteration for algorithms that learn.

    Example::

        for hp, feedback in sn.sample(sn.Space(dict(lr=sn.floatv(1e-3, 1e-1))),
                                      sn.algorithms.Random(), budget=4, seed=0):
            feedback(train(lr=hp["lr"]))
    """
    from symnas.space import Space
    if not isinstance(space, Space):
        space = Space(space)
    objectives = Objectives.parse(objective)
    driver = Driver(space, prepare_algorithm(algorithm, space, seed), objectives, dedup=dedup)
    n = 0
    while budget is None or n < budget:
        arch = driver.ask()
        if arch is None:
            return
        n += 1
        yield arch.value, Feedback(driver, arch)
