"""Module factories as search candidates: module classes shown by a short name.

A choice over module *classes* that share one constructor signature (the DARTS
ops all take ``(C, stride, affine=True)``) is a choice a supernet can turn into
a mixed op: it calls the chosen factory, or all of them, with the same
arguments. Classes made with the :class:`Named` metaclass print as their
``name`` in decisions and programs, so an architecture reads
``{'normal_edge_0_0': 'sep_conv_3x3'}`` rather than
``"<class 'symnas.spaces.darts_ops.SepConv3x3'>"``.

Example:

>>> import symnas as sn
>>> from torch import nn
>>> class Conv3(nn.Conv2d, metaclass=Named):
...     name = "conv_3x3"
...     def __init__(self, C, stride, affine=True):
...         super().__init__(C, C, 3, stride, padding=1, bias=False)
>>> class Conv5(nn.Conv2d, metaclass=Named):
...     name = "conv_5x5"
...     def __init__(self, C, stride, affine=True):
...         super().__init__(C, C, 5, stride, padding=2, bias=False)
>>> space = sn.Space(dict(op=sn.oneof([Conv3, Conv5], name="op")))
>>> space.arch((0,)).decisions, is_named(Conv5), is_named(nn.Conv2d)
({'op': 'conv_3x3'}, True, False)
"""
from __future__ import annotations

import abc
import inspect
from typing import Any

import pyglove as pg


class Named(abc.ABCMeta):
    """Metaclass: the class formats as its ``name`` attribute (or its class name)."""

    def format(cls, *args, **kwargs) -> str:  # noqa: D401 - PyGlove's Formattable hook
        return cls.__dict__.get("name") or cls.__name__

    # ``repr``/``str`` of the class stay Python's usual "<class '...'>".
    __repr__ = type.__repr__
    __str__ = type.__repr__


# Registered, not inherited: a metaclass that *subclasses* the ABC pg.Formattable makes
# every later isinstance(x, pg.Formattable) on an uncached type raise
# "unbound method type.__subclasses__() needs an argument" (ABCMeta walks subclasses).
pg.Formattable.register(Named)


def is_named(candidate) -> bool:
    """Whether ``candidate`` is a class made with :class:`Named`.

    (``isinstance(x, Named)`` does not work: ``Named`` is itself an ABC's metaclass.)
    """
    return isinstance(candidate, type) and Named in inspect.getmro(type(candidate))


def keep_old_paths(old_module: str, *classes: Any) -> None:
    """Lets ``pg.from_json`` load programs saved when ``classes`` lived in ``old_module``."""
    for cls in classes:
        pg.JSONConvertible.register(f"{old_module}.{cls.__name__}", cls)

