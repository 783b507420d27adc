"""Multi-objective search (NSGA-II, Pareto-aware evolution and DE) and constraints on the NB201 table."""
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


# ---- native multi-objective selection ------------------------------------------------------
def _hv(result, size="params") -> float:
    from symnas.algorithms.pareto import hypervolume
    pts = [(t.metrics["valid200_cifar10"], -t.metrics[size]) for t in result.done]
    return hypervolume(pts, reference=(80.0, -1.6))


def test_pareto_arithmetic_matches_brute_force():
    import random

    from symnas.algorithms import pareto
    rng = random.Random(0)
    for _ in range(300):
        m = rng.choice([2, 3])
        pts = [tuple(rng.randrange(5) for _ in range(m)) for _ in range(rng.randrange(1, 25))]
        ranks = pareto.nondominated_sort(pts)
        for i, p in enumerate(pts):    # front 0 exactly the non-dominated; later fronts dominated
            dominated_by = [ranks[j] for j, q in enumerate(pts) if pareto.dominates(q, p)]
            assert ranks[i] == (max(dominated_by) + 1 if dominated_by else 0)
    three = [(1.0, 1.0, 1.0), (2.0, 0.5, 0.5)]
    assert pareto.hypervolume(three, (0, 0, 0)) == pytest.approx(1.0 + 2 * 0.25 - 0.25)
    keep = pareto.select([(0.0, 4.0), (1.0, 3.0), (2.0, 2.0), (3.0, 1.0), (4.0, 0.0), (1.0, 1.0)], 3)
    assert 0 in keep and 4 in keep and 5 not in keep      # extremes kept, the dominated one cut


@pytest.mark.parametrize("name", ["evolution", "de", "nsga2"])
def test_evolution_and_de_find_better_fronts_than_random_and_than_one_objective(name, nb201_table):
    space = sn.spaces.nasbench201()
    objective = ["valid200_cifar10", sn.minimize("params")]
    mean_hv = lambda algo, obj: sum(_hv(sn.search(space, algo, nb201_table, budget=150, seed=s,
                                                  objective=obj, progress=False)) for s in range(4)) / 4
    ours = mean_hv(name, objective)
    assert ours > mean_hv("random", objective)
    assert ours > mean_hv(name, "valid200_cifar10")         # the old behaviour: first objective only


def test_evolution_mutates_when_its_population_exceeds_the_pareto_size():
    space = sn.Space({f"x{i}": sn.oneof(list(range(10))) for i in range(10)})    # 1e10 genomes
    two = lambda arch: {"a": float(sum(arch.genome)), "b": float(-arch.genome[0])}
    algo = algorithms.get("evolution", population_size=30, pareto_size=20, seed=0)
    result = sn.search(space, algo, two, budget=120, seed=0, objective=["a", "b"])
    seen: list = []
    mutants = 0
    for t in result.trials:                  # a random genome is almost never one gene off another
        mutants += any(sum(a != b for a, b in zip(t.genome, g)) == 1 for g in seen)
        seen.append(t.genome)
    assert mutants > 50


def test_nsga2_takes_any_population_of_two_or_more():
    space = sn.Space({"x": sn.oneof([0, 1, 2, 3])})
    result = sn.search(space, algorithms.get("nsga2", population_size=2), lambda a: float(a.genome[0]),
                       budget=4, seed=0)
    assert result.best.reward == 3.0
    with pytest.raises(ValueError, match="at least 2"):
        sn.search(space, algorithms.get("nsga2", population_size=1), lambda a: 0.0, budget=2)
    with pytest.raises(ValueError, match="does not use tournament_size"):
        sn.search(space, algorithms.get("nsga2", tournament_size=3), lambda a: 0.0, budget=2)


def test_nsga2_with_one_objective_searches_instead_of_sampling(nb201_table):
    space = sn.spaces.nasbench201()              # PyGlove's NSGA-II was no better than random here
    best = lambda algo: sum(sn.search(space, algo, nb201_table, budget=100, seed=s, progress=False)
                            .best.metrics["valid200_cifar10"] for s in range(6)) / 6
    assert best("nsga2") > best("random") + 0.2


def test_evolution_keeps_every_non_dominated_trial_it_has_room_for(nb201_table):
    space = sn.spaces.nasbench201()
    result = sn.search(space, "evolution", nb201_table, budget=120, seed=0, progress=False,
                       objective=["valid200_cifar10", sn.minimize("params")])
    algo = result.algorithm
    front = {t.genome for t in result.pareto_front()}
    members = [g for g, _ in algo._front]
    assert len(members) == len(set(members)) <= algo.pareto_size     # each genome once
    if len(front) <= algo.pareto_size:
        assert front <= set(members)
    from symnas.algorithms.pareto import nondominated_sort
    ranks = nondominated_sort([r for _, r in algo._front])
    assert ranks.count(0) >= min(len(front), algo.pareto_size) // 2


