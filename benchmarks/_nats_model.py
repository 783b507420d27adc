"""NATS-Bench's size-space network written as ordinary PyTorch, its five widths searchable.

The network of NATS-Bench's size space (Dong et al., TPAMI 2021; N = 1 cell per
stage): a 3x3 stem to ``c0``, then cell(c0 -> c0), residual block (c0 -> c1,
stride 2), cell(c1 -> c2), residual block (c2 -> c3, stride 2), cell(c3 -> c4),
BN-ReLU, global pooling and a linear head. Every cell has NATS-Bench's fixed
topology ``|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|
nor_conv_3x3~1|nor_conv_3x3~2|``; edges from the cell's input change ``c_in`` to
``c_out`` (the skip becomes a 1x1 conv + BN when they differ). Nobody annotated
it for a supernet: the widths are plain ints, each a ``sn.oneof`` of 8..64.

>>> space = nats_space()
>>> space.size, space.build([7, 7, 7, 7, 7])(torch.zeros(1, 3, 32, 32)).shape
(32768, torch.Size([1, 10]))
"""
from __future__ import annotations

import torch
from torch import nn

import symnas as sn
from symnas.spaces.nb201_ops import FactorizedReduce, ReLUConvBN, ResNetBasicBlock

WIDTHS = (8, 16, 24, 32, 40, 48, 56, 64)


class Cell(nn.Module):
    """The fixed NATS-Bench cell: node i sums its edges from the nodes before it."""

    def __init__(self, c_in: int, c_out: int):
        super().__init__()
        conv = ReLUConvBN
        self.e10 = conv(c_in, c_out, 3, 1, 1)
        self.e20 = conv(c_in, c_out, 3, 1, 1)
        self.e21 = conv(c_out, c_out, 3, 1, 1)
        self.e30 = nn.Identity() if c_in == c_out else FactorizedReduce(c_in, c_out, 1)
        self.e31 = conv(c_out, c_out, 3, 1, 1)
        self.e32 = conv(c_out, c_out, 3, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n1 = self.e10(x)
        n2 = self.e20(x) + self.e21(n1)
        return self.e30(x) + self.e31(n1) + self.e32(n2)


@sn.searchable
class NatsNet(nn.Module):
    def __init__(self, c0: int = 64, c1: int = 64, c2: int = 64, c3: int = 64, c4: int = 64,
                 num_classes: int = 10):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, c0, 3, padding=1, bias=False), nn.BatchNorm2d(c0))
        self.cells = nn.ModuleList([Cell(c0, c0), ResNetBasicBlock(c0, c1, 2), Cell(c1, c2),
                                    ResNetBasicBlock(c2, c3, 2), Cell(c3, c4)])
        self.lastact = nn.Sequential(nn.BatchNorm2d(c4), nn.ReLU())
        self.classifier = nn.Linear(c4, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        for cell in self.cells:
            x = cell(x)
        return self.classifier(self.lastact(x).mean((2, 3)))


def nats_space(num_classes: int = 10) -> sn.Space:
    """The 32,768 networks; genome ``(i0, ..., i4)`` is the widths' indices in WIDTHS, so
    the table's row is ``sum(i_k * 8 ** (4 - k))``."""
    return sn.Space(NatsNet(**{f"c{k}": sn.oneof(list(WIDTHS), name=f"c{k}") for k in range(5)},
                            num_classes=num_classes))
