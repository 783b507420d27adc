"""The algorithm side of the trial path: proposals in, rewards out, repeats answered.

:func:`prepare` turns what the user passed (a registered name, a symnas
algorithm, any PyGlove ``DNAGenerator``) into a private, seeded copy that
speaks :class:`symnas.protocols.SearchAlgorithm`; :class:`PyGloveAdapter` is
the thin layer that makes a PyGlove generator speak it. :class:`Driver` asks
and tells on the search's behalf and, with deduplication, answers an
already-evaluated proposal from its record at no budget.

Example::

    >>> import symnas as sn
    >>> from symnas.objective import Objectives
    >>> space = sn.Space(dict(a=sn.oneof([1, 2, 3])))
    >>> driver = Driver(space, prepare("random", space, seed=0), Objectives.parse("acc"))
    >>> arch = driver.ask()
    >>> driver.tell(arch, 0.5)
    >>> sorted(driver.seen.values())
    [0.5]
"""
from __future__ import annotations

import logging
import math
import warnings
from typing import Any, Sequence

import pyglove as pg

from symnas.arch import Arch
from symnas.genome import Genome
from symnas.objective import Objectives
from symnas.protocols import Reward, SearchAlgorithm
from symnas.registry import ALGORITHMS

logger = logging.getLogger("symnas")

__all__ = ["Driver", "PyGloveAdapter", "prepare", "resolve"]


class PyGloveAdapter(SearchAlgorithm):
    """Any PyGlove ``DNAGenerator`` as a :class:`SearchAlgorithm` over genomes.

    Failed trials are told ``-inf`` (one per objective), PyGlove's convention
    for the worst outcome; the DNA a proposal came with is kept until its
    tell, so the trial never rebuilds it.
    """

    def __init__(self, generator: pg.DNAGenerator, objectives: int = 1):
        self.generator = generator
        self.failed = tuple([-math.inf] * objectives) if objectives > 1 else -math.inf
        self._dna: dict[Genome, list[pg.DNA]] = {}

    def setup(self, dna_spec: Any) -> None:
        from symnas.genome import GenomeSpec
        self.generator.setup(dna_spec)
        self.genome_spec = GenomeSpec.of(dna_spec)

    def ask(self) -> Genome:
        dna = self.generator.propose()
        genome = self.genome_spec.from_dna(dna)
        self._dna.setdefault(genome, []).append(dna)
        return genome

    def dna_for(self, genome: Genome) -> Any:
        pending = self._dna.get(genome)
        return pending[-1] if pending else None

    def tell(self, genome: Genome, reward: Reward) -> None:
        pending = self._dna.get(genome)
        dna = pending.pop(0) if pending else self.genome_spec.to_dna(genome)
        if pending is not None and not pending:
            del self._dna[genome]
        self.generator.feedback(dna, self.failed if reward is None else reward)

    def recover(self, history: Any) -> None:
        self.generator.recover([(self.genome_spec.to_dna(g), self.failed if r is None else r)
                                for g, r in history])


def resolve(algorithm: Any) -> Any:
    """A registered algorithm's name -> a new instance; anything else as it is."""
    return ALGORITHMS.get(algorithm) if isinstance(algorithm, str) else algorithm


def prepare(algorithm: Any, space: Any, seed: int | None, objectives: int = 1) -> SearchAlgorithm:
    """A private, seeded copy of ``algorithm``, set up on the space, speaking the protocol."""
    algorithm = resolve(algorithm)
    if isinstance(algorithm, SearchAlgorithm):
        algo = algorithm.clone(deep=True) if isinstance(algorithm, pg.Symbolic) else algorithm
    elif isinstance(algorithm, pg.DNAGenerator):
        algo = algorithm.clone(deep=True)
    else:
        raise TypeError(f"algorithm must be a search algorithm (a registered name such as "
                        f"'evolution', a symnas algorithm or a PyGlove DNAGenerator), "
                        f"got {type(algorithm).__name__}.")
    if seed is not None and isinstance(algo, pg.Symbolic):
        _seed_unseeded(algo, seed)
    if not isinstance(algo, SearchAlgorithm):
        algo = PyGloveAdapter(algo, objectives)
    algo.setup(space.dna_spec)
    return algo


def _seed_unseeded(algo: pg.Symbolic, seed: int) -> None:
    """Gives every unset ``seed`` field in the algorithm's tree a seed derived from ``seed``.

    PyGlove's composite generators (e.g. ``pg.evolution.regularized_evolution``)
    keep seeds on nested selectors and mutators, not on the top object.
    """
    count = 0

    def visit(node: Any) -> None:
        nonlocal count
        if isinstance(node, (list, tuple)):
            for item in node:
                visit(item)
        elif isinstance(node, pg.Object):
            args = node.sym_init_args
            if "seed" in args and args["seed"] is None:
                node.rebind(seed=seed + 7919 * count)  # re-runs _on_bound: fresh RNGs
                count += 1
            for key, value in args.items():
                if key != "seed":
                    visit(value)

    visit(algo)


class Driver:
    """Asks an algorithm for new architectures and tells it their rewards.

    With ``dedup`` it answers repeated proposals from its record (no budget
    spent) and asks again; after ``max_repeats`` repeats in a row, or when
    every architecture of the space was seen, it reports the space exhausted.
    """

    def __init__(self, space: Any, algorithm: SearchAlgorithm, objectives: Objectives, *,
                 dedup: bool = True, max_repeats: int = 1000):
        self.space = space
        self.algo = algorithm
        self.objectives = objectives
        self.dedup = dedup
        self.max_repeats = max_repeats
        self.seen: dict[Genome, Any] = {}   # genome -> reward told (None: pending/failed)
        self.exhausted = False

    @property
    def algorithm(self) -> Any:
        """The algorithm as the user knows it (a PyGlove generator unwrapped)."""
        return getattr(self.algo, "generator", self.algo)

    def ask(self) -> Arch | None:
        """The next architecture to evaluate; None when the space is exhausted."""
        canonical = self.space.genome_spec.canonical
        for _ in range(self.max_repeats):
            genome = canonical(self.algo.ask())
            if not self.dedup or genome not in self.seen:
                self.seen[genome] = None
                return Arch(self.space, genome, self.algo.dna_for(genome))
            self.algo.tell(genome, self.seen[genome])   # a repeat: answered from the record
            if len(self.seen) >= self.space.size:
                logger.info("every one of the space's %d architectures was evaluated; "
                            "the search ends early.", len(self.seen))
                break
        else:
            name = type(self.algorithm).__name__
            warnings.warn(
                f"{name} proposed only already-evaluated architectures {self.max_repeats} times "
                f"in a row ({len(self.seen)} of {self.space.size} architectures seen); the search "
                f"stops early. {name} has converged: widen its exploration (e.g. a larger "
                "population or mutation rate) or pass dedup=False.", stacklevel=4)
        self.exhausted = True
        return None

    def tell(self, arch: Arch, reward: Any) -> None:
        """Reports a reward (None: failed) for an architecture from :meth:`ask`."""
        self.seen[arch.genome] = reward
        self.algo.tell(arch.genome, reward)

    def recover(self, history: Sequence[tuple[Genome, Any]]) -> None:
        """Replays finished trials (genome, reward or None) into the algorithm."""
        self.algo.recover([(tuple(g), r) for g, r in history])
        for g, r in history:
            self.seen[tuple(g)] = r
