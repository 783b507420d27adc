"""Regularized (aging) evolution, Real et al. 2019, on genomes.

Tournament selection from the ``population_size`` most recent trials, one
mutation per child, the oldest member dies. Until the population is full,
proposals are uniformly random. Failed trials never become parents.

Example:

>>> import symnas as sn
>>> space = sn.Space({f"x{i}": sn.oneof([0, 1, 2, 3, 4]) for i in range(4)})   # 625 architectures
>>> evaluator = lambda arch: float(sum(arch.decisions.values()))              # best: 16.0
>>> algo = sn.algorithms.RegularizedEvolution(population_size=20, tournament_size=5)
>>> result = sn.search(space, algo, evaluator, budget=100, seed=0)
>>> result.best.reward, result.best.arch.decisions
(16.0, {'x0': 4, 'x1': 4, 'x2': 4, 'x3': 4})
"""
from __future__ import annotations

import collections

from .base import Algorithm, scalar
from .registry import register


@register("evolution", "regularized_evolution", "re")
class RegularizedEvolution(Algorithm):
    """Aging evolution with tournament selection and single-gene mutation."""

    population_size: int = 10   # tuned on NAS-Bench-201 (benchmarks/nb201_search.py)
    tournament_size: int = 5
    mutations: int = 1

    def _start(self) -> None:
        if self.tournament_size > self.population_size:
            raise ValueError("tournament_size must not exceed population_size.")
        self._population: collections.deque = collections.deque(maxlen=self.population_size)
        self._pending = 0

    def _ask(self):
        if len(self._population) + self._pending < self.population_size or not self._population:
            self._pending += 1
            return self.random_genome()
        sample = self._rng.sample(self._population, min(self.tournament_size, len(self._population)))
        parent = max(sample, key=lambda m: m[1])[0]
        return self.mutate(parent, self.mutations)

    def _tell(self, genome, reward):
        if self._pending:
            self._pending -= 1
        if reward is None:
            return
        r = scalar(reward)
        self._population.append((genome, r))
