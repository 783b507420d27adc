"""The space registry: ``symnas.spaces.get("nasbench201", C=8, N=1)``.

Example::

    @register("my_space")
    def my_space(width=64) -> sn.Space: ...

    space = get("my_space", width=32)
    names()   # ['darts', 'mobilenet', 'my_space', 'nasbench201', ...]
"""
from __future__ import annotations

from typing import Any, Callable

_REGISTRY: dict[str, Callable[..., Any]] = {}


def register(*names: str) -> Callable:
    """Decorator: registers a space factory (``**kwargs -> sn.Space``) under one or more names."""
    if not names:
        raise ValueError("register needs at least one name, e.g. @register('nasbench201').")

    def deco(factory: Callable[..., Any]) -> Callable[..., Any]:
        for n in names:
            _REGISTRY[_key(n)] = factory
        return factory
    return deco


def _key(name: str) -> str:
    return str(name).lower().replace("-", "_")


def get(name: str, **kwargs: Any) -> Any:
    """Creates a registered space by name with keyword settings."""
    key = _key(name)
    if key not in _REGISTRY:
        raise KeyError(f"no search space named {name!r}; registered: {', '.join(names())}.")
    return _REGISTRY[key](**kwargs)


def names() -> list[str]:
    """All registered names."""
    return sorted(_REGISTRY)
