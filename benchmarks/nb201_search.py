"""Black-box search quality on NAS-Bench-201 (four objectives), NATS-Bench's size space, and two objectives.

Protocol (each *case* a search signal and a reported figure): every query
returns the signal; after B queries the best cell by the signal is selected
and its reported figure read off; the mean over seeds is compared with
Optuna's TPE, run as the peer in the same run (two-sided Mann-Whitney U
p-values over seeds, standard deviations in the tables).

======== ======================= ===================== =========================
case     search signal           reported              role
======== ======================= ===================== =========================
c10_v200 ``valid200_cifar10``    ``test200_cifar10``   defaults tuned here
c10_v12  ``valid12_cifar10``     ``test200_cifar10``   a noisy low fidelity
c100_v12 ``valid12_cifar100``    ``test12_cifar100``   held out
in16_v12 ``valid12_imagenet16``  ``test12_imagenet16`` held out
======== ======================= ===================== =========================

``natsbench`` (ordered widths, ``_nats_sss.py``) and ``mo_params`` /
``mo_flops`` (accuracy vs size, ``_mo_nb201.py``) are the other cases.

Every symnas algorithm runs through ``sn.search`` (the real trial loop, with
its deduplication: a repeated cell costs no budget), one search per seed at
the largest budget, read off at each budget prefix. Optuna's TPE (default
settings, one categorical parameter per edge) runs twice: as Optuna ships it
(``tpe``: a repeated cell is a query) and with symnas's deduplication
(``tpe_dedup``: a repeat is told its recorded value and costs no query).
``ms/trial`` is wall time minus the table lookups, per counted trial, on one
thread: the cost of the algorithm plus the loop.

Run from the repository root, with ``SYMNAS_DATA`` set::

    python benchmarks/nb201_search.py                       # everything (long)
    python benchmarks/nb201_search.py --only c10_v200 --seeds 20 --no-write
    python benchmarks/nb201_search.py --only natsbench,mo_params --budgets 100,300
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")   # before numpy: per-core timings

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).parent))
from _search_stats import compare, fmt_p, merge_results, one_thread, readoff, run_jobs, summary  # noqa: E402

BUDGETS = (50, 100, 300)
CASES = {   # name: (signal, reported, dataset label, role)
    "c10_v200": ("valid200_cifar10", "test200_cifar10", "CIFAR-10, valid200", "tuned"),
    "c10_v12": ("valid12_cifar10", "test200_cifar10", "CIFAR-10, valid12 (low fidelity)", "CIFAR-10"),
    "c100_v12": ("valid12_cifar100", "test12_cifar100", "CIFAR-100, valid12", "held out"),
    "in16_v12": ("valid12_imagenet16", "test12_imagenet16", "ImageNet16-120, valid12", "held out"),
}
OTHER = ("natsbench", "mo_params", "mo_flops")
SYMNAS = ("random", "evolution", "de", "reinforce", "ppo", "local_search", "local_bo")
PEERS = ("tpe", "tpe_dedup")
LABELS = {"random": "Random", "evolution": "RegularizedEvolution", "de": "DifferentialEvolution",
          "reinforce": "Reinforce", "ppo": "PPO", "local_search": "LocalSearch",
          "local_bo": "LocalBO (model-based)", "tpe": "Optuna TPE (peer)",
          "tpe_dedup": "Optuna TPE + dedup (peer)"}
MODEL_TARGET = ("c10_v200", 100, 94.25)   # the model-based algorithm at 100 queries on CIFAR-10


class _TimedTable:
    """The table evaluator, timing its own lookups (excluded from ms_per_trial)."""

    def __init__(self, metric: str):
        from symnas.evaluators import nb201
        self.table = nb201.evaluator(metric)
        self.seconds = 0.0

    def __call__(self, arch):
        t0 = time.perf_counter()
        out = self.table(arch)
        self.seconds += time.perf_counter() - t0
        return out


def run_symnas(name: str, case: str, seed: int, budget: int) -> tuple[list, list, float]:
    import symnas as sn
    signal, reported = CASES[case][:2]
    ev = _TimedTable(signal)
    space, algo = sn.spaces.nasbench201(), sn.algorithms.get(name)     # set-up: untimed
    t0 = time.perf_counter()
    result = sn.search(space, algo, ev, budget=budget, seed=seed, objective=signal, progress=False)
    wall = time.perf_counter() - t0
    valids = [t.metrics[signal] for t in result.trials]
    tests = [t.metrics[reported] for t in result.trials]
    return valids, tests, (wall - ev.seconds) / len(result.trials) * 1e3


def run_tpe(case: str, seed: int, budget: int, dedup: bool) -> tuple[list, list, float]:
    import optuna

    from symnas.evaluators.nb201 import EDGE_NAMES, OP_NAMES
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    signal, reported = CASES[case][:2]
    ev = _TimedTable(signal)
    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(seed=seed))
    seen: dict[tuple, float] = {}
    valids, tests = [], []
    t0 = time.perf_counter()
    asks = 0
    while len(valids) < budget and asks < 100 * budget:
        asks += 1
        trial = study.ask()
        genome = tuple(OP_NAMES.index(trial.suggest_categorical(e, list(OP_NAMES))) for e in EDGE_NAMES)
        if dedup and genome in seen:   # deduplicated like sn.search: no query spent
            study.tell(trial, seen[genome])
            continue
        m = ev(genome)
        seen[genome] = m[signal]
        valids.append(m[signal])
        tests.append(m[reported])
        study.tell(trial, m[signal])
    wall = time.perf_counter() - t0
    return valids, tests, (wall - ev.seconds) / len(valids) * 1e3


_WARM: set = set()


def _job(args):
    name, case, seed, budget, budgets = args
    one_thread()
    if (name, case) not in _WARM:          # first use in this process (imports, set-up): untimed
        _WARM.add((name, case))
        _job((name, case, 10_000 + seed, 20, (20,)))
    if name in PEERS:
        valids, tests, ms = run_tpe(case, seed, budget, dedup=name == "tpe_dedup")
    else:
        valids, tests, ms = run_symnas(name, case, seed, budget)
    return name, case, seed, readoff(valids, tests, budgets), ms


def summarize(case: str, runs: dict[str, list], budgets: tuple[int, ...]) -> dict:
    algos = {}
    for name, items in runs.items():
        algos[name] = {"ms_per_trial": round(float(np.mean([ms for _, ms in items])), 4),
                       "per_seed": {str(b): [round(r[b], 4) for r, _ in items] for b in budgets}}
        for b in budgets:
            algos[name][str(b)] = summary(algos[name]["per_seed"][str(b)])
    comparisons = []
    ours = [n for n in algos if n not in PEERS]
    for b in budgets:
        if not ours:
            break
        k = str(b)
        best = max(ours, key=lambda n: algos[n][k]["mean"])
        for peer in PEERS:
            if peer in algos:
                for who, label in ((best, "best"), ("local_bo", "model-based")):
                    if who in algos and (label == "best" or who != best):
                        c = compare(algos[who]["per_seed"][k], algos[peer]["per_seed"][k])
                        ours_m, peer_m = algos[who][k]["mean"], algos[peer][k]["mean"]
                        comparisons.append({"budget": b, "symnas": who, "which": label, "peer": peer,
                                            "ours": ours_m, "theirs": peer_m, **c, "met": ours_m >= peer_m})
    signal, reported, label, role = CASES[case]
    return {"signal": signal, "reported": reported, "label": label, "role": role,
            "seeds": {n: len(v) for n, v in runs.items()}, "budgets": list(budgets),
            "algorithms": algos, "comparisons": comparisons}


def table_md(cases: dict) -> str:
    lines = ["### NAS-Bench-201 search quality (`nb201_search.py`)", "",
             "Select the best cell by the search signal after B queries, report its reported figure; "
             "mean over seeds (std). Defaults were tuned on CIFAR-10 only; CIFAR-100 and "
             "ImageNet16-120 are held out. `ms/trial`: algorithm + loop on one thread, table lookups "
             "excluded. p: two-sided Mann-Whitney U over seeds. TPE as shipped counts a repeated cell as "
             "a query; 'TPE + dedup' and every symnas algorithm do not.", ""]
    for case in CASES:
        if case not in cases:
            continue
        d = cases[case]
        budgets = d["budgets"]
        seeds = sorted(set(d["seeds"].values()))
        lines += [f"#### {d['label']}: select by `{d['signal']}`, report `{d['reported']}` "
                  f"({d['role']}; {'/'.join(map(str, seeds))} seeds)", "",
                  "| algorithm | " + " | ".join(f"B={b}" for b in budgets) + " | ms/trial |",
                  "|---|" + "---|" * (len(budgets) + 1)]
        for name, a in d["algorithms"].items():
            cells = [f"{a[str(b)]['mean']:.2f} ({a[str(b)]['std']:.2f})" for b in budgets]
            lines.append(f"| {LABELS.get(name, name)} | " + " | ".join(cells) +
                         f" | {a['ms_per_trial']:.2f} |")
        lines += ["", "| B | symnas | peer | symnas mean | peer mean | diff | p | >= peer |",
                  "|---|---|---|---|---|---|---|---|"]
        for c in d["comparisons"]:
            which = " (best)" if c["which"] == "best" else ""
            lines.append(f"| {c['budget']} | {LABELS[c['symnas']]}{which} | {LABELS[c['peer']]} | "
                         f"{c['ours']:.3f} | {c['theirs']:.3f} | {c['diff']:+.3f} | {fmt_p(c['p'])} | "
                         f"{'met' if c['met'] else '**NOT met**'} |")
        if case == MODEL_TARGET[0] and "local_bo" in d["algorithms"]:
            a = d["algorithms"]["local_bo"]
            b, goal = MODEL_TARGET[1], MODEL_TARGET[2]
            got = (a.get(str(b)) or {}).get("mean")
            if got is not None:
                lines += ["", f"Target: LocalBO >= {goal:.2f} at {b} queries: {got:.3f} "
                              f"{'met' if got >= goal else '**NOT met**'}."]
        lines.append("")
    return "\n".join(lines)


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--only", default=",".join(list(CASES) + list(OTHER)),
                   help=f"comma-separated cases: {', '.join(list(CASES) + list(OTHER))}")
    p.add_argument("--seeds", type=int, default=100, help="seeds on CIFAR-10 cases (default 100)")
    p.add_argument("--heldout-seeds", type=int, default=50, help="seeds on the other cases (default 50)")
    p.add_argument("--budgets", default=",".join(map(str, BUDGETS)), help="read-off budgets")
    p.add_argument("--algorithms", default=",".join(SYMNAS + PEERS), help="NB201 cases: algorithms")
    p.add_argument("--workers", type=int, default=1, help="processes (timings are per process)")
    p.add_argument("--no-write", action="store_true", help="print only; keep results and README")
    args = p.parse_args(argv)
    only = [c.strip() for c in args.only.split(",") if c.strip()]
    budgets = tuple(sorted(int(b) for b in args.budgets.split(",")))
    names = [n.strip() for n in args.algorithms.split(",") if n.strip()]
    for c in only:
        if c not in CASES and c not in OTHER:
            p.error(f"unknown case {c!r}; choose from {', '.join(list(CASES) + list(OTHER))}")
    for n in names:
        if n not in SYMNAS + PEERS:
            p.error(f"unknown algorithm {n!r}; choose from {', '.join(SYMNAS + PEERS)}")
    t0 = time.time()
    out: dict = {}
    nb = [c for c in only if c in CASES]
    if nb:
        seeds = {c: args.seeds if CASES[c][2].startswith("CIFAR-10,") else args.heldout_seeds for c in nb}
        jobs = [(n, c, s, max(budgets), budgets) for c in nb for n in names for s in range(seeds[c])]
        runs: dict[str, dict[str, list]] = {c: {n: [] for n in names} for c in nb}
        for name, case, _seed, curve, ms in run_jobs(_job, jobs, args.workers):
            runs[case][name].append((curve, ms))
        fresh = {c: summarize(c, runs[c], budgets) for c in nb}
        data = merge_results("nb201_search", fresh) if not args.no_write else {"cases": fresh}
        md = table_md(data["cases"])
        print(md)
        out["nb201_search"] = data
        if not args.no_write:
            from _report import write_results
            write_results("nb201_search", data, md)
    if "natsbench" in only:
        import _nats_sss
        out["natsbench"] = _nats_sss.main(args.seeds, budgets, args.workers, write=not args.no_write)
    mo = [c for c in only if c.startswith("mo_")]
    if mo:
        import _mo_nb201
        out["mo"] = _mo_nb201.main(mo, args.heldout_seeds, budgets, args.workers,
                                   write=not args.no_write)
    print(f"[{time.time() - t0:.0f} s]")
    return out


if __name__ == "__main__":
    main()
