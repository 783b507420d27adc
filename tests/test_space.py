"""Hyper-values, Space, Arch: real torch modules built from symbolic and traced programs."""
from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pyglove as pg
import pytest
import torch
from torch import nn

import symnas as sn
from models_for_tests import Block, ConvNet, Existing, TwoBlocks, make_existing, mlp


def conv_space():
    return sn.Space(ConvNet(width=sn.oneof([4, 8, 16]), kernel=sn.oneof([3, 5]),
                            act=sn.oneof([nn.ReLU, nn.GELU]), depth=sn.intv(1, 2)))


def test_space_facts_and_build():
    space = conv_space()
    assert space.size == 3 * 2 * 2 * 2
    assert [d.name for d in space.decisions] == ["width", "kernel", "act", "depth"]
    assert space.decisions[2].candidates == ("torch.nn.ReLU", "torch.nn.GELU")
    arch = space.arch([2, 1, 1, 1])
    model = arch.build()
    assert isinstance(model, nn.Module)
    assert model.head.in_features == 16 and isinstance(model.features[2], nn.GELU)
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, 10)
    assert arch.decisions == {"width": 16, "kernel": 5, "act": "torch.nn.GELU", "depth": 2}
    # the DNASpec is computed once
    assert space.dna_spec is space.dna_spec and space.genome_spec.dna_spec is space.dna_spec


def test_each_build_is_a_fresh_module():
    space = conv_space()
    a, b = space.build([0, 0, 0, 0]), space.build([0, 0, 0, 0])
    assert a is not b and a.head.weight.data_ptr() != b.head.weight.data_ptr()


def test_dna_and_genome_round_trip():
    space = conv_space()
    for arch in space.samples(20, seed=3):
        assert space.arch(arch.dna).genome == arch.genome
        assert pg.eq(space.materialize(arch.dna), space.materialize(arch.genome))


def test_sample_is_seeded():
    space = conv_space()
    first, again = space.samples(5, seed=1), space.samples(5, seed=1)
    assert [a.genome for a in first] == [a.genome for a in again]
    assert space.sample(seed=7).genome == space.sample(seed=7).genome


def test_float_space_is_infinite_and_manyof_is_distinct():
    space = sn.Space({"lr": sn.floatv(1e-3, 1e-1, scale="log"),
                      "ops": sn.manyof(2, ["a", "b", "c"], sorted=True)})
    assert math.isinf(space.size)
    for arch in space.samples(30, seed=0):
        v = arch.value
        assert 1e-3 <= v["lr"] <= 1e-1
        assert len(set(v["ops"])) == 2 and list(v["ops"]) == sorted(v["ops"])


def test_builder_function_is_searchable():
    space = sn.Space(mlp(width=sn.oneof([4, 32]), act=sn.oneof([nn.ReLU, nn.Tanh])))
    model = space.build([1, 1])
    assert isinstance(model, nn.Sequential) and model[0].out_features == 32
    assert isinstance(model[1], nn.Tanh)


def test_nested_choices_symbolic():
    space = sn.Space(TwoBlocks(first=sn.oneof([Block(4, 8, act=sn.oneof([nn.ReLU, nn.GELU])),
                                               Block(4, 8, act=nn.Tanh)]),
                               second=Block(8, 8)))
    assert space.size == 3
    names = [d.name for d in space.decisions]
    assert names[0] == "first" and space.decisions[1].conditional
    seen = {type(a.build().first.act).__name__ for a in space.samples(30, seed=0)}
    assert seen == {"ReLU", "GELU", "Tanh"}
    # the inner decision only counts when its parent picks the first candidate
    assert space.arch([1, 1]).genome == space.arch([1, 0]).genome


def test_shared_name_is_one_decision_symbolic():
    act = lambda: sn.oneof([nn.ReLU, nn.GELU], name="act")  # noqa: E731
    space = sn.Space(TwoBlocks(first=Block(4, 8, act=act()), second=Block(8, 8, act=act()),
                               out=sn.oneof([2, 3])))
    assert [d.name for d in space.decisions] == ["act", "out"]
    assert space.size == 4
    for arch in space.samples(8, seed=0):
        m = arch.build()
        assert type(m.first.act) is type(m.second.act)


def test_shared_name_with_different_candidates_is_an_error():
    with pytest.raises(ValueError, match="'act'.*different candidates"):
        sn.Space(TwoBlocks(first=Block(4, 8, act=sn.oneof([nn.ReLU, nn.GELU], name="act")),
                           second=Block(8, 8, act=sn.oneof([nn.ReLU, nn.Tanh], name="act"))))


def test_bad_input_errors():
    with pytest.raises(ValueError, match="empty candidate list"):
        sn.oneof([])
    with pytest.raises(ValueError, match="empty candidate list"):
        sn.manyof(1, [], name="ops")
    with pytest.raises(ValueError, match="min_value < max_value"):
        sn.floatv(1.0, 0.5)
    with pytest.raises(ValueError, match="no choices"):
        sn.Space(ConvNet(width=8))
    with pytest.raises(TypeError, match="symbolic value"):
        sn.Space(42)


