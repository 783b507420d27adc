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

import copyreg
import sys
import warnings
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


def _warn_single(kind: str, candidates: list, name: str | None) -> None:
    if len(candidates) == 1:
        label = f"(name={name!r}) " if name else ""
        warnings.warn(f"sn.{kind} {label}has one candidate, {candidates[0]!r}, so it is not a "
                      "decision: every architecture gets that value. Pass the value itself, "
                      "or give two or more candidates.", UserWarning, stacklevel=3)


def _ordered_hints(kind: str, hints: Any, ordered: bool | None) -> Any:
    """``hints`` with the ``ordered`` flag that :mod:`symnas.genome` reads (None: decided by the values)."""
    if ordered is None:
        return hints
    if not isinstance(ordered, bool):
        raise TypeError(f"sn.{kind}(ordered=...) takes True, False or None, got {ordered!r}.")
    if hints is None:
        return {"ordered": ordered}
    if isinstance(hints, dict):
        return {**hints, "ordered": ordered}
    raise TypeError(f"sn.{kind}(ordered=...) stores the flag in hints, which must then be a dict "
                    f"(got {type(hints).__name__}); pass hints as a dict or leave ordered=None.")


def oneof(candidates: Sequence[T], *, name: str | None = None, ordered: bool | None = None,
          hints: Any = None) -> T:
    """One of the candidates. Candidates may hold choices of their own (nested).

    In traced code a candidate may be a zero-argument lambda; only the chosen
    one runs. Choices with the same ``name`` are one decision. A single
    candidate is no decision: it warns.

    A choice over numbers is *ordered* (algorithms may treat 40 as lying
    between 32 and 48); ``ordered=False`` makes it a set of unrelated
    categories, ``ordered=True`` orders any candidates by their list position.
    """
    candidates = _check_candidates("oneof", candidates, name)
    _warn_single("oneof", candidates, name)
    return pg.oneof(candidates, name=name, hints=_ordered_hints("oneof", hints, ordered))


def manyof(k: int, candidates: Sequence[T], *, distinct: bool = True, sorted: bool = False,
           name: str | None = None, ordered: bool | None = None, hints: Any = None) -> list[T]:
    """``k`` of the candidates, distinct and/or sorted as asked (``ordered`` as in :func:`oneof`)."""
    candidates = _check_candidates("manyof", candidates, name)
    if k < 1 or (distinct and k > len(candidates)):
        raise ValueError(f"sn.manyof({k}, ...) cannot pick {k} {'distinct ' if distinct else ''}"
                         f"items from {len(candidates)} candidates.")
    return pg.manyof(k, candidates, choices_distinct=distinct, choices_sorted=sorted,
                     name=name, hints=_ordered_hints("manyof", hints, ordered))


def floatv(min_value: float, max_value: float, *, scale: str | None = None,
           name: str | None = None, hints: Any = None) -> float:
    """A float in ``[min_value, max_value]``; ``scale`` is None, 'linear', 'log' or 'rlog'.

    Algorithms sample and move floats uniformly on the scale: with
    ``scale='log'`` half the samples fall below the geometric midpoint.
    """
    if not min_value < max_value:
        raise ValueError(f"sn.floatv needs min_value < max_value, got {min_value} and {max_value}.")
    if scale in ("log", "rlog") and min_value <= 0:
        raise ValueError("sn.floatv(scale='log') needs min_value > 0.")
    return pg.floatv(min_value, max_value, scale=scale, name=name, hints=hints)


def intv(min_value: int, max_value: int, *, name: str | None = None, ordered: bool | None = None,
         hints: Any = None) -> int:
    """An int in ``[min_value, max_value]`` (both included): an ordered choice of those ints."""
    if not int(min_value) <= int(max_value):
        raise ValueError(f"sn.intv needs min_value <= max_value, got {min_value} and {max_value}.")
    candidates = list(range(int(min_value), int(max_value) + 1))
    _warn_single("intv", candidates, name)
    return pg.oneof(candidates, name=name, hints=_ordered_hints("intv", hints, ordered))


