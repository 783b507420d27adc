"""DARTS: first- and second-order architecture gradients, steps, the search entry point, determinism."""
from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.nn import functional as F

import symnas as sn
from symnas.algorithms.darts import DARTS, Bilevel
from symnas.supernet import Supernet


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
