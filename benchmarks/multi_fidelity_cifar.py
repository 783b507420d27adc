"""Early stopping with real training at CPU scale: the same wall-clock budget, with and without.

A CNN space (width, kernels, depth, activation: 504 architectures) trained by an
``sn.Task`` on the CIFAR-10 subset (``SYMNAS_DATA``): a full evaluation is
``EPOCHS`` epochs of ``BATCHES`` batches of 64 images (cosine schedule over
those epochs), scored on ``VALID`` held-out validation images. Each search
gets the same wall-clock budget (``--seconds``) and no trial budget:

- ``full``: regularized evolution, every trial trained to the end (no
  intermediate evaluations; the reference);
- ``median``: the same algorithm with ``pruner="median"`` (each trial reports
  its validation accuracy after every epoch and stops when below the median
  of the ended trials at that epoch);
- ``asha``: ASHA with regularized evolution proposing new configurations,
  fidelities ``--levels`` epochs (default ``LEVELS``; a promoted trial
  continues its checkpoint).

Each seed runs the three searches one after another, each mode first in
turn, in one process. Reported per search: the best validation accuracy
reached (the search's objective, at full fidelity), the CPU-seconds spent
(process time, all threads), the architectures trained to the end, all
trials; as ratios against ``full``. On a shared machine the same wall clock
buys different CPU time, so each search is also scored at equal CPU-seconds
(the best architecture it trained to the end within the least CPU-seconds
any search of that seed got) and by the CPU-seconds until it first reached
the reference's final best accuracy of the same seed. Each selected
architecture is then trained again from scratch with its trial's seed,
untimed: the validation accuracy must come out the same (a promoted trial's
resumed training equals one uninterrupted run), and its accuracy on the
1,017 test images is reported, since the best of many trials on 256
validation images is an optimistic figure. The early-stopping searches
validate after every epoch (the values pruners judge and the curves
recorded), which ``full`` does not. Checkpoints go to a temporary folder, so
a late promotion never retrains from scratch.

    python benchmarks/multi_fidelity_cifar.py                  # 2 seeds x 3 searches x 180 s
    python benchmarks/multi_fidelity_cifar.py --seeds 1 --seconds 30 --no-write
"""
from __future__ import annotations

import argparse
import math
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).parent))

import symnas as sn

EPOCHS = 8
BATCHES = 16
VALID = 256       # validation images (held out of the 5,085 training images)
# ASHA's rungs; [1, 2, 4, 8] reached 0.936 of `full` (results/multi_fidelity_cifar_levels_1_2_4_8.json)
LEVELS = [2, 4, EPOCHS]
MODES = ("full", "median", "asha")


