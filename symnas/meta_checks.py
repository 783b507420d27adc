"""What a program built on the meta device cannot hand to a supernet's configurations.

A supernet builds each configuration's program on the meta device (shapes, no
memory) and runs it on slices of its store, handed in as the program's
parameters and buffers. Anything else holding a tensor stays on the meta device,
and computing with it gives memory that was never written; reading a tensor's
value while building fails. :func:`check_holdable` refuses the first kind at
construction and :func:`value_read` says what to write for the second.

>>> import torch
>>> from torch import nn
>>> with torch.device("meta"):
...     m = nn.Linear(2, 2)
...     m.scale = torch.ones(2)
>>> try:
...     check_holdable(m)
... except ValueError as e:
...     print(str(e)[:45])
Linear.scale (at 'scale') is a tensor kept as
"""
from __future__ import annotations

from typing import Any

import torch
from torch import nn

from symnas.layouts import hooked

__all__ = ["check_holdable", "value_read"]

_PLAIN = (bool, int, float, str, set, frozenset)     # what nn.Module keeps that holds no tensor


def value_read(e: Exception) -> ValueError:
    """The error for a tensor's value read while a program was built on the meta device."""
    return ValueError(
        f"the model's __init__ read a tensor's value ({e}), but a supernet builds its "
        "programs on the meta device, where tensors have shapes and no values. "
        "Compute numbers in __init__ with Python (math.sqrt, not torch.rsqrt), or "
        "register the tensor as a buffer and use it in forward.")


def check_holdable(model: nn.Module) -> None:
    """Refuses what a supernet cannot hand to each configuration, whose programs are built on
    the meta device and would compute with it (memory never written); run on the store, which
    holds every module of every configuration: a tensor kept as a plain attribute
    (public ones in a list or dict too), parameters kept in a plain list, a lazy module.
    Tensors a forward pre-hook recomputes on every call are fine (the hook style
    ``nn.utils.weight_norm``, ``spectral_norm``, ``prune``; a module with a hook that does
    not name its tensor is left alone)."""
    for path, m in model.named_modules():
        where = f"{path}." if path else ""
        if any(isinstance(p, nn.parameter.UninitializedParameter) for p in m._parameters.values()):
            raise ValueError(
                f"{type(m).__name__} (at {path!r}) is a lazy module: a supernet slices weights by "
                "their shapes, which a lazy module has only after its first call. Give its input "
                "size (nn.Linear(in_features, ...) rather than nn.LazyLinear(...)).")
        owned = hooked(m)
        if owned is None:
            continue
        for attr, v in vars(m).items():
            if v is None or isinstance(v, _PLAIN) or attr in owned:
                continue
            if attr[0] == "_":                         # (torch keeps lists of its own there)
                bad = v if isinstance(v, torch.Tensor) else None
            else:
                bad = next((t for t in _leaves(v) if isinstance(t, torch.Tensor)), None)
            if bad is None:
                continue
            if isinstance(bad, nn.Parameter):
                raise ValueError(
                    f"{type(m).__name__}.{attr} (at {where + attr!r}) keeps parameters in a plain "
                    "container: a supernet hands each configuration its parameters under their "
                    "registered names, and the container keeps the program's own (unregistered, "
                    "they would not train either). Use nn.ParameterList or nn.ParameterDict.")
            raise ValueError(
                f"{type(m).__name__}.{attr} (at {where + attr!r}) is a tensor kept as a plain "
                "attribute, which a supernet cannot hand to each configuration. Register "
                f"it as a buffer: self.register_buffer({attr!r}, tensor, persistent=False) "
                "(it then moves with .to(device) too; a list of tensors: one buffer each).")


def _leaves(v: Any, depth: int = 0) -> list:
    """``v``, or the items of the lists, tuples and dicts it nests (a few levels)."""
    if depth < 3 and isinstance(v, (list, tuple)):
        return [x for item in v for x in _leaves(item, depth + 1)]
    if depth < 3 and isinstance(v, dict):
        return [x for item in v.values() for x in _leaves(item, depth + 1)]
    return [v]
