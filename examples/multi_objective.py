"""Accuracy against size on NAS-Bench-201: a Pareto front with NSGA-II, and a size constraint.

1. NSGA-II (``"nsga2"``) maximizes validation accuracy and minimizes
   parameters at once; ``result.pareto_front()`` holds the trade-off.
2. Any algorithm takes constraints: differential evolution finds the most
   accurate cell under 0.5 M parameters (a cell over the bound is recorded but
   never rewarded).

Every query is a lookup in the NAS-Bench-201 table (CIFAR-10, 200 epochs), so
the whole script runs in seconds. ``--budget`` (or ``SYMNAS_EXAMPLE_BUDGET``)
sets the number of queries.

    python examples/multi_objective.py --budget 200
"""
from __future__ import annotations

import argparse
import os

import symnas as sn
from symnas.evaluators import nb201


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--budget", type=int, default=150, help="queries per search")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    budget = int(os.environ.get("SYMNAS_EXAMPLE_BUDGET", args.budget))

    space = sn.spaces.nasbench201()
    table = nb201.evaluator()   # metrics: valid200_cifar10, test200_cifar10, params, flops...

    # 1. Two objectives: accuracy up, parameters down.
    nsga2 = sn.algorithms.get("nsga2", population_size=20, seed=args.seed)
    result = sn.search(space, nsga2, table, budget=budget, seed=args.seed,
                       objective=["valid200_cifar10", sn.minimize("params")])
    front = sorted(result.pareto_front(), key=lambda t: t.metrics["params"])
    print(f"NSGA-II, {len(result)} queries: {len(front)} cells on the Pareto front")
    print(f"{'params (M)':>10} {'valid':>8} {'test':>8}  cell")
    for t in front:
        m = t.metrics
        print(f"{m['params']:10.3f} {m['valid200_cifar10']:8.2f} {m['test200_cifar10']:8.2f}  "
              f"{m['arch']}")

    # 2. One objective under a constraint, with any algorithm.
    result = sn.search(space, sn.algorithms.DifferentialEvolution(), table, budget=budget,
                       seed=args.seed, objective="valid200_cifar10", constraints=["params <= 0.5"])
    best = result.best.metrics
    feasible = sum(t.metrics["params"] <= 0.5 for t in result)
    print(f"\nDE under params <= 0.5 M ({feasible}/{len(result)} queries feasible): "
          f"valid {best['valid200_cifar10']:.2f}, test {best['test200_cifar10']:.2f}, "
          f"{best['params']:.3f} M params  {best['arch']}")


if __name__ == "__main__":
    main()
