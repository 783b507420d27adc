"""symnas.evaluators: architecture -> metrics (tabular lookups, zero-cost proxies, latency).

- :mod:`~symnas.evaluators.nb201`: the NAS-Bench-201 table (12- and 200-epoch results);
- :mod:`~symnas.evaluators.zero_cost`: zero-cost proxies (NASWOT, synflow, ...) and FLOPs;
- :mod:`~symnas.evaluators.latency`: latency measured on your own device, and a
  lookup table the Space builds itself that predicts it in microseconds.

Training is :class:`symnas.Task`. Submodules load on first use, so
``sn.evaluators.nb201`` works after ``import symnas``.

Example:

>>> import symnas as sn
>>> sn.evaluators.nb201.evaluator()      # the NAS-Bench-201 table as an evaluator
NB201Table(metric='valid200_cifar10', dataset='cifar10', archs=15625)
"""


def __getattr__(name: str):
    import importlib
    try:
        return importlib.import_module(f"{__name__}.{name}")
    except ModuleNotFoundError as e:
        if e.name != f"{__name__}.{name}":
            raise
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}") from None
