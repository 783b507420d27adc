"""The extension points of symnas, one written protocol each.

Every trial of every search takes one path, ``ask -> run -> settle -> tell ->
record``, driven by :mod:`symnas.engine`. Each role on that path is one ABC
here, with its contract (who calls what, in which order, what may be
concurrent). Implementations live where their kind lives: algorithms in
``symnas.algorithms``, executors in :mod:`symnas.executors`, stores in
:mod:`symnas.store`.

=====================  ===================================================
:class:`SearchAlgorithm`         black-box: ``ask() -> genome``, ``tell``, ``recover``
:class:`WeightSharingAlgorithm`  trains a supernet, reports trials to a :class:`Session`
:class:`Evaluator`               ``arch -> number | metrics``, may declare its ``metric``
:class:`Executor`                where trials run: slots, submit, wait, shutdown
:class:`Store`                   durable record of experiments and trials
:class:`Pruner`                  stops a trial whose intermediate values say it will not pay
=====================  ===================================================

Example::

    >>> import itertools
    >>> import symnas as sn
    >>> from symnas.genome import GenomeSpec
    >>> class Grid(SearchAlgorithm):
    ...     def setup(self, dna_spec):
    ...         sizes = GenomeSpec.of(dna_spec).sizes
    ...         self.order = itertools.product(*[range(n) for n in sizes])
    ...     def ask(self):
    ...         return next(self.order)
    ...     def tell(self, genome, reward):
    ...         pass
    >>> space = sn.Space(dict(a=sn.oneof([1, 2]), b=sn.oneof([3, 4])))
    >>> result = sn.search(space, Grid(), lambda arch: 1.0, budget=3, progress=False)
    >>> [t.genome for t in result.trials]
    [(0, 0), (0, 1), (1, 0)]
"""
from __future__ import annotations

import abc
from typing import TYPE_CHECKING, Any, ClassVar, Iterable, Mapping, Sequence

if TYPE_CHECKING:  # pragma: no cover - annotations only
    from symnas.arch import Arch
    from symnas.objective import Objectives
    from symnas.result import SearchResult
    from symnas.trial import Outcome, Trial

Genome = tuple
Reward = float | tuple[float, ...] | None
Metrics = Mapping[str, Any]

__all__ = ["Genome", "Reward", "SearchAlgorithm", "WeightSharingAlgorithm", "Session",
           "Evaluator", "Executor", "Store", "Pruner", "declared_metric"]


class SearchAlgorithm(abc.ABC):
    """A black-box search algorithm over genomes (:mod:`symnas.genome`).

    Contract, in call order:

    1. ``setup(dna_spec)`` once, before anything else; the algorithm compiles
       ``symnas.genome.GenomeSpec.of(dna_spec)`` if it needs the layout.
    2. ``recover(history)`` at most once, right after ``setup`` and before
       the first ``ask``, when a search resumes: ``history`` is the finished
       trials in the order they were told, ``(genome, reward)`` pairs.
    3. Any interleaving of ``ask()`` and ``tell(genome, reward)``. With an
       executor of N slots up to N proposals are outstanding at once, and
       their tells arrive in completion order (or trial order in the exact
       mode); a genome may be proposed again (the search answers a repeat
       from its record, without evaluating it, by a ``tell`` right away).

    ``reward`` is a float (larger is better), a tuple of floats for several
    objectives (each larger-is-better), or ``None`` for a failed or
    infeasible trial, which an algorithm treats as the worst outcome.
    Calls come from one thread; an algorithm needs no locking.

    Any PyGlove ``DNAGenerator`` is adapted to this protocol by
    :class:`symnas.driver.PyGloveAdapter`, so PyGlove's own generators plug in.

    Multi-fidelity (``sn.search(..., fidelity=[12, 200])``). Right after
    ``setup`` the search calls ``setup_fidelity(levels)`` (the increasing
    fidelity levels, e.g. epochs). An algorithm that chooses fidelities
    (``multi_fidelity = True``: Hyperband, ASHA, DEHB) answers
    ``fidelity_for(genome)`` for the proposal it just made, and has at most
    one proposal of a genome outstanding at a time, so that a ``tell`` of
    that genome is the result at that fidelity; ``recover`` then gets
    ``(genome, reward, fidelity)`` triples. Any other algorithm's trials run
    at the highest level; a pruner may stop them early, and the algorithm is
    then told the reward of the value the trial was stopped with (below what
    it would have reached, for a metric that improves with training), so it
    ranks below the trials that ran to the end.
    """

    multi_fidelity: bool = False

    @abc.abstractmethod
    def setup(self, dna_spec: Any) -> None:
        """Prepares the algorithm for a space's DNASpec."""

    @abc.abstractmethod
    def ask(self) -> Genome:
        """The next genome to evaluate."""

    @abc.abstractmethod
    def tell(self, genome: Genome, reward: Reward) -> None:
        """The outcome of a genome from :meth:`ask` (``None``: failed)."""

    def recover(self, history: Iterable[tuple[Genome, Reward]]) -> None:
        """Rebuilds state from finished trials of a resumed search. Default: ``tell`` each."""
        for genome, reward in history:
            self.tell(tuple(genome), reward)

    def dna_for(self, genome: Genome) -> Any:
        """The PyGlove DNA this algorithm already built for ``genome``, if any (saves a rebuild)."""
        return None

    def setup_fidelity(self, levels: Sequence[float]) -> None:  # noqa: B027 - optional hook
        """Receives the search's fidelity levels (increasing). Default: nothing to do."""

    def fidelity_for(self, genome: Genome) -> float | None:
        """The fidelity the proposal just made of ``genome`` is to run at (None: the highest)."""
        return None


