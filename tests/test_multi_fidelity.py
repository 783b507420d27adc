"""Multi-fidelity search (issue 17): Tasks that resume across rungs, Hyperband's and ASHA's
promotion rules, pruners, the store and the CLI, and a killed search resumed exactly.

Real objects throughout: real torch training on the CIFAR-10 subset, the NAS-Bench-201
table, real SQLite files and a real subprocess killed with SIGKILL.
"""
from __future__ import annotations

import json
import math
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import mf_helpers as M
import pytest
import torch

import evaluators_for_tests as E
import symnas as sn
from symnas import task as task_module
from symnas.cli import main
from symnas.records import best_sql
from symnas.store import SQLiteStore
from symnas.trial import best_of

TESTS = Path(__file__).resolve().parent


def _task(epochs: int = 3, **kw) -> sn.Task:
    return sn.Task.cifar10(epochs=epochs, max_batches=3, batch_size=32, **kw)


def _drop_space() -> sn.Space:
    return sn.Space(M.DropNet(width=sn.oneof([4, 6, 8, 12], name="width")))


def _kept_weights(task: sn.Task, arch, seed: int, epochs: int) -> dict:
    torch.manual_seed(seed)
    key = task.checkpoint_key(arch, arch.build(), seed)
    return task.load_checkpoint(key, epochs)["model"]


# ---- a Task resumes training across rungs ------------------------------------------------
def test_a_task_continues_training_across_rungs_to_the_weights_of_straight_training(tmp_path):
    arch = _drop_space().arch((2,))
    task = _task(epochs=4)                 # the schedule spans 4 epochs; rungs at 1 and 3
    task_module._CHECKPOINTS.clear()
    steps: list = []
    straight = task(arch, seed=5, epochs=3, report=lambda v, s: steps.append(s))
    assert steps == [1, 2, 3]
    w_straight = _kept_weights(task, arch, 5, 3)

    task_module._CHECKPOINTS.clear()
    steps.clear()
    first = task(arch, seed=5, epochs=1, report=lambda v, s: steps.append(s))
    second = task(arch, seed=5, epochs=3, report=lambda v, s: steps.append(s))
    assert steps == [1, 2, 3]              # the second rung trained epochs 2 and 3 only
    assert first["epochs"] == 1 and second["epochs"] == 3
    w_resumed = _kept_weights(task, arch, 5, 3)
    assert w_resumed.keys() == w_straight.keys()
    assert all(torch.equal(w_resumed[k], w_straight[k]) for k in w_straight)
    assert second["valid_acc"] == straight["valid_acc"]
    assert second["train_loss"] == straight["train_loss"]

    # with a checkpoint folder, another process (here: an emptied memory) continues it too
    files = task.with_(checkpoints=str(tmp_path / "ckpt"))
    task_module._CHECKPOINTS.clear()
    files(arch, seed=5, epochs=1)
    task_module._CHECKPOINTS.clear()
    steps.clear()
    again = files(arch, seed=5, epochs=3, report=lambda v, s: steps.append(s))
    assert steps == [2, 3] and again["valid_acc"] == straight["valid_acc"]
    assert len(list((tmp_path / "ckpt").glob("*.pt"))) == 1

    # without the checkpoint, it trains from the start, to the same weights
    task_module._CHECKPOINTS.clear()
    steps.clear()
    task(arch, seed=5, epochs=3, report=lambda v, s: steps.append(s))
    assert steps == [1, 2, 3]
    assert all(torch.equal(_kept_weights(task, arch, 5, 3)[k], w_straight[k]) for k in w_straight)
    with pytest.raises(ValueError, match="outside this Task's schedule"):
        task(arch, seed=5, epochs=5)


def test_a_promoted_trial_of_a_task_continues_its_first_rung(tmp_path):
    task_module._CHECKPOINTS.clear()
    r = sn.search(_drop_space(), sn.algorithms.SuccessiveHalving(eta=2), _task(), budget=1.5,
                  fidelity=[1, 3], seed=1, storage=str(tmp_path / "t.sqlite"), name="task")
    low = [t for t in r.trials if t.fidelity == 1]
    high = [t for t in r.trials if t.fidelity == 3]
    assert [t.fidelity for t in r.trials] == [1, 1, 3, 1]     # a bracket [2 at 1, 1 at 3], then
    promoted = high[0]
    parent = next(t for t in low if t.id == promoted.continues)
    assert parent.genome == promoted.genome and parent.seed == promoted.seed
    assert promoted.cost == pytest.approx(2 / 3)            # only the epochs it added
    assert [s for s, _ in promoted.curve] == [2, 3]          # it trained from epoch 2 on
    assert parent.metrics["valid_acc"] >= max(t.metrics["valid_acc"] for t in low[:2])


