"""Importable evaluators and a search runner for the multi-fidelity tests (issue 17).

The evaluators take ``epochs=`` and ``report=`` like a Task: each
architecture of the toy space has a learning curve that rises towards its
final value (``score``), with a shape of its own, so low-fidelity values rank
architectures roughly but not exactly as the final ones do. Subprocesses run
``python -c "import mf_helpers as m; m.main(...)"`` with ``tests/`` on
``PYTHONPATH``; worker processes import the evaluators by name.
"""
from __future__ import annotations

import json
import math
import os
import time

from torch import nn

import evaluators_for_tests as E
import symnas as sn

TOP = 9            # the highest fidelity (epochs) of the toy curves


@sn.searchable
class DropNet(nn.Module):
    """A small CNN with dropout, so that training draws random numbers between epochs."""

    def __init__(self, width: int = 8, p: float = 0.25):
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(3, width, 3, padding=1), nn.BatchNorm2d(width),
                                      nn.ReLU(), nn.AdaptiveAvgPool2d(2), nn.Flatten(),
                                      nn.Dropout(p))
        self.head = nn.Linear(4 * width, 10)

    def forward(self, x):
        return self.head(self.features(x))


def value_at(arch, epoch: float) -> float:
    """The toy curve: ``score`` approached at an architecture-dependent rate."""
    final = E.score(arch) + 10.0
    rate = 0.5 + 0.4 * arch.genome[2]
    return round(final * (1 - math.exp(-rate * epoch)), 6)


def curve_score(arch, epochs: int = TOP, report=None) -> dict:
    """Reports ``value_at`` after every epoch up to ``epochs``; returns the last one."""
    for e in range(1, int(epochs) + 1):
        if report is not None:
            report({"acc": value_at(arch, e)}, e)
    return {"acc": value_at(arch, epochs), "epochs": int(epochs)}


def slow_curve(arch, epochs: int = TOP, report=None) -> dict:
    """``curve_score`` after sleeping SYMNAS_TEST_SLEEP seconds per epoch (default 0.01)."""
    pause = float(os.environ.get("SYMNAS_TEST_SLEEP", "0.01"))
    for e in range(1, int(epochs) + 1):
        time.sleep(pause)
        if report is not None:
            report({"acc": value_at(arch, e)}, e)
    return {"acc": value_at(arch, epochs), "epochs": int(epochs)}


def main(path: str, name: str, algorithm: str, budget: float, seed: int = 0,
         pruner: str | None = None, resume: bool = False, out: str | None = None) -> None:
    """Runs one multi-fidelity search of the toy space into ``path``."""
    algo = sn.algorithms.get("evolution", population_size=6, tournament_size=3) \
        if algorithm == "evolution" else algorithm
    result = sn.search(E.toy_space(), algo, slow_curve, budget=budget, seed=seed,
                       objective="acc", storage=path, name=name, resume=resume, progress=False,
                       fidelity=[1, 3, TOP], pruner=pruner)
    if out:
        with open(out, "w") as f:
            json.dump(summary(result), f)


def summary(result) -> list:
    """What must be equal between an interrupted-and-resumed search and an uninterrupted one."""
    return [[t.id, list(t.genome), t.fidelity, t.status, t.reward, t.cost, t.continues,
             t.curve, t.error] for t in result.trials]
