"""`symnas ls/show/export/plot` on real stores."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import symnas as sn
import evaluators_for_tests as E
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
    out = capsys.readouterr().out.splitlines()
    assert out[0].split() == ["run", "experiments", "done/failed", "trials/budget", "best", "created"]
    rows = {line.split()[0]: line for line in out[1:]}
    assert set(rows) == {"pareto", "nested", "junk"}
    pareto = sn.store.Store.open(runs / "pareto.sqlite").experiment()
    assert f"{pareto.done}/{pareto.failed}" in rows["pareto"] and pareto.failed > 0
    best = max(t.metrics["acc"] for t in sn.store.Store.open(runs / "pareto.sqlite").trials()
               if t.status == "done")
    assert f"acc={best:.4g}" in rows["pareto"]
    assert rows["nested"].split()[1] == "3"                       # the outer + 2 inner experiments
    assert "not a symnas store" in rows["junk"]


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
