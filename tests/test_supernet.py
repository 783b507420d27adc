"""Supernets derived from user spaces, NAS-Bench-201 and DARTS: mixing, sharing, masking, deriving."""
from __future__ import annotations

import pytest
import torch
from torch import nn

import symnas as sn
from symnas.supernet import InputChoice, MixedOp, Supernet


# ---- a user's own small space --------------------------------------------------------------
@sn.searchable
class TinyNet(nn.Module):
    def __init__(self, op1, op2, act=None, width=8):
        super().__init__()
        self.stem = nn.Conv2d(3, width, 3, stride=4, padding=1)
        self.a = op1(width, width)
        self.act = act if act is not None else nn.Identity()
        self.b = op2(width, width)
        self.head = nn.Linear(width, 10)

    def forward(self, x):
        return self.head(self.b(self.act(self.a(self.stem(x)))).mean((2, 3)))


class Zero(nn.Module):
    def __init__(self, c_in, c_out):
        super().__init__()

    def forward(self, x):
        return x.mul(0.0)


class Conv3(nn.Sequential):
    def __init__(self, c_in, c_out, affine=True):
        super().__init__(nn.ReLU(), nn.Conv2d(c_in, c_out, 3, padding=1),
                         nn.BatchNorm2d(c_out, affine=affine))


class Pool(nn.AvgPool2d):
    def __init__(self, c_in, c_out):
        super().__init__(3, 1, 1)


@sn.searchable
class Residual(nn.Module):
    def __init__(self, act):
        super().__init__()
        self.act = act

    def forward(self, x):
        return x + self.act(x)


OPS = [Zero, Conv3, Pool]


def tiny_space(width=8):
    return sn.Space(TinyNet(op1=sn.oneof(OPS, name="op"), op2=sn.oneof(OPS, name="op"),
                            act=sn.oneof([nn.ReLU(), Residual(act=sn.oneof([nn.GELU(), nn.Tanh()]))],
                                         name="act"),
                            width=width))


@pytest.fixture(scope="module")
def batch(data_dir):
    from symnas.datasets import cifar10_batch
    return cifar10_batch(32, seed=0)


