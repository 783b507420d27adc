"""Checks on a Space's program that catch choices PyGlove cannot see, and readable labels.

Two things confuse people most when a choice is written in a way the symbolic
layer does not expect:

* a hyper-value inside a ``functools.partial`` (PyGlove does not look into
  partials, so the decision silently disappears and the model later fails
  with ``'OneOf' and 'int'``): :func:`hidden_choices` finds them and
  :func:`check_no_hidden_choices` raises a :class:`HiddenChoice` that says
  what to write instead;
* candidates that print alike (``torch.relu`` and ``torch.tanh`` are both
  ``builtin_function_or_method``): :func:`readable_labels` names each one by
  what it is and keeps the names distinct.

Both depend on PyGlove and the standard library only.

>>> import functools, torch
>>> import pyglove as pg
>>> readable_labels([torch.relu, torch.tanh])
['relu', 'tanh']
>>> readable_labels([3, 5, "same"])
[3, 5, 'same']
>>> value = pg.Dict(op=functools.partial(max, key=pg.oneof([abs, len])))
>>> hidden_choices(value)
['op']
"""
from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

import pyglove as pg

__all__ = ["HiddenChoice", "hidden_choices", "check_no_hidden_choices", "readable_labels"]


class HiddenChoice(ValueError):
    """A choice sits where PyGlove cannot see it (inside a ``functools.partial``)."""


def _has_hyper(obj: Any, depth: int = 0) -> bool:
    if depth > 8:
        return False
    if isinstance(obj, pg.hyper.HyperPrimitive):
        return True
    if isinstance(obj, functools.partial):
        return any(_has_hyper(a, depth + 1) for a in (*obj.args, *obj.keywords.values()))
    if isinstance(obj, (list, tuple)) and not isinstance(obj, pg.Symbolic):
        return any(_has_hyper(a, depth + 1) for a in obj)
    if isinstance(obj, dict) and not isinstance(obj, pg.Symbolic):
        return any(_has_hyper(a, depth + 1) for a in obj.values())
    return False


def hidden_choices(value: Any) -> list[str]:
    """Key paths of the ``functools.partial`` objects in ``value`` that hold a hyper-value."""
    found: list[str] = []

    def visit(path: str, v: Any) -> None:
        if isinstance(v, functools.partial):
            if _has_hyper(v):
                found.append(path or "<root>")
            return
        if isinstance(v, pg.hyper.HyperPrimitive):
            for i, c in enumerate(getattr(v, "candidates", ())):
                visit(f"{path}[={i}]", c)
            return
        if isinstance(v, pg.Symbolic):
            for k, x in v.sym_items():
                visit(f"{path}.{k}" if path else str(k), x)

    visit("", value)
    return found


def check_no_hidden_choices(value: Any) -> None:
    """Raises :class:`HiddenChoice` naming each ``functools.partial`` that hides a choice."""
    paths = hidden_choices(value)
    if paths:
        raise HiddenChoice(
            f"a choice is hidden inside functools.partial at {', '.join(repr(p) for p in paths)}: "
            "PyGlove does not look inside partials, so that decision would silently drop out of "
            "the space (and the model would fail later with \"'OneOf' and 'int'\"). Make the "
            "factory searchable instead, e.g. `@sn.searchable def conv(c_in, c_out, kernel_size=3): "
            "return nn.Conv2d(c_in, c_out, kernel_size)` and pass "
            "`conv.partial(kernel_size=sn.oneof([3, 5]))`, or pass the choice as an argument of "
            "your @sn.searchable class.")


def _name_of(c: Any) -> str | None:
    if isinstance(c, type):
        named = getattr(c, "name", None)
        return named if isinstance(named, str) else c.__qualname__
    fn = getattr(c, "__name__", None)
    if callable(c) and isinstance(fn, str) and fn != "<lambda>":
        return fn
    if isinstance(c, functools.partial):
        inner = _name_of(c.func)
        return f"partial({inner})" if inner else None
    return None


def _qualified(c: Any) -> str | None:
    mod = getattr(c, "__module__", None) or getattr(type(c), "__module__", None)
    name = getattr(c, "__qualname__", None) or getattr(c, "__name__", None)
    if mod and name:
        return f"{mod.replace('torch._C._VariableFunctions', 'torch')}.{name}"
    return None


def readable_labels(candidates: Sequence[Any], base: Sequence[Any] | None = None) -> list:
    """A distinct, readable label per candidate (``base``: labels to keep where they are fine).

    Numbers and strings stay as they are; classes and functions are named by
    their name; module instances by their class; labels that would still
    collide get their module path, then their index.
    """
    labels: list = []
    for i, c in enumerate(candidates):
        b = base[i] if base is not None and i < len(base) else None
        if isinstance(c, (bool, int, float, str)) or c is None:
            labels.append(c)
        elif b is not None and not _vague(b):
            labels.append(b)
        else:
            name = _name_of(c)
            if name is None and hasattr(c, "__class__") and not isinstance(c, (list, tuple, dict)):
                name = type(c).__name__ if type(c).__module__ != "builtins" else None
            labels.append(name if name is not None else (b if b is not None else f"#{i}"))
    seen: dict[Any, int] = {}
    for lab in labels:
        key = repr(lab)
        seen[key] = seen.get(key, 0) + 1
    if all(n == 1 for n in seen.values()):
        return labels
    out = []
    for i, (lab, c) in enumerate(zip(labels, candidates)):
        if seen[repr(lab)] > 1:
            q = _qualified(c)
            lab = q if q and sum(1 for x in candidates if _qualified(x) == q) == 1 else f"{lab}#{i}"
        out.append(lab)
    return out


def _vague(label: Any) -> bool:
    text = str(label)
    return text.startswith("#") or "builtin_function_or_method" in text or text.startswith("<")
