"""The DARTS space: real modules, real CIFAR-10 images, genotype round-trips, exact sizes."""
from __future__ import annotations

import pytest
import torch

import symnas as sn
from symnas.spaces import darts_space as D


@pytest.fixture(scope="module")
def space():
    return D.darts(C=8, layers=5)


def _params(model, skip_aux=True):
    return sum(p.numel() for n, p in model.named_parameters()
               if not (skip_aux and "auxiliary" in n))


def test_registry_and_decisions(space):
    assert sn.spaces.get("darts", C=8, layers=5).fingerprint() == space.fingerprint()
    names = space.genome_spec.names
    assert len(set(names)) == 2 * (len(D.EDGES) + D.STEPS) == 36
    assert names.count("normal_node_3_inputs") == 2          # a manyof: two genes
    ops = next(d for d in space.decisions if d.name == "reduce_edge_4_3")
    assert ops.kind == "oneof" and ops.candidates == D.OP_NAMES
    inputs = next(d for d in space.decisions if d.name == "normal_node_2_inputs")
    assert inputs.kind == "manyof" and [str(c) for c in inputs.candidates] == ["0", "1", "2", "3"]


def test_darts_v2_has_the_published_size():
    # The DARTS code base counts 3.349342 M parameters (auxiliary head excluded).
    with torch.device("meta"):
        model = D.build(D.DARTS_V2, auxiliary=True)
    assert _params(model) == 3_349_342
    assert _params(model, skip_aux=False) > 3_349_342           # the aux head exists
    with torch.device("meta"):
        assert _params(D.build(D.DARTS_V2)) == 3_349_342
        # the same network through the space and a genome
        full = D.darts()
        assert _params(full.build(D.genotype_to_genome(full, D.DARTS_V2))) == 3_349_342


def test_genotype_round_trip(space):
    for genotype in (D.DARTS_V1, D.DARTS_V2):
        genome = D.genotype_to_genome(space, genotype)
        back = D.genome_to_genotype(space, genome)
        assert back == D.normalize(genotype)
        assert D.genotype_to_genome(space, back) == genome
        # the DNA path agrees with the genome path
        assert D.genome_to_genotype(space, space.arch(genome).dna) == back
    # DARTS_V2's first normal node: sep_conv_3x3 on both cell inputs
    assert D.normalize(D.DARTS_V2).normal[:2] == [("sep_conv_3x3", 0), ("sep_conv_3x3", 1)]


def test_sampled_architectures_are_valid(space):
    for arch in space.samples(30, seed=1):
        genotype = D.genome_to_genotype(space, arch.genome)
        for cell in ("normal", "reduce"):
            pairs = getattr(genotype, cell)
            for j in range(D.STEPS):
                (_, a), (_, b) = pairs[2 * j], pairs[2 * j + 1]
                assert a != b and 0 <= a < b < j + 2
        # genome -> genotype -> genome only resets the ops of unselected edges
        canon = D.genotype_to_genome(space, genotype)
        assert D.genome_to_genotype(space, canon) == genotype
    assert space.validate((2, 3, 32, 32), n=3, seed=0) == []


def test_forward_on_cifar10(space, data_dir):
    from symnas.datasets import cifar10_batch
    x, y = cifar10_batch(4, seed=0)
    model = space.build(D.genotype_to_genome(space, D.DARTS_V2))
    model.eval()
    out = model(x)
    assert out.shape == (4, 10) and torch.isfinite(out).all()
    # the space builds the same network as build(genotype)
    assert _params(model) == _params(D.build(D.DARTS_V2, C=8, layers=5))
    # one training step with drop path and the auxiliary head
    model = D.build(D.DARTS_V2, C=8, layers=5, auxiliary=True, drop_path_prob=0.2)
    model.train()
    logits = model(x)
    assert model.aux_logits is not None and model.aux_logits.shape == (4, 10)
    loss = torch.nn.functional.cross_entropy(logits, y) + 0.4 * torch.nn.functional.cross_entropy(
        model.aux_logits, y)
    loss.backward()
    assert all(p.grad is not None for n, p in model.named_parameters() if "classifier" in n)
    model.eval()
    model(x)
    assert model.aux_logits is None


