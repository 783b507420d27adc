"""DARTS: first- and second-order architecture gradients, steps, the weight-sharing protocol,
the search entry point, determinism, progress logging."""
from __future__ import annotations

import logging

import pytest
import torch
from log_helpers import symnas_log
from torch import nn
from torch.nn import functional as F

import symnas as sn
from symnas.algorithms.darts import DARTS, Bilevel
from symnas.objective import Objectives
from symnas.protocols import Session, WeightSharingAlgorithm
from symnas.result import DONE, Trial
from symnas.supernet import MixedOp, Supernet


@sn.searchable
class MLP(nn.Module):
    """A tiny net on 12 features (2x2-pooled CIFAR images) with two mixed layers."""

    def __init__(self, op1, op2):
        super().__init__()
        self.inp = nn.Linear(12, 6)
        self.a, self.b = op1(6), op2(6)
        self.out = nn.Linear(6, 10)

    def forward(self, x):
        x = F.adaptive_avg_pool2d(x, 2).flatten(1) if x.dim() == 4 else x
        return self.out(self.b(self.a(torch.tanh(self.inp(x)))))


class Lin(nn.Sequential):
    def __init__(self, d):
        super().__init__(nn.Linear(d, d), nn.Tanh())


class Gate(nn.Module):
    def __init__(self, d):
        super().__init__()
        self.w = nn.Parameter(torch.randn(d) * 0.5)

    def forward(self, x):
        return torch.tanh(x * self.w)


class Ident(nn.Identity):
    def __init__(self, d):
        super().__init__()


OPS = [Lin, Gate, Ident]


def mlp_space():
    return sn.Space(MLP(op1=sn.oneof(OPS, name="a"), op2=sn.oneof(OPS, name="b")))


@pytest.fixture(scope="module")
def data(data_dir):
    from symnas.datasets import cifar10_batch
    xt, yt = cifar10_batch(24, seed=1)
    xv, yv = cifar10_batch(24, seed=2)
    return xt.double(), yt, xv.double(), yv


def _setup(weight_decay=3e-4):
    torch.manual_seed(0)
    net = Supernet(mlp_space()).double()
    with torch.no_grad():
        for a in net.arch_parameters():
            a.normal_(0, 0.5)
    return net, Bilevel(net, epochs=1, lr=0.1, weight_decay=weight_decay)


def test_first_order_gradient_is_valid_loss_gradient_at_current_weights(data):
    xt, yt, xv, yv = data
    net, opt = _setup()
    g = opt.arch_grad_first(xv, yv)
    ref = torch.autograd.grad(F.cross_entropy(net(xv), yv), net.arch_parameters())
    for a, b in zip(g, ref):
        assert torch.allclose(a, b)
    before = [a.detach().clone() for a in net.arch_parameters()]
    w_before = [w.detach().clone() for w in net.weight_parameters()]
    opt.arch_step(xt, yt, xv, yv, order=1)
    # Adam's first step moves each alpha by -lr * sign(grad) (bias-corrected, lr 3e-4, wd 1e-3)
    for a0, a1, gr in zip(before, net.arch_parameters(), g):
        expected = a0 - 3e-4 * torch.sign(gr + 1e-3 * a0)
        assert torch.allclose(a1, expected, atol=1e-6)
    assert all(torch.equal(w0, w1) for w0, w1 in zip(w_before, net.weight_parameters()))
    # the weight step leaves alphas alone and changes the weights
    alphas = [a.detach().clone() for a in net.arch_parameters()]
    opt.weight_step(xt, yt)
    assert all(torch.equal(a0, a1) for a0, a1 in zip(alphas, net.arch_parameters()))
    assert any(not torch.equal(w0, w1) for w0, w1 in zip(w_before, net.weight_parameters()))


def test_second_order_gradient_matches_finite_differences(data):
    xt, yt, xv, yv = data
    wd = 3e-4
    net, opt = _setup(wd)
    g2 = torch.cat(opt.arch_grad_second(xt, yt, xv, yv))
    g1 = torch.cat(opt.arch_grad_first(xv, yv))
    assert (g2 - g1).abs().max() > 1e-4              # the unrolled term matters
    xi = opt.lr
    alphas = net.arch_parameters()
    weights = [w for w in net.weight_parameters()]
    w0 = [w.detach().clone() for w in weights]

    def unrolled_val_loss() -> float:
        """L_val(w - xi (dL_train/dw + wd w), alpha), weights restored afterwards."""
        gw = torch.autograd.grad(F.cross_entropy(net(xt), yt), weights)
        with torch.no_grad():
            for w, g in zip(weights, gw):
                w.sub_(xi * (g + wd * w))
            loss = float(F.cross_entropy(net(xv), yv))
            for w, b in zip(weights, w0):
                w.copy_(b)
        return loss

    h = 1e-5
    numeric = []
    for a in alphas:
        for i in range(a.numel()):
            with torch.no_grad():
                a[i] += h
            up = unrolled_val_loss()
            with torch.no_grad():
                a[i] -= 2 * h
            down = unrolled_val_loss()
            with torch.no_grad():
                a[i] += h
            numeric.append((up - down) / (2 * h))
    numeric = torch.tensor(numeric, dtype=g2.dtype)
    assert torch.allclose(g2, numeric, rtol=1e-3, atol=1e-5), (g2, numeric)
    assert not torch.allclose(g1, numeric, rtol=1e-3, atol=1e-5)


