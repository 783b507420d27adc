"""Importable evaluators and a search runner for the durable-experiment tests (issue 13).

Subprocesses run ``python -c "import durable_helpers as d; d.main(...)"`` with
``tests/`` on ``PYTHONPATH``; worker processes import the evaluators by name.
"""
from __future__ import annotations

import json
import os
import random
import signal
import time

import evaluators_for_tests as E
import symnas as sn


def logged_score(arch) -> float:
    """``score`` after SYMNAS_TEST_SLEEP seconds; appends (pid, genome) to SYMNAS_TEST_LOG."""
    time.sleep(float(os.environ.get("SYMNAS_TEST_SLEEP", "0.02")))
    with open(os.environ["SYMNAS_TEST_LOG"], "a") as f:
        f.write(json.dumps([os.getpid(), list(arch.genome)]) + "\n")
    return E.score(arch)


def hangs(arch) -> float:
    """Hangs for an hour on a=3 (writes its pid to SYMNAS_TEST_LOG first); else ``score``."""
    if arch.value["a"] == 3:
        log = os.environ.get("SYMNAS_TEST_LOG")
        if log:
            with open(log, "a") as f:
                f.write(json.dumps([os.getpid(), list(arch.genome)]) + "\n")
        time.sleep(3600)
    return E.score(arch)


def hangs_always(arch) -> float:
    """Writes its pid to SYMNAS_TEST_LOG, then hangs for an hour."""
    with open(os.environ["SYMNAS_TEST_LOG"], "a") as f:
        f.write(json.dumps([os.getpid(), list(arch.genome)]) + "\n")
    time.sleep(3600)
    return 0.0


def jittery(arch) -> float:
    """``score`` after a random sleep (0-30 ms): results arrive in a random order."""
    time.sleep(random.random() * 0.03)
    return E.score(arch)


def main(path: str, name: str, budget: int, evaluator: str = "logged_score", seed: int = 0,
         executor: str = "inline", shared: bool = False, resume: bool = False,
         max_retries: int = 1, out: str | None = None) -> None:
    """Runs one search of the toy space into ``path``; writes its trial genomes to ``out``."""
    # Ctrl-C as in a terminal: a process started in the background by a shell without job
    # control inherits SIGINT ignored, and the tests that interrupt a search would not reach it
    signal.signal(signal.SIGINT, signal.default_int_handler)
    result = sn.search(E.toy_space(), sn.algorithms.RegularizedEvolution(population_size=6,
                                                                         tournament_size=3),
                       globals()[evaluator], budget=budget, seed=seed, storage=path, name=name,
                       shared=shared, resume=resume, executor=executor, max_retries=max_retries,
                       progress=False)
    if out:
        with open(out, "w") as f:
            json.dump([[t.id, list(t.genome), t.status, t.reward] for t in result.trials], f)
