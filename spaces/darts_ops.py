"""The eight DARTS operations as module factories, and the layers cells are made of.

Every op class takes ``(C, stride, affine=True)`` and maps ``C`` channels to
``C`` channels (spatial size divided by ``stride``), so a choice over them can
be made into a mixed op by a supernet. Definitions follow the DARTS paper's
evaluation network (Liu et al., 2019): separable convolutions are applied
twice, dilated ones once, and a strided skip connection is a
:class:`FactorizedReduce`.

Example:

>>> import torch
>>> op = DARTS_OPS[4](16, 1)          # SepConv3x3: 16 -> 16 channels
>>> op.name, op(torch.zeros(2, 16, 8, 8)).shape
('sep_conv_3x3', torch.Size([2, 16, 8, 8]))
>>> OP_NAMES[4]
'sep_conv_3x3'
"""
from __future__ import annotations

import torch
from torch import nn

from .factories import Named


# ---- building blocks ------------------------------------------------------------------
class ReLUConvBN(nn.Sequential):
    """ReLU, convolution (no bias), batch norm."""

    def __init__(self, C_in: int, C_out: int, kernel_size: int, stride: int, padding: int,
                 affine: bool = True):
        super().__init__(nn.ReLU(inplace=False),
                         nn.Conv2d(C_in, C_out, kernel_size, stride, padding, bias=False),
                         nn.BatchNorm2d(C_out, affine=affine))


class FactorizedReduce(nn.Module):
    """Halves the spatial size with two offset 1x1 stride-2 convolutions, concatenated."""

    def __init__(self, C_in: int, C_out: int, affine: bool = True):
        super().__init__()
        if C_out % 2:
            raise ValueError(f"FactorizedReduce needs an even number of output channels, got {C_out}.")
        self.relu = nn.ReLU(inplace=False)
        self.conv_1 = nn.Conv2d(C_in, C_out // 2, 1, stride=2, padding=0, bias=False)
        self.conv_2 = nn.Conv2d(C_in, C_out // 2, 1, stride=2, padding=0, bias=False)
        self.bn = nn.BatchNorm2d(C_out, affine=affine)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(x)
        return self.bn(torch.cat([self.conv_1(x), self.conv_2(x[:, :, 1:, 1:])], dim=1))


class SepConv(nn.Sequential):
    """Two stacked (ReLU, depthwise conv, pointwise conv, BN) blocks; only the first is strided."""

    def __init__(self, C_in: int, C_out: int, kernel_size: int, stride: int, padding: int,
                 affine: bool = True):
        super().__init__(
            nn.ReLU(inplace=False),
            nn.Conv2d(C_in, C_in, kernel_size, stride, padding, groups=C_in, bias=False),
            nn.Conv2d(C_in, C_in, 1, bias=False),
            nn.BatchNorm2d(C_in, affine=affine),
            nn.ReLU(inplace=False),
            nn.Conv2d(C_in, C_in, kernel_size, 1, padding, groups=C_in, bias=False),
            nn.Conv2d(C_in, C_out, 1, bias=False),
            nn.BatchNorm2d(C_out, affine=affine))


class DilConv(nn.Sequential):
    """ReLU, dilated depthwise conv, pointwise conv, BN."""

    def __init__(self, C_in: int, C_out: int, kernel_size: int, stride: int, padding: int,
                 dilation: int, affine: bool = True):
        super().__init__(
            nn.ReLU(inplace=False),
            nn.Conv2d(C_in, C_in, kernel_size, stride, padding, dilation=dilation, groups=C_in,
                      bias=False),
            nn.Conv2d(C_in, C_out, 1, bias=False),
            nn.BatchNorm2d(C_out, affine=affine))


# ---- the eight candidate ops: uniform constructor (C, stride, affine=True) ----------
class Zero(nn.Module, metaclass=Named):
    """``none``: outputs zeros (strided: of the reduced size)."""
    name = "none"

    def __init__(self, C: int, stride: int, affine: bool = True):
        super().__init__()
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride == 1:
            return x.mul(0.0)
        return x[:, :, ::self.stride, ::self.stride].mul(0.0)


class MaxPool3x3(nn.MaxPool2d, metaclass=Named):
    """``max_pool_3x3``."""
    name = "max_pool_3x3"

    def __init__(self, C: int, stride: int, affine: bool = True):
        super().__init__(3, stride=stride, padding=1)


class AvgPool3x3(nn.AvgPool2d, metaclass=Named):
    """``avg_pool_3x3`` (padding excluded from the average)."""
    name = "avg_pool_3x3"

    def __init__(self, C: int, stride: int, affine: bool = True):
        super().__init__(3, stride=stride, padding=1, count_include_pad=False)


class SkipConnect(nn.Module, metaclass=Named):
    """``skip_connect``: identity, or :class:`FactorizedReduce` when strided."""
    name = "skip_connect"

    def __init__(self, C: int, stride: int, affine: bool = True):
        super().__init__()
        self.reduce = FactorizedReduce(C, C, affine) if stride != 1 else None

    @property
    def is_identity(self) -> bool:
        """True when the op is the identity (drop path skips it, as in DARTS)."""
        return self.reduce is None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x if self.reduce is None else self.reduce(x)


class SepConv3x3(SepConv, metaclass=Named):
    """``sep_conv_3x3``."""
    name = "sep_conv_3x3"

    def __init__(self, C: int, stride: int, affine: bool = True):
        super().__init__(C, C, 3, stride, 1, affine)


class SepConv5x5(SepConv, metaclass=Named):
    """``sep_conv_5x5``."""
    name = "sep_conv_5x5"

    def __init__(self, C: int, stride: int, affine: bool = True):
        super().__init__(C, C, 5, stride, 2, affine)


class DilConv3x3(DilConv, metaclass=Named):
    """``dil_conv_3x3`` (dilation 2)."""
    name = "dil_conv_3x3"

    def __init__(self, C: int, stride: int, affine: bool = True):
        super().__init__(C, C, 3, stride, 2, 2, affine)


class DilConv5x5(DilConv, metaclass=Named):
    """``dil_conv_5x5`` (dilation 2)."""
    name = "dil_conv_5x5"

    def __init__(self, C: int, stride: int, affine: bool = True):
        super().__init__(C, C, 5, stride, 4, 2, affine)


#: The DARTS candidate ops, in the DARTS code base's PRIMITIVES order.
DARTS_OPS: tuple[type[nn.Module], ...] = (Zero, MaxPool3x3, AvgPool3x3, SkipConnect,
                                          SepConv3x3, SepConv5x5, DilConv3x3, DilConv5x5)
#: Their names, as genotypes write them. (Each class sets ``name``; its static type, nn.Module, has none.)
OP_NAMES: tuple[str, ...] = tuple(op.name for op in DARTS_OPS)  # type: ignore[attr-defined]
#: ``{name: op class}``.
OPS: dict[str, type[nn.Module]] = dict(zip(OP_NAMES, DARTS_OPS))


def is_identity(op: nn.Module) -> bool:
    """Whether drop path leaves this op alone (an unstrided skip connection, as in DARTS)."""
    return isinstance(op, nn.Identity) or bool(getattr(op, "is_identity", False))


def drop_path(x: torch.Tensor, drop_prob: float) -> torch.Tensor:
    """Zeroes whole samples with probability ``drop_prob`` and rescales the rest."""
    if drop_prob <= 0.0:
        return x
    keep = 1.0 - drop_prob
    mask = torch.empty(x.size(0), 1, 1, 1, dtype=x.dtype, device=x.device).bernoulli_(keep)
    return x / keep * mask
