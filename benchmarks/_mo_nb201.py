"""The multi-objective cases of ``nb201_search.py``: NAS-Bench-201 accuracy vs parameters and vs FLOPs.

Objectives: maximize ``valid200_cifar10``, minimize ``params`` (``mo_params``)
or ``flops`` (``mo_flops``), both of the CIFAR-10 network. After B queries
the hypervolume of every evaluated cell's (accuracy, -size) point is divided
by the hypervolume of the true front (all 15,625 cells), with the reference
point at the table's median accuracy and its largest size (the better half
of the trade-off; from the worst accuracy every method scores above 0.98):
1.0 means the whole true front was found. The peer is Optuna's NSGA-II (default settings),
as shipped and with symnas's deduplication (a repeated cell is told its
recorded values and costs no query). symnas's ``nsga2`` is its own NSGA-II
(PyGlove's, ``pg_nsga2``, cost 18-80 ms per trial when measured for issue #14
and is left out of the default run).

Run through ``python benchmarks/nb201_search.py --only mo_params,mo_flops``.
"""
from __future__ import annotations

import functools
import time

import numpy as np
from _search_stats import compare, fmt_p, merge_results, one_thread, run_jobs, summary

SIZE = {"mo_params": "params", "mo_flops": "flops"}
COLUMN = {"params": "params_M_cifar10", "flops": "flops_M_cifar10"}
ACC = "valid200_cifar10"
SYMNAS = ("random", "evolution", "de", "nsga2")
PEERS = ("optuna_nsga2", "optuna_nsga2_dedup")
LABELS = {"random": "Random", "evolution": "RegularizedEvolution (NSGA-II selection)",
          "de": "DifferentialEvolution (DEMO selection)", "nsga2": "NSGA-II",
          "pg_nsga2": "PyGlove NSGA-II",
          "optuna_nsga2": "Optuna NSGA-II (peer)", "optuna_nsga2_dedup": "Optuna NSGA-II + dedup (peer)"}


@functools.lru_cache(maxsize=2)
def reference(size: str) -> tuple[tuple[float, float], float]:
    """The reference point (worst accuracy, -largest size) and the true front's hypervolume."""
    from symnas.algorithms.pareto import hypervolume
    from symnas.evaluators import nb201
    cols = nb201.NB201Table().columns
    pts = list(zip(cols[ACC].tolist(), (-cols[COLUMN[size]]).tolist()))
    ref = (float(np.median(cols[ACC])), float(-cols[COLUMN[size]].max()))
    return ref, hypervolume(pts, ref)


def hv_curve(points: list[tuple[float, float]], size: str, budgets) -> dict[int, float]:
    from symnas.algorithms.pareto import hypervolume
    ref, true = reference(size)
    return {b: hypervolume(points[:b], ref) / true for b in budgets}


class _Timed:
    def __init__(self):
        from symnas.evaluators import nb201
        self.table = nb201.evaluator(ACC)
        self.seconds = 0.0

    def __call__(self, arch):
        t0 = time.perf_counter()
        out = self.table(arch)
        self.seconds += time.perf_counter() - t0
        return out


def run_symnas(name: str, size: str, seed: int, budget: int) -> tuple[list, float]:
    import symnas as sn
    ev = _Timed()
    space, algo = sn.spaces.nasbench201(), sn.algorithms.get(name)     # set-up: untimed
    t0 = time.perf_counter()
    result = sn.search(space, algo, ev, budget=budget, seed=seed, objective=[ACC, sn.minimize(size)],
                       progress=False)
    wall = time.perf_counter() - t0
    pts = [(t.metrics[ACC], -t.metrics[size]) for t in result.trials]
    return pts, (wall - ev.seconds) / len(result.trials) * 1e3


def run_optuna(size: str, seed: int, budget: int, dedup: bool) -> tuple[list, float]:
    import optuna

    from symnas.evaluators.nb201 import EDGE_NAMES, OP_NAMES
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    ev = _Timed()
    study = optuna.create_study(directions=["maximize", "minimize"],
                                sampler=optuna.samplers.NSGAIISampler(seed=seed))
    seen: dict[tuple, tuple] = {}
    pts: list[tuple[float, float]] = []
    t0 = time.perf_counter()
    asks = 0
    while len(pts) < budget and asks < 100 * budget:
        asks += 1
        trial = study.ask()
        genome = tuple(OP_NAMES.index(trial.suggest_categorical(e, list(OP_NAMES))) for e in EDGE_NAMES)
        if dedup and genome in seen:
            study.tell(trial, list(seen[genome]))
            continue
        m = ev(genome)
        seen[genome] = (m[ACC], m[size])
        pts.append((m[ACC], -m[size]))
        study.tell(trial, [m[ACC], m[size]])
    return pts, (time.perf_counter() - t0 - ev.seconds) / len(pts) * 1e3


_WARM: set = set()


