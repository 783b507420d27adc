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
        m = re.search(rf"^{name}\s+([\d.]+) \+- ([\d.]+)\s+([\d.]+)\s+([\d.]+)$", text, re.M)
        assert m, f"no row for {name} in:\n{text}"
        rows[name] = [float(v) for v in m.groups()]
    summary = json.loads((out / "summary.json").read_text())
    for row in summary["algorithms"]:
        mean, std, regret, _ = rows[row["algorithm"]]
        assert len(row["final_test"]) == 3 and len(row["mean_curve"]) == 12
        assert mean == pytest.approx(row["mean"], abs=0.005)
        assert regret == pytest.approx(nb201.OPTIMUM_TEST200_CIFAR10 - row["mean"], abs=0.006)
        # every reported figure is the test accuracy of a real cell of the table
        tests = set(nb201.table().columns["test200_cifar10"].tolist())
        assert all(v in tests for v in row["final_test"])
        # best-by-validation never gets worse in validation, so the curve is a step function
        assert row["mean_curve"][-1] <= nb201.OPTIMUM_TEST200_CIFAR10
    import matplotlib.image
    img = matplotlib.image.imread(out / "best_so_far.png")
    assert img.ndim == 3 and img.shape[0] > 200 and img.shape[1] > 300
    assert img[..., :3].std() > 0.05   # not a blank image


def test_demo_options(tmp_path, capsys):
    out = tmp_path / "d"
    assert cli.main(["demo", "--seeds", "1", "--budget", "5", "--algorithms", "random,nope",
                     "--out", str(out), "--no-plot"]) == 0
    text = capsys.readouterr().out
    assert "skipped (not registered): nope" in text and re.search(r"^random ", text, re.M)
    assert (out / "summary.json").exists() and not (out / "best_so_far.png").exists()
    with pytest.raises(SystemExit, match="none of"):
        cli.main(["demo", "--algorithms", "nope", "--out", str(out)])
