"""Latency-aware search: a MobileNet as accurate as NASWOT can tell, under a bound measured here.

1. A latency table for the MobileNet space on *this* machine (CPU, batch 1, CIFAR-size
   inputs): every layer configuration of some sampled networks timed once, plus a fixed
   overhead measured on whole networks. It is a file beside the experiment's store
   (``runs/latency_aware.latency.json`` next to ``runs/latency_aware.sqlite``): a second run
   on the same machine reuses it, and the search extends it when it meets a layer it has not
   timed. Every trial records the latency with its context (device name, torch, threads).
2. The bound: the latency of MobileNetV2 at width 0.75 (a network of the space) on this
   machine, as the table gives it (so the bound and the candidates are judged alike; the
   direct measurement is printed beside it).
3. NSGA-II over the space with two objectives, NASWOT up (a zero-cost accuracy proxy: no
   training) and predicted latency down, and the bound as a constraint. The accuracy/latency
   front is drawn to ``runs/latency_aware_front.png``.
4. The best network under the bound is measured directly, to compare with its prediction.

Every latency here is the fastest of the timed calls (``statistic="min"``), the steadiest
figure on a machine that other programs share; on a dedicated device, ``--statistic median``
(the default of ``symnas.evaluators.latency``) is the usual one. ``--budget`` (or
``SYMNAS_EXAMPLE_BUDGET``) sets the number of candidates.

    python examples/latency_aware.py --budget 300
    symnas show runs/latency_aware.sqlite          # the recorded trials
"""
from __future__ import annotations

import argparse
import os
import time

import torch

import symnas as sn
from symnas.evaluators import latency, zero_cost
from symnas.spaces import mobilenet_space as M

SHAPE = (3, 32, 32)


def plot_front(result: sn.SearchResult, front: list, bound: float, path: str, title: str) -> str:
    """Every candidate (latency, NASWOT), those over the bound marked, the front, the bound."""
    import matplotlib
    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt
    done = result.done
    over = [t.metrics.get("feasible", True) is False for t in done]
    fig, ax = plt.subplots(figsize=(6.4, 4.4), dpi=100)
    for flag, color, marker, label in ((False, "tab:blue", "o", "under the bound"),
                                       (True, "tab:gray", "x", "over the bound")):
        pts = [(t.metrics["latency_ms"], t.metrics["nwot"]) for t, o in zip(done, over) if o == flag]
        if pts:
            xs, ys = zip(*pts)
            ax.scatter(xs, ys, s=14, alpha=0.6, color=color, marker=marker, label=label)
    if front:
        ax.plot([t.metrics["latency_ms"] for t in front], [t.metrics["nwot"] for t in front],
                "o-", color="tab:orange", label="front")
    ax.axvline(bound, color="tab:red", linestyle="--", label=f"bound {bound:.2f} ms")
    ax.set_xlabel("predicted latency (ms, this machine)")
    ax.set_ylabel("NASWOT score (higher: more accurate, predicted)")
    ax.set_title(title, fontsize="medium")
    ax.legend(loc="best", fontsize="small")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path


def main() -> None:
    tiny = int(os.environ.get("SYMNAS_EXAMPLE_BUDGET", "0"))
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--budget", type=int, default=tiny or 150, help="candidates to score")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1, help="CPU threads for every latency")
    ap.add_argument("--statistic", default="min", choices=["min", "median"])
    args = ap.parse_args()

    store = "runs/latency_aware.sqlite"               # a fresh experiment each run
    for suffix in ("", "-wal", "-shm"):
        if os.path.exists(store + suffix):
            os.remove(store + suffix)
    space = sn.spaces.mobilenet(num_classes=10, width_multipliers=(0.35, 0.5, 0.75))
    t0 = time.perf_counter()
    table = latency.LookupTable(space, SHAPE, path="runs/latency_aware.latency.json",
                                threads=args.threads, statistic=args.statistic,
                                calibration=2 if tiny else 5, repeats=10 if tiny else 30)
    table.build(n=1 if tiny else 24, seed=args.seed)
    print(f"latency table: {len(table)} layer configurations on {table.info['device_name']} "
          f"({table.threads} thread(s)), overhead {table.overhead_ms:.3f} ms, "
          f"{time.perf_counter() - t0:.1f}s -> {table.path}")

    reference = space.arch(M.to_genome(space, {**M.MOBILENET_V2, "width": 0.75}))
    bound = table.predict(reference)
    measured = latency.measure(reference.build(), SHAPE, threads=args.threads,
                               statistic=args.statistic)["latency_ms"]
    print(f"bound: MobileNetV2 0.75, {bound:.2f} ms by the table ({measured:.2f} ms measured)")

    evaluate = latency.with_latency(zero_cost.evaluator("nwot", batch_size=32, seed=args.seed),
                                    table)
    nsga2 = sn.algorithms.get("nsga2", population_size=min(30, max(2, args.budget // 5)),
                              seed=args.seed)
    result = sn.search(space, nsga2, evaluate, budget=args.budget, seed=args.seed,
                       name="latency_aware", storage=store,
                       objective=["nwot", sn.minimize("latency_ms")],
                       constraints=[f"latency_ms <= {bound:.4f}"])
    feasible = [t for t in result.done if t.metrics.get("feasible", True)]
    print(f"{len(result)} candidates, {len(feasible)} under {bound:.2f} ms; the table now has "
          f"{len(table)} layer configurations")

    front = sorted(result.pareto_front(), key=lambda t: t.metrics["latency_ms"])
    print(f"{'latency (ms)':>12} {'nwot':>9}  decisions")
    for t in front:
        d = t.decisions
        print(f"{t.metrics['latency_ms']:12.2f} {t.metrics['nwot']:9.2f}  width {d['width']}, "
              f"blocks {[d[f'stage{i}_blocks'] for i in range(1, 8)]}")
    plot = plot_front(result, front, bound, "runs/latency_aware_front.png",
                      f"MobileNet on {table.info['device_name']}, {table.threads} thread(s)")
    print(f"front plotted to {plot}")

    best = result.best
    if best is None:
        print("no candidate met the bound; raise --budget")
        return
    torch.manual_seed(0)
    measured = latency.measure(best.build(), SHAPE, threads=args.threads, statistic=args.statistic)
    print(f"best under the bound: nwot {best.metrics['nwot']:.2f}, predicted "
          f"{best.metrics['latency_ms']:.2f} ms, measured {measured['latency_ms']:.2f} ms "
          f"(median {measured['latency_median_ms']:.2f}), "
          f"{best.metrics['params_M']:.2f} M params")


if __name__ == "__main__":
    main()
