"""Ordered choices, log-scale floats and float deduplication, through the real algorithms."""
from __future__ import annotations

import math
import random
import statistics

import pyglove as pg
import pytest

import symnas as sn
from symnas import algorithms
from symnas.genome import FLOAT_STEPS, GenomeSpec

WIDTHS = [8, 16, 24, 32, 40, 48, 56, 64]


def _setup(name: str, space: sn.Space, seed: int = 0, **kw):
    algo = algorithms.get(name, seed=seed, **kw)
    algo.setup(space.dna_spec)
    return algo


# ---- the layout ---------------------------------------------------------------------------
def test_numbers_and_intv_are_ordered_by_value_and_the_flag_opts_out():
    space = sn.Space(dict(w=sn.oneof([64, 8, 32, 16]), n=sn.intv(1, 4),
                          plain=sn.oneof([1, 2, 3], ordered=False), act=sn.oneof(["relu", "gelu"]),
                          size=sn.oneof(["s", "m", "l"], ordered=True), flag=sn.oneof([True, False]),
                          pair=sn.manyof(2, [1, 2, 4], ordered=False)))
    genes = {g.name: g for g in space.genome_spec.genes}
    assert genes["w"].ordered and genes["w"].rank == (3, 0, 2, 1) and genes["w"].order == (1, 3, 2, 0)
    assert genes["n"].ordered and genes["n"].order == (0, 1, 2, 3)
    assert genes["size"].ordered and genes["size"].order == (0, 1, 2)     # by list position
    assert not any(genes[k].ordered for k in ("plain", "act", "flag", "pair[0]", "pair[1]"))
    assert space.genome_spec.ordered == tuple(g.ordered for g in space.genome_spec.genes)


def test_the_ordered_flag_travels_in_hints_and_keeps_the_users_own():
    choice = sn.oneof([1, 2], ordered=False, hints={"mine": 7})
    assert choice.hints["mine"] == 7 and choice.hints["ordered"] is False
    spec = pg.dna_spec(pg.Dict(x=choice))
    assert not GenomeSpec.of(spec).genes[0].ordered
    with pytest.raises(TypeError, match="hints, which must then be a dict"):
        sn.oneof([1, 2], ordered=True, hints="not a dict")
    with pytest.raises(TypeError, match="True, False or None"):
        sn.oneof([1, 2], ordered="yes")


# ---- mutation and decoding ----------------------------------------------------------------
def _steps(space: sn.Space, start: int, n: int = 3000) -> list[int]:
    algo = _setup("evolution", space)
    gene = space.genome_spec.genes[0]
    out = []
    for _ in range(n):
        child = algo.mutate((start,))
        out.append(gene.rank[child[0]] - gene.rank[start] if gene.ordered else child[0] - start)
    return out


def test_ordered_mutation_prefers_near_neighbours_and_reaches_every_value():
    ordered = _steps(sn.Space(dict(w=sn.oneof(WIDTHS))), start=3)           # width 32
    near = sum(abs(d) == 1 for d in ordered) / len(ordered)
    assert 0 not in ordered and near > 0.6
    assert set(ordered) == {-3, -2, -1, 1, 2, 3, 4}                         # still ergodic
    plain = _steps(sn.Space(dict(w=sn.oneof(WIDTHS, ordered=False))), start=3)
    assert 0 not in plain and abs(sum(abs(d) == 1 for d in plain) / len(plain) - 2 / 7) < 0.05
    ends = _steps(sn.Space(dict(w=sn.oneof(WIDTHS))), start=7)              # width 64: steps down
    assert all(d < 0 for d in ends) and sum(d == -1 for d in ends) / len(ends) > 0.6


def test_ordered_mutation_follows_value_order_not_list_order():
    space = sn.Space(dict(w=sn.oneof([64, 8, 32, 16, 48])))                 # list order scrambled
    algo = _setup("evolution", space)
    values = [space.labels[0][algo.mutate((2,))[0]] for _ in range(2000)]      # from 32
    assert statistics.mode(values) in (16, 48) and sum(v in (16, 48) for v in values) > 1200


def test_de_decodes_ordered_positions_in_value_order():
    space = sn.Space(dict(w=sn.oneof([64, 8, 32, 16]), act=sn.oneof(["a", "b", "c", "d"])))
    de = _setup("de", space)
    width = lambda x: space.arch(de.decode([x, 0.0])).value["w"]
    assert [width(x) for x in (0.1, 0.3, 0.6, 0.9)] == [8, 16, 32, 64]      # bins follow the order
    assert [de.decode([0.0, x])[1] for x in (0.1, 0.3, 0.6, 0.9)] == [0, 1, 2, 3]
    for genome in [(0, 3), (1, 0), (2, 2), (3, 1)]:
        assert de.decode(de.encode(genome)) == genome


