"""Where trials run: in this process, in local worker processes, or on Ray.

``sn.search(..., executor="process:4")`` keeps four trials in flight in four
local worker processes; ``executor=sn.executors.Ray(num_workers=8)`` runs them
as Ray tasks (``pip install "symnas[ray]"``). The algorithm is told each
result as soon as it arrives and asked for the next proposal.

Trials travel as JSON: the space's JSON (sent once per worker), the genome and
the trial's seed; workers rebuild the Space once and the architecture from the
genome. The evaluator travels by its importable name (``module:qualname``),
as PyGlove JSON when it is a symbolic object, or pickled when it is a plain
picklable object (Ray: by Ray's own serialization, so closures work there).

A worker that dies (a segfault, ``os._exit``, out of memory) fails its trial;
the search retries it ``max_retries`` times (default once) in a new worker.
An evaluator that raises fails the trial at once (no retry).

Example::

    result = sn.search(space, algo, mypkg.evaluate, budget=100, executor="process:2")
    result = sn.search(space, algo, mypkg.evaluate, budget=100,
                       executor=sn.executors.Ray(num_workers=8, resources_per_trial={"num_cpus": 1}))
"""
from __future__ import annotations

import atexit
import base64
import hashlib
import json
import multiprocessing
import os
import pickle
import time
from multiprocessing.connection import wait as _wait_any
from typing import Any, Callable

__all__ = ["Executor", "ProcessPool", "Ray", "TrialContext", "Outcome", "get", "evaluate"]


# ---- what travels ------------------------------------------------------------------------
def _import_name(obj: Any) -> str | None:
    """``module:qualname`` if ``obj`` can be imported back by it, else None."""
    module, qual = getattr(obj, "__module__", None), getattr(obj, "__qualname__", None)
    if not module or not qual or "<" in qual:
        return None
    if module == "__main__":
        import __main__
        if not getattr(__main__, "__file__", None):
            return None
    from symnas.space import import_name
    try:
        return f"{module}:{qual}" if import_name(f"{module}:{qual}") is obj else None
    except Exception:  # noqa: BLE001
        return None


def evaluator_spec(evaluator: Any, *, by_value: bool = False) -> dict:
    """How an evaluator travels to workers: ``import``, ``json`` or ``pickle`` (``object`` for Ray)."""
    import pyglove as pg
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
        from symnas.space import import_name
        return import_name(spec["import"])
    if "json" in spec:
        import pyglove as pg
        return pg.from_json(spec["json"])
    if "pickle" in spec:
        return pickle.loads(base64.b64decode(spec["pickle"]))
    return spec["object"]


class TrialContext:
    """What every trial of one search shares: the space JSON and the evaluator."""

    def __init__(self, key: str, space: dict, evaluator: Any):
        self.key, self.space, self.evaluator = key, space, evaluator

    @classmethod
    def of(cls, space: Any, evaluator: Any) -> "TrialContext":
        data = space.to_json()
        if "traced" in data and ("<lambda>" in data["traced"] or "<locals>" in data["traced"]):
            raise ValueError(f"the traced space's function {data['traced']!r} cannot be imported "
                             "by worker processes; define it at module level.")
        text = json.dumps(data, sort_keys=True, default=str)
        key = hashlib.sha1(text.encode()).hexdigest()[:16] + f"-{id(evaluator):x}-{os.getpid()}"
        return cls(key, data, evaluator)

    def message(self, by_value: bool = False) -> dict:
        return {"key": self.key, "space": self.space,
                "evaluator": evaluator_spec(self.evaluator, by_value=by_value)}


class Outcome:
    """A trial's result from a worker: the evaluator's value or error, or a crash."""

    __slots__ = ("value", "error", "seconds", "crashed", "program")

    def __init__(self, value: Any = None, error: str | None = None, seconds: float = 0.0,
                 crashed: bool = False, program: Any = None):
        self.value, self.error, self.seconds = value, error, seconds
        self.crashed, self.program = crashed, program

    @classmethod
    def from_json(cls, d: dict) -> "Outcome":
        return cls(d.get("value"), d.get("error"), d.get("seconds", 0.0), False, d.get("program"))

    def apply(self, trial: Any, objectives: Any) -> Any:
        """Sets the trial's status, metrics and reward (as ``run_trial`` would)."""
        from symnas.search import FAILED, settle_or_fail
        trial.seconds = self.seconds
        if self.error is not None:
            trial.status, trial.error = FAILED, self.error
            return trial
        return settle_or_fail(trial, self.value, objectives)


