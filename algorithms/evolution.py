"""Regularized (aging) evolution, Real et al. 2019, on genomes; NSGA-II selection for several objectives.

Tournament selection from the ``population_size`` most recent trials, one
mutation per child, the oldest member dies. Until the population is full,
proposals are uniformly random. Failed trials never become parents.
Mutation prefers near neighbours on ordered choices (``Algorithm.mutate``).

With several objectives (tuple rewards) the population is elitist instead,
as in NSGA-II (Deb et al. 2002): the ``pareto_size`` best trials by
non-dominated front, then crowding distance, are kept, and each parent is
the winner of a binary tournament under that order. A genome enters the
population once (repeats answered from the record are not counted twice).

Example:

>>> import symnas as sn
>>> space = sn.Space({f"x{i}": sn.oneof(["a", "b", "c", "d", "e"]) for i in range(4)})   # 625 archs
>>> evaluator = lambda arch: float(sum(arch.genome))                                    # best: 16.0
>>> algo = sn.algorithms.RegularizedEvolution(population_size=20, tournament_size=5)
>>> result = sn.search(space, algo, evaluator, budget=100, seed=0)
>>> result.best.reward, result.best.genome
(16.0, (4, 4, 4, 4))
>>> two = lambda arch: {"a": float(arch.genome[0]), "b": float(-sum(arch.genome))}
>>> result = sn.search(space, "evolution", two, budget=80, seed=0, objective=["a", "b"])
>>> sorted((t.metrics["a"], t.metrics["b"]) for t in result.pareto_front())   # the whole trade-off
[(0.0, 0.0), (1.0, -1.0), (2.0, -2.0), (3.0, -3.0), (4.0, -4.0)]
"""
from __future__ import annotations

import collections

from . import pareto
from .base import Algorithm, scalar
from .registry import register


@register("evolution", "regularized_evolution", "re")
class RegularizedEvolution(Algorithm):
    """Aging evolution with tournament selection; NSGA-II selection for tuple rewards."""

    population_size: int = 10   # tuned on NAS-Bench-201 (benchmarks/nb201_search.py)
    tournament_size: int = 5
    mutations: int = 1
    pareto_size: int = 20       # several objectives: the elitist population's size

    def _start(self) -> None:
        if self.tournament_size > self.population_size:
            raise ValueError("tournament_size must not exceed population_size.")
        if self.pareto_size < 2:
            raise ValueError(f"pareto_size must be at least 2, got {self.pareto_size}.")
        self._init_state(self.pareto_size)

    def _init_state(self, elite: int) -> None:
        self._population: collections.deque = collections.deque(maxlen=self.population_size)
        self._pending = 0
        self._front: list[tuple[tuple, tuple]] = []   # several objectives: (genome, reward)
        self._in_front: set = set()
        self._keys: list[tuple[int, float]] = []      # NSGA-II order of _front (smaller: better)
        self._elite = elite                           # the elitist population's size

    def _ask(self):
        size = len(self._front) if self._front else len(self._population)
        start = min(self.population_size, self._elite) if self._front else self.population_size
        if size + self._pending < start or not size:      # the random start
            self._pending += 1
            return self.random_genome()
        if self._front:
            return self.mutate(self._front[self._tournament2()][0], self.mutations)
        sample = self._rng.sample(self._population, min(self.tournament_size, len(self._population)))
        parent = max(sample, key=lambda m: m[1])[0]
        return self.mutate(parent, self.mutations)

    def _tournament2(self) -> int:
        """The better of two random members of the elitist population (NSGA-II order)."""
        a, b = self._rng.randrange(len(self._front)), self._rng.randrange(len(self._front))
        return a if self._keys[a] <= self._keys[b] else b

    def _tell(self, genome, reward):
        if self._pending:
            self._pending -= 1
        if reward is None:
            return
        if isinstance(reward, tuple) and len(reward) > 1:
            self._tell_many(genome, tuple(float(r) for r in reward))
            return
        self._population.append((genome, scalar(reward)))

    def _tell_many(self, genome: tuple, reward: tuple) -> None:
        if genome in self._in_front:
            return
        self._front.append((genome, reward))
        self._in_front.add(genome)
        if len(self._front) > self._elite:
            keep = pareto.select([r for _, r in self._front], self._elite)
            self._front = [self._front[i] for i in keep]
            self._in_front = {g for g, _ in self._front}
        self._keys = pareto.sort_key([r for _, r in self._front])
