"""`symnas demo`: the main job, at a tiny budget, through the CLI dispatcher."""
from __future__ import annotations

import json
import re

import pytest

from symnas import algorithms, cli, demo
from symnas.evaluators import nb201


def test_demo_prints_table_and_writes_plot(tmp_path, capsys):
    out = tmp_path / "demo"
    assert cli.main(["demo", "--seeds", "3", "--budget", "12", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    ran = [a for a in demo.ALGORITHMS if a in algorithms.names()]
    assert {"random", "evolution"} <= set(ran)
    rows = {}
    for name in ran:
        m = re.search(rf"^{name}\s+([\d.]+) \+- ([\d.]+)\s+([\d.]+)\s+([\d.]+)$", text,
                      re.MULTILINE)
        assert m, f"no row for {name} in:\n{text}"
        rows[name] = [float(v) for v in m.groups()]
    summary = json.loads((out / "summary.json").read_text())
    for row in summary["algorithms"]:
        mean, _std, regret, _ = rows[row["algorithm"]]
        assert len(row["final_test"]) == 3 and len(row["mean_curve"]) == 12
        assert mean == pytest.approx(row["mean"], abs=0.005)
        assert regret == pytest.approx(nb201.OPTIMUM_TEST200_CIFAR10 - row["mean"], abs=0.006)
        # every reported figure is the test accuracy of a real cell of the table
        tests = set(nb201.table().columns["test200_cifar10"].tolist())
        assert all(v in tests for v in row["final_test"])
        assert all(v <= nb201.OPTIMUM_TEST200_CIFAR10 for v in row["mean_curve"])
        check_curve_at_every_step(row, seeds=3, budget=12)
    import matplotlib.image
    img = matplotlib.image.imread(out / "best_so_far.png")
    assert img.ndim == 3 and img.shape[0] > 200 and img.shape[1] > 300
    assert img[..., :3].std() > 0.05   # not a blank image


def check_curve_at_every_step(row, *, seeds, budget):
    """Re-runs the demo's searches of one algorithm and checks its curve point by point.

    The NAS-Bench-201 protocol reports, after each query, the test accuracy of the
    cell with the best validation accuracy so far. That best-so-far validation
    curve (``SearchResult.best_so_far``) is non-decreasing at every step. The
    reported test accuracy follows it as a step function (it may go down when a
    cell with better validation has worse test accuracy), and the demo's mean
    curve is, at every step, the mean over seeds of those per-seed values.
    """
    import statistics

    import symnas as sn
    name, curves = row["algorithm"], []
    for seed in range(seeds):
        result = sn.search(sn.spaces.nasbench201(), algorithms.get(name),
                           nb201.evaluator(demo.OBJECTIVE), budget=budget, seed=seed,
                           objective=demo.OBJECTIVE)
        trials = list(result.trials)
        assert len(trials) == budget and all(t.ok for t in trials), (name, seed)
        best = result.best_so_far()
        assert len(best) == budget
        test = []
        for step in range(budget):
            assert step == 0 or best[step] >= best[step - 1], (name, seed, step, best)
            seen = [t.metrics for t in trials[:step + 1]]
            top = max(m[demo.OBJECTIVE] for m in seen)
            assert best[step] == top, (name, seed, step)
            # the first cell to reach the best validation accuracy is the one reported
            test.append(next(m[demo.REPORTED] for m in seen if m[demo.OBJECTIVE] == top))
        curves.append(test)
    assert row["final_test"] == pytest.approx([c[-1] for c in curves], abs=1e-9)
    expected = [statistics.fmean(c[i] for c in curves) for i in range(budget)]
    assert row["mean_curve"] == pytest.approx(expected, abs=1e-9), name


def test_demo_options(tmp_path, capsys):
    out = tmp_path / "d"
    assert cli.main(["demo", "--seeds", "1", "--budget", "5", "--algorithms", "random",
                     "--out", str(out), "--no-plot"]) == 0
    assert re.search(r"^random ", capsys.readouterr().out, re.MULTILINE)
    assert (out / "summary.json").exists() and not (out / "best_so_far.png").exists()
    with pytest.raises(SystemExit, match="unknown algorithm 'nope'"):   # a typo is an error
        cli.main(["demo", "--algorithms", "random,nope", "--out", str(out)])
