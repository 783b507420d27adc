"""Size baselines: parameters and FLOPs (both in millions), the proxies every study compares to.

``flops`` is :func:`symnas.flops.count_flops` for one example of the batch's
shape: multiply-accumulates of convolutions and linear layers, two per element
of an affine BatchNorm, one per element entering global average pooling, the
convention of NAS-Bench-201's ``flops_M_*`` columns (exact on its cells).

Example:

>>> import torch
>>> from symnas.spaces.nasbench201_space import build
>>> model = build(6111)                          # the best NAS-Bench-201 cell
>>> params(model), flops(model, torch.zeros(2, 3, 32, 32))   # the table's params_M, flops_M
(1.073466, 154.800768)
"""
from __future__ import annotations

from torch import nn

from symnas.flops import count_flops

from ._zc_common import split_batch


def params(model: nn.Module, batch=None) -> float:
    """Number of parameters in millions (``batch`` is not used)."""
    if not isinstance(model, nn.Module):
        raise TypeError(f"params scores an nn.Module; got {type(model).__name__}.")
    return sum(p.numel() for p in model.parameters()) / 1e6


def flops(model: nn.Module, batch) -> float:
    """FLOPs of one example of the batch, in millions (:func:`symnas.flops.count_flops`)."""
    if not isinstance(model, nn.Module):
        raise TypeError(f"flops scores an nn.Module; got {type(model).__name__} "
                        "(build the architecture first: arch.build()).")
    x, _ = split_batch(batch, "flops")
    return count_flops(model, tuple(x[:1].shape)) / 1e6
