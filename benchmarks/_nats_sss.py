"""The ordered-choice case of ``nb201_search.py``: NATS-Bench's size space (5 widths x 8 values).

All 32,768 networks have a tabular CIFAR-10 accuracy (``$SYMNAS_DATA/natsbench_sss/``):
``acc_cifar10`` is both the search signal and the reported figure (the
table documents no separate test column). The space is
``sn.oneof([8, 16, ..., 64])`` per layer, which symnas now treats as ordered;
the ``(unordered)`` rows run the same algorithm with ``ordered=False``, the
old behaviour. The peer is Optuna's TPE with ordered integers
(``suggest_int(8, 64, step=8)``), as shipped and with symnas's deduplication.

Run through ``python benchmarks/nb201_search.py --only natsbench``.
"""
from __future__ import annotations

import csv
import functools
import time

import numpy as np
from _search_stats import compare, fmt_p, merge_results, one_thread, readoff, run_jobs, summary

WIDTHS = (8, 16, 24, 32, 40, 48, 56, 64)
LAYERS = 5
OPTIMUM = 90.712
SYMNAS = ("random", "evolution", "de", "reinforce", "ppo", "local_search", "local_bo")
UNORDERED = ("evolution", "local_bo")   # DE's bins already follow the list order of sorted widths
PEERS = ("tpe_int",)   # with symnas's dedup it proposed the same widths in a 6-seed check: identical
LABELS = {"random": "Random", "evolution": "RegularizedEvolution", "de": "DifferentialEvolution",
          "reinforce": "Reinforce", "ppo": "PPO", "local_search": "LocalSearch",
          "local_bo": "LocalBO (model-based)", "tpe_int": "Optuna TPE, ordered ints (peer)",
          "tpe_int_dedup": "Optuna TPE, ordered ints + dedup (peer)"}


@functools.lru_cache(maxsize=1)
def accuracies() -> np.ndarray:
    """``acc_cifar10`` of all 32,768 networks, in the table's (product) order."""
    from symnas.data import data_path
    with open(data_path("natsbench_sss/natsbench_sss_cifar10.csv"), newline="") as f:
        rows = list(csv.DictReader(f))
    acc = np.array([float(r["acc_cifar10"]) for r in rows])
    first = rows[1]["arch"].split(":")
    if len(acc) != len(WIDTHS) ** LAYERS or [int(x) for x in first] != [8, 8, 8, 8, 16]:
        raise ValueError("natsbench_sss_cifar10.csv is not the 32,768 networks in product order.")
    return acc


def index(widths: tuple[int, ...]) -> int:
    i = 0
    for w in widths:
        i = i * len(WIDTHS) + WIDTHS.index(w)
    return i


class Table:
    """The evaluator: an architecture's five widths -> ``{"acc": ...}`` (lookup time kept)."""

    def __init__(self):
        self.acc = accuracies()
        self.seconds = 0.0

    def __call__(self, arch) -> dict:
        t0 = time.perf_counter()
        labels = arch.space.labels
        widths = tuple(labels[i][g] for i, g in enumerate(arch.genome))
        out = {"acc": float(self.acc[index(widths)])}
        self.seconds += time.perf_counter() - t0
        return out


def space(ordered: bool = True):
    import symnas as sn
    return sn.Space({f"c{i}": sn.oneof(list(WIDTHS), name=f"c{i}", ordered=None if ordered else False)
                     for i in range(LAYERS)})


def run_symnas(name: str, ordered: bool, seed: int, budget: int) -> tuple[list, float]:
    import symnas as sn
    ev = Table()
    the_space, algo = space(ordered), sn.algorithms.get(name)          # set-up: untimed
    t0 = time.perf_counter()
    result = sn.search(the_space, algo, ev, budget=budget, seed=seed, objective="acc", progress=False)
    wall = time.perf_counter() - t0
    return [t.metrics["acc"] for t in result.trials], (wall - ev.seconds) / len(result.trials) * 1e3


def run_tpe(seed: int, budget: int, dedup: bool) -> tuple[list, float]:
    import optuna
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    acc = accuracies()
    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(seed=seed))
    seen: dict[tuple, float] = {}
    values: list[float] = []
    lookup = 0.0
    t0 = time.perf_counter()
    asks = 0
    while len(values) < budget and asks < 100 * budget:
        asks += 1
        trial = study.ask()
        widths = tuple(trial.suggest_int(f"c{i}", 8, 64, step=8) for i in range(LAYERS))
        if dedup and widths in seen:
            study.tell(trial, seen[widths])
            continue
        t1 = time.perf_counter()
        v = float(acc[index(widths)])
        lookup += time.perf_counter() - t1
        seen[widths] = v
        values.append(v)
        study.tell(trial, v)
    return values, (time.perf_counter() - t0 - lookup) / len(values) * 1e3


_WARM: set = set()


def _job(args):
    name, seed, budget, budgets = args
    one_thread()
    if name not in _WARM:                # first use in this process (imports): untimed
        _WARM.add(name)
        _job((name, 10_000 + seed, 20, (20,)))
    if name in PEERS:
        values, ms = run_tpe(seed, budget, dedup=name == "tpe_int_dedup")
    else:
        algo, _, unordered = name.partition(":")
        values, ms = run_symnas(algo, not unordered, seed, budget)
    return name, readoff(values, values, budgets), ms


