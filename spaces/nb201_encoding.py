"""The NAS-Bench-201 encoding: arch string <-> genome <-> benchmark index (no torch).

A cell is a *genome*: 6 op indices over :data:`OP_NAMES`, one per edge in
arch-string order (:data:`EDGE_NAMES`: 1<-0, 2<-0, 2<-1, 3<-0, 3<-1, 3<-2). Its
base-5 code (first edge most significant, :func:`genome_code`) maps to the
benchmark's own index through the ``genome`` column of the table packaged
with symnas (``symnas/tables/nb201.npz``), read once on first use.

Both the space (:mod:`symnas.spaces.nasbench201_space`) and the table
evaluator (:mod:`symnas.evaluators.nb201`) use this module.

Example:

>>> arch_str_to_genome("|nor_conv_3x3~0|+|none~0|nor_conv_3x3~1|+|skip_connect~0|none~1|skip_connect~2|")
(3, 0, 3, 1, 0, 1)
>>> genome_to_arch_str((1, 0, 0, 0, 0, 0))
'|skip_connect~0|+|none~0|none~1|+|none~0|none~1|none~2|'
>>> index_of((3, 0, 3, 1, 0, 1)), genome_of(11472)
(11472, (3, 0, 3, 1, 0, 1))
"""
from __future__ import annotations

import functools
import importlib.resources
import os
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

__all__ = ["OP_NAMES", "EDGE_NAMES", "NUM_ARCHS", "PLACE", "TABLE_PATH", "arch_str_to_genome",
           "genome_to_arch_str", "check_genome", "genome_code", "check_space", "to_genome",
           "index_genomes", "code_to_index", "index_of", "genome_of"]

OP_NAMES: tuple[str, ...] = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")
EDGE_NAMES: tuple[str, ...] = ("edge_1_0", "edge_2_0", "edge_2_1", "edge_3_0", "edge_3_1", "edge_3_2")
NUM_ARCHS = len(OP_NAMES) ** len(EDGE_NAMES)  # 15,625
#: Place values of a genome's base-5 code: ``genomes @ PLACE`` gives the codes of an array.
PLACE = len(OP_NAMES) ** np.arange(len(EDGE_NAMES) - 1, -1, -1)
#: The packaged table; its ``genome`` column is the benchmark's index order.
TABLE_PATH = str(importlib.resources.files("symnas") / "tables" / "nb201.npz")

_OP_INDEX = {name: i for i, name in enumerate(OP_NAMES)}


def arch_str_to_genome(arch: str) -> tuple[int, ...]:
    """``'|nor_conv_3x3~0|+|...|'`` -> 6 op indices in :data:`EDGE_NAMES` order."""
    if not isinstance(arch, str):
        raise TypeError(f"an arch string is a str, got {type(arch).__name__}.")
    nodes = arch.strip().split("+")
    genome: list[int] = []
    try:
        if len(nodes) != 3:
            raise ValueError("it needs 3 node groups joined by '+'")
        for i, node in enumerate(nodes, start=1):
            parts = [p for p in node.strip().strip("|").split("|")]
            if len(parts) != i:
                raise ValueError(f"node {i} needs {i} inputs, found {len(parts)}")
            for j, part in enumerate(parts):
                op, _, src = part.partition("~")
                if src != str(j):
                    raise ValueError(f"node {i}'s input {j} reads {part!r}, expected 'op~{j}'")
                if op not in _OP_INDEX:
                    raise ValueError(f"unknown op {op!r}; ops are {', '.join(OP_NAMES)}")
                genome.append(_OP_INDEX[op])
    except ValueError as e:
        raise ValueError(f"cannot read NAS-Bench-201 arch string {arch!r}: {e}. The form is "
                         "'|op~0|+|op~0|op~1|+|op~0|op~1|op~2|'.") from None
    return tuple(genome)


def genome_to_arch_str(genome: Sequence[int]) -> str:
    """6 op indices -> the benchmark's arch string."""
    g = check_genome(genome)
    names = [OP_NAMES[v] for v in g]
    return (f"|{names[0]}~0|+|{names[1]}~0|{names[2]}~1|+"
            f"|{names[3]}~0|{names[4]}~1|{names[5]}~2|")


