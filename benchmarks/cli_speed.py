"""`symnas ls` and `symnas show` on a 20,000-trial store, against plain sqlite3 on the same rows.

The store is written by the real search path (``sn.search`` of the NAS-Bench-201
table with ``dedup=False``, random search), so its rows are what users have.
Each command runs as a fresh subprocess (``python -m symnas ...``, import
included, as a user pays it); the references run in subprocesses in the same
loop, interleaved:

- ``python``: a bare interpreter start (the floor of any command);
- ``sqlite3 (every row)``: the stdlib ``sqlite3`` module reading every trial row
  of the experiment and parsing its metrics JSON -- what the CLI did before it
  asked SQL for the best rows;
- ``sqlite3 (same queries)``: the stdlib module running the queries ``ls`` runs.

The figure that counts is the ratio against the every-row reader, and the
absolute time against the target (under 1 s each). Each child also reports
whether torch, PyGlove or numpy were imported.

    python benchmarks/cli_speed.py [--trials 20000] [--repeats 5]
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _report import write_results

HEAVY = ("import sys; print('HEAVY', sorted({m.split('.')[0] for m in sys.modules} "
         "& {'torch', 'pyglove', 'numpy'}))")

EVERY_ROW = """
import json, sqlite3, sys
conn = sqlite3.connect(f"file:{sys.argv[1]}?mode=ro", uri=True)
rows = conn.execute("SELECT * FROM trials WHERE experiment=1 ORDER BY id").fetchall()
best = max((json.loads(r[6]) for r in rows if r[8] == 'done'), key=lambda m: m[sys.argv[2]])
print(len(rows), best[sys.argv[2]])
"""

SAME_QUERIES = """
import sqlite3, sys
conn = sqlite3.connect(f"file:{sys.argv[1]}?mode=ro", uri=True)
conn.execute("PRAGMA quick_check(1)").fetchall()
conn.execute("SELECT experiment, status, COUNT(*) FROM trials GROUP BY experiment, status").fetchall()
conn.execute("SELECT * FROM experiments ORDER BY id").fetchall()
path = '$."' + sys.argv[2] + '"'
print(conn.execute("SELECT * FROM trials WHERE experiment=1 AND status='done' AND "
                   "json_type(metrics, '$.\\"feasible\\"') IS NOT 'false' AND json_type(metrics, ?) "
                   "IN ('integer', 'real') ORDER BY json_extract(metrics, ?) DESC, id LIMIT 1",
                   (path, path)).fetchone()[0])
"""


def make_store(folder: str, trials: int) -> tuple[str, float]:
    import symnas as sn
    from symnas.evaluators import nb201
    path = os.path.join(folder, "nb201.sqlite")
    t0 = time.perf_counter()
    sn.search(sn.spaces.nasbench201(), "random", nb201.evaluator(), budget=trials, seed=0,
              dedup=False, storage=path, name="nb201", objective="valid200_cifar10", progress=False)
    return path, time.perf_counter() - t0


def timed(cmd: list[str]) -> tuple[float, str]:
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    seconds = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"{cmd} failed: {proc.stderr}")
    return seconds, proc.stdout


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--trials", type=int, default=20000)
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    py = sys.executable
    with tempfile.TemporaryDirectory(prefix="cli-speed-") as folder:
        path, build_s = make_store(folder, args.trials)
        metric = "valid200_cifar10"
        with_heavy = ["-c", "import sys; sys.argv = ['symnas', *sys.argv[1:]]; "
                      f"from symnas.cli import main; rc = main(); {HEAVY}; sys.exit(rc)"]
        cases = {
            "symnas ls": [py, *with_heavy, "ls", folder],
            "symnas show": [py, *with_heavy, "show", path],
            "python": [py, "-c", "pass"],
            "sqlite3 (every row)": [py, "-c", EVERY_ROW, path, metric],
            "sqlite3 (same queries)": [py, "-c", SAME_QUERIES, path, metric],
        }
        times: dict[str, list[float]] = {k: [] for k in cases}
        heavy: dict[str, str] = {}
        for _ in range(args.repeats):
            for name, cmd in cases.items():
                seconds, out = timed(cmd)
                times[name].append(seconds)
                for line in out.splitlines():
                    if line.startswith("HEAVY"):
                        heavy[name] = line[len("HEAVY "):]
        size_mb = os.path.getsize(path) / 2**20
    med = {k: statistics.median(v) for k, v in times.items()}
    ref = med["sqlite3 (every row)"]
    data = {"trials": args.trials, "store_mb": round(size_mb, 1), "build_s": round(build_s, 2),
            "repeats": args.repeats, "median_s": {k: round(v, 4) for k, v in med.items()},
            "all_s": {k: [round(x, 4) for x in v] for k, v in times.items()},
            "ratio_vs_every_row": {k: round(v / ref, 3) for k, v in med.items()},
            "heavy_imports": heavy, "target_s": 1.0}
    lines = [
        "### CLI speed (`cli_speed.py`)",
        "",
        f"A {args.trials:,}-trial store ({size_mb:.1f} MB, written by `sn.search` on the NB201 "
        f"table, `dedup=False`); each command a fresh subprocess, import included; median of "
        f"{args.repeats} interleaved runs. Reference: the stdlib `sqlite3` module in a subprocess "
        "reading every trial row and parsing its metrics (what `ls`/`show` did before SQL picked the "
        "best rows).",
        "",
        "| command | median s | ratio vs sqlite3 (every row) | torch / PyGlove / numpy imported | target |",
        "|---|---|---|---|---|",
    ]
    for k, v in med.items():
        target = ("< 1 s " + ("met" if v < 1.0 else "NOT met")) if k.startswith("symnas") else ""
        lines.append(f"| {k} | {v:.3f} | {v / ref:.2f} | {heavy.get(k, '-')} | {target} |")
    out = write_results("cli_speed", data, "\n".join(lines))
    print("\n".join(lines))
    print(json.dumps(data["median_s"]), out)


if __name__ == "__main__":
    main()
