"""The NAS-Bench-201 space: real modules, real CIFAR-10, exact params/FLOPs, conversions."""
from __future__ import annotations

import random

import pytest
import torch

import symnas as sn
from symnas.datasets import cifar10_batch
from symnas.evaluators import nb201
from symnas.spaces import nasbench201_space as nb

RESNET = "|nor_conv_3x3~0|+|none~0|nor_conv_3x3~1|+|skip_connect~0|none~1|skip_connect~2|"


@pytest.fixture(scope="module")
def space():
    return sn.spaces.nasbench201()


def n_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def test_space_facts(space):
    assert space.size == nb201.NUM_ARCHS == 15625
    assert [d.name for d in space.decisions] == list(nb.EDGE_NAMES)
    assert all(d.candidates == nb.OP_NAMES for d in space.decisions)
    assert nb.OPS[3] is nb.ReLUConvBN3x3 and nb.OPS[0] is nb.Zero
    assert sn.spaces.get("nasbench201", C=8, N=1).size == 15625
    assert "nasbench201" in sn.spaces.names()
    # the factory is a plain function registered where it is defined, under its aliases too
    assert sn.spaces.nasbench201 is nb.nasbench201 is sn.spaces.lookup("nb201")
    assert sn.spaces.lookup("nas-bench-201") is nb.nasbench201
    assert sn.spaces.SPACES.aliases("nasbench201") == ["nas_bench_201", "nb201"]
    with pytest.raises(KeyError, match="no search space named 'nasbench301'"):
        sn.spaces.get("nasbench301")


def test_forward_and_backward_on_real_cifar10(data_dir):
    small = sn.spaces.nasbench201(C=8, N=1)
    x, y = cifar10_batch(8, seed=0)
    for arch_str in (RESNET, nb201.table().arch_str(6111),
                     "|none~0|+|none~0|none~1|+|none~0|none~1|none~2|",
                     "|avg_pool_3x3~0|+|skip_connect~0|nor_conv_1x1~1|+|none~0|none~1|avg_pool_3x3~2|"):
        model = small.arch(nb.arch_str_to_genome(arch_str)).build()
        out = model(x)
        assert out.shape == (8, 10) and torch.isfinite(out).all()
    model = nb.build(RESNET, C=8, N=1)
    loss = torch.nn.functional.cross_entropy(model(x), y)
    loss.backward()
    assert all(p.grad is not None for p in model.parameters())
    assert not small.validate((2, 3, 32, 32), n=3)


def test_conversions_round_trip(space):
    table = nb201.table()
    for i in random.Random(0).sample(range(nb201.NUM_ARCHS), 200):
        genome = nb.genome_of(i)
        arch_str = nb.genome_to_arch_str(genome)
        arch = space.arch(genome)
        assert nb.arch_str_to_genome(arch_str) == genome
        assert nb.index_of(arch_str) == nb.index_of(arch) == nb.index_of(genome) == i
        assert space.genome_spec.from_dna(arch.dna) == genome
        assert table.index(arch.dna) == i
    decisions = space.arch(nb.arch_str_to_genome(RESNET)).decisions
    assert decisions == {"edge_1_0": "nor_conv_3x3", "edge_2_0": "none", "edge_2_1": "nor_conv_3x3",
                         "edge_3_0": "skip_connect", "edge_3_1": "none", "edge_3_2": "skip_connect"}


def test_params_match_the_table_on_a_seeded_sample(space):
    params = nb201.table().columns["params_M_cifar10"]
    sample = random.Random(201).sample(range(nb201.NUM_ARCHS), 120) + [6111, 11472, 1835]
    for k, i in enumerate(sample):
        with torch.device("meta"):   # through the Space for some, the direct builder for all
            model = space.build(nb.genome_of(i)) if k % 10 == 0 else nb.build(i)
        assert n_params(model) == round(params[i] * 1e6), (i, nb.genome_to_arch_str(nb.genome_of(i)))


def test_other_datasets_params_and_flops():
    table = nb201.table()
    for dataset, classes, size in (("cifar100", 100, 32), ("imagenet16", 120, 16)):
        for i in (6111, 0):
            with torch.device("meta"):
                model = nb.build(i, num_classes=classes)
            row = table.query(i, dataset=dataset)
            assert n_params(model) == round(row["params"] * 1e6)
            assert nb.count_flops(model, (1, 3, size, size)) == pytest.approx(row["flops"], abs=1e-9)


def test_flops_match_the_table(space):
    flops = nb201.table().columns["flops_M_cifar10"]
    for i in (6111, 1835, 0, 777):
        with torch.device("meta"):
            model = space.build(nb.genome_of(i))
        assert nb.count_flops(model) == pytest.approx(flops[i], abs=1e-9)
    # On a real (non-meta) module too; the model's train/eval mode is restored.
    model = nb.build(11472)
    assert model.training
    assert nb.count_flops(model) == pytest.approx(flops[11472], abs=1e-9)
    assert model.training


def test_ops_share_one_constructor():
    x = torch.randn(2, 8, 8, 8)
    for op in nb.OPS:
        for c_out, stride in ((8, 1), (16, 2)):
            m = op(8, c_out, stride, affine=False, track_running_stats=False)
            assert m(x).shape == (2, c_out, 8 // stride, 8 // stride), (op, c_out, stride)
            bns = [b for b in m.modules() if isinstance(b, torch.nn.BatchNorm2d)]
            assert all(not b.affine and b.running_mean is None for b in bns)
    # a supernet-style network with non-affine BN in the cells
    net = nb.NB201Net(C=4, N=1, ops=list(nb.OP_NAMES) + ["nor_conv_3x3"], affine=False)
    assert net(torch.randn(2, 3, 32, 32)).shape == (2, 10)


def test_save_and_load(space, tmp_path):
    arch = space.arch(nb.arch_str_to_genome(RESNET))
    path = arch.save(tmp_path / "resnet_cell.json")
    loaded = sn.load(path)
    assert loaded.decisions == arch.decisions
    with torch.device("meta"):
        assert n_params(loaded.build()) == 559386


def test_bad_input_is_named():
    with pytest.raises(ValueError, match="one op per edge"):
        nb.NB201Net(C=4, N=1, ops=["none"] * 5)
    with pytest.raises(ValueError, match="unknown NAS-Bench-201 op 'conv'"):
        nb.NB201Net(C=4, N=1, ops=["conv"] * 6)
    with pytest.raises(ValueError, match="6 op indices in 0..4"):
        nb.genome_to_arch_str((0, 1, 2, 3, 4, 5))


def test_the_encoding_needs_no_evaluator_and_its_examples_run():
    import doctest

    from symnas.spaces import nb201_encoding
    assert doctest.testmod(nb201_encoding).failed == 0
    assert nb.index_of is nb201_encoding.index_of and nb201.arch_str_to_genome is nb.arch_str_to_genome
    for i in (0, 6111, 11472, 15624):
        assert nb.genome_of(i) == nb201.genome_of(i) and nb.index_of(nb.genome_of(i)) == i

