"""NSGA-II (Deb et al. 2002) on genomes: elitist selection by non-dominated front and crowding.

The ``population_size`` best trials so far, ordered by non-dominated front
and then by crowding distance, form the population; each child mutates the
winner of a binary tournament under that order (on ordered choices mutation
prefers near neighbours, ``Algorithm.mutate``). Until the population is
full, proposals are uniformly random. With one objective the order is the
reward's, so the algorithm is an elitist (mu + 1) evolution instead of
degenerating to random search; a failed or infeasible trial never enters
the population. It is :class:`RegularizedEvolution`'s several-objective
mode for any number of objectives, and costs well under a millisecond per
trial (PyGlove's own NSGA-II is ``"pg_nsga2"``).

Example:

>>> import symnas as sn
>>> space = sn.Space({f"x{i}": sn.oneof(["a", "b", "c", "d", "e"]) for i in range(4)})   # 625 archs
>>> two = lambda arch: {"a": float(arch.genome[0]), "b": float(-sum(arch.genome))}
>>> result = sn.search(space, "nsga2", two, budget=80, seed=0, objective=["a", "b"])
>>> sorted((t.metrics["a"], t.metrics["b"]) for t in result.pareto_front())   # the whole trade-off
[(0.0, 0.0), (1.0, -1.0), (2.0, -2.0), (3.0, -3.0), (4.0, -4.0)]
>>> one = sn.search(space, "nsga2", lambda arch: float(sum(arch.genome)), budget=100, seed=0)
>>> one.best.reward                                          # one objective: still a search
16.0
"""
from __future__ import annotations

from .evolution import RegularizedEvolution
from .registry import register


@register("nsga2")
class NSGA2(RegularizedEvolution):
    """Elitist non-dominated sorting with crowding; one objective or several."""

    population_size: int = 20   # the elitist population (and the random start)

    def _start(self) -> None:
        if self.population_size < 2:
            raise ValueError(f"population_size must be at least 2, got {self.population_size}.")
        base = RegularizedEvolution()                  # its defaults
        unused = [k for k in ("tournament_size", "pareto_size") if getattr(self, k) != getattr(base, k)]
        if unused:
            raise ValueError(f"NSGA2 does not use {', '.join(unused)} (binary tournaments over an "
                             "elitist population of population_size); set population_size, or use "
                             "'evolution' for aging evolution with those settings.")
        self._init_state(self.population_size)     # tournament_size and pareto_size are not used

    def _tell(self, genome, reward):
        if self._pending:
            self._pending -= 1
        if reward is None:
            return
        rewards = reward if isinstance(reward, tuple) else (reward,)
        self._tell_many(genome, tuple(float(r) for r in rewards))
