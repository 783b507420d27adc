"""The DARTS search space (Liu et al., 2019) and its CIFAR evaluation network.

A cell has two inputs (state 0: the output of the cell two back, state 1: of
the previous cell) and 4 intermediate nodes (states 2..5). Node ``j``
(0..3) adds the outputs of two ops applied to two distinct earlier states; the
cell outputs the concatenation of the 4 nodes. The normal and the reduction
cell are chosen independently; every cell of a type uses the same choices.

Decisions, per cell type ``cell`` in ``('normal', 'reduce')``:

* ``{cell}_edge_{i}_{j}``: the op on edge state ``i`` -> node ``j`` (14 edges;
  ``i < j + 2``), a ``sn.oneof`` over :data:`DARTS_OPS`, module *factories*
  with the uniform constructor ``(C, stride, affine=True)``.
* ``{cell}_node_{j}_inputs``: the two input states of node ``j``, a
  ``sn.manyof(2, range(j + 2), distinct=True, sorted=True)``.

The cell builds and runs only the ops of the selected input edges; the op
chosen for an unselected edge has no effect (:func:`genotype_to_genome` sets
it to ``none``; :func:`canonical` gives the one genome of a network). This
split is what weight-sharing search needs: a supernet turns each edge choice
into a mixed op, and replaces each inputs choice with an *inputs weighting*
(the protocol below) so that every one of the 14 edges contributes and a
topology step (DARTS-PT) can score and keep two input edges per node.

Inputs weighting protocol: :class:`CellSpec.inputs` holds, per node ``j``,
either a sequence of 2 distinct state indices (a discrete architecture) or an
object with a ``weights()`` method (e.g. :class:`AllInputs`). ``weights()`` is
called at every forward pass and returns ``None`` (plain sum over all ``j + 2``
input edges) or a 1-D tensor of ``j + 2`` weights ``w``; node ``j`` is then
``sum_i w[i] * op_ij(state_i)``.

The network follows the DARTS code base's ``NetworkCIFAR``: a 3x3 stem with
``3 C`` channels, ``layers`` cells with reduction cells at ``layers // 3`` and
``2 * layers // 3`` (channels doubled there), cell inputs preprocessed by
:class:`ReLUConvBN` (or :class:`FactorizedReduce` after a reduction), global
average pooling and a linear classifier; optional drop path and auxiliary
head (after cell ``2 * layers // 3``).

Example:

>>> import symnas as sn
>>> from symnas.spaces import darts_space as D
>>> space = sn.spaces.darts(C=8, layers=5)       # = D.darts; also sn.spaces.get("darts", ...)
>>> genome = D.genotype_to_genome(space, D.DARTS_V2)
>>> model = space.build(genome)                  # the DARTS (2nd order) cell, small
>>> full = D.build(D.DARTS_V2)                   # C=36, 20 layers, as the DARTS code base counts
>>> sum(p.numel() for p in full.parameters())
3349342
"""
from __future__ import annotations

from collections import namedtuple
from collections.abc import Callable, Sequence
from typing import Any

import pyglove as pg
import torch
from torch import nn

import symnas as sn

from .darts_ops import DARTS_OPS, OP_NAMES, OPS, FactorizedReduce, ReLUConvBN, drop_path, is_identity
from .factories import keep_old_paths
from .registry import register

__all__ = ["DARTS_OPS", "OP_NAMES", "OPS", "Genotype", "DARTS_V1", "DARTS_V2", "CellSpec",
           "AllInputs", "DARTSNetwork", "darts", "build", "genotype_to_genome",
           "genome_to_genotype", "canonical", "normalize", "EDGES", "STEPS", "CELL_TYPES", "INPUTS_HINT"]

#: Intermediate nodes per cell.
STEPS = 4
#: The 14 possible edges ``(i, j)``: state ``i`` -> node ``j`` (state ``j + 2``).
EDGES: tuple[tuple[int, int], ...] = tuple((i, j) for j in range(STEPS) for i in range(j + 2))
CELL_TYPES = ("normal", "reduce")
#: ``hints`` of every inputs choice, so a supernet can find the topology decisions.
INPUTS_HINT = "darts_inputs"
_CONCAT = list(range(2, 2 + STEPS))

Genotype = namedtuple("Genotype", "normal normal_concat reduce reduce_concat")
Genotype.__doc__ = """A DARTS cell pair, as in the DARTS code base.

``normal``/``reduce`` list 8 ``(op name, input state)`` pairs, two per node in
node order; ``*_concat`` are the states concatenated into the output (always
``[2, 3, 4, 5]`` in this space)."""