def test_a_promotion_whose_checkpoint_was_lost_is_charged_the_training_it_redid(monkeypatch):
    task_module._CHECKPOINTS.clear()
    monkeypatch.setattr(task_module, "MEMORY_CHECKPOINTS", 0)    # this process keeps none
    r = sn.search(_drop_space(), sn.algorithms.SuccessiveHalving(eta=2), _task(), budget=1.5,
                  fidelity=[1, 3], seed=1)
    promoted = next(t for t in r.trials if t.fidelity == 3)
    assert promoted.continues is not None and promoted.metrics["resumed_from"] == 0
    assert promoted.cost == pytest.approx(1.0)                # all three epochs, not 2 / 3
    assert [s for s, _ in promoted.curve] == [1, 2, 3]


def test_checkpoints_left_by_another_search_never_make_a_trial_cheaper():
    task_module._CHECKPOINTS.clear()
    kw = dict(budget=1.5, fidelity=[1, 3], seed=1)
    first = sn.search(_drop_space(), sn.algorithms.SuccessiveHalving(eta=2), _task(), **kw)
    again = sn.search(_drop_space(), sn.algorithms.SuccessiveHalving(eta=2), _task(), **kw)
    assert any(t.metrics["resumed_from"] > 0 and t.continues is None for t in again.trials)
    assert [(t.genome, t.fidelity, t.cost, t.metrics["valid_acc"]) for t in again.trials] == \
        [(t.genome, t.fidelity, t.cost, t.metrics["valid_acc"]) for t in first.trials]


# ---- promotion rules -------------------------------------------------------------------------
def _setup(algo, levels):
    algo.setup(E.toy_space().dna_spec)
    algo.setup_fidelity(levels)
    return algo


def _reward(genome, level):
    """Known rewards: the genome's sum, reordered at level 1 by its last gene."""
    return float(sum(genome)) if level == 0 else float(genome[-1] * 10 + genome[0])


def test_successive_halving_promotes_the_top_third_rung_by_rung():
    algo = _setup(sn.algorithms.SuccessiveHalving(eta=3, seed=0), [1, 3, 9])
    first = [algo.ask() for _ in range(9)]
    assert len(set(first)) == 9 and {algo.fidelity_for(g) for g in first} == {1}
    early = algo.ask()                     # rung 0 waits for its results: a new bracket starts
    assert algo.fidelity_for(early) == 1 and early not in first
    for g in first:
        algo.tell(g, _reward(g, 0))
    best3 = sorted(first, key=lambda g: -_reward(g, 0))[:3]
    second = [algo.ask() for _ in range(3)]
    assert second == best3 and {algo.fidelity_for(g) for g in second} == {3}
    for g in second:
        algo.tell(g, _reward(g, 1))
    top = algo.ask()
    assert algo.fidelity_for(top) == 9 and top == max(best3, key=lambda g: _reward(g, 1))


def test_hyperband_cycles_through_its_brackets():
    space = E.toy_space()
    r = sn.search(space, "hyperband", M.curve_score, budget=9, fidelity=[1, 3, 9], seed=0,
                  objective="acc")
    got = [t.fidelity for t in r.trials]
    # brackets of eta=3 over 3 levels: [9 at 1, 3 at 3, 1 at 9], [5 at 3, 1 at 9], [3 at 9]
    assert got[:22] == [1] * 9 + [3] * 3 + [9] + [3] * 5 + [9] + [9] * 3
    total = sum(t.cost for t in r.trials)
    assert 9 - 1e-6 <= total < 9 + 1      # the budget is spent in full evaluations
    assert r.best.fidelity == 9 and r.best.status == "done"


