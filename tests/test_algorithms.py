"""Every black-box algorithm: valid proposals on mixed spaces, seeding, async feedback, resume.

Also differential evolution's decoding and selection, and constraints.
"""
from __future__ import annotations

import math

import pytest

import symnas as sn
from symnas import algorithms
from symnas.algorithms import DifferentialEvolution

ALL = ["random", "evolution", "de", "reinforce", "ppo", "local_search", "local_bo"]
PROTOCOL = ALL + ["pg_hill_climb"]     # PyGlove's climber (restarted when stuck) keeps the protocol too


def mixed_space() -> sn.Space:
    """Categorical, conditional (k only under conv), float and manyof decisions."""
    return sn.Space(dict(
        op=sn.oneof([dict(kind="conv", k=sn.oneof([1, 3, 5], name="k")), dict(kind="pool")],
                    name="op"),
        width=sn.oneof([8, 16, 32, 64], name="width"),
        lr=sn.floatv(1e-3, 1e-1, name="lr"),
        pair=sn.manyof(2, ["a", "b", "c", "d"], name="pair"),
    ))


def mixed_score(arch) -> float:
    v = arch.value
    s = {8: 0.0, 16: 1.0, 32: 2.0, 64: 1.5}[v["width"]] - 20 * abs(v["lr"] - 0.05)
    if v["op"]["kind"] == "conv":
        s += {1: 0.0, 3: 2.0, 5: 1.0}[v["op"]["k"]]
    return s + ("c" in v["pair"])


def grid_space() -> sn.Space:
    return sn.Space({f"e{i}": sn.oneof(["a", "b", "c", "d", "e"], name=f"e{i}") for i in range(6)})


def grid_score(arch) -> float:
    """Unique optimum at all 'c' (index 2)."""
    return -float(sum(abs(g - 2) for g in arch.genome))


def _setup(name: str, space: sn.Space, seed: int = 0, **kw):
    algo = algorithms.get(name, seed=seed, **kw)
    algo.setup(space.dna_spec)
    return algo


@pytest.mark.parametrize("name", ALL)
def test_proposes_valid_architectures_on_mixed_spaces(name):
    space = mixed_space()
    gs = space.genome_spec
    result = sn.search(space, name, mixed_score, budget=40, seed=1)
    assert len(result) == 40 and all(t.ok for t in result)
    for t in result:
        g = t.genome
        assert gs.canonical(g) == g                          # canonical: inactive genes reset
        assert 1e-3 <= g[3] <= 1e-1                          # the float in its range
        v = t.arch.value                                     # materializes
        assert len(set(v["pair"])) == 2                      # manyof distinct
        assert v["op"]["kind"] in ("conv", "pool") and v["width"] in (8, 16, 32, 64)
        if v["op"]["kind"] == "pool":
            assert g[1] == 0                                 # k inactive
    # the conditional decision appears with every value under its parent
    ks = {t.arch.value["op"].get("k") for t in result if t.arch.value["op"]["kind"] == "conv"}
    assert ks == {1, 3, 5}
    # floats vary (not stuck at a bound)
    assert len({round(t.genome[3], 6) for t in result}) > 10


@pytest.mark.parametrize("name", PROTOCOL)
def test_registered_seeded_and_reproducible(name):
    cls = type(algorithms.get(name))
    assert cls is type(algorithms.get(name.upper()))
    a = sn.search(grid_space(), name, grid_score, budget=40, seed=3)
    b = sn.search(grid_space(), algorithms.get(name), grid_score, budget=40, seed=3)
    c = sn.search(grid_space(), name, grid_score, budget=40, seed=4)
    assert [t.genome for t in a] == [t.genome for t in b]
    assert [t.genome for t in a] != [t.genome for t in c]
    assert len({t.genome for t in a}) == 40


