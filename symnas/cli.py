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
    "fail": ("symnas.cli:Fail", "mark a running (hung or stale) trial failed so a resume skips it"),
    "recover": ("symnas.cli:Recover", "copy the readable experiments and trials of a damaged "
                "run into a new file"),
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
    try:
        return int(runner(args) or 0)
    except BrokenPipeError:           # `symnas show RUN | head`: the reader left; not an error
        sys.stderr.close()
        return 0


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


def _open_run(run: str, experiment: str | None, readonly: bool = True):
    """The store of a CLI ``RUN`` (read-only unless asked) and the experiment named."""
    from symnas.store import SQLiteStore, find_run
    store = SQLiteStore.open(find_run(run), readonly=readonly)
    return store, store.experiment(int(experiment) if experiment and experiment.isdigit()
                                   else experiment)


def _read_errors() -> tuple[type[BaseException], ...]:
    """What reading a store may raise: symnas's diagnosis, or SQLite meeting damage."""
    import sqlite3

    from symnas.records import StoreError
    return (StoreError, sqlite3.Error)


def _explain(run: str, err: BaseException) -> BaseException:
    """A damaged-file diagnosis for an SQLite error that reading met."""
    import sqlite3
    if isinstance(err, sqlite3.Error):
        from symnas.store import find_run
        from symnas.storecheck import explain
        return explain(find_run(run), err, write=False)
    return err


def _run_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("run", metavar="RUN", help="a store file, or a run name under runs/")
    p.add_argument("--experiment", "-e", default=None,
                   help="experiment name or id (default: the run's top-level experiment)")


def _fail(err: BaseException | str) -> int:
    print(f"symnas: {err}", file=sys.stderr)
    return 1


class Ls:
    """``symnas ls [DIR]``: one line per run: experiments, trials done/failed, best, created.

    A file that is not a readable store is skipped with a one-line warning on stderr.
    """

    @staticmethod
    def add_arguments(p: argparse.ArgumentParser) -> None:
        p.add_argument("dir", nargs="?", default="runs", help="folder of .sqlite runs (default runs/)")

    @staticmethod
    def run(args: argparse.Namespace) -> int:
        import glob
        import os

        from symnas.store import SQLiteStore
        from symnas.storecheck import StoreFileError
        if not os.path.isdir(args.dir):
            return _fail(f"no folder {args.dir!r}; pass the folder holding the runs (.sqlite files).")
        rows: list[list[Any]] = []
        for path in sorted(glob.glob(os.path.join(args.dir, "*.sqlite"))):
            name = os.path.splitext(os.path.basename(path))[0]
            try:
                store = SQLiteStore.open(path, readonly=True)
                try:
                    exps = store.experiments()
                    top = [e for e in exps if e.parent_experiment is None]
                    best = store.best(top[0]) if top else None
                finally:
                    store.close()         # a folder of many runs must not hold them all open
            except _read_errors() as err:
                err = _explain(path, err)
                why = err.reason if isinstance(err, StoreFileError) else str(err)
                print(f"symnas: skipped {path}: it {why} (symnas show {path} says more)",
                      file=sys.stderr)
                continue
            if not top:
                rows.append([name, 0, "-", "-", "-", "empty"])
                continue
            e = top[0]
            value = best.metrics[e.objectives[0].name] if best is not None else None
            rows.append([name, len(exps), f"{e.done}/{e.failed}", f"{e.trials}/{e.budget}",
                         f"{e.objectives[0].name}={_fmt(value)}", _when(e.created)])
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
        try:
            return Show._show(args)
        except _read_errors() as err:
            return _fail(_explain(args.run, err))

    @staticmethod
    def _show(args: argparse.Namespace) -> int:
        from symnas.trial import DONE, PRUNED
        store, e = _open_run(args.run, args.experiment)
        objs = e.objectives
        shown = store.top(e, args.limit or None)      # SQL: only the rows shown are read
        best = store.best(e)
        children = store.children(e)
        print(f"run {store.path}")
        print(_cut(f"experiment {e.name!r} (id {e.id}): {e.algorithm}, seed {e.seed}, "
                   f"objectives {', '.join(f'{o.mode} {o.name}' for o in objs)}, budget {e.budget}",
                   _width()))
        status = f"; {e.status}" if getattr(e, "status", None) else ""
        pruned = f", {e.pruned} pruned" if e.pruned else ""
        print(f"trials: {e.trials} ({e.done} done, {e.failed} failed{pruned}, {e.running} running)"
              f"{status}" + (f"; parent: experiment {e.parent_experiment} trial {e.parent_trial}"
                             if e.parent_experiment is not None else ""))
        if e.fidelity:
            print(f"fidelity: levels {', '.join(_fmt(v) for v in e.fidelity)}"
                  + (f"; pruner {e.pruner.get('name')}" if e.pruner else "")
                  + f"; budget in full evaluations, {_fmt(store.spent(e))} spent")
        fid = bool(e.fidelity)
        rows = []
        for t in shown:
            obj_vals = [_fmt(t.metrics.get(x.name)) for x in objs]
            info = (" ".join(f"{k}={v}" for k, v in (t.decisions or {}).items()) if t.status == DONE
                    else (t.error or "").splitlines()[0] if t.error else str(t.genome))
            state = t.status
            if t.status == PRUNED and t.curve:
                state = f"pruned@{_fmt(t.curve[-1][0])}"     # stopped at this step (epoch)
            if t.continues is not None:
                info = f"(continues {t.continues}) {info}"
            rung = [_fmt(t.fidelity)] if fid else []
            rows.append([t.id, state, *rung, *obj_vals, _fmt(t.seconds), t.attempts, info])
        print(_table(["id", "status", *(["fidelity"] if fid else []), *[x.name for x in objs],
                      "seconds", "tries", "decisions / error"], rows))
        if args.limit and e.trials > args.limit:
            print(f"... {e.trials - args.limit} more (--limit 0 shows all)")
        o = objs[0]
        if best is not None:
            print(_cut(f"best: trial {best.id}, {o.name}={_fmt(best.metrics[o.name])}, "
                       f"{best.decisions}", _width()))
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
        try:
            store, e = _open_run(args.run, args.experiment)
            paths = store.result(e).export(args.out, k=args.top_k)
        except _read_errors() as err:
            return _fail(_explain(args.run, err))
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
        try:
            store, e = _open_run(args.run, args.experiment)
            result = store.result(e)
        except _read_errors() as err:
            return _fail(_explain(args.run, err))
        out = args.out or os.path.dirname(store.path)
        stem = os.path.join(out, e.name.replace("/", "_"))
        paths = [plots.best_so_far(result, f"{stem}_best_so_far.png")]
        if len(result.objectives) >= 2:
            paths.append(plots.pareto(result, f"{stem}_pareto.png"))
        for p in paths:
            print(p)
        return 0


