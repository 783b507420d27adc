"""Local search and the model-based LocalBO: neighbourhoods, the model, restarts, resume, NB201."""
from __future__ import annotations

import random
import statistics
import warnings

import numpy as np
import pytest

import symnas as sn
from symnas import algorithms
from symnas.algorithms.model_based import GenomeFeatures


@pytest.fixture(scope="module")
def nb201_table(data_dir):
    from symnas.evaluators import nb201
    return nb201.evaluator("valid200_cifar10")


def _setup(name: str, space: sn.Space, seed: int = 0, **kw):
    algo = algorithms.get(name, seed=seed, **kw)
    algo.setup(space.dna_spec)
    return algo


def test_features_measure_distance_by_kind_of_gene():
    space = sn.Space(dict(op=sn.oneof([dict(k=sn.oneof([1, 3, 5], name="k")), "pool"], name="op"),
                          w=sn.oneof([8, 16, 24, 32], name="w"),
                          lr=sn.floatv(1e-4, 1e-0, scale="log", name="lr")))
    gs = space.genome_spec
    f = GenomeFeatures(gs)
    assert [gs.genes[i].name for i in f.cat] == ["op"]
    assert [g.name for _, g in f.num] == ["k", "w", "lr"]        # k is ordered too (numbers)
    base = gs.canonical((0, 0, 0, 1e-2))
    for g in [base, gs.canonical((0, 0, 3, 1e-2)), gs.canonical((0, 2, 0, 1e-2)),
              gs.canonical((0, 0, 0, 1.0)), gs.canonical((1, 0, 0, 1e-2))]:
        f.add(g)
    d = f.distance(*f.encode(base)).round(4).tolist()
    # same; w 8 -> 32 (3 of 3 ranks); k 1 -> 5 (2 of 2 ranks); lr 1e-2 -> 1 (half the log range);
    # op conv -> pool (a category; k is then inactive and reset, so it matches)
    assert d == [0.0, 0.25, 0.25, 0.125, 0.25]


@pytest.mark.parametrize("kinds", ["mixed", "categories only", "numbers only"])
def test_pairwise_distances_equal_one_genome_at_a_time(kinds):
    cat = dict(op=sn.oneof(["a", "b", "c"], name="op"), act=sn.oneof(["x", "y"], name="act"))
    num = dict(w=sn.oneof([8, 16, 32, 64], name="w"), lr=sn.floatv(1e-3, 1e-1, scale="log", name="lr"))
    space = sn.Space({"mixed": {**cat, **num}, "categories only": cat, "numbers only": num}[kinds])
    gs, rng = space.genome_spec, random.Random(0)
    f = GenomeFeatures(gs)
    for _ in range(12):
        f.add(gs.random(rng))
    others = [gs.random(rng) for _ in range(5)]
    enc = [f.encode(g) for g in others]
    cats = np.array([c for c, _ in enc], dtype=np.int64).reshape(5, len(f.cat))
    nums = np.array([x for _, x in enc], dtype=float).reshape(5, len(f.num))
    rows = np.array([0, 3, 4, 7, 11])
    pair = f.pairwise(rows, cats, nums)
    one = np.stack([f.distance(c, x, rows) for c, x in enc])
    assert pair.shape == (5, 5) and pair.max() > 0
    np.testing.assert_allclose(pair, one, rtol=0, atol=1e-12)


def test_local_search_tries_every_neighbour_then_restarts_and_never_repeats():
    space = sn.Space({f"x{i}": sn.oneof(["a", "b", "c"]) for i in range(3)})        # 27 cells
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        result = sn.search(space, "local_search", lambda a: float(sum(a.genome)), budget=27, seed=0)
    assert len({t.genome for t in result}) == 27
    algo = result.algorithm
    assert algo.restarts >= 1 and result.best.genome == (2, 2, 2)
    ls = _setup("local_search", space)
    assert sorted(ls.neighbours((0, 1, 2))) == sorted(
        [(1, 1, 2), (2, 1, 2), (0, 0, 2), (0, 2, 2), (0, 1, 0), (0, 1, 1)])


def test_a_better_result_moves_the_centre_first_improvement():
    space = sn.Space({f"x{i}": sn.oneof(list(range(5)), ordered=False) for i in range(3)})
    ls = _setup("local_search", space, init_size=3)
    first = [ls.ask() for _ in range(3)]
    for k, g in enumerate(first):
        ls.tell(g, float(k))
    n1 = ls.ask()
    assert ls.climb.centre == first[2] and n1 in ls.neighbours(first[2])
    ls.tell(n1, 10.0)                                          # better: it becomes the centre
    assert ls.climb.centre == n1
    n2 = ls.ask()
    assert n2 in ls.neighbours(n1)
    ls.tell(n2, -1.0)                                          # worse: the centre stays
    assert ls.climb.centre == n1


def test_the_model_ranks_neighbours_by_what_it_learned():
    widths = [8, 16, 24, 32, 40, 48, 56, 64]
    space = sn.Space({f"w{i}": sn.oneof(widths) for i in range(4)})
    score = lambda g: float(sum(g))                            # wider is better, on every layer
    bo = _setup("local_bo", space, seed=1, beta=0.0)
    rng = np.random.default_rng(0)
    for _ in range(25):
        g = tuple(int(v) for v in rng.integers(0, 8, size=4))
        bo.tell(g, score(g))
    centre = (3, 3, 3, 3)
    cands = bo.neighbours(centre)
    acq = bo.model.acquisition(cands, centre)
    ranked = [cands[i] for i in np.argsort(-acq)]
    top, bottom = ranked[: len(ranked) // 4], ranked[-len(ranked) // 4:]
    assert statistics.mean(map(score, top)) > statistics.mean(map(score, bottom)) + 3
    assert cands[bo.model.pick(cands, centre)] in top


def test_local_bo_beats_random_search_at_50_queries_on_nasbench201(nb201_table):
    space = sn.spaces.nasbench201()
    best = lambda name: statistics.mean(
        sn.search(space, name, nb201_table, budget=50, seed=s, objective="valid200_cifar10",
                  progress=False).best.metrics["test200_cifar10"] for s in range(6))
    assert best("local_bo") > best("random") + 0.2


def test_local_bo_resumes_exactly_on_nasbench201(nb201_table, tmp_path):
    space = sn.spaces.nasbench201()
    kw = dict(objective="valid200_cifar10", seed=3, progress=False)
    first = sn.search(space, "local_bo", nb201_table, budget=40, storage=tmp_path / "r.sqlite",
                      name="r", **kw)
    resumed = sn.search(space, "local_bo", nb201_table, budget=80, storage=tmp_path / "r.sqlite",
                        name="r", resume=True, **kw)
    straight = sn.search(space, "local_bo", nb201_table, budget=80, **kw)
    assert [t.genome for t in resumed][:40] == [t.genome for t in first]
    assert [t.genome for t in resumed] == [t.genome for t in straight]
    # rebuilt from the finished trials alone (recover), the model holds every result
    fresh = _setup("local_bo", space, seed=11)
    fresh.recover([(t.genome, t.reward) for t in straight])
    assert sorted(fresh.model.y) == sorted(t.reward for t in straight)
    assert fresh.climb.init_left == 0 and fresh.ask() not in {t.genome for t in straight}


def test_bad_settings_are_refused():
    space = sn.Space(dict(x=sn.oneof([1, 2, 3])))
    with pytest.raises(ValueError, match="init_size"):
        _setup("local_search", space, init_size=0)
    with pytest.raises(ValueError, match="local_points >= 2"):
        _setup("local_bo", space, local_points=1)
