"""Every script in examples/ runs at a tiny budget, so README and examples never drift from the API."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = sorted((Path(__file__).resolve().parents[1] / "examples").glob("*.py"))


@pytest.mark.parametrize("script", EXAMPLES, ids=lambda p: p.name)
def test_example_runs(script, data_dir, tmp_path):
    env = dict(os.environ, SYMNAS_EXAMPLE_BUDGET="2", SYMNAS_DATA=str(data_dir),
               PYTHONUNBUFFERED="1", OMP_NUM_THREADS="2")
    out = subprocess.run([sys.executable, str(script)], cwd=tmp_path, env=env,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, f"{script.name} failed:\n{out.stdout[-2000:]}\n{out.stderr[-4000:]}"
    assert out.stdout.strip(), f"{script.name} printed nothing"
