"""The MobileNetV2 / MnasNet-style space: exact sizes, real CIFAR-10 forward passes, round-trips."""
from __future__ import annotations

import pytest
import torch

import symnas as sn
from symnas.spaces import mobilenet_space as M


def _params(model) -> int:
    return sum(p.numel() for p in model.parameters())


@pytest.fixture(scope="module")
def small():
    return M.mobilenet(num_classes=10, width_multipliers=(0.25, 0.35))


def test_mobilenet_v2_has_torchvisions_size():
    # torchvision.models.mobilenet_v2() has 3,504,872 parameters.
    with torch.device("meta"):
        assert _params(M.build_mobilenet_v2()) == 3_504_872
        space = M.mobilenet()
        genome = M.to_genome(space, M.MOBILENET_V2)
        assert _params(space.build(genome)) == 3_504_872
        # MobileNetV2 0.5: 1,968,680 (the 1.97 M published for width 0.5; regression value)
        assert _params(M.build_mobilenet_v2(width=0.5)) == 1_968_680
    assert M.genome_to_decisions(space, genome) == M.MOBILENET_V2


def test_decisions_and_registry(small):
    assert sn.spaces.get("mobilenet", num_classes=10,
                         width_multipliers=(0.25, 0.35)).fingerprint() == small.fingerprint()
    names = set(small.genome_spec.names)
    assert names == {"width"} | {f"stage{i}_{k}" for i in range(1, 8)
                                 for k in ("kernel", "expand", "blocks", "se")}
    kernel = next(d for d in small.decisions if d.name == "stage3_kernel")
    assert kernel.candidates == ("dw_conv_3x3", "dw_conv_5x5", "dw_conv_7x7")
    blocks = {d.name: d.candidates for d in small.decisions}
    assert [int(c) for c in blocks["stage1_blocks"]] == [1, 2]
    assert [int(c) for c in blocks["stage4_blocks"]] == [3, 4, 5]
    # a one-candidate setting is fixed, not a decision
    fixed = M.mobilenet(width_multipliers=(1.0,), squeeze_excite=(False,))
    assert "width" not in fixed.genome_spec.names and "stage1_se" not in fixed.genome_spec.names
    assert _params_meta(fixed, M.to_genome(fixed, M.MOBILENET_V2)) == 3_504_872


def _params_meta(space, genome) -> int:
    with torch.device("meta"):
        return _params(space.build(genome))


def test_config_round_trip(small):
    config = [(1, 3, 2, True), (3, 5, 1, False), (6, 7, 4, True), (6, 3, 3, False),
              (3, 5, 2, True), (1, 7, 4, False), (6, 3, 1, True)]
    decisions = M.config_decisions(config, width=0.35)
    genome = M.to_genome(small, decisions)
    assert M.genome_to_decisions(small, genome) == decisions
    assert M.genome_to_decisions(small, small.arch(genome).dna) == decisions
    arch = small.arch(genome)
    assert arch.decisions["stage2_kernel"] == "dw_conv_5x5" and arch.decisions["stage1_se"] == "se"
    for seed in range(20):
        g = small.sample(seed).genome
        assert M.to_genome(small, M.genome_to_decisions(small, g)) == g


def test_forward_on_cifar10(small, data_dir):
    from symnas.datasets import cifar10_batch
    x, y = cifar10_batch(4, seed=0)
    config = [(1, 3, 2, True), (6, 5, 2, True), (6, 5, 2, True), (6, 5, 3, True)] + [(3, 7, 2, False)] * 3
    model = small.build(M.to_genome(small, M.config_decisions(config, width=0.25)))
    # blocks and SE are what the config says
    blocks = [m for m in model.modules() if isinstance(m, M.InvertedResidual)]
    assert len(blocks) == 15
    assert sum(isinstance(m, M.SqueezeExcite) for m in model.modules()) == 9
    assert sum(isinstance(m, M.DWConv7x7) for m in model.modules()) == 6
    out = model(x)
    assert out.shape == (4, 10) and torch.isfinite(out).all()
    loss = torch.nn.functional.cross_entropy(out, y)
    loss.backward()
    assert model.classifier[1].weight.grad is not None
    assert small.validate((2, 3, 32, 32), n=3, seed=0) == []


def test_residuals_follow_mobilenet_v2():
    with torch.device("meta"):
        model = M.build_mobilenet_v2()
    blocks = [m for m in model.modules() if isinstance(m, M.InvertedResidual)]
    assert len(blocks) == 17
    # residual exactly where stride is 1 and channels are kept: 10 of 17 blocks
    assert sum(b.use_residual for b in blocks) == 10


def test_bad_input_is_named(small):
    with pytest.raises(ValueError, match="width=1.0 is not in this space"):
        M.to_genome(small, M.MOBILENET_V2)
    with pytest.raises(ValueError, match="unknown mobilenet decisions"):
        M.to_genome(small, {**M.MOBILENET_V2, "stage9_kernel": 3})
    partial = dict(M.config_decisions([(1, 3, 1, False)] * 7, width=0.25))
    del partial["stage2_se"]
    with pytest.raises(ValueError, match="'stage2_se' is missing"):
        M.to_genome(small, partial)
    with pytest.raises(ValueError, match="kernel_sizes"):
        M.mobilenet(kernel_sizes=(3, 9))