def test_asha_promotes_the_best_of_each_rung_as_results_arrive():
    algo = _setup(sn.algorithms.ASHA(eta=3, seed=0), [1, 3])
    g1, g2 = algo.ask(), algo.ask()
    algo.tell(g2, 1.0)                       # results in any order
    algo.tell(g1, 5.0)
    g3 = algo.ask()                          # 2 results: floor(2/3) = 0 promotions
    assert algo.fidelity_for(g3) == 1 and g3 not in (g1, g2)
    algo.tell(g3, 3.0)
    p = algo.ask()                           # 3 results: the best one goes on
    assert p == g1 and algo.fidelity_for(p) == 3
    g4 = algo.ask()                          # g1 is already promoted: a new configuration
    assert algo.fidelity_for(g4) == 1 and g4 not in (g1, g2, g3)
    algo.tell(g4, 9.0)                       # 4 results, top 1 = g4
    p2 = algo.ask()
    assert p2 == g4 and algo.fidelity_for(p2) == 3
    algo.tell(p, 50.0)
    algo.tell(p2, 40.0)
    assert [algo.fidelity_for(algo.ask()) for _ in range(2)] == [1, 1]   # level 3 is the top
    assert algo.results[1].top(2) == [g1, g4]


def test_dehb_evolves_each_level_and_resumes_from_its_results():
    r = sn.search(E.toy_space(), "dehb", M.curve_score, budget=12, fidelity=[1, 3, 9], seed=0,
                  objective="acc")
    algo = r.algorithm
    assert [len(p) for p in algo.population] == algo.sizes        # every subpopulation full
    assert r.best.fidelity == 9
    assert r.best.metrics["acc"] == max(t.metrics["acc"] for t in r.trials if t.fidelity == 9)


# ---- pruners ---------------------------------------------------------------------------------
def _pruned(r):
    return [t for t in r.trials if t.status == "pruned"]


def test_the_median_pruner_stops_runs_below_the_median_and_they_cost_less(tmp_path):
    path = str(tmp_path / "p.sqlite")
    r = sn.search(E.toy_space(), "random", M.curve_score, budget=12, fidelity=M.TOP,
                  pruner="median", seed=0, objective="acc", storage=path, name="median")
    stopped = _pruned(r)
    assert stopped and len(r.trials) > 12                    # stopped runs left budget for more
    assert sum(t.cost for t in r.trials) == pytest.approx(12, abs=1)
    for t in stopped:
        step, value = t.curve[-1]
        assert step < M.TOP and t.cost == pytest.approx(step / M.TOP)
        assert "below the median" in t.error
        assert t.metrics["acc"] == value == t.reward          # told the value it was stopped with
    assert r.best.status == "done" and r.best not in stopped
    rows = SQLiteStore.open(path, readonly=True).trials("median")
    assert [r_.status for r_ in rows] == [t.status for t in r.trials]
    assert all(r_.curve for r_ in rows)                       # every curve is recorded


def test_the_asha_pruner_stops_a_run_outside_the_top_third_of_a_rung():
    r = sn.search(E.toy_space(), "random", M.curve_score, budget=10, fidelity=[1, 3, M.TOP],
                  pruner="asha", seed=1, objective="acc")
    stopped = _pruned(r)
    assert stopped
    for t in stopped:
        rung = t.curve[-1][0]
        assert rung in (1, 3) and "not in the top 1/3" in t.error
        before = [u.curve for u in r.trials if u.id < t.id and u.curve and u.curve[-1][0] >= rung]
        there = sorted((next(v for s, v in c if s >= rung) for c in before), reverse=True)
        k = max(1, math.floor((len(there) + 1) / 3))
        assert t.curve[-1][1] < there[k - 1]               # below the k-th best of the others


def test_the_curve_pruner_stops_a_run_whose_extrapolation_cannot_win():
    def evaluate(arch, epochs=20, report=None):
        top = 90.0 if arch.genome[0] == 3 else 40.0 + 5 * arch.genome[0]
        for e in range(1, epochs + 1):
            report({"acc": top * (1 - math.exp(-0.3 * e))}, e)
        return {"acc": top * (1 - math.exp(-0.3 * epochs))}

    space = sn.Space(dict(a=sn.oneof([3, 0, 1, 2], name="a")))
    order = sn.algorithms.get("random", seed=0)
    r = sn.search(space, order, evaluate, budget=4, fidelity=20, pruner="curve", seed=0,
                  objective="acc", dedup=True)
    assert r.best.genome == (0,) or r.best.metrics["acc"] == pytest.approx(90 * (1 - math.exp(-6)))
    stopped = _pruned(r)
    assert stopped and all("predicted final" in t.error for t in stopped)
    assert all(t.curve[-1][0] < 20 for t in stopped)


