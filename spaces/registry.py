"""The search-space registry: ``symnas.spaces.get("nasbench201", C=8, N=1)``.

:data:`SPACES` (defined in :mod:`symnas.registry`) is the registry of space factories
(``**settings -> sn.Space``), each registered by a decorator where it is
defined. Third-party packages add spaces through the ``symnas.spaces``
entry-point group.

Example:

>>> import symnas as sn
>>> @register("my-space", "mine")
... def my_space(width: int = 64) -> sn.Space:
...     return sn.Space(dict(width=sn.oneof([width, 2 * width], name="width")))
>>> get("Mine", width=32).arch((1,)).decisions
{'width': 64}
>>> "my_space" in names(), "mine" in names(), "mine" in names(aliases=True)
(True, False, True)
>>> SPACES.unregister("my_space") is my_space      # undoes it (tests, notebooks)
True
"""
from __future__ import annotations

from symnas.registry import SPACES

__all__ = ["SPACES", "get", "lookup", "names", "register"]

register = SPACES.register
get = SPACES.get
lookup = SPACES.lookup
names = SPACES.names
