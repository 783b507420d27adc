"""The machinery under :mod:`symnas.evaluators.latency`: timing on a device, and a model's layers.

- **Where and how**: :func:`device_info` (the device's name, torch version, threads: what a
  measurement is valid for), :class:`pinned_threads`, and :func:`time_calls`, the one timing
  loop (warm-up, then a fixed number of timed calls; on CUDA each call is timed by a pair of
  CUDA events and the device is synchronized before the times are read). :func:`measure` times
  a whole model with it.
- **Which modules are layers** (:func:`layer_modules`): the model tree is walked from the
  root; containers (``nn.Sequential`` without its own ``forward``, ``nn.ModuleList``,
  ``nn.ModuleDict``) and modules with their own ``forward`` over non-leaf children are opened;
  a leaf, or a module with its own ``forward`` whose children are all leaves (a
  squeeze-and-excite block), is one layer and is timed whole.
- **A layer's configuration** (:func:`collect`): one forward pass with a pre-hook on every
  layer records each call as a :class:`LayerCall`: the module's class, its arguments (its
  ``repr``, its plain attributes, its parameter and buffer shapes) and the shapes of its
  inputs. Equal configurations have equal ``key`` s, whichever network they come from.

Example:

>>> import torch
>>> from torch import nn
>>> net = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 8, 3, padding=1),
...                     nn.ReLU())
>>> calls = collect(net, (torch.zeros(1, 3, 16, 16),))
>>> [c.module.rsplit(".", 1)[1] for c in calls]
['Conv2d', 'ReLU', 'Conv2d', 'ReLU']
>>> calls[1].key == calls[3].key, calls[0].key == calls[2].key   # one ReLU on 8x16x16; two convs
(True, False)
>>> calls[2].inputs
[[1, 8, 16, 16]]
"""
from __future__ import annotations

import hashlib
import json
import math
import platform
import re
import time
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import nn

from symnas.seeding import seeded

__all__ = ["device_info", "cpu_name", "pinned_threads", "synchronize", "time_calls", "summarize",
           "STATISTICS", "METRIC", "measure", "as_shape", "as_device", "built", "example_input",
           "check_statistic", "context",
           "LayerCall", "layer_modules", "collect", "random_like_spec", "materialize_args"]

_CONTAINERS = (nn.ModuleList, nn.ModuleDict, nn.ParameterList, nn.ParameterDict)
_ADDRESS = re.compile(r" at 0x[0-9a-fA-F]+")


# ---- where and how ----------------------------------------------------------------------
def cpu_name() -> str:
    """The CPU's model name (``/proc/cpuinfo``; else ``platform.processor()`` or the machine)."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown cpu"


def device_info(device: torch.device | str, threads: int | None = None) -> dict[str, Any]:
    """What a measurement on ``device`` is valid for: device, its name, torch version, threads.

    >>> info = device_info("cpu", threads=1)
    >>> sorted(info), info["device"], info["threads"]
    (['device', 'device_name', 'threads', 'torch'], 'cpu', 1)
    """
    dev = torch.device(device)
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise RuntimeError(f"device={str(device)!r} but CUDA is not available here; "
                               "measure on device='cpu'.")
        index = dev.index if dev.index is not None else torch.cuda.current_device()
        dev = torch.device("cuda", index)
        name = torch.cuda.get_device_name(index)
    elif dev.type == "cpu":
        name = cpu_name()
    else:
        name = dev.type
    return {"device": str(dev), "device_name": name, "torch": torch.__version__,
            "threads": int(threads if threads is not None else torch.get_num_threads())}


class pinned_threads:
    """``with pinned_threads(n):`` runs with ``torch.set_num_threads(n)``, restored afterwards.

    >>> before = torch.get_num_threads()
    >>> with pinned_threads(1):
    ...     torch.get_num_threads()
    1
    >>> torch.get_num_threads() == before
    True
    """

    def __init__(self, threads: int | None):
        if threads is not None and int(threads) < 1:
            raise ValueError(f"threads must be at least 1, got {threads}.")
        self.threads = None if threads is None else int(threads)
        self._before = 0

    def __enter__(self) -> pinned_threads:
        self._before = torch.get_num_threads()
        if self.threads is not None and self.threads != self._before:
            torch.set_num_threads(self.threads)
        return self

    def __exit__(self, *exc: Any) -> None:
        if torch.get_num_threads() != self._before:
            torch.set_num_threads(self._before)


def synchronize(device: torch.device) -> None:
    """Waits for the device's queued work (CUDA); nothing to wait for on the CPU."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_calls(fn: Callable[[], Any], device: torch.device | str, warmup: int, repeats: int
               ) -> list[float]:
    """Milliseconds of each of ``repeats`` calls of ``fn`` after ``warmup`` untimed calls.

    CPU: ``time.perf_counter`` around each call. CUDA: a pair of CUDA events around each call
    on the current stream, the device synchronized before the first and after the last, so
    every time is the GPU's own, queued work included.

    >>> times = time_calls(lambda: sum(range(100)), "cpu", warmup=1, repeats=5)
    >>> len(times), all(t >= 0 for t in times)
    (5, True)
    """
    if repeats < 1 or warmup < 0:
        raise ValueError(f"time_calls needs repeats >= 1 and warmup >= 0, got {repeats}, {warmup}.")
    dev = torch.device(device)
    for _ in range(warmup):
        fn()
    if dev.type == "cuda":
        with torch.cuda.device(dev):
            synchronize(dev)
            pairs = [(torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True))
                     for _ in range(repeats)]
            for start, end in pairs:
                start.record()
                fn()
                end.record()
            synchronize(dev)
            return [float(start.elapsed_time(end)) for start, end in pairs]
    out = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        out.append((time.perf_counter() - t0) * 1e3)
    return out


