"""ASHA: asynchronous successive halving (Li et al. 2020), promotions decided as results arrive.

Rungs are the fidelity levels. Whenever a slot asks for work, ASHA looks at
the rungs from the second highest down: a configuration in the top
``floor(n / eta)`` of the ``n`` results at its rung that was not promoted yet
goes on to the next level; if there is none, a new configuration starts at
the lowest level. No rung ever waits for another result, so every slot of
``process:N`` or Ray stays busy; inline, each decision sees every result
before it.

New configurations are random, or come from ``sampler`` (any black-box
algorithm, e.g. ``ASHA(sampler="evolution")``, told each configuration's
lowest-level result).

Example (``eta = 2``: after two results at 1 epoch, the better one goes to
4, which spends the budget of one full evaluation):

>>> import symnas as sn
>>> space = sn.Space(dict(a=sn.oneof(list(range(10)))))
>>> evaluate = lambda arch, epochs: arch.genome[0] * epochs
>>> r = sn.search(space, sn.algorithms.ASHA(eta=2), evaluate, budget=1, fidelity=[1, 4], seed=0)
>>> [(t.genome[0], t.fidelity) for t in r.trials]
[(6, 1), (0, 1), (6, 4)]
"""
from __future__ import annotations

import math
from typing import Any

from .multi_fidelity import MULTI_FIDELITY, MultiFidelity
from .registry import register


@register("asha", "async_successive_halving", kind=MULTI_FIDELITY)
class ASHA(MultiFidelity):
    """Asynchronous successive halving over the search's fidelity levels."""

    def _setup_levels(self) -> None:
        self.promoted: list[set] = [set() for _ in self.levels or ()]

    def _next(self) -> tuple[tuple, int, Any]:
        for k in range(len(self.results) - 2, -1, -1):
            genome = self.promotable(k)
            if genome is not None:
                self.promoted[k].add(genome)
                return genome, k + 1, None
        return self.new_genome(0), 0, None

    def promotable(self, k: int) -> tuple | None:
        """The best configuration of rung ``k`` that may go on now (None: none may)."""
        rung = self.results[k]
        n = math.floor(round(len(rung) / self.ratio, 9))
        for genome in rung.top(n):
            if rung.rewards[genome] is None:
                break
            if genome not in self.promoted[k] and not self.busy(genome):
                return genome
        return None

    def _recovered(self, genome: tuple, level: int, reward: Any) -> None:
        if level > 0:
            self.promoted[level - 1].add(genome)
