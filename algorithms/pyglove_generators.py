"""PyGlove's own generators under registry names, as PyGlove ships them (hill climbing restarts).

``pg_hill_climb`` is PyGlove's ``pg.evolution.hill_climb`` inside
:class:`PyGloveHillClimb`, which restarts it when it stalls: PyGlove's
climber mutates its best individual and nothing else, so once every mutant
of the best has been evaluated it only proposes repeats (which ``sn.search``
answers from its record) and the search stopped after ~60-80 cells on
NAS-Bench-201. After ``patience`` repeats in a row the climber is replaced by
a fresh one (new seed, new random start). For symnas's own first-improvement
local search with restarts see ``"local_search"``.

Example:

>>> import symnas as sn
>>> algo = sn.algorithms.get("pg_evolution", population_size=50)
>>> isinstance(algo, pg.DNAGenerator), sn.algorithms.lookup("pg_nsga2") is pg.evolution.nsga2
(True, True)
>>> space = sn.Space({f"x{i}": sn.oneof([0, 1, 2, 3, 4]) for i in range(4)})
>>> result = sn.search(space, "pg_random", lambda arch: float(arch.decisions["x0"]), budget=10, seed=0)
>>> len(result.trials)
10
>>> small = sn.Space({f"x{i}": sn.oneof(["a", "b", "c"]) for i in range(3)})        # 27 cells
>>> result = sn.search(small, "pg_hill_climb", lambda arch: float(sum(arch.genome)), budget=27, seed=0)
>>> len(result.trials), result.algorithm.restarts > 0      # it restarted instead of stalling
(27, True)
"""
from __future__ import annotations

import math
from typing import Any

import pyglove as pg

from .base import Algorithm
from .registry import register

register("pg_random")(pg.geno.Random)
register("pg_evolution", "pg_regularized_evolution")(pg.evolution.regularized_evolution)
register("pg_nsga2")(pg.evolution.nsga2)


@register("pg_hill_climb")
class PyGloveHillClimb(Algorithm):
    """PyGlove's hill climbing, restarted after ``patience`` repeat proposals in a row."""

    batch_size: int = 1    # mutants of the current best per step (PyGlove's batch_size)
    patience: int = 20     # repeats in a row that count as stalled

    def _start(self) -> None:
        if self.patience < 1:
            raise ValueError(f"patience must be at least 1, got {self.patience}.")
        self.restarts = 0
        self._known: set = set()
        self._repeats = 0
        self._dna: dict[Any, list[tuple[Any, pg.DNA]]] = {}  # genome -> (climber, DNA) asked
        self._climber = self._new_climber()

    def _new_climber(self) -> pg.DNAGenerator:
        seed = None if self.seed is None else self.seed + 7919 * self.restarts
        climber = pg.evolution.hill_climb(pg.evolution.mutators.Uniform(seed=seed),
                                          batch_size=self.batch_size, seed=seed)
        climber.setup(self.dna_spec)
        return climber

    def _ask(self):
        if self._repeats >= self.patience:
            self.restarts += 1
            self._repeats = 0
            self._climber = self._new_climber()
        dna = self._climber.propose()
        genome = self.genome_spec.from_dna(dna)
        self._repeats = self._repeats + 1 if genome in self._known else 0
        self._known.add(genome)
        self._dna.setdefault(genome, []).append((self._climber, dna))
        return genome

    def dna_for(self, genome):
        asked = self._dna.get(genome)
        return asked[-1][1] if asked else None

    def _tell(self, genome, reward):
        self._known.add(genome)
        asked = self._dna.get(genome)
        if not asked:            # not proposed by this instance (replayed history): let it learn
            climber, dna = self._climber, self.genome_spec.to_dna(genome)
            climber.recover([(dna, -math.inf if reward is None else reward)])
            return
        climber, dna = asked.pop(0)
        if not asked:
            del self._dna[genome]
        if climber is self._climber:       # an old climber's late results are dropped
            climber.feedback(dna, -math.inf if reward is None else reward)
