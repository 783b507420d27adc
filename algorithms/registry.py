"""The algorithm registry: ``symnas.algorithms.get("evolution", population_size=20)``.

Example::

    @register("my_algo")
    class MyAlgo(Algorithm): ...

    algo = get("my_algo", seed=1)
"""
from __future__ import annotations

from typing import Any, Callable

_REGISTRY: dict[str, Callable[..., Any]] = {}


def register(*names: str) -> Callable:
    """Class decorator: registers a factory under one or more names."""
    def deco(factory):
        for n in names:
            _REGISTRY[n.lower()] = factory
        return factory
    return deco


def get(name: str, **kwargs: Any) -> Any:
    """Creates a registered algorithm by name with keyword settings."""
    key = name.lower().replace("-", "_")
    if key not in _REGISTRY:
        raise KeyError(f"no algorithm named {name!r}; registered: {', '.join(names())}.")
    return _REGISTRY[key](**kwargs)


def names() -> list[str]:
    """All registered names."""
    return sorted(_REGISTRY)
