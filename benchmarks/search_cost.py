"""Per-trial cost of each search algorithm next to Optuna's, interleaved in one process.

Every search runs 300 trials on NAS-Bench-201 through its real loop (symnas:
``sn.search``; Optuna: ``study.ask``/``tell``) with the table as evaluator;
the table lookups are timed and subtracted, so what is left is the
algorithm plus the loop. One and two objectives (valid200 accuracy; and
params). Repeats are interleaved (symnas and Optuna see the same machine
load) and the median is reported with its ratio to the peer.

    python benchmarks/search_cost.py [--repeats 5] [--trials 300]
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _mo_nb201  # noqa: E402
import nb201_search  # noqa: E402
from _search_stats import one_thread  # noqa: E402

SINGLE = ("random", "evolution", "de", "local_search", "local_bo", "reinforce", "ppo")
MULTI = ("random", "evolution", "de", "nsga2")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--trials", type=int, default=300)
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args()
    one_thread()
    single: dict[str, list[float]] = {n: [] for n in SINGLE + ("tpe",)}
    multi: dict[str, list[float]] = {n: [] for n in MULTI + ("optuna_nsga2",)}
    for name in single:                                   # warm imports and caches (untimed)
        nb201_search._job((name, "c10_v200", 999, 20, (20,)))
    for r in range(args.repeats):
        for name in single:
            single[name].append(nb201_search._job((name, "c10_v200", r, args.trials, (args.trials,)))[4])
        for name in multi:
            multi[name].append(_mo_nb201._job((name, "mo_params", r, args.trials, (args.trials,)))[3])
    rows = {"single": {n: round(statistics.median(v), 4) for n, v in single.items()},
            "multi": {n: round(statistics.median(v), 4) for n, v in multi.items()}}
    lines = ["### Per-trial cost next to Optuna (`search_cost.py`)", "",
             f"NAS-Bench-201, {args.trials} trials per search, table lookups subtracted, median of "
             f"{args.repeats} interleaved repeats on one thread of a shared machine. `vs peer`: the "
             "peer's time over ours.", "",
             "| objectives | algorithm | ms/trial | vs peer |", "|---|---|---|---|"]
    for kind, peer in (("single", "tpe"), ("multi", "optuna_nsga2")):
        for name, ms in rows[kind].items():
            ratio = "" if name == peer else f"{rows[kind][peer] / ms:.1f}x cheaper"
            lines.append(f"| {'one' if kind == 'single' else 'two'} | {name} | {ms:.3f} | {ratio} |")
    md = "\n".join(lines)
    print(md)
    if not args.no_write:
        from _report import write_results
        write_results("search_cost", {"trials": args.trials, "repeats": args.repeats, **rows}, md)


if __name__ == "__main__":
    main()
