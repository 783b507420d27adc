"""Random search: each proposal uniform over the space.

Example:

>>> import symnas as sn
>>> space = sn.Space({f"x{i}": sn.oneof([0, 1, 2, 3, 4]) for i in range(4)})   # 625 architectures
>>> evaluator = lambda arch: float(sum(arch.decisions.values()))              # best: 16.0
>>> result = sn.search(space, sn.algorithms.Random(), evaluator, budget=30, seed=0)
>>> len(result.trials), result.best.reward
(30, 14.0)
"""
from __future__ import annotations

from .base import Algorithm
from .registry import register


@register("random")
class Random(Algorithm):
    """Uniform random proposals (seeded)."""

    def _ask(self):
        return self.random_genome()