STATISTICS = ("median", "min")


def summarize(times_ms: Sequence[float], statistic: str = "median") -> dict[str, float]:
    """``ms`` (the median, or the minimum), 10th/90th percentile, min, mean, std of timings (ms).

    The median is the usual latency; the minimum is what a call costs without interference,
    the steadiest figure on a machine other processes share.

    >>> summarize([1.0, 2.0, 3.0, 4.0, 100.0])["ms"], summarize([2.0, 1.0], "min")["ms"]
    (3.0, 1.0)
    """
    if statistic not in STATISTICS:
        raise ValueError(f"statistic must be one of {STATISTICS}, got {statistic!r}.")
    xs = sorted(float(t) for t in times_ms)
    if not xs:
        raise ValueError("summarize needs at least one timing.")
    mean = math.fsum(xs) / len(xs)
    std = math.sqrt(math.fsum((x - mean) ** 2 for x in xs) / len(xs))
    return {"ms": _quantile(xs, 0.5) if statistic == "median" else xs[0],
            "median_ms": _quantile(xs, 0.5), "min_ms": xs[0], "p10_ms": _quantile(xs, 0.1),
            "p90_ms": _quantile(xs, 0.9), "mean_ms": mean, "std_ms": std}


def _quantile(sorted_xs: Sequence[float], q: float) -> float:
    pos = q * (len(sorted_xs) - 1)
    lo, hi = math.floor(pos), math.ceil(pos)
    return sorted_xs[lo] + (sorted_xs[hi] - sorted_xs[lo]) * (pos - lo)


# ---- a whole model -------------------------------------------------------------------------
METRIC = "latency_ms"


def as_shape(input_shape: Sequence[int]) -> tuple[int, ...]:
    shape = tuple(int(s) for s in input_shape)
    if not shape or any(s < 1 for s in shape):
        raise ValueError(f"input_shape is one example's shape without the batch, e.g. (3, 32, 32); "
                         f"got {tuple(input_shape)}.")
    return shape


def as_device(device: Any, task: Any = None) -> torch.device:
    if device is None:
        return task.torch_device if task is not None else torch.device("cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"device={str(device)!r} but CUDA is not available here; use "
                           "device='cpu'.")
    return dev


def built(arch: Any, seed: int = 0) -> nn.Module:
    """The module of an Arch (seeded, the global RNG untouched), or the module itself."""
    if isinstance(arch, nn.Module):
        return arch
    if not hasattr(arch, "build"):
        raise TypeError(f"latency takes an Arch (with .build()) or an nn.Module; "
                        f"got {type(arch).__name__}.")
    with seeded(seed):
        return arch.build()


def example_input(batch_size: int, shape: tuple[int, ...], device: torch.device, seed: int = 0
           ) -> torch.Tensor:
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}.")
    gen = torch.Generator().manual_seed(seed)
    return torch.randn((batch_size, *shape), generator=gen).to(device)


def check_statistic(statistic: str) -> str:
    if statistic not in STATISTICS:
        raise ValueError(f"statistic must be one of {STATISTICS} (the median call, or the "
                         f"fastest), got {statistic!r}.")
    return statistic


def context(info: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"latency_device": info["device"], "latency_device_name": info["device_name"],
            "latency_torch": info["torch"], "latency_threads": info["threads"], **extra}


