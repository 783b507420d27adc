"""Every code block of README.md runs as written.

``python`` blocks run for real, in order, in one namespace (later blocks use
the tour's ``space`` and ``task``), from a temporary working directory. Each
is written to be cheap and says what it costs; together they are the slow
test here. ``bash`` blocks install things, so their commands are checked
against what the project really declares (the pinned torch is the one
installed, the extras exist, the data folder is where the text says), and
the commands that only run symnas (``symnas demo``) run as written.
"""
from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
import types
from pathlib import Path

import pytest

import symnas as sn

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
FENCE = re.compile(r"^```([\w+-]*)[ \t]*\n(.*?)^```[ \t]*$", re.M | re.S)


def blocks(lang: str) -> list[tuple[int, str]]:
    """``(line number, code)`` of README's fenced blocks in ``lang``, in order."""
    text = README.read_text()
    return [(text.count("\n", 0, m.start()) + 2, m.group(2))
            for m in FENCE.finditer(text) if m.group(1) == lang]


def test_readme_has_code_blocks_to_run():
    assert len(blocks("python")) >= 3 and len(blocks("bash")) >= 2
    # every fenced block is one this test knows how to check
    langs = {m.group(1) for m in FENCE.finditer(README.read_text())}
    assert langs <= {"python", "bash", ""}, langs


# ---- bash: the documented commands ---------------------------------------------------------
def _pyproject() -> dict:
    import tomllib
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def check_command(command: str, tmp_path: Path) -> None:
    words = shlex.split(command)
    env = {}
    while words and re.fullmatch(r"[A-Z_]+=.*", words[0]):
        key, _, value = words.pop(0).partition("=")
        env[key] = value
    if words == ["python3", "-m", "venv", ".venv"] or words == [".", ".venv/bin/activate"]:
        return
    if words[:2] == ["pip", "install"] and len(words) == 3 and words[2].startswith("torch=="):
        import torch
        assert torch.__version__.split("+")[0] == words[2].split("==")[1], (
            f"README pins {words[2]} but torch {torch.__version__} is installed")
        return
    if words[:3] == ["pip", "install", "-e"] and len(words) == 4:
        m = re.fullmatch(r"\.(?:\[([\w,]+)\])?", words[3])
        assert m, f"unexpected install target {words[3]!r}"
        extras = set(filter(None, (m.group(1) or "").split(",")))
        declared = set(_pyproject()["project"]["optional-dependencies"])
        assert extras <= declared, f"README installs extras {extras - declared} that do not exist"
        return
    if words == ["symnas", "demo"]:
        assert "symnas" in _pyproject()["project"]["scripts"]
        exe = Path(sys.executable).parent / "symnas"
        out = subprocess.run([str(exe), "demo"], cwd=tmp_path, capture_output=True, text=True,
                             timeout=600, env=dict(os.environ, **env))
        assert out.returncode == 0, out.stderr[-3000:]
        assert re.search(r"^[\d,]+ queries in [\d.]+ s$", out.stdout, re.M), out.stdout
        assert (tmp_path / "runs" / "demo" / "best_so_far.png").exists()
        return
    if words == ["python", "-m", "pytest", "-q", "tests"]:
        # the data folder the text names: ``shared/data`` beside the checkout
        assert env == {"SYMNAS_DATA": "../shared/data"}, env
        sibling = (ROOT / env["SYMNAS_DATA"]).resolve()
        if sibling.exists():
            assert (sibling / "nb201" / "nb201.csv").exists()
        assert (ROOT / "tests").is_dir() and (ROOT / "tests" / "conftest.py").exists()
        return
    raise AssertionError(f"README runs a command this test does not know: {command!r}; "
                         "teach tests/test_readme.py to check it")


def test_bash_blocks_are_the_documented_commands(tmp_path):
    setup = blocks("bash")
    for _, code in setup:
        for line in code.strip().splitlines():
            for command in line.split("&&"):
                check_command(command.strip(), tmp_path)
    # the two set-up lines: the first runs the demo, the second the tests
    assert "symnas demo" in setup[0][1] and "python -m pytest -q tests" in setup[1][1]


# ---- python: every block, as written ----------------------------------------------------------
@pytest.mark.slow
def test_python_blocks_run_as_written(data_dir, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    module = types.ModuleType("readme_blocks")          # the blocks' classes are importable
    monkeypatch.setitem(sys.modules, module.__name__, module)
    ns = module.__dict__
    for line, code in blocks("python"):
        exec(compile(code, f"{README}:{line}", "exec"), ns)   # noqa: S102 - README's own code
        if "class Net(" in code:                      # the tour
            space, model = ns["space"], ns["model"]
            assert space.size == 18 and len(space.decisions) == 3
            assert space.validate((2, 3, 32, 32), n=8) == []
            assert type(model).__name__ == "Net" and repr(model).startswith("Net(\n  (features)")
            best = ns["result"].best
            assert best.ok and 0 <= best.metrics["valid_acc"] <= 100
            assert ns["result"].objectives[0].name == "valid_acc"     # the Task's metric
            again = sn.load("best.json").build()
            assert type(again) is type(model)
            assert sum(p.numel() for p in again.parameters()) == \
                sum(p.numel() for p in model.parameters())
        if "sn.sample(" in code:
            assert ns["inner"].best.ok
        if "sn.Supernet(space)" in code and "Sandwich(" in code:     # the one-shot block
            net, model, best = ns["net"], ns["model"], ns["result"].best
            assert net.sharing["width"] == "entangled" and net.sharing["act"] == "mixed"
            assert sum(p.numel() for p in net.weight_parameters()) == net.count_params(net.extreme())
            assert type(model).__name__ == "Net"                  # the user's own class back
            assert best.ok and best.metrics["params_M"] <= 0.03
            assert os.path.exists("runs/one_shot.sqlite.spos.ckpt")
        if "DARTS(" in code:
            assert len(ns["result"].best.decisions) == 6
            assert ns["net"].decisions
    capsys.readouterr()
