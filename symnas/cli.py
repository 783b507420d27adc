"""The ``symnas`` command.

Subcommands register themselves in :data:`COMMANDS` as
``name -> (add_arguments(parser), run(args) -> int)``.

Example::

    symnas demo            # the main job: every algorithm on the NAS-Bench-201 table
    python -m symnas demo
"""
from __future__ import annotations

import argparse
import importlib
import sys
from typing import Any, Callable, Sequence

# name -> "module:function" providing (add_arguments, run); imported lazily.
# "module:attr" names an object with add_arguments and run inside a module.
COMMANDS: dict[str, tuple[str, str]] = {
    "demo": ("symnas.demo", "the main job: search NAS-Bench-201's table with every algorithm"),
    "ls": ("symnas.cli:Ls", "list the runs (experiment stores) in a folder (default runs/)"),
    "show": ("symnas.cli:Show", "print a run's trials and its best architecture"),
    "export": ("symnas.cli:Export", "write a run's top-k architectures as JSON for sn.load"),
    "plot": ("symnas.cli:Plot", "write PNG plots of a run: best so far, Pareto front"),
}


def _command(target: str):
    module, _, attr = target.partition(":")
    obj = importlib.import_module(module)
    return getattr(obj, attr) if attr else obj


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(prog="symnas", description="symbolic NAS for PyTorch")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    parsers = {name: sub.add_parser(name, help=help_text)
               for name, (_, help_text) in COMMANDS.items()}
    # Only the chosen command's module is imported (fast start, and one broken command
    # does not break the others).
    chosen = next((a for a in argv if not a.startswith("-")), None)
    runner: Callable | None = None
    if chosen in COMMANDS:
        cmd = _command(COMMANDS[chosen][0])
        cmd.add_arguments(parsers[chosen])
        runner = cmd.run
    args = parser.parse_args(argv)
    if not args.command or runner is None:
        parser.print_help()
        return 2
    return int(runner(args) or 0)


# ---- run commands: ls, show, export, plot -------------------------------------------------
def _width() -> int:
    import shutil
    return max(60, shutil.get_terminal_size((100, 24)).columns)


def _cut(text: str, n: int) -> str:
    text = str(text).replace("\n", " ")
    return text if len(text) <= n else text[:max(0, n - 1)] + "…"


def _table(header: Sequence[str], rows: Sequence[Sequence[Any]], width: int | None = None) -> str:
    """Left-aligned columns; the last column is cut to fit the terminal."""
    width = width or _width()
    cells = [[str(c) for c in r] for r in [header, *rows]]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header) - 1)]
    lines = []
    for r in cells:
        head = "".join(c.ljust(w + 2) for c, w in zip(r, widths))
        lines.append(_cut(head + r[-1], width).rstrip())
    return "\n".join(lines)


def _fmt(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


def _when(t: float | None) -> str:
    import time
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(t)) if t else "-"


def _open_run(run: str, experiment: str | None):
    from symnas.store import Store, find_run
    store = Store.open(find_run(run))
    return store, store.experiment(int(experiment) if experiment and experiment.isdigit()
                                   else experiment)


def _run_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("run", metavar="RUN", help="a store file, or a run name under runs/")
    p.add_argument("--experiment", "-e", default=None,
                   help="experiment name or id (default: the run's top-level experiment)")


def _fail(err: Exception) -> int:
    print(f"symnas: {err}", file=sys.stderr)
    return 1


class Ls:
    """``symnas ls [DIR]``: one line per run: experiments, trials done/failed, best, created."""

    @staticmethod
    def add_arguments(p: argparse.ArgumentParser) -> None:
        p.add_argument("dir", nargs="?", default="runs", help="folder of .sqlite runs (default runs/)")

    @staticmethod
    def run(args: argparse.Namespace) -> int:
        import glob
        import os
        from symnas.store import Store, StoreError, best_value
        if not os.path.isdir(args.dir):
            return _fail(f"no folder {args.dir!r}; pass the folder holding the runs (.sqlite files).")
        rows = []
        for path in sorted(glob.glob(os.path.join(args.dir, "*.sqlite"))):
            name = os.path.splitext(os.path.basename(path))[0]
            try:
                store = Store.open(path)
                exps = store.experiments()
            except StoreError:
                rows.append([name, "-", "-", "-", "-", "not a symnas store"])
                continue
            top = [e for e in exps if e.parent_experiment is None]
            if not top:
                rows.append([name, 0, "-", "-", "-", "empty"])
                continue
            e = top[0]
            best = best_value(e, store.trials(e))
            rows.append([name, len(exps), f"{e.done}/{e.failed}", f"{e.trials}/{e.budget}",
                         f"{e.objectives[0].name}={_fmt(best)}", _when(e.created)])
        if not rows:
            print(f"no runs in {args.dir!r}")
            return 0
        print(_table(["run", "experiments", "done/failed", "trials/budget", "best", "created"], rows))
        return 0


