"""Latency: measured on real modules, and predicted by a lookup table the Space builds itself.

No test asserts a timing: the table's checks are arithmetic on the numbers it measured (a
prediction is exactly its overhead plus the sum of its layers' entries), on what it holds (it
extends itself, it reloads, it refuses a file from elsewhere), and on what a search records.
"""
from __future__ import annotations

import json
import math
import pickle
from typing import Any

import pytest
import torch
from torch import nn

import symnas as sn
from models_for_tests import ConvNet, make_existing
from symnas.evaluators import latency
from symnas.evaluators._latency import collect, layer_modules
from symnas.spaces import mobilenet_space

SHAPE = (3, 16, 16)
FAST: dict[str, Any] = dict(warmup=1, repeats=3, calibration=2, threads=1)   # the books, not speed


def conv_space() -> sn.Space:
    return sn.Space(ConvNet(width=sn.oneof([4, 8]), kernel=sn.oneof([1, 3]),
                            depth=sn.oneof([1, 2]), act=sn.oneof([nn.ReLU, nn.GELU])))


def all_archs(space: sn.Space) -> list:
    import itertools
    return [space.arch(g) for g in itertools.product(*[range(n or 0) for n in space.genome_spec.sizes])]


@pytest.fixture
def space() -> sn.Space:
    return conv_space()


@pytest.fixture
def table(space, tmp_path) -> latency.LookupTable:
    return latency.LookupTable(space, SHAPE, path=tmp_path / "t.latency.json", **FAST).build(n=2)


# ---- measure -----------------------------------------------------------------------------
def test_measure_returns_median_spread_and_context_and_restores_threads_and_mode():
    model = ConvNet(width=4).train()
    before = torch.get_num_threads()
    out = latency.measure(model, SHAPE, warmup=1, repeats=5, threads=1)
    assert torch.get_num_threads() == before and model.training
    for k in ("latency_ms", "latency_median_ms", "latency_min_ms", "latency_p10_ms",
              "latency_p90_ms", "latency_mean_ms", "latency_std_ms"):
        assert isinstance(out[k], float) and math.isfinite(out[k]) and out[k] >= 0, k
    assert out["latency_ms"] == out["latency_median_ms"]
    assert out["latency_min_ms"] <= out["latency_p10_ms"] <= out["latency_ms"] <= out["latency_p90_ms"]
    assert out["latency_device"] == "cpu" and isinstance(out["latency_device_name"], str)
    assert out["latency_device_name"] and out["latency_torch"] == torch.__version__
    assert (out["latency_threads"], out["latency_repeats"], out["latency_batch_size"]) == (1, 5, 1)
    fastest = latency.measure(model, SHAPE, warmup=0, repeats=3, statistic="min", batch_size=2)
    assert fastest["latency_ms"] == fastest["latency_min_ms"] and fastest["latency_batch_size"] == 2


def test_bad_settings_are_named_before_anything_runs():
    with pytest.raises(ValueError, match="one example's shape"):
        latency.measure(ConvNet(), (0, 16, 16))
    with pytest.raises(ValueError, match="statistic must be one of"):
        latency.evaluator(SHAPE, statistic="mean")
    with pytest.raises(TypeError, match="build the architecture first"):
        latency.measure(conv_space().sample(seed=0), SHAPE)
    with pytest.raises(ValueError, match="threads must be at least 1"):
        latency.measure(ConvNet(), SHAPE, threads=0)
    if not torch.cuda.is_available():
        with pytest.raises(RuntimeError, match="CUDA is not available"):
            latency.LookupTable(conv_space(), SHAPE, device="cuda")


# ---- the layers of a model ------------------------------------------------------------------
def test_layers_and_their_keys_are_the_same_on_meta_and_on_the_cpu():
    arch = mobilenet_space.mobilenet(num_classes=10, width_multipliers=(0.25,)).sample(seed=3)
    real = collect(arch.build(), (torch.zeros(1, *SHAPE),))
    with torch.device("meta"):
        meta = collect(arch.build(), (torch.empty(1, *SHAPE),))
    assert [c.key for c in real] == [c.key for c in meta]
    kinds = {c.module.rsplit(".", 1)[1] for c in real}
    assert {"Conv2d", "BatchNorm2d", "ReLU6", "Linear"} <= kinds
    # a squeeze-and-excite block (own forward over leaves) is one layer, timed whole
    se = [m for _, m in layer_modules(arch.build()) if isinstance(m, mobilenet_space.SqueezeExcite)]
    has_se = any(isinstance(m, mobilenet_space.SqueezeExcite) for m in arch.build().modules())
    assert bool(se) == has_se


