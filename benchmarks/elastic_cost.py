"""Memory and speed of elastic supernets: weights held, and training throughput.

Memory: the number of weights a supernet derived from the Space holds, against
the largest subnet of the space and against the naive union (for each
``state_dict`` key, the largest tensor any of 12 sampled subnets has there: what
weight sharing by attribute name gives on MobileNet's flat ``features`` list),
for

* the default MobileNet space (width, expansion, blocks, kernel, SE per stage:
  int/float choices *and* module choices, whose candidates are mixed ops that
  each keep their own weights),
* the same space with kernel and SE fixed (int/float choices only: the store is
  exactly the largest subnet),
* the benchmarks' five-stage CIFAR space (``_elastic.py``).

Speed: supernet training steps (forward, backward, SGD; batch 64, one thread)
in images per CPU-second, in the same run and interleaved with the reference:
training the largest subnet alone as a plain module. Three supernet modes:
uniform sampling (SPOS: one random subnet per step), the supernet running the
largest configuration (the pure cost of slicing and binding), and the sandwich
rule (4 subnets per step; images counted once per batch). Target: uniform
sampling >= 0.8x the largest subnet alone.

Run: ``SYMNAS_DATA=... python benchmarks/elastic_cost.py [--steps 20 --repeats 3]``
"""
from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from pathlib import Path

import torch
from torch.nn import functional as F

sys.path.insert(0, str(Path(__file__).parent))
import _elastic as E
from _report import write_results

import symnas as sn
from symnas.algorithms.single_path import Sandwich
from symnas.supernet import Supernet


def memory(name: str, sp: sn.Space) -> dict:
    t0 = time.process_time()
    net = Supernet(sp, affine=None, track_running_stats=None)
    build = time.process_time() - t0
    store = sum(p.numel() for p in net.weight_parameters())
    largest = net.count_params(net.extreme(largest=True))
    union: dict[str, tuple] = {}
    ranks: dict[str, set] = {}
    sampled = 0
    for arch in sp.samples(12, seed=0):
        with torch.device("meta"):
            model = arch.build()
        sampled = max(sampled, sum(p.numel() for p in model.parameters()))
        for k, v in model.state_dict().items():
            if not v.is_floating_point() or k.endswith(("running_mean", "running_var")):
                continue
            ranks.setdefault(k, set()).add(v.dim())
            old = union.get(k)
            union[k] = tuple(v.shape) if old is None or len(old) != v.dim() else \
                tuple(max(a, b) for a, b in zip(old, v.shape))
    naive = sum(int(torch.tensor(s).prod()) if s else 1 for s in union.values())
    return {"space": name, "decisions": len(sp.decisions), "store": store, "largest": largest,
            "naive_union": naive, "store_over_largest": store / largest,
            "naive_over_largest": naive / largest, "largest_sampled": sampled,
            "naive_over_largest_sampled": naive / sampled,
            "keys_changing_rank": sum(len(r) > 1 for r in ranks.values()),
            "separate_tensors": len(net.extra), "build_cpu_seconds": build,
            "sharing": dict(net.sharing)}


