"""Elastic supernets on model code the other tests do not cover, and the mistakes users make.

Found by trying the one-shot path as a new user would: ``fixed=`` decisions that a search
must not vary, a "largest" that is not the largest number (``width // reduction``),
subnets saved whole, attention layers, a fixed float, calibration batches without labels.
"""
from __future__ import annotations

import itertools
import random
import subprocess
import sys
import textwrap

import pytest
import torch
from torch import nn

import symnas as sn
from models_for_tests import subnet_agrees
from symnas.mixed import UnmixableChoice
from symnas.supernet import Supernet

pytestmark = pytest.mark.usefixtures("one_thread")


@sn.searchable
class Small(nn.Module):
    def __init__(self, w1=8, w2=16):
        super().__init__()
        self.c1 = nn.Conv2d(3, w1, 3, 2, 1)
        self.bn = nn.BatchNorm2d(w1)
        self.c2 = nn.Conv2d(w1, w2, 3, 2, 1)
        self.head = nn.Linear(w2, 10)

    def forward(self, x):
        return self.head(self.c2(self.bn(self.c1(x))).mean((2, 3)))


def small_space() -> sn.Space:
    return sn.Space(Small(w1=sn.oneof([4, 8], name="w1"), w2=sn.oneof([8, 16, 32], name="w2")))


@pytest.fixture(scope="module")
def task(data_dir):
    return sn.Task.cifar10(batch_size=16, eval_batch_size=32, valid_size=64)


# ---- fixed= decisions stay fixed through a search ---------------------------------------------
def test_a_search_over_a_supernet_with_fixed_decisions_keeps_them(task):
    space = small_space()
    net = Supernet(space, fixed={"w2": 8}, affine=None, track_running_stats=None)
    evaluator = net.evaluator(task, calibration_batches=1, eval_batches=1)
    with pytest.raises(ValueError, match=r"varies \['w2'\].*net\.search_space"):
        sn.search(space, "random", evaluator, budget=4, seed=0, progress=False)
    assert net.search_space.size == 2                          # w1 only
    result = sn.search(net.search_space, "random", evaluator, budget=4, seed=0, progress=False)
    assert {t.decisions["w2"] for t in result.trials} == {8}
    assert len({t.genome for t in result.trials}) == len(result.trials) == 2   # the whole space
    for t in result.trials:          # what is recorded is what was scored
        assert t.metrics["params_M"] * 1e6 == pytest.approx(sum(p.numel() for p in t.build().parameters()))
    assert net.subnet(result.best.genome).c2.out_channels == 8
    with pytest.raises(ValueError, match="holds fixed"):
        net.subnet(space.arch(_genome(space, w1=4, w2=16)))
    with pytest.raises(ValueError, match="a genome of 1 genes"):
        net.subnet([0])
    with pytest.raises(ValueError, match=r"out of range: w1=2 \(0..1\)"):
        net.subnet([2, 0])


def _genome(space, **decisions):
    for arch in (space.arch(g) for g in itertools.product(*(range(n) for n in space.genome_spec.sizes))):
        if arch.decisions == decisions:
            return arch.genome
    raise AssertionError(decisions)


def test_spos_with_fixed_decisions_reports_only_architectures_it_scored(task):
    spos = sn.algorithms.SPOS(epochs=1, max_batches=1, batch_size=16, search_budget=4,
                              calibration_batches=1, eval_batches=1, fixed={"w2": 8})
    result = sn.search(small_space(), spos, task, seed=0, progress=False)
    assert result.trials and {t.decisions["w2"] for t in result.trials} == {8}


def test_a_float_decision_can_be_fixed():
    class M(nn.Module):
        def __init__(self, mult=1.0, kernel=3):
            super().__init__()
            c = max(1, int(16 * mult))
            self.conv = nn.Conv2d(3, c, kernel)
            self.head = nn.Linear(c, 10)

        def forward(self, x):
            return self.head(self.conv(x).mean((2, 3)))

    space = sn.trace(lambda: M(mult=sn.floatv(0.25, 1.0, name="mult"),
                               kernel=sn.oneof([3, 5], name="kernel")))
    for value, width in ((0.5, 8), (1.0, 16)):
        net = Supernet(space, fixed={"mult": value})
        assert net.subnet(net.search_space.sample(seed=3)).conv.out_channels == width
    with pytest.raises(ValueError, match=r"outside that float decision's range \[0.25, 1.0\]"):
        Supernet(space, fixed={"mult": 2.0})


