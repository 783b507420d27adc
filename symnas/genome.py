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

Each gene's layout (:class:`GeneLayout`) also says what algorithms may assume
about it:

- **Order.** A choice whose candidates are all numbers (``sn.oneof([8, 16,
  32])``, ``sn.intv``) is *ordered*: ``rank[c]`` is candidate ``c``'s position
  by value, so mutation can prefer near neighbours and continuous decoders
  keep neighbours adjacent. ``sn.oneof(..., ordered=False)`` opts out,
  ``ordered=True`` orders any candidates by their list position (the flag
  travels in the primitive's PyGlove ``hints`` as ``{"ordered": bool}``).
- **Scale.** A float gene has a ``scale`` (``"linear"``, ``"log"``,
  ``"rlog"``, PyGlove's formulas); :meth:`GeneLayout.unit` and
  :meth:`GeneLayout.from_unit` map values to and from ``[0, 1]`` on that
  scale, so a uniform unit draw is log-uniform on a log scale.
- **Resolution.** Canonical float genes lie on a grid of :data:`FLOAT_STEPS`
  steps of the unit interval: the canonical genome *is* the value that is
  built, and two proposals closer than a step are one architecture
  (deduplicated as such).

Example:

>>> import pyglove as pg
>>> spec = pg.dna_spec(pg.Dict(a=pg.oneof([1, 2]), b=pg.floatv(0.0, 1.0)))
>>> gs = GenomeSpec.of(spec)
>>> genome = gs.canonical((1, 0.123456789))
>>> genome, gs.genes[0].ordered
((1, 0.1235), True)
>>> gs.from_dna(gs.to_dna(genome)) == genome
True
>>> lr = GenomeSpec.of(pg.dna_spec(pg.Dict(lr=pg.floatv(1e-3, 1e-1, scale="log")))).genes[0]
>>> round(lr.from_unit(0.5), 6), lr.unit(0.01)       # the geometric midpoint is halfway
(0.01, 0.5)
"""
from __future__ import annotations

import copy
import dataclasses
import functools
import math
import random
import weakref
from collections.abc import Mapping
from typing import Any, Sequence

import pyglove as pg

Gene = int | float
Genome = tuple  # tuple[Gene, ...]

FLOAT_STEPS = 10_000   # canonical float genes: a grid of this many steps of the unit interval
SCALES = ("linear", "log", "rlog")


@dataclasses.dataclass(frozen=True)
class GeneLayout:
    """The layout of one gene."""
    name: str             # the decision's name (explicit name= or key path)
    size: int | None      # number of candidates; None for a float
    low: float = 0.0      # float range
    high: float = 0.0
    parent: int | None = None     # index of the parent gene, if conditional
    parent_value: int | None = None  # candidate of the parent that enables it
    ordered: bool = False         # candidates have an order (numbers, sn.intv, ordered=True)
    rank: tuple[int, ...] = ()    # ordered: rank[candidate] = its position in the order
    order: tuple[int, ...] = ()   # ordered: order[position] = the candidate there
    scale: str = "linear"         # float genes: "linear", "log" or "rlog"

    def unit(self, value: Gene) -> float:
        """The gene's value as a position in ``[0, 1]``.

        A float on its scale; a categorical candidate as the centre of its bin
        (by rank when ordered), the inverse of :meth:`from_unit`.
        """
        if self.size is None:
            lo, hi = self.low, self.high
            x = min(max(float(value), lo), hi)
            if hi <= lo:
                return 0.0
            if self.scale == "log":
                return math.log(x / lo) / math.log(hi / lo)
            if self.scale == "rlog":
                return 1.0 - math.log((hi + lo - x) / lo) / math.log(hi / lo)
            return (x - lo) / (hi - lo)
        v = int(value)
        return ((self.rank[v] if self.ordered else v) + 0.5) / self.size

    def from_unit(self, u: float) -> Gene:
        """The value at position ``u`` of ``[0, 1]`` (clipped): a grid float or a candidate."""
        u = min(max(float(u), 0.0), 1.0)
        if self.size is not None:
            k = min(int(u * self.size), self.size - 1)
            return self.order[k] if self.ordered else k
        step = round(u * FLOAT_STEPS)
        lo, hi = self.low, self.high
        if step <= 0 or hi <= lo:
            return lo
        if step >= FLOAT_STEPS:
            return hi
        u = step / FLOAT_STEPS
        if self.scale == "log":
            x = lo * math.exp(u * math.log(hi / lo))
        elif self.scale == "rlog":
            x = hi + lo - lo * math.exp((1.0 - u) * math.log(hi / lo))
        else:
            x = lo + u * (hi - lo)
        return min(max(x, lo), hi)

    def quantize(self, value: float) -> float:
        """A float gene's value on its grid (the canonical, built value)."""
        return self.from_unit(self.unit(value))


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
                holder = p.parent_spec       # the candidate it sits in (a manyof's: the manyof's)
                if isinstance(holder, pg.geno.Choices):
                    holder = holder.parent_spec
                parent_value = next(k for k, c in enumerate(p.parent_choice.candidates)
                                    if c is holder)
            if isinstance(p, pg.geno.Choices):
                rank = _rank(p)
                genes.append(GeneLayout(str(p.id) if p.name is None else name,
                                        len(p.candidates), parent=parent,
                                        parent_value=parent_value, ordered=rank is not None,
                                        rank=rank or (),
                                        order=tuple(sorted(range(len(rank)), key=rank.__getitem__))
                                        if rank else ()))
                if isinstance(p.parent_spec, pg.geno.Choices):  # a manyof subchoice
                    groups.setdefault(id(p.parent_spec), []).append(i)
                    multi[id(p.parent_spec)] = p.parent_spec
            elif isinstance(p, pg.geno.Float):
                scale = p.scale or "linear"
                if scale not in SCALES:
                    raise ValueError(f"float decision {name!r} has scale {scale!r}; use one of "
                                     f"{', '.join(SCALES)} (or None for linear).")
                genes.append(GeneLayout(name, None, float(p.min_value), float(p.max_value),
                                        parent=parent, parent_value=parent_value, scale=scale))
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
        self.ordered: tuple[bool, ...] = tuple(g.ordered for g in genes)

    #: genes held at one value (gene index -> value): see :meth:`pinned`
    pins: Mapping[int, Gene] = {}

    def pinned(self, pins: Mapping[int, Gene]) -> GenomeSpec:
        """This layout with some genes held at one value: :meth:`canonical` (and so
        :meth:`random` and :meth:`from_dna`) sets them, so no search over it varies them.

        >>> spec = GenomeSpec.of(pg.dna_spec(pg.Dict(a=pg.oneof([1, 2, 3]), b=pg.oneof([4, 5]))))
        >>> spec.pinned({1: 0}).canonical([2, 1])
        (2, 0)
        """
        out = copy.copy(self)
        out.pins = {**self.pins, **pins}
        return out

    def __len__(self) -> int:
        return len(self.genes)

    @functools.cached_property
    def children(self) -> dict[tuple, list[int]]:
        """``(parent gene, candidate) -> genes`` that candidate enables, in order; the
        unconditional genes under ``(None, None)``."""
        out: dict[tuple, list[int]] = {}
        for i, g in enumerate(self.genes):
            out.setdefault((g.parent, g.parent_value), []).append(i)
        return out

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
        groups are made distinct/sorted as declared, inactive genes are reset;
        floats are clipped to their range and put on their grid (:data:`FLOAT_STEPS`).
        """
        if not self.pins:
            return self._repair(genome)
        g = list(genome)
        for i, v in self.pins.items():
            g[i] = v
        out = list(self._repair(g))
        for i, v in self.pins.items():      # a pinned float exactly as given (off the grid)
            if self.genes[i].size is None and out[i] == self.genes[i].quantize(v):
                out[i] = v
        return tuple(out)

    def _repair(self, genome: Sequence[Gene]) -> Genome:
        if self.simple and self.all_categorical:
            return tuple(genome)
        out = list(genome)
        for i, g in enumerate(self.genes):
            if g.size is None:
                out[i] = g.quantize(out[i])
            else:
                out[i] = int(out[i]) % g.size
        for ix, distinct, sort in self.groups:
            vals = [out[i] for i in ix]
            if distinct:
                n = self.genes[ix[0]].size
                assert n is not None     # a manyof gene is categorical
                seen: set = set()
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
        """A uniformly random canonical genome (floats uniform on their scale: log-uniform on 'log')."""
        return self.canonical([rng.randrange(g.size) if g.size is not None
                               else g.from_unit(rng.random()) for g in self.genes])

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



def _rank(p: pg.geno.Choices) -> tuple[int, ...] | None:
    """Each candidate's position in the choice's order; None for an unordered choice.

    The ``ordered`` hint (on the choice, or on the ``manyof`` a slot belongs
    to) decides when given; otherwise a choice over numbers is ordered by value.
    """
    flag: Any = None
    for spec in (p, p.parent_spec if isinstance(p.parent_spec, pg.geno.Choices) else None):
        hints = getattr(spec, "hints", None)
        if isinstance(hints, Mapping) and "ordered" in hints:
            flag = hints["ordered"]
            break
    values = list(p.literal_values)
    numeric = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)
    if flag is False or len(values) < 2 or (flag is None and not numeric):
        return None
    keys = [float(v) for v in values] if numeric else list(range(len(values)))
    by_value = sorted(range(len(values)), key=lambda k: (keys[k], k))
    rank = [0] * len(values)
    for r, k in enumerate(by_value):
        rank[k] = r
    return tuple(rank)
