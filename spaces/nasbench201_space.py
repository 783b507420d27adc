"""The NAS-Bench-201 space: one 4-node cell with 6 edges, each one of 5 ops.

The macro network is the benchmark's: a 3x3 conv stem (C channels) + BN; three
stages of N cells with C, 2C and 4C channels; a residual basic block that
halves the resolution between stages; BN-ReLU, global average pooling and a
linear classifier. All 3N cells share one cell choice: the 6 edge decisions
``edge_1_0 .. edge_3_2`` (arch-string order), each ``sn.oneof`` over the op
factories in :data:`OPS` (``none, skip_connect, nor_conv_1x1, nor_conv_3x3,
avg_pool_3x3``). A genome is 6 op indices; the encoding (arch strings,
benchmark indices) is :mod:`symnas.spaces.nb201_encoding`, re-exported here;
the metrics come from :mod:`symnas.evaluators.nb201`.

Built with C=16, N=5 and 10 classes, every one of the 15,625 cells has exactly
the benchmark's parameter count (``benchmarks/nb201_exactness.py``).

Example:

>>> import symnas as sn
>>> from symnas.spaces import nasbench201_space as nb
>>> space = sn.spaces.nasbench201()          # 15,625 architectures
>>> arch = space.arch(nb.arch_str_to_genome(
...     "|nor_conv_3x3~0|+|none~0|nor_conv_3x3~1|+|skip_connect~0|none~1|skip_connect~2|"))
>>> model = arch.build()                     # an nn.Module, 32x32 inputs
>>> nb.index_of(arch), sum(p.numel() for p in model.parameters())
(11472, 559386)
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

import symnas as sn
from symnas.flops import count_flops as _count_flops

from .factories import keep_old_paths
from .nb201_encoding import (
    EDGE_NAMES,
    NUM_ARCHS,
    OP_NAMES,
    arch_str_to_genome,
    genome_of,
    genome_to_arch_str,
    index_of,
)
from .nb201_ops import (
    OPS,
    OPS_BY_NAME,
    AvgPool3x3,
    Identity,
    NB201Cell,
    ReLUConvBN1x1,
    ReLUConvBN3x3,
    ResNetBasicBlock,
    Zero,
)
from .registry import register

__all__ = ["nasbench201", "NB201Net", "OP_NAMES", "OPS", "EDGE_NAMES", "NUM_ARCHS",
           "arch_str_to_genome", "genome_to_arch_str", "index_of", "genome_of", "build", "count_flops",
           "Zero", "Identity", "ReLUConvBN1x1", "ReLUConvBN3x3", "AvgPool3x3"]


def _factory(op: Any) -> Any:
    if isinstance(op, str):
        if op not in OPS_BY_NAME:
            raise ValueError(f"unknown NAS-Bench-201 op {op!r}; ops are {', '.join(OP_NAMES)}.")
        return OPS_BY_NAME[op]
    if not callable(op):
        raise TypeError(f"a NAS-Bench-201 edge op is a module factory "
                        f"op(C_in, C_out, stride, affine=, track_running_stats=) or an op name, "
                        f"got {op!r}.")
    return op


@sn.searchable
class NB201Net(nn.Module):
    """The NAS-Bench-201 network around one cell.

    ``ops``: 6 module factories (or op names) for the edges in
    :data:`EDGE_NAMES` order; each is called
    ``op(C_in, C_out, stride, affine=affine, track_running_stats=track_running_stats)``.
    ``affine=False`` gives BN without affine parameters (as DARTS supernets use).
    """

    def __init__(self, C: int = 16, N: int = 5, num_classes: int = 10,
                 ops: Sequence[Any] = (), affine: bool = True,
                 track_running_stats: bool = True):
        super().__init__()
        if len(ops) != len(EDGE_NAMES):
            raise ValueError(f"NB201Net needs ops=[...] with one op per edge "
                             f"({len(EDGE_NAMES)}: {', '.join(EDGE_NAMES)}), got {len(ops)}.")
        if C < 1 or N < 1 or num_classes < 1:
            raise ValueError(f"NB201Net needs C, N and num_classes >= 1, got {C}, {N}, {num_classes}.")
        factories = [_factory(op) for op in ops]
        self.stem = nn.Sequential(nn.Conv2d(3, C, 3, padding=1, bias=False), nn.BatchNorm2d(C))
        cells: list[nn.Module] = []
        c_prev = C
        for stage, c in enumerate((C, 2 * C, 4 * C)):
            if stage > 0:
                cells.append(ResNetBasicBlock(c_prev, c, 2, True, True))
            cells.extend(NB201Cell(c, factories, affine, track_running_stats) for _ in range(N))
            c_prev = c
        self.cells = nn.ModuleList(cells)
        self.lastact = nn.Sequential(nn.BatchNorm2d(c_prev), nn.ReLU(inplace=True))
        self.global_pooling = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(c_prev, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        for cell in self.cells:
            x = cell(x)
        x = self.global_pooling(self.lastact(x))
        return self.classifier(x.flatten(1))


@register("nasbench201", "nb201", "nas_bench_201")
def nasbench201(C: int = 16, N: int = 5, num_classes: int = 10, affine: bool = True,
                track_running_stats: bool = True) -> sn.Space:
    """The NAS-Bench-201 search space (15,625 architectures) as a symnas Space.

    Example:

    >>> import torch
    >>> space = nasbench201(C=8, N=1)      # a small network, same 15,625 cells
    >>> model = space.sample(seed=0).build()
    >>> space.genome_spec.names
    ('edge_1_0', 'edge_2_0', 'edge_2_1', 'edge_3_0', 'edge_3_1', 'edge_3_2')
    >>> model(torch.zeros(2, 3, 32, 32)).shape
    torch.Size([2, 10])
    """
    net = NB201Net(C=C, N=N, num_classes=num_classes,
                   ops=[sn.oneof(OPS, name=e) for e in EDGE_NAMES],
                   affine=affine, track_running_stats=track_running_stats)
    return sn.Space(net, name="nasbench201")


def build(arch: Any, C: int = 16, N: int = 5, num_classes: int = 10) -> nn.Module:
    """The ``nn.Module`` of a cell given as arch string, genome, DNA, Arch or index.

    Example:

    >>> model = build(6111)   # the best CIFAR-10 cell
    >>> sum(p.numel() for p in model.parameters())
    1073466
    """
    genome = genome_of(arch)
    return NB201Net(C=C, N=N, num_classes=num_classes, ops=[OPS[g] for g in genome])


def count_flops(model: nn.Module, input_shape: Sequence[int] = (1, 3, 32, 32)) -> float:
    """FLOPs in millions under the NAS-Bench-201 table's convention (:func:`symnas.flops.count_flops`).

    One per multiply-add of convolutions and linear layers, two per element of
    an affine BatchNorm (one without affine), one per input element of adaptive
    (global) average pooling; ReLU, additions, zero ops and 3x3/2x2 average
    pooling count nothing. The model runs in eval mode on zeros on its own
    device (a model built under ``torch.device("meta")`` costs no compute).

    Example:

    >>> count_flops(build(6111))   # the table's flops_M_cifar10
    154.800768
    """
    return _count_flops(model, input_shape) / 1e6


# Programs saved before the module was renamed name its classes by the old path.
keep_old_paths("symnas.spaces.nasbench201", NB201Net)