class Show:
    """``symnas show RUN``: the experiment, its trials (cut to the terminal) and the best."""

    @staticmethod
    def add_arguments(p: argparse.ArgumentParser) -> None:
        _run_args(p)
        p.add_argument("--limit", type=int, default=40,
                       help="show at most this many trials, the best ones first (0: all)")

    @staticmethod
    def run(args: argparse.Namespace) -> int:
        from symnas.store import StoreError, best_value
        try:
            store, e = _open_run(args.run, args.experiment)
        except StoreError as err:
            return _fail(err)
        trials = store.trials(e)
        objs = e.objectives
        print(f"run {store.path}")
        print(_cut(f"experiment {e.name!r} (id {e.id}): {e.algorithm}, seed {e.seed}, "
                   f"objectives {', '.join(f'{o.mode} {o.name}' for o in objs)}, budget {e.budget}",
                   _width()))
        print(f"trials: {e.trials} ({e.done} done, {e.failed} failed, {e.running} running)"
              + (f"; parent: experiment {e.parent_experiment} trial {e.parent_trial}"
                 if e.parent_experiment is not None else ""))
        o = objs[0]
        key = {"max": -1, "min": 1}[o.mode]
        shown = sorted(trials, key=lambda t: (t.status != "done",
                                              key * float(t.metrics.get(o.name, 0) or 0)))
        if args.limit:
            shown = shown[:args.limit]
        rows = []
        for t in shown:
            obj_vals = [_fmt(t.metrics.get(x.name)) for x in objs]
            info = (" ".join(f"{k}={v}" for k, v in (t.decisions or {}).items()) if t.status == "done"
                    else (t.error or "").splitlines()[0] if t.error else str(t.genome))
            rows.append([t.id, t.status, *obj_vals, _fmt(t.seconds), t.attempts, info])
        print(_table(["id", "status", *[x.name for x in objs], "seconds", "tries",
                      "decisions / error"], rows))
        if args.limit and len(trials) > args.limit:
            print(f"... {len(trials) - args.limit} more (--limit 0 shows all)")
        best = best_value(e, trials)
        if best is not None:
            b = next(t for t in trials if t.status == "done" and t.metrics.get(o.name) == best)
            print(_cut(f"best: trial {b.id}, {o.name}={_fmt(best)}, {b.decisions}", _width()))
        children = store.children(e)
        if children:
            print(f"{len(children)} nested experiments (symnas show {args.run} -e NAME): "
                  + _cut(", ".join(c.name for c in children), _width() - 40))
        return 0


class Export:
    """``symnas export RUN --top-k K --out DIR``: architecture JSON files that sn.load rebuilds."""

    @staticmethod
    def add_arguments(p: argparse.ArgumentParser) -> None:
        _run_args(p)
        p.add_argument("--top-k", "-k", type=int, default=1, help="how many of the best (default 1)")
        p.add_argument("--out", "-o", default="exported", help="output folder (default exported/)")

    @staticmethod
    def run(args: argparse.Namespace) -> int:
        from symnas.store import StoreError
        try:
            store, e = _open_run(args.run, args.experiment)
            paths = store.result(e).export(args.out, k=args.top_k)
        except StoreError as err:
            return _fail(err)
        for p in paths:
            print(p)
        return 0


class Plot:
    """``symnas plot RUN``: best-so-far PNG, and the Pareto front with two objectives."""

    @staticmethod
    def add_arguments(p: argparse.ArgumentParser) -> None:
        _run_args(p)
        p.add_argument("--out", "-o", default=None, help="output folder (default: beside the run)")

    @staticmethod
    def run(args: argparse.Namespace) -> int:
        import os
        from symnas import plots
        from symnas.store import StoreError
        try:
            store, e = _open_run(args.run, args.experiment)
            result = store.result(e)
        except StoreError as err:
            return _fail(err)
        out = args.out or os.path.dirname(store.path)
        stem = os.path.join(out, e.name.replace("/", "_"))
        paths = [plots.best_so_far(result, f"{stem}_best_so_far.png")]
        if len(result.objectives) >= 2:
            paths.append(plots.pareto(result, f"{stem}_pareto.png"))
        for p in paths:
            print(p)
        return 0


if __name__ == "__main__":
    sys.exit(main())