def test_second_order_step_uses_the_momentum_buffer(data):
    xt, yt, xv, yv = data
    net, opt = _setup()
    g_fresh = torch.cat(opt.arch_grad_second(xt, yt, xv, yv))
    opt.weight_step(xt, yt)                           # creates momentum buffers
    state = [w.detach().clone() for w in net.weight_parameters()]
    g_after = torch.cat(opt.arch_grad_second(xt, yt, xv, yv))
    assert all(torch.equal(a, b) for a, b in zip(state, net.weight_parameters()))  # restored
    assert not torch.allclose(g_fresh, g_after)


def _tiny_task():
    return sn.Task.cifar10()


def test_search_dispatches_darts_and_is_deterministic(data_dir):
    space = mlp_space()
    algo = sn.algorithms.get("darts", epochs=2, batch_size=32, max_batches=3, order=2,
                             eval_batches=1, top_k=2, quiet=True)
    assert isinstance(algo, DARTS) and algo.weight_sharing
    r1 = sn.search(space, algo, _tiny_task(), budget=1, seed=3)
    r2 = sn.search(space, algo, _tiny_task(), budget=1, seed=3)
    assert isinstance(r1, sn.SearchResult) and r1.best is r1.trials[0]
    assert r1.trials[0].metrics["selected"] and r1.trials[0].metrics["selection"] == "magnitude"
    assert r1.trials[0].metrics["alphas"] == r2.trials[0].metrics["alphas"]
    assert [t.genome for t in r1.trials] == [t.genome for t in r2.trials]
    assert [t.metrics["supernet_acc"] for t in r1.trials] == [t.metrics["supernet_acc"] for t in r2.trials]
    assert len(r1.trials) == 3 and all(t.ok for t in r1.trials)
    assert r1.trials[1].metrics["alpha_score"] >= r1.trials[2].metrics["alpha_score"]
    r1.trials[0].build()(torch.randn(2, 3, 32, 32))
    # The magnitude selection is the argmax of the recorded alphas.
    probs = r1.trials[0].metrics["alphas"]
    assert r1.trials[0].genome == tuple(max(range(3), key=lambda k: probs[n][k]) for n in ("a", "b"))


def test_darts_rejects_bad_settings_and_evaluators():
    with pytest.raises(ValueError, match="selection"):
        DARTS(selection="biggest")
    with pytest.raises(ValueError, match="order"):
        DARTS(order=3)
    with pytest.raises(TypeError, match="sn.Task"):
        sn.search(mlp_space(), DARTS(epochs=1), lambda arch: 1.0, budget=1)


class RecordingSession(Session):
    """A plain Session: every report becomes a finished Trial, kept in report order."""

    def __init__(self, space, seed=0, objective=None, name=None):
        self.space, self.seed, self.name = space, seed, name
        self.objectives = Objectives.parse(objective)
        self.trials: list[Trial] = []

    def report(self, genome, metrics):
        t = Trial(len(self.trials), self.space.arch(tuple(genome)), seed=self.seed)
        t.metrics = dict(metrics)
        t.reward, t.status = self.objectives.reward(t.metrics), DONE
        self.trials.append(t)
        return t



def _small_darts(**kw):
    return DARTS(**{"epochs": 2, "batch_size": 32, "max_batches": 3, "eval_batches": 1,
                    "top_k": 2, **kw})


