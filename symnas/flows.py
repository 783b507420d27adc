"""Nested and partitioned flows: searches inside the trials of a search.

**Nested.** An outer search (say over training settings) whose evaluator runs
an inner architecture search is just two ``sn.search`` calls: a search started
inside a trial of a recorded search records into the same store as a child
experiment of that trial, and resumes with it::

    outer = sn.search(hp_space, sn.algorithms.Random(),
                      lambda hp: sn.search(space, sn.algorithms.RegularizedEvolution(),
                                           make_evaluator(hp.value), budget=20).best.reward,
                      budget=4, storage="runs/nested.sqlite")

**Partitioned.** Two parts of one space searched by different algorithms:
PyGlove's ``where=`` predicate on hyper-values picks the decisions the outer
algorithm makes; for each of its proposals an inner algorithm searches the
rest. The evaluator always gets an architecture of the whole space::

    res = sn.flows.partitioned_search(
        space, evaluate, where=lambda h: h.name in ("edge_1_0", "edge_2_0", "edge_3_0"),
        outer=sn.algorithms.RegularizedEvolution(), outer_budget=10,
        inner=sn.algorithms.Random(), inner_budget=5)
    res.best.decisions            # all decisions of the best architecture
"""
from __future__ import annotations

import dataclasses
from typing import Any, Callable

import pyglove as pg

from symnas.arch import Arch
from symnas.result import SearchResult, Trial
from symnas.search import search as run_search
from symnas.trial import evaluator_call


@dataclasses.dataclass
class Partition:
    """A space split by ``where=``: the outer decisions, and the rest given those."""
    space: Any                                   # the whole space
    outer: Any                                   # Space over the selected decisions
    paths: list[tuple[str, str]]                 # (key path in the program, outer decision name)

    def inner(self, outer_arch: Arch) -> Any:
        """The Space of the remaining decisions, with the outer ones fixed by ``outer_arch``."""
        from symnas.space import Space
        chosen = outer_arch.value
        value = self.space.value.sym_clone(deep=True)
        value.rebind({path: pg.clone(chosen[key], deep=True) if isinstance(chosen[key], pg.Symbolic)
                      else chosen[key] for path, key in self.paths}, skip_notification=True)
        return Space(value)

    def whole(self, outer_arch: Arch, inner_arch: Arch) -> Arch:
        """The architecture of the whole space that an outer and an inner choice make."""
        named = dict(zip(outer_arch.space.genome_spec.names, outer_arch.genome))
        named.update(zip(inner_arch.space.genome_spec.names, inner_arch.genome))
        gs = self.space.genome_spec
        missing = [n for n in gs.names if n not in named]
        if missing:
            raise ValueError(f"decisions {missing} are in neither part of the partition; "
                             "partitioned flows support spaces without nested (conditional) choices.")
        return self.space.arch([named[n] for n in gs.names])


def partition(space: Any, where: Callable[[pg.hyper.HyperPrimitive], bool]) -> Partition:
    """Splits ``space`` into the decisions ``where(hyper_value)`` selects and the rest.

    ``where`` is PyGlove's predicate on hyper-values (as in ``pg.template``,
    ``pg.sample`` and ``DynamicEvaluationContext``); e.g.
    ``lambda h: h.name.startswith("edge_1")``.
    """
    from symnas.space import Space
    if not isinstance(space, Space):
        space = Space(space)
    if space._fn is not None:
        raise ValueError("partitioned flows need a symbolic space (sn.Space(program)); a traced "
                         "space makes its choices while it runs.")
    selected = pg.template(space.value, where=where).hyper_primitives
    total = len(pg.template(space.value).hyper_primitives)
    if not selected or len(selected) == total:
        raise ValueError(f"where= selected {len(selected)} of the {total} hyper-values; it must "
                         "select some but not all of them (the rest are the inner search's).")
    outer: dict[str, Any] = {}
    paths: list = []
    for path, h in selected:
        if path.depth == 0:
            raise ValueError("where= selected the whole program; select decisions inside it.")
        key = h.name or str(path).replace(".", "_").replace("[", "_").replace("]", "")
        outer.setdefault(key, h.sym_clone(deep=True))
        paths.append((str(path), key))
    return Partition(space, Space(pg.Dict(outer)), paths)


@dataclasses.dataclass
class PartitionedResult:
    """The outer search's result and the inner result of each outer architecture."""
    outer: SearchResult
    inner: dict[tuple, SearchResult]          # outer genome -> inner search result
    partition: Partition

    @property
    def best(self) -> Trial | None:
        """The best trial of any inner search, with the whole space's architecture."""
        best_outer = self.outer.best
        if best_outer is None:
            return None
        inner = self.inner[best_outer.genome].best
        if inner is None:
            return None
        t = Trial(inner.id, self.partition.whole(best_outer.arch, inner.arch), seed=inner.seed)
        t.metrics, t.reward, t.status = dict(inner.metrics), inner.reward, inner.status
        t.seconds = inner.seconds
        return t


def partitioned_search(space: Any, evaluator: Callable, *, where: Callable, outer: Any,
                       inner: Any, outer_budget: int, inner_budget: int, seed: int | None = None,
                       objective: Any = None, storage: Any = None, resume: bool = False,
                       name: str | None = None, **search_kwargs: Any) -> PartitionedResult:
    """Searches the ``where=`` part of ``space`` with ``outer`` and, for each of its
    proposals, the rest with ``inner``; an outer trial's metrics are its inner search's best.

    With ``storage`` the outer search and every inner one are recorded (inner
    searches as child experiments) and both levels resume.
    """
    part = partition(space, where)
    call = evaluator_call(evaluator)
    inners: dict[tuple, SearchResult] = {}

    def outer_eval(outer_arch: Arch) -> dict:
        def whole_eval(inner_arch: Arch, seed: int | None = None) -> Any:
            return call(part.whole(outer_arch, inner_arch), seed)

        inner_seed = None if seed is None else hash((seed,) + tuple(outer_arch.genome)) % 2 ** 31
        res = run_search(part.inner(outer_arch), inner, whole_eval, inner_budget,
                             seed=inner_seed, objective=objective, progress=False)
        inners[outer_arch.genome] = res
        if res.best is None:
            raise RuntimeError("the inner search found no feasible architecture.")
        return dict(res.best.metrics)

    result = run_search(part.outer, outer, outer_eval, outer_budget, seed=seed,
                            objective=objective, storage=storage, resume=resume, name=name,
                            **search_kwargs)
    if storage is not None:   # outer trials replayed on resume: their inner results are stored
        store = result.store
        exp = next(e for e in store.experiments()
                   if e.name == result.name and e.parent_experiment is None)
        by_trial = {t.id: t for t in result.trials}
        for child in store.children(exp):
            t = by_trial.get(child.parent_trial)
            if t is not None and t.genome not in inners:
                inners[t.genome] = store.result(child, space=part.inner(t.arch))
    return PartitionedResult(result, inners, part)
