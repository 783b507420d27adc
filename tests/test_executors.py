"""Executors with real workers: a local process pool, and a local Ray instance."""
from __future__ import annotations

import functools
import os
from pathlib import Path

import pytest

import evaluators_for_tests as E
import symnas as sn
from symnas.store import Store

TESTS = Path(__file__).resolve().parent


def test_process_pool_runs_the_same_trials_in_worker_processes(tmp_path):
    inline = sn.search(E.toy_space(), sn.algorithms.Random(), E.pid_score, budget=8, seed=0)
    pooled = sn.search(E.toy_space(), sn.algorithms.Random(), E.pid_score, budget=8, seed=0,
                       executor="process:2", storage=tmp_path / "p.sqlite")
    assert [t.id for t in pooled] == list(range(8))
    assert [t.genome for t in pooled] == [t.genome for t in inline]    # Random: order kept
    assert [t.reward for t in pooled] == [t.reward for t in inline]
    pids = {t.metrics["pid"] for t in pooled}
    assert os.getpid() not in pids and 1 <= len(pids) <= 2
    rows = Store.open(tmp_path / "p.sqlite").trials()
    # the worker materialized the architecture; its program came back as JSON
    assert all(r.program == r.decisions for r in rows)


def test_workers_rebuild_traced_and_module_spaces_from_json():
    from torch import nn

    from models_for_tests import ConvNet
    for space in (sn.trace(E.traced_program),
                  sn.Space(ConvNet(width=sn.oneof([4, 8, 16]), act=sn.oneof([nn.ReLU, nn.GELU])))):
        inline = sn.search(space, sn.algorithms.Random(), E.param_count, budget=4, seed=0)
        pooled = sn.search(space, sn.algorithms.Random(), E.param_count, budget=4, seed=0,
                           executor="process:2")
        assert [t.metrics for t in pooled] == [t.metrics for t in inline]


def test_evolution_is_told_each_result_as_it_arrives_with_two_in_flight(tmp_path):
    path = tmp_path / "async.sqlite"
    algo = sn.algorithms.RegularizedEvolution(population_size=4, tournament_size=2)
    result = sn.search(E.toy_space(), algo, E.slow_score, budget=10, seed=2,
                       executor="process:2", storage=path)
    assert len(result) == 10 and all(t.ok for t in result)
    assert result.algorithm.num_feedbacks >= 10        # (+ repeats answered from the record)
    # replay the recorded asks and tells: never more than 2 in flight, and 2 at once
    events = []
    for r in Store.open(path).trials():
        events += [(r.ask_seq, +1), (r.tell_seq, -1)]
    in_flight, peak = 0, 0
    for _, step in sorted(events):
        in_flight += step
        peak = max(peak, in_flight)
    assert peak == 2 and in_flight == 0


def test_dead_workers_fail_their_trial_after_a_retry_and_raising_evaluators_fail_at_once(tmp_path):
    path = tmp_path / "chaos.sqlite"
    evaluator = functools.partial(E.chaos, marker_dir=str(tmp_path))
    result = sn.search(E.toy_space(), sn.algorithms.Random(), evaluator, budget=6, seed=11,
                       executor="process:2", storage=path)
    by_kind = {}
    for t in result:
        v = t.arch.value
        kind = ("dies" if v["a"] == 0 and v["d"] == 0 else "raises" if v["b"] == 2
                else "dies once" if v["a"] == 3 else "ok")
        by_kind.setdefault(kind, []).append(t)
    assert {k: len(v) for k, v in by_kind.items()} == {"dies": 1, "raises": 1, "dies once": 1,
                                                        "ok": 3}
    dead = by_kind["dies"][0]
    assert dead.status == "failed" and dead.attempts == 2 and "WorkerDied" in dead.error
    assert "exit code 3" in dead.error
    raised = by_kind["raises"][0]
    assert raised.status == "failed" and raised.attempts == 1
    assert "ValueError: b=2 is not allowed" in raised.error
    once = sorted(by_kind["dies once"], key=lambda t: t.id)
    assert once[0].status == "done" and once[0].attempts == 2
    assert all(t.attempts == 1 and t.ok for t in by_kind["ok"])
    rows = {r.id: r for r in Store.open(path).trials()}
    assert rows[dead.id].attempts == 2 and rows[dead.id].status == "failed"
    assert rows[once[0].id].attempts == 2 and rows[once[0].id].status == "done"


def test_no_retries_when_max_retries_is_zero(tmp_path):
    evaluator = functools.partial(E.crash_once, marker_dir=str(tmp_path))
    result = sn.search(E.toy_space(), sn.algorithms.Random(), evaluator, budget=3, seed=0,
                       executor="process:2", max_retries=0)
    crashed = [t for t in result if t.status == "failed"]
    assert len(crashed) == 1 and crashed[0].arch.value["a"] == 3 and crashed[0].attempts == 1


def test_an_evaluator_workers_cannot_import_is_a_clear_error(tmp_path):
    with pytest.raises(TypeError, match="module-level function"):
        sn.search(E.toy_space(), sn.algorithms.Random(), lambda arch: 1.0, budget=2,
                  executor="process:2", storage=tmp_path / "never.sqlite")
    assert not (tmp_path / "never.sqlite").exists()      # refused before anything was recorded
    with pytest.raises(ValueError, match="process:N"):
        sn.search(E.toy_space(), sn.algorithms.Random(), E.score, budget=2, executor="threads")


@pytest.fixture(scope="module")
def ray_local():
    ray = pytest.importorskip("ray", reason="Ray tests need the ray extra: pip install 'symnas[ray]'")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
             runtime_env={"env_vars": {"PYTHONPATH": str(TESTS)}})
    yield ray
    ray.shutdown()


def test_ray_runs_trials_retries_a_dead_worker_and_takes_closures(ray_local, tmp_path):
    path = tmp_path / "ray.sqlite"
    executor = sn.executors.Ray(num_workers=2, resources_per_trial={"num_cpus": 1})
    evaluator = functools.partial(E.crash_once, marker_dir=str(tmp_path))   # sent by value
    result = sn.search(E.toy_space(), sn.algorithms.Random(), evaluator, budget=6, seed=0,
                       executor=executor, storage=path)
    inline = sn.search(E.toy_space(), sn.algorithms.Random(), E.score, budget=6, seed=0)
    assert [t.genome for t in result] == [t.genome for t in inline]
    assert all(t.ok for t in result) and [t.reward for t in result] == [t.reward for t in inline]
    retried = [t for t in result if t.attempts == 2]
    assert len(retried) == 1 and retried[0].arch.value["a"] == 3
    assert (tmp_path / "crashed-on-a3").exists()
    assert {r.id: r.attempts for r in Store.open(path).trials()}[retried[0].id] == 2
    # a lambda travels by Ray's own serialization; the workers are other processes
    pids = sn.search(E.toy_space(), sn.algorithms.Random(), lambda a: {"reward": 1.0, "pid": os.getpid()},
                     budget=2, seed=0, executor=executor)
    assert os.getpid() not in {t.metrics["pid"] for t in pids}
