"""The algorithm registry: ``symnas.algorithms.get("evolution", population_size=20)``.

:data:`ALGORITHMS` (defined in :mod:`symnas.registry`) is the registry of algorithm
factories, each of kind ``"black-box"`` (a DNA generator the trial loop asks
and tells) or ``"weight-sharing"`` (trains a supernet). Third-party packages
add algorithms through the ``symnas.algorithms`` entry-point group.

Example:

>>> from symnas.algorithms import Algorithm
>>> @register("my-algo", "mine")                  # canonical name "my_algo", alias "mine"
... class MyAlgo(Algorithm):
...     def _ask(self):
...         return self.random_genome()
>>> algo = get("My-Algo", seed=1)
>>> type(algo).__name__, algo.seed, ALGORITHMS.kind("mine")
('MyAlgo', 1, 'black-box')
>>> "my_algo" in names(), "mine" in names(), "mine" in names(aliases=True)   # aliases left out
(True, False, True)
>>> ALGORITHMS.unregister("mine") is MyAlgo      # undoes it (tests, notebooks)
True
"""
from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, TypeVar

from symnas.registry import ALGORITHMS, BLACK_BOX, WEIGHT_SHARING

__all__ = ["ALGORITHMS", "BLACK_BOX", "WEIGHT_SHARING", "get", "lookup", "names", "register"]

F = TypeVar("F", bound=Callable[..., Any])


def register(*names: str, kind: str | None = None,
             aliases: Iterable[str] = ()) -> Callable[[F], F]:
    """Decorator: registers an algorithm factory under a canonical name and aliases.

    ``kind`` is ``"black-box"`` (default) or ``"weight-sharing"``; a class
    flagged ``weight_sharing = True`` is of kind ``"weight-sharing"`` unless
    ``kind`` says otherwise.
    """
    def deco(factory: F) -> F:
        k = kind
        if k is None and getattr(factory, "weight_sharing", False) is True:
            k = WEIGHT_SHARING
        return ALGORITHMS.register(*names, kind=k, aliases=aliases)(factory)
    return deco


get = ALGORITHMS.get
lookup = ALGORITHMS.lookup
names = ALGORITHMS.names