def searchable(cls_or_fn: Callable) -> Callable:
    """Makes an existing ``nn.Module`` class or builder function accept hyper-values.

    The class body stays unchanged: arguments that hold choices defer
    ``__init__`` until an architecture is materialized. A function becomes a
    symbolic functor whose call builds the module. Built modules are of the
    class as written (``Space.build`` unwraps them, see :func:`to_module`), and
    ``isinstance(model, Net)`` holds for them.
    """
    out = pg.symbolize(cls_or_fn)
    if isinstance(cls_or_fn, type) and out.__dict__.get("sym_wrapped_cls") is cls_or_fn:
        out.__class__ = _searchable_meta(type(out))
    return out


_METAS: dict[type, type] = {}


def _searchable_meta(meta: type) -> type:
    """``meta`` (PyGlove's wrapper metaclass) plus: the unwrapped user class's instances count."""
    if meta not in _METAS:
        def __instancecheck__(cls: Any, obj: Any) -> bool:
            if meta.__instancecheck__(cls, obj):  # type: ignore[call-arg]
                return True
            user = cls.__dict__.get("sym_wrapped_cls")
            return user is not None and isinstance(obj, user)
        def __call__(cls: Any, *args: Any, **kwargs: Any) -> Any:
            for key, v in (*enumerate(args), *kwargs.items()):
                if isinstance(v, tuple) and any(isinstance(x, pg.hyper.HyperPrimitive) for x in v):
                    raise ValueError(
                        f"{cls.__name__}(...): argument {key!r} is a tuple holding a choice; "
                        "PyGlove does not look inside tuples, so the choice would reach "
                        "__init__ unmade (\"'OneOf' and 'int'\"). Write a list instead, e.g. "
                        "widths=[sn.oneof([4, 8]), sn.oneof([8, 16])].")
            return meta.__call__(cls, *args, **kwargs)  # type: ignore[call-arg]
        _METAS[meta] = type(f"Searchable{meta.__name__}", (meta,),
                            {"__instancecheck__": __instancecheck__, "__call__": __call__,
                             "__module__": __name__})
    return _METAS[meta]


# ---- from a materialized program back to the user's classes ------------------------------
# ``searchable`` wraps a class in a PyGlove symbolic subclass (``Symbolic[Net]``); building an
# architecture runs the user's ``__init__`` on such a wrapper. ``to_module`` hands back the
# user's class itself: every wrapper in the module tree becomes an instance of the class it
# wraps (the same object, weights, hooks and attributes; PyGlove's bookkeeping dropped). So
# ``type(model).__name__`` is ``"Net"``, ``print(model)`` shows the layers, and
# ``copy.deepcopy(model)`` copies the weights (a wrapper would rebuild itself with new ones).
try:  # torch is a hard dependency, imported lazily for fast CLI start-up
    from torch import nn
except ImportError:  # pragma: no cover
    nn = None  # type: ignore


def to_module(value: Any) -> Any:
    """Calls a symbolic builder function; turns symbolic wrappers in a module into user classes.

    A value that is not a module (a dict of hyperparameters, say) is returned as it is.
    """
    if isinstance(value, pg.Functor):
        value = value()
    if nn is not None and isinstance(value, nn.Module):
        return plain(value)
    return value


def plain(module: nn.Module) -> nn.Module:
    """Turns every symbolic class wrapper in ``module``'s tree into its user class, in place."""
    _check_initialized(module)
    for m in list(module.modules()):
        _check_no_bound_call(m)
        _unwrap(m)
    return module


def bound_call_fix(value: Any) -> str:
    """What to write when ``value``, a call of a searchable function, was bound, not run."""
    name = type(value).__name__
    return (f"Calling the searchable function `{name}` with arguments binds them and returns a "
            f"symbolic call that runs only when called again; as a layer factory, pass "
            f"`{name}.partial()`, which runs when called.")


