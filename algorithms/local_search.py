"""Local search (hill climbing) on genomes, with restarts: White et al. 2021's NAS baseline.

The first ``init_size`` proposals are uniformly random; the best of them is
the first *centre*. Each proposal is then an untried *neighbour* of the
centre (:meth:`LocalSearch.neighbours`: one active gene changed), in random
order; a result better than the centre's makes it the centre (first
improvement). When every neighbour of the centre has been tried the centre
is a local optimum, and the search restarts from a new random genome. It
never proposes a genome twice, so it never stalls on repeats.

Neighbours of a genome, one gene at a time: every other candidate of a
choice, or on an ordered one (numbers, ``sn.intv``) only those up to
``ordered_radius`` positions away when it is set; ``float_neighbours``
Gaussian steps of 0.1 of the range (on the gene's scale) for a float.
Neighbourhoods larger than ``max_neighbours`` are sampled. (On NATS-Bench's
width space, 8 ordered values per layer, every value beat a radius of 1 or 2:
the jump straight to the widest layer is often the best step;
:class:`~symnas.algorithms.model_based.LocalBO` uses the order in its model.)

The search is asynchronous: proposals still out count as tried, and results
may come back in any order (any result better than the centre's moves the
centre). Failed trials (``None``) are never better. A multi-objective reward
is ranked by its first entry. Resumed from history (``recover``), the climb
continues from the best result so far.

Example:

>>> import symnas as sn
>>> space = sn.Space({f"x{i}": sn.oneof(["a", "b", "c", "d", "e"]) for i in range(4)})   # 625 archs
>>> evaluator = lambda arch: float(-sum(abs(g - 3) for g in arch.genome))              # best: 0.0
>>> result = sn.search(space, "local_search", evaluator, budget=60, seed=0)
>>> result.best.reward, result.best.genome
(0.0, (3, 3, 3, 3))
"""
from __future__ import annotations

import math
from typing import Any

from .base import FLOAT_SIGMA, Algorithm, scalar
from .registry import register

__all__ = ["LocalSearch", "Climb"]


@register("local_search", "ls", "hill_climb")
class LocalSearch(Algorithm):
    """First-improvement local search over one-gene neighbours, restarting at local optima."""

    init_size: int = 20         # random proposals before the first climb (tuned on NB201 CIFAR-10)
    ordered_radius: int = 0     # an ordered gene's neighbours: this many positions either way (0: all)
    float_neighbours: int = 4   # Gaussian steps tried per float gene
    max_neighbours: int = 500   # larger neighbourhoods are sampled down to this

    def _start(self) -> None:
        if self.init_size < 1:
            raise ValueError(f"init_size must be at least 1, got {self.init_size}.")
        if self.ordered_radius < 0 or self.float_neighbours < 0 or self.max_neighbours < 1:
            raise ValueError("ordered_radius and float_neighbours must be >= 0 and "
                             "max_neighbours >= 1.")
        self.climb = Climb(self, self._model())

    def _model(self) -> Any:
        """The model that ranks neighbours (None: random order). Subclasses return one."""
        return None

    @property
    def restarts(self) -> int:
        """Local optima left so far."""
        return self.climb.restarts

    def neighbours(self, genome: tuple) -> list[tuple]:
        """The canonical genomes one active gene away from ``genome`` (see the module docstring)."""
        return self.climb.neighbours(genome)

    def _ask(self):
        return self.climb.ask()

    def _tell(self, genome, reward):
        self.climb.tell(genome, None if reward is None else scalar(reward))


class Climb:
    """The state and steps of one local search (a plain object: fast attribute access)."""

    def __init__(self, algo: LocalSearch, model: Any = None):
        self.gs = algo.genome_spec
        self.rng = algo._rng
        self.radius = algo.ordered_radius
        self.float_neighbours = algo.float_neighbours
        self.max_neighbours = algo.max_neighbours
        self.model = model
        self.known: set = set()                 # proposed or told
        self.value: dict[Any, float] = {}       # told: genome -> reward (-inf: failed)
        self.init_left = algo.init_size         # initial random proposals still to make
        self.centre: Any = None
        self.centre_value = -math.inf
        self.queue: list = []                   # the centre's untried neighbours, next last
        self.best: tuple[Any, float] | None = None
        self.restarts = 0

    def neighbours(self, genome: tuple) -> list[tuple]:
        gs, rng, radius = self.gs, self.rng, self.radius
        live = gs.active(genome) if gs.conditional else None
        out: list[tuple] = []
        seen = {genome}
        for i, g in enumerate(gs.genes):
            if live is not None and not live[i]:
                continue
            if g.size is None:
                u = g.unit(genome[i])
                values: list = [g.from_unit(u + rng.gauss(0.0, FLOAT_SIGMA))
                                for _ in range(self.float_neighbours)]
            elif g.size < 2:
                continue
            elif g.ordered and radius and g.size > 2 * radius + 1:
                r = g.rank[int(genome[i])]
                values = [g.order[r + d] for d in range(-radius, radius + 1)
                          if d and 0 <= r + d < g.size]
            else:
                values = [v for v in range(g.size) if v != genome[i]]
            for v in values:
                n = list(genome)
                n[i] = v
                c = gs.canonical(n)
                if c not in seen:
                    seen.add(c)
                    out.append(c)
        if len(out) > self.max_neighbours:
            out = rng.sample(out, self.max_neighbours)
        return out

    def ask(self) -> tuple:
        if self.init_left > 0:
            self.init_left -= 1
            return self._remember(self._fresh())
        if self.centre is None:
            if self.best is None:               # every initial result is still out
                return self._remember(self._fresh())
            self.move(*self.best)
        genome = self._next()
        if genome is None:                      # a local optimum: restart
            self.restarts += 1
            genome = self._fresh()
            self.move(genome, -math.inf)
        return self._remember(genome)

    def tell(self, genome: tuple, reward: float | None) -> None:
        if genome in self.value:                # a repeat answered from the record
            return
        if genome not in self.known and self.init_left > 0:
            self.init_left -= 1                 # replayed history counts towards the start
        value = -math.inf if reward is None else reward
        self.known.add(genome)
        self.value[genome] = value
        if reward is not None and self.model is not None:
            self.model.observe(genome, value)
        if self.best is None or value > self.best[1]:
            self.best = (genome, value)
        if genome == self.centre:
            self.centre_value = value
        elif self.centre is not None and value > self.centre_value:
            self.move(genome, value)

    def move(self, genome: tuple, value: float) -> None:
        """Makes ``genome`` the centre; its untried neighbours are the next proposals."""
        self.centre, self.centre_value = genome, value
        queue = [n for n in self.neighbours(genome) if n not in self.known]
        self.rng.shuffle(queue)
        self.queue = queue

    def _next(self) -> tuple | None:
        """The next untried neighbour of the centre (None: all tried): the model's pick, else the last."""
        queue = [g for g in self.queue if g not in self.known]
        self.queue = queue
        if not queue:
            return None
        if self.model is None or len(queue) == 1:
            return queue.pop()
        return queue.pop(self.model.pick(queue, self.centre))

    def _fresh(self) -> tuple:
        """A random genome not proposed before (when one is found in 100 draws)."""
        for _ in range(100):
            genome = self.gs.random(self.rng)
            if genome not in self.known:
                return genome
        return genome

    def _remember(self, genome: tuple) -> tuple:
        self.known.add(genome)
        return genome
