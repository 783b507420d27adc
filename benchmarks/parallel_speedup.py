"""Speedup of 2 parallel workers over the inline loop, on an evaluator that sleeps.

The evaluator sleeps ``--sleep`` seconds per trial (a stand-in for training
that leaves the CPU free), so the ideal speedup of N workers is N. Measured in
one process, one after the other: the inline loop, the local process pool
cold (its 2 workers start inside the timed search: interpreter + torch import)
and warm (workers already up, as for every later search of a program), and
Ray with 2 workers when Ray is installed (instance started before timing).

    python benchmarks/parallel_speedup.py [--trials 24] [--sleep 0.5]
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _report import write_results

import symnas as sn


def space() -> sn.Space:
    return sn.Space({f"e{i}": sn.oneof(list(range(5)), name=f"e{i}") for i in range(6)})


def sleepy(arch) -> float:
    """Sleeps like a training run would (without using the CPU), then scores the genome."""
    time.sleep(float(os.environ.get("SYMNAS_BENCH_SLEEP", "0.5")))   # workers inherit it
    return float(sum(arch.genome))


def timed(executor, trials: int) -> float:
    t0 = time.perf_counter()
    result = sn.search(space(), sn.algorithms.RegularizedEvolution(population_size=8),
                       sleepy, budget=trials, seed=0, executor=executor, progress=False)
    assert len(result.done) == trials
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--trials", type=int, default=24)
    ap.add_argument("--sleep", type=float, default=0.5)
    args = ap.parse_args()
    os.environ["SYMNAS_BENCH_SLEEP"] = str(args.sleep)

    rows: dict[str, dict] = {}
    inline = timed("inline", args.trials)
    rows["inline"] = {"seconds": inline}
    pool = sn.executors.ProcessPool(2)
    rows["process:2 cold"] = {"seconds": timed(pool, args.trials)}
    rows["process:2 warm"] = {"seconds": timed(pool, args.trials)}
    pool.close()
    try:
        import ray
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
        ex = sn.executors.Ray(num_workers=2)
        rows["ray 2 workers (first search)"] = {"seconds": timed(ex, args.trials)}
        rows["ray 2 workers (warm)"] = {"seconds": timed(ex, args.trials)}
        ray.shutdown()
    except ImportError:
        print("Ray is not installed: its rows are left out (pip install 'symnas[ray]').")
    for name, r in rows.items():
        r["seconds"] = round(r["seconds"], 3)
        r["speedup_vs_inline"] = round(inline / r["seconds"], 2)
        r["seconds_per_trial"] = round(r["seconds"] / args.trials, 4)
        print(f"{name:>30}: {r['seconds']:7.2f} s  speedup {r['speedup_vs_inline']:.2f}x")

    table = ["### Parallel speedup (`parallel_speedup.py`)\n",
             f"{args.trials} trials of an evaluator that sleeps {args.sleep} s (ideal speedup of "
             "2 workers: 2.0x); regularized evolution keeps 2 trials in flight and is told each "
             "result as it arrives. Cold: the 2 worker processes start inside the timed search.\n",
             "| executor | seconds | s/trial | speedup vs inline |", "|---|---|---|---|"]
    for name, r in rows.items():
        table.append(f"| {name} | {r['seconds']:.2f} | {r['seconds_per_trial']:.3f} | "
                     f"{r['speedup_vs_inline']:.2f}x |")
    write_results("parallel_speedup", {"trials": args.trials, "sleep_s": args.sleep,
                                       "workers": 2, "results": rows}, "\n".join(table))


if __name__ == "__main__":
    main()