@pytest.mark.parametrize("name", PROTOCOL)
def test_asynchronous_feedback_in_any_order(name):
    space = mixed_space()
    gs = space.genome_spec
    algo = _setup(name, space, seed=0)
    outstanding = []
    told = 0
    for _ in range(12):
        outstanding += [algo.ask() for _ in range(5)]        # five workers ask at once
        algo._rng.shuffle(outstanding)
        for g in outstanding[:3]:                            # three answer, in shuffled order
            assert gs.canonical(g) == g
            reward = None if told % 7 == 3 else mixed_score(space.arch(g))   # some fail
            algo.tell(g, reward)
            told += 1
        outstanding = outstanding[3:]
    for g in outstanding:                                    # the late ones arrive last
        algo.tell(g, mixed_score(space.arch(g)))
    # PyGlove's protocol works too (propose/feedback on DNA)
    dna = algo.propose()
    algo.feedback(dna, 1.0)
    assert space.arch(gs.from_dna(dna)).value["width"] in (8, 16, 32, 64)


@pytest.mark.parametrize("name", PROTOCOL)
def test_resume_continues_exactly_as_the_uninterrupted_search(name, tmp_path):
    path = tmp_path / "r.sqlite"
    first = sn.search(grid_space(), name, grid_score, budget=15, seed=2, storage=path, name="r")
    resumed = sn.search(grid_space(), name, grid_score, budget=30, seed=2, storage=path,
                        name="r", resume=True)
    straight = sn.search(grid_space(), name, grid_score, budget=30, seed=2)
    assert [t.genome for t in resumed][:15] == [t.genome for t in first]
    assert [t.genome for t in resumed] == [t.genome for t in straight]


def _state(algo):
    if isinstance(algo, algorithms.LocalBO):
        return [sorted(algo.climb.value.items()), sorted(algo.model.y), algo.model.features.n]
    if isinstance(algo, algorithms.LocalSearch):
        return sorted(algo.climb.value.items())
    if isinstance(algo, algorithms.RegularizedEvolution):
        return list(algo._population)
    if isinstance(algo, DifferentialEvolution):
        return algo.population
    if hasattr(algo, "policy"):
        return algo.policy.logits.detach().flatten().tolist()
    return None


def _same(a, b) -> bool:
    """Equal states; policy logits up to float rounding (old log-probs: Python vs torch)."""
    if a and isinstance(a[0], float):
        return a == pytest.approx(b, abs=1e-4) and a != [0.0] * len(a)
    return a == b


@pytest.mark.parametrize("name", ["evolution", "de", "reinforce", "ppo", "local_search", "local_bo"])
def test_recover_from_history_rebuilds_the_state(name):
    space = grid_space()
    result = sn.search(space, name, grid_score, budget=60, seed=5, dedup=False)
    history = [(t.genome, t.reward) for t in result]
    fresh = _setup(name, space, seed=99)
    fresh.recover(history)
    assert _same(_state(result.algorithm), _state(fresh))
    assert fresh.num_proposals == 60 and fresh.num_feedbacks == 60
    # PyGlove's recover (DNA history) gives the same state
    via_pg = _setup(name, space, seed=7)
    via_pg.recover([(space.genome_spec.to_dna(g), r) for g, r in history])
    assert _same(_state(result.algorithm), _state(via_pg))
    # and the recovered algorithm keeps searching
    g = fresh.ask()
    assert space.genome_spec.canonical(g) == g
    if isinstance(fresh, algorithms.LocalSearch):     # the climb goes on from the best result
        best = result.best.genome                     # (or restarts when it is a local optimum)
        assert all(n in fresh.climb.known for n in fresh.neighbours(best)) if fresh.restarts else (
            fresh.climb.centre == best and g in fresh.neighbours(best))


@pytest.mark.parametrize("name", ["evolution", "de", "local_search", "local_bo"])
def test_evolutionary_algorithms_beat_random_on_a_structured_objective(name):
    best = lambda algo: sum(sn.search(grid_space(), algo, grid_score, budget=120, seed=s).best.reward
                            for s in range(4))
    assert best(name) > best("random")


