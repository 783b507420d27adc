"""Arch: one architecture of a Space, materialized only when asked.

An Arch holds its genome (one number per decision). The PyGlove DNA, the
materialized program and the ``nn.Module`` are computed on first use, so an
evaluator that reads the genome (a table lookup) never pays for a build.

The file format (:data:`FORMAT`) is written here and read by
:mod:`symnas.saved` (``sn.load``): the DNA, genome, readable decisions and the
materialized program as JSON; for traced spaces the function's import name
(``"traced"``); and ``"modules"``, ``{"__main__": "/abs/path/script.py"}``,
when the program's classes or the traced function live in the script that
ran, so another process can import their definitions from that file.

Example::

    arch = space.sample(seed=0)
    arch.decisions          # {'width': 64, 'act': 'GELU', ...}
    model = arch.build()
    arch.save("best.json")
    same = sn.load("best.json").build()
"""
from __future__ import annotations

from typing import Any

import pyglove as pg

from symnas import names
from symnas.archfile import FORMAT, ArchFile
from symnas.genome import Genome

__all__ = ["FORMAT", "ArchFile", "Arch"]


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
        """The DNA when already built (the space then skips rebuilding it), else the genome."""
        return self._dna if self._dna is not None else self.genome

    def program_json(self) -> Any:
        """The materialized program as JSON (traced spaces: the decisions)."""
        return self.value.to_json() if isinstance(self.value, pg.Symbolic) else self.value

    def _dna_json(self) -> Any:
        return self.dna.to_json()

    def _traced_name(self) -> str | None:
        fn = self._traced_fn()
        return names.qualified_name(fn) if fn is not None else None

    def _traced_fn(self) -> Any:
        return getattr(self.space, "_fn", None)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Arch) and other.space is self.space and other.genome == self.genome

    def __hash__(self) -> int:
        return hash(self.genome)

    def __repr__(self) -> str:
        return f"Arch({self.decisions})"