#: DARTS first order (Liu et al., 2019), as published in the DARTS code base.
DARTS_V1 = Genotype(
    normal=[("sep_conv_3x3", 1), ("sep_conv_3x3", 0), ("skip_connect", 0), ("sep_conv_3x3", 1),
            ("skip_connect", 0), ("sep_conv_3x3", 1), ("sep_conv_3x3", 0), ("skip_connect", 2)],
    normal_concat=[2, 3, 4, 5],
    reduce=[("max_pool_3x3", 0), ("max_pool_3x3", 1), ("skip_connect", 2), ("max_pool_3x3", 0),
            ("max_pool_3x3", 0), ("skip_connect", 2), ("skip_connect", 2), ("avg_pool_3x3", 0)],
    reduce_concat=[2, 3, 4, 5])

#: DARTS second order, the paper's CIFAR-10 result (2.76% error, 3.3 M parameters).
DARTS_V2 = Genotype(
    normal=[("sep_conv_3x3", 0), ("sep_conv_3x3", 1), ("sep_conv_3x3", 0), ("sep_conv_3x3", 1),
            ("sep_conv_3x3", 1), ("skip_connect", 0), ("skip_connect", 0), ("dil_conv_3x3", 2)],
    normal_concat=[2, 3, 4, 5],
    reduce=[("max_pool_3x3", 0), ("max_pool_3x3", 1), ("skip_connect", 2), ("max_pool_3x3", 1),
            ("max_pool_3x3", 0), ("skip_connect", 2), ("skip_connect", 2), ("max_pool_3x3", 1)],
    reduce_concat=[2, 3, 4, 5])


def edge_name(cell: str, i: int, j: int) -> str:
    """Decision name of the op on edge state ``i`` -> node ``j``."""
    return f"{cell}_edge_{i}_{j}"


def inputs_name(cell: str, j: int) -> str:
    """Decision name of node ``j``'s two inputs."""
    return f"{cell}_node_{j}_inputs"


# ---- the inputs weighting protocol ------------------------------------------------------
class AllInputs:
    """Supernet stand-in for node ``j``'s inputs choice: all ``n = j + 2`` input edges are used.

    ``weights`` is ``None`` (plain sum) or a zero-argument callable returning a
    1-D tensor of ``n`` weights, called at every forward pass (so it may read
    architecture parameters or a mask that changes between passes).

    Example:

    >>> alpha = nn.Parameter(torch.zeros(4))
    >>> node_2 = AllInputs(4, weights=lambda: torch.softmax(alpha, 0))
    >>> node_2.weights()
    tensor([0.2500, 0.2500, 0.2500, 0.2500], grad_fn=<SoftmaxBackward0>)
    >>> AllInputs(3).weights() is None    # a plain sum
    True
    """

    def __init__(self, n: int, weights: Callable[[], torch.Tensor | None] | None = None):
        self.n = int(n)
        self._weights = weights

    def weights(self) -> torch.Tensor | None:
        """The per-input weights (or None for a plain sum)."""
        return None if self._weights is None else self._weights()

    def __repr__(self) -> str:
        return f"AllInputs({self.n})"


def _is_weighting(inputs: Any) -> bool:
    return callable(getattr(inputs, "weights", None))


@pg.members([
    ("ops", pg.typing.List(pg.typing.Any(), min_size=len(EDGES), max_size=len(EDGES)),
     "Per edge in EDGES order: an op factory called as factory(C, stride, affine=True)."),
    ("inputs", pg.typing.List(pg.typing.Any(), min_size=STEPS, max_size=STEPS),
     "Per node: 2 distinct input states, or an inputs weighting (see module docstring)."),
])
class CellSpec(pg.Object):
    """One cell type: an op factory per edge and the inputs of each node."""

    def op(self, i: int, j: int) -> Any:
        """The op factory on edge ``i -> j``."""
        return self.ops[EDGES.index((i, j))]