def main(seeds: int, budgets: tuple[int, ...], workers: int, write: bool = True) -> dict:
    t0 = time.time()
    names = list(SYMNAS) + [f"{n}:unordered" for n in UNORDERED] + list(PEERS)
    jobs = [(n, s, max(budgets), budgets) for n in names for s in range(seeds)]
    runs: dict[str, list] = {n: [] for n in names}
    for name, curve, ms in run_jobs(_job, jobs, workers):
        runs[name].append((curve, ms))
    algos: dict = {}
    for name, items in runs.items():
        algos[name] = {"ms_per_trial": round(float(np.mean([ms for _, ms in items])), 4),
                       "per_seed": {str(b): [round(c[b], 4) for c, _ in items] for b in budgets}}
        for b in budgets:
            algos[name][str(b)] = summary(algos[name]["per_seed"][str(b)])
    ours = [n for n in names if n not in PEERS and ":" not in n]
    comparisons = []
    for b in budgets:
        k = str(b)
        best = max(ours, key=lambda n: algos[n][k]["mean"])
        for peer in PEERS:
            c = compare(algos[best]["per_seed"][k], algos[peer]["per_seed"][k])
            comparisons.append({"budget": b, "symnas": best, "peer": peer, "ours": algos[best][k]["mean"],
                                "theirs": algos[peer][k]["mean"], **c,
                                "met": algos[best][k]["mean"] >= algos[peer][k]["mean"]})
        for n in UNORDERED:   # what the order is worth, algorithm by algorithm
            c = compare(algos[n]["per_seed"][k], algos[f"{n}:unordered"]["per_seed"][k])
            comparisons.append({"budget": b, "symnas": n, "peer": f"{n}:unordered",
                                "ours": algos[n][k]["mean"], "theirs": algos[f"{n}:unordered"][k]["mean"],
                                **c, "met": algos[n][k]["mean"] >= algos[f"{n}:unordered"][k]["mean"]})
    case = {"signal": "acc_cifar10", "reported": "acc_cifar10", "optimum": OPTIMUM, "seeds": seeds,
            "budgets": list(budgets), "algorithms": algos, "comparisons": comparisons,
            "seconds": round(time.time() - t0), "workers": workers}
    data = (merge_results("natsbench_sss_search", {"natsbench": case}) if write
            else {"cases": {"natsbench": case}})
    md = table_md(data["cases"]["natsbench"])
    print(md)
    if write:
        from _report import write_results
        write_results("natsbench_sss_search", data, md)
    return data


def label(name: str) -> str:
    algo, _, unordered = name.partition(":")
    return LABELS.get(algo, algo) + (" (unordered)" if unordered else "")


def table_md(d: dict) -> str:
    budgets = d["budgets"]
    lines = [f"### NATS-Bench size space: ordered widths (`nb201_search.py --only natsbench`, "
             f"{d['seeds']} seeds)", "",
             "5 layers x widths {8, ..., 64} (32,768 networks, tabular CIFAR-10 accuracy, optimum "
             f"{d['optimum']}); select and report `acc_cifar10` (the table has one column). Mean over "
             "seeds (std) of the best network after B queries. `(unordered)`: the same algorithm with "
             "`sn.oneof(..., ordered=False)`. `ms/trial`: algorithm + loop on one thread, table lookups "
             "excluded. p: two-sided Mann-Whitney U over seeds. The peer is Optuna's TPE told the widths "
             "are ordered (`suggest_int(8, 64, step=8)`).", "",
             "| algorithm | " + " | ".join(f"B={b}" for b in budgets) + " | ms/trial |",
             "|---|" + "---|" * (len(budgets) + 1)]
    for name, a in d["algorithms"].items():
        cells = [f"{a[str(b)]['mean']:.3f} ({a[str(b)]['std']:.3f})" for b in budgets]
        lines.append(f"| {label(name)} | " + " | ".join(cells) + f" | {a['ms_per_trial']:.2f} |")
    lines += ["", "| B | symnas | versus | symnas mean | their mean | diff | p | >= |",
              "|---|---|---|---|---|---|---|---|"]
    for c in d["comparisons"]:
        best = " (best)" if c["peer"] in PEERS else ""
        lines.append(f"| {c['budget']} | {label(c['symnas'])}{best} | {label(c['peer'])} | {c['ours']:.3f} | "
                     f"{c['theirs']:.3f} | {c['diff']:+.3f} | {fmt_p(c['p'])} | "
                     f"{'met' if c['met'] else '**NOT met**'} |")
    target = [c for c in d["comparisons"] if c["peer"] in PEERS and c["budget"] in (100, 300)]
    if target:
        lines += ["", "Target: the best symnas algorithm >= Optuna TPE with ordered ints at 100 and 300 "
                      "queries: " + "; ".join(f"B={c['budget']} {c['ours']:.3f} vs {c['theirs']:.3f} "
                                              f"(p {fmt_p(c['p'])}) {'met' if c['met'] else '**NOT met**'}"
                                              for c in target) + "."]
    if "seconds" in d:
        lines += ["", f"{d['seconds']} s for the whole case ({d.get('workers', 1)} process(es), "
                      "shared 2-core machine)."]
    return "\n".join(lines) + "\n"