# ---- the worker side ---------------------------------------------------------------------
_CONTEXTS: dict[str, tuple[Any, Callable]] = {}


def _context(message: dict) -> tuple[Any, Callable]:
    key = message["key"]
    if key not in _CONTEXTS:
        from symnas.search import evaluator_call
        from symnas.space import Space
        space = Space.from_json(message["space"])
        _CONTEXTS.clear()   # one search at a time per worker
        _CONTEXTS[key] = (space, evaluator_call(_load_evaluator(message["evaluator"])))
    return _CONTEXTS[key]


def evaluate(context: dict, trial: dict) -> dict:
    """Evaluates one trial in a worker; returns a JSON-able outcome.

    ``context`` is :meth:`TrialContext.message`, ``trial`` is
    ``{"id", "genome", "seed", "parent"}``.
    """
    from symnas.result import _jsonable
    from symnas.search import format_error
    t0 = time.perf_counter()
    out: dict[str, Any] = {}
    try:
        space, call = _context(context)
        arch = space.arch(trial["genome"])
        if trial.get("parent"):
            from symnas import store
            token = store.CURRENT_TRIAL.set(store.ParentRef.from_json(trial["parent"]))
            try:
                value = call(arch, trial.get("seed"))
            finally:
                store.CURRENT_TRIAL.reset(token)
        else:
            value = call(arch, trial.get("seed"))
        out["value"] = _jsonable(value)
        if arch._value is not None:
            try:
                out["program"] = arch.program_json()
            except Exception:  # noqa: BLE001
                pass
    except Exception as e:  # noqa: BLE001 - the trial fails, the worker lives on
        out["error"] = format_error(e)
    out["seconds"] = time.perf_counter() - t0
    return out


def _worker_main(conn: Any, threads: int) -> None:
    import signal
    signal.signal(signal.SIGINT, signal.SIG_IGN)   # Ctrl-C is the searching process's to handle
    try:
        import torch
        torch.set_num_threads(threads)
    except ImportError:  # pragma: no cover
        pass
    context = None
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
        out = json.dumps(evaluate(context, json.loads(text)), default=str)
        try:
            conn.send(out)
        except (BrokenPipeError, OSError):   # the searching process is gone
            return


# ---- executors ---------------------------------------------------------------------------
class Executor:
    """The protocol of the search loop's executors.

    ``slots`` trials may be in flight; ``start(context)`` before the first
    ``submit(trial, parent)``; ``wait()`` blocks until at least one trial ends
    and returns ``[(trial_id, Outcome)]``; ``shutdown()`` at the end.
    """

    slots: int = 1

    def start(self, context: TrialContext) -> None:
        raise NotImplementedError

    def submit(self, trial: Any, parent: Any = None) -> None:
        raise NotImplementedError

    def wait(self) -> list[tuple[int, Outcome]]:
        raise NotImplementedError

    def shutdown(self) -> None:
        pass


def _trial_message(trial: Any, parent: Any) -> dict:
    return {"id": trial.id, "genome": list(trial.arch.genome), "seed": trial.seed,
            "parent": parent.to_json() if parent is not None else None}


class _Worker:
    def __init__(self, mp: Any, threads: int):
        self.conn, child = mp.Pipe()
        self.process = mp.Process(target=_worker_main, args=(child, threads), daemon=False,
                                  name="symnas-worker")
        self.process.start()
        child.close()
        self.context_key: str | None = None
        self.trial: int | None = None
        self.started = 0.0

    def stop(self) -> None:
        try:
            self.conn.send(("stop", ""))
        except (OSError, BrokenPipeError):
            pass
        self.process.join(timeout=5)
        if self.process.is_alive():
            self.process.kill()
            self.process.join()
        self.conn.close()


