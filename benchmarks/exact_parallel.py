"""What exact reproducibility costs a parallel search: ``exact=True`` vs arrival order.

The evaluator sleeps a random 0..2x ``--sleep`` seconds per trial (training
times differ between architectures, so results arrive out of order). Both
modes run the same seeded search on the same warm ``process:N`` pool, one
after the other, ``--repeats`` times interleaved; the figure that counts is
the ratio of their throughputs. Also checked: two exact runs propose the same
trials, two arrival-order runs (usually) do not.

    python benchmarks/exact_parallel.py [--trials 48] [--sleep 0.1] [--workers 2]
"""
from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _report import write_results

import symnas as sn


def space() -> sn.Space:
    return sn.Space({f"e{i}": sn.oneof(list(range(5)), name=f"e{i}") for i in range(6)})


def jittery(arch) -> float:
    """Sleeps 0..2 x SYMNAS_BENCH_SLEEP seconds (CPU left free), then scores the genome."""
    time.sleep(random.random() * 2 * float(os.environ.get("SYMNAS_BENCH_SLEEP", "0.1")))
    return float(sum(arch.genome))


def run(executor, trials: int, exact: bool) -> tuple[float, list]:
    t0 = time.perf_counter()
    result = sn.search(space(), sn.algorithms.RegularizedEvolution(population_size=8),
                       jittery, budget=trials, seed=0, executor=executor, exact=exact,
                       progress=False)
    return trials / (time.perf_counter() - t0), [t.genome for t in result.trials]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--trials", type=int, default=48)
    ap.add_argument("--sleep", type=float, default=0.1)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    os.environ["SYMNAS_BENCH_SLEEP"] = str(args.sleep)
    pool = sn.executors.ProcessPool(args.workers)
    run(pool, args.workers * 2, False)               # warm the workers up
    speed: dict[str, list[float]] = {"arrival order": [], "exact": []}
    proposals: dict[str, list] = {"arrival order": [], "exact": []}
    for _ in range(args.repeats):
        for mode, exact in (("arrival order", False), ("exact", True)):
            s, genomes = run(pool, args.trials, exact)
            speed[mode].append(s)
            proposals[mode].append(genomes)
    pool.close()
    rows = {}
    for mode in speed:
        same = all(p == proposals[mode][0] for p in proposals[mode])
        rows[mode] = {"trials_per_s": round(statistics.median(speed[mode]), 2),
                      "runs": [round(s, 2) for s in speed[mode]],
                      "identical_proposals_across_runs": same}
    ratio = rows["exact"]["trials_per_s"] / rows["arrival order"]["trials_per_s"]
    for mode, r in rows.items():
        print(f"{mode:>14}: {r['trials_per_s']:.2f} trials/s, identical runs: "
              f"{r['identical_proposals_across_runs']}")
    print(f"exact / arrival order throughput: {ratio:.3f}")
    table = ["| mode | trials/s (median) | same proposals in every run | throughput ratio |",
             "|---|---|---|---|"]
    for mode, r in rows.items():
        table.append(f"| {mode} | {r['trials_per_s']:.2f} | "
                     f"{'yes' if r['identical_proposals_across_runs'] else 'no'} | "
                     f"{r['trials_per_s'] / rows['arrival order']['trials_per_s']:.3f} |")
    header = (f"### Exact parallel search (`exact_parallel.py`)\n\n`process:{args.workers}`, "
              f"{args.trials} trials per run, evaluator sleeps U(0, {2 * args.sleep:g}) s, "
              f"median of {args.repeats} interleaved runs per mode, same warm pool. "
              "`exact=True` tells results in trial order and asks right after each tell.\n\n")
    write_results("exact_parallel", {"workers": args.workers, "trials": args.trials,
                                     "sleep": args.sleep, "results": rows,
                                     "exact_over_arrival": round(ratio, 3),
                                     "seed_note": "evaluator sleeps are unseeded (random)"},
                  header + "\n".join(table))


if __name__ == "__main__":
    main()