def test_local_search_steps_along_the_order():
    space = sn.Space({f"w{i}": sn.oneof(WIDTHS) for i in range(3)})
    ls = _setup("local_search", space, ordered_radius=2)
    neighbours = ls.neighbours((3, 3, 3))
    assert len(neighbours) == 12 and all(sum(abs(a - 3) for a in n) in (1, 2) for n in neighbours)
    every = _setup("local_search", space, ordered_radius=0).neighbours((3, 3, 3))
    assert len(every) == 21


def test_an_ordered_width_space_is_searched_better_than_with_unordered_widths():
    """Accuracy rises smoothly with width: knowing the order helps evolution find the peak."""
    def score(arch):
        return -float(sum((WIDTHS[g] - 40) ** 2 for g in arch.genome))

    def mean_best(ordered: bool) -> float:
        space = sn.Space({f"w{i}": sn.oneof(WIDTHS, ordered=ordered) for i in range(5)})
        return statistics.mean(sn.search(space, "evolution", score, budget=60, seed=s).best.reward
                               for s in range(8))
    assert mean_best(True) > mean_best(False)


# ---- floats: scale and resolution -----------------------------------------------------------
def test_log_scale_floats_sample_half_below_the_geometric_midpoint():
    log = sn.Space(dict(lr=sn.floatv(1e-3, 1e-1, scale="log")))
    lin = sn.Space(dict(lr=sn.floatv(1e-3, 1e-1)))
    rng = random.Random(0)
    below = lambda space: sum(space.genome_spec.random(rng)[0] < 1e-2 for _ in range(4000)) / 4000
    assert 0.46 < below(log) < 0.54
    assert 0.06 < below(lin) < 0.13
    assert 0.38 < sum(a.value["lr"] < 1e-2 for a in log.samples(200, seed=0)) / 200 < 0.62  # built
    result = sn.search(log, "random", lambda a: 0.0, budget=300, seed=1)
    assert 0.42 < sum(t.genome[0] < 1e-2 for t in result) / 300 < 0.58
    rlog = sn.Space(dict(x=sn.floatv(1.0, 100.0, scale="rlog")))        # dense near the top
    assert sum(rlog.genome_spec.random(rng)[0] > 91.0 for _ in range(2000)) / 2000 > 0.4


def test_every_algorithm_moves_log_scale_floats_by_ratios():
    space = sn.Space(dict(lr=sn.floatv(1e-4, 1.0, scale="log")))
    gene = space.genome_spec.genes[0]
    evo = _setup("evolution", space)
    ratios = [evo.mutate((1e-3,))[0] / 1e-3 for _ in range(2000)]
    assert statistics.median(ratios) == pytest.approx(1.0, abs=0.1)      # as likely down as up
    assert sum(r < 1 for r in ratios) > 800
    de = _setup("de", space)
    assert de.decode([0.5]) == (pytest.approx(1e-2),) and de.encode((1e-2,)) == [pytest.approx(0.5)]
    ctl = _setup("reinforce", space)                         # the policy's mean is the unit midpoint
    draws = [ctl.policy.sample(random.Random(i))[0] for i in range(1000)]
    assert 0.4 < sum(d < 1e-2 for d in draws) / 1000 < 0.6
    assert gene.scale == "log"


def test_floats_are_deduplicated_by_the_value_that_is_built():
    space = sn.Space(dict(lr=sn.floatv(0.0, 1.0, name="lr")))
    gs = space.genome_spec
    assert gs.canonical((0.3,)) == gs.canonical((0.3 + 1e-9,)) == (0.3,)
    assert gs.canonical((0.30006,)) == (0.3001,)                       # a step is 1e-4
    g = gs.canonical((0.123456,))
    assert space.arch(g).value["lr"] == g[0] == gs.from_dna(gs.to_dna(g))[0]
    assert gs.genes[0].quantize(1.0) == 1.0 and gs.genes[0].quantize(-5) == 0.0
    assert len({gs.canonical((i / (3 * FLOAT_STEPS),)) for i in range(3 * FLOAT_STEPS + 1)}) \
        == FLOAT_STEPS + 1

    class Fixed(algorithms.Algorithm):
        """Proposes 0.3, then 0.3 + 1e-9 (the same built value), then 0.6."""

        def _start(self):
            self._todo = [0.3, 0.3 + 1e-9, 0.6]

        def _ask(self):
            return (self._todo.pop(0),)

    result = sn.search(space, Fixed(), lambda a: a.value["lr"], budget=2, seed=0)
    assert [t.arch.value["lr"] for t in result] == [0.3, 0.6]             # the repeat cost nothing
    assert math.isclose(result.best.reward, 0.6)
