"""The experiment store: recording, kill-and-resume in a real subprocess, bad files."""
from __future__ import annotations

import hashlib
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

import evaluators_for_tests as E
import symnas as sn
from symnas.store import Store, StoreError

TESTS = Path(__file__).resolve().parent


def re_algo():
    return sn.algorithms.RegularizedEvolution(population_size=6, tournament_size=3)


def _done_count(path: str) -> int:
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            return conn.execute("SELECT COUNT(*) FROM trials WHERE status='done'").fetchone()[0]
        finally:
            conn.close()
    except sqlite3.Error:
        return 0


def test_killed_search_resumes_to_the_uninterrupted_result(tmp_path, monkeypatch):
    budget = 16
    reference = sn.search(E.toy_space(), re_algo(), E.score, budget=budget, seed=3)
    path = str(tmp_path / "killed.sqlite")
    env = dict(os.environ, SYMNAS_TEST_SLEEP="0.2",
               PYTHONPATH=os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")]))
    proc = subprocess.Popen([sys.executable, "-c", "import evaluators_for_tests as e; "
                             f"e.run_search({path!r}, {budget})"], env=env)
    try:
        deadline = time.time() + 120
        while _done_count(path) < 5:
            assert proc.poll() is None, "the search subprocess ended before it was killed"
            assert time.time() < deadline
            time.sleep(0.05)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait()
    assert proc.returncode == -signal.SIGKILL

    store = Store.open(path)
    rows = store.trials("killed")
    done = [r for r in rows if r.status == "done"]
    assert 5 <= len(done) < budget                      # the kill lost nothing recorded
    assert [r.id for r in rows] == list(range(len(rows)))
    assert all(r.status in ("done", "running") for r in rows)

    calls = []
    monkeypatch.setenv("SYMNAS_TEST_SLEEP", "0")
    resumed = sn.search(E.toy_space(), re_algo(), E.slow_score, budget=budget, seed=3,
                        storage=path, name="killed", resume=True,
                        callbacks=[lambda t: calls.append(t.id)])
    assert len(resumed) == budget
    assert [t.id for t in resumed] == list(range(budget))
    assert [t.genome for t in resumed] == [t.genome for t in reference]
    assert [t.metrics for t in resumed] == [t.metrics for t in reference]
    assert sorted(calls) == list(range(len(done), budget))  # finished trials were not re-run
    # the store agrees, and reading it back gives the same result
    again = store.result("killed")
    assert [t.genome for t in again] == [t.genome for t in reference]
    assert again.best.reward == reference.best.reward
    assert store.experiment("killed").done == budget


def test_a_killed_parallel_search_resumes_with_its_asks_and_tells_replayed(tmp_path, monkeypatch):
    budget = 14
    path = str(tmp_path / "killed.sqlite")
    env = dict(os.environ, SYMNAS_TEST_SLEEP="0.15",
               PYTHONPATH=os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")]))
    proc = subprocess.Popen([sys.executable, "-c", "import evaluators_for_tests as e; "
                             f"e.run_search({path!r}, {budget}, executor='process:2')"], env=env)
    try:
        deadline = time.time() + 120
        while _done_count(path) < 4:
            assert proc.poll() is None and time.time() < deadline
            time.sleep(0.05)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait()
    rows = Store.open(path).trials("killed")
    recorded = {r.id: r for r in rows if r.status == "done"}
    assert any(r.status == "running" for r in rows)     # trials were in flight when it died

    monkeypatch.setenv("SYMNAS_TEST_SLEEP", "0")
    calls = []
    resumed = sn.search(E.toy_space(), re_algo(), E.slow_score, budget=budget, seed=3,
                        storage=path, name="killed", resume=True,
                        callbacks=[lambda t: calls.append(t.id)])
    assert [t.id for t in resumed] == list(range(budget)) and all(t.ok for t in resumed)
    assert sorted(calls) == sorted(set(range(budget)) - set(recorded))  # done ones not re-run
    for r in rows:    # the replay was exact: the algorithm re-asked for what it had asked
        assert resumed.trials[r.id].genome == tuple(r.genome)
        if r.id in recorded:
            assert resumed.trials[r.id].metrics == r.metrics


def test_every_trial_and_the_experiment_are_recorded(tmp_path):
    path = tmp_path / "rec.sqlite"
    result = sn.search(E.toy_space(), sn.algorithms.Random(), E.raises_on_b2, budget=12, seed=1,
                       storage=path, name="rec")
    store = Store.open(path)
    exp = store.experiment("rec")
    assert exp.fingerprint == E.toy_space().fingerprint()
    assert "Random" in exp.algorithm and exp.seed == 1 and exp.budget == 12
    assert set(exp.versions) == {"symnas", "pyglove", "torch"} and exp.versions["pyglove"]
    assert exp.created and exp.finished and exp.created <= exp.finished
    rows = store.trials(exp)
    assert len(rows) == 12 and exp.done + exp.failed == 12 and exp.failed >= 1
    for row, trial in zip(rows, result.trials):
        assert tuple(row.genome) == trial.genome and row.status == trial.status
        assert row.seed == trial.seed and row.attempts == 1
        if row.status == "failed":
            assert "ValueError: b=2 is not allowed" in row.error
            assert row.decisions is None
        else:
            assert row.metrics == trial.metrics and row.reward == trial.reward
            assert row.decisions == trial.decisions
            assert row.program == {"a": row.decisions["a"], "b": row.decisions["b"],
                                   "c": row.decisions["c"], "d": row.decisions["d"]}
    back = store.result(exp)
    assert back.best.genome == result.best.genome and len(back.failed) == len(result.failed)
    assert back.best.build() == result.best.arch.value


def test_resuming_a_finished_search_evaluates_nothing_and_a_larger_budget_continues(tmp_path):
    path = tmp_path / "r.sqlite"
    first = sn.search(E.toy_space(), re_algo(), E.score, budget=8, seed=5, storage=path)
    calls = []

    def counted(arch):
        calls.append(arch.genome)
        return E.score(arch)
    same = sn.search(E.toy_space(), re_algo(), counted, budget=8, seed=5, storage=path, resume=True)
    assert calls == [] and [t.genome for t in same] == [t.genome for t in first]
    longer = sn.search(E.toy_space(), re_algo(), counted, budget=12, seed=5, storage=path,
                       resume=True)
    straight = sn.search(E.toy_space(), re_algo(), E.score, budget=12, seed=5)
    assert len(calls) == 4 and [t.genome for t in longer] == [t.genome for t in straight]


def test_unseeded_resume_recovers_the_finished_trials(tmp_path):
    path = tmp_path / "u.sqlite"
    first = sn.search(E.toy_space(), re_algo(), E.score, budget=6, storage=path, name="u")
    before = [(t.id, t.genome, t.metrics) for t in first]
    assert [i for i, _, _ in before] == list(range(6))
    evaluated = []

    def counted(arch):
        evaluated.append(arch.genome)
        return E.score(arch)
    resumed = sn.search(E.toy_space(), re_algo(), counted, budget=10, storage=path, name="u",
                        resume=True)
    trials = list(resumed)
    assert len(trials) == 10 and [t.id for t in trials] == list(range(10))
    # the six finished trials come back exactly as recorded (no seed could have redrawn them)
    assert [(t.id, t.genome, t.metrics) for t in trials[:6]] == before
    # only the four new trials were evaluated, and they are new architectures
    assert evaluated == [t.genome for t in trials[6:]]
    assert len({t.genome for t in trials}) == 10
    store = Store.open(path)
    assert store.experiment("u").done == 10
    assert [tuple(r.genome) for r in store.trials("u")] == [t.genome for t in trials]


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_a_file_that_is_not_a_store_is_refused_and_left_untouched(tmp_path):
    text = tmp_path / "notes.sqlite"
    text.write_text("my precious notes\n" * 100)
    other = tmp_path / "other.sqlite"
    conn = sqlite3.connect(other)
    conn.execute("CREATE TABLE users (name TEXT)")
    conn.execute("INSERT INTO users VALUES ('ada')")
    conn.commit()
    conn.close()
    for path in (text, other):
        before = _digest(path)
        with pytest.raises(StoreError, match="not a symnas store.*untouched"):
            sn.search(E.toy_space(), sn.algorithms.Random(), E.score, budget=2, storage=path)
        with pytest.raises(StoreError, match="not a symnas store"):
            Store.open(path)
        assert _digest(path) == before
    assert not (tmp_path / "notes.sqlite-wal").exists()


def test_a_store_of_another_space_or_an_existing_name_is_refused(tmp_path):
    path = tmp_path / "s.sqlite"
    sn.search(E.toy_space(), sn.algorithms.Random(), E.score, budget=3, seed=0, storage=path)
    other = sn.Space(dict(a=sn.oneof([0, 1, 2, 3], name="a"), b=sn.oneof([0, 1], name="b")))
    with pytest.raises(StoreError, match="different space.*untouched"):
        sn.search(other, sn.algorithms.Random(), lambda a: 1.0, budget=3, storage=path,
                  resume=True)
    with pytest.raises(StoreError, match="already exists.*resume=True.*new name="):
        sn.search(E.toy_space(), sn.algorithms.Random(), E.score, budget=3, storage=path)
    assert [e.done for e in Store.open(path).experiments()] == [3]
    # another name in the same file is another experiment, of any space
    sn.search(other, sn.algorithms.Random(), lambda a: 1.0, budget=2, storage=path, name="b")
    assert [e.name for e in Store.open(path).experiments()] == ["s", "b"]


def test_storage_folder_names_the_file_after_the_search(tmp_path):
    runs = tmp_path / "runs"
    sn.search(E.toy_space(), sn.algorithms.Random(), E.score, budget=2, storage=runs, name="exp1")
    assert (runs / "exp1.sqlite").exists()
    with pytest.raises(ValueError, match="name="):
        sn.search(E.toy_space(), sn.algorithms.Random(), E.score, budget=2, storage=runs)


def test_progress_bar_shows_best_and_failures_only_when_asked(capsys):
    sn.search(E.toy_space(), sn.algorithms.Random(), E.raises_on_b2, budget=12, seed=1,
              progress=True)
    err = capsys.readouterr().err
    assert "12/12" in err and "best=" in err and "failed=" in err
    sn.search(E.toy_space(), sn.algorithms.Random(), E.raises_on_b2, budget=12, seed=1,
              progress=False)
    sn.search(E.toy_space(), sn.algorithms.Random(), E.raises_on_b2, budget=12, seed=1)
    assert capsys.readouterr().err == ""                # stderr is not a terminal under pytest