class Fail:
    """``symnas fail RUN TRIAL [--reason TEXT]``: gives up on a running trial.

    The trial is recorded failed with the reason, so a resumed search does not
    run it again. A trial whose process is still alive is refused unless
    ``--force`` (that process would record its own result over it).
    """

    @staticmethod
    def add_arguments(p: argparse.ArgumentParser) -> None:
        _run_args(p)
        p.add_argument("trial", metavar="TRIAL", type=int, help="the trial id (symnas show RUN)")
        p.add_argument("--reason", "-r", default="given up by hand (symnas fail)",
                       help="the error text recorded for the trial")
        p.add_argument("--force", action="store_true",
                       help="fail it even though the process running it is alive")

    @staticmethod
    def run(args: argparse.Namespace) -> int:
        from symnas.writes import owner_alive
        try:
            store, e = _open_run(args.run, args.experiment, readonly=False)
            row = store.conn.execute("SELECT owner, heartbeat FROM trials WHERE experiment=? AND "
                                     "id=?", (e.id, args.trial)).fetchone()
            if row is not None and owner_alive(row["owner"], row["heartbeat"]) and not args.force:
                return _fail(f"trial {args.trial} of {e.name!r} is being run by {row['owner']}, "
                             "which is alive; stop that process first (or pass --force).")
            store.fail_trial(e.id, args.trial, args.reason)
        except _read_errors() as err:
            return _fail(_explain(args.run, err))
        print(f"trial {args.trial} of {e.name!r} is failed ({args.reason}); a resumed search "
              "will not run it again.")
        return 0


class Recover:
    """``symnas recover RUN NEW.sqlite``: the readable rows of a damaged run, in a new file."""

    @staticmethod
    def add_arguments(p: argparse.ArgumentParser) -> None:
        p.add_argument("run", metavar="RUN", help="the damaged store file (or a run name under runs/)")
        p.add_argument("new", metavar="NEW", help="the new store file to write")

    @staticmethod
    def run(args: argparse.Namespace) -> int:
        from symnas.recover import recover
        from symnas.store import find_run
        try:
            print(recover(find_run(args.run), args.new))
        except _read_errors() as err:
            return _fail(err)
        return 0


if __name__ == "__main__":
    sys.exit(main())
