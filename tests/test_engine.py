"""The one trial path: inline executor and memory store as objects, observers, fail-at-once."""
from __future__ import annotations

import logging
import sqlite3

import pyglove as pg
import pytest

import symnas as sn
from symnas import executors
from symnas.engine import ConfigurationError
from symnas.protocols import Executor, SearchAlgorithm, Store
from symnas.store import MemoryStore


def grid():
    return sn.Space({"a": sn.oneof([0, 1, 2, 3]), "b": sn.oneof([0, 1, 2])})


def score(arch):
    return float(arch.genome[0] * 3 + arch.genome[1])


def test_the_inline_executor_and_the_memory_store_are_objects_of_their_protocols():
    inline = executors.get("inline")
    assert isinstance(inline, Executor) and inline.slots == 1
    assert isinstance(executors.get("process:2"), Executor)
    result = sn.search(grid(), "random", score, budget=5, seed=0)
    assert isinstance(result.store, MemoryStore) and isinstance(result.store, Store)
    [exp] = result.store.experiments()
    assert (exp.done, exp.failed, exp.running) == (5, 0, 0)
    rows = result.store.trials(exp)
    assert [r.genome for r in rows] == [list(t.genome) for t in result.trials]
    assert [r.reward for r in rows] == [t.reward for t in result.trials]


def test_a_search_inside_a_trial_is_its_child_in_the_memory_store():
    inner_names = []

    def outer(arch):
        inner = sn.search(grid(), "random", score, budget=3, seed=arch.genome[0])
        inner_names.append(inner.name)
        return inner.best.reward

    result = sn.search(sn.Space({"s": sn.oneof([0, 1])}), "random", outer, budget=2, seed=0)
    exps = result.store.experiments()
    children = result.store.children(exps[0])
    assert len(children) == 2 and all(c.done == 3 for c in children)
    assert sorted(c.parent_trial for c in children) == [0, 1]
    assert sorted(c.name for c in children) == sorted(inner_names)


def test_callbacks_see_every_trial_in_the_order_the_record_has_them():
    seen = []
    result = sn.search(grid(), "evolution", score, budget=12, seed=1,
                       callbacks=[lambda t: seen.append((t.id, t.status, t.reward))])
    assert seen == [(t.id, t.status, t.reward) for t in result.trials]


def test_a_pyglove_generator_is_adapted_to_the_protocol():
    gen = pg.evolution.regularized_evolution(population_size=4, tournament_size=2)
    result = sn.search(grid(), gen, score, budget=10, seed=0)
    assert isinstance(result.algorithm, pg.DNAGenerator)
    assert not isinstance(result.algorithm, SearchAlgorithm)
    assert len(result.trials) == 10   # repeats are answered from the record, and told too
    assert result.algorithm.num_feedbacks == result.algorithm.num_proposals >= 10


def test_an_objective_typo_stops_the_search_at_its_first_trial(tmp_path):
    calls = []

    def evaluate(arch):
        calls.append(arch.genome)
        return {"acc": score(arch)}

    path = tmp_path / "typo.sqlite"
    with pytest.raises(ConfigurationError, match="objective 'accuracy' is not among") as e:
        sn.search(grid(), "random", evaluate, budget=10, objective="accuracy", storage=path)
    assert len(calls) == 1
    assert len(e.value.result.trials) == 1
    rows = sqlite3.connect(path).execute("SELECT id, status FROM trials").fetchall()
    assert rows == [(0, "failed")]


def test_a_constraint_on_a_metric_never_returned_stops_at_once():
    calls = []

    def evaluate(arch):
        calls.append(1)
        return {"acc": score(arch)}

    with pytest.raises(ConfigurationError, match="params"):
        sn.search(grid(), "random", evaluate, budget=10, objective="acc",
                  constraints=["params <= 1"])
    assert len(calls) == 1


def test_a_nan_is_one_architecture_failing_not_a_configuration_mistake():
    def evaluate(arch):
        return float("nan") if arch.genome[0] == 0 else score(arch)

    result = sn.search(grid(), "random", evaluate, budget=12, seed=0)
    assert result.failed and result.done


def test_a_failed_trial_is_logged_at_warning(caplog):
    def evaluate(arch):
        if arch.genome[0] == 1:
            raise RuntimeError("out of memory, say")
        return score(arch)

    with caplog.at_level(logging.WARNING, logger="symnas"):
        result = sn.search(grid(), "random", evaluate, budget=12, seed=0)
    failed = [t.id for t in result.failed]
    assert failed
    logged = [r for r in caplog.records if r.name == "symnas" and r.levelno == logging.WARNING]
    assert [f"trial {i} failed" in r.getMessage() for r, i in zip(logged, failed)] == \
        [True] * len(failed)
    assert "out of memory, say" in logged[0].getMessage()


def test_the_evaluators_declared_metric_is_the_default_objective():
    class Acc:
        metric = "acc"

        def __call__(self, arch):
            return {"acc": score(arch), "loss": -score(arch)}

    result = sn.search(grid(), "random", Acc(), budget=6, seed=0)
    assert [o.name for o in result.objectives] == ["acc"]
    assert result.best.metrics["acc"] == max(t.metrics["acc"] for t in result.trials)


def test_a_weight_sharing_search_has_no_executor():
    darts = sn.algorithms.get("darts", epochs=0)
    with pytest.raises(ValueError, match="executor"):
        sn.search(sn.spaces.nasbench201(C=4, N=1), darts, sn.Task.cifar10(), executor="process:2")
