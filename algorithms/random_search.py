"""Random search: each proposal uniform over the space.

Example::

    result = sn.search(space, sn.algorithms.Random(), evaluator, budget=50)
"""
from __future__ import annotations

from .base import Algorithm
from .registry import register


@register("random")
class Random(Algorithm):
    """Uniform random proposals (seeded)."""

    def ask(self):
        return self.random_genome()