def measure(model: nn.Module, input_shape: Sequence[int], *, device: Any = "cpu",
            batch_size: int = 1, warmup: int = 10, repeats: int = 50, threads: int | None = None,
            statistic: str = "median", seed: int = 0) -> dict[str, Any]:
    """Inference latency of ``model`` on ``device`` for a batch of ``batch_size`` x ``input_shape``.

    The model is moved to ``device`` and run in eval mode under ``torch.inference_mode`` on a
    seeded random batch: ``warmup`` untimed calls, then ``repeats`` timed ones
    (:func:`~time_calls`), with ``torch.set_num_threads(threads)``
    for the measurement (default: the current count), restored afterwards, and the model's
    training mode restored. Returns ``latency_ms`` (the median; with ``statistic="min"`` the
    fastest call, steadier on a machine other processes load), ``latency_median_ms``,
    ``latency_min_ms``, ``latency_p10_ms``, ``latency_p90_ms``, ``latency_mean_ms``,
    ``latency_std_ms``, and the context: ``latency_device``, ``latency_device_name``,
    ``latency_torch``, ``latency_threads``, ``latency_batch_size``, ``latency_repeats``,
    ``latency_statistic``.

    >>> out = measure(nn.Linear(8, 4), (8,), warmup=1, repeats=3, threads=1)
    >>> out["latency_ms"] > 0, out["latency_threads"], out["latency_repeats"]
    (True, 1, 3)
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"measure times an nn.Module (build the architecture first: "
                        f"arch.build()); got {type(model).__name__}.")
    dev = as_device(device)
    shape = as_shape(input_shape)
    check_statistic(statistic)
    with pinned_threads(threads):
        info = device_info(dev)
        x = example_input(batch_size, shape, dev, seed)
        training = model.training
        model.to(dev).eval()
        try:
            with torch.inference_mode():
                times = time_calls(lambda: model(x), dev, warmup, repeats)
        finally:
            model.train(training)
    s = summarize(times, statistic)
    return {METRIC: s.pop("ms"), **{f"latency_{k}": v for k, v in s.items()},
            **context(info, latency_batch_size=int(batch_size), latency_repeats=int(repeats),
                       latency_statistic=statistic)}


# ---- which modules are layers ----------------------------------------------------------------
def _is_container(m: nn.Module) -> bool:
    if isinstance(m, _CONTAINERS):
        return True
    return isinstance(m, nn.Sequential) and type(m).forward is nn.Sequential.forward


def _is_leaf(m: nn.Module) -> bool:
    return next(m.children(), None) is None


def layer_modules(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """``(qualified name, module)`` of every layer of ``model`` (see the module docstring).

    >>> net = nn.Sequential(nn.Conv2d(3, 8, 1), nn.Sequential(nn.BatchNorm2d(8), nn.ReLU()))
    >>> [name for name, _ in layer_modules(net)]
    ['0', '1.0', '1.1']
    """
    out: list[tuple[str, nn.Module]] = []

    def visit(name: str, m: nn.Module, root: bool) -> None:
        children = list(m.named_children())
        if not children or (not root and not _is_container(m)
                            and all(_is_leaf(c) for _, c in children)):
            out.append((name, m))
            return
        for child_name, child in children:
            visit(f"{name}.{child_name}" if name else child_name, child, False)

    visit("", model, True)
    return out


# ---- a layer's configuration -----------------------------------------------------------------
class TensorSpec:
    """A tensor argument of a recorded call: shape and dtype (the values are not kept)."""

    __slots__ = ("shape", "dtype")

    def __init__(self, t: torch.Tensor):
        self.shape, self.dtype = tuple(int(s) for s in t.shape), t.dtype

    def __repr__(self) -> str:
        return f"Tensor{list(self.shape)}:{str(self.dtype).replace('torch.', '')}"


def _spec_tree(x: Any) -> Any:
    if isinstance(x, torch.Tensor):
        return TensorSpec(x)
    if isinstance(x, (list, tuple)):
        return type(x)(_spec_tree(v) for v in x) if type(x) in (list, tuple) else \
            [_spec_tree(v) for v in x]
    if isinstance(x, dict):
        return {k: _spec_tree(v) for k, v in x.items()}
    return x


def _describe(x: Any) -> Any:
    """A JSON-able, address-free description of an argument tree."""
    if isinstance(x, TensorSpec):
        return [*x.shape] if x.dtype == torch.float32 else {"shape": [*x.shape],
                                                              "dtype": str(x.dtype)}
    if isinstance(x, (list, tuple)):
        return [_describe(v) for v in x]
    if isinstance(x, dict):
        return {str(k): _describe(v) for k, v in sorted(x.items(), key=lambda kv: str(kv[0]))}
    if isinstance(x, (int, float, bool, str)) or x is None:
        return x
    if isinstance(x, type) or callable(x):
        return _qualname(x)
    return _ADDRESS.sub("", repr(x))


def _qualname(x: Any) -> str:
    module = getattr(x, "__module__", None) or ""
    name = getattr(x, "__qualname__", None) or type(x).__qualname__
    return f"{module}.{name}" if module else name


def _attributes(m: nn.Module) -> dict[str, Any]:
    """A module's plain public attributes: the constructor arguments a ``forward`` may read."""
    out = {}
    for k, v in vars(m).items():
        if k.startswith("_") or k == "training":
            continue
        if isinstance(v, (int, float, bool, str, type(None))) or (
                isinstance(v, (tuple, list)) and all(isinstance(e, (int, float, bool, str))
                                                     for e in v)):
            out[k] = v if not isinstance(v, tuple) else list(v)
        elif isinstance(v, type) or callable(v):
            out[k] = _qualname(v)
    return out