def _job(args):
    name, case, seed, budget, budgets = args
    one_thread()
    if (name, case) not in _WARM:
        _WARM.add((name, case))
        _job((name, case, 10_000 + seed, 20, (20,)))
    size = SIZE[case]
    if name in PEERS:
        pts, ms = run_optuna(size, seed, budget, dedup=name.endswith("dedup"))
    else:
        pts, ms = run_symnas(name, size, seed, budget)
    return name, case, hv_curve(pts, size, budgets), ms


def main(cases: list[str], seeds: int, budgets: tuple[int, ...], workers: int, write: bool = True) -> dict:
    names = list(SYMNAS) + list(PEERS)
    jobs = [(n, c, s, max(budgets), budgets) for c in cases for n in names for s in range(seeds)]
    runs: dict[str, dict[str, list]] = {c: {n: [] for n in names} for c in cases}
    for name, case, curve, ms in run_jobs(_job, jobs, workers):
        runs[case][name].append((curve, ms))
    fresh = {}
    for case in cases:
        algos: dict = {}
        for name, items in runs[case].items():
            algos[name] = {"ms_per_trial": round(float(np.mean([ms for _, ms in items])), 4),
                           "per_seed": {str(b): [round(c[b], 5) for c, _ in items] for b in budgets}}
            for b in budgets:
                algos[name][str(b)] = summary(algos[name]["per_seed"][str(b)])
        comparisons = []
        for b in budgets:
            k = str(b)
            best = max(SYMNAS, key=lambda n: algos[n][k]["mean"])
            for peer in PEERS:
                c = compare(algos[best]["per_seed"][k], algos[peer]["per_seed"][k])
                comparisons.append({"budget": b, "symnas": best, "peer": peer,
                                    "ours": algos[best][k]["mean"], "theirs": algos[peer][k]["mean"], **c,
                                    "met": algos[best][k]["mean"] >= algos[peer][k]["mean"]})
        ref, true = reference(SIZE[case])
        fresh[case] = {"objectives": [ACC, f"min {SIZE[case]}"], "reference": ref, "true_hv": true,
                       "seeds": seeds, "budgets": list(budgets), "algorithms": algos,
                       "comparisons": comparisons}
    data = merge_results("nb201_multi_objective", fresh) if write else {"cases": fresh}
    md = table_md(data["cases"])
    print(md)
    if write:
        from _report import write_results
        write_results("nb201_multi_objective", data, md)
    return data


def table_md(cases: dict) -> str:
    lines = ["### NAS-Bench-201, two objectives (`nb201_search.py --only mo_params,mo_flops`)", "",
             "Hypervolume of all evaluated cells' (valid200 accuracy, -size) points after B queries, "
             "divided by the true front's (all 15,625 cells; reference point: the table's median accuracy "
             "and largest size). Mean over seeds (std). `ms/trial`: algorithm + loop, table lookups "
             "excluded. p: two-sided Mann-Whitney U over seeds. On NAS-Bench-201's CIFAR-10 network "
             "parameters and FLOPs rank the 15,625 cells identically (Spearman 1.0), so the two cases "
             "differ only in the front's geometry (hypervolume, crowding distances).", ""]
    for case in ("mo_params", "mo_flops"):
        if case not in cases:
            continue
        d = cases[case]
        budgets = d["budgets"]
        lines += [f"#### valid200_cifar10 vs {SIZE[case]} ({d['seeds']} seeds)", "",
                  "| algorithm | " + " | ".join(f"B={b}" for b in budgets) + " | ms/trial |",
                  "|---|" + "---|" * (len(budgets) + 1)]
        for name, a in d["algorithms"].items():
            cells = [f"{a[str(b)]['mean']:.4f} ({a[str(b)]['std']:.4f})" for b in budgets]
            lines.append(f"| {LABELS[name]} | " + " | ".join(cells) + f" | {a['ms_per_trial']:.2f} |")
        lines += ["", "| B | best symnas | peer | symnas | peer | diff | p | >= peer |",
                  "|---|---|---|---|---|---|---|---|"]
        for c in d["comparisons"]:
            lines.append(f"| {c['budget']} | {LABELS[c['symnas']]} | {LABELS[c['peer']]} | {c['ours']:.4f} | "
                         f"{c['theirs']:.4f} | {c['diff']:+.4f} | {fmt_p(c['p'])} | "
                         f"{'met' if c['met'] else '**NOT met**'} |")
        at = [c for c in d["comparisons"] if c["budget"] == 300 and c["peer"] == "optuna_nsga2"]
        if at:
            c = at[0]
            ms = d["algorithms"]
            lines += ["", f"Target: hypervolume >= Optuna NSGA-II at 300 queries: {LABELS[c['symnas']]} "
                          f"{c['ours']:.4f} vs {c['theirs']:.4f} (p {fmt_p(c['p'])}) "
                          f"{'met' if c['met'] else '**NOT met**'}; per trial "
                          f"{ms[c['symnas']]['ms_per_trial']:.2f} ms vs "
                          f"{ms['optuna_nsga2']['ms_per_trial']:.2f} ms."]
        lines.append("")
    return "\n".join(lines)
