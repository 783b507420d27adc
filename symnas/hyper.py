"""Hyper-values: the choices a user marks in a model program.

Thin, validated wrappers over PyGlove's hyper primitives. They work in both
modes: inside a symbolic value (``sn.Space(Net(width=sn.oneof([32, 64])))``)
and inside code run by :func:`symnas.trace`, where each call returns the value
chosen for the current architecture.

Example::

    import symnas as sn
    from torch import nn

    @sn.searchable
    class Net(nn.Module):
        def __init__(self, width=64, act=nn.ReLU):
            super().__init__()
            self.body = nn.Sequential(nn.Linear(8, width), act())

    space = sn.Space(Net(width=sn.oneof([32, 64]), act=sn.oneof([nn.ReLU, nn.GELU])))
"""
from __future__ import annotations

from typing import Any, Callable, Sequence, TypeVar

import pyglove as pg

T = TypeVar("T")


def _check_candidates(kind: str, candidates: Sequence[Any], name: str | None) -> list:
    if isinstance(candidates, (str, bytes)) or not hasattr(candidates, "__iter__"):
        raise TypeError(f"sn.{kind} takes a list of candidates, got {type(candidates).__name__}: "
                        f"write sn.{kind}([a, b, ...]).")
    candidates = list(candidates)
    if not candidates:
        label = f" {name!r}" if name else ""
        raise ValueError(f"sn.{kind}{label} got an empty candidate list: give it at least "
                         "one candidate (two or more to make it a choice).")
    return candidates


def oneof(candidates: Sequence[T], *, name: str | None = None, hints: Any = None) -> T:
    """One of the candidates. Candidates may hold choices of their own (nested).

    In traced code a candidate may be a zero-argument lambda; only the chosen
    one runs. Choices with the same ``name`` are one decision.
    """
    return pg.oneof(_check_candidates("oneof", candidates, name), name=name, hints=hints)


def manyof(k: int, candidates: Sequence[T], *, distinct: bool = True, sorted: bool = False,
           name: str | None = None, hints: Any = None) -> list[T]:
    """``k`` of the candidates, distinct and/or sorted as asked."""
    candidates = _check_candidates("manyof", candidates, name)
    if k < 1 or (distinct and k > len(candidates)):
        raise ValueError(f"sn.manyof({k}, ...) cannot pick {k} {'distinct ' if distinct else ''}"
                         f"items from {len(candidates)} candidates.")
    return pg.manyof(k, candidates, choices_distinct=distinct, choices_sorted=sorted,
                     name=name, hints=hints)


def floatv(min_value: float, max_value: float, *, scale: str | None = None,
           name: str | None = None, hints: Any = None) -> float:
    """A float in ``[min_value, max_value]``; ``scale`` is None, 'linear', 'log' or 'rlog'."""
    if not min_value < max_value:
        raise ValueError(f"sn.floatv needs min_value < max_value, got {min_value} and {max_value}.")
    if scale in ("log", "rlog") and min_value <= 0:
        raise ValueError("sn.floatv(scale='log') needs min_value > 0.")
    return pg.floatv(min_value, max_value, scale=scale, name=name, hints=hints)


def intv(min_value: int, max_value: int, *, name: str | None = None, hints: Any = None) -> int:
    """An int in ``[min_value, max_value]`` (both included), as a categorical choice."""
    if not int(min_value) <= int(max_value):
        raise ValueError(f"sn.intv needs min_value <= max_value, got {min_value} and {max_value}.")
    return pg.oneof(list(range(int(min_value), int(max_value) + 1)), name=name, hints=hints)


def searchable(cls_or_fn: Callable) -> Callable:
    """Makes an existing ``nn.Module`` class or builder function accept hyper-values.

    The class body stays unchanged: arguments that hold choices defer
    ``__init__`` until an architecture is materialized. A function becomes a
    symbolic functor whose call builds the module.
    """
    return pg.symbolize(cls_or_fn)
