"""How well a latency table the Space builds itself predicts measured latency, on this CPU.

For the MobileNet space (``sn.spaces.mobilenet(num_classes=10)``) and the NAS-Bench-201 space
(``sn.spaces.nasbench201()``, C=16, N=5), both at CIFAR size (batch 1 x 3 x 32 x 32), one
thread: a :class:`symnas.evaluators.latency.LookupTable` is built from ``--build-n`` seeded
architectures (seed 0), then ``--archs`` other seeded architectures (seed 1000) are

- predicted by the table (the first prediction of each builds it on the CPU to find its layers
  and times any layer configuration the table lacks; a second one is a cached lookup), and
- measured directly with :func:`symnas.evaluators.latency.measure` (warm-up 10, 30 timed
  calls) in ``--rounds`` interleaved rounds; the measured value is the median over the rounds
  of each round's median call (statistic ``median``), or the fastest call of all rounds
  (statistic ``min``). One table is built per statistic; both are compared with the same
  direct measurements.

Reported: Spearman's rho and the mean absolute percentage error (MAPE) between predicted and
measured, and the same two between two rounds of the direct measurement (how repeatable the
measurement itself is on this machine: the ceiling for any predictor); the time to build the
table; the cost of a prediction, first and cached, as a ratio to a direct measurement (build
plus timed calls) of the same architectures in the same run. Target: Spearman >= 0.9 on both.

    python benchmarks/latency_table.py                      # both spaces, both statistics
    python benchmarks/latency_table.py --archs 10 --rounds 2 --spaces mobilenet   # a quick check
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch
from scipy import stats

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _report import write_results  # noqa: E402

import symnas as sn  # noqa: E402
from symnas.evaluators import latency  # noqa: E402

SHAPE = (3, 32, 32)
TARGET = 0.9
SPACES = {"mobilenet": lambda: sn.spaces.mobilenet(num_classes=10),
          "nasbench201": lambda: sn.spaces.nasbench201()}


def mape(pred: np.ndarray, true: np.ndarray) -> float:
    return float(np.mean(np.abs(pred - true) / true) * 100)


def table_for(space: sn.Space, statistic: str, args: argparse.Namespace) -> dict:
    """A table built with ``statistic``, and its first and cached predictions of ``archs``."""
    t0 = time.perf_counter()
    table = latency.LookupTable(space, SHAPE, threads=args.threads, statistic=statistic,
                                warmup=5, repeats=args.layer_repeats, calibration=args.calibration)
    table.build(n=args.build_n, seed=0)
    out: dict = {"table": table, "build_seconds": time.perf_counter() - t0,
                 "entries_built": len(table)}
    first_ms, first_new = [], []
    for arch in args.archs_list:
        timed = table.stats["timed"]
        t = time.perf_counter()
        table.predict(arch)
        first_ms.append((time.perf_counter() - t) * 1e3)
        first_new.append(table.stats["timed"] - timed)
    t = time.perf_counter()
    for _ in range(args.cached_loops):
        pred = np.array([table.predict(a) for a in args.archs_list])
    out["cached_us"] = (time.perf_counter() - t) / (args.cached_loops * len(pred)) * 1e6
    out.update(pred=pred, first_ms=first_ms, first_new=first_new)
    return out


def run(name: str, args: argparse.Namespace) -> list[dict]:
    """Both statistics' tables for one space, against one set of interleaved direct measurements."""
    space = SPACES[name]()
    args.archs_list = list(space.samples(args.archs, seed=1000))
    tables = {s: table_for(space, s, args) for s in args.statistics}
    rounds: dict[str, list] = {s: [] for s in args.statistics}
    direct_ms = []
    for _ in range(args.rounds):
        rows: dict[str, list] = {s: [] for s in args.statistics}
        for arch in args.archs_list:
            t = time.perf_counter()
            m = latency.measure(arch.build(), SHAPE, threads=args.threads, warmup=10, repeats=30)
            direct_ms.append((time.perf_counter() - t) * 1e3)
            for s in args.statistics:
                rows[s].append(m[f"latency_{s}_ms"])
        for s in args.statistics:
            rounds[s].append(rows[s])
    direct = statistics.median(direct_ms)
    out = []
    for s, tb in tables.items():
        R = np.array(rounds[s])
        true = np.median(R, 0) if s == "median" else R.min(0)
        pairs = [(i, j) for i in range(len(R)) for j in range(i + 1, len(R))]
        repeat_rho = [float(stats.spearmanr(R[i], R[j])[0]) for i, j in pairs]
        repeat_mape = [mape(R[j], R[i]) for i, j in pairs]
        agg = (lambda x: np.median(x, 0)) if s == "median" else (lambda x: x.min(0))
        others = [agg(np.delete(R, i, 0)) for i in range(len(R))] if len(R) > 1 else []
        one_round_rho = [float(stats.spearmanr(R[i], o)[0]) for i, o in enumerate(others)]
        pred, table = tb["pred"], tb["table"]
        rho = float(stats.spearmanr(pred, true)[0])
        no_new = [ms for ms, n in zip(tb["first_ms"], tb["first_new"]) if n == 0]
        first = statistics.median(tb["first_ms"])
        row = {
            "space": name, "statistic": s, "archs": len(pred), "rounds": args.rounds,
            "spearman": rho, "kendall": float(stats.kendalltau(pred, true)[0]),
            "mape_pct": mape(pred, true),
            "repeat_spearman_mean": float(np.mean(repeat_rho)) if repeat_rho else None,
            "repeat_mape_pct_mean": float(np.mean(repeat_mape)) if repeat_mape else None,
            "one_round_vs_other_rounds_spearman_mean":
                float(np.mean(one_round_rho)) if one_round_rho else None,
            "target_met": rho >= TARGET,
            "build_n": args.build_n, "build_seconds": tb["build_seconds"],
            "entries_built": tb["entries_built"], "entries_after": len(table),
            "overhead_ms": table.overhead_ms, "overhead_samples": table.overhead["samples"],
            "first_predict_ms_median": first,
            "first_predict_ms_median_no_new_layer": statistics.median(no_new) if no_new else None,
            "first_predicts_timing_new_layers": sum(n > 0 for n in tb["first_new"]),
            "cached_predict_us": tb["cached_us"], "direct_measure_ms_median": direct,
            "first_predict_over_direct": first / direct,
            "cached_predict_over_direct": tb["cached_us"] / 1e3 / direct,
            "measured_ms": true.tolist(), "measured_rounds_ms": R.tolist(),
            "predicted_ms": pred.tolist(),
            "measured_range_ms": [float(true.min()), float(true.max())],
            "threads": table.threads, "device_name": table.info["device_name"],
            "torch": table.info["torch"],
        }
        print(f"{name:12s} {s:6s} rho {rho:.3f} (repeat {row['repeat_spearman_mean']}) "
              f"MAPE {row['mape_pct']:.1f}% build {row['build_seconds']:.1f}s "
              f"({row['entries_built']} -> {len(table)}) first {first:.1f} ms "
              f"cached {tb['cached_us']:.2f} us direct {direct:.0f} ms", flush=True)
        out.append(row)
    return out