def test_pruning_and_asha_run_in_worker_processes_and_exact_runs_repeat():
    kw = dict(budget=10, fidelity=M.TOP, pruner="median", seed=2, objective="acc",
              executor="process:2", exact=True)
    a = sn.search(E.toy_space(), "random", M.curve_score, **kw)
    b = sn.search(E.toy_space(), "random", M.curve_score, **kw)
    assert _pruned(a)
    assert [(t.genome, t.status, t.curve) for t in a.trials] == \
        [(t.genome, t.status, t.curve) for t in b.trials]
    kw = dict(budget=4, fidelity=[1, 3, 9], seed=2, objective="acc", executor="process:2")
    asha = sn.search(E.toy_space(), "asha", M.curve_score, **kw)
    assert all(t.ok for t in asha.trials) and {1, 3} <= {t.fidelity for t in asha.trials}
    again = sn.search(E.toy_space(), "asha", M.curve_score, exact=True, **kw)
    once_more = sn.search(E.toy_space(), "asha", M.curve_score, exact=True, **kw)
    assert [(t.genome, t.fidelity, t.reward) for t in again.trials] == \
        [(t.genome, t.fidelity, t.reward) for t in once_more.trials]


# ---- the store and the CLI ---------------------------------------------------------------
def test_fidelity_rungs_and_pruning_are_in_the_store_and_shown_by_the_cli(tmp_path, capsys):
    path = str(tmp_path / "mf.sqlite")
    hb = sn.search(E.toy_space(), "hyperband", M.curve_score, budget=6, fidelity=[1, 3, 9],
                   seed=0, objective="acc", storage=path, name="hb")
    sn.search(E.toy_space(), "random", M.curve_score, budget=6, fidelity=M.TOP, pruner="median",
              seed=0, objective="acc", storage=path, name="pruned")
    store = SQLiteStore.open(path, readonly=True)
    e = store.experiment("hb")
    assert e.fidelity == [1, 3, 9] and e.pruner is None
    rows = store.trials(e)
    assert [r.fidelity for r in rows] == [t.fidelity for t in hb.trials]
    assert [r.continues for r in rows] == [t.continues for t in hb.trials]
    assert any(r.continues is not None for r in rows)
    assert store.spent(e) == pytest.approx(sum(t.cost for t in hb.trials))
    best = best_sql(store.conn, e.id, e.objectives)
    assert best == best_of(rows, e.objectives) and best.fidelity == 9
    assert best.id == hb.best.id
    p = store.experiment("pruned")
    assert p.pruner["name"] == "median" and p.pruned > 0 and p.trials == p.done + p.pruned
    assert best_sql(store.conn, p.id, p.objectives).status == "done"

    assert main(["show", path, "-e", "hb", "--limit", "0"]) == 0
    out = capsys.readouterr().out
    assert "fidelity: levels 1, 3, 9" in out and "(continues " in out
    assert out.splitlines()[4].split()[:3] == ["id", "status", "fidelity"]
    assert main(["show", path, "-e", "pruned", "--limit", "0"]) == 0
    out = capsys.readouterr().out
    assert "pruned@" in out and "pruner median" in out and "below the median" in out
    assert main(["plot", path, "-e", "pruned", "--out", str(tmp_path)]) == 0
    assert (tmp_path / "pruned_best_so_far.png").stat().st_size > 0


def test_the_nb201_table_is_an_evaluator_at_12_and_200_epochs():
    from symnas.evaluators import nb201
    r = sn.search(sn.spaces.nasbench201(), "hyperband", nb201.evaluator("valid_cifar10"),
                  budget=5, fidelity=[12, 200], seed=0)
    low = [t for t in r.trials if t.fidelity == 12]
    assert low and all("valid200_cifar10" not in t.metrics and t.cost == 0.06 for t in low)
    assert r.best.fidelity == 200
    assert r.best.metrics["valid_cifar10"] == r.best.metrics["valid200_cifar10"]
    with pytest.raises(ValueError, match="12- and 200-epoch"):
        nb201.evaluator("valid_cifar10")(0, epochs=50)


