"""Making a supernet's modules: user classes called directly, candidates that record, no init.

* :func:`call_user` calls a ``@sn.searchable`` class's own class (not PyGlove's
  wrapper) with plain values, so a configuration builds in milliseconds.
* :class:`Recording` stands for a chosen module factory and records which
  decision and candidate made each module (the supernet aligns single-path
  programs with its mixed ops through it).
* :func:`no_init` skips weight initialisation for programs whose every weight
  is replaced afterwards (a supernet's slices).

>>> import torch
>>> from torch import nn
>>> with no_init():
...     layer = nn.Linear(2, 2)
>>> origin = {}
>>> made = Recording(nn.Linear, gene=3, k=1, origin=origin, bn={}, kind="module")(2, 4)
>>> origin[id(made)]
(3, 1, 'module')
"""
from __future__ import annotations

import contextlib
import inspect
import threading
from collections.abc import Iterator
from typing import Any

import pyglove as pg
import torch
from torch import nn

from symnas.hyper import plain
from symnas.mixed import _set_bn

__all__ = ["Recording", "call_user", "finish", "no_init"]

_INIT_LOCK = threading.RLock()


@contextlib.contextmanager
def no_init() -> Iterator[None]:
    """Within the block, ``nn.init`` functions and torch layers' ``reset_parameters`` do nothing.

    For programs whose every weight is replaced afterwards (a supernet's slices).
    """
    with _INIT_LOCK:
        saved = {n: f for n, f in vars(nn.init).items()
                 if n.endswith("_") and not n.startswith("_") and callable(f)}
        classes = [c for c in (nn.modules.conv._ConvNd, nn.Linear, nn.modules.batchnorm._NormBase,
                               nn.Embedding, nn.LayerNorm, nn.GroupNorm) if "reset_parameters" in vars(c)]
        resets = {c: vars(c)["reset_parameters"] for c in classes}
        try:
            for n in saved:
                setattr(nn.init, n, _keep)
            for c in classes:
                c.reset_parameters = _nothing      # type: ignore[method-assign]
            yield
        finally:
            for n, f in saved.items():
                setattr(nn.init, n, f)
            for c, f in resets.items():
                c.reset_parameters = f             # type: ignore[method-assign]


def _keep(*args: Any, **kwargs: Any) -> Any:
    """An ``nn.init`` function that leaves its tensor as it is (given by position or, as torch's
    own functions re-dispatch it, as ``tensor=``)."""
    return args[0] if args else kwargs.get("tensor")


def _nothing(self: Any) -> None:
    return None


class Recording:
    """A module factory (or function) chosen by a decision; records which candidate made a module."""

    def __init__(self, factory: Any, gene: int, k: int, origin: dict, bn: dict, kind: str):
        self.factory, self.gene, self.k, self.origin, self.bn = factory, gene, k, origin, bn
        self.kind = kind

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if any(isinstance(a, torch.Tensor) for a in args):
            return self.factory(*args, **kwargs)       # a function on tensors, at forward time
        out = call_with_bn(self.factory, args, kwargs, self.bn)
        if isinstance(out, nn.Module):
            _set_bn(out, **self.bn)
            self.origin[id(out)] = (self.gene, self.k, self.kind)
        return out

    def __getattr__(self, name: str) -> Any:
        if name in ("factory", "gene", "k", "origin", "bn", "kind"):
            raise AttributeError(name)
        return getattr(self.factory, name)

    def __reduce__(self) -> Any:
        return (_identity, (self.factory,))

    def __repr__(self) -> str:
        return repr(self.factory)


def _identity(x: Any) -> Any:
    return x


def call_with_bn(fn: Any, args: tuple, kwargs: dict, bn: dict) -> Any:
    try:
        names = set(inspect.signature(fn).parameters)
    except (TypeError, ValueError):
        names = set()
    keys = [k for k in bn if k in names]
    if not keys:
        return fn(*args, **kwargs)
    bound = inspect.signature(fn).bind_partial(*args, **kwargs)
    for k in keys:
        bound.arguments[k] = bn[k]
    return fn(*bound.args, **bound.kwargs)


def finish(value: Any) -> Any:
    if isinstance(value, pg.Functor):
        value = value()
    if isinstance(value, nn.Module):
        return plain(value)
    return value


def call_user(user: type, kwargs: dict) -> Any:
    """``user(**kwargs)``, with ``*args`` parameters given positionally."""
    try:
        params = list(inspect.signature(user).parameters.values())
    except (TypeError, ValueError):
        return user(**kwargs)
    args: list = []
    rest = dict(kwargs)
    for p in params:
        if p.kind is p.POSITIONAL_ONLY and p.name in rest:
            args.append(rest.pop(p.name))
        elif p.kind is p.VAR_POSITIONAL:
            args.extend(rest.pop(p.name, ()))
    return user(*args, **rest)