def test_user_space_supernet_trains_and_its_dna_builds(batch):
    space = tiny_space()
    torch.manual_seed(0)
    net = Supernet(space)
    # 'op' is shared by both places; the nested act choice has its own alpha.
    assert [d.name for d in net.decisions] == ["op", "act", "act[=1/2].act"]
    assert len(net.arch_parameters()) == 3
    assert isinstance(net.model.act, MixedOp) and isinstance(net.model.act.ops[1].act, MixedOp)
    # BN inside the candidates has no affine parameters (the DARTS default).
    bns = [m for m in net.modules() if isinstance(m, nn.BatchNorm2d)]
    assert bns and all(not m.affine and m.weight is None for m in bns)
    x, y = batch
    opt = torch.optim.SGD(net.parameters(), lr=0.05)
    before = [p.detach().clone() for p in net.arch_parameters()]
    losses = []
    for _ in range(5):
        loss = nn.functional.cross_entropy(net(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    assert all(torch.isfinite(torch.tensor(losses)))
    assert any(not torch.equal(a, b) for a, b in zip(before, net.arch_parameters()))
    arch = net.arch()
    assert arch.genome == space.genome_spec.canonical(arch.genome)
    model = arch.build()
    assert model(x).shape == (32, 10)


def test_shared_names_share_alphas_across_nb201_cells(data_dir):
    space = sn.spaces.nasbench201(C=4, N=2)
    net = Supernet(space)
    mixed = [m for m in net.modules() if isinstance(m, MixedOp)]
    assert len(mixed) == 6 * 2 * 3            # 6 edges x N cells x 3 stages
    assert len(net.arch_parameters()) == 6    # one alpha per edge name
    assert {m.gene for m in mixed} == set(range(6))
    with torch.no_grad():
        net.alphas["g0"].copy_(torch.tensor([5.0, 0.0, 0.0, 1.0, 0.0]))   # 'none' strongest
    genome = net.genome()
    assert genome[0] == 3                     # magnitude excludes `none`
    assert net.genome(include_none=True)[0] == 0      # DARTS-PT's baseline: argmax over all
    out = net(torch.randn(2, 3, 32, 32))
    assert out.shape == (2, 10)


def test_a_width_choice_is_elastic_and_can_still_be_fixed():
    space = sn.Space(TinyNet(op1=sn.oneof(OPS, name="op"), op2=Conv3,
                             width=sn.oneof([8, 16], name="width")))
    net = Supernet(space)                        # no freezing needed: width shares slices
    assert [c.name for c in net.elastic] == ["width"] and net.sharing["width"] == "entangled"
    assert net.model.head.in_features == 16      # the store is the widest configuration
    assert space.arch(net.genome()).decisions["width"] == 16
    net.use(space.genome_spec.canonical((1, 0)), single_path=False)
    assert net.config == {"width": 8} and net(torch.randn(2, 3, 16, 16)).shape == (2, 10)
    fixed = Supernet(space, fixed={"width": 16})
    assert fixed.model.head.in_features == 16 and not fixed.elastic
    assert space.arch(fixed.genome()).decisions["width"] == 16
    with pytest.raises(KeyError, match="nope"):
        Supernet(space, fixed={"width": 8, "nope": 1})


class Counting(nn.Module):
    calls = 0

    def __init__(self, c_in, c_out):
        super().__init__()

    def forward(self, x):
        Counting.calls += 1
        return x


def test_zero_and_masked_candidates_are_not_computed_and_fix_is_one_hot():
    space = sn.Space(TinyNet(op1=sn.oneof([Zero, Counting, Conv3], name="op"), op2=Pool))
    net = Supernet(space)
    d = net.decision("op")
    assert d.zero == [True, False, False]
    x = torch.randn(2, 3, 16, 16)
    Counting.calls = 0
    net(x)
    assert Counting.calls == 1
    with net.masked("op", 1):
        net(x)
        assert d.mask == [1.0, 0.0, 1.0]
    assert Counting.calls == 1 and d.mask == [1.0, 1.0, 1.0]
    # the mixed output equals the weighted sum of the candidates, Zero contributing nothing
    mixed = net.model.a
    h = torch.randn(2, 8, 4, 4)
    net(x)
    w = torch.softmax(net.alphas["g0"], 0)
    assert torch.allclose(mixed(h), w[1] * h + w[2] * mixed.ops[2](h), atol=1e-6)
    net.fix("op", 2)
    assert torch.equal(mixed(h), mixed.ops[2](h)) and net.undecided() == []
    assert net.genome()[0] == 2


def test_top_k_scores_and_order():
    net = Supernet(sn.Space(TinyNet(op1=sn.oneof(OPS, name="o1"), op2=sn.oneof(OPS, name="o2"))))
    with torch.no_grad():
        net.alphas["g0"].copy_(torch.tensor([9.0, 2.0, 1.0]))
        net.alphas["g1"].copy_(torch.tensor([0.0, 0.5, 3.0]))
    top = net.top_k(4)
    assert [g for g, _ in top][:2] == [(1, 2), (2, 2)]
    scores = [s for _, s in top]
    assert scores == sorted(scores, reverse=True) and len(top) == 4
    assert all(0 not in g for g, _ in top)    # `none` excluded


def test_traced_space_supernet():
    def build():
        act = sn.oneof([nn.ReLU(), nn.Tanh()], name="act")
        op = sn.oneof([Conv3, Pool], name="op")
        return _Plain(op, act)

    space = sn.trace(build)
    net = Supernet(space)
    assert sorted(d.name for d in net.decisions) == ["act", "op"]
    assert net(torch.randn(2, 3, 16, 16)).shape == (2, 10)
    assert space.arch(net.genome()).build()(torch.randn(2, 3, 16, 16)).shape == (2, 10)


class _Plain(nn.Module):
    def __init__(self, op, act):
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, stride=4, padding=1)
        self.a, self.act, self.b = op(8, 8), act, op(8, 8)
        self.head = nn.Linear(8, 10)

    def forward(self, x):
        return self.head(self.b(self.act(self.a(self.stem(x)))).mean((2, 3)))


def test_darts_space_inputs_become_input_choices(data_dir):
    space = sn.spaces.darts(C=2, layers=1)
    net = Supernet(space)
    kinds = {d.kind for d in net.decisions}
    assert kinds == {"oneof", "manyof"}
    assert len(net.arch_parameters()) == 28           # 14 edges x 2 cell types
    node3 = net.decision("normal_node_3_inputs")
    assert node3.size == 5 and node3.k == 2 and not node3.decided
    assert net.decision("normal_node_0_inputs").decided  # 2 of 2 inputs: nothing to choose
    # magnitude: inputs ranked by their edge's strongest non-none op weight
    with torch.no_grad():
        for i in range(5):
            net.alphas[f"g{net.decision(f'normal_edge_{i}_3').genes[0]}"].zero_()
        net.alphas[f"g{net.decision('normal_edge_4_3').genes[0]}"][3] = 4.0
        net.alphas[f"g{net.decision('normal_edge_1_3').genes[0]}"][5] = 3.0
    genome = net.genome()
    assert [genome[g] for g in node3.genes] == [1, 4]
    net.fix("normal_node_3_inputs", [0, 2])
    assert net(torch.randn(2, 3, 32, 32)).shape == (2, 10)
    assert isinstance(net.model.cells[0]._inputs[3], InputChoice)
    assert space.arch(net.genome()).build()(torch.randn(2, 3, 32, 32)).shape == (2, 10)
