"""Is sn.spaces.nasbench201() the benchmark's network? Checks every one of the 15,625 cells.

For each cell: build the module through the Space (``space.build(genome)``, on
the ``meta`` device: no memory, no compute), count its parameters and compare
with the table's ``params_M_cifar10``; check the arch string -> genome -> index
round trip. On a seeded sample, compare ``count_flops`` (FlopCounterMode) with
``flops_M_cifar10``. Writes ``results/nb201_exactness.json``.

Usage::

    python benchmarks/nb201_exactness.py                  # all 15,625 (~8 min on one core)
    python benchmarks/nb201_exactness.py --limit 500 --flops-sample 20
"""
from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from _report import write_results

import symnas as sn
from symnas.evaluators import nb201
from symnas.spaces.nasbench201_space import count_flops


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--limit", type=int, default=nb201.NUM_ARCHS, help="check the first N cells")
    ap.add_argument("--flops-sample", type=int, default=200, help="cells whose FLOPs are checked")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    table = nb201.table()
    space = sn.spaces.nasbench201()
    params_col = table.columns["params_M_cifar10"]
    flops_col = table.columns["flops_M_cifar10"]
    n = min(args.limit, nb201.NUM_ARCHS)
    flops_idx = set(random.Random(args.seed).sample(range(n), min(args.flops_sample, n)))

    mismatches, flops_mismatches, roundtrip_errors = [], [], []
    t0 = time.perf_counter()
    build_s = flops_s = 0.0
    for i in range(n):
        genome = table.genome_of(i)
        arch_str = nb201.genome_to_arch_str(genome)
        if table.index(arch_str) != i or nb201.arch_str_to_genome(arch_str) != genome:
            roundtrip_errors.append(i)
        tb = time.perf_counter()
        with torch.device("meta"):
            model = space.build(genome)
        params = sum(p.numel() for p in model.parameters())
        build_s += time.perf_counter() - tb
        expected = round(float(params_col[i]) * 1e6)
        if params != expected:
            mismatches.append({"index": i, "arch": arch_str, "params": params, "table": expected})
        if i in flops_idx:
            tf = time.perf_counter()
            flops = count_flops(model)
            flops_s += time.perf_counter() - tf
            if round(flops * 1e6) != round(float(flops_col[i]) * 1e6):
                flops_mismatches.append({"index": i, "arch": arch_str, "flops_M": flops,
                                         "table": float(flops_col[i])})
        if (i + 1) % 1000 == 0:
            print(f"{i + 1}/{n} checked, {len(mismatches)} param mismatches, "
                  f"{time.perf_counter() - t0:.0f}s", flush=True)
    seconds = time.perf_counter() - t0
    data = {
        "checked": n, "mismatches": len(mismatches), "mismatch_examples": mismatches[:20],
        "roundtrip_errors": len(roundtrip_errors),
        "flops_checked": len(flops_idx), "flops_mismatches": len(flops_mismatches),
        "flops_mismatch_examples": flops_mismatches[:20],
        "flops_convention": "MACs of conv/linear + 2 per affine-BN element (eval) + 1 per "
                            "global-pool input element; via FlopCounterMode custom_mapping",
        "seconds": round(seconds, 1), "ms_per_build_meta": round(1e3 * build_s / n, 2),
        "ms_per_flop_count": round(1e3 * flops_s / max(1, len(flops_idx)), 1),
    }
    table_md = (
        "NAS-Bench-201 exactness (`benchmarks/nb201_exactness.py`): `sn.spaces.nasbench201()` "
        "built per cell on the meta device vs the table.\n\n"
        "| check | cells | mismatches |\n|---|---:|---:|\n"
        f"| params == params_M_cifar10 | {n:,} | {len(mismatches)} |\n"
        f"| arch string <-> genome <-> index | {n:,} | {len(roundtrip_errors)} |\n"
        f"| FLOPs (FlopCounterMode, table convention) == flops_M_cifar10 | {len(flops_idx)} "
        f"| {len(flops_mismatches)} |\n\n"
        f"{data['ms_per_build_meta']} ms per Space.build on meta; {seconds:.0f} s in all.")
    out = write_results("nb201_exactness", data, table_md)
    print(table_md)
    print(f"wrote {out}")
    return 0 if not (mismatches or flops_mismatches or roundtrip_errors) else 1


if __name__ == "__main__":
    sys.exit(main())
