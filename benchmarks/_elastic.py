"""Shared pieces of the elastic-supernet benchmarks: the space, the data, trained supernets.

The space is MobileNetV2's network at CIFAR size (32x32 inputs, stride-2 stem)
cut to its first five stages, with every kind of choice searchable at once:
width multiplier (0.25, 0.5, 0.75), and per stage the expansion ratio (3, 6),
the depthwise kernel (3x3, 5x5: a module choice, mixed) and the number of blocks
(MobileNetV2's n - 1 or n): 15 decisions, 49,152 architectures. Data: the real
CIFAR-10 subset (4,068 training / 1,017 valid images). Everything runs on one
thread (the two cores are shared).

``nats()`` is the other space supernets are trained on here: NATS-Bench's size space
(``_nats_model.py``), whose every network has a tabulated accuracy.

Trained supernets are cached in ``$SYMNAS_BENCH_CACHE`` (default
``/tmp/symnas_elastic``) keyed by strategy, steps and seed, so the ranking and
evolution benchmarks share them; stand-alone results and the supernets' scores
are cached there too.
"""
from __future__ import annotations

import json
import math
import os
import time
from pathlib import Path
from typing import Any

import torch

import symnas as sn
from symnas.supernet import Supernet

BASE = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 3, 2), (6, 96, 2, 1))
CACHE = Path(os.environ.get("SYMNAS_BENCH_CACHE", "/tmp/symnas_elastic"))


def space() -> sn.Space:
    return sn.spaces.mobilenet(num_classes=10, width_multipliers=(0.25, 0.5, 0.75),
                               kernel_sizes=(3, 5), expansions=(3, 6), depth_deltas=(-1, 0),
                               squeeze_excite=(False,), base=BASE)


def task(**kw: Any) -> sn.Task:
    return sn.Task.cifar10(**{"batch_size": 64, "eval_batch_size": 256, **kw})


def supernet(sp: sn.Space) -> Supernet:
    return Supernet(sp, affine=None, track_running_stats=None)


#: strategy -> (registered algorithm, its settings, cache file stem). The sandwich rule's stems
#: changed when its largest/smallest stopped pinning module choices (the kernels) to one
#: candidate; files trained by the old rule are the 'sandwich_pinned' strategy.
STRATEGIES: dict[str, tuple[str, dict, str]] = {
    "spos": ("spos", {}, "spos"),
    "sandwich": ("sandwich", {}, "sandwich_r2"),
    "sandwich_labels": ("sandwich", {"distill": False}, "sandwich_labels_r2"),
    "sandwich_pinned": ("sandwich", {"module_choices": "extreme"}, "sandwich"),
    "sandwich_aug": ("sandwich", {"augment": True}, "sandwich_aug"),
}


def nats() -> sn.Space:
    """NATS-Bench's size space (32,768 width settings) as plain model code: ``_nats_model``."""
    from _nats_model import nats_space
    return nats_space()


#: the spaces a supernet is trained on, and their cache files' prefixes
SPACES: dict[str, tuple[Any, str]] = {"mobilenet": (space, ""), "nats": (nats, "nats_")}


def _stem(strategy: str, steps: int, seed: int, on: str) -> str:
    if strategy not in STRATEGIES:
        raise ValueError(f"unknown strategy {strategy!r}; choose from {sorted(STRATEGIES)}.")
    return f"{SPACES[on][1]}{STRATEGIES[strategy][2]}_{steps}_{seed}"


