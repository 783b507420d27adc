"""How torch layers lay out their tensors, for slicing a smaller configuration from a store.

A smaller configuration of a weight-entangled supernet takes the leading part of
each dim of a store tensor (:mod:`symnas.elastic`), except where the layer lays
the dim out otherwise:

* :func:`centred`: a conv kernel's spatial dims shrink around their centre;
* :func:`packed`: dims that hold equal blocks side by side (attention's q|k|v
  ``in_proj``, a recurrent layer's gates, a bidirectional layer's two
  directions) take the leading part of each block (:class:`Blocks`);
* :func:`roles`: a tensor that stands for another takes that one's layout
  (a parametrization's ``original0``, the hook style ``weight_v`` or
  ``weight_orig`` of ``nn.utils.weight_norm``, ``spectral_norm``, ``prune``);
* :func:`kind`: a module's class before torch's parametrizations gave it one
  of its own.

>>> import torch
>>> from torch import nn
>>> packed(nn.LSTM(4, 8), "weight_ih_l0"), centred(nn.Conv2d(2, 2, 3), "weight", 4)
(((0, 4),), (2, 3))
>>> Blocks(n=2, size=1, full=3).take(torch.arange(6), 0).tolist()      # [a b c | d e f]
[0, 3]
"""
from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable
from typing import cast

import torch
from torch import nn

__all__ = ["Blocks", "centred", "packed", "hooked", "roles", "kind"]


@dataclasses.dataclass(frozen=True)
class Blocks:
    """An index on one dim: the leading ``size`` of each of ``n`` equal blocks of ``full``."""
    n: int
    size: int
    full: int

    def take(self, t: torch.Tensor, dim: int) -> torch.Tensor:
        ix = torch.arange(self.size, device=t.device) + \
            (self.full * torch.arange(self.n, device=t.device))[:, None]
        return t.index_select(dim, ix.flatten())


def kind(m: nn.Module) -> type:
    """``m``'s class, before torch's parametrizations (``weight_norm``) gave each module a
    class of its own."""
    return type(m).__bases__[0] if _parametrized(m) else type(m)


def _parametrized(m: nn.Module) -> bool:      # (parametrize.is_parametrized, without a getattr miss)
    return "parametrizations" in m._modules


def centred(m: nn.Module, name: str, rank: int) -> tuple[int, ...]:
    """The dims of a tensor that shrink around their centre (a conv kernel's spatial dims)."""
    if name == "weight" and isinstance(m, nn.modules.conv._ConvNd):
        return tuple(range(2, rank))
    return ()


def packed(m: nn.Module, name: str) -> tuple[tuple[int, int], ...]:
    """The dims of a tensor of ``m`` that hold equal blocks side by side, as ``(dim, n)``:
    attention's packed q|k|v projection, a recurrent layer's gates (and, in a bidirectional
    layer after the first, its input: both directions' outputs)."""
    if isinstance(m, nn.MultiheadAttention) and name in ("in_proj_weight", "in_proj_bias"):
        return ((0, 3),)
    if isinstance(m, nn.RNNBase) and name.startswith(("weight_ih_l", "weight_hh_l", "bias_")):
        gates = {"LSTM": 4, "GRU": 3}.get(m.mode, 1)
        out: tuple[tuple[int, int], ...] = ((0, gates),) if gates > 1 else ()
        layer = int(name.split("_l", 1)[1].split("_", 1)[0])
        if name.startswith("weight_ih_l") and layer > 0 and m.bidirectional:
            out += ((1, 2),)
        return out
    return ()


def hooked(m: nn.Module) -> set[str] | None:
    """The names of the tensors ``m``'s forward pre-hooks recompute on each call (the hook
    style ``nn.utils.weight_norm``, ``spectral_norm``, ``prune``: from ``weight_v``,
    ``weight_orig``...); ``None`` where a hook is a function that does not say."""
    out: set[str] = set()
    for hook in m._forward_pre_hooks.values():
        name = getattr(hook, "name", None) or getattr(hook, "_tensor_name", None)
        if not isinstance(name, str):
            return None
        out.add(name)
    return out


def roles(modules: Iterable[nn.Module]) -> Callable[[nn.Module, str], tuple[nn.Module, str]]:
    """``role(module, name)``: the module and name the tensor ``name`` of ``module`` acts as,
    for the parametrized modules among ``modules``: a parametrization's ``original`` (its
    ``original0``, ``original1``...) and a pre-hook's ``weight_v``, ``weight_orig``,
    ``weight_mask`` stand for the tensor they make."""
    owner = {id(plist): (m, name) for m in modules if _parametrized(m)
             for name, plist in cast(nn.ModuleDict, m.parametrizations).items()}

    def role(m: nn.Module, n: str) -> tuple[nn.Module, str]:
        if n.startswith("original"):
            return owner.get(id(m), (m, n))
        base = next((b for b in hooked(m) or () if n.startswith(b + "_")), None)
        return (m, base) if base is not None else (m, n)

    return role
