"""``symnas demo``: every black-box algorithm on the NAS-Bench-201 table, in seconds.

The NAS-Bench-201 protocol: each query returns ``valid200_cifar10``; after
each query the architecture with the best validation accuracy so far is
selected and its ``test200_cifar10`` reported. Every registered black-box
algorithm among :data:`ALGORITHMS` runs ``--seeds`` seeds of ``--budget``
queries through ``sn.search`` (the real trial loop, table as evaluator).
Prints mean +- std test accuracy and regret to the optimum (94.37), writes
``summary.json`` and, with matplotlib, ``best_so_far.png`` to ``--out``.

Example::

    symnas demo                                  # 20 seeds x 100 queries
    python -m symnas demo --seeds 5 --budget 50 --out /tmp/demo --no-plot
"""
from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import time
from typing import Any

ALGORITHMS: tuple[str, ...] = ("random", "evolution", "de", "reinforce", "ppo")
OBJECTIVE = "valid200_cifar10"
REPORTED = "test200_cifar10"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--seeds", type=int, default=20, help="seeds per algorithm (default 20)")
    parser.add_argument("--budget", type=int, default=100, help="queries per search (default 100)")
    parser.add_argument("--algorithms", default=",".join(ALGORITHMS),
                        help="comma-separated black-box algorithm names "
                             "(default: %(default)s; an unknown name is an error)")
    parser.add_argument("--out", default=os.path.join("runs", "demo"),
                        help="folder for summary.json and best_so_far.png (default runs/demo/)")
    parser.add_argument("--no-plot", action="store_true", help="do not write the PNG")


def test_curve(result: Any, budget: int) -> list[float]:
    """Test accuracy of the best-by-validation architecture after each query (length ``budget``).

    A search that ends early (space exhausted) keeps its last value.
    """
    curve: list[float] = []
    best_valid, test = -math.inf, math.nan
    for trial in result.trials:
        if trial.ok and trial.metrics[OBJECTIVE] > best_valid:
            best_valid, test = trial.metrics[OBJECTIVE], trial.metrics[REPORTED]
        curve.append(test)
    curve += [test] * (budget - len(curve))
    return curve[:budget]


def run_algorithm(name: str, seeds: int, budget: int) -> dict[str, Any]:
    """Runs ``seeds`` searches of ``budget`` queries of one algorithm on the table."""
    import symnas as sn
    from symnas import algorithms
    from symnas.evaluators import nb201

    space = sn.spaces.nasbench201()
    evaluator = nb201.evaluator(OBJECTIVE)
    curves, trials = [], 0
    t0 = time.perf_counter()
    for seed in range(seeds):
        result = sn.search(space, algorithms.get(name), evaluator, budget=budget, seed=seed,
                           objective=OBJECTIVE, name=f"demo-{name}-{seed}")
        trials += len(result.trials)
        curves.append(test_curve(result, budget))
    seconds = time.perf_counter() - t0
    final = [c[-1] for c in curves]
    mean = statistics.fmean(final)
    return {"algorithm": name, "seeds": seeds, "budget": budget, "final_test": final,
            "mean": mean, "std": statistics.stdev(final) if len(final) > 1 else 0.0,
            "regret": nb201.OPTIMUM_TEST200_CIFAR10 - mean,
            "ms_per_trial": 1e3 * seconds / max(1, trials), "seconds": seconds,
            "mean_curve": [statistics.fmean(c[i] for c in curves) for i in range(budget)]}


