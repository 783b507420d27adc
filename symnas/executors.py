"""Where trials run: in this process, in local worker processes, or on Ray.

Each executor implements :class:`symnas.protocols.Executor` (slots, submit,
wait, shutdown; its guarantees are written there). ``"inline"`` runs one trial
at a time in the searching process; ``"process:4"`` keeps four trials in
flight in four local worker processes; ``sn.executors.Ray(num_workers=8)``
runs them as Ray tasks (``pip install "symnas[ray]"``). The algorithm is told
each result as soon as it arrives and asked for the next proposal. What
travels to workers, and how, is :mod:`symnas.worker`.

Multi-fidelity trials work under every executor: the fidelity and the
reporting spec travel with the trial; intermediate values and the pruning
decision are made where the trial runs and come back with its outcome
(:mod:`symnas.pruners`). A Task continues an architecture's training from its
checkpoint in the same process (inline), or in any process when its
``checkpoints=`` folder is shared (workers on one machine, or a shared file
system for Ray); without one, a promoted trial that lands in another worker
trains from the start to the same weights, only slower.

A worker that dies (a segfault, ``os._exit``, out of memory) fails its trial
with ``crashed=True``; the search retries it ``max_retries`` times (default
once) in a new worker. An evaluator that raises fails the trial at once.

Executors are named in :data:`EXECUTORS` (``inline``, ``process``, ``ray``);
``"name:N"`` passes N (the workers) to the factory.

Example::

    >>> get("inline").slots, get("process:2").slots
    (1, 2)

    result = sn.search(space, algo, mypkg.evaluate, budget=100, executor="process:2")
    result = sn.search(space, algo, mypkg.evaluate, budget=100,
                       executor=sn.executors.Ray(num_workers=8, resources_per_trial={"num_cpus": 1}))
"""
from __future__ import annotations

import atexit
import json
import logging
import multiprocessing
import os
import time
from multiprocessing.connection import wait as _wait_any
from typing import Any

from symnas.protocols import Executor
from symnas.registry import EXECUTORS
from symnas.trial import Outcome, evaluator_call, time_limit
from symnas.worker import TrialContext, run_in_parent, run_message, trial_message, worker_main

logger = logging.getLogger("symnas")

__all__ = ["Executor", "Inline", "ProcessPool", "Ray", "TrialContext", "Outcome", "get"]


@EXECUTORS.register("inline", "serial")
class Inline(Executor):
    """One trial at a time, in the searching process (the default).

    ``submit`` queues the trial; ``wait`` evaluates it and returns its outcome,
    so every executor takes the same path through the search loop.
    """

    slots = 1

    def __init__(self) -> None:
        self._queue: list[tuple[Any, Any]] = []
        self._call: Any = None
        self._timeout: float | None = None

    def start(self, context: TrialContext) -> None:
        self._call = evaluator_call(context.evaluator)
        self._queue = []
        self._timeout = context.timeout

    def submit(self, trial: Any, parent: Any = None) -> None:
        self._queue.append((trial, parent))

    def wait(self) -> list[tuple[int, Outcome]]:
        if not self._queue:
            return []
        trial, parent = self._queue.pop(0)
        run = (self._call, trial.arch, trial.seed, parent, trial.fidelity, trial.report_spec)
        if self._timeout is None:
            return [(trial.id, run_in_parent(*run))]
        with time_limit(self._timeout) as enforced:
            if not enforced:
                logger.warning("trial_timeout is not enforced inline outside the main thread of "
                               "a POSIX process; use executor='process:1' to enforce it.")
            return [(trial.id, run_in_parent(*run))]

    def shutdown(self) -> None:
        self._queue = []

    def __repr__(self) -> str:
        return "Inline()"