class Session(abc.ABC):
    """What a weight-sharing algorithm reports to: the engine's side of one search.

    Every architecture the algorithm scores is reported with
    :meth:`report`, which takes it through the same path as a black-box
    trial (recorded in the store, shown by the progress bar, passed to the
    callbacks). ``seed`` and ``objectives`` are the search's, ``name`` its
    experiment's. ``checkpoint_path`` is where the algorithm may keep a
    checkpoint of its training so that a killed search resumes from it:
    ``<store file>.<experiment name>.ckpt`` for a search that records to a
    file, None (keep none) for one in memory; the default is None.
    """

    seed: int
    objectives: Objectives
    name: str | None
    checkpoint_path: str | None = None

    @abc.abstractmethod
    def report(self, genome: Sequence, metrics: Metrics) -> Trial:
        """Records one scored architecture as a finished trial; returns it."""


class WeightSharingAlgorithm(abc.ABC):
    """A one-shot algorithm: builds a supernet from the Space, trains it, selects.

    ``run(space, evaluator, session)`` is called once per search, in the
    searching process (executors do not apply). It reports each architecture
    it scores through ``session.report`` (the selected one first), and the
    engine turns the reports into the :class:`~symnas.result.SearchResult`
    that a black-box search returns. ``budget`` is not used: the algorithm's
    own settings (epochs) set the cost.
    """

    weight_sharing = True

    @abc.abstractmethod
    def run(self, space: Any, evaluator: Any, session: Session) -> None:
        """Trains and selects, reporting trials to ``session``."""


class Evaluator(abc.ABC):
    """``evaluator(arch) -> number | {metric: value}``: what a search optimizes.

    Any callable is an evaluator (this ABC documents the protocol; it need
    not be subclassed). The first parameter gets an :class:`~symnas.arch.Arch`,
    or the built ``nn.Module`` when it is named ``model`` or annotated
    ``nn.Module``; a ``seed=`` parameter gets the trial's seed. An evaluator
    may declare the metric it produces as ``metric`` (a Task's
    ``valid_acc``, the NAS-Bench-201 table's column); that metric is then
    the search's default objective.

    Multi-fidelity: an ``epochs=`` (or ``fidelity=``) parameter gets the
    trial's fidelity, a ``report=`` parameter a callback
    (:class:`symnas.trial.Reporter`) to call as ``report(value, step)`` with
    intermediate values (it raises :class:`symnas.trial.Pruned` when the
    trial is to stop). An evaluator that declares ``resumable = True`` (a
    Task) continues an architecture's training when a later trial asks it for
    more epochs, so such a trial costs only the epochs it adds (it returns
    ``resumed_from``, the epoch it started at, and reports every epoch, so a
    trial that had to start earlier is charged what it trained); one with a
    ``check_fidelity(levels)`` method is asked, before the search starts,
    whether it can evaluate at those levels (it raises with the fix if not),
    and one with ``check_space(space)`` whether it can score that Space's
    architectures (a trained supernet's evaluator: only its own Space).

    Evaluators run in the searching process (inline) or in worker processes
    (``process:N``, Ray), one trial at a time per process; they must not rely
    on state shared between trials other than caches.
    """

    metric: str | None = None

    @abc.abstractmethod
    def __call__(self, arch: Arch, seed: int | None = None) -> Any:
        """Scores one architecture."""


class Pruner(abc.ABC):
    """An early-stopping rule for the trials of a black-box search (``pruner="median"``).

    Contract: ``setup(levels)`` once with the search's fidelity levels; then,
    in the searching process and in the order results are told,
    ``observe(curve, final)`` with each ended trial's curve (``[[step,
    value]]``, values signed so that larger is better; ``final``: it ran to
    the end); ``reference()`` gives the JSON-able summary that travels with
    each trial as it starts. In whichever process runs the trial,
    ``should_stop(curve, reference)`` is asked after each report and returns
    the reason to stop (or None). It must be a function of its arguments and
    the pruner's settings only, so a decision is the same inline, in a
    worker process or on Ray, and again when a resumed search re-runs it.
    ``to_json()`` (name and settings) rebuilds the pruner in a worker.
    """

    name: ClassVar[str] = ""

    def setup(self, levels: Sequence[float]) -> None:
        self.levels = tuple(levels)

    @abc.abstractmethod
    def observe(self, curve: Sequence[Sequence[float]], final: bool) -> None:
        """Takes one ended trial's signed curve into the reference."""

    @abc.abstractmethod
    def reference(self) -> Any:
        """The summary of the trials observed so far (JSON-able)."""

    @abc.abstractmethod
    def should_stop(self, curve: Sequence[Sequence[float]], reference: Any) -> str | None:
        """Why to stop a trial with this signed curve (None: go on)."""

    @abc.abstractmethod
    def to_json(self) -> dict:
        """``{"name": ..., settings...}``: what rebuilds this pruner elsewhere."""


