"""Arch: one architecture of a Space, materialized only when asked.

An Arch holds its genome (one number per decision). The PyGlove DNA, the
materialized program and the ``nn.Module`` are computed on first use, so an
evaluator that reads the genome (a table lookup) never pays for a build.

Example::

    arch = space.sample(seed=0)
    arch.decisions          # {'width': 64, 'act': 'GELU', ...}
    model = arch.build()
    arch.save("best.json")
    same = sn.load("best.json").build()
"""
from __future__ import annotations

import json
import os
from typing import Any

import pyglove as pg

from symnas.genome import Genome

FORMAT = "symnas.arch/1"


class ArchFile:
    """Writes an architecture in :func:`load`'s format; subclasses give its parts."""

    __slots__ = ()

    def to_json(self, **extra: Any) -> dict:
        data = {"format": FORMAT, "dna": self._dna_json(), "genome": list(self.genome),
                "decisions": self.decisions, "program": self.program_json()}
        traced = self._traced_name()
        if traced is not None:
            data["traced"] = traced
        data.update(extra)
        return data

    def save(self, path: str | os.PathLike, **extra: Any) -> str:
        """Writes the architecture as JSON that :func:`symnas.load` rebuilds."""
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        with open(path, "w") as f:
            json.dump(self.to_json(**extra), f, indent=1, default=str)
        return str(path)


class Arch(ArchFile):
    """An architecture: a genome of a Space, with lazy DNA, program and module."""

    __slots__ = ("space", "genome", "_dna", "_value", "__weakref__")

    def __init__(self, space: Any, genome: Genome, dna: pg.DNA | None = None):
        self.space = space
        self.genome = genome
        self._dna = dna
        self._value = None

    @property
    def dna(self) -> pg.DNA:
        """The PyGlove DNA (built on first use)."""
        if self._dna is None:
            self._dna = self.space.genome_spec.to_dna(self.genome)
        return self._dna

    @property
    def value(self) -> Any:
        """The materialized symbolic program (built on first use)."""
        if self._value is None:
            self._value = self.space.materialize(self._dna_or_genome())
        return self._value

    @property
    def decisions(self) -> dict[str, Any]:
        """``{decision name: chosen candidate}`` of the active decisions (readable labels)."""
        gs = self.space.genome_spec
        act = gs.active(self.genome) if gs.conditional else None
        labels = self.space.labels
        group_of = {i: ix for ix, _, _ in gs.groups for i in ix}
        out: dict[str, Any] = {}
        for i, (g, v) in enumerate(zip(gs.genes, self.genome)):
            if act is not None and not act[i]:
                continue
            value = v if g.size is None else labels[i][v]
            if i in group_of:              # a manyof: one list under its name
                out.setdefault(g.name, []).append(value)
            else:
                out[g.name] = value
        return out

    def build(self) -> Any:
        """A fresh ``nn.Module`` of this architecture."""
        return self.space.build(self._dna_or_genome())

    def _dna_or_genome(self):
        """The DNA when it is already built (the space then skips rebuilding it), else the genome."""
        return self._dna if self._dna is not None else self.genome

    def program_json(self) -> Any:
        """The materialized program as JSON (traced spaces: the decisions)."""
        return self.value.to_json() if isinstance(self.value, pg.Symbolic) else self.value

    def _dna_json(self) -> Any:
        return self.dna.to_json()

    def _traced_name(self) -> str | None:
        from symnas.space import _qualified_name
        fn = getattr(self.space, "_fn", None)
        return _qualified_name(fn) if fn is not None else None

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Arch) and other.space is self.space and other.genome == self.genome

    def __hash__(self) -> int:
        return hash(self.genome)

    def __repr__(self) -> str:
        return f"Arch({self.decisions})"


class LoadedArch:
    """An architecture read back from JSON: ``build()`` rebuilds the same module.

    The program's classes must be importable (``@sn.searchable`` classes are
    imported by their module path). Traced architectures need their function to
    be importable, or ``space=`` given to :func:`load`.
    """

    def __init__(self, data: dict, space: Any = None):
        self.data = data
        self.space = space
        self.metrics: dict = data.get("metrics", {})

    @property
    def decisions(self) -> dict:
        return self.data.get("decisions", {})

    @property
    def dna(self) -> pg.DNA:
        return pg.from_json(self.data["dna"])

    @property
    def value(self) -> Any:
        if "traced" in self.data and self.space is None:
            return self.data["program"]
        if self.space is not None:
            return self.space.materialize(self.data["genome"])
        return pg.from_json(self.data["program"], auto_import=True)

    def build(self) -> Any:
        from symnas.space import Space, _to_module
        if self.space is not None:
            return self.space.build(self.data["genome"])
        if "traced" in self.data:
            self.space = Space.from_json({"traced": self.data["traced"]})
            return self.space.build(self.data["genome"])
        return _to_module(pg.from_json(self.data["program"], auto_import=True))

    def __repr__(self) -> str:
        return f"LoadedArch({self.decisions})"


def load(path: str | os.PathLike, space: Any = None) -> LoadedArch:
    """Reads an architecture written by ``Arch.save`` / ``Trial.save`` / ``symnas export``."""
    with open(path) as f:
        data = json.load(f)
    if data.get("format") != FORMAT:
        raise ValueError(f"{str(path)!r} is not a symnas architecture file "
                         f"(expected format {FORMAT!r}, got {data.get('format')!r}).")
    return LoadedArch(data, space)