# ---- the largest architecture is the one with the most weights --------------------------------
@sn.searchable
class SENet(nn.Module):
    def __init__(self, width=16, reduction=4):
        super().__init__()
        self.conv = nn.Conv2d(3, width, 3, 1, 1)
        self.se = nn.Sequential(nn.Linear(width, width // reduction), nn.ReLU(),
                                nn.Linear(width // reduction, width), nn.Sigmoid())
        self.head = nn.Linear(width, 10)

    def forward(self, x):
        x = self.conv(x)
        return self.head((x * self.se(x.mean((2, 3)))[:, :, None, None]).mean((2, 3)))


def test_largest_and_smallest_count_weights_not_numbers():
    space = sn.Space(SENet(width=sn.oneof([8, 16], name="width"),
                           reduction=sn.oneof([1, 2, 4], name="reduction")))
    net = Supernet(space, affine=None, track_running_stats=None)
    counts = {g: net.count_params(g) for g in itertools.product(range(2), range(3))}
    assert space.arch(net.extreme(True)).decisions == {"width": 16, "reduction": 1}
    assert space.arch(net.extreme(False)).decisions == {"width": 8, "reduction": 4}
    assert net.count_params(net.extreme(True)) == max(counts.values()) == \
        sum(p.numel() for p in net.model.parameters())
    assert net.count_params(net.extreme(False)) == min(counts.values())


# ---- a subnet is an ordinary module: it saves whole, attention layers work --------------------
SAVE = """
import io, torch, symnas as sn
from torch import nn

@sn.searchable
class Net(nn.Module):
    def __init__(self, width=8):
        super().__init__()
        self.stem = nn.Conv2d(3, width, 3, 1, 1)
        self.head = nn.Linear(width, 10)
    def forward(self, x):
        return self.head(self.stem(x).mean((2, 3)))

net = sn.Supernet(sn.Space(Net(width=sn.oneof([4, 8], name="w"))))
buf = io.BytesIO()
torch.save(net.subnet([0]), buf)          # nothing built through the Space before
buf.seek(0)
model = torch.load(buf, weights_only=False)
print(type(model).__name__, model.stem.out_channels)
"""


def test_a_subnet_saves_whole_in_a_process_that_built_nothing_else(tmp_path):
    script = tmp_path / "save.py"
    script.write_text(textwrap.dedent(SAVE))
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["Net", "4"]


@sn.searchable
class Attention(nn.Module):
    def __init__(self, dim=16, layers=1):
        super().__init__()
        self.proj = nn.Linear(8, dim)
        self.attn = nn.MultiheadAttention(dim, 2, batch_first=True)
        self.enc = nn.TransformerEncoder(nn.TransformerEncoderLayer(
            dim, 2, dim_feedforward=2 * dim, batch_first=True), layers, enable_nested_tensor=False)
        self.head = nn.Linear(dim, 10)

    def forward(self, x):
        h = self.proj(x)
        return self.head(self.enc(self.attn(h, h, h)[0]).mean(1))


def test_attention_layers_become_an_elastic_supernet():
    space = sn.Space(Attention(dim=sn.oneof([8, 16], name="dim"), layers=sn.oneof([1, 2], name="layers")))
    torch.manual_seed(0)
    net = Supernet(space)
    assert net.sharing == {"dim": "entangled", "layers": "entangled"}
    x = torch.randn(3, 5, 8)
    net.eval()
    for g in itertools.product(range(2), range(2)):
        model = subnet_agrees(net, g, x)
        assert sum(p.numel() for p in model.parameters()) == net.count_params(g)
    assert sum(p.numel() for p in net.model.parameters()) == net.count_params(net.extreme(True))


# ---- calibration data as users hold it; missing Tasks -----------------------------------------
def test_calibration_takes_bare_input_batches_and_names_what_it_takes():
    net = Supernet(small_space(), affine=None, track_running_stats=None)
    x = torch.randn(16, 3, 16, 16)
    stats = [net.subnet([0, 0], data).bn.running_mean for data in ([x], x, [(x, torch.zeros(16))])]
    assert torch.equal(stats[0], stats[1]) and torch.equal(stats[0], stats[2])
    assert not torch.equal(stats[0], torch.zeros(4))                 # recalibrated
    with pytest.raises(TypeError, match=r"an input tensor or an \(x, y\) pair"):
        net.subnet([0, 0], [[1, 2]])


def test_a_missing_task_is_named():
    net = Supernet(small_space())
    with pytest.raises(TypeError, match="needs a Task"):
        net.evaluator(None)
    with pytest.raises(TypeError, match="needs a Task"):
        sn.algorithms.Sandwich(epochs=1).train(net, None, seed=0)


def test_a_tuple_of_choices_is_refused_with_what_to_write():
    @sn.searchable
    class Pair(nn.Module):
        def __init__(self, widths=(8, 16)):
            super().__init__()
            self.c1 = nn.Conv2d(3, widths[0], 3)
            self.c2 = nn.Conv2d(widths[0], widths[1], 3)

    with pytest.raises(ValueError, match="tuple holding a choice.*Write a list"):
        Pair(widths=(sn.oneof([4, 8]), sn.oneof([8, 16])))
    space = sn.Space(Pair(widths=[sn.oneof([4, 8]), sn.oneof([8, 16])]))
    assert space.size == 4 and space.build([1, 0]).c2.out_channels == 8


def test_a_partial_of_a_searchable_class_as_a_factory_says_to_use_a_function():
    @sn.searchable
    class ConvK(nn.Sequential):
        def __init__(self, cin, cout, k=3):
            super().__init__(nn.Conv2d(cin, cout, k, 1, k // 2), nn.ReLU())

    @sn.searchable
    class Net(nn.Module):
        def __init__(self, op, width=8):
            super().__init__()
            self.stem = nn.Conv2d(3, width, 3, 2, 1)
            self.op = op(width, width)

    space = sn.Space(Net(op=ConvK.partial(k=sn.oneof([3, 5])), width=sn.oneof([4, 8])))
    with pytest.raises(ValueError, match="pass a searchable function instead"):
        space.build([1, 0])
    with pytest.raises(ValueError, match=r"ConvK.partial\(...\) is given where a layer factory"):
        Supernet(space)

    @sn.searchable
    def convk(cin, cout, k=3):
        return ConvK(cin, cout, k)

    space = sn.Space(Net(op=convk.partial(k=sn.oneof([3, 5])), width=sn.oneof([4, 8])))
    assert space.build([1, 0]).op[0].kernel_size == (5, 5)
    assert set(Supernet(space).sharing.values()) == {"entangled"}

    # with every argument defaulted, `.partial()` is a complete instance: choosing among such
    # instances and calling the chosen one with a width is a factory call on a module
    complete = sn.oneof([ConvK.partial(cin=8, cout=8), ConvK.partial(cin=8, cout=8, k=5)], name="op")
    with pytest.raises(UnmixableChoice, match=r"without a tensor, like a layer factory \(`\(8, 8\)`\)"):
        Supernet(sn.Space(Net(op=complete, width=8)))


# ---- choices nested in a candidate other than the largest; searchable functions given bare --
@sn.searchable
def wide(c):                          # the module candidate with the most weights, no choice inside
    return nn.Sequential(nn.Conv2d(c, 32, 3, padding=1), nn.ReLU(), nn.Conv2d(32, c, 3, padding=1))


@sn.searchable
def thin(c, w=8, norm="bn"):
    norm_layer = nn.BatchNorm2d(w) if norm == "bn" else nn.GroupNorm(2, w)
    return nn.Sequential(nn.Conv2d(c, w, 1), norm_layer, nn.ReLU(), nn.Conv2d(w, c, 1))


@sn.searchable
class Residual(nn.Module):
    def __init__(self, block, stem_k=3):
        super().__init__()
        self.stem = nn.Conv2d(3, 8, stem_k, padding=stem_k // 2)
        self.block = block(8)
        self.head = nn.Linear(8, 10)

    def forward(self, x):
        x = self.stem(x)
        return self.head((x + self.block(x)).mean((2, 3)))


def test_choices_nested_in_a_smaller_candidate_are_probed_where_they_are_built():
    inner = thin.partial(w=sn.oneof([4, 8, 12], name="w"), norm=sn.oneof(["bn", "gn"], name="norm"))
    space = sn.Space(Residual(block=sn.oneof([wide.partial(), inner], name="blk")))
    torch.manual_seed(0)
    net = Supernet(space)
    # probed on the path that builds them (not the largest candidate, where they do not exist)
    assert net.sharing == {"blk": "mixed", "w": "entangled", "norm": "separate"}
    assert all("GroupNorm" in key for key in net.separate["norm"])
    x = torch.randn(2, 3, 8, 8)
    net.eval()
    for g in [(0, 0, 0), *itertools.product([1], range(3), range(2))]:
        model = subnet_agrees(net, g, x)                 # GroupNorm subnets need their own weights
        assert model.block[0].out_channels == (32 if g[0] == 0 else (4, 8, 12)[g[1]])
    # the nested choice fixed: moot where the candidate holding it is not taken
    net = Supernet(space, fixed={"norm": "gn"}).eval()
    assert net.search_space.size == 4                       # wide, or thin at 3 widths
    result = sn.search(net.search_space, "random", lambda arch: 1.0, budget=8, seed=0, progress=False)
    assert len({t.genome for t in result.trials}) == 4
    for t in result.trials:
        subnet_agrees(net, t.genome, x)
        assert t.decisions.get("norm", "gn") == "gn"


def test_a_searchable_function_given_bare_as_a_factory_says_to_pass_its_partial():
    space = sn.Space(Residual(block=sn.oneof([wide, thin.partial()], name="blk")))
    for build in (lambda: space.build([0]), lambda: Supernet(space)):
        with pytest.raises(ValueError, match=r"`wide` with arguments binds them.*pass `wide.partial\(\)`"):
            build()
    # PyGlove's own style, binding then calling (block(8)()), keeps working
    @sn.searchable
    class BindThenCall(nn.Module):
        def __init__(self, block):
            super().__init__()
            self.block = block(8)()

    space = sn.Space(BindThenCall(block=sn.oneof([wide, thin], name="blk")))
    assert [space.build([k]).block[0].out_channels for k in range(2)] == [32, 8]
    assert space.arch([0]).decisions["blk"].endswith("wide")       # labels as before


# ---- layers of one shape written on different lines keep their own weights --------------------
@sn.searchable
class FlatStages(nn.Module):
    def __init__(self, d1=2, d2=2):
        super().__init__()
        layers = [nn.Conv2d(3, 8, 3, padding=1), nn.ReLU()]          # stem
        for _ in range(d1):
            layers += [nn.Conv2d(8, 8, 3, padding=1), nn.ReLU()]     # stage 1
        for _ in range(d2):
            layers += [nn.Conv2d(8, 8, 3, padding=1), nn.ReLU()]     # stage 2
        layers += [nn.Conv2d(8, 8, 3, padding=1)]                    # a final layer, same shape
        self.body = nn.Sequential(*layers)
        self.head = nn.Linear(8, 3)

    def forward(self, x):
        return self.head(self.body(x).mean((2, 3)))


def test_a_shorter_stage_of_identical_layers_does_not_shift_the_layers_after_it():
    """Before: every conv after the stem has one shape, so with one block in stage 1, stage 2
    took stage 1's second block and the final layer stage 2's last; the store's final layer
    was used by the largest configuration only. The lines that built each layer tell them
    apart."""
    torch.manual_seed(0)
    space = sn.Space(FlatStages(d1=sn.oneof([1, 2], name="d1"), d2=sn.oneof([1, 2], name="d2")))
    net = Supernet(space).eval()
    convs = [n for n, m in net.model.body.named_children() if isinstance(m, nn.Conv2d)]
    role = dict(zip((f"body.{n}.weight" for n in convs),
                    ["stem", "s1b0", "s1b1", "s2b0", "s2b1", "final"]))
    x = torch.randn(2, 3, 8, 8)
    for g in itertools.product(range(2), repeat=2):
        d1, d2 = (v + 1 for v in g)
        model = subnet_agrees(net, g, x)
        with net.using(g):
            taken = [role[key] for name, key, _ in net._current()[1] if key in role]
        want = ["stem", *[f"s1b{i}" for i in range(d1)], *[f"s2b{i}" for i in range(d2)], "final"]
        assert taken == want, g
        assert len([m for m in model.body if isinstance(m, nn.Conv2d)]) == len(want)


def _conv():
    return nn.Conv2d(8, 8, 3, padding=1)


@sn.searchable
class LambdaStages(nn.Module):
    """FlatStages with each stage made by a lambda, the lambdas called from one loop line."""

    def __init__(self, d1=2, d2=2):
        super().__init__()
        stages = [lambda: [_conv() for _ in range(d1)],
                  lambda: [_conv() for _ in range(d2)]]
        layers = [nn.Conv2d(3, 8, 3, padding=1)]
        for stage in stages:
            layers += stage()
        self.body = nn.Sequential(*layers, _conv())


def test_stages_made_by_lambdas_called_from_one_line_keep_their_weights():
    """Sites count lines from each function's first line; two lambdas have one name, so the
    line each is defined on tells them apart (two on one line cannot be)."""
    space = sn.Space(LambdaStages(d1=sn.oneof([1, 2], name="d1"), d2=sn.oneof([1, 2], name="d2")))
    net = Supernet(space)
    names = [f"body.{i}.weight" for i in range(6)]
    role = dict(zip(names, ["stem", "s1b0", "s1b1", "s2b0", "s2b1", "final"]))
    with net.using((0, 0)):
        assert [role[k] for _, k, _ in net._current()[1] if k in role] == \
            ["stem", "s1b0", "s2b0", "final"]


# ---- manyof over modules: picks in any order; candidates with choices of their own -----------
@sn.searchable
class Sum(nn.Module):
    def __init__(self, branches):
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, padding=1)
        self.branches = nn.ModuleList([b(8) for b in branches])
        self.head = nn.Linear(8, 10)

    def forward(self, x):
        x = self.stem(x)
        return self.head(sum(b(x) for b in self.branches).mean((2, 3)))


def test_a_manyof_subnet_takes_its_picks_in_the_order_the_genome_lists_them():
    space = sn.Space(Sum(branches=sn.manyof(2, [wide.partial(), thin.partial(), nn.Identity], name="br")))
    torch.manual_seed(0)
    net = Supernet(space).eval()
    x = torch.randn(2, 3, 8, 8)
    for g in itertools.permutations(range(3), 2):      # (1, 0) put thin first: its weights were lost
        model = subnet_agrees(net, g, x)
        assert [type(b).__name__ for b in model.branches] == \
            [type(space.build(g).branches[i]).__name__ for i in range(2)]


@sn.searchable
class Layers(nn.Module):
    """A manyof's branches once per layer in one ModuleList, after a stem in the same list."""

    def __init__(self, branches, depth):
        super().__init__()
        self.k = len(branches)
        layers = [b(8) for _ in range(depth) for b in branches]
        self.m = nn.ModuleList([nn.Conv2d(3, 8, 3, padding=1), *layers])
        self.head = nn.Linear(8, 10)

    def forward(self, x):
        x = self.m[0](x)
        for i in range(1, len(self.m), self.k):
            x = torch.relu(sum(b(x) for b in self.m[i:i + self.k]))
        return self.head(x.mean((2, 3)))


def test_manyof_picks_repeated_per_layer_beside_other_children_keep_their_own_weights():
    branches = sn.manyof(2, [wide.partial(), thin.partial(), nn.Identity], name="br")
    space = sn.Space(Layers(branches=branches, depth=sn.oneof([1, 2], name="depth")))
    torch.manual_seed(0)
    net = Supernet(space).eval()
    assert net.sharing == {"br": "gated", "depth": "entangled"}      # depth 1 removes layer 2
    no_layers = sn.Space(Layers(branches=branches, depth=sn.oneof([0, 2], name="depth")))
    assert Supernet(no_layers).sharing["depth"] == "entangled"      # depth 0 removes them all
    x = torch.randn(2, 3, 8, 8)
    for picks in itertools.permutations(range(3), 2):
        for depth in range(2):
            g = (*picks, depth)
            model = subnet_agrees(net, g, x)
    model = net.subnet((1, 0, 1))                # layer 2's wide is the store's layer-2 wide
    assert torch.equal(model.m[4][0].weight, net.model.m[4].op[0].weight)
    assert not torch.equal(model.m[4][0].weight, net.model.m[1].op[0].weight)


@sn.searchable
class Wrapped(nn.Module):
    """Each pick wrapped with a projection of its own; the picks summed, or chained in order."""

    def __init__(self, branches, k=3, chain=False):
        super().__init__()
        self.chain = chain
        self.stem = nn.Conv2d(3, 8, k, padding=k // 2)
        self.branches = nn.ModuleList([nn.Sequential(b(8), nn.Conv2d(8, 8, 1)) for b in branches])
        self.head = nn.Linear(8, 10)

    def forward(self, x):
        x = self.stem(x)
        if self.chain:                     # the result depends on the order of the picks
            for b in self.branches:
                x = b(x)
        else:
            x = sum(b(x) for b in self.branches)
        return self.head(x.mean((2, 3)))


@pytest.mark.parametrize("chain", [False, True])
@pytest.mark.parametrize("elastic", [False, True])
@pytest.mark.parametrize("k", [2, 3])
def test_manyof_picks_wrapped_or_chained_run_as_their_subnet(chain, elastic, k):
    """Before: picks out of order failed with a KeyError when wrapped (and with every candidate
    picked, k == 3, wrappers were paired by name whatever they held), and ran in the
    candidates' order when chained; a single path ran the unpicked wrappers, adding their biases."""
    branches = sn.manyof(k, [wide.partial(), thin.partial(), nn.Identity], name="br")
    stem_k = sn.oneof([1, 3], name="k") if elastic else 3
    space = sn.Space(Wrapped(branches=branches, k=stem_k, chain=chain))
    torch.manual_seed(0)
    net = Supernet(space).eval()
    x = torch.randn(2, 3, 8, 8)
    for picks in itertools.permutations(range(3), k):
        g = (*picks, 1) if elastic else picks
        model = subnet_agrees(net, g, x)
        for b, pick in zip(model.branches, picks):      # each wrapper is its candidate's own
            assert torch.equal(b[1].weight, net.model.branches[pick][1].weight)


def test_a_manyof_whose_candidates_hold_choices_is_refused_with_what_to_write():
    candidates = [wide.partial(), thin.partial(w=sn.oneof([4, 8], name="w")), nn.Identity]
    space = sn.Space(Sum(branches=sn.manyof(2, candidates, name="br")))
    assert space.build(space.genome_spec.random(random.Random(0)))      # black-box builds it
    with pytest.raises(ValueError, match=r"'br' is a manyof whose candidates hold choices.*'w'.*partial"):
        Supernet(space)
    with pytest.raises(ValueError, match=r"'br' is a manyof whose candidates hold choices"):
        Supernet(space, fixed={"br": [candidates[0], nn.Identity]})      # fixed or not


@sn.searchable
class Stack(nn.Module):
    """Layers given as plain values: a choice over lists, one of them holding choices."""

    def __init__(self, layers):
        super().__init__()
        mods, c = [], 3
        for w, norm in layers:
            mods += [nn.Conv2d(c, w, 3, padding=1), nn.BatchNorm2d(w) if norm == "bn" else nn.GroupNorm(2, w)]
            c = w
        self.body = nn.Sequential(*mods)
        self.head = nn.Linear(c, 10)

    def forward(self, x):
        return self.head(self.body(x).mean((2, 3)))


def test_choices_nested_in_a_choice_over_values_are_refused_unless_held():
    space = sn.Space(Stack(layers=sn.oneof([
        [[8, "bn"], [8, "bn"], [8, "bn"]],
        [[8, "bn"], [sn.oneof([4, 8], name="w"), sn.oneof(["bn", "gn"], name="norm")]]], name="depth")))
    with pytest.raises(ValueError, match=r"'w', 'norm' \(inside a candidate of 'depth'\) are never built"
                                         r".*fixed=\{'w': \.\.\., 'norm': \.\.\.\}"):
        Supernet(space)                  # before: subnets silently built w and norm at their defaults
    net = Supernet(space, fixed={"w": 4, "norm": "gn"}).eval()
    x = torch.randn(2, 3, 8, 8)
    for g in net.search_space.genome_spec.random(random.Random(0)), (1, 0, 1):
        subnet_agrees(net, g, x)
    assert isinstance(net.subnet((1, 0, 1)).body[3], nn.GroupNorm)
    # fixed to the candidate without them, they are moot
    blocks = sn.oneof([wide.partial(), thin.partial(w=sn.oneof([4, 8], name="w"))], name="blk")
    fixed = Supernet(sn.Space(Residual(block=blocks, stem_k=sn.oneof([1, 3], name="k"))), fixed={"blk": 0})
    assert fixed.search_space.size == 2 and fixed.subnet((0, 0, 1)).block[0].out_channels == 32


class Branchy(nn.Module):
    def __init__(self, c, branches):
        super().__init__()
        self.branches = nn.ModuleList([b(c) for b in branches])

    def forward(self, x):
        return sum(b(x) for b in self.branches)


@sn.searchable
def summed(c, branches):
    return Branchy(c, branches)


def test_a_manyof_inside_a_module_candidate_builds_and_shares():
    branches = sn.manyof(2, [wide.partial(), thin.partial(), nn.Identity], name="br")
    blocks = sn.oneof([wide.partial(), summed.partial(branches=branches)], name="blk")
    space = sn.Space(Residual(block=blocks))
    spec = space.genome_spec          # before: StopIteration while laying out the genome
    assert [(g.parent, g.parent_value) for g in spec.genes] == [(None, None), (0, 1), (0, 1)]
    genomes = sorted({spec.random(random.Random(i)) for i in range(200)})
    assert len(genomes) == space.size == 7                      # wide, or 6 ordered picks
    x = torch.randn(2, 3, 8, 8)
    for g in genomes:
        assert spec.from_dna(spec.to_dna(g)) == g and space.build(g)(x).shape == (2, 10)
    torch.manual_seed(0)
    net = Supernet(space).eval()
    assert net.sharing == {"blk": "mixed", "br": "gated"}
    for g in genomes:                 # (0, 0, 0): the manyof is inactive, its picks moot
        subnet_agrees(net, g, x)


def test_extremes_count_the_choices_inside_a_candidate():
    """Before: a candidate holding a mixed op or gated branches counted all their candidates,
    so the largest architecture was one with a choice inside (and the smallest the other way)."""
    nested_oneof = sn.oneof([thin.partial(w=16), thin.partial(w=8), thin.partial(w=4)], name="br")
    nested_manyof = sn.manyof(2, [thin.partial(w=16), thin.partial(w=8), thin.partial(w=4)], name="br")
    for inner in (nested_oneof, nested_manyof):
        blocks = sn.oneof([thin.partial(w=24), summed.partial(branches=[inner] if inner is nested_oneof
                                                               else inner)], name="blk")
        space = sn.Space(Residual(block=blocks, stem_k=sn.oneof([1, 3], name="k")))
        net = Supernet(space)
        every = {g: net.count_params(g) for g in {space.genome_spec.random(random.Random(i))
                                                   for i in range(300)}}
        assert len(every) == space.size
        assert net.count_params(net.extreme(True)) == max(every.values())
        assert net.count_params(net.extreme(False)) == min(every.values())


class Square(nn.Module):              # 9c^2 + c weights
    def __init__(self, c):
        super().__init__()
        self.conv = nn.Conv2d(c, c, 3, padding=1)

    def forward(self, x):
        return self.conv(x)


class Bottle(nn.Module):              # through 64 channels: 129c + 64 weights
    def __init__(self, c):
        super().__init__()
        self.a, self.b = nn.Conv2d(c, 64, 1), nn.Conv2d(64, c, 1)

    def forward(self, x):
        return self.b(self.a(x))


@sn.searchable
class Crossing(nn.Module):
    def __init__(self, block, width=8):
        super().__init__()
        self.stem = nn.Conv2d(3, width, 1)
        self.block = block(width)
        self.head = nn.Linear(width, 10)

    def forward(self, x):
        return self.head(self.block(self.stem(x)).mean((2, 3)))


def test_extremes_where_the_smaller_candidate_depends_on_the_width():
    """Before: candidates were compared at the largest width only, where ``Bottle`` is the
    smaller, so the "smallest" architecture was ``Bottle`` at width 4 (646 weights) and not
    ``Square`` at width 4 (214)."""
    space = sn.Space(Crossing(block=sn.oneof([Square, Bottle], name="block"),
                              width=sn.oneof([4, 32], name="width")))
    net = Supernet(space)
    every = {g: net.count_params(g) for g in itertools.product(range(2), repeat=2)}
    assert net.count_params(net.extreme(True)) == max(every.values()) == 9706
    assert net.count_params(net.extreme(False)) == min(every.values()) == 214
    assert space.arch(net.extreme(False)).decisions == {"block": "test_elastic_user_models.Square",
                                                        "width": 4}


@sn.searchable
class CrossingF(Crossing):
    def __init__(self, block, mult=1.0):
        super().__init__(block, width=max(1, int(32 * mult)))


def test_extremes_where_a_float_sets_the_width():
    """Before: with only a float elastic, the candidates were compared at the largest width."""
    space = sn.Space(CrossingF(block=sn.oneof([Square, Bottle], name="block"),
                               mult=sn.floatv(0.125, 1.0, name="mult")))
    net = Supernet(space)
    assert net.count_params(net.extreme(False)) == 214 and net.count_params(net.extreme(True)) == 9706


def test_a_fixed_manyof_over_equal_candidates_takes_each_once():
    candidates = [wide.partial(), wide.partial(), thin.partial()]      # two equal candidates
    space = sn.Space(Wrapped(branches=sn.manyof(2, candidates, name="br"), k=sn.oneof([1, 3], name="k")))
    net = Supernet(space, fixed={"br": [candidates[0], candidates[1]]})
    assert net.builder.fixed_genes == {0: 0, 1: 1}             # before: [0, 0], every subnet refused
    model = net.subnet(net.search_space.sample(seed=0))
    assert [b[0][0].out_channels for b in model.branches] == [32, 32]
    assert Supernet(space, fixed={"br": [wide.partial(), wide.partial()]}).builder.fixed_genes == {0: 0, 1: 1}
    with pytest.raises(ValueError, match=r"lists .*thin.* more often than the candidates hold it"):
        Supernet(space, fixed={"br": [candidates[2], candidates[2]]})


class Node(nn.Module):
    """A DARTS-style node written by hand: one op per chosen input, in a ModuleDict keyed by it."""

    def __init__(self, inputs, c=8):
        super().__init__()
        self.inputs = inputs
        self.weighting = callable(getattr(inputs, "weights", None))    # the supernet's InputChoice
        self.src = list(range(3)) if self.weighting else [int(i) for i in inputs]
        self.ops = nn.ModuleDict({str(i): nn.Conv2d(c, c, 3, padding=1) for i in self.src})

    def forward(self, x):
        states = [x, torch.relu(x), torch.tanh(x)]
        w = self.inputs.weights() if self.weighting else None
        if w is None:
            return sum(self.ops[str(i)](states[i]) for i in self.src)
        return sum(w[i] * self.ops[str(i)](states[i]) for i in range(3))


@sn.searchable
class NodeNet(nn.Module):
    def __init__(self, inputs, k=3):
        super().__init__()
        self.stem = nn.Conv2d(3, 8, k, padding=k // 2)
        self.node = Node(inputs)
        self.head = nn.Linear(8, 10)

    def forward(self, x):
        return self.head(self.node(self.stem(x)).mean((2, 3)))


@pytest.mark.parametrize("elastic", [False, True])
def test_modules_keyed_by_input_take_their_keys_weights(elastic):
    """Before: ops {'0', '2'} were aligned by order with the store's {'0', '1', '2'}."""
    inputs = sn.manyof(2, [0, 1, 2], sorted=True, name="inp")
    space = sn.Space(NodeNet(inputs=inputs, k=sn.oneof([1, 3], name="k") if elastic else 3))
    torch.manual_seed(0)
    net = Supernet(space).eval()
    x = torch.randn(2, 3, 8, 8)
    for picks in itertools.combinations(range(3), 2):
        g = (*picks, 1) if elastic else picks
        model = subnet_agrees(net, g, x)
        for i in picks:
            assert torch.equal(model.node.ops[str(i)].weight, net.model.node.ops[str(i)].weight)


@sn.searchable
class Shortcut(nn.Module):
    """A residual whose skip is an identity at equal widths and a 1x1 conv + BN otherwise
    (NATS-Bench's cells, ResNet's downsampling shortcuts)."""

    def __init__(self, c_in=16, c_out=16):
        super().__init__()
        self.stem = nn.Conv2d(3, c_in, 3, padding=1)
        self.body = nn.Conv2d(c_in, c_out, 3, padding=1)
        self.skip = nn.Identity() if c_in == c_out else nn.Sequential(nn.Conv2d(c_in, c_out, 1),
                                                                      nn.BatchNorm2d(c_out))
        self.head = nn.Linear(c_out, 10)

    def forward(self, x):
        x = self.stem(x)
        return self.head((self.body(x) + self.skip(x)).mean((2, 3)))


def test_a_skip_that_becomes_a_conv_keeps_its_weights_apart_once():
    widths = [4, 8, 12, 16]
    space = sn.Space(Shortcut(c_in=sn.oneof(widths, name="c_in"), c_out=sn.oneof(widths, name="c_out")))
    torch.manual_seed(0)
    net = Supernet(space).eval()
    assert net.sharing == {"c_in": "separate", "c_out": "separate"}
    for name in ("c_in", "c_out"):      # each tensor of the 1x1 conv + BN once (before: once per value)
        assert len(net.separate[name]) == len(set(net.separate[name])) == 7
    x = torch.randn(2, 3, 8, 8)
    for g in itertools.product(range(4), range(4)):
        subnet_agrees(net, g, x)


@sn.searchable
class WrappedLayers(nn.Module):
    """Wrapped picks repeated once per layer in one flat ModuleList, the depth a choice."""

    def __init__(self, branches, depth):
        super().__init__()
        self.k = len(branches)
        self.stem = nn.Conv2d(3, 8, 3, padding=1)
        self.m = nn.ModuleList([nn.Sequential(b(8), nn.Conv2d(8, 8, 1))
                                for _ in range(depth) for b in branches])
        self.head = nn.Linear(8, 10)

    def forward(self, x):
        x = self.stem(x)
        for i in range(0, len(self.m), self.k):
            x = torch.relu(sum(b(x) for b in self.m[i:i + self.k]))
        return self.head(x.mean((2, 3)))


@sn.searchable
class Paired(nn.Module):
    """Two picks in one module, or the picks taken by position: what a supernet cannot hold."""

    def __init__(self, branches, k=3, paired=True):
        super().__init__()
        self.stem = nn.Conv2d(3, 8, k, padding=k // 2)
        if paired:
            self.pairs = nn.ModuleList([nn.Sequential(branches[i](8), branches[i + 1](8))
                                        for i in range(0, len(branches) - 1, 2)])
        else:
            self.pairs = nn.ModuleList([branches[0](8), branches[1](8)])
        self.head = nn.Linear(8, 10)

    def forward(self, x):
        x = self.stem(x)
        for p in self.pairs:
            x = p(x)
        return self.head(x.mean((2, 3)))


def test_wrapped_picks_per_layer_and_picks_a_supernet_cannot_hold():
    branches = lambda: sn.manyof(2, [wide.partial(), thin.partial(), nn.Identity], name="br")  # noqa: E731
    space = sn.Space(WrappedLayers(branches=branches(), depth=sn.oneof([1, 2], name="depth")))
    torch.manual_seed(0)
    net = Supernet(space).eval()
    x = torch.randn(2, 3, 8, 8)
    for picks in itertools.permutations(range(3), 2):     # before: 8 of 12 failed
        for depth in range(2):
            model = subnet_agrees(net, (*picks, depth), x)
            for layer in range(depth + 1):
                for j, pick in enumerate(picks):
                    assert torch.equal(model.m[2 * layer + j][1].weight,
                                       net.model.m[3 * layer + pick][1].weight)
    # picks taken by position: the other candidates are never built (before: a KeyError later)
    with pytest.raises(ValueError, match=r"'br' is a manyof whose candidates \[2\] the program never "
                                         r"builds.*for b in branches"):
        Supernet(sn.Space(Paired(branches=branches(), paired=False)))
    # two picks in one module: refused when such a pair is first run, saying why
    four = sn.manyof(2, [wide.partial(), thin.partial(), nn.Identity, nn.Identity], name="br")
    net = Supernet(sn.Space(Paired(branches=four, k=sn.oneof([1, 3], name="k")))).eval()
    subnet_agrees(net, (0, 1, 1), x)
    with pytest.raises(ValueError, match=r"picks \[0, 2\] sit together in 'pairs.0'.*one module per pick"):
        net.subnet((0, 2, 1))


@sn.searchable
class Attrs(nn.Module):
    """An optional attribute beside one whose type changes with another choice."""

    def __init__(self, use_proj=True, act="relu", c=8):
        super().__init__()
        self.stem = nn.Conv2d(3, c, 3, padding=1)
        self.proj = nn.Conv2d(c, c, 1) if use_proj else None
        self.post = nn.Conv2d(c, c, 1)
        self.act = nn.ReLU() if act == "relu" else nn.GELU()
        self.head = nn.Linear(c, 10)

    def forward(self, x):
        x = self.stem(x)
        if self.proj is not None:
            x = self.proj(x)
        return self.head(self.act(self.post(x)).mean((2, 3)))


def test_attributes_keep_their_own_weights_when_a_sibling_changes_type():
    space = sn.Space(Attrs(use_proj=sn.oneof([True, False], name="proj"),
                           act=sn.oneof(["relu", "gelu"], name="act"), c=sn.oneof([4, 8], name="c")))
    torch.manual_seed(0)
    net = Supernet(space).eval()
    x = torch.randn(2, 3, 8, 8)
    for g in itertools.product(range(2), range(2), range(2)):
        model = subnet_agrees(net, g, x)        # before: with gelu, post took proj's weights
        assert torch.equal(model.post.weight, net.model.post.weight[:model.post.out_channels,
                                                                    :model.post.in_channels])


def test_recalibration_and_fix_on_a_manyof_single_path():
    space = sn.Space(Sum(branches=sn.manyof(2, [wide.partial(), thin.partial(), nn.Identity], name="br")))
    torch.manual_seed(0)
    net = Supernet(space, track_running_stats=None)
    xb = torch.randn(16, 3, 8, 8)
    calibrated = net.subnet((1, 0), [xb])         # before: statistics at 0.1 of the batch's
    fresh = net.subnet((1, 0))
    for m in fresh.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.reset_running_stats()
            m.momentum = None
    fresh.train()(xb)
    stats = [(a.running_mean, b.running_mean) for a, b in zip(calibrated.modules(), fresh.modules())
             if isinstance(a, nn.BatchNorm2d)]
    assert stats and all(torch.allclose(a, b, atol=1e-6) for a, b in stats)
    # fix keeps the order of an unsorted manyof's picks, and sorts a sorted one's
    net.fix("br", [2, 0])
    assert net.decision("br").chosen == [2, 0]
    ordered = sn.Space(Sum(branches=sn.manyof(2, [wide.partial(), thin.partial(), nn.Identity], sorted=True,
                                              name="br")))
    sorted_net = Supernet(ordered)
    sorted_net.fix("br", [2, 0])
    assert sorted_net.decision("br").chosen == [0, 2] and sorted_net.genome() == (0, 2)
