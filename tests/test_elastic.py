"""Elastic supernets derived from any Space: every choice kind shares weights, subnets come back.

Real modules throughout: the MobileNet space with nothing fixed, a plain user model
(traced, one flat Sequential) with int widths, kernels and depths, a space that mixes
module and int choices, manyof in plain code, and a trained supernet searched by every
registered black-box algorithm.
"""
from __future__ import annotations

import functools
import pickle
import random

import pytest
import torch
from torch import nn

import symnas as sn
from symnas.choice_checks import HiddenChoice
from symnas.supernet import MixedOp, Supernet, UnmixableChoice

pytestmark = pytest.mark.usefixtures("one_thread")

# ---- a plain user model: no symnas inside, blocks in one flat Sequential ---------------------
class Block(nn.Module):
    def __init__(self, c_in, c_out, kernel, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, kernel, stride, kernel // 2, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.short = None if stride == 1 and c_in == c_out else nn.Sequential(
            nn.Conv2d(c_in, c_out, 1, stride, bias=False), nn.BatchNorm2d(c_out))

    def forward(self, x):
        y = self.bn2(self.conv2(torch.relu(self.bn1(self.conv1(x)))))
        return torch.relu(y + (x if self.short is None else self.short(x)))


class FlatNet(nn.Module):
    def __init__(self, widths=(16, 32), depths=(2, 2), stem_kernel=3, kernel=3, num_classes=10):
        super().__init__()
        layers = [nn.Conv2d(3, widths[0], stem_kernel, 1, stem_kernel // 2, bias=False),
                  nn.BatchNorm2d(widths[0]), nn.ReLU()]
        c = widths[0]
        for i, (w, d) in enumerate(zip(widths, depths)):
            for j in range(d):
                layers.append(Block(c, w, kernel, 2 if (j == 0 and i > 0) else 1))
                c = w
        self.features = nn.Sequential(*layers)
        self.head = nn.Linear(c, num_classes)

    def forward(self, x):
        return self.head(self.features(x).mean((2, 3)))


def make_flat():
    return FlatNet(widths=(sn.oneof([8, 16], name="w1"), sn.oneof([16, 24], name="w2")),
                   depths=(sn.oneof([1, 2], name="d1"), sn.oneof([1, 2, 3], name="d2")),
                   stem_kernel=sn.oneof([3, 5], name="stem_k"), kernel=sn.oneof([3, 5], name="k"))


@pytest.fixture(scope="module")
def flat():
    torch.manual_seed(0)
    space = sn.trace(make_flat)
    return space, Supernet(space, affine=None, track_running_stats=None)


@pytest.fixture(scope="module")
def task(data_dir):
    return sn.Task.cifar10(batch_size=32, eval_batch_size=64)


def _genome(space, **decisions):
    """The genome of readable oneof decisions (a module choice by its class name)."""
    gs = space.genome_spec
    genome = [0] * len(gs)
    for i, d in enumerate(space.decisions):
        want = decisions[d.name]
        cands = list(d.candidates)
        genome[i] = cands.index(want) if want in cands else \
            next(k for k, c in enumerate(cands) if str(c).endswith(f".{want}"))
    return gs.canonical(genome)


def _same_output(net, genome, x):
    net.eval()
    with net.using(genome):
        a = net(x)
    sub = net.subnet(genome)
    sub.eval()
    net.train()
    return sub, torch.allclose(a, sub(x), atol=1e-5), (a - sub(x)).abs().max().item()


def test_traced_flat_model_shares_slices_aligned_by_program_position(flat):
    space, net = flat
    assert {c.name for c in net.elastic} == {"w1", "w2", "d1", "d2", "stem_k", "k"}
    assert not net.decisions and all(v == "entangled" for v in net.sharing.values())
    # one store, the size of the largest subnet (not a sum over candidates)
    largest = net.count_params(net.extreme(largest=True))
    assert sum(p.numel() for p in net.weight_parameters()) == largest
    assert len(net.extra) == 0
    # the stage-2 depth removes stage 2's last blocks of the flat list, not the last layers
    assert net.aligner.removed[("features", "6")] == {(3, 0)}
    assert net.aligner.removed[("features", "7")] == {(3, 0), (3, 1)}
    # with one stage-1 block, stage 2's first block still inherits stage 2's first block
    # (index 5 in the store, 4 in the subnet): position in the program, not the name
    with torch.no_grad():
        net.model.features[5].conv1.weight.fill_(0.125)
    g = _genome(space, w1=16, w2=24, d1=1, d2=3, stem_k=3, k=3)
    sub, same, err = _same_output(net, g, torch.randn(2, 3, 16, 16))
    assert same, err
    assert type(sub) is FlatNet and len(sub.features) == 3 + 1 + 3
    assert torch.all(sub.features[4].conv1.weight == 0.125)
    assert not torch.all(sub.features[3].conv1.weight == 0.125)


def test_every_configuration_of_the_flat_model_matches_its_subnet(flat):
    space, net = flat
    rng = random.Random(3)
    x = torch.randn(2, 3, 16, 16)
    for _ in range(6):
        g = net.sample(rng)
        sub, same, err = _same_output(net, g, x)
        assert same, (space.arch(g).decisions, err)
        ref = space.build(g)
        assert [(k, v.shape) for k, v in sub.state_dict().items()] == \
            [(k, v.shape) for k, v in ref.state_dict().items()]
        # a smaller kernel is the centre of the larger one
        if space.arch(g).decisions["stem_k"] == 3:
            assert torch.equal(sub.features[0].weight, net.model.features[0].weight[:, :, 1:4, 1:4]
                               [: sub.features[0].weight.shape[0]])


@pytest.fixture(scope="module")
def mobilenet():
    torch.manual_seed(0)
    space = sn.spaces.mobilenet(num_classes=10, width_multipliers=(0.25, 0.5))
    return space, Supernet(space, affine=None, track_running_stats=None, probes=0)


def test_mobilenet_space_without_fixed_is_one_supernet(mobilenet, task):
    space, net = mobilenet
    names = {c.name for c in net.elastic}
    assert names == {"width"} | {f"stage{i}_{k}" for i in range(1, 8) for k in ("expand", "blocks")}
    assert {d.name for d in net.decisions} == {f"stage{i}_{k}" for i in range(1, 8)
                                              for k in ("kernel", "se")}
    assert set(net.sharing.values()) == {"mixed", "entangled"}
    assert len(net.extra) == 0
    # the store is the largest subnet plus the other kernels' and SE's candidates, not 26x it
    largest = net.count_params(net.extreme(largest=True))
    store = sum(p.numel() for p in net.weight_parameters())
    assert largest <= store < 1.3 * largest
    rng = random.Random(0)
    x = torch.randn(2, 3, 32, 32)
    for _ in range(2):
        g = net.sample(rng)
        sub = net.subnet(g, task, batches=2)           # BN recalibrated on 2 real batches
        assert type(sub).__name__ == "MobileNet" and not hasattr(sub, "sym_init_args")
        net.eval()
        sub.eval()
        with net.using(g):
            assert torch.allclose(net(x), sub(x), atol=1e-4)
        net.train()
        assert sum(p.numel() for p in sub.parameters()) == net.count_params(g)


def test_int_choices_alone_cost_the_largest_subnet(data_dir):
    space = sn.spaces.mobilenet(num_classes=10, width_multipliers=(0.25, 0.35), kernel_sizes=(3,),
                                squeeze_excite=(False,), expansions=(1, 3), depth_deltas=(-1, 0))
    net = Supernet(space, probes=0)
    largest = net.count_params(net.extreme(largest=True))
    assert sum(p.numel() for p in net.weight_parameters()) == largest


@sn.searchable
class Hybrid(nn.Module):
    """Module choices (op) and int choices (width, depth) in one program."""

    def __init__(self, op, width=8, depth=1):
        super().__init__()
        self.stem = nn.Conv2d(3, width, 3, stride=2, padding=1)
        self.body = nn.Sequential(*[op(width) for _ in range(depth)])
        self.head = nn.Linear(width, 10)

    def forward(self, x):
        return self.head(self.body(self.stem(x)).mean((2, 3)))


class Conv(nn.Sequential):
    def __init__(self, c, affine=True):
        super().__init__(nn.Conv2d(c, c, 3, padding=1), nn.BatchNorm2d(c, affine=affine), nn.ReLU())


class Skip(nn.Identity):
    def __init__(self, c):
        super().__init__()


class Pool(nn.AvgPool2d):
    def __init__(self, c):
        super().__init__(3, 1, 1)


def hybrid_space():
    return sn.Space(Hybrid(op=sn.oneof([Conv, Skip, Pool], name="op"),
                           width=sn.oneof([4, 8], name="width"), depth=sn.oneof([1, 2], name="depth")))


def test_module_and_int_choices_in_one_space(task):
    space = hybrid_space()
    net = Supernet(space)
    assert [d.name for d in net.decisions] == ["op"] and {c.name for c in net.elastic} == {"width", "depth"}
    assert isinstance(net.model.body[0], MixedOp) and len(net.model.body) == 2
    x = torch.randn(2, 3, 16, 16)
    # mixed op choices on an elastic configuration (DARTS's mode), gradients reach the alphas
    net.use(_genome(space, op="Conv", width=4, depth=1), single_path=False)
    assert net.undecided() == ["op"]
    net(x).sum().backward()
    assert net.alphas["g0"].grad is not None and net.model.stem.weight.grad[:4].abs().sum() > 0
    assert net.model.stem.weight.grad[4:].abs().sum() == 0       # channels 4..7 unused
    for g in space.genome_spec.random(random.Random(1)), _genome(space, op="Skip", width=8, depth=2):
        _, same, err = _same_output(net, g, x)
        assert same, err
    with pytest.raises(KeyError, match="nope"):
        Supernet(space, fixed={"nope": 1})
    fixed = Supernet(space, fixed={"width": 8})
    assert {c.name for c in fixed.elastic} == {"depth"}
    assert space.arch(fixed.genome()).decisions["width"] == 8


def test_darts_searches_the_module_choices_of_a_hybrid_space(task):
    algo = sn.algorithms.DARTS(selection="perturbation", epochs=1, batch_size=16, max_batches=2,
                               tune_epochs=1, tune_batches=1, eval_batches=1, top_k=1, quiet=True)
    result = sn.search(hybrid_space(), algo, task, seed=0)
    best = result.best
    assert best.metrics["selection"] == "perturbation" and set(best.metrics["alphas"]) == {"op"}
    assert best.decisions["width"] == 8 and best.decisions["depth"] == 2     # elastic: largest
    assert best.build()(torch.randn(2, 3, 16, 16)).shape == (2, 10)


def test_a_trained_supernet_is_an_evaluator_for_every_black_box_algorithm(flat, task):
    space, net = flat
    evaluator = net.evaluator(task, calibration_batches=1, eval_batches=1)
    assert evaluator.metric == "valid_acc"
    names = sn.algorithms.names(kind="black-box")
    assert {"evolution", "de", "reinforce", "nsga2", "random"} <= set(names)
    for name in names:
        result = sn.search(space, name, evaluator, budget=3, seed=0,
                           constraints=["params_M <= 0.06"], progress=False)
        assert len(result.trials) == 3 and all(t.ok for t in result.trials), name
        for t in result.trials:
            assert 0.0 <= t.metrics["valid_acc"] <= 100.0
            assert t.metrics["params_M"] == pytest.approx(net.count_params(t.genome) / 1e6)
    # the same architecture scores the same (recalibrated on the same batches each time)
    arch = space.sample(seed=5)
    assert evaluator(arch)["valid_acc"] == evaluator(arch)["valid_acc"]
    with pytest.raises(TypeError, match="inline"):
        pickle.dumps(evaluator)
    with pytest.raises(TypeError, match="inline"):
        sn.search(space, "random", evaluator, budget=1, executor="process:2", progress=False)


def test_a_subnet_trains_on_its_own_and_keeps_the_supernet_intact(flat, task):
    space, net = flat
    g = _genome(space, w1=8, w2=16, d1=2, d2=2, stem_k=5, k=3)
    sub = net.subnet(g, task, batches=1)
    before = [p.detach().clone() for p in net.weight_parameters()]
    loss = task.with_(max_batches=3, epochs=1).train(sub)
    assert torch.isfinite(torch.tensor(loss))
    assert all(torch.equal(a, b) for a, b in zip(before, net.weight_parameters()))
    fresh = net.subnet(g)
    assert any(not torch.equal(a, b) for a, b in zip(sub.parameters(), fresh.parameters()))


# ---- manyof in plain code ---------------------------------------------------------------------
@sn.searchable
class Branches(nn.Module):
    """Plain code: sums whichever branches it is given."""

    def __init__(self, branches):
        super().__init__()
        self.stem = nn.Conv2d(3, 4, 3, padding=1)
        self.branches = nn.ModuleList([b(4) for b in branches])
        self.head = nn.Linear(4, 10)

    def forward(self, x):
        x = self.stem(x)
        return self.head(sum(b(x) for b in self.branches).mean((2, 3)))


def test_manyof_over_modules_in_plain_code_is_gated_and_scored(task):
    from symnas.algorithms.bilevel import SearchData
    from symnas.algorithms.perturbation import select_inputs

    space = sn.Space(Branches(branches=sn.manyof(2, [Conv, Skip, Pool], name="br")))
    torch.manual_seed(0)
    net = Supernet(space)
    d = net.decision("br")
    assert d.kind == "manyof" and d.gated and net.sharing["br"] == "gated"
    x = torch.randn(2, 3, 8, 8)
    full = net(x)
    with net.masked("br", 1):
        assert not torch.allclose(net(x), full)          # masking a branch changes the output
    with torch.no_grad():
        net.alphas[f"g{d.genes[0]}"].copy_(torch.tensor([0.0, 2.0, 1.0]))
    genome = net.genome()                                 # magnitude: the two strongest
    assert [genome[g] for g in d.genes] == [1, 2]
    keep, rounds = select_inputs(net, "br", SearchData(task, 8, 1).valid_batches(1))
    assert len(keep) == 2 and len(rounds) == 1
    _, same, err = _same_output(net, genome, x)
    assert same, err


@sn.searchable
class Dilations(nn.Module):
    def __init__(self, dilations):
        super().__init__()
        self.convs = nn.ModuleList([nn.Conv2d(3, 3, 3, padding=d, dilation=d) for d in dilations])


def test_manyof_over_values_read_as_a_plain_list_is_refused_at_construction():
    space = sn.Space(Dilations(dilations=sn.manyof(2, [1, 2, 3], name="dil")))
    with pytest.raises(UnmixableChoice, match="'dil'") as err:
        Supernet(space)
    text = str(err.value)
    assert "plain list" in text and "manyof over modules" in text and "fixed=" in text
    with pytest.raises(ValueError, match="no choice to share"):
        Supernet(space, fixed={"dil": [1, 3]})          # nothing left to search


# ---- clearer errors ---------------------------------------------------------------------------
@sn.searchable
class ActNet(nn.Module):
    def __init__(self, act, op=None):
        super().__init__()
        self.lin = nn.Linear(4, 4)
        self.act = act()             # expects a factory
        self.op = op

    def forward(self, x):
        return self.act(self.lin(x)) if self.op is None else self.op(self.lin(x))


def test_errors_name_the_problem_and_the_fix():
    with pytest.raises(UnmixableChoice, match="classes or factories instead of instances"):
        Supernet(sn.Space(ActNet(act=sn.oneof([nn.ReLU(), nn.GELU()], name="act"))))
    hidden = sn.Space(Hybrid(op=functools.partial(Conv, affine=sn.oneof([True, False])),
                             width=sn.oneof([4, 8], name="width")))
    with pytest.raises(HiddenChoice, match="functools.partial") as err:
        Supernet(hidden)
    assert "conv.partial" in str(err.value)
    net = Supernet(sn.Space(ActNet(act=nn.Identity, op=sn.oneof([torch.relu, torch.tanh], name="f"))))
    assert net.decision("f").labels == ("relu", "tanh")


# ---- module types that cannot share ---------------------------------------------------------
@sn.searchable
class Norms(nn.Module):
    def __init__(self, norm="bn"):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)
        self.norm = nn.BatchNorm2d(4) if norm == "bn" else nn.GroupNorm(2, 4)

    def forward(self, x):
        return self.norm(self.conv(x)).mean((2, 3))


def test_different_module_types_under_one_name_keep_separate_weights():
    space = sn.Space(Norms(norm=sn.oneof(["bn", "gn"], name="norm")))
    net = Supernet(space)
    assert net.sharing["norm"] == "separate" and net.separate["norm"]
    assert len(net.extra) == 2                            # GroupNorm's weight and bias
    x = torch.randn(2, 3, 8, 8)
    for choice in ("bn", "gn"):
        _, same, err = _same_output(net, _genome(space, norm=choice), x)
        assert same, err