def trained(strategy: str, steps: int, seed: int = 0, log: Any = print,
            on: str = "mobilenet") -> tuple[Supernet, dict]:
    """A supernet of the space ``on`` (see SPACES) trained by ``strategy`` for ``steps`` steps
    (cached): 'spos', 'sandwich' (in-place distillation), 'sandwich_labels' (every subnet on
    the labels) or 'sandwich_pinned' (module choices pinned in the largest and smallest: the
    old rule) or 'sandwich_aug' (the sandwich on randomly cropped and flipped batches)."""
    name, extra, _ = STRATEGIES[strategy]
    CACHE.mkdir(parents=True, exist_ok=True)
    path = CACHE / f"{_stem(strategy, steps, seed, on)}.pt"
    torch.manual_seed(seed)
    sp = SPACES[on][0]()
    net = supernet(sp)
    if path.exists():
        saved = torch.load(path, weights_only=True)
        net.load_state_dict(saved["net"])
        return net, saved["stats"]
    t = task()
    per_epoch = math.ceil(len(t.splits()["train"][1]) / t.batch_size)
    epochs = max(1, math.ceil(steps / per_epoch))
    algo = sn.algorithms.get(name, epochs=epochs,
                             max_batches=math.ceil(steps / epochs), batch_size=t.batch_size,
                             lr=0.05, **extra)
    cpu0, t0 = time.process_time(), time.perf_counter()
    stats = algo.train(net, t, seed=seed)
    stats.update(cpu_seconds=time.process_time() - cpu0, wall_seconds=time.perf_counter() - t0)
    log(f"trained {strategy} supernet: {stats['train_steps']} steps, {stats['cpu_seconds']:.0f} CPU-s")
    torch.save({"net": net.state_dict(), "stats": stats}, path)
    return net, stats


def scores(strategy: str, steps: int, seed: int, genomes: list, compute: Any,
           on: str = "mobilenet") -> dict:
    """``compute()``'s scores of ``genomes`` on the supernet ``trained(strategy, steps, seed,
    on=on)``, cached beside that supernet's file (a supernet file never changes once written),
    so a rerun scores only the supernets it has not scored."""
    store = CACHE / "scores.jsonl"
    key = json.dumps([_stem(strategy, steps, seed, on), [list(g) for g in genomes]])
    if store.exists():
        for line in store.read_text().splitlines():
            rec = json.loads(line)
            if rec["key"] == key:
                return rec["scores"]
    out = compute()
    with store.open("a") as f:
        f.write(json.dumps({"key": key, "scores": out}) + "\n")
    return out


def inherited(net: Supernet, task: sn.Task, genomes: list) -> dict:
    """Inherited-weight accuracy of each genome (a plain subnet, BatchNorm recalibrated on 8
    training batches) on the valid and on the test split, and the CPU-seconds it took."""
    c0 = time.process_time()
    valid, test = [], []
    for g in genomes:
        model = net.subnet(g, task, batches=8).eval()
        valid.append(task.accuracy(model, "valid"))
        test.append(task.accuracy(model, "test"))
    return {"valid": valid, "test": test, "cpu_seconds": time.process_time() - c0}


def standalone(sp: sn.Space, genome: tuple, epochs: int, seed: int = 0, test: bool = False) -> dict:
    """Valid (and test) accuracy of ``genome`` trained from scratch for ``epochs`` epochs
    (cached; ``test=True`` retrains a cached record that has no ``test_acc``)."""
    CACHE.mkdir(parents=True, exist_ok=True)
    store = CACHE / "standalone.jsonl"
    key = json.dumps([list(genome), epochs, seed])
    found = None
    if store.exists():
        for line in store.read_text().splitlines():
            rec = json.loads(line)
            if rec["key"] == key and (found is None or "test_acc" in rec):
                found = rec
    if found is not None and (not test or "test_acc" in found):
        return found
    t = task(epochs=epochs, lr=0.05)
    cpu0 = time.process_time()
    torch.manual_seed(seed)          # what t(arch, seed=seed) does, keeping the model to test it
    model = sp.arch(genome).build()
    metrics = t(model, seed=seed)
    rec = {"key": key, "valid_acc": metrics["valid_acc"], "test_acc": t.accuracy(model, "test"),
           "params_M": metrics["params_M"], "cpu_seconds": time.process_time() - cpu0}
    with store.open("a") as f:
        f.write(json.dumps(rec) + "\n")
    return rec