def _check_no_bound_call(m: Any) -> None:
    """Raises when an attribute of module ``m`` is a searchable function's bound call (the
    function given bare as a factory: ``block(16)`` then returns ``wide(c=16)``, not a layer)."""
    for attr, v in vars(m).items():
        if isinstance(v, pg.Functor) and not v.sym_partial:
            raise ValueError(f"{type(m).__name__}.{attr} is {type(v).__name__}(...), not the layer "
                             "it would build. " + bound_call_fix(v))


def _check_initialized(m: Any) -> None:
    """Raises when ``m`` is a wrapper whose ``__init__`` PyGlove never ran: an argument is a
    partial object (``SearchableClass.partial(...)``), which PyGlove holds back until complete."""
    if "sym_wrapped_cls" not in type(m).__dict__ or m.__dict__.get("_wrapped_cls_initialized", True):
        return
    partial = [k for k, v in m.sym_init_args.items() if isinstance(v, pg.Symbolic) and v.sym_partial]
    raise ValueError(f"{type(m).__name__}(...) was never built: PyGlove holds back __init__ while "
                     f"an argument ({', '.join(partial) or '?'}) is a partial object. "
                     + PARTIAL_CLASS_FIX)


#: what to write instead of ``SearchableClass.partial(...)`` as a layer factory
PARTIAL_CLASS_FIX = (
    "A searchable class's `.partial(...)` is not a factory to call; pass a searchable function "
    "instead, e.g. `@sn.searchable def conv(c_in, c_out, k=3): return ConvK(c_in, c_out, k)` "
    "and `op=conv.partial(k=sn.oneof([3, 5]))`.")


def _unwrap(m: Any) -> None:
    cls = type(m)
    user = cls.__dict__.get("sym_wrapped_cls")   # set on pg.symbolize's wrapper classes only
    if user is None or not m.__dict__.get("_wrapped_cls_initialized", False):
        return  # a subclass of a wrapper, or a wrapper whose __init__ never ran: keep it
    for key in m.__dict__.get("_wrapper_symbolic_attrs", ()):
        m.__dict__.pop(key, None)
    m.__class__ = user
    picklable(user, cls)


def picklable(user: type, wrapper: type) -> None:
    """Lets instances of ``user``, the class a ``@sn.searchable`` ``wrapper`` wraps, pickle
    and deepcopy: its name holds the wrapper, so they are found through the wrapper."""
    if user not in _WRAPPER_OF and _reachable(wrapper) and _default_reduce(user):
        _WRAPPER_OF[user] = wrapper
        copyreg.pickle(user, _reduce_plain)


_WRAPPER_OF: dict[type, type] = {}


def _default_reduce(user: type) -> bool:
    """True unless the user's class pickles itself its own way (then it is left to do so)."""
    return (getattr(user, "__reduce_ex__", None) is object.__reduce_ex__
            and getattr(user, "__reduce__", None) is object.__reduce__)


def _reachable(cls: type) -> bool:
    obj: Any = sys.modules.get(cls.__module__)
    for part in cls.__qualname__.split("."):
        obj = getattr(obj, part, None)
    return obj is cls


def _reduce_plain(obj: Any) -> tuple:
    reduced = object.__reduce_ex__(obj, 4)   # (copyreg.__newobj__, (cls, ...), state, ...)
    assert isinstance(reduced, tuple)
    _, args, *rest = reduced
    return (_new_plain, (_WRAPPER_OF[type(obj)], *args[1:]), *rest)


def _new_plain(wrapper: type, *args: Any) -> Any:
    """Unpickles an instance of the user class that ``wrapper`` (a ``@sn.searchable``) wraps."""
    user = wrapper.__dict__["sym_wrapped_cls"]
    return user.__new__(user, *args)
