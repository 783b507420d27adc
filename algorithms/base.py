"""The base class of symnas's black-box algorithms: a PyGlove DNAGenerator on genomes.

:class:`Algorithm` implements :class:`symnas.protocols.SearchAlgorithm`
(``ask`` / ``tell`` / ``recover`` over genomes, one number per decision, see
:mod:`symnas.genome`) and, in terms of it, PyGlove's ``propose`` /
``feedback``, so every symnas algorithm also plugs into ``pg.sample``. The
base class keeps the books (proposal and feedback counts, canonical genomes);
a subclass overrides small hooks (template method, as PyGlove does):

- ``_start()``: initialise state (``self.genome_spec`` and ``self._rng`` are ready);
- ``_ask() -> genome``: the next proposal;
- ``_tell(genome, reward)``: an outcome; ``reward`` is ``None`` for a failed
  or infeasible trial, which an algorithm treats as the worst outcome.

Resume (``recover``) replays the finished trials through ``_tell``.

Example:

>>> import symnas as sn
>>> class FirstChoice(Algorithm):
...     def _ask(self):
...         return self.genome_spec.canonical([0] * len(self.genome_spec))
>>> algo = FirstChoice()
>>> algo.setup(sn.Space(dict(a=sn.oneof([1, 2]))).dna_spec)
>>> algo.ask(), algo.num_proposals
((0,), 1)
"""
from __future__ import annotations

import random
from typing import Any, Iterable, Sequence

import pyglove as pg

from symnas.genome import GeneLayout, Genome, GenomeSpec
from symnas.protocols import SearchAlgorithm

Reward = float | tuple[float, ...] | None


def scalar(reward: Reward) -> float:
    """The float a single-objective algorithm ranks by: the first of a tuple reward."""
    if reward is None:
        raise ValueError("a failed trial has no reward to rank by.")
    return float(reward[0] if isinstance(reward, tuple) else reward)


class Algorithm(pg.DNAGenerator, SearchAlgorithm):
    """Base class of symnas's black-box search algorithms."""

    seed: int | None = None

    # ---- PyGlove's set-up hook ------------------------------------------------------
    def _setup(self) -> None:
        self.genome_spec = GenomeSpec.of(self.dna_spec)
        self._rng = random.Random(self.seed)
        self._counts = [0, 0]     # proposals, feedbacks told through ask/tell (no pg setattr)
        self._start()

    @property
    def num_proposals(self) -> int:
        """Proposals made, through ``ask`` or PyGlove's ``propose``."""
        return self._num_proposals + self._counts[0]

    @property
    def num_feedbacks(self) -> int:
        """Rewards received for proposals (failed trials not counted)."""
        return self._num_feedbacks + self._counts[1]

    # ---- hooks for subclasses ----------------------------------------------------------
    def _start(self) -> None:
        """Initialises the algorithm's state (``self.genome_spec`` is ready)."""

    def _ask(self) -> Genome:
        """The next genome to evaluate."""
        raise NotImplementedError(f"{type(self).__name__} must override _ask().")

    def _tell(self, genome: Genome, reward: Reward) -> None:
        """The outcome of a genome: a float (maximized), a tuple, or None (failed)."""

    # ---- the protocol (symnas.protocols.SearchAlgorithm) -------------------------------
    def ask(self) -> Genome:
        """The next genome to evaluate (counted in ``num_proposals``)."""
        self._counts[0] += 1
        return self._ask()

    def tell(self, genome: Genome, reward: Reward) -> None:
        """An outcome (counted in ``num_feedbacks`` unless the trial failed)."""
        self._tell(genome, reward)
        if reward is not None:
            self._counts[1] += 1

    def recover(self, history: Iterable[tuple[Any, Reward]]) -> None:
        """Replays finished trials in order: ``(genome or DNA, reward)`` pairs."""
        gs = self.genome_spec
        for genome, reward in history:
            g = gs.from_dna(genome) if isinstance(genome, pg.DNA) else gs.canonical(genome)
            self._counts[0] += 1
            self.tell(g, reward)

    # ---- PyGlove's protocol, in terms of the above (pg.sample counts for itself) -------
    def _propose(self) -> pg.DNA:
        return self.genome_spec.to_dna(self._ask())

    def _feedback(self, dna: pg.DNA, reward: Reward) -> None:
        self._tell(self.genome_spec.from_dna(dna), reward)

    # ---- helpers for subclasses --------------------------------------------------
    def random_genome(self) -> Genome:
        return self.genome_spec.random(self._rng)

    def mutate(self, genome: Sequence, n: int = 1) -> Genome:
        """Changes ``n`` active genes of a genome to other values.

        An unordered choice takes another candidate uniformly; an ordered one
        (numbers, ``sn.intv``) prefers near neighbours (:func:`step_ordered`);
        a float moves by a Gaussian step of 0.1 of its range on its scale.
        """
        gs = self.genome_spec
        out = list(genome)
        mutable = [s is None or s > 1 for s in gs.sizes]
        live = gs.active(out) if gs.conditional else [True] * len(out)
        active = [i for i, (a, m) in enumerate(zip(live, mutable)) if a and m]
        if not active:
            return tuple(genome)
        rng = self._rng
        for i in rng.sample(active, min(n, len(active))):
            g = gs.genes[i]
            if g.size is None:
                out[i] = g.from_unit(g.unit(out[i]) + rng.gauss(0.0, FLOAT_SIGMA))
            elif g.ordered:
                out[i] = step_ordered(g, int(out[i]), rng)
            else:
                v = rng.randrange(g.size - 1)
                out[i] = v + (v >= out[i])
        return gs.canonical(out)


FLOAT_SIGMA = 0.1       # a float mutation's step, in units of the gene's range (on its scale)
ORDERED_SIGMA = 0.1     # an ordered mutation's step, in units of the number of candidates (>= 1)
ORDERED_JUMP = 0.2      # probability that an ordered mutation jumps to any other candidate


def step_ordered(gene: GeneLayout, value: int, rng: random.Random) -> int:
    """Another candidate of an ordered gene, near ``value`` in the order most of the time.

    With probability :data:`ORDERED_JUMP` any other candidate (uniformly);
    otherwise a Gaussian step of ``max(1, ORDERED_SIGMA * size)`` positions,
    rounded away from zero to at least one position and reflected at the ends.

    >>> import symnas as sn
    >>> g = sn.Space(dict(w=sn.oneof([8, 16, 24, 32, 40, 48, 56, 64]))).genome_spec.genes[0]
    >>> rng = random.Random(0)
    >>> steps = [abs(step_ordered(g, 3, rng) - 3) for _ in range(1000)]
    >>> min(steps), sum(s == 1 for s in steps) > 600, max(steps) >= 4
    (1, True, True)
    """
    n = gene.size or 0
    r = gene.rank[value]
    if n < 2:
        return value
    if rng.random() < ORDERED_JUMP:
        k = rng.randrange(n - 1)
        return gene.order[k + (k >= r)]
    d = rng.gauss(0.0, max(1.0, ORDERED_SIGMA * n))
    k = r + (int(round(d)) or (1 if d >= 0 else -1))
    if k < 0 or k >= n:               # reflect at the ends
        k = r - (k - r) if 0 <= r - (k - r) < n else (r + 1 if r == 0 else r - 1)
    return gene.order[k]
