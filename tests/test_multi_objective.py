"""Multi-objective search (PyGlove's NSGA-II) and constraints on the real NAS-Bench-201 table."""
from __future__ import annotations

import pytest

import symnas as sn
from symnas import algorithms


@pytest.fixture(scope="module")
def nb201_table(data_dir):
    from symnas.evaluators import nb201
    return nb201.evaluator()


def _dominates(a, b) -> bool:
    return all(x >= y for x, y in zip(a, b)) and any(x > y for x, y in zip(a, b))


def test_nsga2_returns_a_sensible_pareto_front(nb201_table):
    space = sn.spaces.nasbench201()
    objective = ["valid200_cifar10", sn.minimize("params")]
    result = sn.search(space, algorithms.get("nsga2", population_size=10, seed=0), nb201_table,
                       budget=60, seed=0, objective=objective)
    assert len(result) == 60 and all(t.ok for t in result)
    assert all(isinstance(t.reward, tuple) and len(t.reward) == 2 for t in result)
    vec = lambda t: (t.metrics["valid200_cifar10"], -t.metrics["params"])
    front = result.pareto_front()
    assert len(front) >= 3
    # nothing dominates a front member; every other trial is dominated by one
    for t in front:
        assert not any(_dominates(vec(o), vec(t)) for o in result)
    ids = {t.id for t in front}
    for t in result:
        if t.id not in ids:
            assert any(_dominates(vec(f), vec(t)) or vec(f) == vec(t) for f in front)
    # the extremes are on it: the most accurate and the smallest cell
    best_acc = max(t.metrics["valid200_cifar10"] for t in result)
    smallest = min(t.metrics["params"] for t in result)
    assert max(t.metrics["valid200_cifar10"] for t in front) == best_acc
    assert min(t.metrics["params"] for t in front) == smallest
    # sorted by size, accuracy rises along the front
    by_size = sorted(front, key=lambda t: (t.metrics["params"], -t.metrics["valid200_cifar10"]))
    accs = [t.metrics["valid200_cifar10"] for t in by_size]
    assert accs == sorted(accs)


def test_constrained_pareto_front_and_best_respect_the_bound(nb201_table):
    space = sn.spaces.nasbench201()
    result = sn.search(space, algorithms.get("nsga2", population_size=10, seed=1), nb201_table,
                       budget=40, seed=1, objective=["valid200_cifar10", sn.minimize("flops")],
                       constraints=["params <= 0.4"])
    assert any(t.metrics["params"] > 0.4 for t in result)            # infeasible ones were tried
    assert all(t.reward is None for t in result if t.metrics["params"] > 0.4)
    assert result.pareto_front() and all(t.metrics["params"] <= 0.4 for t in result.pareto_front())


@pytest.mark.parametrize("name", ["random", "evolution", "de", "reinforce", "ppo"])
def test_every_algorithm_searches_under_a_size_constraint(name, nb201_table):
    space = sn.spaces.nasbench201()
    result = sn.search(space, name, nb201_table, budget=60, seed=0,
                       objective="valid200_cifar10", constraints=["params <= 0.3"])
    best = result.best
    assert best.metrics["params"] <= 0.3
    feasible = [t for t in result if t.metrics["params"] <= 0.3]
    assert best.metrics["valid200_cifar10"] == max(t.metrics["valid200_cifar10"] for t in feasible)
    # unconstrained, the same search would prefer bigger cells
    free = sn.search(space, name, nb201_table, budget=60, seed=0, objective="valid200_cifar10")
    assert free.best.metrics["params"] > 0.3
