"""`symnas ls/show/export/plot` on real stores."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import evaluators_for_tests as E
import symnas as sn
from symnas.cli import main

TESTS = Path(__file__).resolve().parent


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """runs/ with a two-objective search (with failures), a nested run and a file that is not a store."""
    d = tmp_path_factory.mktemp("runs")

    def two(arch):
        if arch.value["b"] == 2:
            raise ValueError("b=2 is not allowed")
        return E.two_objectives(arch)
    sn.search(E.toy_space(), sn.algorithms.Random(), two, budget=20, seed=0,
              objective=[sn.maximize("acc"), sn.minimize("cost")], storage=d, name="pareto")
    hp = sn.Space(dict(shift=sn.oneof([0.0, 5.0], name="shift")))
    sn.search(hp, sn.algorithms.Random(),
              lambda h: sn.search(E.toy_space(), sn.algorithms.Random(),
                                  lambda a: E.score(a) + h.value["shift"], budget=3, seed=1).best.reward,
              budget=2, seed=0, storage=d, name="nested")
    (d / "junk.sqlite").write_text("not a database")
    return d


def test_ls_lists_every_run(runs, capsys):
    assert main(["ls", str(runs)]) == 0
    captured = capsys.readouterr()
    out = captured.out.splitlines()
    assert out[0].split() == ["run", "experiments", "done/failed", "trials/budget", "best", "created"]
    rows = {line.split()[0]: line for line in out[1:]}
    assert set(rows) == {"pareto", "nested"}       # the file that is not a store is skipped ...
    assert captured.err.splitlines() == [                          # ... with one line
        f"symnas: skipped {runs / 'junk.sqlite'}: it is not an SQLite file "
        f"(symnas show {runs / 'junk.sqlite'} says more)"]
    pareto = sn.store.Store.open(runs / "pareto.sqlite").experiment()
    assert f"{pareto.done}/{pareto.failed}" in rows["pareto"] and pareto.failed > 0
    best = max(t.metrics["acc"] for t in sn.store.Store.open(runs / "pareto.sqlite").trials()
               if t.status == "done")
    assert f"acc={best:.4g}" in rows["pareto"]
    assert rows["nested"].split()[1] == "3"                       # the outer + 2 inner experiments


def test_show_prints_trials_and_the_best_within_the_terminal(runs, capsys, monkeypatch, tmp_path):
    monkeypatch.setenv("COLUMNS", "80")
    assert main(["show", str(runs / "pareto.sqlite"), "--limit", "5"]) == 0
    out = capsys.readouterr().out
    assert all(len(line) <= 80 for line in out.splitlines())
    assert "experiment 'pareto'" in out and "best: trial" in out and "more (--limit 0" in out
    assert main(["show", str(runs / "pareto.sqlite"), "--limit", "0"]) == 0
    out = capsys.readouterr().out
    assert "ValueError: b=2 is not allowed" in out and "failed" in out
    # RUN may be a name under ./runs
    monkeypatch.chdir(tmp_path)
    assert main(["show", "nested"]) == 1
    assert "no run 'nested'" in capsys.readouterr().err
    (tmp_path / "runs").symlink_to(runs)
    assert main(["show", "nested"]) == 0 and "experiment 'nested'" in capsys.readouterr().out
    assert main(["show", str(runs / "nested.sqlite")]) == 0
    out = capsys.readouterr().out
    assert "2 nested experiments" in out and "nested/0" in out
    assert main(["show", str(runs / "nested.sqlite"), "-e", "nested/1"]) == 0
    assert "parent: experiment" in capsys.readouterr().out


def test_export_writes_architectures_that_load_rebuilds(runs, tmp_path, capsys):
    out = tmp_path / "exported"
    assert main(["export", str(runs / "pareto.sqlite"), "--top-k", "3", "--out", str(out)]) == 0
    paths = capsys.readouterr().out.split()
    assert len(paths) == 3 and all(Path(p).parent == out for p in paths)
    result = sn.store.Store.open(runs / "pareto.sqlite").result()
    for path, trial in zip(paths, result.top_k(3)):
        loaded = sn.load(path)
        assert loaded.build() == trial.arch.value and loaded.metrics["acc"] == trial.metrics["acc"]
        assert loaded.decisions == trial.decisions


def test_plot_writes_best_so_far_and_pareto_pngs(runs, tmp_path, capsys):
    import matplotlib.image as mpimg
    assert main(["plot", str(runs / "pareto.sqlite"), "--out", str(tmp_path)]) == 0
    paths = capsys.readouterr().out.split()
    assert [Path(p).name for p in paths] == ["pareto_best_so_far.png", "pareto_pareto.png"]
    for p in paths:
        img = mpimg.imread(p)
        assert img.shape[0] >= 300 and img.shape[1] >= 500 and img.std() > 0.01  # drawn, not blank
    assert main(["plot", str(runs / "nested.sqlite"), "--out", str(tmp_path)]) == 0
    assert [Path(p).name for p in capsys.readouterr().out.split()] == ["nested_best_so_far.png"]


def test_the_symnas_command_runs_as_a_module(runs, tmp_path):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")]))
    proc = subprocess.run([sys.executable, "-m", "symnas", "ls", str(runs)], capture_output=True,
                          text=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "pareto" in proc.stdout and "nested" in proc.stdout


def test_export_works_where_the_space_classes_cannot_be_imported(tmp_path):
    """The store keeps the best trials' programs, so `symnas export` needs no user code."""
    from torch import nn

    from models_for_tests import ConvNet
    space = sn.Space(ConvNet(width=sn.oneof([4, 8, 16]), act=sn.oneof([nn.ReLU, nn.GELU])))
    result = sn.search(space, sn.algorithms.Random(), E.param_count, budget=5, seed=0,
                       storage=tmp_path / "conv.sqlite")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}   # tests/ not importable
    proc = subprocess.run([sys.executable, "-m", "symnas", "export", str(tmp_path / "conv.sqlite"),
                           "-k", "2", "--out", str(tmp_path / "out")], capture_output=True,
                          text=True, env=env, cwd=tmp_path, timeout=120)
    assert proc.returncode == 0, proc.stderr
    paths = proc.stdout.split()
    for path, trial in zip(paths, result.top_k(2)):
        model = sn.load(path).build()
        assert isinstance(model, ConvNet)
        assert sum(p.numel() for p in model.parameters()) == trial.metrics["params"]


