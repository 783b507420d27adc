"""One FLOP counter: forward hooks on the layers that cost, under NAS-Bench-201's convention.

:func:`count_flops` runs the model once in eval mode without gradients and
counts, per call of a module:

==================================  ============================================
module                              FLOPs
==================================  ============================================
``Conv1d/2d/3d``                    one per multiply-accumulate (bias not counted)
``ConvTranspose1d/2d/3d``           one per multiply-accumulate
``Linear``                          one per multiply-accumulate (bias not counted)
``BatchNorm1d/2d/3d``, ``SyncBN``   two per element when affine, else one
``AdaptiveAvgPool1d/2d/3d``         one per input element (global pooling)
==================================  ============================================

Nothing else counts (activations, additions, max/avg pooling with a fixed
window, dropout, functional calls made outside these modules). This is the
convention of the NAS-Bench-201 table's ``flops_M_*`` columns: the
``nasbench201`` network of any cell gives exactly the table's figure. Only
shapes are read, so a model built under ``torch.device("meta")`` costs no compute.

Example:

>>> import torch
>>> from torch import nn
>>> net = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8),
...                     nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 10))
>>> count_flops(net, (1, 3, 4, 4))   # conv 4*4*8*27 + BN 2*128 + pool 128 + linear 80
3920
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm
from torch.nn.modules.conv import _ConvNd

__all__ = ["count_flops", "module_flops"]

_POOLS = (nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d, nn.AdaptiveAvgPool3d)


def module_flops(module: nn.Module, inputs: tuple, output: Any) -> int:
    """FLOPs of one call of ``module`` (0 for modules the convention does not count)."""
    if isinstance(module, _ConvNd):
        per = math.prod(module.kernel_size) * (
            module.out_channels if module.transposed else module.in_channels) // module.groups
        return (inputs[0] if module.transposed else output).numel() * per
    if isinstance(module, nn.Linear):
        return output.numel() * module.in_features
    if isinstance(module, _BatchNorm):
        return inputs[0].numel() * (2 if module.affine else 1)
    if isinstance(module, _POOLS):
        return inputs[0].numel()
    return 0


def count_flops(model: nn.Module, inputs: torch.Tensor | Sequence[int] = (1, 3, 32, 32)) -> int:
    """FLOPs of one forward pass of ``model`` on ``inputs`` (a tensor, or a shape of zeros).

    A shape gives zeros on the model's own device. The model runs in eval mode
    without gradients; its train/eval mode is restored and nothing else changes.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"count_flops counts an nn.Module; got {type(model).__name__}.")
    if not isinstance(inputs, torch.Tensor):
        tensors = [*model.parameters(), *model.buffers()]
        device = tensors[0].device if tensors else torch.device("cpu")
        inputs = torch.zeros(*inputs, device=device)
    total = 0

    def hook(module: nn.Module, args: tuple, output: Any) -> None:
        nonlocal total
        total += module_flops(module, args, output)

    counted = (_ConvNd, nn.Linear, _BatchNorm, *_POOLS)
    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, counted)]
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            model(inputs)
    finally:
        model.train(was_training)
        for h in handles:
            h.remove()
    return total