def _config(m: nn.Module) -> dict[str, Any]:
    tensors = {f"{kind}:{name}": [[*t.shape], str(t.dtype)] for kind, items in
               (("param", m.named_parameters()), ("buffer", m.named_buffers())) for name, t in items
               if t is not None}
    return {"repr": _ADDRESS.sub("", repr(m)), "attributes": _attributes(m), "tensors": tensors}


class LayerCall:
    """One call of a layer in a forward pass: where, which configuration, with what inputs.

    ``key`` identifies the configuration (class, arguments, input shapes); ``args`` and
    ``kwargs`` are the call's arguments with tensors replaced by :class:`TensorSpec` (what
    :func:`materialize_args` turns into real tensors to time the layer alone).
    """

    __slots__ = ("path", "module", "config", "inputs", "key", "args", "kwargs")

    def __init__(self, path: str, m: nn.Module, args: tuple, kwargs: dict):
        self.path = path
        self.module = _qualname(type(m))
        self.args, self.kwargs = _spec_tree(args), _spec_tree(kwargs)
        self.config = _config(m)
        self.inputs = _describe(self.args) + ([_describe(self.kwargs)] if self.kwargs else [])
        text = json.dumps([self.module, self.config, self.inputs], sort_keys=True, default=str)
        self.key = hashlib.sha1(text.encode()).hexdigest()[:16]

    def entry(self) -> dict[str, Any]:
        """The readable part of a table entry: module, its configuration and inputs."""
        return {"module": self.module, "repr": self.config["repr"], "inputs": self.inputs}

    def __repr__(self) -> str:
        return f"LayerCall({self.path!r}, {self.module.rsplit('.', 1)[-1]}, inputs={self.inputs})"


def collect(model: nn.Module, inputs: tuple, *,
            layers: Sequence[tuple[str, nn.Module]] | None = None) -> list[LayerCall]:
    """Runs ``model(*inputs)`` once in eval mode without gradients; every layer call, in order.

    Build the model and the inputs under ``torch.device("meta")`` and the pass costs no
    compute (see the module example); a real model works too (its modes are restored).
    """
    calls: list[LayerCall] = []
    handles = []
    modes = [(m, m.training) for m in model.modules()]
    for path, m in (layers if layers is not None else layer_modules(model)):
        def hook(module: nn.Module, args: tuple, kwargs: dict, path: str = path) -> None:
            calls.append(LayerCall(path, module, args, kwargs))
        handles.append(m.register_forward_pre_hook(hook, with_kwargs=True))
    try:
        model.eval()
        with torch.no_grad():
            model(*inputs)
    finally:
        for h in handles:
            h.remove()
        for m, training in modes:
            m.training = training
    return calls


def random_like_spec(spec: TensorSpec, device: torch.device, generator: torch.Generator
                     ) -> torch.Tensor:
    """A tensor of ``spec`` 's shape on ``device``: standard normal floats, zeros otherwise."""
    if spec.dtype.is_floating_point or spec.dtype.is_complex:
        return torch.randn(spec.shape, generator=generator, dtype=spec.dtype).to(device)
    return torch.zeros(spec.shape, dtype=spec.dtype, device=device)


def materialize_args(tree: Any, device: torch.device, seed: int = 0) -> Any:
    """A recorded argument tree with every :class:`TensorSpec` made a real tensor on ``device``."""
    gen = torch.Generator().manual_seed(seed)

    def make(x: Any) -> Any:
        if isinstance(x, TensorSpec):
            return random_like_spec(x, device, gen)
        if isinstance(x, (list, tuple)):
            return type(x)(make(v) for v in x)
        if isinstance(x, dict):
            return {k: make(v) for k, v in x.items()}
        return x
    return make(tree)

