"""Size baselines: parameters and FLOPs (both in millions), the proxies every study compares to.

``flops`` counts multiply-accumulates of Conv2d and Linear layers (plus their
biases) for one example of the batch's shape, the convention NAS-Bench-201
reports (``flops_M_*`` columns).

Example::

    from symnas.evaluators.zero_cost import params, flops
    params(model, (x, y)), flops(model, (x, y))   # (1.53, 220.1)
"""
from __future__ import annotations

from torch import nn

from ._zc_common import forward_with_hook, split_batch, working_copy


def params(model: nn.Module, batch=None) -> float:
    """Number of parameters in millions (``batch`` is not used)."""
    if not isinstance(model, nn.Module):
        raise TypeError(f"params scores an nn.Module; got {type(model).__name__}.")
    return sum(p.numel() for p in model.parameters()) / 1e6


def flops(model: nn.Module, batch) -> float:
    """Multiply-accumulates of Conv2d/Linear layers for one example, in millions."""
    x, _ = split_batch(batch, "flops")
    net = working_copy(model, x.device).eval()
    total = [0]

    def hook(m: nn.Module, inp, out):   # multiply-adds per output element, + 1 for a bias
        per_out = (m.in_channels // m.groups) * m.kernel_size[0] * m.kernel_size[1] \
            if isinstance(m, nn.Conv2d) else m.in_features
        total[0] += out.numel() * (per_out + (1 if m.bias is not None else 0))

    layers = [m for m in net.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    forward_with_hook(net, layers, hook, x[:1])
    return total[0] / 1e6