def markdown(rows: list[dict], args: argparse.Namespace) -> str:
    r0 = rows[0]
    lines = [
        "### Latency lookup table vs measured latency (`latency_table.py`)",
        "",
        f"CPU `{r0['device_name']}`, torch {r0['torch']}, {r0['threads']} thread, batch 1 x 3 x 32 x 32, "
        f"inference. Table built from {args.build_n} seeded architectures; {r0['archs']} other "
        f"seeded architectures predicted and measured directly ({args.rounds} interleaved rounds "
        "of 10 warm-up + 30 timed calls; measured = median over rounds for `median`, minimum for "
        "`min`). *Repeatability*: the same two figures between two single rounds of the direct "
        "measurement; *one round's Spearman*: a single round of direct measurement against the "
        "other rounds' aggregate, i.e. how well measuring each architecture once ranks them "
        "(the table's Spearman is against all rounds' aggregate). Costs: *first* "
        "prediction of an architecture (a CPU build and one forward pass to find its layers, "
        "plus timing the layer configurations the table lacks), *cached* (seen before), "
        "*direct* (build + 40 calls). Load average of this 2-core machine (other programs "
        f"running): {args.load_average[0]:.1f} at the start (1 min), {args.load_average[3]:.1f} "
        "at the end.",
        "",
        "| space | statistic | Spearman | MAPE | repeatability: Spearman / MAPE | one round's "
        "Spearman | measured ms | "
        "table: configs (after) / build s | first predict ms | cached predict us | direct ms | "
        "first / direct | cached / direct | target Spearman >= 0.9 |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in rows:
        rep = (f"{r['repeat_spearman_mean']:.3f} / {r['repeat_mape_pct_mean']:.1f}%"
               if r["repeat_spearman_mean"] is not None else "-")
        lo, hi = r["measured_range_ms"]
        lines.append(
            f"| {r['space']} | {r['statistic']} | {r['spearman']:.3f} | {r['mape_pct']:.1f}% | {rep} | "
            f"{r['one_round_vs_other_rounds_spearman_mean'] or float('nan'):.3f} | "
            f"{lo:.1f}-{hi:.1f} | {r['entries_built']} ({r['entries_after']}) / "
            f"{r['build_seconds']:.0f} | {r['first_predict_ms_median']:.0f} | "
            f"{r['cached_predict_us']:.2f} | {r['direct_measure_ms_median']:.0f} | "
            f"{r['first_predict_over_direct']:.2f} | {r['cached_predict_over_direct']:.1e} | "
            f"{r['spearman']:.3f} {'met' if r['target_met'] else 'NOT met'} |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--spaces", nargs="+", default=list(SPACES), choices=list(SPACES))
    ap.add_argument("--statistics", nargs="+", default=["median", "min"], choices=["median", "min"])
    ap.add_argument("--archs", type=int, default=50)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--build-n", type=int, default=24)
    ap.add_argument("--calibration", type=int, default=5)
    ap.add_argument("--layer-repeats", type=int, default=30)
    ap.add_argument("--cached-loops", type=int, default=20)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--no-write", action="store_true", help="print only (a quick check)")
    ap.add_argument("--report-only", action="store_true",
                    help="rewrite the README section from results/latency_table.json")
    args = ap.parse_args()
    if args.report_only:
        data = json.loads((Path(__file__).resolve().parent / "results" / "latency_table.json")
                          .read_text())
        saved = argparse.Namespace(**data["settings"])
        history = data.get("history") or previous_runs()
        write_results("latency_table", {**data, "history": history},
                      markdown(data["results"], saved) + "\n\n" + spread(history))
        return
    torch.set_num_threads(args.threads)
    load_before = os.getloadavg()
    rows = [row for name in args.spaces for row in run(name, args)]
    args.load_average = [round(x, 2) for x in (*load_before, *os.getloadavg())]
    table = markdown(rows, args)
    print(table)
    if not args.no_write:
        settings = {k: v for k, v in vars(args).items() if k != "archs_list"}
        history = previous_runs() + [{
            "when": time.strftime("%Y-%m-%d %H:%M"), "load_average": args.load_average,
            "spearman": {f"{r['space']}/{r['statistic']}": r["spearman"] for r in rows},
            "mape_pct": {f"{r['space']}/{r['statistic']}": r["mape_pct"] for r in rows}}]
        write_results("latency_table", {"settings": settings, "results": rows,
                                        "history": history}, table + "\n\n" + spread(history))


def previous_runs() -> list[dict]:
    """The summaries of earlier runs kept in the results file (every run is kept)."""
    path = Path(__file__).resolve().parent / "results" / "latency_table.json"
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return []
    if "history" in data:
        return list(data["history"])
    rows, load = data.get("results", []), data.get("settings", {}).get("load_average")
    if not rows or not load:       # a file from before the history was kept
        return []
    return [{"when": data.get("machine", {}).get("when"), "load_average": load,
             "spearman": {f"{r['space']}/{r['statistic']}": r["spearman"] for r in rows},
             "mape_pct": {f"{r['space']}/{r['statistic']}": r["mape_pct"] for r in rows}}]


def spread(history: list[dict]) -> str:
    """One line per space/statistic: the Spearman of every run so far, with its load."""
    lines = [f"Every run of this script so far ({len(history)}; Spearman, with the 1-minute load "
             "average at the start and the end of the run):", ""]
    for key in history[-1]["spearman"]:
        runs = [f"{h['spearman'][key]:.3f} ({h['load_average'][0]:.1f}-{h['load_average'][3]:.1f})"
                for h in history if key in h["spearman"]]
        lines.append(f"- {key}: " + ", ".join(runs))
    return "\n".join(lines)


if __name__ == "__main__":
    main()
