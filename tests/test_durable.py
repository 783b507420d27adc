"""Experiments that never lose work (issue 13): shared stores, time limits, stale trials,
resume checks, Ctrl-C, exact parallel runs — with real processes and real SQLite files."""
from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import durable_helpers as D
import pytest

import evaluators_for_tests as E
import symnas as sn
from symnas.store import StoreError

TESTS = Path(__file__).resolve().parent


def _env(**extra: str) -> dict:
    return dict(os.environ, PYTHONPATH=os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")]),
                **extra)


def _spawn(*args, env: dict, **kw) -> subprocess.Popen:
    call = ", ".join([*(repr(a) for a in args), *(f"{k}={v!r}" for k, v in kw.items())])
    return subprocess.Popen([sys.executable, "-c", f"import durable_helpers as d; d.main({call})"],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _rows(path, sql="SELECT id, genome, status FROM trials ORDER BY id"):
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return conn.execute(sql).fetchall()
    finally:
        conn.close()


def _wait_for(cond, timeout=120.0):
    deadline = time.time() + timeout
    while not cond():
        assert time.time() < deadline, "timed out waiting"
        time.sleep(0.05)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:   # a zombie is not alive
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split()[2] != "Z"
    except OSError:
        return False


def test_two_processes_share_one_experiment_and_lose_nothing(tmp_path):
    path, log = str(tmp_path / "s.sqlite"), str(tmp_path / "calls.log")
    env = _env(SYMNAS_TEST_LOG=log, SYMNAS_TEST_SLEEP="0.03")
    procs = [_spawn(path, "shared", 40, shared=True, resume=True, env=env) for _ in range(2)]
    for p in procs:
        _, err = p.communicate(timeout=300)
        assert p.returncode == 0, err
    rows = _rows(path)
    assert [r[0] for r in rows] == list(range(40))             # the budget holds across both
    assert all(r[2] == "done" for r in rows)                     # every result is kept
    assert len({r[1] for r in rows}) == 40                       # each architecture once
    calls = [json.loads(line) for line in open(log)]
    assert len(calls) == 40                                      # none evaluated twice
    assert len({pid for pid, _ in calls}) == 2                   # and both did some of the work
    assert sorted(map(str, (g for _, g in calls))) == sorted(str(json.loads(r[1])) for r in rows)


def test_a_second_process_is_refused_while_the_owner_lives(tmp_path):
    path, log = str(tmp_path / "s.sqlite"), str(tmp_path / "calls.log")
    first = _spawn(path, "exp", 60, env=_env(SYMNAS_TEST_LOG=log, SYMNAS_TEST_SLEEP="0.2"))
    try:
        _wait_for(lambda: os.path.exists(log) and len(open(log).readlines()) >= 2)
        with pytest.raises(StoreError, match=rf"being run by process .*:{first.pid}"):
            sn.search(E.toy_space(), "evolution", E.score, budget=60, seed=0, storage=path,
                      name="exp", resume=True)
        owners = _rows(path, "SELECT DISTINCT owner FROM trials") + \
            _rows(path, "SELECT owner FROM experiments")
        assert {o for (o,) in owners} == {f"{os.uname().nodename}:{first.pid}"}   # untouched
    finally:
        first.kill()
        first.wait()


def test_resume_refuses_a_changed_objective_or_seed(tmp_path):
    path = tmp_path / "r.sqlite"
    ev = lambda arch: {"acc": E.score(arch), "loss": -E.score(arch)}  # noqa: E731
    sn.search(E.toy_space(), "random", ev, budget=5, seed=1, objective="acc", storage=path,
              name="x")
    with pytest.raises(StoreError, match=r"objectives \[max acc\] -> \[min loss\]"):
        sn.search(E.toy_space(), "random", ev, budget=8, seed=1, objective="-loss",
                  storage=path, name="x", resume=True)
    with pytest.raises(StoreError, match=r"seed 1 -> 2"):
        sn.search(E.toy_space(), "random", ev, budget=8, seed=2, objective="acc", storage=path,
                  name="x", resume=True)
    with pytest.raises(StoreError, match=r"algorithm"):
        sn.search(E.toy_space(), "evolution", ev, budget=8, seed=1, objective="acc",
                  storage=path, name="x", resume=True)
    assert len(_rows(path)) == 5                              # refused resumes wrote nothing
    more = sn.search(E.toy_space(), "random", ev, budget=8, seed=1, objective="acc",
                     storage=path, name="x", resume=True)      # a larger budget is fine
    assert len(more) == 8
    forced = sn.search(E.toy_space(), "random", ev, budget=9, seed=1, objective="-loss",
                       storage=path, name="x", resume="force")
    assert len(forced) == 9


@pytest.mark.parametrize("executor", ["inline", "process:2"])
def test_a_hanging_evaluator_times_out_and_the_search_goes_on(executor):
    t0 = time.monotonic()
    result = sn.search(E.toy_space(), "random", D.hangs, budget=12, seed=0, executor=executor,
                       trial_timeout=1.0)
    assert time.monotonic() - t0 < 60
    hung = [t for t in result.trials if t.arch.value["a"] == 3]
    assert hung and all(t.status == "failed" for t in hung)
    assert all("timed out after 1 s" in t.error for t in hung)
    assert all(t.status == "done" for t in result.trials if t.arch.value["a"] != 3)
    assert len(result.trials) == 12


@pytest.mark.slow
def test_a_hanging_evaluator_times_out_on_ray():
    ray = pytest.importorskip("ray", reason="the Ray executor needs the 'ray' extra")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
             runtime_env={"env_vars": {"PYTHONPATH": str(TESTS)}})
    try:
        # the clock runs from submission, and a fresh Ray worker takes seconds to start (tens on
        # a loaded machine): start the two workers first, so the timeout measures the trials
        warm = ray.remote(lambda: bool(__import__("durable_helpers")))   # torch, symnas too
        ray.get([warm.remote() for _ in range(2)])
        result = sn.search(E.toy_space(), "random", D.hangs, budget=4, seed=1,
                           executor=sn.executors.Ray(num_workers=2), trial_timeout=20.0)
    finally:
        ray.shutdown()
    hung = [t for t in result.trials if t.arch.value["a"] == 3]
    assert hung and all("timed out after 20 s" in t.error for t in hung)
    assert len(result.done) == len(result.trials) - len(hung) == 3