def plot(rows: list[dict[str, Any]], path: str) -> str | None:
    """Best-so-far test accuracy (mean over seeds) against queries; None without matplotlib."""
    try:
        from matplotlib.figure import Figure
    except ImportError:
        return None
    from symnas.evaluators import nb201
    fig = Figure(figsize=(6.4, 4.2), dpi=110)
    ax = fig.add_subplot()
    for row in rows:
        xs = range(1, len(row["mean_curve"]) + 1)
        ax.plot(xs, row["mean_curve"], label=f"{row['algorithm']} ({row['mean']:.2f})")
    ax.axhline(nb201.OPTIMUM_TEST200_CIFAR10, color="k", ls=":", lw=1, label="optimum 94.37")
    lo = min(min(r["mean_curve"][min(9, len(r["mean_curve"]) - 1):]) for r in rows)
    ax.set_ylim(max(lo - 0.5, 80.0), nb201.OPTIMUM_TEST200_CIFAR10 + 0.3)
    ax.set_xlabel("queries")
    ax.set_ylabel("test accuracy of best-by-valid (%)")
    ax.set_title(f"NAS-Bench-201 CIFAR-10, mean of {rows[0]['seeds']} seeds")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    return path


def black_box_names() -> list[str]:
    """The registered black-box algorithms (canonical names), which the demo can run."""
    from symnas import algorithms
    return algorithms.names(kind=algorithms.BLACK_BOX)


def check_algorithm(name: str) -> str:
    """``name`` if it is a registered black-box algorithm (any spelling, or an alias).

    Otherwise ``SystemExit`` naming the valid names and the closest one.
    """
    import difflib

    from symnas import algorithms
    from symnas.registry import normalize
    valid = black_box_names()
    known = algorithms.names(kind=algorithms.BLACK_BOX, aliases=True)
    key = normalize(name)
    if key in known:
        return name
    if key in algorithms.names(aliases=True):
        raise SystemExit(f"symnas demo: {name!r} shares weights (it trains a supernet); the demo "
                         f"runs black-box algorithms: {', '.join(valid)}.")
    close = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    raise SystemExit(f"symnas demo: unknown algorithm {name!r}.{hint} "
                     f"Black-box algorithms: {', '.join(valid)}.")


def run(args: argparse.Namespace) -> int:
    from symnas.evaluators import nb201

    if args.seeds < 1 or args.budget < 1:
        raise SystemExit("symnas demo: --seeds and --budget must be at least 1.")
    wanted = [a.strip() for a in args.algorithms.split(",") if a.strip()]
    if not wanted:
        raise SystemExit("symnas demo: --algorithms names no algorithm; "
                         f"black-box algorithms: {', '.join(black_box_names())}.")
    names = [check_algorithm(a) for a in wanted]
    print(f"NAS-Bench-201 (CIFAR-10): {args.seeds} seeds x {args.budget} queries per algorithm; "
          f"search on {OBJECTIVE}, report {REPORTED} of the best-by-validation cell "
          f"(optimum {nb201.OPTIMUM_TEST200_CIFAR10:.2f}).")
    print(f"{'algorithm':<12} {'test acc (mean +- std)':>24} {'regret':>8} {'ms/trial':>9}")
    rows = []
    t0 = time.perf_counter()
    for name in names:
        row = run_algorithm(name, args.seeds, args.budget)
        rows.append(row)
        print(f"{name:<12} {row['mean']:>15.2f} +- {row['std']:<5.2f} {row['regret']:>8.2f} "
              f"{row['ms_per_trial']:>9.3f}", flush=True)
    total = time.perf_counter() - t0
    print(f"{sum(r['seeds'] * r['budget'] for r in rows):,} queries in {total:.1f} s")
    os.makedirs(args.out, exist_ok=True)
    summary = os.path.join(args.out, "summary.json")
    with open(summary, "w") as f:
        json.dump({"objective": OBJECTIVE, "reported": REPORTED,
                   "optimum": nb201.OPTIMUM_TEST200_CIFAR10, "seconds": total,
                   "algorithms": rows}, f, indent=1)
    png = None if args.no_plot else plot(rows, os.path.join(args.out, "best_so_far.png"))
    print(f"wrote {summary}" + (f" and {png}" if png else
                                ("" if args.no_plot else " (install matplotlib for the plot)")))
    return 0
