"""What travels to a worker and what a worker does with it.

Trials cross process boundaries as JSON, never as pickled user objects where
it can be helped: the space's JSON (sent once per worker and search), the
genome, the trial's seed and, in a multi-fidelity search, its fidelity and
reporting spec (the metric, the pruner and the snapshot it judges against:
:mod:`symnas.pruners`), so reports and pruning decisions happen in the
worker and come back with the outcome (its ``curve`` and ``pruned``).
The evaluator travels by its importable name (``module:qualname``), as
PyGlove JSON when it is a symbolic object, or pickled when it is a plain
picklable object (Ray: by Ray's own
serialization, so closures work there). A worker evaluates with the same
primitives as the searching process (:func:`symnas.trial.evaluate`).

Example::

    >>> import symnas as sn
    >>> space = sn.Space(dict(a=sn.oneof([1, 2])))
    >>> context = TrialContext(space, "operator:truth")
    >>> out = run_message(context.message(), {"id": 0, "genome": [1], "seed": 0})
    >>> out["value"]
    True
"""
from __future__ import annotations

import base64
import hashlib
import json
import os
import pickle
from typing import Any, Callable

from symnas.names import import_name
from symnas.recorder import CURRENT_TRIAL, ParentRef
from symnas.space import Space
from symnas.trial import evaluate, evaluator_call

__all__ = ["TrialContext", "evaluator_spec", "run_message", "trial_message"]


def _import_name(obj: Any) -> str | None:
    """``module:qualname`` if ``obj`` can be imported back by it, else None."""
    module, qual = getattr(obj, "__module__", None), getattr(obj, "__qualname__", None)
    if not module or not qual or "<" in qual:
        return None
    if module == "__main__":
        import __main__
        if not getattr(__main__, "__file__", None):
            return None
    try:
        return f"{module}:{qual}" if import_name(f"{module}:{qual}") is obj else None
    except Exception:  # noqa: BLE001
        return None


def evaluator_spec(evaluator: Any, *, by_value: bool = False) -> dict:
    """How an evaluator travels: ``import``, ``json`` or ``pickle`` (``object`` for Ray)."""
    import pyglove as pg
    if isinstance(evaluator, str):
        return {"import": evaluator}
    if isinstance(evaluator, pg.Symbolic):
        return {"json": pg.to_json(evaluator)}
    name = _import_name(evaluator)
    if name is not None and not (by_value and name.startswith("__main__:")):
        return {"import": name}
    if by_value:
        return {"object": evaluator}
    try:
        return {"pickle": base64.b64encode(pickle.dumps(evaluator)).decode()}
    except Exception as err:  # noqa: BLE001 - explained below
        raise TypeError(
            f"the evaluator {evaluator!r} cannot be sent to worker processes ({err}): define it "
            "as a module-level function (workers import it by name), or make it a PyGlove "
            "symbolic object, or run with executor='inline' or sn.executors.Ray().") from None


def _load_evaluator(spec: dict) -> Callable:
    if "import" in spec:
        return import_name(spec["import"])
    if "json" in spec:
        import pyglove as pg
        return pg.from_json(spec["json"])
    if "pickle" in spec:
        return pickle.loads(base64.b64decode(spec["pickle"]))
    return spec["object"]


class TrialContext:
    """What every trial of one search shares: the space and the evaluator.

    In-process executors use the objects; :meth:`message` is what travels to
    workers (built on first use, so an inline search never writes JSON).
    """

    def __init__(self, space: Any, evaluator: Any, timeout: float | None = None):
        self.space, self.evaluator, self.timeout = space, evaluator, timeout
        self._message: dict | None = None

    @classmethod
    def of(cls, space: Any, evaluator: Any, timeout: float | None = None) -> TrialContext:
        return cls(space, evaluator, timeout)

    def message(self, by_value: bool = False) -> dict:
        """The JSON-able context workers rebuild the space and evaluator from."""
        if self._message is None or by_value:
            data = self.space.to_json()
            traced = data.get("traced", "")
            if "<lambda>" in traced or "<locals>" in traced:
                raise ValueError(f"the traced space's function {traced!r} cannot be imported by "
                                 "worker processes; define it at module level.")
            text = json.dumps(data, sort_keys=True, default=str)
            key = (hashlib.sha1(text.encode()).hexdigest()[:16]
                   + f"-{id(self.evaluator):x}-{os.getpid()}")
            message = {"key": key, "space": data,
                       "evaluator": evaluator_spec(self.evaluator, by_value=by_value)}
            if by_value:
                return message
            self._message = message
        return self._message

    @property
    def key(self) -> str:
        return self.message()["key"]