def test_a_layers_key_holds_its_arguments_and_input_shape():
    a = collect(nn.Sequential(nn.Conv2d(3, 4, 3), nn.Conv2d(4, 4, 3)), (torch.zeros(1, 3, 9, 9),))
    b = collect(nn.Conv2d(3, 4, 3), (torch.zeros(1, 3, 9, 9),))
    c = collect(nn.Conv2d(3, 4, 3, stride=2), (torch.zeros(1, 3, 9, 9),))
    d = collect(nn.Conv2d(3, 4, 3), (torch.zeros(2, 3, 9, 9),))
    assert a[0].key == b[0].key and len({b[0].key, c[0].key, d[0].key, a[1].key}) == 4
    assert a[1].inputs == [[1, 4, 7, 7]]


# ---- the table ---------------------------------------------------------------------------
def test_prediction_is_exactly_the_overhead_plus_the_sum_of_its_measured_layers(table, space):
    assert table.overhead_ms is not None and len(table.overhead["samples"]) == 2
    for arch in all_archs(space):
        keys = table.layers(arch)
        assert keys and all(k in table.entries for k in keys)
        parts = math.fsum(table.entries[k]["ms"] for k in keys)
        assert table.predict(arch) == table.overhead_ms + parts
        assert table.parts_ms(arch) == parts
        assert table.parts_ms(arch.build()) == parts     # the built module has the same layers
    by_depth = {a.decisions["depth"]: a for a in all_archs(space)
                if (a.decisions["width"], a.decisions["kernel"]) == (4, 1)
                and a.decisions["act"].endswith("ReLU")}
    assert len(table.layers(by_depth[2])) == len(table.layers(by_depth[1])) + 3  # conv, BN, act
    # the overhead is the median of measured whole networks minus their layers
    diffs = sorted(s["measured_ms"] - s["parts_ms"] for s in table.overhead["samples"])
    assert table.overhead_ms == pytest.approx((diffs[0] + diffs[1]) / 2, abs=1e-12)


def test_the_table_extends_itself_on_unseen_configurations_and_saves(space, tmp_path):
    path = tmp_path / "grow.latency.json"
    table = latency.LookupTable(space, SHAPE, path=path, **FAST)
    table.build(n=1, seed=0)
    first = space.sample(seed=0)
    known = set(table.entries)
    assert set(table.layers(first)) <= known
    unseen, new = None, set()
    # find an architecture with a configuration the table has not timed, without timing it
    for arch in all_archs(space):
        calls = collect(arch.build(), (torch.zeros(1, *SHAPE),))
        if {c.key for c in calls} - known:
            unseen, new = arch, {c.key for c in calls} - known
            break
    assert unseen is not None
    before, timed = len(table), table.stats["timed"]
    table.predict(unseen)
    assert len(table) == before + len(new) and table.stats["timed"] == timed + len(new)
    assert new <= set(json.loads(path.read_text())["entries"])
    table.predict(unseen)                                # known now: nothing more is timed
    assert len(table) == before + len(new) and table.stats["timed"] == timed + len(new)


def test_the_table_reloads_from_its_file_with_the_same_predictions(table, space):
    archs = all_archs(space)
    predicted = [table.predict(a) for a in archs]        # times whatever build() missed
    again = latency.LookupTable(space, SHAPE, path=table.path, warmup=1, repeats=3)
    assert again.threads == 1 and again.entries == table.entries
    assert [again.predict(a) for a in archs] == predicted
    assert again.stats["timed"] == 0
    data = json.loads(open(table.path).read())
    assert data["format"] == latency.FORMAT and data["input_shape"] == list(SHAPE)
    assert {"device", "device_name", "torch", "threads", "overhead_ms"} <= set(data)


@pytest.mark.parametrize("field,value", [("device_name", "Some Other CPU 9000"),
                                         ("torch", "1.0.0"), ("device", "cuda:0"),
                                         ("threads", 64), ("input_shape", [3, 8, 8])])
def test_a_file_from_another_device_or_torch_version_is_refused(table, space, field, value):
    data = json.loads(open(table.path).read())
    data[field] = value
    with open(table.path, "w") as f:
        json.dump(data, f)
    threads = 1 if field == "threads" else None     # threads given explicitly must match
    with pytest.raises(latency.TableMismatch, match=f"{field}: file") as e:
        latency.LookupTable(space, SHAPE, path=table.path, threads=threads)
    assert "another path=" in str(e.value)


