"""Time per trial spent outside the evaluator: symnas's loop vs a raw ``pg.sample`` loop.

Space: 6 decisions x 5 candidates (the NAS-Bench-201 shape); the evaluator
returns a constant, so everything measured is loop + algorithm + record.
Both loops run in this one process, interleaved, and the figure that counts
is their ratio.

    python benchmarks/trial_overhead.py [--trials 3000] [--pg-trials 200]
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import pyglove as pg

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _report import write_results

import symnas as sn

OPS = ["none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3"]


def program():
    return {f"edge{i}": sn.oneof(OPS) for i in range(6)}


def symnas_ms(algorithm, trials: int, seed: int) -> float:
    space = sn.Space(program())          # includes DNASpec compilation, as a user pays it
    t0 = time.perf_counter()
    sn.search(space, algorithm, lambda arch: 1.0, budget=trials, seed=seed, progress=False)
    return (time.perf_counter() - t0) * 1000 / trials


def pyglove_ms(generator, trials: int) -> float:
    space = pg.Dict(program())
    t0 = time.perf_counter()
    for _, feedback in pg.sample(space, generator, num_examples=trials):
        feedback(1.0)
    return (time.perf_counter() - t0) * 1000 / trials


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--trials", type=int, default=3000)
    ap.add_argument("--pg-trials", type=int, default=200)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    rows = {}
    cases = {
        "random": (lambda s: sn.algorithms.Random(seed=s), lambda s: pg.geno.Random(seed=s)),
        "evolution": (lambda s: sn.algorithms.RegularizedEvolution(seed=s),
                      lambda s: pg.evolution.regularized_evolution(seed=s)),
    }
    for name, (ours, theirs) in cases.items():
        sym, ref = [], []
        for r in range(args.repeats):       # interleaved, so both see the same machine load
            sym.append(symnas_ms(ours(r), args.trials, r))
            ref.append(pyglove_ms(theirs(r), args.pg_trials))
        s, p = statistics.median(sym), statistics.median(ref)
        rows[name] = {"symnas_ms_per_trial": round(s, 4), "pyglove_ms_per_trial": round(p, 3),
                      "ratio": round(s / p, 5), "speedup": round(p / s, 1),
                      "target_ms": 1.0, "meets_target": s <= 1.0}
        print(f"{name:>10}: symnas {s:.4f} ms/trial, pg.sample {p:.2f} ms/trial, ratio {s / p:.4f}")
    table = ["| algorithm | symnas ms/trial | raw pg.sample ms/trial | ratio (symnas/pg) | target |",
             "|---|---|---|---|---|"]
    for name, r in rows.items():
        met = "met" if r["meets_target"] else "MISSED"
        table.append(f"| {name} | {r['symnas_ms_per_trial']:.4f} | {r['pyglove_ms_per_trial']:.2f} | "
                     f"{r['ratio']:.4f} ({r['speedup']:.0f}x faster) | <= 1 ms {met} |")
    header = (f"### Trial-loop overhead (`trial_overhead.py`)\n\nEvaluator returns a constant; "
              f"6 decisions x 5 candidates; {args.trials} symnas trials vs {args.pg_trials} "
              f"`pg.sample` trials per repeat, median of {args.repeats} interleaved repeats.\n\n")
    write_results("trial_overhead", {"space": "6 decisions x 5 candidates", "trials": args.trials,
                                     "pg_trials": args.pg_trials, "results": rows},
                  header + "\n".join(table))


if __name__ == "__main__":
    main()