def test_darts_reports_the_selected_architecture_then_the_top_k_to_its_session(data_dir):
    space = mlp_space()
    algo = _small_darts()
    assert isinstance(algo, WeightSharingAlgorithm) and algo.metric == "reward"
    session = RecordingSession(space, seed=3)
    with symnas_log(records=True) as records:
        assert algo.run(space, _tiny_task(), session) is None
    trials = session.trials
    assert len(trials) == 3
    assert [t.metrics["rank"] for t in trials] == [0, 1, 2]
    assert [t.metrics["selected"] for t in trials] == [True, False, False]
    assert [t.metrics["selection"] for t in trials] == ["magnitude", "magnitude_top_k",
                                                        "magnitude_top_k"]
    # the default objective `reward` ranks the trials as DARTS prefers them
    assert [t.metrics["reward"] for t in trials] == [3.0, 2.0, 1.0]
    assert [t.reward for t in trials] == [3.0, 2.0, 1.0]
    first = trials[0].metrics
    assert set(first) >= {"supernet_acc", "alpha_score", "alphas", "search_seconds", "rank"}
    assert 0.0 <= first["supernet_acc"] <= 100.0
    assert trials[0].genome == tuple(max(range(3), key=lambda k: first["alphas"][n][k])
                                     for n in ("a", "b"))
    assert trials[1].metrics["alpha_score"] >= trials[2].metrics["alpha_score"]
    # one INFO progress line per epoch on the library logger (nothing printed)
    epochs = [r for r in records if r.getMessage().startswith("[darts] epoch")]
    assert [r.levelno for r in epochs] == [logging.INFO, logging.INFO]
    assert epochs[-1].getMessage().startswith("[darts] epoch 2/2")

    # the algorithm's own seed wins over the session's; quiet lowers the lines to DEBUG
    seeded = RecordingSession(space, seed=99, objective="supernet_acc")
    with symnas_log(records=True) as records:
        _small_darts(seed=3, quiet=True).run(space, _tiny_task(), seeded)
    assert [r.levelno for r in records if r.getMessage().startswith("[darts] epoch")] == \
        [logging.DEBUG, logging.DEBUG]
    assert seeded.trials[0].metrics["alphas"] == first["alphas"]
    assert [t.genome for t in seeded.trials] == [t.genome for t in trials]
    assert "reward" not in seeded.trials[0].metrics    # a named objective: no ranking reward
    assert [t.reward for t in seeded.trials] == [t.metrics["supernet_acc"] for t in trials]


def test_search_returns_what_darts_reports_to_its_session(data_dir):
    space = mlp_space()
    session = RecordingSession(space, seed=4)
    _small_darts(quiet=True).run(space, _tiny_task(), session)
    result = sn.search(space, _small_darts(quiet=True), _tiny_task(), seed=4)
    assert [t.genome for t in result.trials] == [t.genome for t in session.trials]
    assert [t.metrics["supernet_acc"] for t in result.trials] == \
        [t.metrics["supernet_acc"] for t in session.trials]
    assert result.trials[0].metrics["alphas"] == session.trials[0].metrics["alphas"]
    assert result.best.genome == session.trials[0].genome


def test_darts_pt_preset_is_the_papers_code(data_dir):
    torch.set_num_threads(1)
    algo = sn.algorithms.get("darts_pt")
    assert isinstance(algo, DARTS) and "darts_pt" in sn.algorithms.names(kind="weight-sharing")
    assert (algo.selection, algo.epochs, algo.batch_size, algo.tune_schedule, algo.proj_interval,
            algo.tune_lr, algo.tie_break, algo.fresh_batches, algo.augment, algo.track_running_stats,
            algo.magnitude_none, algo.eval_batches) == (
        "perturbation", 100, 64, "paper", 5, 0.0025, "first", True, True, True, True, None)
    assert DARTS.pt_paper(epochs=3).epochs == 3
    space = sn.spaces.nasbench201(C=4, N=1)
    tiny = sn.algorithms.get("darts_pt", epochs=1, batch_size=16, max_batches=1, eval_batches=1,
                             tune_batches=1, proj_interval=1, top_k=1, quiet=True)
    net = tiny.supernet(space)
    bns = [m for op in net.modules() if isinstance(op, MixedOp) for m in op.modules()
           if isinstance(m, nn.BatchNorm2d)]             # BN inside the candidates
    assert bns and all(not m.affine and m.track_running_stats for m in bns)
    result = sn.search(space, tiny, _tiny_task(), seed=0)
    rows = [t.metrics["selection"] for t in result.trials]
    assert rows == ["perturbation", "magnitude_top_k", "magnitude_with_none"]


def test_search_data_draws_fresh_augmented_batches(data_dir):
    from symnas.algorithms.bilevel import SearchData
    plain = SearchData(_tiny_task(), 8, 2)
    fresh = SearchData(_tiny_task(), 8, 2, fresh=True, augment=True)
    a = [b for pair in fresh.pairs(0) for b in pair]
    b = [b for pair in fresh.pairs(0) for b in pair]
    assert len(a) == 4 and all(torch.equal(x[0], y[0]) for x, y in zip(a, b))   # seeded
    c = [b for pair in fresh.pairs(1) for b in pair]
    assert not torch.equal(a[0][0], c[0][0])
    (xp, yp), _ = next(iter(plain.pairs(0)))
    assert xp.shape == a[0][0].shape and yp.shape == a[0][1].shape
    # augmentation keeps labels and shapes, moves pixels (crops pad with zeros, flips)
    x = plain.task.splits()["train"][0][:8]
    from symnas.algorithms.bilevel import augment_cifar
    aug = augment_cifar(x, torch.Generator().manual_seed(0))
    assert aug.shape == x.shape and not torch.equal(aug, x)
