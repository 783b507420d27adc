"""A flat, fixed-length view of a PyGlove DNASpec: one gene per decision point.

PyGlove's ``DNA`` is a symbolic tree; building one costs about a millisecond.
Search algorithms only need a vector: a categorical decision with ``n``
candidates is an int in ``[0, n)`` and a float decision is a float in its
range. A :class:`GenomeSpec` compiles a DNASpec once into such a vector layout
and converts between genomes and DNA on demand, so the trial loop never pays
for a DNA it does not use.

Conditional decisions (those inside a candidate of another choice) keep their
gene in every genome; they are *inactive* when the parent chooses another
candidate, and :meth:`GenomeSpec.canonical` sets inactive genes to their first
value so that two genomes that mean the same architecture are equal.

Example::

    import pyglove as pg
    spec = pg.dna_spec(pg.Dict(a=pg.oneof([1, 2]), b=pg.floatv(0.0, 1.0)))
    gs = GenomeSpec.of(spec)
    genome = gs.canonical((1, 0.5))
    dna = gs.to_dna(genome)        # DNA([1, 0.5])
    assert gs.from_dna(dna) == genome
"""
from __future__ import annotations

import dataclasses
import weakref
from typing import Sequence

import pyglove as pg

Gene = int | float
Genome = tuple  # tuple[Gene, ...]


@dataclasses.dataclass(frozen=True)
class GeneLayout:
    """The layout of one gene."""
    name: str             # the decision's name (explicit name= or key path)
    size: int | None      # number of candidates; None for a float
    low: float = 0.0      # float range
    high: float = 0.0
    parent: int | None = None     # index of the parent gene, if conditional
    parent_value: int | None = None  # candidate of the parent that enables it


class GenomeSpec:
    """Compiled vector layout of a DNASpec (cached per DNASpec object)."""

    _cache: weakref.WeakKeyDictionary[pg.DNASpec, GenomeSpec] = weakref.WeakKeyDictionary()

    @classmethod
    def of(cls, dna_spec: pg.DNASpec) -> GenomeSpec:
        """Returns the (cached) GenomeSpec of a DNASpec."""
        try:
            return cls._cache[dna_spec]
        except (KeyError, TypeError):
            pass
        gs = cls(dna_spec)
        try:
            cls._cache[dna_spec] = gs
        except TypeError:
            pass
        return gs

    def __init__(self, dna_spec: pg.DNASpec):
        self.dna_spec = dna_spec
        points = list(dna_spec.decision_points)
        index = {id(p): i for i, p in enumerate(points)}
        genes = []
        groups: dict[int, list[int]] = {}
        multi: dict[int, pg.geno.Choices] = {}
        for i, p in enumerate(points):
            name = p.name or str(p.id)
            parent = parent_value = None
            if p.parent_choice is not None:
                parent = index[id(p.parent_choice)]
                parent_value = next(k for k, c in enumerate(p.parent_choice.candidates)
                                    if c is p.parent_spec)
            if isinstance(p, pg.geno.Choices):
                genes.append(GeneLayout(str(p.id) if p.name is None else name,
                                   len(p.candidates), parent=parent,
                                   parent_value=parent_value))
                if isinstance(p.parent_spec, pg.geno.Choices):  # a manyof subchoice
                    groups.setdefault(id(p.parent_spec), []).append(i)
                    multi[id(p.parent_spec)] = p.parent_spec
            elif isinstance(p, pg.geno.Float):
                genes.append(GeneLayout(name, None, float(p.min_value), float(p.max_value),
                                   parent=parent, parent_value=parent_value))
            else:
                raise TypeError(
                    f"decision {name!r} is a {type(p).__name__}; symnas genomes support "
                    "oneof, manyof and floatv decisions. Express it with those.")
        self.genes: tuple[GeneLayout, ...] = tuple(genes)
        self.points = points
        # (gene indices, distinct, sorted) for each manyof
        self.groups: tuple[tuple[tuple[int, ...], bool, bool], ...] = tuple(
            (tuple(ix), multi[k].distinct, multi[k].sorted) for k, ix in groups.items())
        self.sizes: tuple[int | None, ...] = tuple(g.size for g in genes)
        self.conditional = any(g.parent is not None for g in genes)
        self.simple = not self.conditional and not self.groups
        self.all_categorical = all(s is not None for s in self.sizes)

    def __len__(self) -> int:
        return len(self.genes)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(g.name for g in self.genes)

    # ---- activity and canonical form -------------------------------------------------
    def active(self, genome: Sequence[Gene]) -> list[bool]:
        """Which genes take effect in this genome."""
        act: list[bool] = []
        for g in self.genes:
            act.append(g.parent is None or (act[g.parent] and genome[g.parent] == g.parent_value))
        return act

    def canonical(self, genome: Sequence[Gene]) -> Genome:
        """Repairs a genome into the one canonical form of its architecture.

        Out-of-range categorical genes wrap around, floats are clipped, manyof
        groups are made distinct/sorted as declared, inactive genes are reset.
        """
        if self.simple and self.all_categorical:
            return tuple(genome)
        out = list(genome)
        for i, g in enumerate(self.genes):
            if g.size is None:
                out[i] = min(max(float(out[i]), g.low), g.high)
            else:
                out[i] = int(out[i]) % g.size
        for ix, distinct, sort in self.groups:
            vals = [out[i] for i in ix]
            if distinct:
                n = self.genes[ix[0]].size
                seen: set[int] = set()
                for k, v in enumerate(vals):
                    while v in seen:
                        v = (v + 1) % n
                    seen.add(v)
                    vals[k] = v
            if sort:
                vals.sort()
            for i, v in zip(ix, vals):
                out[i] = v
        if self.conditional:
            act = self.active(out)
            for i, g in enumerate(self.genes):
                if not act[i]:
                    out[i] = 0 if g.size is not None else g.low
        return tuple(out)

    def random(self, rng: random.Random) -> Genome:
        """A uniformly random canonical genome."""
        return self.canonical([rng.randrange(g.size) if g.size is not None
                               else rng.uniform(g.low, g.high) for g in self.genes])

    # ---- DNA conversion -------------------------------------------------------------
    def to_dna(self, genome: Sequence[Gene]) -> pg.DNA:
        """The PyGlove DNA of a genome (canonicalized first)."""
        genome = self.canonical(genome)
        if self.simple:
            dna = pg.DNA(list(genome) if len(genome) != 1 else genome[0])
            dna.use_spec(self.dna_spec)
            return dna
        act = self.active(genome)
        return pg.DNA.from_numbers([v for v, a in zip(genome, act) if a], self.dna_spec)

    def from_dna(self, dna: pg.DNA) -> Genome:
        """The canonical genome of a PyGlove DNA."""
        numbers = dna.to_numbers()
        if self.simple:
            return self.canonical(numbers)
        out: list[Gene] = []
        it = iter(numbers)
        act: list[bool] = []
        for g in self.genes:
            a = g.parent is None or (act[g.parent] and out[g.parent] == g.parent_value)
            act.append(a)
            out.append(next(it) if a else (0 if g.size is not None else g.low))
        return self.canonical(out)