# ---- modules ---------------------------------------------------------------------------
class Cell(nn.Module):
    """A DARTS cell built from a :class:`CellSpec` (see the module docstring)."""

    def __init__(self, spec: CellSpec, C_prev_prev: int, C_prev: int, C: int, reduction: bool,
                 reduction_prev: bool, affine: bool = True):
        super().__init__()
        self.reduction = reduction
        self.preprocess0 = (FactorizedReduce(C_prev_prev, C, affine) if reduction_prev
                            else ReLUConvBN(C_prev_prev, C, 1, 1, 0, affine))
        self.preprocess1 = ReLUConvBN(C_prev, C, 1, 1, 0, affine)
        self.multiplier = STEPS
        self.edges = nn.ModuleDict()
        self._inputs: list[Any] = []
        for j, inputs in enumerate(spec.inputs):
            if _is_weighting(inputs):
                sources = list(range(j + 2))
                self._inputs.append(inputs)
            else:
                sources = [int(i) for i in inputs]
                if len(sources) != 2 or len(set(sources)) != 2 or not all(0 <= i < j + 2 for i in sources):
                    raise ValueError(
                        f"node {j} of a DARTS cell takes 2 distinct input states in 0..{j + 1}, "
                        f"got {list(inputs)!r}; or pass an inputs weighting such as AllInputs({j + 2}).")
                self._inputs.append(tuple(sources))
            for i in sources:
                stride = 2 if reduction and i < 2 else 1
                self.edges[f"{i}_{j}"] = spec.op(i, j)(C, stride, affine)

    def _edge(self, i: int, j: int, x: torch.Tensor, drop_prob: float) -> torch.Tensor:
        op = self.edges[f"{i}_{j}"]
        h = op(x)
        if self.training and drop_prob > 0.0 and not is_identity(op):
            h = drop_path(h, drop_prob)
        return h

    def forward(self, s0: torch.Tensor, s1: torch.Tensor, drop_prob: float = 0.0) -> torch.Tensor:
        states = [self.preprocess0(s0), self.preprocess1(s1)]
        for j, inputs in enumerate(self._inputs):
            if isinstance(inputs, tuple):
                s = sum(self._edge(i, j, states[i], drop_prob) for i in inputs)
            else:
                w = inputs.weights()
                if w is None:
                    s = sum(self._edge(i, j, states[i], drop_prob) for i in range(j + 2))
                else:
                    if w.shape != (j + 2,):
                        raise ValueError(f"inputs weights of node {j} must have shape ({j + 2},), "
                                         f"got {tuple(w.shape)}.")
                    s = sum(w[i] * self._edge(i, j, states[i], drop_prob) for i in range(j + 2))
            states.append(s)
        return torch.cat(states[2:], dim=1)


class AuxiliaryHeadCIFAR(nn.Module):
    """The DARTS auxiliary classifier (expects 8x8 feature maps)."""

    def __init__(self, C: int, num_classes: int):
        super().__init__()
        self.features = nn.Sequential(
            nn.ReLU(inplace=True),
            nn.AvgPool2d(5, stride=3, padding=0, count_include_pad=False),
            nn.Conv2d(C, 128, 1, bias=False), nn.BatchNorm2d(128), nn.ReLU(inplace=True),
            nn.Conv2d(128, 768, 2, bias=False), nn.BatchNorm2d(768), nn.ReLU(inplace=True))
        self.classifier = nn.Linear(768, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x).flatten(1))


