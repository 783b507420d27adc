"""The NAS-Bench-201 operations and building blocks, as plain ``nn.Module`` classes.

Every edge operation is a *factory* with one constructor,
``Op(C_in, C_out, stride, affine=True, track_running_stats=True)``, so a
network (or a weight-sharing supernet that mixes them) can call any of them
the same way. The classes are :class:`~symnas.spaces.factories.Named`: a
choice over them reads ``{'edge_1_0': 'nor_conv_3x3', ...}``.

Definitions follow the benchmark's network (Dong & Yang, ICLR 2020):
ReLU-Conv-BN ops whose convolution has a bias only when BN is not affine,
average pooling that does not count padding, and a residual basic block with an
average-pool + 1x1-conv shortcut between stages.

Example:

>>> import torch
>>> from symnas.spaces.nb201_ops import ReLUConvBN3x3
>>> op = ReLUConvBN3x3(16, 16, 1)
>>> op(torch.randn(2, 16, 8, 8)).shape
torch.Size([2, 16, 8, 8])
>>> ReLUConvBN3x3.name
'nor_conv_3x3'
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from .factories import Named
from .nb201_encoding import OP_NAMES

__all__ = ["Zero", "Identity", "ReLUConvBN", "ReLUConvBN1x1", "ReLUConvBN3x3", "AvgPool3x3",
           "FactorizedReduce", "ResNetBasicBlock", "NB201Cell", "OP_NAMES", "OPS", "OPS_BY_NAME",
           "EDGES"]


class _Op(nn.Module, metaclass=Named):
    """Base of the edge ops: ``Op(C_in, C_out, stride, affine, track_running_stats)``."""

    name = ""

    def __init__(self, C_in: int, C_out: int, stride: int, affine: bool = True,
                 track_running_stats: bool = True):
        super().__init__()
        if stride not in (1, 2):
            raise ValueError(f"{type(self).__name__}: stride must be 1 or 2, got {stride}.")
        self.C_in, self.C_out, self.stride = C_in, C_out, stride


class ReLUConvBN(nn.Sequential):
    """ReLU -> Conv2d (bias only without affine BN) -> BatchNorm2d."""

    def __init__(self, C_in: int, C_out: int, kernel_size: int, stride: int, padding: int,
                 dilation: int = 1, affine: bool = True, track_running_stats: bool = True):
        super().__init__(
            nn.ReLU(inplace=False),
            nn.Conv2d(C_in, C_out, kernel_size, stride=stride, padding=padding,
                      dilation=dilation, bias=not affine),
            nn.BatchNorm2d(C_out, affine=affine, track_running_stats=track_running_stats))


class Zero(_Op):
    """``none``: outputs zeros of the right shape (no parameters)."""

    name = "none"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.C_in == self.C_out:
            return x.mul(0.0) if self.stride == 1 else x[:, :, ::self.stride, ::self.stride].mul(0.0)
        n, _, h, w = x.shape
        return x.new_zeros(n, self.C_out, (h + self.stride - 1) // self.stride,
                           (w + self.stride - 1) // self.stride)


class FactorizedReduce(nn.Module):
    """Changes channels (stride 1: 1x1 conv) or halves resolution with two offset 1x1 convs."""

    def __init__(self, C_in: int, C_out: int, stride: int, affine: bool = True,
                 track_running_stats: bool = True):
        super().__init__()
        self.stride = stride
        self.relu = nn.ReLU(inplace=False)
        if stride == 2:
            halves = (C_out // 2, C_out - C_out // 2)
            self.convs = nn.ModuleList(nn.Conv2d(C_in, c, 1, stride=2, padding=0, bias=not affine)
                                       for c in halves)
            self.pad = nn.ConstantPad2d((0, 1, 0, 1), 0.0)
        else:
            self.conv = nn.Conv2d(C_in, C_out, 1, stride=1, padding=0, bias=not affine)
        self.bn = nn.BatchNorm2d(C_out, affine=affine, track_running_stats=track_running_stats)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride == 2:
            x = self.relu(x)
            y = self.pad(x)
            out = torch.cat([self.convs[0](x), self.convs[1](y[:, :, 1:, 1:])], dim=1)
        else:
            out = self.conv(x)
        return self.bn(out)


class Identity(_Op):
    """``skip_connect``: identity; a FactorizedReduce when shape changes."""

    name = "skip_connect"

    def __init__(self, C_in: int, C_out: int, stride: int, affine: bool = True,
                 track_running_stats: bool = True):
        super().__init__(C_in, C_out, stride, affine, track_running_stats)
        self.reduce = None if (stride == 1 and C_in == C_out) else \
            FactorizedReduce(C_in, C_out, stride, affine, track_running_stats)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x if self.reduce is None else self.reduce(x)


class _ConvOp(_Op):
    kernel_size = 1

    def __init__(self, C_in: int, C_out: int, stride: int, affine: bool = True,
                 track_running_stats: bool = True):
        super().__init__(C_in, C_out, stride, affine, track_running_stats)
        k = self.kernel_size
        self.op = ReLUConvBN(C_in, C_out, k, stride, k // 2, 1, affine, track_running_stats)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.op(x)


class ReLUConvBN1x1(_ConvOp):
    """``nor_conv_1x1``: ReLU-Conv1x1-BN."""

    name = "nor_conv_1x1"
    kernel_size = 1


class ReLUConvBN3x3(_ConvOp):
    """``nor_conv_3x3``: ReLU-Conv3x3-BN."""

    name = "nor_conv_3x3"
    kernel_size = 3


class AvgPool3x3(_Op):
    """``avg_pool_3x3``: 3x3 average pooling (padding not counted); 1x1 ReLU-Conv-BN first if C changes."""

    name = "avg_pool_3x3"

    def __init__(self, C_in: int, C_out: int, stride: int, affine: bool = True,
                 track_running_stats: bool = True):
        super().__init__(C_in, C_out, stride, affine, track_running_stats)
        self.preprocess = None if C_in == C_out else \
            ReLUConvBN(C_in, C_out, 1, 1, 0, 1, affine, track_running_stats)
        self.pool = nn.AvgPool2d(3, stride=stride, padding=1, count_include_pad=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(x if self.preprocess is None else self.preprocess(x))


OPS: tuple[type[_Op], ...] = (Zero, Identity, ReLUConvBN1x1, ReLUConvBN3x3, AvgPool3x3)
assert tuple(op.name for op in OPS) == OP_NAMES
OPS_BY_NAME: dict[str, type] = dict(zip(OP_NAMES, OPS))

# (to node, from node) of the 6 edges, in arch-string order.
EDGES: tuple[tuple[int, int], ...] = ((1, 0), (2, 0), (2, 1), (3, 0), (3, 1), (3, 2))


class ResNetBasicBlock(nn.Module):
    """The reduction block between stages: two ReLU-Conv3x3-BN (first strided) plus
    an AvgPool(2) + Conv1x1 shortcut."""

    def __init__(self, C_in: int, C_out: int, stride: int = 2, affine: bool = True,
                 track_running_stats: bool = True):
        super().__init__()
        self.conv_a = ReLUConvBN(C_in, C_out, 3, stride, 1, 1, affine, track_running_stats)
        self.conv_b = ReLUConvBN(C_out, C_out, 3, 1, 1, 1, affine, track_running_stats)
        self.downsample: nn.Module | None
        if stride == 2:
            self.downsample = nn.Sequential(nn.AvgPool2d(2, stride=2, padding=0),
                                            nn.Conv2d(C_in, C_out, 1, 1, 0, bias=False))
        elif C_in != C_out:
            self.downsample = ReLUConvBN(C_in, C_out, 1, 1, 0, 1, affine, track_running_stats)
        else:
            self.downsample = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv_b(self.conv_a(x))
        return y + (x if self.downsample is None else self.downsample(x))


class NB201Cell(nn.Module):
    """A 4-node cell: node i sums ``op_ij(node j)`` over j < i; the output is node 3.

    ``ops`` are 6 factories in :data:`EDGES` order, each called as
    ``op(C, C, 1, affine=..., track_running_stats=...)``.
    """

    def __init__(self, C: int, ops: Sequence, affine: bool = True,
                 track_running_stats: bool = True):
        super().__init__()
        if len(ops) != len(EDGES):
            raise ValueError(f"a NAS-Bench-201 cell takes {len(EDGES)} ops (one per edge), "
                             f"got {len(ops)}.")
        self.edges = nn.ModuleList(
            op(C, C, 1, affine=affine, track_running_stats=track_running_stats) for op in ops)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        nodes = [x]
        k = 0
        for i in range(1, 4):
            s = self.edges[k](nodes[0])
            for j in range(1, i):
                s = s + self.edges[k + j](nodes[j])
            k += i
            nodes.append(s)
        return nodes[-1]