# ---- a fast CLI: no torch, no PyGlove, SQL for "best" -------------------------------------
def test_ls_and_show_import_neither_torch_nor_pyglove(runs):
    code = ("import sys; from symnas.cli import main; "
            f"assert main(['ls', {str(runs)!r}]) == 0; "
            f"assert main(['show', {str(runs / 'pareto.sqlite')!r}, '--limit', '3']) == 0; "
            f"assert main(['show', {str(runs / 'nested.sqlite')!r}, '-e', 'nested/1']) == 0; "
            "heavy = sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'pyglove', 'numpy')); "
            "print('HEAVY', heavy)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "best: trial" in proc.stdout
    assert proc.stdout.splitlines()[-1] == "HEAVY []"


def test_import_symnas_is_lazy_and_every_public_name_still_works():
    code = ("import sys, symnas as sn; assert 'pyglove' not in sys.modules; "
            "import symnas.search; from symnas import search, oneof, Space; "
            "assert search is sn.search and callable(sn.search) and sn.search.__name__ == 'search'; "
            "assert all(getattr(sn, n) is not None for n in sn.__all__ + ['Task', 'algorithms']); "
            "print('OK', 'torch' in sys.modules)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["OK", "True"]     # torch came only with Space/Task


def test_sql_best_and_order_agree_with_best_of_on_infeasible_and_failed_trials(tmp_path):
    from symnas.records import best_sql, top_sql
    from symnas.store import SQLiteStore
    from symnas.trial import DONE, best_of

    def acc_cost(arch):
        if arch.value["b"] == 2:
            raise ValueError("b=2 is not allowed")
        return E.two_objectives(arch)
    path = tmp_path / "best.sqlite"
    for name, objective in [("max", [sn.maximize("acc"), sn.minimize("cost")]),
                            ("min", [sn.minimize("cost"), sn.maximize("acc")])]:
        sn.search(E.toy_space(), sn.algorithms.Random(), acc_cost, budget=40, seed=2, dedup=False,
                  objective=objective, constraints=["cost <= 3"], storage=path, name=name)
    store = SQLiteStore.open(path, readonly=True)
    for e in store.experiments():
        rows = store.trials(e)
        assert {r.status for r in rows} == {"done", "failed"}
        assert any(r.metrics.get("feasible") is False for r in rows)       # infeasible ones too
        expected = best_of(rows, e.objectives)
        got = best_sql(store.conn, e.id, e.objectives)
        assert got == expected and store.best(e) == expected
        assert got.metrics.get("feasible", True) is True
        o = e.objectives[0]
        order = sorted(rows, key=lambda t: (t.status != DONE, -o.sign * float(t.metrics.get(o.name, 0))))
        assert top_sql(store.conn, e.id, e.objectives) == order
        assert store.top(e, 7) == order[:7]
    # ties go to the lowest id, as in best_of
    acc_best = best_of(store.trials("max"), store.experiment("max").objectives)
    ties = [r for r in store.trials("max") if r.metrics.get("acc") == acc_best.metrics["acc"]
            and r.metrics.get("feasible", True)]
    assert len(ties) > 1 and acc_best.id == min(r.id for r in ties)


# ---- symnas fail ------------------------------------------------------------------------------
_HANG = """
import sys, time
import symnas as sn
import evaluators_for_tests as E
calls = []
def hang(arch):
    calls.append(1)
    if len(calls) == 3:
        time.sleep(3600)              # the third trial hangs
    return E.score(arch)
sn.search(E.toy_space(), sn.algorithms.Random(), hang, budget=6, seed=0, storage=sys.argv[1],
          name="hung", progress=False)
"""


def test_fail_gives_up_on_the_hung_trial_of_a_killed_search(tmp_path, capsys):
    import signal
    import sqlite3
    import time

    from symnas.store import SQLiteStore
    path = tmp_path / "hung.sqlite"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")]))
    proc = subprocess.Popen([sys.executable, "-c", _HANG, str(path)], env=env)
    try:
        deadline = time.time() + 120
        while True:
            assert proc.poll() is None and time.time() < deadline
            try:
                conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
                running = conn.execute("SELECT id FROM trials WHERE status='running'").fetchall()
                done = conn.execute("SELECT COUNT(*) FROM trials WHERE status='done'").fetchone()[0]
                conn.close()
            except sqlite3.Error:
                running, done = [], 0
            if running and done == 2:
                break
            time.sleep(0.05)
        time.sleep(0.2)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait()
    hung = running[0][0]
    assert main(["fail", str(path), "0"]) == 1                  # a done trial is not failed
    assert "is done, not running" in capsys.readouterr().err
    assert main(["fail", str(path), str(hung), "--reason", "hangs on a=3; given up"]) == 0
    assert f"trial {hung} of 'hung' is failed" in capsys.readouterr().out
    assert main(["fail", str(path), str(hung)]) == 1            # once
    capsys.readouterr()

    calls = []
    resumed = sn.search(E.toy_space(), sn.algorithms.Random(), E.score, budget=6, seed=0,
                        storage=path, name="hung", resume=True, progress=False,
                        callbacks=[lambda t: calls.append(t.id)])
    assert hung not in calls and sorted(calls) == [i for i in range(6) if i > hung]
    row = next(r for r in SQLiteStore.open(path, readonly=True).trials("hung") if r.id == hung)
    assert row.status == "failed" and row.error == "hangs on a=3; given up"
    assert resumed.trials[hung].status == "failed" and len(resumed) == 6
