"""Zero-shot NAS: regularized evolution over NAS-Bench-201 rewarded by a zero-cost proxy.

No network is trained. Each of the 1,000 candidates is built (C=16, N=5) and
scored by NASWOT on one seeded batch of 64 real CIFAR-10 images; evolution
keeps the best-scoring cells. The NAS-Bench-201 table then tells how good the
chosen cell really is (test accuracy after 200 epochs; NASWOT reports
92.96 +- 0.81 when picking the best of 1,000 random cells).
``benchmarks/zero_shot_nb201.py`` repeats this search over several seeds.

    python examples/zero_shot_search.py                  # ~1,000 candidates, a while on a CPU
    python examples/zero_shot_search.py --proxy synflow --budget 200
    SYMNAS_EXAMPLE_BUDGET=3 python examples/zero_shot_search.py   # CI: 3 candidates, C=8, N=1
"""
from __future__ import annotations

import argparse
import os

import numpy as np
import torch

import symnas as sn
from symnas.evaluators import nb201, zero_cost


def main() -> None:
    tiny = int(os.environ.get("SYMNAS_EXAMPLE_BUDGET", "0"))
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--proxy", default="nwot", choices=zero_cost.names())
    ap.add_argument("--budget", type=int, default=tiny or 1000)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))

    # The proxy ranks cells; a small network (CI) ranks the same cells, only less faithfully.
    C, N = (8, 1) if tiny else (16, 5)
    space = sn.spaces.nasbench201(C=C, N=N)
    evaluate = zero_cost.evaluator(args.proxy, batch_size=64, seed=args.seed)
    algo = sn.algorithms.RegularizedEvolution(population_size=min(50, max(2, args.budget // 4)),
                                              tournament_size=min(10, max(2, args.budget // 8)))
    result = sn.search(space, algo, evaluate, budget=args.budget, seed=args.seed,
                       objective=args.proxy, name="zero_shot_search")

    best = result.best
    table = nb201.table()
    chosen = table.query(best.arch)
    accs = table.columns["test200_cifar10"]
    print(f"{len(result.trials)} candidates scored by {args.proxy} (C={C}, N={N}), "
          f"{sum(t.seconds for t in result.trials):.0f}s of proxy time")
    print(f"chosen cell {chosen['index']}: {chosen['arch']}")
    print(f"  {args.proxy} = {best.metrics[args.proxy]:.4g}, "
          f"params = {best.metrics['params_M']:.3f}M")
    print(f"  NAS-Bench-201 test accuracy (200 epochs): {chosen['test200_cifar10']:.2f}% "
          f"(better than {100 * np.mean(accs < chosen['test200_cifar10']):.1f}% of all cells; "
          f"optimum {accs.max():.2f}%, mean {accs.mean():.2f}%)")


if __name__ == "__main__":
    main()
