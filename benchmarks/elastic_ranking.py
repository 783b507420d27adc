"""Ranking quality of elastic supernets at CPU scale: inherited-weight vs stand-alone accuracy.

Scale (see ``_elastic.py``): a five-stage MobileNet space at CIFAR size with
width, expansion, kernel and block count all searchable (49,152
architectures), the real CIFAR-10 subset. Supernets derived from the Space are
trained for the same number of steps (batch 64, SGD lr 0.05 cosine): uniform
sampling (``spos``) and the sandwich rule with in-place distillation (largest +
smallest + 2 random per step, module choices drawn in all four: ``sandwich``;
the old rule that pinned the module choices of the largest and smallest to one
candidate: ``sandwich_pinned``; every subnet on the labels: ``sandwich_labels``).
Then ``N`` seeded architectures are

* trained stand-alone from scratch for ``EPOCHS`` epoch(s) (the same recipe for
  each) and scored on the valid split: the reference ranking (seed 0, the
  issue's protocol); with ``--truth-seeds 0,1`` also with more seeds, and the
  mean over the seeds as a second, less noisy reference;
* scored by each supernet with inherited weights (BN recalibrated on 8 batches);
* scored by the zero-cost proxies ``nwot``, ``synflow`` and ``params`` (one seeded
  batch of 64 images).

Reported: Kendall's tau (and its p-value) of each score with each reference,
the reference's own self-consistency (tau between two stand-alone seeds; with
``--check-epochs 1`` also between 1-epoch and ``EPOCHS``-epoch training), and
the CPU-seconds of each part. Target: the sandwich supernet's tau >= 0.5 and
above every proxy's (on the issue's reference).

Run: ``SYMNAS_DATA=... python benchmarks/elastic_ranking.py [--steps 800 --n 20 --epochs 2
--strategies spos,spos@3200,sandwich,sandwich_pinned --truth-seeds 0,1 --check-epochs 1]``
(``NAME@STEPS``: that supernet trained ``STEPS`` steps; ``spos@3200`` has the compute of the
sandwich's 800 steps, which train 4 subnets a step)
(``--report-only`` rewrites the README section from the saved JSON). Trained
supernets and stand-alone results are cached (see ``_elastic.py``); from an
empty cache the defaults cost about 50 CPU-minutes (sandwich training ~830 CPU-s
per supernet, stand-alone ~23 CPU-s per architecture and seed).
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
STRATEGIES = ("spos", "sandwich", "sandwich_pinned")


def _kendall(score: list[float], ref: list[float]) -> dict:
    tau, pval = stats.kendalltau(score, ref)
    return {"tau": float(tau), "p": float(pval)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=800)
    ap.add_argument("--n", type=int, default=20)
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--strategies", default=",".join(STRATEGIES),
                    help="comma-separated; NAME@STEPS trains that one STEPS steps (e.g. spos@3200: "
                         "the sandwich's compute, 4 subnets a step)")
    ap.add_argument("--truth-seeds", default=None,
                    help="stand-alone seeds of the extra reference (mean over them), e.g. 0,1")
    ap.add_argument("--check-epochs", type=int, default=None,
                    help="also train the N stand-alone this many epochs: the reference's consistency")
    args = ap.parse_args()
    strategies = tuple(args.strategies.split(","))
    truth_seeds = [int(x) for x in args.truth_seeds.split(",")] if args.truth_seeds else [args.seed]
    if args.seed not in truth_seeds:
        truth_seeds.insert(0, args.seed)
    torch.set_num_threads(1)
    sp = E.space()
    task = E.task()
    genomes = [a.genome for a in sp.samples(args.n, seed=1000 + args.seed)]

    cpu0 = time.process_time()
    runs = {s: [E.standalone(sp, g, args.epochs, seed=s) for g in genomes] for s in truth_seeds}
    truth = runs[args.seed]
    ref = [r["valid_acc"] for r in truth]
    by_seed = {s: [r["valid_acc"] for r in rs] for s, rs in runs.items()}
    mean_ref = [sum(v) / len(v) for v in zip(*by_seed.values())]
    cost: dict[str, float] = {
        "standalone": sum(r["cpu_seconds"] for r in truth),
        "standalone_all_seeds": sum(r["cpu_seconds"] for rs in runs.values() for r in rs)}
    print(f"stand-alone: {args.n} architectures x {len(truth_seeds)} seed(s), "
          f"{cost['standalone_all_seeds']:.0f} CPU-s")
    consistency: dict[str, dict] = {}
    others = [s for s in truth_seeds if s != args.seed]
    for s in others:
        consistency[f"seed {args.seed} vs seed {s} ({args.epochs} epochs)"] = _kendall(by_seed[s], ref)
    if args.check_epochs is not None:
        short = [E.standalone(sp, g, args.check_epochs, seed=args.seed)["valid_acc"] for g in genomes]
        consistency[f"{args.check_epochs} vs {args.epochs} epochs (seed {args.seed})"] = _kendall(short, ref)
    for name, k in consistency.items():
        print(f"reference self-consistency, {name}: tau {k['tau']:+.3f} (p={k['p']:.3g})")

    scores: dict[str, list[float]] = {}
    train_stats = {}
    for strategy in strategies:
        name, _, steps = strategy.partition("@")        # 'spos@3200': its own number of steps
        net, st = E.trained(name, int(steps) if steps else args.steps, args.seed)
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

    taus = {name: _kendall(s, ref) for name, s in scores.items()}
    taus_mean = {name: _kendall(s, mean_ref) for name, s in scores.items()} if others else {}
    for name in scores:
        line = f"{name:16s} tau {taus[name]['tau']:+.3f} (p={taus[name]['p']:.3g})"
        if others:
            line += f"   vs mean of seeds {taus_mean[name]['tau']:+.3f} (p={taus_mean[name]['p']:.3g})"
        print(line)
    best_proxy = max(PROXIES, key=lambda p: taus[p]["tau"])
    data = {"scale": {"space": "mobilenet, 5 stages, CIFAR size", "architectures": sp.size,
                      "decisions": len(sp.decisions), "steps": args.steps, "n": args.n,
                      "standalone_epochs": args.epochs, "seed": args.seed, "truth_seeds": truth_seeds,
                      "train_images": len(task.splits()["train"][1]),
                      "valid_images": len(task.splits()["valid"][1])},
            "standalone_acc": ref, "standalone_acc_by_seed": {str(s): v for s, v in by_seed.items()},
            "scores": scores, "kendall": taus, "kendall_mean_of_seeds": taus_mean,
            "reference_consistency": consistency, "cpu_seconds": cost,
            "train": train_stats, "total_cpu_seconds": time.process_time() - cpu0,
            "strategies": strategies}
    if "sandwich" in taus:
        data["targets"] = {"sandwich_tau_ge_0.5": taus["sandwich"]["tau"] >= 0.5,
                           "sandwich_above_every_proxy": taus["sandwich"]["tau"] > taus[best_proxy]["tau"]}
    write_results("elastic_ranking", data, render(data))


#: What the cached supernets showed (diagnosis runs beside this script, same 20 architectures).
NOTES = """\
Why the supernets rank poorly (checked on the cached 800-step supernets): the scores are the
architectures asked for -- `net.evaluator` and `net.subnet(arch, task)` agree to the image, and
recalibrating the plain subnet's BatchNorm by hand gives the same accuracy; 2, 8 or 32 calibration
batches change tau by noise only (pinned sandwich: +0.28 / +0.23 / +0.20; train-mode BN +0.33),
no calibration (shared statistics) collapses the scores (mean 21%). One architecture trained alone
through the supernet's slices reaches 42.0% in 2 epochs (43.3% stand-alone). The bug was the
sandwich rule's: it pinned each module choice (the per-stage depthwise kernel, separate weights per
candidate) to 5x5 in the largest and 3x3 in the smallest, so each kernel was trained at one end of
the width range only: that supernet (`sandwich_pinned`) scores its largest 51.5% with 5x5 kernels
but 40.8% with 3x3 ones, its smallest 44.3% (3x3) but 34.0% (5x5), and random architectures, which
mix kernels, 32.5-40.5% -- below the smallest -- while stand-alone a stage's kernel moves accuracy by
under 2 points. Now the largest and smallest draw their module choices too
(`Sandwich(module_choices="random")`, the default). What still limits tau: the reference itself
(two stand-alone seeds agree at tau +0.50), and at 800 steps the supernets are far from trained --
the sandwich scores widths 0.25 / 0.5 / 0.75 at 35.8 / 34.0 / 37.5% on average (stand-alone
32.7 / 36.5 / 38.4%: width is most of the true ranking, and what `params` and `nwot` capture); SPOS
at the sandwich's compute (`spos@3200`) is more accurate (mean 40.3% vs 35.9%) but ranks no better.
"""


def render(d: dict) -> str:
    sc, k, c = d["scale"], d["kendall"], d["cpu_seconds"]
    km = d.get("kendall_mean_of_seeds") or {}
    seeds = sc.get("truth_seeds", [sc["seed"]])

    def cells(name: str) -> str:
        out = f"| {name} | {k[name]['tau']:+.3f} | {k[name]['p']:.3g} |"
        if km:
            out += f" {km[name]['tau']:+.3f} | {km[name]['p']:.3g} |"
        cost = f"{c[name]:.0f}" if name in c else f"{c['proxies']:.0f} (all 3 proxies)"
        return out + f" {cost} |"

    rows = "\n".join(cells(name) for name in (*d.get("strategies", STRATEGIES), *PROXIES) if name in k)
    head = "| score | Kendall tau (seed-0 reference) | p-value |"
    rule = "|---|---:|---:|"
    if km:
        head += f" Kendall tau (mean of seeds {', '.join(map(str, seeds))}) | p-value |"
        rule += "---:|---:|"
    head += " CPU-s |"
    rule += "---:|"
    acc = d["standalone_acc"]
    intro = (
        f"{sc['space']}: {sc['decisions']} decisions (width, expansion, kernel, blocks per stage), "
        f"{sc['architectures']:,} architectures, real CIFAR-10 subset ({sc['train_images']:,} train / "
        f"{sc['valid_images']:,} valid). Supernets trained {sc['steps']} steps each (batch 64; NAME@STEPS: "
        f"STEPS steps); "
        f"{sc['n']} seeded architectures trained stand-alone {sc['standalone_epochs']} epoch(s) each "
        f"(valid accuracy {min(acc):.1f}-{max(acc):.1f}%). Kendall tau of each score with stand-alone "
        f"accuracy; CPU-seconds of each column (supernet: training + scoring the {sc['n']}; "
        f"stand-alone reference: {c['standalone']:.0f} CPU-s per seed).")
    cons = d.get("reference_consistency") or {}
    consistency = ("Self-consistency of the reference (Kendall tau): " + "; ".join(
        f"{name}: {v['tau']:+.3f} (p={v['p']:.3g})" for name, v in cons.items()) + ".") if cons else ""
    t = d.get("targets")
    verdict = (f"Targets (seed-0 reference): sandwich tau >= 0.5: "
               f"{'met' if t['sandwich_tau_ge_0.5'] else 'NOT met'}; sandwich above every proxy: "
               f"{'met' if t['sandwich_above_every_proxy'] else 'NOT met'}.") if t else ""
    return f"""### Elastic supernet ranking quality (`elastic_ranking.py`)

{intro}

{head}
{rule}
{rows}

{consistency}

{verdict}

{NOTES}"""


if __name__ == "__main__":
    if sys.argv[1:] == ["--report-only"]:
        import json
        saved = json.loads((Path(__file__).parent / "results" / "elastic_ranking.json").read_text())
        write_results("elastic_ranking", saved, render(saved))
    else:
        main()