class ProcessPool(Executor):
    """``workers`` local worker processes, one trial each at a time.

    Workers are fresh processes, never forks of the searching process (no
    inherited threads, CUDA state or open files): on Linux and macOS they fork
    from a clean *forkserver* that has imported symnas and torch once, so a
    new or replacement worker starts in milliseconds; elsewhere they are
    spawned (``start_method="spawn"`` forces that everywhere).

    Workers start on first use and stay up between searches (so nested or
    repeated searches do not pay the start-up again) until :meth:`close` or
    the end of the program. ``"process:N"`` names one shared pool per ``N``.

    Example::

        sn.search(space, algo, mypkg.evaluate, budget=40, executor=ProcessPool(2))
        sn.search(space, algo, mypkg.evaluate, budget=40, executor="process:2")   # the same
    """

    def __init__(self, workers: int = 2, threads_per_worker: int | None = None,
                 start_method: str | None = None):
        if workers < 1:
            raise ValueError(f"a process pool needs at least 1 worker, got {workers}.")
        self.slots = workers
        self.threads = threads_per_worker or max(1, (os.cpu_count() or 1) // workers)
        if start_method is None:
            start_method = ("forkserver" if "forkserver" in multiprocessing.get_all_start_methods()
                            else "spawn")
        if start_method not in ("forkserver", "spawn"):
            raise ValueError(f"start_method must be 'forkserver' or 'spawn' (workers must not be "
                             f"forks of the searching process), got {start_method!r}.")
        self._mp = multiprocessing.get_context(start_method)
        if start_method == "forkserver":
            self._mp.set_forkserver_preload(["symnas.executors", "symnas.space", "symnas.search"])
        self._workers: list[_Worker] = []
        self._context: TrialContext | None = None
        self._message: str | None = None

    def start(self, context: TrialContext) -> None:
        self._context = context
        self._message = json.dumps(context.message(), default=str)

    def _idle(self) -> _Worker:
        for w in list(self._workers):
            if w.trial is None:
                if w.process.is_alive():
                    return w
                self._workers.remove(w)          # died while idle (killed from outside)
                w.conn.close()
        w = _Worker(self._mp, self.threads)
        self._workers.append(w)
        return w

    def submit(self, trial: Any, parent: Any = None) -> None:
        message = json.dumps(_trial_message(trial, parent))
        for _ in range(2):
            w = self._idle()
            try:
                if w.context_key != self._context.key:
                    w.conn.send(("context", self._message))
                    w.context_key = self._context.key
                w.conn.send(("trial", message))
                break
            except (BrokenPipeError, OSError):   # it died just now: use a new one
                self._workers.remove(w)
                w.process.kill()
                w.conn.close()
        else:
            raise RuntimeError("could not start a worker process for the process pool.")
        w.trial = trial.id
        w.started = time.perf_counter()

    def wait(self) -> list[tuple[int, Outcome]]:
        busy = [w for w in self._workers if w.trial is not None]
        if not busy:
            return []
        ready = set(_wait_any([w.conn for w in busy] + [w.process.sentinel for w in busy]))
        out = []
        for w in busy:
            if w.conn not in ready and w.process.sentinel not in ready:
                continue
            trial_id, w.trial = w.trial, None
            try:
                if w.conn.poll():
                    out.append((trial_id, Outcome.from_json(json.loads(w.conn.recv()))))
                    continue
            except (EOFError, OSError):
                pass
            w.process.join(timeout=5)
            code = w.process.exitcode
            out.append((trial_id, Outcome(
                error=f"WorkerDied: the worker process running trial {trial_id} died "
                      f"(exit code {code}).", seconds=time.perf_counter() - w.started,
                crashed=True)))
            w.conn.close()
            self._workers.remove(w)
        return out

    def shutdown(self) -> None:
        """Ends this search's use: workers still busy (an interrupted search) are stopped."""
        for w in [w for w in self._workers if w.trial is not None]:
            w.process.kill()
            w.stop()
            self._workers.remove(w)

    def close(self) -> None:
        """Stops every worker process."""
        for w in self._workers:
            w.stop()
        self._workers = []


_POOLS: dict[int, ProcessPool] = {}


@atexit.register
def _close_pools() -> None:
    for pool in _POOLS.values():
        pool.close()
    _POOLS.clear()


class Ray(Executor):
    """Trials as Ray tasks, ``num_workers`` in flight (``pip install "symnas[ray]"``).

    Connects to ``address`` (a running cluster; ``"auto"`` finds one) or, when
    Ray is not initialized yet and ``address`` is None, starts a local instance.
    ``resources_per_trial`` are Ray task options such as
    ``{"num_cpus": 1, "num_gpus": 0.5}``.

    Example::

        sn.search(space, algo, evaluate, budget=200,
                  executor=sn.executors.Ray(num_workers=16, resources_per_trial={"num_gpus": 1}))
    """

    def __init__(self, address: str | None = None, num_workers: int = 2,
                 resources_per_trial: dict | None = None, init_kwargs: dict | None = None):
        if num_workers < 1:
            raise ValueError(f"Ray needs num_workers >= 1, got {num_workers}.")
        self.address, self.slots = address, num_workers
        self.resources = dict(resources_per_trial or {"num_cpus": 1})
        self.init_kwargs = dict(init_kwargs or {})
        self._refs: dict[Any, tuple[int, float]] = {}

    def __repr__(self) -> str:
        return f"Ray(address={self.address!r}, num_workers={self.slots}, resources_per_trial={self.resources})"

    @staticmethod
    def _ray():
        try:
            import ray
        except ImportError:
            raise ImportError("sn.executors.Ray needs Ray: pip install 'symnas[ray]' "
                              "(or pip install 'ray[default]').") from None
        return ray

    def start(self, context: TrialContext) -> None:
        ray = self._ray()
        if not ray.is_initialized():
            kw = dict(self.init_kwargs)
            if self.address is None:   # a local instance: no dashboard unless asked for
                kw.setdefault("include_dashboard", False)
            ray.init(address=self.address, **kw)
        self._context_ref = ray.put(context.message(by_value=True))
        self._fn = ray.remote(max_retries=0, **self.resources)(_ray_evaluate)
        self._refs = {}

    def submit(self, trial: Any, parent: Any = None) -> None:
        ref = self._fn.remote(self._context_ref, _trial_message(trial, parent))
        self._refs[ref] = (trial.id, time.perf_counter())

    def wait(self) -> list[tuple[int, Outcome]]:
        ray = self._ray()
        if not self._refs:
            return []
        done, _ = ray.wait(list(self._refs), num_returns=1)
        out = []
        for ref in done:
            trial_id, t0 = self._refs.pop(ref)
            try:
                out.append((trial_id, Outcome.from_json(ray.get(ref))))
            except ray.exceptions.RayError as e:   # the worker died or the task was lost
                out.append((trial_id, Outcome(
                    error=f"WorkerDied: the Ray worker running trial {trial_id} failed: "
                          f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}",
                    seconds=time.perf_counter() - t0, crashed=True)))
        return out

    def shutdown(self) -> None:
        ray = self._ray()
        for ref in self._refs:
            ray.cancel(ref, force=True)
        self._refs = {}


def _ray_evaluate(context: dict, trial: dict) -> dict:
    return evaluate(context, trial)


def get(executor: Any) -> Executor | None:
    """An executor from ``"inline"`` (None: the serial loop), ``"process:N"`` or an instance."""
    if executor is None or executor == "inline":
        return None
    if isinstance(executor, Executor):
        return executor
    if isinstance(executor, str):
        kind, _, n = executor.partition(":")
        if kind in ("process", "processes"):
            try:
                workers = int(n) if n else (os.cpu_count() or 1)
            except ValueError:
                workers = 0
            if workers > 0:
                if workers not in _POOLS:
                    _POOLS[workers] = ProcessPool(workers)
                return _POOLS[workers]
        if kind == "ray":
            try:
                return Ray(num_workers=int(n) if n else 2)
            except ValueError:
                pass
    raise ValueError(f"unknown executor {executor!r}: use 'inline', 'process:N' (N local worker "
                     "processes), 'ray:N', or sn.executors.Ray(num_workers=N).")
