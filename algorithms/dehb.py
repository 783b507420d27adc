"""DEHB: Hyperband's brackets with differential evolution at every fidelity (Awad et al. 2021).

DEHB keeps one DE subpopulation per fidelity level, of the size the most
aggressive bracket evaluates there. Vectors, their decoding to genomes and
the DE-NAS settings (``f``, ``cr``) are those of
:class:`~symnas.algorithms.DifferentialEvolution` (composed, not copied).
Brackets are Hyperband's (:mod:`symnas.algorithms.hyperband`):

- while a level's subpopulation is not full (the first brackets), a
  bracket's first rung samples random vectors and its later rungs promote
  the best of the rung below, as in successive halving, and every result
  joins the subpopulation of its level;
- then each proposal is a DE trial vector for the next target of the level's
  subpopulation (round robin): rand/1 mutation from a *parent pool* and
  binomial crossover with the target; the pool is the configurations the
  bracket promotes from the rung below (its best ``n``), or for a bracket's
  first rung the subpopulation of the level below, so good low-fidelity
  configurations guide what is tried at higher fidelity. The trial replaces
  its target when its result is at least as good (both at the same level).
  A pool of fewer than three members is filled from all subpopulations.

``promote="top"`` keeps successive halving's promotions (the best
configurations themselves go up) and evolves only the new configurations of
each bracket's first rung; for benchmarks whose low fidelity ranks
architectures well (NAS-Bench-201's 12 epochs) that spends the expensive
evaluations on the configurations that earned them.

Example:

>>> import symnas as sn
>>> space = sn.Space({f"x{i}": sn.oneof([0, 1, 2, 3, 4]) for i in range(4)})   # 625 architectures
>>> evaluate = lambda arch, epochs: float(sum(arch.decisions.values())) * epochs / 9
>>> r = sn.search(space, "dehb", evaluate, budget=20, fidelity=[1, 3, 9], seed=0)
>>> r.best.fidelity, r.best.reward >= 14
(9, True)
"""
from __future__ import annotations

from typing import Any

from .differential_evolution import DifferentialEvolution
from .hyperband import Bracket, Hyperband, bracket_sizes
from .multi_fidelity import MULTI_FIDELITY, score
from .registry import register


class _Member:
    __slots__ = ("vector", "genome", "reward")

    def __init__(self, vector: list[float], genome: tuple, reward: Any):
        self.vector, self.genome, self.reward = vector, genome, reward


