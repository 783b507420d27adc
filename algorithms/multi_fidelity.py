"""The base of the algorithms that choose each proposal's fidelity: Hyperband, ASHA, DEHB.

A multi-fidelity algorithm answers ``ask()`` with a genome and
``fidelity_for(genome)`` with the level (an index into the search's
``fidelity=[...]`` levels, lowest first) it is to be evaluated at. It keeps at
most one proposal of a genome outstanding, so the ``tell`` of a genome is its
result at that level. Results are kept per level (:attr:`results`), in the
order they arrived.

``eta`` is the promotion ratio: the top ``1/eta`` of a rung's results go on
to the next level. By default it is the levels' own ratio
(:func:`level_ratio`: 3 for ``[1, 3, 9]``, 16.7 for ``[12, 200]``), so each
rung gets about the same share of the budget.

New configurations come from ``sampler``: uniformly random by default, or
any black-box algorithm (a registered name or an instance, e.g.
``sampler="evolution"``), which is told each new configuration's first
result (at the level it was first evaluated at) and learns from those.

Resume: a seeded search replays its asks and tells exactly; ``recover``
(unseeded) rebuilds the results per level from ``(genome, reward, fidelity)``
triples, which is all that ASHA's decisions depend on.

Example:

>>> import symnas as sn
>>> algo = sn.algorithms.get("asha", eta=2, seed=0)
>>> algo.setup(sn.Space(dict(a=sn.oneof(list(range(8))))).dna_spec)
>>> algo.setup_fidelity([1, 4])
>>> g = algo.ask()
>>> algo.fidelity_for(g)
1
"""
from __future__ import annotations

import bisect
import math
from typing import Any, Iterable, Sequence

from symnas.registry import ALGORITHMS

from .base import Algorithm, Reward, scalar

#: The registry kind of the algorithms that choose fidelities (they need ``fidelity=``).
MULTI_FIDELITY = "multi-fidelity"
if ALGORITHMS.kinds is not None and MULTI_FIDELITY not in ALGORITHMS.kinds:
    ALGORITHMS.kinds = (*ALGORITHMS.kinds, MULTI_FIDELITY)   # until symnas.registry names it


def level_ratio(levels: Sequence[float]) -> float:
    """The ratio of consecutive fidelity levels (their geometric mean): the default ``eta``.

    With it each rung's evaluations cost about as much in all as the rung
    below's, as in Hyperband's geometric budgets.

    >>> level_ratio([1, 3, 9]), round(level_ratio([12, 200]), 3)
    (3.0, 16.667)
    """
    return round(float((levels[-1] / levels[0]) ** (1 / (len(levels) - 1))), 9)


def score(reward: Reward) -> float:
    """A reward as a number to rank by (failed: worst)."""
    return -math.inf if reward is None else scalar(reward)


class Rung:
    """The results at one level: by genome, and ranked (best first, earlier first on ties)."""

    __slots__ = ("rewards", "ranked", "_n")

    def __init__(self) -> None:
        self.rewards: dict[tuple, Reward] = {}
        self.ranked: list[tuple[float, int, tuple]] = []   # (-score, arrival, genome)
        self._n = 0

    def add(self, genome: tuple, reward: Reward) -> None:
        if genome in self.rewards:          # a repeat answered from the record: keep the first
            return
        self.rewards[genome] = reward
        bisect.insort(self.ranked, (-score(reward), self._n, genome))
        self._n += 1

    def top(self, n: int) -> list[tuple]:
        """The ``n`` best genomes, best first."""
        return [g for _, _, g in self.ranked[:n]]

    def __len__(self) -> int:
        return len(self.rewards)

    def __contains__(self, genome: object) -> bool:
        return genome in self.rewards


