"""Importable evaluators and spaces for tests that run trials in worker processes.

Worker processes (process pool, Ray, a killed-and-resumed subprocess) import
evaluators by name, so they live in a module, not in test functions.
"""
from __future__ import annotations

import os
import time

import symnas as sn


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


def crash_once(arch) -> float:
    """Kills its worker process the first time it sees a=3 (a marker file remembers)."""
    marker = os.path.join(os.environ["SYMNAS_TEST_DIR"], f"crashed-{arch.value['a']}-{arch.value['b']}"
                          f"-{arch.value['c']}-{arch.value['d']}")
    if arch.value["a"] == 3 and not os.path.exists(marker):
        open(marker, "w").close()
        os._exit(1)
    return score(arch)


def always_crash(arch) -> float:
    """Kills its worker when a=0; a plain score otherwise."""
    if arch.value["a"] == 0:
        os._exit(3)
    return score(arch)


def raises_on_b2(arch) -> float:
    if arch.value["b"] == 2:
        raise ValueError("b=2 is not allowed")
    return score(arch)


def run_search(storage: str, budget: int, seed: int = 3, executor: str = "inline",
               resume: bool = False) -> None:
    """The search the kill-and-resume test runs in a subprocess (and resumes in-process)."""
    sn.search(toy_space(), sn.algorithms.RegularizedEvolution(population_size=6, tournament_size=3),
              slow_score, budget=budget, seed=seed, storage=storage, name="killed",
              resume=resume, executor=executor, progress=False)