def trial_message(trial: Any, parent: Any) -> dict:
    """A trial as it travels: id, genome, seed, the parent nested searches record under, and
    its fidelity and reporting spec (multi-fidelity searches)."""
    out = {"id": trial.id, "genome": list(trial.arch.genome), "seed": trial.seed,
           "parent": parent.to_json() if parent is not None and parent.durable else None}
    if getattr(trial, "fidelity", None) is not None:
        out["fidelity"] = trial.fidelity
    if getattr(trial, "report_spec", None) is not None:
        out["report"] = trial.report_spec
    return out


_CONTEXTS: dict[str, tuple[Any, Callable]] = {}


def _context(message: dict) -> tuple[Any, Callable]:
    key = message["key"]
    if key not in _CONTEXTS:
        space = Space.from_json(message["space"])
        _CONTEXTS.clear()   # one search at a time per worker
        _CONTEXTS[key] = (space, evaluator_call(_load_evaluator(message["evaluator"])))
    return _CONTEXTS[key]


def run_in_parent(call: Callable, arch: Any, seed: int | None, parent: ParentRef | None,
                  fidelity: Any = None, report: dict | None = None) -> Any:
    """:func:`symnas.trial.evaluate` with ``parent`` as the parent of nested searches.

    ``report`` is the trial's reporting spec: an evaluator that takes
    ``report=`` gets a :class:`~symnas.trial.Reporter` built from it.
    """
    reporter = None
    if report is not None and getattr(call, "reports", False):
        from symnas.pruners import reporter_for
        reporter = reporter_for(report)
    if parent is None:
        return evaluate(call, arch, seed, fidelity, reporter)
    token = CURRENT_TRIAL.set(parent)
    try:
        return evaluate(call, arch, seed, fidelity, reporter)
    finally:
        CURRENT_TRIAL.reset(token)


def run_message(context: dict, trial: dict) -> dict:
    """Evaluates one trial in a worker; returns a JSON-able outcome.

    ``context`` is :meth:`TrialContext.message`, ``trial`` is
    :func:`trial_message`.
    """
    from symnas.trial import Outcome, format_error
    try:
        space, call = _context(context)
        arch = space.arch(trial["genome"])
    except Exception as e:  # noqa: BLE001 - the trial fails, the worker lives on
        return Outcome(error=format_error(e)).to_json()
    parent = ParentRef.from_json(trial["parent"]) if trial.get("parent") else None
    outcome = run_in_parent(call, arch, trial.get("seed"), parent, trial.get("fidelity"),
                            trial.get("report"))
    if outcome.error is None and outcome.pruned is None and arch._value is not None:
        try:
            outcome.program = arch.program_json()
        except Exception:  # noqa: BLE001 - the genome still identifies it
            pass
    return outcome.to_json()


def _exit_with(pid: int) -> None:
    """Ends this worker when the searching process ``pid`` is gone (no orphans after a kill)."""
    import threading
    import time

    def watch() -> None:
        while True:
            time.sleep(0.5)
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                os._exit(1)
            except PermissionError:
                pass

    threading.Thread(target=watch, name="symnas-orphan-watch", daemon=True).start()


def worker_main(conn: Any, threads: int, parent_pid: int | None = None) -> None:
    """A worker process's loop: receive a context or a trial, send back its outcome."""
    import signal
    signal.signal(signal.SIGINT, signal.SIG_IGN)   # Ctrl-C is the searching process's to handle
    if parent_pid is not None:
        _exit_with(parent_pid)
    try:
        import torch
        torch.set_num_threads(threads)
    except ImportError:  # pragma: no cover
        pass
    context: dict = {}
    while True:
        try:
            kind, text = conn.recv()
        except (EOFError, OSError, KeyboardInterrupt):
            return
        if kind == "stop":
            return
        if kind == "context":
            context = json.loads(text)
            continue
        out = json.dumps(run_message(context, json.loads(text)), default=str)
        try:
            conn.send(out)
        except (BrokenPipeError, OSError):   # the searching process is gone
            return