def test_a_file_that_is_no_latency_table_is_refused(space, tmp_path):
    for text, message in (("{}", "not a symnas latency table"), ("{oops", "not valid JSON")):
        path = tmp_path / "bad.json"
        path.write_text(text)
        with pytest.raises(ValueError, match=message):
            latency.LookupTable(space, SHAPE, path=path)


def test_a_traced_space_and_the_nb201_space_work_too(tmp_path):
    traced = sn.trace(make_existing)
    t = latency.LookupTable(traced, (4,), **FAST).build(n=2)
    for arch in traced.samples(3, seed=1):
        assert t.predict(arch) == t.overhead_ms + math.fsum(t.entries[k]["ms"] for k in t.layers(arch))
    nb = sn.spaces.nasbench201(C=4, N=1)
    t = latency.LookupTable(nb, (3, 8, 8), **FAST).build(n=1)
    arch = nb.sample(seed=5)
    assert t.predict(arch) == t.overhead_ms + math.fsum(t.entries[k]["ms"] for k in t.layers(arch))
    assert {"Zero", "AvgPool3x3", "Conv2d"} & {e["module"].rsplit(".", 1)[1] for e in t.entries.values()}


def test_the_table_evaluator_pickles_without_the_space(table, space):
    arch = space.sample(seed=1)
    want = table.predict(arch)
    copy = pickle.loads(pickle.dumps(table.evaluator()))
    assert copy.table.space is None
    out = copy(arch)
    assert out["latency_ms"] == want and out["latency_source"] == "table"
    assert out["latency_threads"] == 1 and out["latency_device"] == "cpu"


# ---- in a search -------------------------------------------------------------------------
def test_a_latency_constraint_records_infeasible_trials(table, space):
    archs = all_archs(space)
    fastest = min(table.predict(a) for a in archs)
    result = sn.search(space, "random", table.evaluator(), budget=6, seed=0, progress=False,
                       objective=sn.minimize("latency_ms"), constraints=[f"latency_ms <= {fastest!r}"])
    assert len(result) == 6
    for t in result:
        assert t.metrics["latency_ms"] == table.predict(t.arch)
        assert (t.metrics["latency_ms"] <= fastest) == (t.metrics.get("feasible", True) is not False)
    infeasible = [t for t in result if t.metrics.get("feasible") is False]
    assert infeasible and all(t.reward is None for t in infeasible)
    assert result.best is None or result.best.metrics["latency_ms"] == fastest


def test_with_latency_adds_latency_to_an_accuracy_evaluator_for_two_objectives(table, space):
    class Width:
        metric = "score"

        def __call__(self, arch, seed=None):
            return {"score": float(arch.decisions["width"])}

    both = latency.with_latency(Width(), table)
    assert both.metric == "score"
    result = sn.search(space, "random", both, budget=5, seed=1, progress=False,
                       objective=["score", sn.minimize("latency_ms")])
    for t in result:
        assert t.metrics["score"] == t.arch.decisions["width"]
        assert t.metrics["latency_ms"] == table.predict(t.arch)
    assert result.pareto_front()
    plain = latency.with_latency(lambda arch: 1.0, table)
    assert set(plain(space.sample(seed=0))) >= {"reward", "latency_ms"}


def test_the_measuring_evaluator_in_a_search_records_the_context(space):
    evaluate = latency.evaluator(SHAPE, task=sn.Task(device="cpu"), warmup=1, repeats=3,
                                 threads=1)
    assert evaluate.metric == "latency_ms"
    result = sn.search(space, "random", evaluate, budget=2, seed=0, progress=False)
    assert result.objectives[0].name == "latency_ms"
    for t in result:
        assert t.metrics["latency_ms"] > 0 and t.metrics["latency_threads"] == 1
        assert t.metrics["latency_device_name"] and t.metrics["latency_torch"] == torch.__version__


# ---- CUDA ----------------------------------------------------------------------------------
def test_cuda_measurement_and_table():
    if not torch.cuda.is_available():
        pytest.skip("CUDA not available")
    out = latency.measure(ConvNet(width=8), SHAPE, device="cuda", warmup=2, repeats=5)
    assert out["latency_device"].startswith("cuda:") and out["latency_ms"] > 0
    assert out["latency_device_name"] == torch.cuda.get_device_name(0)
    space = conv_space()
    table = latency.LookupTable(space, SHAPE, device="cuda", **FAST).build(n=2)
    arch = space.sample(seed=0)
    assert table.predict(arch) == table.overhead_ms + math.fsum(
        table.entries[k]["ms"] for k in table.layers(arch))
    assert table.info["device_name"] == torch.cuda.get_device_name(0)