def test_unselected_edges_have_no_effect(space):
    genome = list(D.genotype_to_genome(space, D.DARTS_V2))
    index = {n: k for k, n in enumerate(space.genome_spec.names)}
    genome[index["normal_edge_4_3"]] = 5                 # node 3 reads states 0 and 2, not 4
    a, b = space.build(D.genotype_to_genome(space, D.DARTS_V2)), space.build(genome)
    assert _params(a) == _params(b)
    assert D.genome_to_genotype(space, genome) == D.normalize(D.DARTS_V2)
    assert D.canonical(space, genome) == D.genotype_to_genome(space, D.DARTS_V2) != tuple(genome)


def test_inputs_weighting_protocol(data_dir):
    """Supernet mode: all 14 edges, weighted per node; one-hot weights give the discrete cell."""
    from symnas.datasets import cifar10_batch
    x, _ = cifar10_batch(2, seed=1)
    torch.manual_seed(0)
    discrete = D.build(D.DARTS_V2, C=4, layers=3).eval()

    def weighted(cell_pairs):
        ops, inputs = [D.DARTS_OPS[5]] * len(D.EDGES), []   # sep_conv_5x5 on unselected edges
        for j in range(D.STEPS):
            chosen = [cell_pairs[2 * j], cell_pairs[2 * j + 1]]
            for op, i in chosen:
                ops[D.EDGES.index((i, j))] = D.OPS[op]
            w = torch.zeros(j + 2)
            w[[i for _, i in chosen]] = 1.0
            inputs.append(D.AllInputs(j + 2, weights=lambda w=w: w))
        return D.CellSpec(ops=ops, inputs=inputs)

    net = D.DARTSNetwork(normal=weighted(D.DARTS_V2.normal), reduce=weighted(D.DARTS_V2.reduce),
                         C=4, layers=3).eval()
    assert all(len(cell.edges) == len(D.EDGES) for cell in net.cells)
    missing, unexpected = net.load_state_dict(discrete.state_dict(), strict=False)
    assert not unexpected and missing                    # only the unselected edges are new
    with torch.no_grad():
        torch.testing.assert_close(net(x), discrete(x))
        # weights() -> None: a plain sum over all input edges
        plain = D.CellSpec(ops=[D.DARTS_OPS[4]] * 14, inputs=[D.AllInputs(j + 2) for j in range(4)])
        out = D.DARTSNetwork(normal=plain, reduce=plain, C=4, layers=3).eval()(x)
        assert out.shape == (2, 10) and torch.isfinite(out).all()


def test_bad_input_is_named():
    with pytest.raises(ValueError, match="two inputs must differ"):
        D.build(D.Genotype([("sep_conv_3x3", 0)] * 8, [2, 3, 4, 5], D.DARTS_V2.reduce, [2, 3, 4, 5]))
    with pytest.raises(ValueError, match="uses op 'conv_7x7'"):
        bad = [("conv_7x7", 0)] + list(D.DARTS_V2.normal[1:])
        D.build(D.Genotype(bad, [2, 3, 4, 5], D.DARTS_V2.reduce, [2, 3, 4, 5]))
    with pytest.raises(ValueError, match="concat"):
        D.build(D.Genotype(D.DARTS_V2.normal, [2, 3], D.DARTS_V2.reduce, [2, 3, 4, 5]))
    with pytest.raises(ValueError, match="needs a DARTS space|no decision"):
        D.genotype_to_genome(sn.Space({"x": sn.oneof([1, 2], name="x")}), D.DARTS_V2)
    spec = D.CellSpec(ops=[D.DARTS_OPS[3]] * 14, inputs=[[0, 0], [0, 1], [0, 1], [0, 1]])
    with pytest.raises(ValueError, match="2 distinct input states"):
        D.DARTSNetwork(normal=spec, reduce=spec, C=4, layers=3)