class _Worker:
    def __init__(self, mp: Any, threads: int):
        self.conn, child = mp.Pipe()
        self.process = mp.Process(target=worker_main, args=(child, threads, os.getpid()),
                                  daemon=False, name="symnas-worker")
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
            self._mp.set_forkserver_preload(["symnas.executors", "symnas.worker", "symnas.engine"])
        self._workers: list[_Worker] = []
        self._context: TrialContext | None = None
        self._message: str | None = None
        self._timeout: float | None = None

    def start(self, context: TrialContext) -> None:
        self._context = context
        self._message = json.dumps(context.message(), default=str)
        self._key = context.key
        self._timeout = context.timeout

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
        message = json.dumps(trial_message(trial, parent))
        for _ in range(2):
            w = self._idle()
            try:
                if w.context_key != self._key:
                    w.conn.send(("context", self._message))
                    w.context_key = self._key
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
        limit = None
        if self._timeout is not None:
            limit = max(0.0, min(w.started for w in busy) + self._timeout - time.perf_counter())
        ready = set(_wait_any([w.conn for w in busy] + [w.process.sentinel for w in busy],
                              timeout=limit))
        out = self._expired(busy, ready)
        for w in busy:
            if w.trial is None:
                continue
            if w.conn not in ready and w.process.sentinel not in ready:
                continue
            trial_id, w.trial = w.trial or 0, None
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

    def _expired(self, busy: list[_Worker], ready: set) -> list[tuple[int, Outcome]]:
        """Kills the workers whose trial ran past the timeout; their trials fail."""
        out: list[tuple[int, Outcome]] = []
        if self._timeout is None:
            return out
        now = time.perf_counter()
        for w in busy:
            if w.conn in ready or now - w.started < self._timeout:
                continue
            trial_id, w.trial = w.trial or 0, None
            w.process.kill()
            w.process.join(timeout=5)
            w.conn.close()
            self._workers.remove(w)
            out.append((trial_id, Outcome(error=f"TrialTimeout: timed out after "
                                                f"{self._timeout:g} s (trial_timeout); its "
                                                "worker process was replaced.",
                                          seconds=now - w.started)))
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
        self._timeout: float | None = None

    def __repr__(self) -> str:
        return (f"Ray(address={self.address!r}, num_workers={self.slots}, "
                f"resources_per_trial={self.resources})")

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
        self._fn = ray.remote(max_retries=0, **self.resources)(run_message)
        self._refs = {}
        self._timeout = context.timeout

    def submit(self, trial: Any, parent: Any = None) -> None:
        ref = self._fn.remote(self._context_ref, trial_message(trial, parent))
        self._refs[ref] = (trial.id, time.perf_counter())

    def wait(self) -> list[tuple[int, Outcome]]:
        ray = self._ray()
        if not self._refs:
            return []
        limit = None
        if self._timeout is not None:
            first = min(t0 for _, t0 in self._refs.values())
            limit = max(0.0, first + self._timeout - time.perf_counter())
        done, _ = ray.wait(list(self._refs), num_returns=1, timeout=limit)
        out = []
        now = time.perf_counter()
        for ref, (trial_id, t0) in list(self._refs.items()):
            if ref not in done and self._timeout is not None and now - t0 >= self._timeout:
                del self._refs[ref]
                ray.cancel(ref, force=True)     # kills the worker process running it
                out.append((trial_id, Outcome(error=f"TrialTimeout: timed out after "
                                                    f"{self._timeout:g} s (trial_timeout); its "
                                                    "Ray task was cancelled.",
                                              seconds=now - t0)))
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

_POOLS: dict[int, ProcessPool] = {}


@atexit.register
def _close_pools() -> None:
    for pool in _POOLS.values():
        pool.close()
    _POOLS.clear()


@EXECUTORS.register("process", "processes")
def process_pool(workers: str | int | None = None) -> ProcessPool:
    """The shared pool of ``workers`` local processes (default: one per CPU)."""
    n = int(workers) if workers not in (None, "") else (os.cpu_count() or 1)
    if n not in _POOLS:
        _POOLS[n] = ProcessPool(n)
    return _POOLS[n]


@EXECUTORS.register("ray")
def ray_executor(workers: str | int | None = None) -> Ray:
    """A :class:`Ray` executor with ``workers`` tasks in flight (default 2)."""
    return Ray(num_workers=int(workers) if workers not in (None, "") else 2)


def get(executor: Any = "inline") -> Executor:
    """An executor from a name (``"inline"``, ``"process:N"``, ``"ray:N"``) or an instance."""
    if isinstance(executor, Executor):
        return executor
    if executor is None:
        return Inline()
    if isinstance(executor, str):
        kind, _, n = executor.partition(":")
        try:
            factory = EXECUTORS.lookup(kind)
        except KeyError:
            factory = None
        if factory is not None:
            try:
                return factory(n) if n else factory()
            except ValueError:
                pass
    raise ValueError(f"unknown executor {executor!r}: use 'inline', 'process:N' (N local worker "
                     "processes), 'ray:N', or sn.executors.Ray(num_workers=N).")