def declared_metric(evaluator: Any) -> str | None:
    """The metric an evaluator declares (``evaluator.metric``), or None.

    >>> class E:
    ...     metric = "acc"
    >>> declared_metric(E()), declared_metric(len)
    ('acc', None)
    """
    metric = getattr(evaluator, "metric", None)
    return metric if isinstance(metric, str) and metric else None


class Executor(abc.ABC):
    """Where trials run. One executor serves one search at a time.

    Contract: ``start(context)`` once before the first ``submit``; at most
    ``slots`` trials are submitted and not yet returned by ``wait``;
    ``wait()`` blocks until at least one submitted trial ends and returns
    ``[(trial_id, Outcome)]`` in the order they ended (empty only when none is
    in flight); ``shutdown()`` ends the search's use of the executor (trials
    still running are stopped). An evaluator that raises gives an
    ``Outcome`` with ``error``; a worker that dies gives ``crashed=True``,
    and the engine retries such a trial up to ``max_retries`` times. All
    calls come from the searching thread.
    """

    slots: int = 1

    @abc.abstractmethod
    def start(self, context: Any) -> None:
        """Receives the search's :class:`~symnas.executors.TrialContext` (space, evaluator)."""

    @abc.abstractmethod
    def submit(self, trial: Trial, parent: Any = None) -> None:
        """Starts a trial; ``parent`` is the reference nested searches record under."""

    @abc.abstractmethod
    def wait(self) -> list[tuple[int, Outcome]]:
        """Blocks until at least one trial ends; returns their outcomes."""

    def shutdown(self) -> None:  # noqa: B027 - optional hook; the default has nothing to stop
        """Ends this search's use (stops trials still in flight)."""


class Store(abc.ABC):
    """A durable record of experiments and their trials.

    Writes come from one searching process per experiment, in the order of
    the trial path: ``create_experiment`` (or ``find_experiment`` to
    resume), then per trial ``start_trial`` before it runs and
    ``finish_trial`` after the algorithm was told, and ``close_experiment``
    at the end. Each write is durable when it returns (a killed process
    loses nothing written). Reads may come from any process at any time.
    :class:`symnas.store.SQLiteStore` keeps a file; :class:`symnas.store.MemoryStore`
    keeps this process's searches (the default when no ``storage=`` is given).
    """

    path: str | None = None

    # -- writing (the engine's Recorder calls these)
    @abc.abstractmethod
    def find_experiment(self, name: str, parent: tuple[int, int] | None) -> dict | None:
        """``{"id", "fingerprint", ...}`` of an existing experiment, or None."""

    @abc.abstractmethod
    def create_experiment(self, record: dict) -> int:
        """Adds an experiment (name, parent, space, algorithm, seed, objectives, budget...)."""

    @abc.abstractmethod
    def update_experiment(self, exp_id: int, **fields: Any) -> None:
        """Changes an experiment's fields (budget, finished)."""

    @abc.abstractmethod
    def start_trial(self, exp_id: int, trial: Trial) -> None:
        """Records a trial as running."""

    @abc.abstractmethod
    def finish_trial(self, exp_id: int, trial: Trial, program: Any = None) -> None:
        """Records a trial's outcome."""

    @abc.abstractmethod
    def retry_trial(self, exp_id: int, trial: Trial, error: str | None) -> None:
        """Records another attempt of a trial whose worker died."""

    @abc.abstractmethod
    def give_up(self, exp_id: int, trial_id: int, reason: str) -> None:
        """Fails a running trial that is not to run again (e.g. it outlived its process)."""

    def keep_programs(self, exp_id: int, trials: Sequence[Trial]) -> None:  # noqa: B027
        """Keeps the DNA and program of these (best) trials for exports. Default: nothing."""

    @abc.abstractmethod
    def close_experiment(self, exp_id: int, status: str = "finished") -> None:
        """Ends this process's run of an experiment (``finished`` or ``interrupted``)."""

    # -- reading
    @abc.abstractmethod
    def experiments(self) -> list[Any]:
        """Every experiment, in creation order, with trial counts."""

    @abc.abstractmethod
    def trials(self, exp: Any = None) -> list[Any]:
        """An experiment's trial rows (:class:`symnas.store.StoredTrial`), by id."""

    @abc.abstractmethod
    def result(self, exp: Any = None, *, space: Any = None) -> SearchResult:
        """An experiment as a SearchResult."""