def test_trace_define_by_run():
    space = sn.trace(Existing)
    assert [d.name for d in space.decisions] == ["width", "act", "inner"]
    assert space.size == 2 * 3
    kinds = set()
    for arch in space.samples(20, seed=0):
        model = arch.build()
        w = arch.decisions["width"]
        assert model.l1.out_features == w and model.l2.out_features == w   # shared name
        assert model(torch.randn(3, 4)).shape == (3, w)
        kinds.add(type(model.act).__name__)
    assert kinds == {"ReLU", "Sequential"}


def test_trace_needs_names_and_consistent_candidates():
    with pytest.raises(ValueError, match="needs a name"):
        sn.trace(lambda: nn.Linear(sn.oneof([2, 4]), 3))
    with pytest.raises(ValueError, match="different candidates"):
        sn.trace(lambda: (sn.oneof([1, 2], name="a"), sn.oneof([1, 3], name="a")))


def _per_block(up_front: bool) -> nn.Module:
    depth = sn.oneof([1, 2, 3], name="depth")
    flags = [sn.oneof([True, False], name=f"r{i}") for i in range(3)] if up_front else None
    return nn.Sequential(*[nn.Linear(4, 4) if (flags[i] if up_front else
                                               sn.oneof([True, False], name=f"r{i}"))
                           else nn.Identity() for i in range(depth)])


def test_a_traced_choice_in_a_loop_a_choice_controls_says_to_make_it_up_front():
    """Before: PyGlove's "is not defined during search space inspection", and from a supernet
    "traced choice 'r1' is not in the Space's decisions"."""
    space = sn.trace(lambda: _per_block(up_front=False))
    assert [d.name for d in space.decisions] == ["depth", "r0"]       # the one run's choices
    for make in (lambda: space.build((2, 0)), lambda: sn.Supernet(space)):
        with pytest.raises(ValueError, match=r"choice 'r1', which the recorded run never made.*"
                                             r"before the loop"):
            make()
    fixed = sn.trace(lambda: _per_block(up_front=True))
    assert fixed.size == 3 * 8 and len(fixed.build((2, 0, 1, 0))) == 3
    assert set(sn.Supernet(fixed).sharing.values()) == {"entangled"}


def test_validate_reports_the_decisions_that_fail():
    @sn.searchable
    class Mismatch(nn.Module):
        def __init__(self, w: int = 4):
            super().__init__()
            self.l1, self.l2 = nn.Linear(4, w), nn.Linear(8, 2)

        def forward(self, x):
            return self.l2(self.l1(x))

    space = sn.Space(Mismatch(w=sn.oneof([4, 8], name="w")))
    problems = space.validate((2, 4), n=8, seed=0)
    assert problems and all(p["decisions"] == {"w": 4} for p in problems)
    assert "w" in problems[0]["decisions"] and "Error" in problems[0]["error"]
    with pytest.raises(ValueError, match="fail a forward pass"):
        space.check((2, 4), n=8)
    assert conv_space().validate((2, 3, 32, 32), n=6) == []


def test_arch_json_round_trip_rebuilds_identical_module(tmp_path):
    space = conv_space()
    arch = space.sample(seed=5)
    model = arch.build()
    path = arch.save(tmp_path / "arch.json")
    loaded = sn.load(path)
    again = loaded.build()
    assert sum(p.numel() for p in again.parameters()) == sum(p.numel() for p in model.parameters())
    again.load_state_dict(model.state_dict())
    model.eval(), again.eval()
    x = torch.randn(2, 3, 32, 32)
    assert torch.equal(model(x), again(x))
    assert loaded.decisions == arch.decisions


def test_arch_json_reloads_in_a_fresh_process(tmp_path):
    arch = conv_space().sample(seed=2)
    path = arch.save(tmp_path / "arch.json")
    n = sum(p.numel() for p in arch.build().parameters())
    code = (f"import sys; sys.path.insert(0, {str(Path(__file__).parent)!r}); import symnas as sn; "
            f"m = sn.load({str(path)!r}).build(); print(sum(p.numel() for p in m.parameters()))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert int(out.stdout.strip()) == n


def test_traced_arch_round_trip(tmp_path):
    space = sn.trace(make_existing)
    arch = space.sample(seed=1)
    path = arch.save(tmp_path / "t.json")
    assert json.load(open(path))["traced"] == "models_for_tests:make_existing"
    rebuilt = sn.load(path).build()
    n = sum(p.numel() for p in arch.build().parameters())
    assert sum(p.numel() for p in rebuilt.parameters()) == n


def test_load_rejects_other_files(tmp_path):
    p = tmp_path / "x.json"
    p.write_text("{}")
    with pytest.raises(ValueError, match="not a symnas architecture"):
        sn.load(p)