@sn.searchable
class CNN(nn.Module):
    """A strided stem and 1-4 conv blocks; width, kernels, depth and activation are the decisions."""

    def __init__(self, width: int = 16, kernel: int = 3, block_kernel: int = 3, depth: int = 2,
                 act: type = nn.ReLU, num_classes: int = 10):
        super().__init__()
        layers: list[nn.Module] = [nn.Conv2d(3, width, kernel, stride=2, padding=kernel // 2),
                                   nn.BatchNorm2d(width), act()]
        for i in range(depth):
            layers += [nn.Conv2d(width, width, block_kernel, padding=block_kernel // 2),
                       nn.BatchNorm2d(width), act()] + ([nn.MaxPool2d(2)] if i < 3 else [])
        self.features = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.head = nn.Linear(width, num_classes)

    def forward(self, x):
        return self.head(self.features(x))


def space() -> sn.Space:
    return sn.Space(CNN(width=sn.oneof([8, 12, 16, 24, 32, 48, 64]), kernel=sn.oneof([3, 5, 7]),
                        block_kernel=sn.oneof([1, 3, 5]), depth=sn.oneof([1, 2, 3, 4]),
                        act=sn.oneof([nn.ReLU, nn.SiLU])))


def run(mode: str, seed: int, seconds: float, levels: list[int]) -> tuple[dict, list]:
    """One search: its row, and ``(CPU-s, valid acc, trial)`` for each architecture trained to the end."""
    with tempfile.TemporaryDirectory() as ckpt:
        task = sn.Task.cifar10(epochs=EPOCHS, max_batches=BATCHES, batch_size=64, valid_size=VALID,
                               checkpoints=ckpt)
        return _run(mode, seed, seconds, task, levels)


def _run(mode: str, seed: int, seconds: float, task: sn.Task, levels: list[int]) -> tuple[dict, list]:
    trace: list[tuple[float, float, Any]] = []

    def on_trial(t) -> None:
        if t.status == "done" and t.fidelity in (None, EPOCHS):
            trace.append((round(time.process_time() - cpu0, 2), t.metrics["valid_acc"], t))

    kw: dict = {"budget": 10_000, "time_budget": seconds, "seed": seed, "progress": False,
                "callbacks": [on_trial]}
    if mode == "full":
        algo = sn.algorithms.RegularizedEvolution(population_size=6, tournament_size=3)
    elif mode == "median":
        algo = sn.algorithms.RegularizedEvolution(population_size=6, tournament_size=3)
        kw.update(fidelity=EPOCHS, pruner="median")
    else:
        algo = sn.algorithms.ASHA(sampler=sn.algorithms.RegularizedEvolution(population_size=6,
                                                                             tournament_size=3))
        kw.update(fidelity=levels)
    wall0, cpu0 = time.perf_counter(), time.process_time()
    r = sn.search(space(), algo, task, **kw)
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    row = {"mode": mode, "seed": seed, "wall_s": round(wall, 2), "cpu_s": round(cpu, 2),
           "trials": len(r.trials), "full_trainings": len(trace),
           "pruned": sum(t.status == "pruned" for t in r.trials),
           "continued": sum(t.continues is not None for t in r.trials),
           "archs": len({t.genome for t in r.trials}),
           "trace": [(c, a) for c, a, _ in trace]}
    return row, trace


def settle(row: dict, trace: list, cap: float, task: sn.Task) -> None:
    """Adds the selected architectures to ``row``: the best of the whole search and the best
    within ``cap`` CPU-s, each trained again from scratch (untimed) for its test accuracy."""
    cache: dict[int, tuple[float, float]] = {}
    for prefix, within in (("", math.inf), ("capped_", cap)):
        done = [(acc, t) for c, acc, t in trace if c <= within]
        best = max(done, key=lambda x: x[0])[1] if done else None    # the first of equals
        if best is not None and best.id not in cache:
            cache[best.id] = retrain(task, best)
        again = cache[best.id] if best is not None else (None, None)
        row.update({f"{prefix}best_valid_acc": round(best.metrics["valid_acc"], 3) if best else None,
                    f"{prefix}retrained_valid_acc": again[0], f"{prefix}test_acc": again[1],
                    f"{prefix}best_continued": best.continues is not None if best else None,
                    f"{prefix}best": best.decisions if best else None})
    row["cap_cpu_s"] = cap


def retrain(task: sn.Task, trial) -> tuple[float, float]:
    """Trains ``trial``'s architecture again from scratch: (valid acc, test acc)."""
    torch.manual_seed(trial.seed)
    model = trial.arch.build()
    task.train(model, trial.seed)
    return round(task.accuracy(model, "valid"), 3), round(task.accuracy(model, "test"), 3)


def reach(row: dict, target: float) -> float | None:
    """CPU-seconds until ``row``'s search first trained an architecture to ``target`` accuracy
    (``target`` is rounded to 3 places; accuracies on 256 images are 0.39 apart)."""
    return next((cpu for cpu, acc in row["trace"] if acc >= target - 1e-3), None)


def table_md(rows: list[dict], seconds: float, seeds: list[int], levels: list[int]) -> str:
    by = {m: [r for r in rows if r["mode"] == m] for m in MODES}
    ref = {r["seed"]: r for r in by["full"]}

    def mean(m, k) -> float:              # over the seeds that have a value (nan: none has)
        vals = [r[k] for r in by[m] if r[k] is not None]
        return float(np.mean(vals)) if vals else float("nan")

    def cell(m, k, digits=2) -> str:
        return f"{mean(m, k):.{digits}f} | {mean(m, k) / mean('full', k):.3f}"

    def reached(m) -> list[tuple[float, float]]:       # (CPU-s, ratio to the reference's) per seed
        out = []
        for r in by[m]:
            target = ref[r["seed"]]["best_valid_acc"]
            if target is None:
                continue
            t, t_ref = reach(r, target), reach(ref[r["seed"]], target)
            if t is not None and t_ref:
                out.append((t, t / t_ref))
        return out

    lines = [f"### Early stopping with real training (`multi_fidelity_cifar.py`, seeds {seeds})",
             "",
             f"CNN space of {space().size} architectures on the CIFAR-10 subset; a full evaluation "
             f"is {EPOCHS} epochs x {BATCHES} batches of 64 (cosine over {EPOCHS} epochs), scored on "
             f"{VALID} validation images. Each search: {seconds:g} s of wall clock, inline, "
             f"{torch.get_num_threads()} thread(s), the three searches of a seed one after another "
             "(each first in turn). Means over the seeds; ratios against `full` (no early stopping) "
             "run in the same process. On a shared machine the same wall clock buys different "
             "CPU time, so the search is also scored *at equal CPU-s*: the best architecture "
             "trained to the end within the least CPU-s any of the seed's three searches got "
             f"(mean {np.mean([r['cap_cpu_s'] for r in by['full']]):.0f}). *Reach*: CPU-s until "
             "the search first trained an architecture to the reference's final best validation "
             "accuracy of the same seed (seeds that got there of all). *Test*: the selected "
             "architecture trained again from scratch (untimed), on the 1,017 test images.",
             "",
             "| search | best valid acc (%) | ratio | its test acc (%) | ratio | at equal CPU-s: valid "
             "| ratio | test | ratio | reach CPU-s | ratio | trained to the end | trials | pruned "
             "| archs seen | CPU-s | CPU-s ratio |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    names = {"full": "RE, no early stopping (reference)", "median": "RE + pruner='median'",
             "asha": f"ASHA, sampler=evolution, fidelity {levels}"}
    for m in MODES:
        got = reached(m)
        reach_s = (f"{np.mean([t for t, _ in got]):.0f} ({len(got)}/{len(by[m])})" if got
                   else f"never (0/{len(by[m])})")
        reach_r = f"{np.mean([q for _, q in got]):.2f}" if got else "-"
        lines.append(f"| {names[m]} | {cell(m, 'best_valid_acc')} | {cell(m, 'test_acc')} | "
                     f"{cell(m, 'capped_best_valid_acc')} | {cell(m, 'capped_test_acc')} | "
                     f"{reach_s} | {reach_r} | {mean(m, 'full_trainings'):.1f} | "
                     f"{mean(m, 'trials'):.1f} | {mean(m, 'pruned'):.1f} | {mean(m, 'archs'):.1f} | "
                     f"{cell(m, 'cpu_s', 0)} |")
    per_seed = "; ".join(f"seed {r['seed']} {r['mode']} {r['best_valid_acc']} (test {r['test_acc']}; "
                         f"at {r['cap_cpu_s']:.0f} CPU-s {r['capped_best_valid_acc']}, test "
                         f"{r['capped_test_acc']}; {r['cpu_s']:.0f} CPU-s)" for r in rows)
    picked = [(r[f"{k}retrained_valid_acc"], r[f"{k}best_valid_acc"], r[f"{k}best_continued"])
              for r in rows for k in ("", "capped_") if r[f"{k}best"] is not None]
    same = sum(a == b for a, b, _ in picked)
    cont = sum(bool(c) for _, _, c in picked)
    lines += ["", f"Per search: {per_seed}.", "",
              f"Retrained from scratch, a selected architecture's validation accuracy was the "
              f"searched one in {same} of {len(picked)} selections ({cont} of the selected trials "
              "continued a checkpoint). The reference averages "
              f"{np.mean([r['cpu_s'] / max(r['full_trainings'], 1) for r in by['full']]):.1f} "
              "CPU-s per full training."]
    return "\n".join(lines)


def main(argv=None) -> list[dict]:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--seeds", type=int, default=2)
    p.add_argument("--seconds", type=float, default=180.0, help="wall clock per search")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--levels", type=int, nargs="+", default=LEVELS,
                   help=f"ASHA's fidelities in epochs, the last {EPOCHS}")
    p.add_argument("--no-write", action="store_true")
    args = p.parse_args(argv)
    if args.levels[-1] != EPOCHS or sorted(set(args.levels)) != args.levels:
        p.error(f"--levels must increase to {EPOCHS} epochs (a full evaluation), got {args.levels}")
    torch.set_num_threads(args.threads)
    warm = sn.Task.cifar10(epochs=1, max_batches=1)     # data and torch's lazy imports: untimed
    warm(space().arch((0, 0, 0, 0, 0)), seed=0, epochs=1, report=lambda v, s: None)
    seeds = list(range(args.seeds))
    plain = sn.Task.cifar10(epochs=EPOCHS, max_batches=BATCHES, batch_size=64, valid_size=VALID)
    rows = []
    for seed in seeds:
        order = MODES[seed % len(MODES):] + MODES[:seed % len(MODES)]   # each mode first in turn
        runs = {mode: run(mode, seed, args.seconds, args.levels) for mode in order}
        cap = min(row["cpu_s"] for row, _ in runs.values())
        for mode in MODES:
            row, trace = runs[mode]
            settle(row, trace, cap, plain)
            print({k: v for k, v in row.items() if k != "trace"}, flush=True)
            rows.append(row)
    md = table_md(rows, args.seconds, seeds, args.levels)
    print(md)
    if not args.no_write:
        from _report import write_results
        write_results("multi_fidelity_cifar", {"rows": rows, "protocol": {
            "epochs": EPOCHS, "batches": BATCHES, "batch_size": 64, "valid": VALID,
            "levels": args.levels, "seconds": args.seconds,
            "seeds": seeds, "threads": args.threads}}, md)
    return rows


if __name__ == "__main__":
    main()
