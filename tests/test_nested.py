"""Nested flows (a search in each trial of a search) and partitioned flows (PyGlove where=)."""
from __future__ import annotations

import pytest

import evaluators_for_tests as E
import symnas as sn
from symnas import flows
from symnas.store import Store


def hp_space():
    return sn.Space(dict(shift=sn.oneof([0.0, 1.0, 2.0, 3.0], name="shift")))


def run_nested(path, calls, interrupt_at=None, resume=False):
    """Outer: Random over a shift; each trial: an inner Random search of the toy space."""
    def inner_eval(arch, shift):
        calls.append(arch.genome)
        if interrupt_at is not None and len(calls) == interrupt_at:
            raise KeyboardInterrupt("simulated Ctrl-C in the middle of an inner search")
        return E.score(arch) + shift

    return sn.search(hp_space(), sn.algorithms.Random(),
                     lambda hp: sn.search(E.toy_space(), sn.algorithms.Random(),
                                          lambda a: inner_eval(a, hp.value["shift"]),
                                          budget=4, seed=1).best.reward,
                     budget=3, seed=0, storage=path, name="outer", resume=resume)


def test_nested_searches_are_child_experiments_and_resume_at_both_levels(tmp_path):
    reference = run_nested(tmp_path / "ref.sqlite", [])
    path = tmp_path / "nested.sqlite"
    calls = []
    with pytest.raises(KeyboardInterrupt):
        run_nested(path, calls, interrupt_at=6)          # outer trial 1, inner trial 1
    store = Store.open(path)
    exps = {e.name: e for e in store.experiments()}
    assert set(exps) == {"outer", "outer/0", "outer/1"}
    assert (exps["outer"].done, exps["outer"].running) == (1, 1)
    assert exps["outer/0"].parent_experiment == exps["outer"].id
    assert (exps["outer/0"].parent_trial, exps["outer/1"].parent_trial) == (0, 1)
    assert (exps["outer/0"].done, exps["outer/1"].done, exps["outer/1"].running) == (4, 1, 1)

    calls.clear()
    resumed = run_nested(path, calls, resume=True)
    # outer trial 0 is replayed; outer trial 1 re-runs and its inner search resumes (1 of 4
    # inner trials was done); outer trial 2 runs from scratch
    assert len(calls) == 3 + 4
    assert [t.metrics for t in resumed] == [t.metrics for t in reference]
    assert [t.genome for t in resumed] == [t.genome for t in reference]
    exps = {e.name: e for e in store.experiments()}
    assert set(exps) == {"outer", "outer/0", "outer/1", "outer/2"}
    assert all(e.done == (3 if e.name == "outer" else 4) and e.running == 0 for e in exps.values())
    # the outer trial's reward is its child's best
    for t in resumed:
        child = store.result(f"outer/{t.id}")
        assert child.best.reward == t.reward


def test_a_search_with_its_own_store_is_not_a_child(tmp_path):
    def outer(hp):
        return sn.search(E.toy_space(), sn.algorithms.Random(), E.score, budget=2, seed=0,
                         storage=tmp_path / "own.sqlite", name=f"own{hp.genome[0]}").best.reward
    sn.search(hp_space(), sn.algorithms.Random(), outer, budget=2, seed=0,
              storage=tmp_path / "main.sqlite")
    assert [e.name for e in Store.open(tmp_path / "main.sqlite").experiments()] == ["main"]
    assert all(e.parent_experiment is None for e in Store.open(tmp_path / "own.sqlite").experiments())


def test_partitioned_search_on_the_nb201_table(tmp_path):
    from symnas.evaluators import nb201
    space = sn.spaces.nasbench201()
    table = nb201.evaluator()
    outer_edges = {"edge_1_0", "edge_2_0", "edge_3_0"}
    seen = []

    def evaluate(arch):
        assert arch.space is space and len(arch.genome) == 6     # always the whole space
        seen.append(arch.genome)
        return table(arch)

    kwargs = dict(where=lambda h: h.name in outer_edges, outer_budget=4, inner_budget=3, seed=0,
                  outer=sn.algorithms.RegularizedEvolution(population_size=3, tournament_size=2),
                  inner=sn.algorithms.Random(), storage=tmp_path / "part.sqlite", name="part")
    res = flows.partitioned_search(space, evaluate, **kwargs)
    assert [d.name for d in res.partition.outer.decisions] == ["edge_1_0", "edge_2_0", "edge_3_0"]
    assert len(res.outer) == 4 and len(seen) == 12
    idx = {n: i for i, n in enumerate(nb201.EDGE_NAMES)}
    for t in res.outer:     # each inner search varied only the other edges
        inner = res.inner[t.genome]
        assert len(inner) == 3 and [d.name for d in inner.space.decisions] == \
            ["edge_2_1", "edge_3_1", "edge_3_2"]
        assert t.metrics["valid200_cifar10"] == inner.best.metrics["valid200_cifar10"]
    best = res.best
    assert best.metrics["valid200_cifar10"] == max(table(sn.spaces.nasbench201().arch(g))
                                                   ["valid200_cifar10"] for g in seen)
    assert table(best.arch)["index"] == best.metrics["index"]
    outer_choice = dict(zip(res.partition.outer.genome_spec.names, res.outer.best.genome))
    assert {n: best.arch.genome[idx[n]] for n in outer_edges} == outer_choice
    exps = Store.open(tmp_path / "part.sqlite").experiments()
    assert [e.name for e in exps] == ["part", "part/0", "part/1", "part/2", "part/3"]
    # resuming a finished partitioned search evaluates nothing and gives the same best
    seen.clear()
    again = flows.partitioned_search(space, evaluate, resume=True, **kwargs)
    assert seen == [] and again.best.arch.genome == best.arch.genome


def test_partition_must_select_some_but_not_all_decisions():
    with pytest.raises(ValueError, match="some but not all"):
        flows.partition(E.toy_space(), where=lambda h: False)
    with pytest.raises(ValueError, match="some but not all"):
        flows.partition(E.toy_space(), where=lambda h: True)


def test_inner_searches_in_worker_processes_record_as_children(tmp_path):
    path = tmp_path / "parallel.sqlite"
    result = sn.search(hp_space(), sn.algorithms.Random(), E.nested_eval, budget=4, seed=0,
                       storage=path, executor="process:2")
    store = Store.open(path)
    children = store.children("parallel")
    assert sorted(c.parent_trial for c in children) == [0, 1, 2, 3]
    assert all(c.done == 3 for c in children)
    for t in result:
        assert store.result(f"parallel/{t.id}").best.reward + t.arch.value["shift"] == t.reward