def test_de_selects_by_dominance_and_cuts_by_crowding():
    space = sn.Space({f"e{i}": sn.oneof(list("abcde")) for i in range(4)})
    de = algorithms.get("de", seed=0, population_size=4)
    de.setup(space.dna_spec)
    init = [de.ask() for _ in range(4)]
    for g, r in zip(init, [(0.0, 3.0), (1.0, 2.0), (2.0, 1.0), (3.0, 0.0)]):   # one front
        de.tell(g, r)
    assert de._fitness == [(0.0, 3.0), (1.0, 2.0), (2.0, 1.0), (3.0, 0.0)]
    trial = de.ask()                       # targets slot 0
    slot = de._pending[trial][0][0]
    de.tell(trial, (0.5, 3.5))             # dominates (0, 3): replaces it
    assert de._fitness[slot] == (0.5, 3.5)
    worse = de.ask()
    slot = de._pending[worse][0][0]
    before = list(de._fitness)
    de.tell(worse, (0.5, 0.5))             # dominated by its target (1, 2): dropped
    assert de._fitness == before
    other = de.ask()                       # targets slot 2, (2, 1)
    before_other = list(de._fitness)
    de.tell(other, (2.5, 0.2))             # neither dominates: joins, and as the most crowded
    assert de._fitness == before_other     # point of the five it is the one cut again
    last = de.ask()
    de.tell(last, (5.0, -1.0))             # a new extreme joins; an interior point is cut
    assert len(de._fitness) == 4 and {(0.5, 3.5), (5.0, -1.0)} <= set(de._fitness)
    assert len({(1.0, 2.0), (2.0, 1.0), (3.0, 0.0)} & set(de._fitness)) == 2


def test_pareto_front_keeps_ties_and_is_in_trial_order():
    space = sn.Space({f"x{i}": sn.oneof([0, 1, 2]) for i in range(2)})
    metrics = lambda a: {"a": float(a.genome[0]), "b": float(-a.genome[0])}    # x1 is irrelevant
    result = sn.search(space, "random", metrics, budget=9, seed=0, objective=["a", "b"])
    front = result.pareto_front()
    assert len(front) == 9                 # every cell is on the front (a up, b down), ties included
    assert [t.id for t in front] == sorted(t.id for t in front)


# ---- scalarized rewards: MnasNet and weights ---------------------------------------------
def test_mnasnet_reward_is_a_recorded_derived_metric(nb201_table):
    from symnas.objective import MissingMetric, Objectives, mnasnet_reward
    space = sn.spaces.nasbench201()
    soft = mnasnet_reward("valid200_cifar10", "flops", target=100.0, w=-0.07)
    result = sn.search(space, "reinforce", nb201_table, budget=40, seed=0, objective=soft,
                       progress=False)
    for t in result:
        m = t.metrics
        assert m["mnasnet_reward"] == pytest.approx(m["valid200_cifar10"] * (m["flops"] / 100.0) ** -0.07)
        assert t.reward == m["mnasnet_reward"]
    assert result.best.reward == max(t.metrics["mnasnet_reward"] for t in result)
    with pytest.raises(MissingMetric, match="needs metric 'latency'"):
        Objectives.parse(mnasnet_reward("acc", "latency", target=5.0)).check_metrics({"acc": 1.0})
    with pytest.raises(ValueError, match="target > 0"):
        mnasnet_reward("acc", "latency", target=0)


def test_a_hard_mnasnet_target_steers_a_controller_to_small_cells(nb201_table):
    from symnas.objective import mnasnet_reward
    space = sn.spaces.nasbench201()
    hard = mnasnet_reward("valid200_cifar10", "flops", target=60.0, w=0.0, w_above=-1.0)
    kw = dict(budget=60, seed=1, progress=False)
    steered = sn.search(space, "ppo", nb201_table, objective=hard, **kw)
    free = sn.search(space, "ppo", nb201_table, objective="valid200_cifar10", **kw)
    assert steered.best.metrics["flops"] <= 60.0 < free.best.metrics["flops"]


def test_controllers_scalarize_tuple_rewards_with_weights(nb201_table):
    space = sn.spaces.nasbench201()
    objective = ["valid200_cifar10", sn.minimize("params")]
    ctl = algorithms.Reinforce(seed=0, weights=[1.0, 20.0])     # 1M parameters cost 20 points
    result = sn.search(space, ctl, nb201_table, budget=60, seed=0, objective=objective,
                       progress=False)
    first_only = sn.search(space, "reinforce", nb201_table, budget=60, seed=0, objective=objective,
                           progress=False)
    size = lambda r: sum(t.metrics["params"] for t in r.trials[-20:]) / 20
    assert size(result) < size(first_only)
    bad = algorithms.Reinforce(seed=0, weights=[1.0])
    with pytest.raises(ValueError, match="one weight per objective"):
        sn.search(space, bad, nb201_table, budget=3, objective=objective, progress=False)
