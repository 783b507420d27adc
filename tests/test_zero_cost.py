"""Zero-cost proxies on real modules and real CIFAR-10 batches, and as search evaluators."""
from __future__ import annotations

import math
import pickle

import pytest
import torch
from torch import nn

import symnas as sn
from symnas.datasets import cifar10_batch
from symnas.evaluators import nb201, zero_cost
from symnas.spaces import nasbench201_space as nb

ALL = ["synflow", "snip", "grad_norm", "grasp", "fisher", "jacov", "nwot", "zen", "swap",
       "swap_reg", "epsinas", "params", "flops"]
RESNET_LIKE = 11472          # a strong cell (93.91% test accuracy)
ALL_NONE = "|none~0|+|none~0|none~1|+|none~0|none~1|none~2|"


class CNN(nn.Module):
    """Conv-BN-ReLU blocks, global pooling, a linear classifier."""

    def __init__(self, width: int = 16, depth: int = 2):
        super().__init__()
        layers, c = [], 3
        for _ in range(depth):
            layers += [nn.Conv2d(c, width, 3, padding=1, bias=False), nn.BatchNorm2d(width), nn.ReLU()]
            c = width
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(c, 10)

    def forward(self, x):
        return self.fc(self.pool(self.features(x)).flatten(1))


def cnn(width: int = 16, depth: int = 2, seed: int = 0) -> CNN:
    torch.manual_seed(seed)
    return CNN(width, depth)


@pytest.fixture(scope="module")
def batch(data_dir):
    return cifar10_batch(16, seed=0)


@pytest.fixture(scope="module")
def small_nb201():
    torch.manual_seed(0)
    return nb.build(RESNET_LIKE, C=8, N=1)


def _snapshot(model):
    return ({k: v.clone() for k, v in model.state_dict().items()}, model.training,
            [p.grad for p in model.parameters()])


def _unchanged(model, snap) -> bool:
    state, training, grads = snap
    now = model.state_dict()
    return (state.keys() == now.keys() and all(torch.equal(state[k], now[k]) for k in state)
            and model.training == training
            and all(g is None for g in grads) and all(p.grad is None for p in model.parameters()))


def test_registry_names_and_aliases():
    assert zero_cost.names() == ALL
    assert zero_cost.get("naswot") is zero_cost.nwot
    assert zero_cost.get("JACOB_COV") is zero_cost.jacov
    with pytest.raises(KeyError, match="unknown zero-cost proxy 'wot'.*nwot"):
        zero_cost.get("wot")


@pytest.mark.parametrize("name", ALL)
def test_proxy_finite_deterministic_and_leaves_model_unchanged(name, batch, small_nb201):
    fn = zero_cost.get(name)
    for model in (small_nb201, cnn(8)):
        model.eval() if model is small_nb201 else model.train()
        snap = _snapshot(model)
        a = fn(model, batch)
        b = fn(model, batch)
        assert isinstance(a, float) and math.isfinite(a), (name, a)
        assert a == b, f"{name} is not deterministic: {a} != {b}"
        assert _unchanged(model, snap), f"{name} changed the model"


def test_the_global_random_state_is_left_alone(batch, small_nb201):
    state = torch.random.get_rng_state()
    for name in ("zen", "swap", "synflow", "nwot"):
        zero_cost.get(name)(small_nb201, batch)
    assert torch.equal(state, torch.random.get_rng_state())


def test_a_model_with_dropout_scores_the_same_every_time(batch):
    """Dropout draws its mask from the random generators: scores() seeds them per proxy
    (leaving the caller's state alone), and synflow scores in eval mode (no mask at all)."""
    model = cnn(16)
    model.fc = nn.Sequential(nn.Dropout(0.5), model.fc)
    names = ["synflow", "snip", "grad_norm", "nwot", "jacov"]
    state = torch.random.get_rng_state()
    first = zero_cost.scores(model, batch, names, seed=0)
    assert torch.equal(state, torch.random.get_rng_state())
    torch.rand(1000)                                      # another global random state
    assert zero_cost.scores(model, batch, names, seed=0) == first
    assert zero_cost.scores(model, batch, ["snip"], seed=0)["snip"] == first["snip"]   # alone or not
    plain = cnn(16)
    assert zero_cost.synflow(model, batch) == zero_cost.synflow(plain, batch) == first["synflow"]


def test_size_proxies_grow_with_width(batch):
    narrow, wide = cnn(8), cnn(32)
    for name in ("synflow", "params", "flops", "swap", "zen"):
        fn = zero_cost.get(name)
        assert fn(wide, batch) > fn(narrow, batch), name
    assert zero_cost.params(wide) == sum(p.numel() for p in wide.parameters()) / 1e6


def test_nwot_prefers_a_wider_deeper_relu_net(batch):
    trivial, rich = cnn(width=2, depth=1), cnn(width=32, depth=3)
    assert zero_cost.nwot(rich, batch) > zero_cost.nwot(trivial, batch)


