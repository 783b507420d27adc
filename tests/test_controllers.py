"""REINFORCE and PPO: they learn, handle floats and conditional decisions, and run asynchronously."""
from __future__ import annotations

import pytest
import torch

import symnas as sn
from symnas.algorithms import PPO, Reinforce


def three_genes() -> sn.Space:
    return sn.Space({f"g{i}": sn.oneof(list("abcde"), name=f"g{i}") for i in range(3)})


def count_c(arch) -> float:
    """Best candidate 'c' (index 2) on every gene."""
    return float(sum(g == 2 for g in arch.genome))


@pytest.mark.parametrize("algo", [Reinforce(), PPO()], ids=["reinforce", "ppo"])
def test_probability_of_the_best_candidate_rises(algo):
    space = three_genes()
    fresh = algo.clone(deep=True)
    fresh.setup(space.dna_spec)
    assert fresh.probabilities("g0") == pytest.approx([0.2] * 5)
    result = sn.search(space, algo, count_c, budget=60, seed=0)
    learned = result.algorithm
    for name in ("g0", "g1", "g2"):
        p = learned.probabilities(name)
        assert p[2] == max(p) and p[2] > 0.4, (name, p)
    assert result.best.genome == (2, 2, 2)


@pytest.mark.parametrize("cls", [Reinforce, PPO])
def test_float_decisions_learn_a_mean(cls):
    space = sn.Space(dict(x=sn.floatv(-2.0, 2.0, name="x"), y=sn.oneof([0, 1], name="y")))
    result = sn.search(space, cls(), lambda a: -(a.value["x"] - 1.2) ** 2 + a.value["y"],
                       budget=80, seed=1)
    policy = result.algorithm.policy
    mean_x = -2.0 + 4.0 * policy.mean[0]
    assert mean_x > 0.3                       # moved from 0 towards 1.2
    assert all(-2.0 <= t.genome[0] <= 2.0 for t in result)
    with pytest.raises(ValueError, match="not categorical"):
        result.algorithm.probabilities("x")
    with pytest.raises(KeyError, match="no decision named 'z'"):
        result.algorithm.probabilities("z")


def test_inactive_conditional_genes_get_no_credit():
    space = sn.Space(dict(op=sn.oneof([dict(k=sn.oneof([1, 3, 5], name="k")), "pool"], name="op"),
                          w=sn.oneof([1, 2], name="w")))
    algo = Reinforce(seed=0, lr=0.1)
    algo.setup(space.dna_spec)
    k = space.genome_spec.names.index("k")
    algo.tell((1, 0, 0), 0.0)                 # first reward sets the baseline
    before = algo.probabilities("k")
    algo.tell((1, 0, 1), 5.0)                 # op = pool: k inactive
    assert algo.probabilities("k") == pytest.approx(before)
    assert algo.probabilities("op")[1] > 0.5 and algo.probabilities("w")[1] > 0.5
    algo.tell((0, 2, 1), 9.0)                 # op = conv: k = 5 active, rewarded
    assert algo.probabilities(k)[2] > max(algo.probabilities(k)[:2])


def test_ppo_keeps_the_log_probability_a_proposal_had_when_asked():
    space = three_genes()
    algo = PPO(seed=0, batch_size=4, epochs=2)
    algo.setup(space.dna_spec)
    first = [algo.ask() for _ in range(6)]     # six workers
    logged = {g: list(v) for g, v in algo._old.items()}
    assert all(v == [pytest.approx(3 * torch.log(torch.tensor(0.2)).item())] for v in logged.values())
    for g in reversed(first[:4]):              # four answers: an update
        algo.tell(g, count_c(space.arch(g)))
    assert algo.probabilities("g0") != pytest.approx([0.2] * 5)
    late = algo.ask()
    assert algo._old[late][0] != pytest.approx(3 * torch.log(torch.tensor(0.2)).item())
    for g in first[4:] + [late]:               # the stragglers still carry their old log-prob
        algo.tell(g, count_c(space.arch(g)))
    assert not algo._old


def test_failed_trials_count_as_the_worst_reward():
    space = three_genes()
    algo = Reinforce(seed=0, lr=0.1)
    algo.setup(space.dna_spec)
    algo.tell((0, 0, 0), None)                # nothing seen yet: ignored
    assert algo.probabilities("g0") == pytest.approx([0.2] * 5)
    algo.tell((1, 1, 1), 1.0)
    algo.tell((2, 2, 2), 3.0)
    algo.tell((3, 3, 3), None)                # counts as 1.0: pushed down
    p = algo.probabilities("g0")
    assert p[3] < p[0] and p[2] == max(p)


def test_a_converged_policy_still_proposes_new_cells():
    space = three_genes()
    algo = Reinforce(seed=0, lr=1.0)
    algo.setup(space.dna_spec)
    for _ in range(30):
        algo.tell((2, 2, 2), 10.0)
        algo.tell((0, 0, 0), 0.0)
    assert algo.probabilities("g0")[2] > 0.99
    proposals = [algo.ask() for _ in range(20)]
    assert len(set(proposals)) == 20 and (2, 2, 2) not in proposals