def throughput(steps: int, repeats: int) -> dict:
    sp = E.space()
    task = E.task()
    torch.manual_seed(0)
    net = E.supernet(sp)
    largest_genome = net.extreme(largest=True)
    alone = net.subnet(largest_genome)
    batches = list(task.batches("train", 64, seed=0, max_batches=steps))
    rng = random.Random(0)
    sandwich = Sandwich(n_random=2)

    def opt_for(params: list) -> torch.optim.Optimizer:
        return torch.optim.SGD(params, lr=0.01, momentum=0.9)

    opts = {"alone": opt_for(list(alone.parameters())), "net": opt_for(net.weight_parameters())}

    def run(mode: str) -> float:
        images = 0
        t0 = time.process_time()
        for x, y in batches:
            if mode == "alone":
                opt = opts["alone"]
                opt.zero_grad(set_to_none=True)
                F.cross_entropy(alone(x), y).backward()
            else:
                opt = opts["net"]
                opt.zero_grad(set_to_none=True)
                if mode == "uniform":
                    net.sample(rng)
                    F.cross_entropy(net(x), y).backward()
                elif mode == "largest":
                    net.use(largest_genome)
                    F.cross_entropy(net(x), y).backward()
                else:
                    sandwich.step(net, x, y, rng)
            opt.step()
            images += len(y)
        return images / (time.process_time() - t0)

    for mode in ("alone", "uniform", "largest", "sandwich"):     # warm-up: caches, allocator
        run(mode)
    rates: dict[str, list[float]] = {m: [] for m in ("alone", "uniform", "largest", "sandwich")}
    for _ in range(repeats):
        for mode in rates:
            rates[mode].append(run(mode))
    med = {m: statistics.median(v) for m, v in rates.items()}
    return {"steps": steps, "repeats": repeats, "batch": 64, "images_per_cpu_s": med,
            "all": rates, "ratio": {m: med[m] / med["alone"] for m in ("uniform", "largest", "sandwich")},
            "largest_params": net.count_params(largest_genome)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    torch.set_num_threads(1)
    mem = [memory("mobilenet (default)", sn.spaces.mobilenet(num_classes=10)),
           memory("mobilenet, kernel and SE fixed", sn.spaces.mobilenet(
               num_classes=10, kernel_sizes=(3,), squeeze_excite=(False,))),
           memory("benchmark space (5 stages)", E.space())]
    for m in mem:
        print(f"{m['space']}: store {m['store_over_largest']:.3f}x largest, naive union "
              f"{m['naive_over_largest']:.1f}x")
    speed = throughput(args.steps, args.repeats)
    print({k: round(v, 2) for k, v in speed["ratio"].items()})
    data = {"memory": mem, "speed": speed}
    write_results("elastic_cost", data, render(data))


def render(d: dict) -> str:
    rows = "\n".join(
        f"| {m['space']} | {m['decisions']} | {m['largest']:,} | {m['store']:,} "
        f"({m['store_over_largest']:.3f}x) | {m['naive_union']:,} ({m['naive_over_largest']:.1f}x; "
        f"{m['naive_over_largest_sampled']:.1f}x the largest sampled) | "
        f"{m['keys_changing_rank']} | {m['separate_tensors']} |" for m in d["memory"])
    s = d["speed"]
    r, v = s["ratio"], s["images_per_cpu_s"]
    mem_intro = ("Weights held by the supernet derived from each Space, against its largest subnet "
                 "and against the naive union by `state_dict` key over 12 sampled subnets (keys "
                 "whose tensor rank changes between subnets are counted once, at their largest shape).")
    mem_head = ("| space | decisions | largest subnet | supernet (x largest) | naive union by key "
                "(x largest) | keys changing rank | separate tensors |")
    speed_intro = (f"Training throughput on the 5-stage CIFAR space, batch {s['batch']}, one thread, "
                   f"images per CPU-second (median of {s['repeats']} interleaved repeats of "
                   f"{s['steps']} steps), against training the largest subnet "
                   f"({s['largest_params']:,} weights) alone as a plain module in the same run:")
    return f"""### Elastic supernet memory and speed (`elastic_cost.py`)

{mem_intro}

{mem_head}
|---|---:|---:|---:|---:|---:|---:|
{rows}

{speed_intro}

| mode | images / CPU-s | x largest alone |
|---|---:|---:|
| largest subnet alone (reference) | {v['alone']:.1f} | 1.00 |
| uniform sampling (SPOS) | {v['uniform']:.1f} | {r['uniform']:.2f} |
| supernet at the largest configuration | {v['largest']:.1f} | {r['largest']:.2f} |
| sandwich rule (4 subnets per batch) | {v['sandwich']:.1f} | {r['sandwich']:.2f} |

Target: uniform sampling >= 0.8x: {'met' if r['uniform'] >= 0.8 else 'NOT met'}.
"""


if __name__ == "__main__":
    main()
