"""Plots of a search (matplotlib, written as PNG files; no display needed).

Example::

    result = sn.store.Store.open("runs/x.sqlite").result()
    best_so_far(result, "runs/x_best.png")
    pareto(result, "runs/x_pareto.png")        # two objectives
"""
from __future__ import annotations

import math
import os
from typing import Any

from symnas.trial import DONE, FAILED, PRUNED


def _pyplot():
    import matplotlib
    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt
    return plt


def best_so_far(result: Any, path: str | os.PathLike, title: str | None = None) -> str:
    """Best objective value after each trial (a step line) over every trial's value (dots)."""
    plt = _pyplot()
    obj = result.objectives[0]
    fig, ax = plt.subplots(figsize=(6.4, 4.0), dpi=100)
    xs = [i + 1 for i, t in enumerate(result.trials) if t.status == DONE and obj.name in t.metrics]
    ys = [float(t.metrics[obj.name]) for t in result.trials
          if t.status == DONE and obj.name in t.metrics]
    ax.scatter(xs, ys, s=10, alpha=0.4, color="tab:gray", label="trial")
    _mark_fidelities(ax, result, obj)
    best = result.best_so_far()
    ax.step(range(1, len(best) + 1), [b if not math.isnan(b) else None for b in best],
            where="post", color="tab:blue", label="best so far")
    failed = [i + 1 for i, t in enumerate(result.trials) if t.status == FAILED]
    if failed and ys:
        ax.scatter(failed, [min(ys)] * len(failed), marker="x", color="tab:red", s=14,
                   label="failed")
    ax.set_xlabel("trials")
    ax.set_ylabel(f"{obj.name} ({obj.mode})")
    ax.set_title(title or f"{result.name or 'search'}: best so far")
    ax.legend(loc="best", fontsize="small")
    ax.grid(alpha=0.3)
    return _save(fig, path)


def _mark_fidelities(ax: Any, result: Any, obj: Any) -> None:
    """Multi-fidelity searches: trials below the highest fidelity, and pruned ones at the value
    they were stopped with (labelled with the step)."""
    top = max((t.fidelity for t in result.trials if getattr(t, "fidelity", None) is not None),
              default=None)
    low = [(i + 1, float(t.metrics[obj.name])) for i, t in enumerate(result.trials)
           if t.status == DONE and obj.name in t.metrics and top is not None
           and t.fidelity is not None and t.fidelity < top]
    if low:
        ax.scatter(*zip(*low), s=14, facecolors="none", edgecolors="tab:green",
                   label=f"below fidelity {top:g}")
    stopped = [(i + 1, float(t.metrics[obj.name]), t.curve[-1][0] if t.curve else None)
               for i, t in enumerate(result.trials) if t.status == PRUNED and obj.name in t.metrics]
    if stopped:
        ax.scatter([x for x, _, _ in stopped], [y for _, y, _ in stopped], marker="v", s=16,
                   color="tab:orange", label="pruned (stopped early)")
        if len(stopped) <= 30:
            for x, y, step in stopped:
                if step is not None:
                    ax.annotate(f"{step:g}", (x, y), fontsize=6, xytext=(2, -6),
                                textcoords="offset points", color="tab:orange")


def pareto(result: Any, path: str | os.PathLike, title: str | None = None) -> str:
    """The first two objectives of every finished trial, the Pareto front highlighted."""
    if len(result.objectives) < 2:
        raise ValueError("a Pareto plot needs a search with two objectives "
                         f"(this one has {[o.name for o in result.objectives]}).")
    plt = _pyplot()
    o1, o2 = result.objectives[0], result.objectives[1]
    done = [t for t in result.done if o1.name in t.metrics and o2.name in t.metrics]
    front = sorted(result.pareto_front(), key=lambda t: float(t.metrics[o1.name]))
    fig, ax = plt.subplots(figsize=(6.4, 4.8), dpi=100)
    ax.scatter([float(t.metrics[o1.name]) for t in done], [float(t.metrics[o2.name]) for t in done],
               s=10, alpha=0.4, color="tab:gray", label="trial")
    ax.plot([float(t.metrics[o1.name]) for t in front], [float(t.metrics[o2.name]) for t in front],
            "o-", color="tab:orange", label="Pareto front")
    ax.set_xlabel(f"{o1.name} ({o1.mode})")
    ax.set_ylabel(f"{o2.name} ({o2.mode})")
    ax.set_title(title or f"{result.name or 'search'}: Pareto front")
    ax.legend(loc="best", fontsize="small")
    ax.grid(alpha=0.3)
    return _save(fig, path)


def _save(fig: Any, path: str | os.PathLike) -> str:
    import matplotlib.pyplot as plt
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return str(path)
