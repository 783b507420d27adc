"""Shared pieces of the search-quality benchmarks: read-offs, summaries, p-values, job pools.

Example::

    from _search_stats import readoff, summary, compare
    curve = readoff(valids, tests, budgets=(50, 100, 300))
    summary([94.1, 94.3, 94.2])              # {'mean': 94.2, 'std': 0.0816, 'n': 3}
    compare([94.3, 94.4], [94.1, 94.0])      # {'diff': 0.3, 'p': ..., 'test': 'Mann-Whitney U, two-sided'}
"""
from __future__ import annotations

import json
import multiprocessing as mp
import time
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import numpy as np

HERE = Path(__file__).resolve().parent


def readoff(valids: Sequence[float], tests: Sequence[float], budgets: Iterable[int]) -> dict[int, float]:
    """Test value of the best-by-validation point after each budget prefix (first best kept)."""
    budgets = sorted(budgets)
    out, best_v, best_t = {}, -np.inf, np.nan
    for n, (v, t) in enumerate(zip(valids, tests), 1):
        if v > best_v:
            best_v, best_t = v, t
        if n in budgets:
            out[n] = float(best_t)
    for b in budgets:           # a search that ended early keeps its last best
        out.setdefault(b, float(best_t))
    return out


def summary(values: Sequence[float]) -> dict[str, float]:
    a = np.asarray(values, dtype=float)
    return {"mean": round(float(a.mean()), 4), "std": round(float(a.std()), 4), "n": int(len(a))}


def compare(ours: Sequence[float], peer: Sequence[float]) -> dict[str, Any]:
    """Mean difference and a two-sided Mann-Whitney U p-value over seeds (independent samples)."""
    from scipy import stats
    a, b = np.asarray(ours, float), np.asarray(peer, float)
    if np.all(a == a[0]) and np.all(b == b[0]) and a[0] == b[0]:
        p = 1.0
    else:
        p = float(stats.mannwhitneyu(a, b, alternative="two-sided").pvalue)
    return {"diff": round(float(a.mean() - b.mean()), 4), "p": p,
            "test": "Mann-Whitney U, two-sided"}


def fmt_p(p: float) -> str:
    return "1" if p >= 0.9995 else (f"{p:.3f}" if p >= 1e-3 else f"{p:.0e}")


def run_jobs(fn: Callable[[Any], Any], jobs: list, workers: int) -> list:
    """``[fn(job) for job in jobs]``, in ``workers`` spawned processes when more than one."""
    if workers <= 1:
        return [fn(j) for j in jobs]
    with mp.get_context("spawn").Pool(workers) as pool:
        return list(pool.imap(fn, jobs, chunksize=2))


def merge_results(name: str, fresh: dict) -> dict:
    """The stored ``results/<name>.json`` with the cases of ``fresh`` replaced (others kept)."""
    path = HERE / "results" / f"{name}.json"
    old = json.loads(path.read_text()) if path.exists() else {}
    cases = dict(old.get("cases", {})) if isinstance(old.get("cases"), dict) else {}
    cases.update(fresh)
    return {"cases": cases, "updated": time.strftime("%Y-%m-%d %H:%M")}


def one_thread() -> None:
    """Pins torch and (future) BLAS pools of this process to one thread: timings per core."""
    import os
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    try:
        import torch
        torch.set_num_threads(1)
    except ImportError:  # pragma: no cover
        pass
