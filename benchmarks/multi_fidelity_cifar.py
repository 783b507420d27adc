"""Early stopping with real training at CPU scale: the same wall-clock budget, with and without.

A small CNN space (width x stem kernel x depth, 24 architectures) trained by an
``sn.Task`` on the CIFAR-10 subset (``SYMNAS_DATA``): a full evaluation is
``EPOCHS`` epochs of ``BATCHES`` batches of 64 images (cosine schedule over
those epochs), scored on the 1,017 held-out validation images. Each search
gets the same wall-clock budget (``--seconds``) and no trial budget:

- ``full``: regularized evolution, every trial trained to the end (no
  intermediate evaluations; the reference);
- ``median``: the same algorithm with ``pruner="median"`` (each trial reports
  its validation accuracy after every epoch and stops when below the median
  of the ended trials at that epoch);
- ``asha``: ASHA with regularized evolution proposing new configurations,
  fidelities 1, 3 and ``EPOCHS`` epochs (a promoted trial continues its
  checkpoint).

Reported per search: the best validation accuracy reached (the search's
objective, at full fidelity), the architectures trained to the end, all
trials, and the CPU-seconds spent (process time, all threads); as ratios
against ``full`` run in the same process, interleaved seed by seed. The
early-stopping searches validate after every epoch (the values pruners
judge and the curves recorded), which ``full`` does not.

    python benchmarks/multi_fidelity_cifar.py                  # 2 seeds x 3 searches x 300 s
    python benchmarks/multi_fidelity_cifar.py --seeds 1 --seconds 30 --no-write
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).parent))

import symnas as sn

EPOCHS = 6
BATCHES = 24
MODES = ("full", "median", "asha")


@sn.searchable
class CNN(nn.Module):
    """A strided stem and 1-3 conv blocks; width, the stem's kernel and depth are the decisions."""

    def __init__(self, width: int = 16, kernel: int = 3, depth: int = 2, num_classes: int = 10):
        super().__init__()
        layers: list[nn.Module] = [nn.Conv2d(3, width, kernel, stride=2, padding=kernel // 2),
                                   nn.BatchNorm2d(width), nn.ReLU()]
        for _ in range(depth):
            layers += [nn.Conv2d(width, width, 3, padding=1), nn.BatchNorm2d(width), nn.ReLU(),
                       nn.MaxPool2d(2)]
        self.features = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.head = nn.Linear(width, num_classes)

    def forward(self, x):
        return self.head(self.features(x))


def space() -> sn.Space:
    return sn.Space(CNN(width=sn.oneof([8, 16, 24, 32]), kernel=sn.oneof([3, 5]),
                        depth=sn.oneof([1, 2, 3])))


def run(mode: str, seed: int, seconds: float) -> dict:
    task = sn.Task.cifar10(epochs=EPOCHS, max_batches=BATCHES, batch_size=64)
    kw: dict = {"budget": 10_000, "time_budget": seconds, "seed": seed, "progress": False}
    if mode == "full":
        algo = sn.algorithms.RegularizedEvolution(population_size=6, tournament_size=3)
    elif mode == "median":
        algo = sn.algorithms.RegularizedEvolution(population_size=6, tournament_size=3)
        kw.update(fidelity=EPOCHS, pruner="median")
    else:
        algo = sn.algorithms.ASHA(sampler=sn.algorithms.RegularizedEvolution(population_size=6,
                                                                             tournament_size=3))
        kw.update(fidelity=[1, 3, EPOCHS])
    wall0, cpu0 = time.perf_counter(), time.process_time()
    r = sn.search(space(), algo, task, **kw)
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    full = [t for t in r.trials if t.status == "done" and t.fidelity in (None, EPOCHS)]
    best = max(full, key=lambda t: t.metrics["valid_acc"]) if full else None
    return {"mode": mode, "seed": seed, "wall_s": round(wall, 2), "cpu_s": round(cpu, 2),
            "trials": len(r.trials), "full_trainings": len(full),
            "pruned": sum(t.status == "pruned" for t in r.trials),
            "archs": len({t.genome for t in r.trials}),
            "best_valid_acc": round(best.metrics["valid_acc"], 3) if best else None,
            "best": best.decisions if best else None}


def table_md(rows: list[dict], seconds: float, seeds: list[int]) -> str:
    by = {m: [r for r in rows if r["mode"] == m] for m in MODES}
    ref = by["full"]

    def mean(m, k):
        return float(np.mean([r[k] for r in by[m]]))

    lines = [f"### Early stopping with real training (`multi_fidelity_cifar.py`, seeds {seeds})",
             "",
             f"CNN space of 24 architectures on the CIFAR-10 subset; a full evaluation is {EPOCHS} "
             f"epochs x {BATCHES} batches of 64 (cosine over {EPOCHS} epochs), scored on 1,017 "
             f"validation images. Each search: {seconds:g} s of wall clock, inline, "
             f"{torch.get_num_threads()} threads. Means over the seeds; ratios against `full` "
             "(no early stopping) run interleaved in the same process.",
             "",
             "| search | best valid acc (%) | ratio | archs trained to the end | ratio | trials "
             "| pruned | CPU-s | CPU-s ratio |",
             "|---|---|---|---|---|---|---|---|---|"]
    names = {"full": "RE, no early stopping (reference)", "median": "RE + pruner='median'",
             "asha": "ASHA, sampler=evolution, fidelity [1, 3, 6]"}
    for m in MODES:
        acc, n, cpu = mean(m, "best_valid_acc"), mean(m, "full_trainings"), mean(m, "cpu_s")
        lines.append(f"| {names[m]} | {acc:.2f} | {acc / mean('full', 'best_valid_acc'):.3f} | "
                     f"{n:.1f} | {n / mean('full', 'full_trainings'):.2f} | {mean(m, 'trials'):.1f} | "
                     f"{mean(m, 'pruned'):.1f} | {cpu:.0f} | {cpu / mean('full', 'cpu_s'):.2f} |")
    per_seed = "; ".join(f"seed {r['seed']} {r['mode']} {r['best_valid_acc']}" for r in rows)
    lines += ["", f"Per seed: {per_seed}.", "",
              "The reference averages "
              f"{np.mean([r['cpu_s'] / max(r['full_trainings'], 1) for r in ref]):.1f} "
              "CPU-s per full training."]
    return "\n".join(lines)


def main(argv=None) -> list[dict]:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--seeds", type=int, default=2)
    p.add_argument("--seconds", type=float, default=300.0, help="wall clock per search")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--no-write", action="store_true")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    warm = sn.Task.cifar10(epochs=1, max_batches=1)     # data and torch's lazy imports: untimed
    warm(space().arch((0, 0, 0)), seed=0, epochs=1, report=lambda v, s: None)
    seeds = list(range(args.seeds))
    rows = []
    for seed in seeds:
        for mode in MODES:
            row = run(mode, seed, args.seconds)
            print(row, flush=True)
            rows.append(row)
    md = table_md(rows, args.seconds, seeds)
    print(md)
    if not args.no_write:
        from _report import write_results
        write_results("multi_fidelity_cifar", {"rows": rows, "protocol": {
            "epochs": EPOCHS, "batches": BATCHES, "batch_size": 64, "seconds": args.seconds,
            "seeds": seeds, "threads": args.threads}}, md)
    return rows


if __name__ == "__main__":
    main()
