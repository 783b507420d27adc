"""symnas: symbolic neural architecture search for PyTorch.

Example::

    import symnas as sn
    space = sn.Space(Net(width=sn.oneof([32, 64, 128])))
    result = sn.search(space, sn.algorithms.RegularizedEvolution(), evaluate, budget=50)
    model = result.best.build()
"""
from symnas.hyper import floatv, intv, manyof, oneof, searchable
from symnas.space import Space, trace, Decision
from symnas.arch import Arch, load
from symnas.objective import Objective, maximize, minimize
from symnas.result import SearchResult, Trial
from symnas.search import SearchFailed, sample, search

__version__ = "0.1.0"


def __getattr__(name):  # lazy subpackages keep `import symnas` fast
    import importlib
    if name in ("algorithms", "spaces", "evaluators", "executors", "store", "cli", "data",
                "supernet", "task", "flows", "plots", "progress", "datasets", "demo"):
        return importlib.import_module(f"symnas.{name}")
    if name == "Task":
        return importlib.import_module("symnas.task").Task
    raise AttributeError(f"module 'symnas' has no attribute {name!r}")


__all__ = ["oneof", "manyof", "floatv", "intv", "searchable", "trace", "Space", "Decision",
           "Arch", "load", "Objective", "maximize", "minimize", "SearchResult", "Trial",
           "SearchFailed", "search", "sample"]