class MultiFidelity(Algorithm):
    """Keeps the books of a multi-fidelity algorithm: levels, outstanding proposals, results."""

    multi_fidelity = True
    eta: float | None = None   # the top 1/eta of a rung goes on (None: the levels' own ratio)
    sampler: Any = None    # proposes new configurations (None: uniformly random)

    def _start(self) -> None:
        if self.eta is not None and not self.eta > 1:
            raise ValueError(f"{type(self).__name__} needs eta > 1 (the top 1/eta of a rung is "
                             f"promoted), got {self.eta}.")
        self.ratio = float(self.eta or 3.0)
        self.levels: tuple | None = None
        self.results: list[Rung] = []
        self._pending: dict[tuple, tuple[int, Any]] = {}    # genome -> (level, job info)
        self._sampled: set = set()      # new configurations from the sampler, not yet told
        self._sampler: Any = None
        if self.sampler is not None:
            from symnas.driver import resolve
            algo = resolve(self.sampler)
            if getattr(algo, "multi_fidelity", False) or not hasattr(algo, "ask"):
                raise TypeError(f"sampler= takes a black-box algorithm (e.g. 'evolution'), got "
                                f"{self.sampler!r}.")
            algo = algo.clone(deep=True) if hasattr(algo, "clone") else algo
            if getattr(algo, "seed", 0) is None and self.seed is not None:
                algo.rebind(seed=self.seed + 1)
            algo.setup(self.dna_spec)
            self._sampler = algo

    def setup_fidelity(self, levels: Sequence[float]) -> None:
        if len(levels) < 2:
            raise ValueError(f"{type(self).__name__} needs at least two fidelity levels, e.g. "
                             f"fidelity=[12, 200]; got {list(levels)}.")
        self.levels = tuple(levels)
        self.results = [Rung() for _ in levels]
        self.ratio = float(self.eta) if self.eta is not None else level_ratio(self.levels)
        self._setup_levels()

    def _setup_levels(self) -> None:
        """Builds the algorithm's schedule once the levels are known."""

    # ---- the protocol --------------------------------------------------------------
    def fidelity_for(self, genome: tuple) -> float | None:
        got = self._pending.get(tuple(genome))
        return None if got is None or self.levels is None else self.levels[got[0]]

    def _ask(self) -> tuple:
        if self.levels is None:
            raise RuntimeError(f"{type(self).__name__} chooses fidelities: run it with "
                               "sn.search(..., fidelity=[low, ..., high]).")
        genome, level, info = self._next()
        self._pending[genome] = (level, info)
        return genome

    def _next(self) -> tuple[tuple, int, Any]:
        """The next proposal: (genome, level index, info kept until its tell)."""
        raise NotImplementedError(f"{type(self).__name__} must override _next().")

    def _tell(self, genome: tuple, reward: Reward) -> None:
        got = self._pending.pop(genome, None)
        if got is None:
            return
        level, info = got
        self.results[level].add(genome, reward)
        if genome in self._sampled:
            self._sampled.discard(genome)
            self._sampler.tell(genome, reward)
        self._told(genome, level, reward, info)

    def _told(self, genome: tuple, level: int, reward: Reward, info: Any) -> None:
        """A proposal's result arrived (after it was added to ``results[level]``)."""

    def recover(self, history: Iterable[Sequence[Any]]) -> None:
        """Rebuilds the results per level from ``(genome, reward, fidelity)`` triples."""
        index = {float(f): i for i, f in enumerate(self.levels or ())}
        for item in history:
            genome, reward = self.genome_spec.canonical(item[0]), item[1]
            level = index.get(float(item[2])) if len(item) > 2 and item[2] is not None else None
            self._counts[0] += 1
            if level is not None:
                first = all(genome not in rung for rung in self.results)
                self.results[level].add(genome, reward)
                if first and self._sampler is not None:   # its first result, as told live
                    self._sampler.tell(genome, reward)
                self._recovered(genome, level, reward)
            if reward is not None:
                self._counts[1] += 1

    def _recovered(self, genome: tuple, level: int, reward: Reward) -> None:
        """One finished trial of a resumed search (``recover``). Default: nothing more."""

    # ---- helpers ---------------------------------------------------------------------
    def busy(self, genome: tuple) -> bool:
        """Whether a proposal of ``genome`` is outstanding."""
        return genome in self._pending

    def new_genome(self, level: int) -> tuple:
        """A new configuration for ``level``: from the sampler (or random), not outstanding and
        not yet evaluated there when that can be helped."""
        seen = self.results[level]
        for _ in range(100):
            if self._sampler is not None:
                g = self.genome_spec.canonical(self._sampler.ask())
                if g in seen or self.busy(g) or g in self._sampled:
                    self._sampler.tell(g, seen.rewards.get(g))   # a repeat: answered at once
                    continue
                self._sampled.add(g)
                return g
            g = self.random_genome()
            if g not in seen and not self.busy(g):
                return g
        for _ in range(1000):
            g = self.random_genome()
            if not self.busy(g):
                return g
        raise RuntimeError("every architecture of the space is being evaluated already; use "
                           "fewer parallel workers than architectures.")