def check_genome(genome: Sequence[int]) -> tuple[int, ...]:
    """``genome`` as a tuple of 6 ints in 0..4, or a ``TypeError``/``ValueError`` saying why not."""
    try:
        g = tuple(int(v) for v in genome)
    except (TypeError, ValueError):
        raise TypeError(f"a NAS-Bench-201 genome is 6 op indices, got {genome!r}.") from None
    if len(g) != 6 or not all(0 <= v < 5 for v in g):
        raise ValueError(f"a NAS-Bench-201 genome is 6 op indices in 0..4 (one per edge, "
                         f"{', '.join(EDGE_NAMES)}), got {genome!r}.")
    return g


def genome_code(genome: Sequence[int]) -> int:
    """The base-5 code of a genome (first edge most significant), in ``[0, 15625)``."""
    c = 0
    for v in genome:
        c = c * 5 + v
    return c


def check_space(space: Any) -> None:
    """Raises ``ValueError`` unless ``space`` has the NAS-Bench-201 decisions (6 edges of 5 ops)."""
    gs = getattr(space, "genome_spec", None)
    if gs is None:
        return
    if tuple(gs.names) != EDGE_NAMES or tuple(gs.sizes) != (5,) * 6:
        raise ValueError(
            "the NAS-Bench-201 encoding reads architectures of sn.spaces.nasbench201(); this "
            f"Arch comes from a space with decisions {list(gs.names)}.")


def to_genome(x: Any, check: Callable[[Any], None] = check_space) -> tuple[int, ...]:
    """The genome of a genome, arch string, Arch (its space checked with ``check``) or DNA.

    Benchmark indices are not read here (they need the index order): see :func:`genome_of`.
    """
    if isinstance(x, str):
        return arch_str_to_genome(x)
    genome = getattr(x, "genome", None)
    if genome is not None:   # an Arch (or a Trial)
        space = getattr(x, "space", None)
        if space is not None:
            check(space)
        return check_genome(genome)
    if hasattr(x, "to_numbers"):   # a PyGlove DNA
        return check_genome(x.to_numbers())
    return check_genome(x)


# ---- the benchmark's index order ------------------------------------------------------------
@functools.lru_cache(maxsize=4)
def index_genomes(path: str | os.PathLike = TABLE_PATH) -> np.ndarray:
    """The ``(15625, 6)`` genomes in benchmark index order (read-only), from a packed table."""
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(
            f"the NAS-Bench-201 table {path!r} is missing; it ships with symnas "
            "(symnas/tables/nb201.npz): reinstall symnas, or rebuild it from nb201.csv with "
            "symnas.evaluators.nb201.pack_table(csv_path).")
    with np.load(path) as z:
        genomes = z["genome"]
    genomes.setflags(write=False)
    return genomes


def code_to_index(genomes: np.ndarray) -> np.ndarray:
    """The ``(15625,)`` lookup table base-5 code -> index of genomes given in index order."""
    codes = np.asarray(genomes, dtype=np.int64) @ PLACE
    out = np.empty(NUM_ARCHS, dtype=np.int32)
    out[codes] = np.arange(NUM_ARCHS, dtype=np.int32)
    out.setflags(write=False)
    return out


@functools.lru_cache(maxsize=1)
def _index_lists() -> tuple[list[int], list[tuple[int, ...]]]:
    genomes = index_genomes()
    return code_to_index(genomes).tolist(), [tuple(g) for g in genomes.tolist()]


def _as_index(x: Any) -> int | None:
    if isinstance(x, (int, np.integer)) and not isinstance(x, bool):
        i = int(x)
        if not 0 <= i < NUM_ARCHS:
            raise IndexError(f"NAS-Bench-201 indices are 0..{NUM_ARCHS - 1}, got {i}.")
        return i
    return None


def index_of(x: Any) -> int:
    """The benchmark index of a genome, DNA, Arch, arch string (or index)."""
    i = _as_index(x)
    return i if i is not None else _index_lists()[0][genome_code(to_genome(x))]


def genome_of(x: Any) -> tuple[int, ...]:
    """The genome (6 op indices, :data:`EDGE_NAMES` order) of an index, arch string, DNA or Arch."""
    i = _as_index(x)
    return _index_lists()[1][i] if i is not None else to_genome(x)
