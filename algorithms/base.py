"""The algorithm protocol: a PyGlove DNAGenerator that works on genomes.

Every symnas algorithm is a ``pg.DNAGenerator`` (``propose``, ``feedback``,
``recover``), so it plugs into ``pg.sample`` as well as ``sn.search``. Inside,
it works on genomes (one number per decision, see :mod:`symnas.genome`):
``ask() -> genome`` and ``tell(genome, reward)``. The trial loop calls those
directly and never builds a PyGlove DNA it does not need.

Failed trials: ``tell(genome, None)``. An algorithm treats ``None`` as the worst
outcome (never selected as a parent, a low reward for a controller).

Example::

    class Constant(Algorithm):
        def ask(self):
            return self.genome_spec.canonical([0] * len(self.genome_spec))
"""
from __future__ import annotations

import random
from typing import Iterable, Optional, Sequence, Tuple, Union

import pyglove as pg

from symnas.genome import Genome, GenomeSpec

Reward = Union[None, float, Tuple[float, ...]]


def scalar(reward: Reward) -> float:
    """The float a single-objective algorithm ranks by: the first of a tuple reward."""
    return float(reward[0] if isinstance(reward, tuple) else reward)


class Algorithm(pg.DNAGenerator):
    """Base class of symnas's black-box search algorithms."""

    seed: Optional[int] = None

    # ---- set-up ------------------------------------------------------------------
    def _setup(self) -> None:
        self.genome_spec = GenomeSpec.of(self.dna_spec)
        self._rng = random.Random(self.seed)
        self._start()

    def _start(self) -> None:
        """Subclasses initialise their state here (``self.genome_spec`` is ready)."""

    # ---- the genome protocol ----------------------------------------------------------
    def ask(self) -> Genome:
        """The next genome to evaluate."""
        raise NotImplementedError

    def tell(self, genome: Genome, reward: Reward) -> None:
        """The outcome of a genome: a float (maximized), a tuple, or None (failed)."""

    def replay(self, genome: Genome, reward: Reward) -> None:
        """Rebuilds state from one past trial, failed ones included (resume). Default: ``tell``."""
        self.tell(genome, reward)

    def next_genome(self) -> Genome:
        """``ask``, counted in ``num_proposals`` (what the search loop calls)."""
        self._num_proposals += 1
        return self.ask()

    def told(self, genome: Genome, reward: Reward) -> None:
        """``tell``, counted in ``num_feedbacks`` unless the trial failed (the search loop's
        call; the same count ``recover_genomes`` rebuilds)."""
        self.tell(genome, reward)
        self._num_feedbacks += reward is not None

    def recover_genomes(self, history: Iterable[Tuple[Sequence, Reward]]) -> None:
        """``recover`` over genomes: replays finished trials in order."""
        for genome, reward in history:
            self.replay(self.genome_spec.canonical(genome), reward)
            self._num_proposals += 1
            self._num_feedbacks += reward is not None

    # ---- PyGlove's protocol, in terms of the above ----------------------------------
    def _propose(self) -> pg.DNA:
        return self.genome_spec.to_dna(self.ask())

    def _feedback(self, dna: pg.DNA, reward: Reward) -> None:
        self.tell(self.genome_spec.from_dna(dna), reward)

    def _replay(self, trial_id: int, dna: pg.DNA, reward: Reward) -> None:
        self.replay(self.genome_spec.from_dna(dna), reward)

    # ---- helpers for subclasses --------------------------------------------------
    def random_genome(self) -> Genome:
        return self.genome_spec.random(self._rng)

    def mutate(self, genome: Genome, n: int = 1) -> Genome:
        """Changes ``n`` active genes of a genome to other values."""
        gs = self.genome_spec
        out = list(genome)
        active = [i for i, a in enumerate(gs.active(out)) if a and
                  (gs.sizes[i] is None or gs.sizes[i] > 1)] if gs.conditional else \
            [i for i, s in enumerate(gs.sizes) if s is None or s > 1]
        if not active:
            return tuple(genome)
        for i in self._rng.sample(active, min(n, len(active))):
            g = gs.genes[i]
            if g.size is None:
                span = g.high - g.low
                out[i] = min(max(out[i] + self._rng.gauss(0.0, 0.1 * span), g.low), g.high)
            else:
                v = self._rng.randrange(g.size - 1)
                out[i] = v + (v >= out[i])
        return gs.canonical(out)