@sn.searchable
class DARTSNetwork(nn.Module):
    """The DARTS CIFAR evaluation network over a normal and a reduction :class:`CellSpec`.

    ``affine=False`` gives the cells' batch norms no affine parameters (as DARTS
    supernets use). ``forward`` returns the logits. With ``auxiliary=True`` the auxiliary head
    runs in training mode and its logits are left in ``self.aux_logits`` for the
    loss (DARTS weights them 0.4); it is None otherwise. ``drop_path_prob`` may
    be changed between epochs (DARTS ramps it up linearly).
    """

    def __init__(self, normal: CellSpec, reduce: CellSpec, C: int = 36, layers: int = 20,
                 num_classes: int = 10, auxiliary: bool = False, drop_path_prob: float = 0.0,
                 stem_multiplier: int = 3, affine: bool = True):
        super().__init__()
        if layers < 1 or C < 1:
            raise ValueError(f"DARTSNetwork needs C >= 1 and layers >= 1, got C={C}, layers={layers}.")
        self._layers = layers
        self._auxiliary = auxiliary
        self.drop_path_prob = float(drop_path_prob)
        self.aux_logits: torch.Tensor | None = None
        C_curr = stem_multiplier * C
        self.stem = nn.Sequential(nn.Conv2d(3, C_curr, 3, padding=1, bias=False),
                                  nn.BatchNorm2d(C_curr))
        C_prev_prev, C_prev, C_curr = C_curr, C_curr, C
        self.cells = nn.ModuleList()
        reduction_prev = False
        C_aux = C_prev
        for i in range(layers):
            reduction = i in (layers // 3, 2 * layers // 3)
            if reduction:
                C_curr *= 2
            cell = Cell(reduce if reduction else normal, C_prev_prev, C_prev, C_curr, reduction,
                        reduction_prev, affine)
            self.cells.append(cell)
            reduction_prev = reduction
            C_prev_prev, C_prev = C_prev, cell.multiplier * C_curr
            if i == 2 * layers // 3:
                C_aux = C_prev
        self.auxiliary_head = AuxiliaryHeadCIFAR(C_aux, num_classes) if auxiliary else None
        self.global_pooling = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(C_prev, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.aux_logits = None
        s0 = s1 = self.stem(x)
        for i, cell in enumerate(self.cells):
            s0, s1 = s1, cell(s0, s1, self.drop_path_prob)
            if i == 2 * self._layers // 3 and self.auxiliary_head is not None and self.training:
                self.aux_logits = self.auxiliary_head(s1)
        return self.classifier(self.global_pooling(s1).flatten(1))


# ---- the space -----------------------------------------------------------------------
def _cell_choices(cell: str) -> CellSpec:
    return CellSpec(
        ops=[sn.oneof(list(DARTS_OPS), name=edge_name(cell, i, j)) for i, j in EDGES],
        inputs=[sn.manyof(2, list(range(j + 2)), distinct=True, sorted=True,
                          name=inputs_name(cell, j), hints=INPUTS_HINT) for j in range(STEPS)])


@register("darts")
def darts(C: int = 36, layers: int = 20, num_classes: int = 10, auxiliary: bool = False,
          drop_path_prob: float = 0.0, affine: bool = True) -> sn.Space:
    """The DARTS space over the CIFAR evaluation network (small for search: ``C=8, layers=5``).

    Example:

    >>> space = darts(C=8, layers=5)
    >>> len(space.genome_spec), type(space.sample(seed=0).build()).__name__
    (44, 'DARTSNetwork')
    """
    net = DARTSNetwork(normal=_cell_choices("normal"), reduce=_cell_choices("reduce"), C=C,
                       layers=layers, num_classes=num_classes, auxiliary=auxiliary,
                       drop_path_prob=drop_path_prob, affine=affine)
    return sn.Space(net, name="darts")


# ---- genotypes -------------------------------------------------------------------------
def _check_genotype(genotype: Genotype) -> None:
    if not isinstance(genotype, tuple) or len(genotype) != 4:
        raise TypeError(f"expected a darts.Genotype(normal, normal_concat, reduce, reduce_concat), "
                        f"got {genotype!r}.")
    for cell in CELL_TYPES:
        pairs = list(getattr(genotype, cell))
        concat = list(getattr(genotype, f"{cell}_concat"))
        if concat != _CONCAT:
            raise ValueError(f"genotype.{cell}_concat must be {_CONCAT} in the DARTS space "
                             f"(all 4 nodes), got {concat}.")
        if len(pairs) != 2 * STEPS:
            raise ValueError(f"genotype.{cell} needs {2 * STEPS} (op, input) pairs, two per node; "
                             f"got {len(pairs)}.")
        for k, (op, i) in enumerate(pairs):
            j = k // 2
            if op not in OPS:
                raise ValueError(f"genotype.{cell}[{k}] uses op {op!r}; the DARTS ops are {OP_NAMES}.")
            if not 0 <= i < j + 2:
                raise ValueError(f"genotype.{cell}[{k}]: node {j} takes inputs in 0..{j + 1}, got {i}.")
        for j in range(STEPS):
            if pairs[2 * j][1] == pairs[2 * j + 1][1]:
                raise ValueError(f"genotype.{cell}: node {j}'s two inputs must differ, both are "
                                 f"{pairs[2 * j][1]}.")


def _cell_spec(pairs: Sequence[tuple[str, int]]) -> CellSpec:
    ops = [DARTS_OPS[0]] * len(EDGES)
    inputs = []
    for j in range(STEPS):
        (op_a, a), (op_b, b) = pairs[2 * j], pairs[2 * j + 1]
        ops[EDGES.index((a, j))] = OPS[op_a]
        ops[EDGES.index((b, j))] = OPS[op_b]
        inputs.append([a, b])
    return CellSpec(ops=ops, inputs=inputs)


def build(genotype: Genotype, C: int = 36, layers: int = 20, num_classes: int = 10,
          auxiliary: bool = False, drop_path_prob: float = 0.0) -> DARTSNetwork:
    """The evaluation network of a genotype (defaults: the DARTS CIFAR-10 setting).

    Example:

    >>> model = build(DARTS_V2)      # as the DARTS code base counts
    >>> sum(p.numel() for p in model.parameters())
    3349342
    """
    _check_genotype(genotype)
    return DARTSNetwork(normal=_cell_spec(genotype.normal), reduce=_cell_spec(genotype.reduce),
                        C=C, layers=layers, num_classes=num_classes, auxiliary=auxiliary,
                        drop_path_prob=drop_path_prob)


def _gene_index(space: sn.Space) -> dict[str, list[int]]:
    index: dict[str, list[int]] = {}
    for k, name in enumerate(space.genome_spec.names):
        index.setdefault(name, []).append(k)
    missing = [n for n in (edge_name("normal", 0, 0), inputs_name("reduce", STEPS - 1)) if n not in index]
    if missing:
        raise ValueError(f"this space has no decision {missing[0]!r}: genotype conversion needs a "
                         "DARTS space, made by symnas.spaces.darts(...).")
    return index


def _op_index(space: sn.Space, gene: int) -> dict[str, int]:
    point = space.genome_spec.points[gene]
    return {str(v): k for k, v in enumerate(point.literal_values)}


def genotype_to_genome(space: sn.Space, genotype: Genotype) -> tuple:
    """The canonical genome of a genotype in a DARTS ``space`` (unselected edges: ``none``).

    Example:

    >>> space = darts(C=8, layers=5)
    >>> genome = genotype_to_genome(space, DARTS_V2)
    >>> genome_to_genotype(space, genome).normal[:2]
    [('sep_conv_3x3', 0), ('sep_conv_3x3', 1)]
    >>> normalize(genome_to_genotype(space, genome)) == normalize(DARTS_V2)
    True
    """
    _check_genotype(genotype)
    index = _gene_index(space)
    genome = list(space.genome_spec.canonical([0] * len(space.genome_spec)))
    for cell in CELL_TYPES:
        pairs = getattr(genotype, cell)
        for j in range(STEPS):
            chosen = sorted([pairs[2 * j], pairs[2 * j + 1]], key=lambda p: p[1])
            for gene, (op, i) in zip(index[inputs_name(cell, j)], chosen):
                genome[gene] = i
                edge_gene = index[edge_name(cell, i, j)][0]
                genome[edge_gene] = _op_index(space, edge_gene)[op]
    return space.genome_spec.canonical(genome)


def genome_to_genotype(space: sn.Space, genome: Sequence[int]) -> Genotype:
    """The genotype of a genome (or DNA) of a DARTS ``space``; pairs sorted by input per node."""
    genome = space.arch(genome).genome
    index = _gene_index(space)
    cells = {}
    for cell in CELL_TYPES:
        pairs = []
        for j in range(STEPS):
            for i in sorted(genome[g] for g in index[inputs_name(cell, j)]):
                gene = index[edge_name(cell, i, j)][0]
                op = str(space.genome_spec.points[gene].literal_values[genome[gene]])
                pairs.append((op, int(i)))
        cells[cell] = pairs
    return Genotype(normal=cells["normal"], normal_concat=list(_CONCAT),
                    reduce=cells["reduce"], reduce_concat=list(_CONCAT))


def canonical(space: sn.Space, genome: Sequence[int]) -> tuple:
    """The genome with the ops of unselected edges set to ``none``: one genome per network.

    Example:

    >>> space = darts(C=8, layers=5)
    >>> g1 = genotype_to_genome(space, DARTS_V2)     # node 3 of the normal cell reads states 0, 2
    >>> g2 = list(g1)
    >>> g2[space.genome_spec.names.index(edge_name("normal", 1, 3))] = 4   # an unselected edge
    >>> tuple(g2) == g1, canonical(space, g2) == g1
    (False, True)
    """
    return genotype_to_genome(space, genome_to_genotype(space, genome))


def normalize(genotype: Genotype) -> Genotype:
    """The genotype with each node's two pairs sorted by input (the form genomes give back)."""
    _check_genotype(genotype)

    def cell(pairs):
        out = []
        for j in range(STEPS):
            out += sorted(pairs[2 * j:2 * j + 2], key=lambda p: p[1])
        return [(str(op), int(i)) for op, i in out]
    return Genotype(cell(genotype.normal), list(_CONCAT), cell(genotype.reduce), list(_CONCAT))


# Programs saved before the module was renamed name its classes by the old path.
keep_old_paths("symnas.spaces.darts", CellSpec, DARTSNetwork)
