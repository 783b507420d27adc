"""Every script in examples/ runs at a tiny budget, so README and examples never drift from the API.

The scripts run in this interpreter (``runpy``, as ``__main__``, in a temporary
working directory, ``SYMNAS_EXAMPLE_BUDGET=2``): importing torch once instead
of once per script. One script also runs as its own process, the way a user
runs it, with a relative ``SYMNAS_DATA`` read from another working directory.
"""
from __future__ import annotations

import os
import runpy
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES_DIR = Path(__file__).resolve().parents[1] / "examples"
EXAMPLES = sorted(EXAMPLES_DIR.glob("*.py"))
SLOW: set[str] = set()   # scripts that take tens of seconds on 2 cores (none at budget 2)


def run_example(script: Path, monkeypatch, tmp_path: Path, capsys, budget: str = "2") -> str:
    """Runs ``script`` as ``__main__`` in this process from ``tmp_path``; returns its stdout."""
    monkeypatch.setenv("SYMNAS_EXAMPLE_BUDGET", budget)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", [str(script)])
    monkeypatch.syspath_prepend(str(EXAMPLES_DIR))      # what `python script.py` puts first
    capsys.readouterr()
    try:
        runpy.run_path(str(script), run_name="__main__")
    except SystemExit as e:                            # argparse and friends
        assert e.code in (0, None), f"{script.name} exited with {e.code}"
    return capsys.readouterr().out


@pytest.mark.parametrize("script", [pytest.param(p, id=p.name, marks=[pytest.mark.slow]
                                                 if p.name in SLOW else [])
                                    for p in EXAMPLES])
def test_example_runs(script, data_dir, tmp_path, monkeypatch, capsys):
    out = run_example(script, monkeypatch, tmp_path, capsys)
    assert out.strip(), f"{script.name} printed nothing"


def test_example_with_relative_data_from_another_working_directory(data_dir, tmp_path):
    """As a user runs it: its own process, in another folder, SYMNAS_DATA relative to it."""
    cwd = tmp_path / "elsewhere"
    cwd.mkdir()
    relative = os.path.relpath(data_dir, cwd)
    assert not os.path.isabs(relative)
    env = dict(os.environ, SYMNAS_EXAMPLE_BUDGET="1", SYMNAS_DATA=relative,
               PYTHONUNBUFFERED="1", OMP_NUM_THREADS="2")
    out = subprocess.run([sys.executable, str(EXAMPLES_DIR / "quickstart.py")], cwd=cwd, env=env,
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, f"quickstart.py failed:\n{out.stdout[-2000:]}\n{out.stderr[-4000:]}"
    assert "best valid accuracy" in out.stdout and "rebuilt SmallCNN" in out.stdout, out.stdout
    assert (cwd / "runs" / "quickstart_best.json").exists()
