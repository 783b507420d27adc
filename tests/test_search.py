"""The trial loop: search(), sample(), failures, dedup, seeds, any PyGlove generator."""
from __future__ import annotations

import math

import pyglove as pg
import pytest
import torch
from torch import nn

import symnas as sn
from models_for_tests import ConvNet


def grid_space():
    return sn.Space({f"e{i}": sn.oneof(["a", "b", "c", "d", "e"]) for i in range(6)})


def score(arch) -> float:
    """A deterministic objective with a unique optimum at all 'c'."""
    return -sum(abs(g - 2) for g in arch.genome)


@pytest.mark.parametrize("algo", [sn.algorithms.Random(), sn.algorithms.RegularizedEvolution(),
                                  pg.geno.Random(), pg.evolution.regularized_evolution(
                                      population_size=10, tournament_size=3)])
def test_any_generator_drives_the_loop_and_is_seeded(algo):
    a = sn.search(grid_space(), algo, score, budget=30, seed=3)
    b = sn.search(grid_space(), algo, score, budget=30, seed=3)
    c = sn.search(grid_space(), algo, score, budget=30, seed=4)
    assert len(a) == 30 and all(t.status == "done" for t in a)
    assert [t.genome for t in a] == [t.genome for t in b]
    assert [t.genome for t in a] != [t.genome for t in c]
    assert len({t.genome for t in a}) == 30          # dedup: no architecture twice


def test_evolution_beats_random_on_a_structured_objective():
    re_best = [sn.search(grid_space(), sn.algorithms.RegularizedEvolution(), score, budget=150,
                         seed=s).best.reward for s in range(5)]
    rnd_best = [sn.search(grid_space(), sn.algorithms.Random(), score, budget=150,
                          seed=s).best.reward for s in range(5)]
    assert sum(re_best) > sum(rnd_best)


def test_result_best_top_k_export(tmp_path):
    space = sn.Space(ConvNet(width=sn.oneof([4, 8, 16]), kernel=sn.oneof([3, 5])))
    params = lambda model: sum(p.numel() for p in model.parameters())  # noqa: E731
    result = sn.search(space, sn.algorithms.Random(), lambda model: {"params": params(model)},
                       budget=6, seed=0, objective=sn.minimize("params"))
    assert result.best.decisions == {"width": 4, "kernel": 3}
    top = result.top_k(3)
    assert [t.metrics["params"] for t in top] == sorted(t.metrics["params"] for t in result.trials)[:3]
    files = result.export(tmp_path, k=2)
    assert params(sn.load(files[0]).build()) == top[0].metrics["params"]
    t = result.trials[0]
    assert t.seconds >= 0 and t.error is None and t.to_json()["program"]["_type"].endswith("ConvNet")
    assert result.best_so_far()[-1] == top[0].metrics["params"]


def test_failing_trials_are_recorded_and_search_goes_on():
    def flaky(arch):
        if arch.genome[0] == 0:
            raise RuntimeError("out of memory for this one")
        if arch.genome[0] == 1:
            return float("nan")
        return score(arch)

    algo = sn.algorithms.RegularizedEvolution(population_size=5, tournament_size=2)
    result = sn.search(grid_space(), algo, flaky, budget=40, seed=0)
    assert len(result) == 40
    failed = result.failed
    assert failed and all(t.genome[0] in (0, 1) for t in failed)
    assert any("out of memory" in t.error for t in failed)
    assert any("nan" in t.error for t in failed)
    assert result.best.genome[0] not in (0, 1)
    # the algorithm was told the failures as None: they never become parents
    assert all(g[0] not in (0, 1) for g, _ in result.algorithm._population)


def test_all_failing_search_quotes_the_first_failure():
    def broken(arch):
        raise ValueError(f"bad arch {arch.genome[0]}")
    with pytest.raises(sn.SearchFailed, match=r"(?s)all 5 trials failed.*ValueError: bad arch") as e:
        sn.search(grid_space(), sn.algorithms.Random(), broken, budget=5, seed=0)
    assert len(e.value.result.failed) == 5


