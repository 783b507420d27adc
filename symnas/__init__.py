"""symnas: symbolic neural architecture search for PyTorch.

Example::

    import symnas as sn
    space = sn.Space(Net(width=sn.oneof([32, 64, 128])))
    result = sn.search(space, sn.algorithms.RegularizedEvolution(), evaluate, budget=50)
    model = result.best.build()

Every public name is imported on first use (PEP 562), so ``import symnas`` and
the ``symnas ls`` / ``symnas show`` commands load neither PyGlove nor torch.
"""
from __future__ import annotations

import importlib
import sys
import types
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:   # what type checkers and IDEs see; at run time each loads on first use
    from symnas.arch import Arch
    from symnas.hyper import floatv, intv, manyof, oneof, searchable
    from symnas.objective import Objective, maximize, minimize
    from symnas.result import SearchResult, Trial
    from symnas.saved import load
    from symnas.search import SearchFailed, sample, search
    from symnas.space import Decision, Space, trace
    from symnas.supernet import Supernet
    from symnas.task import Task as Task

__version__ = "0.1.0"

# public name -> the module that defines it
_NAMES: dict[str, str] = {
    "Arch": "symnas.arch",
    "floatv": "symnas.hyper", "intv": "symnas.hyper", "manyof": "symnas.hyper",
    "oneof": "symnas.hyper", "searchable": "symnas.hyper",
    "Objective": "symnas.objective", "maximize": "symnas.objective", "minimize": "symnas.objective",
    "SearchResult": "symnas.result", "Trial": "symnas.result",
    "load": "symnas.saved",
    "SearchFailed": "symnas.search", "sample": "symnas.search", "search": "symnas.search",
    "Decision": "symnas.space", "Space": "symnas.space", "trace": "symnas.space",
    "Supernet": "symnas.supernet",
    "Task": "symnas.task",
}
_SUBMODULES = ("algorithms", "spaces", "evaluators", "executors", "store", "cli", "data",
               "supernet", "task", "flows", "plots", "progress", "datasets", "demo")

__all__ = ["oneof", "manyof", "floatv", "intv", "searchable", "trace", "Space", "Decision",
           "Arch", "load", "Objective", "maximize", "minimize", "SearchResult", "Trial",
           "SearchFailed", "search", "sample", "Supernet"]


def __getattr__(name: str) -> Any:
    module = _NAMES.get(name)
    if module is not None:
        value = getattr(importlib.import_module(module), name)
        globals()[name] = value
        return value
    if not name.startswith("__"):        # a submodule (sn.algorithms, sn.store, ...)
        try:
            return importlib.import_module(f"symnas.{name}")
        except ModuleNotFoundError as err:
            if err.name != f"symnas.{name}":
                raise
    raise AttributeError(f"module 'symnas' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*__all__, *_NAMES, *_SUBMODULES, "__version__"})


class _Package(types.ModuleType):
    """The ``symnas`` module: ``sn.search`` stays the function when ``symnas.search`` loads.

    Importing a submodule binds it on its package (``symnas.search = <module>``);
    a name that is both (only ``search``) keeps the function, as it did when
    this package imported everything eagerly.
    """

    def __setattr__(self, name: str, value: Any) -> None:
        if isinstance(value, types.ModuleType) and _NAMES.get(name) == value.__name__:
            value = getattr(value, name)
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package
