"""The class scores (logits) in whatever a model's ``forward`` returns.

One rule for training, evaluation, supernets and zero-cost proxies: a tensor is
the logits; a dict gives ``out["logits"]``; from a tuple or list, the first 2-D
tensor with ``num_classes`` columns when the caller knows the class count (so
both ``(logits, aux_logits)`` and ``(features, logits)`` work), else the last
2-D tensor (``(features, logits)``).

Example::

    from symnas.outputs import logits
    loss = F.cross_entropy(logits(model(x), num_classes=10), y)
"""
from __future__ import annotations

from typing import Any

import torch


def logits(out: Any, num_classes: int | None = None) -> torch.Tensor:
    """The logits in a forward's result (see the module docstring for the rule)."""
    if isinstance(out, torch.Tensor):
        return out
    if isinstance(out, dict) and "logits" in out:
        return out["logits"]
    if isinstance(out, (tuple, list)):
        tensors = [o for o in out if isinstance(o, torch.Tensor)]
        two_d = [o for o in tensors if o.dim() == 2]
        if num_classes is not None:
            match = [o for o in two_d if o.shape[-1] == num_classes]
            if match:
                return match[0]
        if two_d:
            return two_d[-1]
        if tensors:
            return tensors[-1]
    raise TypeError(f"cannot find the logits in a model output of type {type(out).__name__}; "
                    "return a tensor, a dict with 'logits', or a (features, logits) tuple "
                    "from forward().")
