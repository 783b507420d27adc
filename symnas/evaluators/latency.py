"""Latency on the user's own device: measured, or predicted from a table the Space builds itself.

:func:`measure` times a built model (inference: eval mode, no autograd) on a device with a
batch of a given shape: warm-up calls, a fixed number of timed calls (CUDA: events, the
device synchronized), threads pinned. It returns the median as ``latency_ms``, the spread
(10th/90th percentile, mean, standard deviation) and what the number is valid for (device and
its name, torch version, threads): every value is recorded with the trial.

:class:`Latency` (:func:`evaluator`) measures each architecture of a search; a
:class:`LookupTable` predicts it instead: the sum of the measured latencies of its layers (each
distinct layer configuration of the space timed once, see
:mod:`symnas.evaluators._latency`) plus a fixed overhead measured on whole networks. The
table is a JSON file (``path=``) for one device, torch version and thread count, and it extends
itself when a search reaches a configuration it has not timed. Both declare ``latency_ms``, so
they work as an objective or a constraint; :func:`with_latency` adds latency to another
evaluator's metrics.

Example::

    import symnas as sn
    from symnas.evaluators import latency, zero_cost
    space = sn.spaces.mobilenet(num_classes=10)
    latency.measure(space.sample(seed=0).build(), (3, 32, 32))["latency_ms"]
    table = latency.LookupTable(space, (3, 32, 32), path="runs/mnet.latency.json").build(n=16)
    table.predict(space.sample(seed=1))                      # milliseconds
    both = latency.with_latency(zero_cost.evaluator("nwot"), table)
    result = sn.search(space, "evolution", both, budget=200,
                       objective="nwot", constraints=["latency_ms <= 5"])
"""
from __future__ import annotations

import copy
import functools
import json
import logging
import math
import os
import statistics
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn

from symnas.objective import REWARD
from symnas.protocols import declared_metric
from symnas.trial import evaluator_call

from ._latency import (
    METRIC,
    LayerCall,
    as_device,
    as_shape,
    built,
    check_statistic,
    collect,
    context,
    device_info,
    example_input,
    materialize_args,
    measure,
    pinned_threads,
    summarize,
    time_calls,
)

logger = logging.getLogger("symnas")

FORMAT = "symnas.latency_table/1"

__all__ = ["measure", "Latency", "evaluator", "LookupTable", "TableLatency", "with_latency",
           "WithLatency", "TableMismatch", "METRIC", "FORMAT"]


class Latency:
    """An evaluator measuring each architecture's latency (:func:`measure`); metric ``latency_ms``.

    The device is ``device=``, else the Task's, else the CPU. The module is built with
    ``torch.manual_seed(seed)`` without touching the global random state.
    """

    metric = METRIC

    def __init__(self, input_shape: Sequence[int], *, task: Any = None, device: Any = None,
                 batch_size: int = 1, warmup: int = 10, repeats: int = 50,
                 threads: int | None = None, statistic: str = "median", seed: int = 0):
        self.input_shape = as_shape(input_shape)
        self.device = as_device(device, task)
        self.statistic = check_statistic(statistic)
        if batch_size < 1 or repeats < 1 or warmup < 0:
            raise ValueError(f"Latency needs batch_size >= 1, repeats >= 1, warmup >= 0; got "
                             f"{batch_size}, {repeats}, {warmup}.")
        self.batch_size, self.warmup, self.repeats = int(batch_size), int(warmup), int(repeats)
        self.threads = None if threads is None else int(threads)
        self.seed = int(seed)

    def __repr__(self) -> str:
        return (f"Latency({self.input_shape}, device={str(self.device)!r}, "
                f"batch_size={self.batch_size}, repeats={self.repeats})")

    def __call__(self, arch: Any) -> dict[str, Any]:
        return measure(built(arch, self.seed), self.input_shape, device=self.device,
                       batch_size=self.batch_size, warmup=self.warmup, repeats=self.repeats,
                       threads=self.threads, statistic=self.statistic, seed=self.seed)


def evaluator(input_shape: Sequence[int], *, task: Any = None, device: Any = None,
              batch_size: int = 1, warmup: int = 10, repeats: int = 50,
              threads: int | None = None, statistic: str = "median", seed: int = 0) -> Latency:
    """A :class:`Latency` evaluator for ``sn.search``: each architecture measured on the device.

    ``objective=["valid_acc", sn.minimize("latency_ms")]`` or ``constraints=["latency_ms <= 5"]``
    (with :func:`with_latency` around the accuracy evaluator).
    """
    return Latency(input_shape, task=task, device=device, batch_size=batch_size, warmup=warmup,
                   repeats=repeats, threads=threads, statistic=statistic, seed=seed)


