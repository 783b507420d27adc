"""The algorithm side of the trial path: proposals in, rewards out, repeats answered.

:func:`prepare` turns what the user passed (a registered name, a symnas
algorithm, any PyGlove ``DNAGenerator``) into a private, seeded copy that
speaks :class:`symnas.protocols.SearchAlgorithm`; :class:`PyGloveAdapter` is
the thin layer that makes a PyGlove generator speak it. :class:`Driver` asks
and tells on the search's behalf and, with deduplication, answers an
already-evaluated proposal from its record at no budget. A multi-fidelity
algorithm's proposals are ``(genome, fidelity)`` pairs (:meth:`Driver.propose`),
and deduplication is by the pair: an architecture evaluated at 12 epochs is
evaluated again at 200.

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


def prepare(algorithm: Any, space: Any, seed: int | None, objectives: int = 1,
            levels: Sequence[float] | None = None) -> SearchAlgorithm:
    """A private, seeded copy of ``algorithm``, set up on the space (and the fidelity levels)."""
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
    if levels is not None:
        algo.setup_fidelity(tuple(levels))
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
    every architecture of the space was seen (at each of ``levels``
    fidelities, for a multi-fidelity algorithm), it reports the space exhausted.
    """

    def __init__(self, space: Any, algorithm: SearchAlgorithm, objectives: Objectives, *,
                 dedup: bool = True, max_repeats: int = 1000, levels: int = 1):
        self.space = space
        self.algo = algorithm
        self.objectives = objectives
        self.dedup = dedup
        self.max_repeats = max_repeats
        self.multi = bool(getattr(algorithm, "multi_fidelity", False))
        self.capacity = space.size * (levels if self.multi else 1)
        self.seen: dict[Any, Any] = {}   # genome or (genome, fidelity) -> reward (None: pending/failed)
        self.exhausted = False

    def key(self, genome: Genome, fidelity: Any) -> Any:
        """What deduplication compares: the genome, with the fidelity for a multi-fidelity algorithm."""
        return (genome, fidelity) if self.multi else genome

    @property
    def algorithm(self) -> Any:
        """The algorithm as the user knows it (a PyGlove generator unwrapped)."""
        return getattr(self.algo, "generator", self.algo)

    def ask(self) -> Arch | None:
        """The next architecture to evaluate; None when the space is exhausted."""
        proposal = self.propose()
        return None if proposal is None else proposal[0]

    def propose(self) -> tuple[Arch, Any] | None:
        """The next ``(architecture, fidelity)`` to evaluate (fidelity None: the highest)."""
        canonical = self.space.genome_spec.canonical
        for _ in range(self.max_repeats):
            genome = canonical(self.algo.ask())
            fidelity = self.algo.fidelity_for(genome)
            key = self.key(genome, fidelity)
            if not self.dedup or key not in self.seen:
                self.seen[key] = None
                return Arch(self.space, genome, self.algo.dna_for(genome)), fidelity
            self.algo.tell(genome, self.seen[key])   # a repeat: answered from the record
            if len(self.seen) >= self.capacity:
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

    def tell(self, arch: Arch, reward: Any, fidelity: Any = None) -> None:
        """Reports a reward (None: failed) for a proposal from :meth:`propose`."""
        self.seen[self.key(arch.genome, fidelity)] = reward
        self.algo.tell(arch.genome, reward)

    def recover(self, history: Sequence[Sequence[Any]]) -> None:
        """Replays finished trials, ``(genome, reward or None[, fidelity])``, into the algorithm.

        A multi-fidelity algorithm gets ``(genome, reward, fidelity)`` triples.
        """
        items = [(tuple(h[0]), h[1], h[2] if len(h) > 2 else None) for h in history]
        given: list[Any] = [(g, r, f) if self.multi else (g, r) for g, r, f in items]
        self.algo.recover(given)
        for g, r, f in items:
            self.seen[self.key(g, f)] = r