@register("dehb", kind=MULTI_FIDELITY)
class DEHB(Hyperband):
    """Differential evolution on Hyperband's brackets, one subpopulation per fidelity."""

    f: float = 0.5       # DE mutation factor (DE-NAS)
    cr: float = 0.5      # DE crossover probability (DE-NAS)
    promote: str = "de"  # "de": evolve the promoted configurations; "top": promote the best
    redraws: int = 10    # trial vectors drawn while one decodes to a known configuration

    def _setup_levels(self) -> None:
        super()._setup_levels()
        if self.promote not in ("de", "top"):
            raise ValueError(f"DEHB(promote=) is 'de' or 'top', got {self.promote!r}.")
        self._de = DifferentialEvolution(f=self.f, cr=self.cr)
        self._de.setup(self.dna_spec)
        k = len(self.levels or ())
        self.sizes = bracket_sizes(k, self.ratio, k - 1)      # the subpopulations' sizes
        self.pops: list[list[_Member]] = [[] for _ in range(k)]
        self._targets = [0] * k
        self._vectors: dict[tuple, list[float]] = {}        # genome -> the vector it came from
        self._slots: dict[tuple, int] = {}                  # genome -> the target it competes with

    # ---- DE on vectors -----------------------------------------------------------------
    def _vector_of(self, genome: tuple) -> list[float]:
        v = self._vectors.get(genome)
        return list(v) if v is not None else self._de.encode(genome)

    def _full(self, level: int) -> bool:
        return len(self.pops[level]) >= self.sizes[level]

    def _pool(self, vectors: list[list[float]]) -> list[list[float]]:
        """A parent pool of at least three vectors (filled from every subpopulation, then random)."""
        pool = list(vectors)
        others = [m.vector for pop in self.pops for m in pop]
        while len(pool) < 3:
            pool.append(self._rng.choice(others) if others and len(pool) < len(others)
                        else [self._rng.random() for _ in range(len(self.genome_spec))])
        return pool

    def _trial(self, target: list[float], pool: list[list[float]]) -> list[float]:
        """rand/1 mutation from ``pool`` (out-of-range coordinates resampled), binomial crossover."""
        rng = self._rng
        a, b, c = rng.sample(pool, 3)
        mutant = []
        for xa, xb, xc in zip(a, b, c):
            x = xa + self.f * (xb - xc)
            mutant.append(x if 0.0 <= x <= 1.0 else rng.random())
        forced = rng.randrange(len(target))
        return [m if (i == forced or rng.random() < self.cr) else t
                for i, (m, t) in enumerate(zip(mutant, target))]

    def _evolve(self, level: int, parents: list[list[float]]) -> tuple:
        """A DE trial for the next target of ``level``'s subpopulation; its vector is kept."""
        pop = self.pops[level]
        slot = self._targets[level] % len(pop)
        self._targets[level] += 1
        pool = self._pool(parents)
        seen = self.results[level]
        vector: list[float] = []
        genome: tuple = ()
        for _ in range(self.redraws + 1):
            vector = self._trial(pop[slot].vector, pool)
            genome = self._de.decode(vector)
            if genome not in seen and not self.busy(genome):
                break
        else:      # converged: resample coordinates until the configuration is new
            for i in self._rng.sample(range(len(vector)), len(vector)):
                vector[i] = self._rng.random()
                genome = self._de.decode(vector)
                if genome not in seen and not self.busy(genome):
                    break
        if self.busy(genome):
            genome = self.new_genome(level)
            vector = self._vector_of(genome)
        self._vectors[genome] = vector
        self._slots[genome] = slot
        return genome

    # ---- Hyperband's hooks ----------------------------------------------------------
    def _job(self, b: Bracket) -> tuple | None:
        level = b.level
        if not self._full(level):
            if b.rung == 0:
                genome = self.new_genome(level)
                self._vectors.setdefault(genome, self._vector_of(genome))
                return genome
            return super()._job(b)
        if b.rung == 0:
            parents = [m.vector for m in self.pops[level - 1]] if level > 0 else \
                [m.vector for m in self.pops[level]]
            return self._evolve(level, parents)
        if self.promote == "top":
            return super()._job(b)
        n = b.counts[b.rung]
        return self._evolve(level, [self._vector_of(g) for g in b.ranked[:n]])

    def _told(self, genome: tuple, level: int, reward: Any, info: Any) -> None:
        slot = self._slots.pop(genome, None)
        pop = self.pops[level]
        if slot is not None:
            if reward is not None and score(reward) >= score(pop[slot].reward):
                pop[slot] = _Member(self._vector_of(genome), genome, reward)
        elif not self._full(level):
            pop.append(_Member(self._vector_of(genome), genome, reward))
        super()._told(genome, level, reward, info)

    def _recovered(self, genome: tuple, level: int, reward: Any) -> None:
        pop = self.pops[level]
        member = _Member(self._vector_of(genome), genome, reward)
        if not self._full(level):
            pop.append(member)
        else:
            worst = min(range(len(pop)), key=lambda i: score(pop[i].reward))
            if score(reward) > score(pop[worst].reward):
                pop[worst] = member

    @property
    def population(self) -> list[list[tuple[tuple, float]]]:
        """Each level's subpopulation: ``(genome, reward)`` of its members."""
        return [[(m.genome, score(m.reward)) for m in pop] for pop in self.pops]