class TableMismatch(ValueError):
    """A latency table file was made on another device, torch version, thread count or shape."""


_ENTRY_STATS = ("ms", "median_ms", "min_ms", "p10_ms", "p90_ms", "std_ms")
_IDENTITY = ("device", "device_name", "torch", "threads", "input_shape", "batch_size", "statistic")


class LookupTable:
    """Latency predicted as the sum of measured layers plus a measured fixed overhead.

    ``LookupTable(space, input_shape, device=...)`` times every distinct layer configuration
    (module, arguments, input shapes; :mod:`~symnas.evaluators._latency`) it meets once, on
    ``device`` with ``threads`` pinned (default: the current count), and predicts an
    architecture's latency in milliseconds as
    ``overhead_ms + sum(entries[key]["ms"] for key in layers(arch))``. A layer is timed in
    ``rounds`` interleaved rounds (round-robin over the layers being timed), each of
    ``warmup`` calls and its share of ``repeats`` timed ones; its entry is their median
    (``statistic="min"``: the fastest). :meth:`build` meets the configurations of ``n`` seeded
    architectures; :meth:`predict` of an architecture with a configuration not yet timed times
    it then (the table extends itself, and saves). The overhead (what a whole network costs
    beyond its layers: functional calls between them, Python) is the median over
    ``calibration`` seeded whole networks of measured latency minus the sum of their layers,
    fitted on first need (:meth:`fit_overhead`).

    An architecture's layers are found by building it (on the CPU, seeded) and running one
    forward pass with hooks; they are cached by genome, so predicting an architecture seen
    before is a dictionary lookup (about a microsecond); the first prediction of a genome costs
    one build and one forward pass. ``path``: a JSON file (put it beside the experiment, e.g.
    ``runs/<name>.latency.json``); an existing file is loaded and must come from the same
    device, device name, torch version, threads, input shape, batch size and statistic
    (:class:`TableMismatch` otherwise; ``threads=None`` takes the file's). Process executors
    get a copy without the space; each extends its copy and merges it into the file.
    """

    def __init__(self, space: Any, input_shape: Sequence[int], *, device: Any = "cpu",
                 batch_size: int = 1, path: str | os.PathLike | None = None,
                 threads: int | None = None, warmup: int = 5, repeats: int = 30,
                 rounds: int = 3, calibration: int = 5, statistic: str = "median",
                 seed: int = 0):
        self.space = space
        self.statistic = check_statistic(statistic)
        self.input_shape = as_shape(input_shape)
        self.device = as_device(device)
        if batch_size < 1 or repeats < 1 or warmup < 0 or calibration < 1 or rounds < 1:
            raise ValueError(f"LookupTable needs batch_size >= 1, repeats >= 1, warmup >= 0, "
                             f"rounds >= 1 and calibration >= 1; got {batch_size}, {repeats}, "
                             f"{warmup}, {rounds}, {calibration}.")
        self.batch_size, self.warmup, self.repeats = int(batch_size), int(warmup), int(repeats)
        self.calibration, self.rounds, self.seed = int(calibration), int(rounds), int(seed)
        self.path = None if path is None else os.fspath(path)
        self.entries: dict[str, dict[str, Any]] = {}
        self.overhead_ms: float | None = None
        self.overhead: dict[str, Any] = {}
        self._parts: dict[tuple, float] = {}       # genome -> sum of its layers' ms
        self._layers: dict[tuple, Counter] = {}    # genome -> {layer key: calls}
        # architectures built to find their layers, layer configurations timed, build time
        self.stats: dict[str, float] = {"collected": 0, "timed": 0, "build_seconds": 0.0}
        loaded = self._read() if self.path and os.path.exists(self.path) else None
        if loaded is not None and threads is None:
            threads = int(loaded["threads"])
        self.threads = int(threads) if threads is not None else torch.get_num_threads()
        self.info = device_info(self.device, self.threads)
        if loaded is not None:
            self._adopt(loaded)

    # ---- the file ----------------------------------------------------------------------
    def identity(self) -> dict[str, Any]:
        """What the table is valid for: device, its name, torch, threads, input shape, batch."""
        return {**self.info, "input_shape": list(self.input_shape), "batch_size": self.batch_size,
                "statistic": self.statistic}

    def to_json(self) -> dict[str, Any]:
        return {"format": FORMAT, **self.identity(), "warmup": self.warmup,
                "repeats": self.repeats, "rounds": self.rounds, "overhead_ms": self.overhead_ms,
                "overhead": self.overhead, "entries": self.entries}

    def save(self, path: str | os.PathLike | None = None) -> str:
        """Writes the table as JSON (atomically; entries another process wrote there are kept)."""
        target = os.fspath(path) if path is not None else self.path
        if target is None:
            raise ValueError("LookupTable.save needs a path: pass path= here or to LookupTable.")
        if os.path.exists(target):
            other = self._read(target)
            self._check(other, target)
            for key, entry in other.get("entries", {}).items():
                self.entries.setdefault(key, entry)
        os.makedirs(os.path.dirname(os.path.abspath(target)), exist_ok=True)
        tmp = f"{target}.{os.getpid()}.tmp"
        with open(tmp, "w") as f:
            json.dump(self.to_json(), f, indent=1)
        os.replace(tmp, target)
        return target

    def _read(self, path: str | None = None) -> dict[str, Any]:
        path = path or self.path
        assert path is not None
        try:
            with open(path) as f:
                data = json.load(f)
        except json.JSONDecodeError as e:
            raise ValueError(f"{path} is not valid JSON ({e}); delete it or give another "
                             "path=.") from None
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise ValueError(f"{path} is not a symnas latency table (format {FORMAT!r}); "
                             "give another path=.")
        return data

    def _check(self, data: dict[str, Any], path: str | None) -> None:
        mine = self.identity()
        wrong = [f"{k}: file {data.get(k)!r}, here {mine[k]!r}" for k in _IDENTITY
                 if data.get(k) != mine[k]]
        if wrong:
            raise TableMismatch(
                f"the latency table {path} was measured elsewhere ({'; '.join(wrong)}); its "
                "numbers do not hold here. Give another path= (a new table is measured there), "
                "delete the file, or run where it was made.")

    def _adopt(self, data: dict[str, Any]) -> None:
        self._check(data, self.path)
        self.entries = dict(data.get("entries", {}))
        self.overhead_ms = data.get("overhead_ms")
        self.overhead = dict(data.get("overhead", {}))

    def __getstate__(self) -> dict[str, Any]:   # a worker gets the numbers, not the space
        state = dict(self.__dict__)
        state["space"], state["_layers"], state["_parts"] = None, {}, {}
        return state

    def __len__(self) -> int:
        return len(self.entries)

    def __repr__(self) -> str:
        return (f"LookupTable({len(self.entries)} layers, {self.info['device']} "
                f"{self.info['device_name']!r}, threads={self.threads}, "
                f"overhead_ms={self.overhead_ms})")

    # ---- layers ------------------------------------------------------------------------
    def _arch(self, arch: Any) -> Any:
        if isinstance(arch, nn.Module) or hasattr(arch, "build"):
            return arch
        if self.space is None:
            raise TypeError("this table has no space (it was sent to a worker): predict an Arch.")
        return self.space.arch(arch)

    def _collect(self, arch: Any) -> tuple[nn.Module, list[LayerCall]]:
        """A CPU build of ``arch`` and the layer calls of one forward pass."""
        model = built(arch, self.seed)
        device = next((p.device for p in model.parameters()), torch.device("cpu"))
        x = example_input(self.batch_size, self.input_shape, device, self.seed)
        with pinned_threads(self.threads):
            calls = collect(model, (x,))
        if not calls:
            raise ValueError(f"{type(model).__name__} ran no layer module in its forward pass: "
                             "a latency table sums the layers' times, so it needs nn.Module layers.")
        self.stats["collected"] += 1
        return model, calls

    def _pending(self, model: nn.Module, calls: Sequence[LayerCall], fresh: bool,
                 into: dict[str, tuple[nn.Module, LayerCall]]) -> None:
        """Adds the layers among ``calls`` whose configuration the table lacks, on its device."""
        for c in calls:
            if c.key in self.entries or c.key in into:
                continue
            layer = model.get_submodule(c.path)
            if not fresh:                       # the caller's module: time a copy
                with torch.random.fork_rng(devices=[]):
                    layer = copy.deepcopy(layer)
            into[c.key] = (layer.to(self.device).eval(), c)

    def _time(self, pending: dict[str, tuple[nn.Module, LayerCall]]) -> None:
        """Times pending layer configurations in ``rounds`` interleaved rounds; saves if any.

        Round-robin over the layers, each round ``warmup`` calls then its share of ``repeats``,
        so a change of load while the table grows touches every layer alike.
        """
        if not pending:
            return
        per_round = max(1, math.ceil(self.repeats / self.rounds))
        times: dict[str, list[float]] = {key: [] for key in pending}
        with pinned_threads(self.threads), torch.inference_mode():
            calls = [(key, functools.partial(layer, *materialize_args(c.args, self.device, self.seed),
                                             **materialize_args(c.kwargs, self.device, self.seed)))
                     for key, (layer, c) in pending.items()]
            for _ in range(self.rounds):
                for key, fn in calls:
                    times[key] += time_calls(fn, self.device, self.warmup, per_round)
        for key, (_, c) in pending.items():
            s = summarize(times[key], self.statistic)
            self.entries[key] = {**c.entry(), **{k: s[k] for k in _ENTRY_STATS}}
        self.stats["timed"] += len(pending)
        logger.debug("latency table: timed %d new layer configurations (%d in all)", len(pending),
                     len(self.entries))
        if self.path:
            self.save()

    def layers(self, arch: Any) -> list[str]:
        """The table keys of ``arch``'s layer calls (a key once per call), timing any new ones."""
        counts = self._counts(self._arch(arch))
        return [k for k, n in counts.items() for _ in range(n)]

    def _counts(self, arch: Any, pending: dict | None = None) -> Counter:
        """``{key: calls}`` of ``arch``; its new layers are timed now, or added to ``pending``."""
        genome = None if isinstance(arch, nn.Module) else tuple(arch.genome)
        if genome is not None and genome in self._layers:
            return self._layers[genome]
        model, calls = self._collect(arch)
        own: dict[str, tuple[nn.Module, LayerCall]] = {} if pending is None else pending
        self._pending(model, calls, genome is not None, own)
        if pending is None:
            self._time(own)
        counts = Counter(c.key for c in calls)
        if genome is not None:
            self._layers[genome] = counts
        return counts

    def parts_ms(self, arch: Any) -> float:
        """The sum of the measured latencies of ``arch``'s layers (no overhead)."""
        arch = self._arch(arch)
        genome = None if isinstance(arch, nn.Module) else tuple(arch.genome)
        if genome is not None and genome in self._parts:
            return self._parts[genome]
        counts = self._counts(arch)
        total = math.fsum(self.entries[k]["ms"] for k, n in counts.items() for _ in range(n))
        if genome is not None:
            self._parts[genome] = total
        return total

    # ---- prediction --------------------------------------------------------------------
    def predict(self, arch: Any) -> float:
        """Predicted latency of ``arch`` (an Arch, a genome, or an nn.Module) in milliseconds.

        ``overhead_ms + parts_ms(arch)``; the overhead is fitted first if it is not yet.
        """
        parts = self.parts_ms(arch)
        if self.overhead_ms is None:
            self.fit_overhead(arch_space=getattr(self._arch(arch), "space", None))
        assert self.overhead_ms is not None
        return self.overhead_ms + parts

    def fit_overhead(self, archs: Sequence[Any] | None = None, *, arch_space: Any = None,
                     warmup: int = 10, repeats: int = 30, rounds: int | None = None) -> float:
        """Measures whole networks and sets ``overhead_ms`` = median(measured - sum of layers).

        ``archs``: the networks (default: ``calibration`` seeded samples of the space), each
        measured in ``rounds`` (default: the table's) interleaved rounds, and its median over
        them taken (the minimum for ``statistic="min"``): a burst of load from another program
        does not set the overhead.
        """
        if archs is None:
            space = self.space if self.space is not None else arch_space
            if space is None:
                raise ValueError("fit_overhead needs archs= (this table has no space).")
            archs = list(space.samples(self.calibration, seed=self.seed + 7919))
        archs = [self._arch(a) for a in archs]
        rounds = self.rounds if rounds is None else int(rounds)
        if not archs or rounds < 1:
            raise ValueError("fit_overhead needs at least one architecture and one round.")
        parts = [self.parts_ms(a) for a in archs]
        models = [built(a, self.seed) for a in archs]
        runs: list[list[float]] = [[] for _ in archs]
        for _ in range(rounds):
            for model, out in zip(models, runs):
                out.append(measure(model, self.input_shape, device=self.device,
                                   batch_size=self.batch_size, warmup=warmup, repeats=repeats,
                                   threads=self.threads, statistic=self.statistic,
                                   seed=self.seed)[METRIC])
        pick = min if self.statistic == "min" else statistics.median
        whole = [float(pick(r)) for r in runs]
        self.overhead_ms = statistics.median(w - p for w, p in zip(whole, parts))
        samples = [{"measured_ms": w, "parts_ms": p, "rounds_ms": r}
                   for w, p, r in zip(whole, parts, runs)]
        self.overhead = {"networks": len(samples), "rounds": rounds, "samples": samples}
        if self.overhead_ms > statistics.median(parts):
            logger.warning("latency table: whole networks measured %.3g ms slower than the sum of "
                           "their layers (%.3g ms); if other programs load this machine, refit "
                           "later with table.fit_overhead()", self.overhead_ms,
                           statistics.median(parts))
        if self.path:
            self.save()
        return self.overhead_ms

    def build(self, n: int = 32, seed: int | None = None) -> LookupTable:
        """Times the layer configurations of ``n`` seeded architectures and fits the overhead.

        Returns the table; ``stats['build_seconds']`` is how long it took.
        """
        if self.space is None:
            raise ValueError("LookupTable.build samples the space; this table has none.")
        t0 = time.perf_counter()
        pending: dict[str, tuple[nn.Module, LayerCall]] = {}
        for arch in self.space.samples(n, seed=self.seed if seed is None else seed):
            self._counts(arch, pending)
        self._time(pending)                      # all new layers together, interleaved
        if self.overhead_ms is None:
            self.fit_overhead()
        self.stats["build_seconds"] += time.perf_counter() - t0
        return self

    def evaluator(self) -> TableLatency:
        """An evaluator for ``sn.search`` returning the predicted ``latency_ms`` (and context)."""
        return TableLatency(self)