@pytest.mark.slow
def test_a_stale_trial_is_retried_then_failed(tmp_path, monkeypatch):
    """A trial whose process dies with it is run again once (max_retries=1), then abandoned."""
    path, log = str(tmp_path / "stale.sqlite"), str(tmp_path / "hang.log")
    env = _env(SYMNAS_TEST_LOG=log)
    for attempt in (1, 2):               # the process hangs on a=3 and is killed, twice
        proc = _spawn(path, "st", 20, "hangs", resume=attempt > 1, env=env)
        _wait_for(lambda n=attempt: os.path.exists(log) and len(open(log).readlines()) >= n)
        proc.kill()
        proc.wait()
    [(trial_id, genome, attempts)] = _rows(
        path, "SELECT id, genome, attempts FROM trials WHERE status='running'")
    assert attempts == 2
    monkeypatch.setenv("SYMNAS_TEST_LOG", log)
    result = sn.search(E.toy_space(), sn.algorithms.RegularizedEvolution(population_size=6,
                                                                         tournament_size=3),
                       D.hangs, budget=20, seed=0, storage=path, name="st", resume=True,
                       trial_timeout=5.0)
    abandoned = [t for t in result.trials if t.id == trial_id][0]
    assert abandoned.status == "failed" and "Abandoned" in abandoned.error
    runs = [g for _, g in map(json.loads, open(log))]
    assert runs.count(json.loads(genome)) == 2                  # it was not run a third time
    assert len(runs) == 2 + sum(1 for t in result.trials if t.arch.value["a"] == 3 and t.id != trial_id)
    assert _rows(path, "SELECT status FROM experiments")[0][0] == "finished"


@pytest.mark.slow
def test_ctrl_c_leaves_an_interrupted_experiment_that_resumes_exactly(tmp_path):
    path, log = str(tmp_path / "int.sqlite"), str(tmp_path / "calls.log")
    out = str(tmp_path / "ref.json")
    ref = _spawn(str(tmp_path / "ref.sqlite"), "int", 24, out=out,
                 env=_env(SYMNAS_TEST_LOG=str(tmp_path / "ref.log")))
    assert ref.wait(timeout=300) == 0
    proc = _spawn(path, "int", 24, env=_env(SYMNAS_TEST_LOG=log, SYMNAS_TEST_SLEEP="0.5"))
    _wait_for(lambda: os.path.exists(log) and len(open(log).readlines()) >= 6)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode != 0
    assert "search interrupted after" in err and "resume=True" in err
    assert "engine.py" not in err and "executors.py" not in err   # no traceback from inside
    assert _rows(path, "SELECT status, finished FROM experiments") == [("interrupted", None)]
    out2 = str(tmp_path / "resumed.json")
    again = _spawn(path, "int", 24, resume=True, out=out2, env=_env(SYMNAS_TEST_LOG=log))
    assert again.wait(timeout=300) == 0, again.stderr.read()
    assert json.load(open(out2)) == json.load(open(out))
    assert _rows(path, "SELECT status FROM experiments") == [("finished",)]


def test_an_exact_parallel_search_is_identical_twice():
    runs = [sn.search(E.toy_space(), sn.algorithms.RegularizedEvolution(population_size=4,
                                                                       tournament_size=2),
                      D.jittery, budget=24, seed=5, executor="process:2", exact=True)
            for _ in range(2)]
    assert [t.genome for t in runs[0]] == [t.genome for t in runs[1]]
    assert [t.reward for t in runs[0]] == [t.reward for t in runs[1]]
    serial = sn.search(E.toy_space(), sn.algorithms.RegularizedEvolution(population_size=4,
                                                                         tournament_size=2),
                       D.jittery, budget=24, seed=5, exact=True)
    assert len(serial) == 24


def test_no_worker_outlives_a_killed_search(tmp_path):
    log = str(tmp_path / "pids.log")
    proc = subprocess.Popen(
        [sys.executable, "-c", "import durable_helpers as d, evaluators_for_tests as E, symnas as sn; "
         "sn.search(E.toy_space(), 'random', d.hangs_always, budget=4, executor='process:2')"],
        env=_env(SYMNAS_TEST_LOG=log))
    _wait_for(lambda: os.path.exists(log) and len(open(log).readlines()) >= 2)
    pids = {json.loads(line)[0] for line in open(log)}
    proc.kill()
    proc.wait()
    _wait_for(lambda: not any(_alive(p) for p in pids), timeout=20)
