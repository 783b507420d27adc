"""Nested and partitioned searches on the NAS-Bench-201 table, recorded in one store.

1. Nested: an outer search over the *search settings* (which proxy metric the
   inner search optimizes -- the 12-epoch or the 200-epoch validation accuracy --
   and the evolution's population and tournament sizes) whose every trial runs
   an inner architecture search; the outer reward is the test accuracy of the
   architecture the inner search picked. Inner searches record themselves as
   child experiments of the outer trial they run in.
2. Partitioned: the three edges out of the input node are searched by
   regularized evolution; for each of its proposals random search picks the
   other three edges (PyGlove's ``where=`` names the first part).

Both are resumable: kill the script and run it again with ``--resume``.

    python examples/nested_search.py            # SYMNAS_EXAMPLE_BUDGET=2 shrinks it
    symnas show runs/nested_search.sqlite       # then inspect the store
"""
from __future__ import annotations

import argparse
import os

import symnas as sn
from symnas import flows
from symnas.evaluators import nb201

SCALE = int(os.environ.get("SYMNAS_EXAMPLE_BUDGET", "0")) or None


def budget(n: int) -> int:
    return min(n, SCALE) if SCALE else n


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", default="runs", help="folder of the store (default runs/)")
    ap.add_argument("--resume", action="store_true", help="continue a killed run")
    args = ap.parse_args()
    path = os.path.join(args.runs, "nested_search.sqlite")
    if not args.resume:
        for suffix in ("", "-wal", "-shm"):
            if os.path.exists(path + suffix):
                os.remove(path + suffix)

    space = sn.spaces.nasbench201()
    table = nb201.table()

    # ---- 1. nested: search settings outside, architectures inside --------------------
    settings = sn.Space(dict(proxy=sn.oneof(["valid12_cifar10", "valid200_cifar10"], name="proxy"),
                             population=sn.oneof([5, 10, 20], name="population"),
                             tournament=sn.oneof([2, 5], name="tournament")))

    def inner_search(hp: sn.Arch) -> dict:
        s = hp.value
        algo = sn.algorithms.RegularizedEvolution(
            population_size=s["population"], tournament_size=min(s["tournament"], s["population"]))
        inner = sn.search(space, algo, nb201.evaluator(metric=s["proxy"]), budget=budget(40),
                          seed=0, progress=False)     # recorded as a child of this trial
        return {"test200_cifar10": table.query(inner.best.arch)["test200_cifar10"],
                "proxy_best": inner.best.reward}

    outer = sn.search(settings, sn.algorithms.Random(), inner_search, budget=budget(6), seed=0,
                      objective="test200_cifar10", storage=path, name="settings",
                      resume=args.resume)
    print(f"nested: {len(outer)} search settings tried; best {outer.best.decisions} "
          f"-> test accuracy {outer.best.metrics['test200_cifar10']:.2f}")

    # ---- 2. partitioned: evolution over the input edges, random search over the rest --
    first = {"edge_1_0", "edge_2_0", "edge_3_0"}
    part = flows.partitioned_search(
        space, nb201.evaluator(), where=lambda h: h.name in first,
        outer=sn.algorithms.RegularizedEvolution(population_size=5, tournament_size=2),
        outer_budget=budget(12), inner=sn.algorithms.Random(), inner_budget=budget(5),
        seed=0, storage=path, name="partitioned", resume=args.resume)
    best = part.best
    print(f"partitioned: {len(part.outer)} x {budget(5)} architectures; best "
          f"{table.arch_str(best.arch)} valid {best.metrics['valid200_cifar10']:.2f}, "
          f"test {table.query(best.arch)['test200_cifar10']:.2f}")

    store = sn.store.Store.open(path)
    print(f"store {path}: {len(store.experiments())} experiments "
          f"({sum(e.trials for e in store.experiments())} trials)")


if __name__ == "__main__":
    main()
