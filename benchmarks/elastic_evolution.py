"""Evolution on a trained supernet vs evolution on zero-cost proxies, same budget.

Scale (see ``_elastic.py``): the five-stage MobileNet CIFAR space (49,152
architectures), the real CIFAR-10 subset. One sandwich-rule supernet is trained
once (``--strategy``, default the sandwich rule; cached, shared with
``elastic_ranking.py``); then, for each of ``SEEDS``
search seeds, regularized evolution spends the same budget of ``B``
evaluations

* on the supernet (``net.evaluator(task)``: inherited weights, BN recalibrated,
  valid accuracy), and
* on each zero-cost proxy (``nwot``, ``synflow``: one seeded batch, no training),

all under the same constraint ``params_M <= LIMIT``. Each chosen architecture
is then fine-tuned stand-alone for a short budget, starting from the
supernet's inherited weights (the same recipe for every pick, so only the
choice differs), and scored on the valid split. Reported: mean and standard
deviation over seeds, each proxy's paired difference to the supernet's pick
with a paired t-test p-value, and CPU-seconds.

Run: ``SYMNAS_DATA=... python benchmarks/elastic_evolution.py [--seeds 5 --budget 60]``
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch
from scipy import stats

sys.path.insert(0, str(Path(__file__).parent))
import _elastic as E
from _report import write_results

import symnas as sn
from symnas.evaluators import zero_cost

PROXIES = ("nwot", "synflow")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--budget", type=int, default=60)
    ap.add_argument("--steps", type=int, default=400, help="supernet training steps")
    ap.add_argument("--strategy", default="sandwich", help="spos, sandwich or sandwich_labels")
    ap.add_argument("--limit", type=float, default=0.25, help="params_M <= limit")
    ap.add_argument("--finetune", type=int, default=30, help="fine-tuning steps (batch 64)")
    args = ap.parse_args()
    torch.set_num_threads(1)
    sp = E.space()
    task = E.task()
    net, train_stats = E.trained(args.strategy, args.steps, 0)
    evaluator = net.evaluator(task, calibration_batches=4)
    tune = task.with_(epochs=1, max_batches=args.finetune, lr=0.01)
    constraint = [f"params_M <= {args.limit}"]
    picks: dict[str, list] = {"supernet": [], **{p: [] for p in PROXIES}}
    acc: dict[str, list[float]] = {k: [] for k in picks}
    cpu: dict[str, float] = {k: 0.0 for k in picks}
    for seed in range(args.seeds):
        searches = {"supernet": evaluator,
                    **{p: zero_cost.evaluator(p, batch_size=64, seed=seed) for p in PROXIES}}
        for name, ev in searches.items():
            c0 = time.process_time()
            result = sn.search(sp, "evolution", ev, budget=args.budget, seed=seed,
                               constraints=constraint, progress=False)
            cpu[name] += time.process_time() - c0
            genome = result.best.genome
            model = net.subnet(genome, task, batches=4)
            tune.train(model, seed=seed)
            a = task.accuracy(model)
            picks[name].append({"genome": list(genome), "params_M": net.count_params(genome) / 1e6,
                                "search_score": result.best.metrics.get(ev.metric), "finetuned_acc": a})
            acc[name].append(a)
            print(f"seed {seed} {name:9s} params {picks[name][-1]['params_M']:.3f}M "
                  f"fine-tuned {a:.1f}%")
    comparison = {}
    for p in PROXIES:
        diff = [a - b for a, b in zip(acc["supernet"], acc[p])]
        t = stats.ttest_rel(acc["supernet"], acc[p]) if len(diff) > 1 and any(diff) else None
        comparison[p] = {"mean_diff": statistics.mean(diff),
                         "p": float(t.pvalue) if t is not None else 1.0}
    data = {"scale": {"space": "mobilenet, 5 stages, CIFAR size", "architectures": sp.size,
                      "seeds": args.seeds, "budget": args.budget, "limit_params_M": args.limit,
                      "supernet_steps": train_stats.get("train_steps"), "strategy": args.strategy,
                      "finetune_steps": args.finetune},
            "picks": picks, "finetuned_acc": acc, "search_cpu_seconds": cpu,
            "supernet_train_cpu_seconds": train_stats.get("cpu_seconds"), "vs_proxy": comparison}
    name = "elastic_evolution" if args.strategy == "sandwich" else f"elastic_evolution_{args.strategy}"
    write_results(name, data, render(data))


def render(d: dict) -> str:
    sc, acc, cpu = d["scale"], d["finetuned_acc"], d["search_cpu_seconds"]

    def ms(v: list[float]) -> str:
        return f"{statistics.mean(v):.2f} ({statistics.stdev(v) if len(v) > 1 else 0.0:.2f})"

    rows = [f"| evolution on the supernet | {ms(acc['supernet'])} | - | "
            f"{cpu['supernet'] / sc['seeds']:.0f} (+ {d['supernet_train_cpu_seconds'] or 0:.0f} once) |"]
    for p in PROXIES:
        c = d["vs_proxy"][p]
        rows.append(f"| evolution on `{p}` | {ms(acc[p])} | {c['mean_diff']:+.2f} (p={c['p']:.3g}) | "
                    f"{cpu[p] / sc['seeds']:.0f} |")
    intro = (
        f"{sc['space']} ({sc['architectures']:,} architectures), real CIFAR-10 subset. Regularized "
        f"evolution, {sc['budget']} evaluations per search, constraint `params_M <= "
        f"{sc['limit_params_M']}`, {sc['seeds']} seeds; one {sc.get('strategy', 'sandwich')} supernet "
        f"({sc['supernet_steps']} "
        f"steps) shared by all seeds. Each chosen architecture fine-tuned {sc['finetune_steps']} steps "
        "(batch 64, lr 0.01) from the supernet's inherited weights, then scored on the valid split.")
    head = ("| search | valid acc after fine-tune, mean (std) | supernet pick minus this, paired (p) "
            "| CPU-s per search |")
    title = "Evolution on the supernet vs on zero-cost proxies (`elastic_evolution.py"
    title += f" --strategy {sc['strategy']}`)" if sc.get("strategy", "sandwich") != "sandwich" else "`)"
    return f"""### {title}

{intro}

{head}
|---|---:|---:|---:|
{chr(10).join(rows)}
"""


if __name__ == "__main__":
    main()
