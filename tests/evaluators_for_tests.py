"""Importable evaluators and spaces for tests that run trials in worker processes.

Worker processes (process pool, Ray, a killed-and-resumed subprocess) import
evaluators by name, so they live in a module, not in test functions.
"""
from __future__ import annotations

import os
import time
from typing import TYPE_CHECKING

import symnas as sn

if TYPE_CHECKING:
    import torch


def toy_space() -> sn.Space:
    """Four decisions, 4*3*3*2 = 72 architectures."""
    return sn.Space(dict(a=sn.oneof([0, 1, 2, 3], name="a"), b=sn.oneof([0, 1, 2], name="b"),
                         c=sn.oneof([0, 1, 2], name="c"), d=sn.oneof([0, 1], name="d")))


def score(arch) -> float:
    """A deterministic reward of the toy space's decisions."""
    v = arch.value
    return float(v["a"] * 3 + v["b"] * 2 - abs(v["c"] - 1) + v["d"] * 0.5)


def slow_score(arch) -> float:
    """``score`` after sleeping SYMNAS_TEST_SLEEP seconds (default 0.05)."""
    time.sleep(float(os.environ.get("SYMNAS_TEST_SLEEP", "0.05")))
    return score(arch)


def pid_score(arch) -> dict:
    """``score`` plus the worker's process id."""
    return {"reward": score(arch), "pid": os.getpid()}


def crash_once(arch, marker_dir: str) -> float:
    """Kills its worker process the first time any trial has a=3 (a marker file remembers)."""
    marker = os.path.join(marker_dir, "crashed-on-a3")
    if arch.value["a"] == 3 and not os.path.exists(marker):
        open(marker, "w").close()
        os._exit(1)
    return score(arch)


def chaos(arch, marker_dir: str) -> float:
    """a=0,d=0: the worker always dies; b=2: raises; a=3: dies once (``crash_once``)."""
    v = arch.value
    if v["a"] == 0 and v["d"] == 0:
        os._exit(3)
    if v["b"] == 2:
        raise ValueError("b=2 is not allowed")
    return crash_once(arch, marker_dir)


def raises_on_b2(arch) -> float:
    """Fails (raises) for b=2."""
    if arch.value["b"] == 2:
        raise ValueError("b=2 is not allowed")
    return score(arch)


def run_search(storage: str, budget: int, seed: int = 3, executor: str = "inline",
               resume: bool = False) -> None:
    """The search the kill-and-resume test runs in a subprocess (and resumes in-process)."""
    sn.search(toy_space(), sn.algorithms.RegularizedEvolution(population_size=6, tournament_size=3),
              slow_score, budget=budget, seed=seed, storage=storage, name="killed",
              resume=resume, executor=executor, progress=False)


def two_objectives(arch) -> dict:
    """Accuracy-like and cost-like metrics of the toy space (they conflict)."""
    v = arch.value
    return {"acc": score(arch), "cost": float(v["a"] + v["b"] + v["d"])}


def param_count(model: torch.nn.Module) -> dict:
    """A model evaluator: the built module's parameter count (and a reward from it)."""
    n = sum(p.numel() for p in model.parameters())
    return {"reward": -float(n), "params": n}


def traced_program():
    """A traced (define-by-run) program: plain code with named choices."""
    from torch import nn
    width = sn.oneof([4, 8], name="width")
    return nn.Sequential(nn.Linear(3, width), sn.oneof([nn.ReLU, nn.Tanh], name="act")(),
                         nn.Linear(width, 1))


def nested_eval(hp) -> float:
    """An outer trial that runs an inner search (recorded as its child wherever it runs)."""
    shift = hp.value["shift"]
    inner = sn.search(toy_space(), sn.algorithms.Random(), score, budget=3, seed=1)
    return inner.best.reward + shift