def test_mistakes_in_a_multi_fidelity_search_are_named_at_once():
    space = E.toy_space()
    with pytest.raises(ValueError, match="fidelity= with at least two"):
        sn.search(space, "hyperband", M.curve_score, budget=3)
    with pytest.raises(ValueError, match="pruner= needs fidelity="):
        sn.search(space, "random", M.curve_score, budget=3, pruner="median")
    with pytest.raises(TypeError, match="takes epochs="):
        sn.search(space, "asha", E.score, budget=3, fidelity=[1, 3])
    with pytest.raises(TypeError, match="takes report="):
        sn.search(space, "random", lambda arch, epochs: 1.0, budget=3, fidelity=3, pruner="asha")
    with pytest.raises(ValueError, match="decides itself"):
        sn.search(space, "asha", M.curve_score, budget=3, fidelity=[1, 3], pruner="median")
    with pytest.raises(ValueError, match="increasing"):
        sn.search(space, "asha", M.curve_score, budget=3, fidelity=[3, 1])
    with pytest.raises(ValueError, match=r"with_\(epochs=9\)"):          # the Task's schedule
        sn.search(space, "asha", sn.Task.cifar10(epochs=3), budget=3, fidelity=[1, 3, 9])
    from symnas.evaluators import nb201
    with pytest.raises(ValueError, match="fidelity-neutral"):
        sn.search(sn.spaces.nasbench201(), "asha", nb201.evaluator(), budget=3, fidelity=[12, 200])
    with pytest.raises(ValueError, match="12- and 200-epoch"):
        sn.search(sn.spaces.nasbench201(), "asha", nb201.evaluator("valid_cifar10"), budget=3,
                  fidelity=[12, 100])


# ---- a killed multi-fidelity search resumes exactly -------------------------------------------
def _done(path: str) -> int:
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            return conn.execute("SELECT COUNT(*) FROM trials WHERE status != 'running'").fetchone()[0]
        finally:
            conn.close()
    except sqlite3.Error:
        return 0


@pytest.mark.parametrize("algorithm, pruner, budget", [("dehb", None, 6), ("evolution", "median", 9)])
def test_a_killed_multi_fidelity_search_resumes_to_the_uninterrupted_result(
        tmp_path, monkeypatch, algorithm, pruner, budget):
    monkeypatch.setenv("SYMNAS_TEST_SLEEP", "0")
    ref_path, out = str(tmp_path / "ref.sqlite"), str(tmp_path / "ref.json")
    M.main(ref_path, "mf", algorithm, budget, seed=4, pruner=pruner, out=out)
    reference = json.load(open(out))
    path = str(tmp_path / "killed.sqlite")
    env = dict(os.environ, SYMNAS_TEST_SLEEP="0.03",
               PYTHONPATH=os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")]))
    code = (f"import mf_helpers as m; m.main({path!r}, 'mf', {algorithm!r}, {budget}, seed=4, "
            f"pruner={pruner!r})")
    proc = subprocess.Popen([sys.executable, "-c", code], env=env)
    try:
        deadline = time.time() + 120
        while _done(path) < 7:
            assert proc.poll() is None, "the search ended before it was killed"
            assert time.time() < deadline
            time.sleep(0.02)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait()
    rows = SQLiteStore.open(path).trials("mf")
    assert 7 <= len(rows) < len(reference)          # killed midway (usually in a trial)
    assert any(r[3] == "pruned" for r in reference) or algorithm == "dehb"
    resumed_out = str(tmp_path / "resumed.json")
    M.main(path, "mf", algorithm, budget, seed=4, pruner=pruner, resume=True, out=resumed_out)
    assert json.load(open(resumed_out)) == reference


@pytest.mark.slow
def test_asha_and_a_pruner_run_on_ray():
    ray = pytest.importorskip("ray", reason="Ray tests need the ray extra: pip install 'symnas[ray]'")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
             runtime_env={"env_vars": {"PYTHONPATH": str(TESTS)}})
    try:
        executor = sn.executors.Ray(num_workers=2, resources_per_trial={"num_cpus": 1})
        asha = sn.search(E.toy_space(), "asha", M.curve_score, budget=4, fidelity=[1, 3, 9],
                         seed=0, objective="acc", executor=executor)
        assert {t.fidelity for t in asha.trials} >= {1, 3} and all(t.ok for t in asha.trials)
        assert all(t.curve and t.curve[-1][0] == t.fidelity for t in asha.trials)
        pruned = sn.search(E.toy_space(), "random", M.curve_score, budget=8, fidelity=M.TOP,
                           pruner="median", seed=0, objective="acc", executor=executor)
        assert _pruned(pruned) and all("below the median" in t.error for t in _pruned(pruned))
    finally:
        ray.shutdown()
