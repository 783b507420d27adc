"""How fast is the NAS-Bench-201 table, and the main job (`symnas demo`) on it?

Measures (one process, ``torch.set_num_threads(2)``): loading the packaged table,
``index``/``query``/evaluator call per architecture in microseconds, vectorized
genome -> index per genome, and the full demo (every registered black-box
algorithm, 20 seeds x 100 queries through ``sn.search``). Target: queries in
microseconds, the demo in under 30 s on 2 cores. Writes ``results/nb201_query.json``.

Usage::

    python benchmarks/nb201_query.py
"""
from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
import timeit
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent))
from _report import write_results

import symnas as sn
from symnas import demo
from symnas.evaluators import nb201


def per_call_us(fn, items, repeat: int = 5) -> float:
    """Best-of-``repeat`` mean microseconds of ``fn(x)`` over ``items``."""
    def loop():
        for x in items:
            fn(x)
    return min(timeit.repeat(loop, number=1, repeat=repeat)) / len(items) * 1e6


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=20)
    ap.add_argument("--budget", type=int, default=100)
    args = ap.parse_args(argv)
    torch.set_num_threads(2)

    nb201._load.cache_clear()
    t0 = time.perf_counter()
    table = nb201.NB201Table()
    load_ms = 1e3 * (time.perf_counter() - t0)

    rng = random.Random(0)
    indices = [rng.randrange(nb201.NUM_ARCHS) for _ in range(2000)]
    genomes = [table.genome_of(i) for i in indices]
    strings = [table.arch_str(i) for i in indices]
    space = sn.spaces.nasbench201()
    archs = [space.arch(g) for g in genomes]
    dnas = [a.dna for a in archs[:500]]
    arr = np.array(genomes)
    rows = {
        "index(genome)": per_call_us(table.index, genomes),
        "query(index)": per_call_us(table.query, indices),
        "query(genome)": per_call_us(table.query, genomes),
        "query(arch string)": per_call_us(table.query, strings),
        "query(DNA)": per_call_us(table.query, dnas),
        "evaluator(Arch)": per_call_us(table, archs),
        "indices(array), per genome": min(timeit.repeat(lambda: table.indices(arr), number=1,
                                                        repeat=5)) / len(arr) * 1e6,
    }

    ns = demo.argparse.Namespace(seeds=args.seeds, budget=args.budget,
                                 algorithms=",".join(demo.ALGORITHMS),
                                 out=tempfile.mkdtemp(prefix="symnas_demo_"), no_plot=True)
    t0 = time.perf_counter()
    demo.run(ns)
    demo_s = time.perf_counter() - t0
    import json
    summary = json.loads((Path(ns.out) / "summary.json").read_text())
    algos = {r["algorithm"]: {"mean": round(r["mean"], 3), "std": round(r["std"], 3),
                              "regret": round(r["regret"], 3),
                              "ms_per_trial": round(r["ms_per_trial"], 4)}
             for r in summary["algorithms"]}

    data = {"table_load_ms": round(load_ms, 1),
            "us_per_call": {k: round(v, 2) for k, v in rows.items()},
            "demo": {"seeds": args.seeds, "budget": args.budget, "seconds": round(demo_s, 2),
                     "target_seconds": 30, "skipped": summary["skipped"], "algorithms": algos}}
    lines = ["NAS-Bench-201 table speed and the main job (`benchmarks/nb201_query.py`, 2 threads).",
             "", f"Table load: {load_ms:.0f} ms.", "",
             "| lookup | us per call |", "|---|---:|"]
    lines += [f"| {k} | {v:.2f} |" for k, v in rows.items()]
    lines += ["", f"`symnas demo` ({args.seeds} seeds x {args.budget} queries, "
              f"{len(algos)} algorithms, in process): {demo_s:.1f} s (target < 30 s).", "",
              "| algorithm | test200 (mean +- std) | regret | ms/trial |", "|---|---:|---:|---:|"]
    lines += [f"| {a} | {r['mean']:.2f} +- {r['std']:.2f} | {r['regret']:.2f} | "
              f"{r['ms_per_trial']:.3f} |" for a, r in algos.items()]
    out = write_results("nb201_query", data, "\n".join(lines))
    print("\n".join(lines))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