class TableLatency:
    """An evaluator predicting ``latency_ms`` from a :class:`LookupTable` (:meth:`LookupTable.evaluator`)."""

    metric = METRIC

    def __init__(self, table: LookupTable):
        self.table = table

    def __repr__(self) -> str:
        return f"TableLatency({self.table!r})"

    def __call__(self, arch: Any) -> dict[str, Any]:
        return {METRIC: self.table.predict(arch),
                **context(self.table.info, latency_source="table")}


class WithLatency:
    """Another evaluator's metrics plus latency ones (:func:`with_latency`); its metric stays."""

    def __init__(self, base: Any, latency: Any):
        if not callable(base):
            raise TypeError(f"with_latency adds latency to an evaluator; {base!r} is not callable.")
        if isinstance(latency, LookupTable):
            latency = latency.evaluator()
        if not isinstance(latency, (Latency, TableLatency)):
            raise TypeError("with_latency(evaluator, latency): latency is a latency.evaluator(...), "
                            f"a LookupTable or its .evaluator(); got {type(latency).__name__}.")
        self.base, self.latency = base, latency
        self._call: Any = None

    @property
    def metric(self) -> str | None:
        """The base evaluator's declared metric (the search's default objective), if any."""
        return declared_metric(self.base)

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_call": None}

    def __repr__(self) -> str:
        return f"with_latency({self.base!r}, {self.latency!r})"

    def __call__(self, arch: Any, seed: int | None = None) -> dict[str, Any]:
        if self._call is None:
            self._call = evaluator_call(self.base)
        value = self._call(arch, seed)
        metrics = dict(value) if isinstance(value, Mapping) else {self.metric or REWARD: value}
        clash = sorted(set(metrics) & {METRIC})
        if clash:
            raise ValueError(f"the evaluator already returns {clash}; with_latency would "
                             "overwrite it.")
        return {**metrics, **self.latency(arch)}


def with_latency(evaluator: Any, latency: Any) -> WithLatency:
    """``evaluator`` 's metrics with ``latency_ms`` added, from ``latency`` (a measuring
    :func:`evaluator`, a :class:`LookupTable` or its evaluator). The declared metric stays the
    base evaluator's, so ``objective=`` defaults to it.
    """
    return WithLatency(evaluator, latency)