def test_de_decodes_unit_vectors_into_genomes():
    space = mixed_space()
    de = _setup("de", space)
    # op: floor(2x); k: floor(3x) (inactive when op=pool); width: floor(4x), x=1 -> 3;
    # lr: linear on [1e-3, 1e-1]; pair: floor(4x) made distinct.
    assert de.decode([0.2, 0.7, 1.0, 0.5, 0.3, 0.3]) == (0, 2, 3, 1e-3 + 0.5 * (0.1 - 1e-3), 1, 2)
    assert de.decode([0.9, 0.7, 0.0, 0.0, 0.99, 0.1]) == (1, 0, 0, 1e-3, 3, 0)
    g = space.genome_spec.canonical((0, 1, 2, 0.05, 3, 1))       # 0.05 on the float grid
    assert g[3] == pytest.approx(0.05, abs=1e-5) and de.decode(de.encode(g)) == g


def test_de_mutation_crossover_and_asynchronous_selection():
    space = grid_space()
    de = _setup("de", space, seed=0, population_size=6, f=0.5, cr=0.5)
    init = [de.ask() for _ in range(6)]
    for i, g in enumerate(init):
        de.tell(g, float(i))                        # slot i has fitness i
    before = [list(v) for v in de._vectors]
    trials = [de.ask() for _ in range(6)]           # one per target slot, round robin
    slots = [q[0][0] for g in trials for q in [de._pending[g]]]
    assert sorted(slots) == list(range(6))
    for g in trials:
        slot, vec = de._pending[g][0]
        assert all(0.0 <= x <= 1.0 for x in vec)    # out-of-range coordinates resampled
        # binomial crossover: each coordinate from the target or from the mutant
        assert any(x != t for x, t in zip(vec, before[slot]))
    # feedback out of order: a worse trial leaves its target, a better one replaces it
    for g in reversed(trials):
        slot, vec = de._pending[g][0]
        de.tell(g, 2.5)
        assert de._fitness[slot] == max(slot, 2.5)
        assert (de._vectors[slot] == vec) == (2.5 >= slot)
    assert not de._pending
    assert de.population[5] == (init[5], 5.0)


def test_de_rejects_bad_settings():
    with pytest.raises(ValueError, match="population_size >= 4"):
        _setup("de", grid_space(), population_size=3)
    with pytest.raises(ValueError, match="cr is a probability"):
        _setup("de", grid_space(), cr=1.5)


@pytest.mark.parametrize("name", ALL)
def test_constraints_are_respected(name):
    space = grid_space()

    def metrics(arch):
        return {"score": grid_score(arch), "cost": float(sum(arch.genome))}

    told = []
    algo = algorithms.get(name)
    result = sn.search(space, algo, metrics, budget=50, seed=0, objective="score",
                       constraints=["cost <= 8"], callbacks=[lambda t: told.append(t.reward)])
    infeasible = [t for t in result if t.metrics["cost"] > 8]
    assert infeasible and all(t.reward is None for t in infeasible)   # told None: never rewarded
    assert result.best.metrics["cost"] <= 8
    assert all(r is None or not math.isnan(r) for r in told)


def test_pyglove_hill_climbing_restarts_instead_of_stalling(data_dir):
    """PyGlove's climber alone stops after ~60-80 NB201 cells (only repeats left); restarted, it goes on."""
    import warnings

    from symnas.evaluators import nb201
    with warnings.catch_warnings():
        warnings.simplefilter("error")          # the driver's 'proposed only repeats' warning
        result = sn.search(sn.spaces.nasbench201(), "pg_hill_climb", nb201.evaluator(), budget=100,
                           seed=0, objective="valid200_cifar10", progress=False)
    assert len(result) == 100 and len({t.genome for t in result}) == 100
    assert result.algorithm.restarts >= 1