@pytest.mark.parametrize("index", [6111, RESNET_LIKE, 1835, 0, 777])
def test_flops_are_the_tables_exactly(index, batch):
    # One counter (symnas.flops) under the table's convention: exact, not approximately.
    model = nb.build(index)
    row = nb201.query(index)
    assert zero_cost.flops(model, batch) == pytest.approx(row["flops"], rel=1e-12, abs=0)
    assert zero_cost.flops(model, batch) == nb.count_flops(model)
    assert zero_cost.params(model) == pytest.approx(row["params"], abs=1e-6)


def test_flops_count_batchnorm_and_global_pooling(batch):
    import doctest

    import symnas.flops
    assert doctest.testmod(symnas.flops).failed == 0
    # conv 32*32*8*27 + BN 2*8192 + pool 8192 + linear 8*10 (no bias): the convention by hand
    width, hw = 8, 32 * 32
    model = cnn(width, depth=1)
    expected = hw * width * 27 + 2 * hw * width + hw * width + width * 10
    assert zero_cost.flops(model, batch) * 1e6 == pytest.approx(expected, abs=1e-6)


def test_jacov_is_nan_when_the_output_ignores_the_input(batch):
    torch.manual_seed(0)
    dead = nb.build(ALL_NONE, C=8, N=1)
    assert math.isnan(zero_cost.jacov(dead, batch))


def test_shared_gradient_pass_gives_the_same_scores(batch):
    model = cnn(8)
    together = zero_cost.scores(model, batch, ["snip", "grad_norm", "fisher", "grasp"])
    alone = {n: zero_cost.get(n)(model, batch) for n in together}
    assert together == pytest.approx(alone, rel=1e-9)


def test_swap_regularization_prefers_the_target_size(batch):
    model = cnn(16)
    k = zero_cost.params(model) * 1e3
    plain = zero_cost.swap(model, batch)
    assert zero_cost.swap(model, batch, regular=True, mu=k, sigma=1.0) == pytest.approx(plain)
    assert zero_cost.swap(model, batch, regular=True, mu=k + 50, sigma=1e3) < plain
    with pytest.raises(ValueError, match="mu= and sigma="):
        zero_cost.swap(model, batch, regular=True)


def test_bad_batches_are_named(small_nb201):
    with pytest.raises(TypeError, match="batch=\\(images, labels\\)"):
        zero_cost.snip(small_nb201, [1, 2, 3])
    with pytest.raises(ValueError, match="uses the labels"):
        zero_cost.snip(small_nb201, torch.randn(4, 3, 32, 32))
    with pytest.raises(TypeError, match="arch.build\\(\\)"):
        zero_cost.nwot("not a model", torch.randn(4, 3, 32, 32))


def test_evaluator_is_deterministic_and_uses_real_batches(data_dir):
    space = sn.spaces.nasbench201(C=8, N=1)
    arch = space.arch(nb.genome_of(RESNET_LIKE))
    ev = zero_cost.evaluator(["nwot", "synflow"], batch_size=16, seed=0)
    first, second = ev(arch), zero_cost.evaluator(["nwot", "synflow"], batch_size=16, seed=0)(arch)
    assert first == second and set(first) == {"nwot", "synflow", "params_M"}
    x, y = ev.batch()
    xr, yr = cifar10_batch(16, seed=0)
    assert torch.equal(x, xr) and torch.equal(y, yr)
    other = zero_cost.evaluator(["nwot"], batch_size=16, seed=1)(arch)
    assert other["nwot"] != first["nwot"]
    assert pickle.loads(pickle.dumps(ev))(arch) == first
    task_ev = zero_cost.evaluator("nwot", task=sn.Task.cifar10(), batch_size=16)
    assert math.isfinite(task_ev(arch)["nwot"])


def test_zero_shot_search_on_nb201(data_dir):
    space = sn.spaces.nasbench201(C=8, N=1)
    result = sn.search(space, sn.algorithms.RegularizedEvolution(population_size=3, tournament_size=2),
                       zero_cost.evaluator("nwot", batch_size=16), budget=5, seed=0,
                       objective="nwot", constraints=["params_M <= 1"])
    assert len(result.trials) == 5 and all(t.status == "done" for t in result.trials)
    best = result.best
    assert best.metrics["nwot"] == max(t.metrics["nwot"] for t in result.trials)
    assert 0 < nb201.query(best.arch)["test200_cifar10"] <= 100


def test_evaluator_rejects_unknown_names_and_options():
    with pytest.raises(KeyError, match="unknown zero-cost proxy"):
        zero_cost.evaluator("nwott")
    with pytest.raises(ValueError, match="not scored"):
        zero_cost.evaluator("nwot", swap={"mu": 1})
