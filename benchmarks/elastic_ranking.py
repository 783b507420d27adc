"""Ranking quality of elastic supernets at CPU scale: inherited-weight vs stand-alone accuracy.

Scale (see ``_elastic.py``): a five-stage MobileNet space at CIFAR size with
width, expansion, kernel and block count all searchable (49,152
architectures), the real CIFAR-10 subset. Two supernets derived from the
Space are trained for the same number of steps (batch 64, SGD lr 0.05 cosine):
uniform sampling (SPOS) and the sandwich rule with in-place distillation
(largest + smallest + 2 random per step; also without distillation, every
subnet on the labels: ``sandwich_labels``). Then ``N`` seeded architectures are

* trained stand-alone from scratch for ``EPOCHS`` epoch(s) (the same recipe for
  each) and scored on the valid split: the reference ranking;
* scored by each supernet with inherited weights (BN recalibrated on 8 batches);
* scored by the zero-cost proxies ``nwot``, ``synflow`` and ``params`` (one seeded
  batch of 64 images).

Reported: Kendall's tau (and its p-value) of each score with the stand-alone
accuracy, and the CPU-seconds of each part. Target: the sandwich supernet's
tau >= 0.5 and above every proxy's.

Run: ``SYMNAS_DATA=... python benchmarks/elastic_ranking.py [--steps 400 --n 20 --epochs 1]``
(``--report-only`` rewrites the README section from the saved JSON)
(about 15 CPU-minutes at the defaults; trained supernets and stand-alone results
are cached, see ``_elastic.py``).
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch
from scipy import stats

sys.path.insert(0, str(Path(__file__).parent))
import _elastic as E
from _report import write_results

from symnas.evaluators import zero_cost

PROXIES = ("nwot", "synflow", "params")
STRATEGIES = ("spos", "sandwich", "sandwich_labels")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=400)
    ap.add_argument("--n", type=int, default=20)
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--strategies", default=",".join(STRATEGIES))
    args = ap.parse_args()
    strategies = tuple(args.strategies.split(","))
    torch.set_num_threads(1)
    sp = E.space()
    task = E.task()
    genomes = [a.genome for a in sp.samples(args.n, seed=1000 + args.seed)]

    cpu0 = time.process_time()
    truth = [E.standalone(sp, g, args.epochs, seed=args.seed) for g in genomes]
    print(f"stand-alone: {args.n} architectures, {sum(r['cpu_seconds'] for r in truth):.0f} CPU-s")
    ref = [r["valid_acc"] for r in truth]

    scores: dict[str, list[float]] = {}
    cost: dict[str, float] = {"standalone": sum(r["cpu_seconds"] for r in truth)}
    train_stats = {}
    for strategy in strategies:
        net, st = E.trained(strategy, args.steps, args.seed)
        train_stats[strategy] = st
        evaluator = net.evaluator(task, calibration_batches=8)
        c0 = time.process_time()
        scores[strategy] = [evaluator(sp.arch(g))["valid_acc"] for g in genomes]
        cost[strategy] = st["cpu_seconds"] + time.process_time() - c0
        cost[f"{strategy}_eval"] = time.process_time() - c0
    zc = zero_cost.evaluator(list(PROXIES), batch_size=64, seed=args.seed)
    c0 = time.process_time()
    proxy_scores = [zc(sp.arch(g)) for g in genomes]
    cost["proxies"] = time.process_time() - c0
    for p in PROXIES:
        scores[p] = [float(s[p]) for s in proxy_scores]

    taus = {}
    for name, s in scores.items():
        tau, pval = stats.kendalltau(s, ref)
        taus[name] = {"tau": float(tau), "p": float(pval)}
        print(f"{name:9s} tau {tau:+.3f} (p={pval:.3g})")
    best_proxy = max(PROXIES, key=lambda p: taus[p]["tau"])
    data = {"scale": {"space": "mobilenet, 5 stages, CIFAR size", "architectures": sp.size,
                      "decisions": len(sp.decisions), "steps": args.steps, "n": args.n,
                      "standalone_epochs": args.epochs, "seed": args.seed,
                      "train_images": len(task.splits()["train"][1]),
                      "valid_images": len(task.splits()["valid"][1])},
            "standalone_acc": ref, "scores": scores, "kendall": taus, "cpu_seconds": cost,
            "train": train_stats, "total_cpu_seconds": time.process_time() - cpu0,
            "targets": {"sandwich_tau_ge_0.5": taus["sandwich"]["tau"] >= 0.5,
                        "sandwich_above_every_proxy": taus["sandwich"]["tau"] > taus[best_proxy]["tau"]}}
    data["strategies"] = strategies
    write_results("elastic_ranking", data, render(data))


def render(d: dict) -> str:
    sc, k, c = d["scale"], d["kendall"], d["cpu_seconds"]
    rows = "\n".join(
        f"| {name} | {k[name]['tau']:+.3f} | {k[name]['p']:.3g} | "
        f"{c[name]:.0f} |" if name in c else
        f"| {name} | {k[name]['tau']:+.3f} | {k[name]['p']:.3g} | {c['proxies']:.0f} (all 3 proxies) |"
        for name in (*d.get("strategies", STRATEGIES), *PROXIES) if name in k)
    t = d["targets"]
    acc = d["standalone_acc"]
    intro = (
        f"{sc['space']}: {sc['decisions']} decisions (width, expansion, kernel, blocks per stage), "
        f"{sc['architectures']:,} architectures, real CIFAR-10 subset ({sc['train_images']:,} train / "
        f"{sc['valid_images']:,} valid). Supernets trained {sc['steps']} steps each (batch 64); "
        f"{sc['n']} seeded architectures trained stand-alone {sc['standalone_epochs']} epoch(s) each "
        f"(valid accuracy {min(acc):.1f}-{max(acc):.1f}%). Kendall tau of each score with stand-alone "
        f"accuracy; CPU-seconds of each column (supernet: training + scoring the {sc['n']}; "
        f"stand-alone reference: {c['standalone']:.0f} CPU-s).")
    verdict = (f"Targets: sandwich tau >= 0.5: {'met' if t['sandwich_tau_ge_0.5'] else 'NOT met'}; "
               f"sandwich above every proxy: {'met' if t['sandwich_above_every_proxy'] else 'NOT met'}.")
    return f"""### Elastic supernet ranking quality (`elastic_ranking.py`)

{intro}

| score | Kendall tau | p-value | CPU-s |
|---|---:|---:|---:|
{rows}

{verdict}
"""


if __name__ == "__main__":
    if sys.argv[1:] == ["--report-only"]:
        import json
        saved = json.loads((Path(__file__).parent / "results" / "elastic_ranking.json").read_text())
        write_results("elastic_ranking", saved, render(saved))
    else:
        main()
