"""Perturbation-based selection (DARTS-PT) on a user's space and on the DARTS space's input choices."""
from __future__ import annotations

import pytest
import torch
from torch import nn

import symnas as sn
from symnas.algorithms.darts import DARTS, SearchData, evaluate
from symnas.algorithms.perturbation import perturbation_select, score_candidates, select_inputs, select_op
from symnas.supernet import Supernet


@sn.searchable
class SmallCNN(nn.Module):
    def __init__(self, op1, op2, op3):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 8, 3, stride=4, padding=1), nn.BatchNorm2d(8))
        self.ops = nn.ModuleList([op1(8), op2(8), op3(8)])
        self.head = nn.Linear(8, 10)

    def forward(self, x):
        x = self.stem(x)
        for op in self.ops:
            x = op(x)
        return self.head(x.mean((2, 3)))


class Zero(nn.Module):
    def __init__(self, c):
        super().__init__()

    def forward(self, x):
        return x.mul(0.0)


class Skip(nn.Identity):
    def __init__(self, c):
        super().__init__()


class Conv(nn.Sequential):
    def __init__(self, c, affine=True):
        super().__init__(nn.ReLU(), nn.Conv2d(c, c, 3, padding=1), nn.BatchNorm2d(c, affine=affine))


OPS = [Zero, Skip, Conv]


def cnn_space():
    return sn.Space(SmallCNN(*[sn.oneof(OPS, name=f"layer{i}") for i in range(3)]))


@pytest.fixture(scope="module")
def task(data_dir):
    return sn.Task.cifar10()


def _trained(space, task, seed=0, epochs=1):
    algo = DARTS(epochs=epochs, batch_size=32, max_batches=3, quiet=True)
    torch.manual_seed(seed)
    net = algo.supernet(space)
    data = SearchData(task, 32, 3)
    opt = algo.optimizer(net)
    for e in range(epochs):
        algo.train_epoch(net, opt, data, e, seed)
    return net, opt, data


def test_select_op_picks_the_candidate_whose_removal_hurts_most(task):
    net, _, data = _trained(cnn_space(), task)
    evals = data.valid_batches(2)
    scores = score_candidates(net, "layer1", evals)
    assert set(scores) == {0, 1, 2}
    pick, again = select_op(net, "layer1", evals)
    assert again == scores                          # scoring is deterministic
    assert scores[pick] == min(scores.values())
    with net.masked("layer1", 2):
        assert evaluate(net, evals) == scores[2]
    assert net.decision("layer1").mask == [1.0, 1.0, 1.0]


def test_perturbation_discretizes_every_decision_in_seeded_order(task):
    space = cnn_space()
    logs = []
    net, opt, data = _trained(space, task)
    evals = data.valid_batches(1)
    genome = perturbation_select(net, opt, data, evals=evals, seed=5, tune_epochs=1,
                                 tune_batches=1, log=logs.append)
    assert net.undecided() == []
    assert sorted(net.selection_order) == ["layer0", "layer1", "layer2"]
    assert [line.split()[3] for line in logs if "decision" in line] == net.selection_order
    assert genome == tuple(net.decision(f"layer{i}").chosen for i in range(3))
    arch = space.arch(genome)
    assert arch.build()(torch.randn(2, 3, 32, 32)).shape == (2, 10)
    # the same seed gives the same order and choices
    net2, opt2, data2 = _trained(space, task)
    genome2 = perturbation_select(net2, opt2, data2, evals=data2.valid_batches(1), seed=5,
                                  tune_epochs=1, tune_batches=1, log=lambda s: None)
    assert net2.selection_order == net.selection_order and genome2 == genome


def test_darts_perturbation_and_fix_alpha_through_search(task):
    space = cnn_space()
    algo = DARTS(selection="perturbation", fix_alpha=True, epochs=1, batch_size=32,
                 max_batches=2, tune_epochs=1, tune_batches=1, eval_batches=1, top_k=1,
                 quiet=True)
    result = sn.search(space, algo, task, budget=1, seed=0)
    best = result.best
    assert best is result.trials[0] and best.metrics["selection"] == "perturbation"
    # fix alpha: the architecture weights were never trained (uniform)
    for probs in best.metrics["alphas"].values():
        assert probs == pytest.approx([1 / 3] * 3)
    assert best.build()(torch.randn(2, 3, 32, 32)).shape == (2, 10)


@pytest.mark.slow       # ~20 s: seven forward passes of a DARTS cell over a valid batch
def test_topology_step_keeps_the_inputs_whose_removal_hurts_most(task):
    space = sn.spaces.darts(C=2, layers=1)
    torch.manual_seed(0)
    net = Supernet(space)
    data = SearchData(task, 8, 1)
    evals = data.valid_batches(1)
    name = "reduce_node_2_inputs"   # layers=1: the one cell is a reduction cell
    keep, rounds = select_inputs(net, name, evals)
    assert len(keep) == 2 and len(rounds) == 2       # 4 inputs -> drop 2, one per round
    assert rounds[0].keys() == {0, 1, 2, 3}
    dropped_first = max(rounds[0], key=lambda i: (rounds[0][i], -i))
    assert dropped_first not in keep
    net.fix(name, keep)
    assert net.decision(name).mask == [1.0 if i in keep else 0.0 for i in range(4)]
    genome = net.genome()
    d = net.decision(name)
    assert [genome[g] for g in d.genes] == keep
    assert space.arch(genome).build()(torch.randn(2, 3, 32, 32)).shape == (2, 10)


def test_paper_schedule_spreads_the_tuning_epochs_between_decisions(task):
    net, opt, data = _trained(cnn_space(), task)
    logs = []
    perturbation_select(net, opt, data, evals=data.valid_batches(1), seed=0, tune_batches=1,
                        schedule="paper", interval=2, log=logs.append)
    events = ["decide" if "decision" in line else "tune" for line in logs]
    # 3 decisions, interval 2: 2 * (3 - 1) = 4 tuning epochs; decisions before epochs 0, 2, 3
    assert events == ["decide", "tune", "tune", "decide", "tune", "decide", "tune"]
    assert net.undecided() == []
    with pytest.raises(ValueError, match="schedule"):
        perturbation_select(net, opt, data, evals=[], schedule="sometimes")


class Skip2(nn.Identity):
    def __init__(self, c):
        super().__init__()


def test_tie_break_first_keeps_the_first_of_equally_harmful_candidates(task):
    space = sn.Space(SmallCNN(sn.oneof([Skip, Skip2], name="layer0"), Skip, Skip))
    net = Supernet(space)
    with torch.no_grad():
        net.alphas["g0"].copy_(torch.tensor([0.0, 1.0]))
    evals = SearchData(task, 16, 1).valid_batches(1)
    scores = score_candidates(net, "layer0", evals)
    assert scores[0] == scores[1]                   # identical candidates: a tie
    assert select_op(net, "layer0", evals, tie_break="first")[0] == 0
    assert select_op(net, "layer0", evals, tie_break="alpha")[0] == 1