def test_dedup_stops_when_the_space_is_exhausted():
    space = sn.Space({"a": sn.oneof([1, 2, 3]), "b": sn.oneof([1, 2])})
    result = sn.search(space, sn.algorithms.RegularizedEvolution(population_size=2, tournament_size=1),
                       lambda arch: sum(arch.genome), budget=50, seed=0)
    assert len(result) == 6 and len({t.genome for t in result}) == 6
    no_dedup = sn.search(space, sn.algorithms.Random(), lambda arch: 1.0, budget=20, seed=0, dedup=False)
    assert len(no_dedup) == 20


def test_objective_and_metrics_dicts():
    space = grid_space()
    with pytest.raises(sn.SearchFailed, match="objective 'acc' is not among"):
        sn.search(space, sn.algorithms.Random(), lambda a: {"loss": 1.0}, budget=2, objective="acc")
    r = sn.search(space, sn.algorithms.Random(), lambda a: {"loss": -score(a), "x": 1},
                  budget=20, seed=0, objective="-loss")
    assert r.best.metrics["loss"] == min(t.metrics["loss"] for t in r)
    r = sn.search(space, sn.algorithms.Random(), lambda a: {"acc": score(a), "size": a.genome[0]},
                  budget=30, seed=0, objective="acc", constraints=["size <= 1"])
    assert r.best.metrics["size"] <= 1


def test_evaluator_gets_model_and_seed():
    seen = []

    def ev(model: nn.Module, seed: int) -> float:
        seen.append((type(model).__name__, seed))
        return 1.0

    space = sn.Space(ConvNet(width=sn.oneof([4, 8])))
    sn.search(space, sn.algorithms.Random(), ev, budget=2, seed=9)
    assert [s[0] for s in seen] == ["ConvNet", "ConvNet"] and seen[0][1] != seen[1][1]


def test_registry():
    algo = sn.algorithms.get("evolution", population_size=7)
    assert isinstance(algo, sn.algorithms.RegularizedEvolution) and algo.population_size == 7
    assert {"random", "evolution"} <= set(sn.algorithms.names())
    with pytest.raises(KeyError, match="no algorithm named 'nope'"):
        sn.algorithms.get("nope")
    r = sn.search(grid_space(), "random", score, budget=3, seed=0)
    assert len(r) == 3


def test_sample_and_nested_flow():
    hp_space = sn.Space(dict(lr=sn.floatv(1e-3, 1e-1, scale="log"), width=sn.oneof([4, 8])))
    outer = []
    for hp, feedback in sn.sample(hp_space, sn.algorithms.Random(), budget=3, seed=0):
        assert 1e-3 <= hp["lr"] <= 1e-1
        inner = sn.search(grid_space(), sn.algorithms.RegularizedEvolution(), score, budget=10, seed=1)
        feedback(inner.best.reward)
        outer.append(inner.best.reward)
    assert len(outer) == 3
    values = [v["width"] for v, fb in sn.sample(sn.Space(dict(width=sn.oneof([4, 8]))),
                                               sn.algorithms.Random(), seed=0)]
    assert sorted(values) == [4, 8]          # dedup: the 2-point space is exhausted


def test_search_trains_real_models_on_cifar10(data_dir):
    space = sn.Space(ConvNet(width=sn.oneof([4, 8]), kernel=sn.oneof([3, 5])))
    task = sn.Task.cifar10(epochs=1, max_batches=2, batch_size=64)
    result = sn.search(space, sn.algorithms.Random(), task, budget=2, seed=0, objective="valid_acc")
    assert len(result.done) == 2
    for t in result.done:
        assert 0.0 <= t.metrics["valid_acc"] <= 100.0 and math.isfinite(t.metrics["train_loss"])
    assert result.best.build()(torch.randn(1, 3, 32, 32)).shape == (1, 10)


def test_a_converged_algorithm_ends_the_search_with_a_warning():
    class Stuck(sn.algorithms.Algorithm):
        def ask(self):
            return (0,) * 6

    with pytest.warns(UserWarning, match="only already-evaluated architectures"):
        result = sn.search(grid_space(), Stuck(), score, budget=5)
    assert len(result) == 1
