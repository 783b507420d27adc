"""Every ``>>>`` example in the project's docstrings runs, so the docs never drift from the API."""
from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

import symnas


def _modules() -> list[str]:
    names = ["symnas"]
    for pkg in (symnas, importlib.import_module("symnas.spaces"),
                importlib.import_module("symnas.algorithms"),
                importlib.import_module("symnas.evaluators")):
        for info in pkgutil.iter_modules(pkg.__path__, pkg.__name__ + "."):
            if info.name not in names and not info.name.endswith("__main__"):
                names.append(info.name)
    return names


MODULES = _modules()


def test_the_doctest_sweep_finds_the_project():
    assert {"symnas.engine", "symnas.spaces.nasbench201_space", "symnas.algorithms.evolution",
            "symnas.evaluators.zero_cost"} <= set(MODULES)


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_run(name, data_dir, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)            # examples that write files write them here
    module = importlib.import_module(name)
    finder = doctest.DocTestFinder(exclude_empty=True)
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    for test in finder.find(module, name):
        runner.run(test)
    failed, attempted = runner.summarize(verbose=False)
    assert failed == 0, f"{failed} of {attempted} doctest examples failed in {name}"
