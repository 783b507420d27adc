"""Zero-cost proxies: score an untrained network on one real batch, as an evaluator.

Each proxy is a function ``proxy(model, batch) -> float`` (``batch = (x, y)``;
some ignore ``y``), larger meaning "predicted better"; it scores a copy, so the
model is never changed. Definitions follow the papers' reference code
(SamsungLabs/zero-cost-nas, NASLib, BayesWatch/nas-without-training,
idstcv/ZenNAS, pym1024/SWAP, egracheva/epsinas):

=============  ================================================================
``synflow``    |theta * grad| of the all-positive, BN-free net, ones input, float64
``snip``       |theta * dL/dtheta| summed over Conv/Linear weights
``grad_norm``  sum of per-layer ||dL/dW||
``grasp``      -theta * (Hessian-gradient product)
``fisher``     activation x gradient, squared per channel
``jacov``      eigenvalues of the correlation of input Jacobians
``nwot``       log|det| of the ReLU binary-code agreement kernel (NASWOT)
``zen``        log feature-map sensitivity to input noise + BN scaling (Zen-NAS)
``swap``       number of distinct sample-wise ReLU patterns (SWAP-Score)
``swap_reg``   ``swap`` x exp(-(params_K - mu)^2 / sigma) (SWAP-NAS regularization)
``epsinas``    output change between two constant weight values
``params``     parameters (M)        ``flops``  multiply-accumulates (M)
=============  ================================================================

:func:`evaluator` turns proxies into an ``sn.search`` evaluator: it builds the
architecture on the Task's device with a seeded initialization, scores it on a
seeded batch of real CIFAR-10 images, and returns ``{proxy: score, ...,
"params_M": ...}``.

Example (a search: it builds and scores 1,000 networks on real CIFAR-10 images)::

    import symnas as sn
    from symnas.evaluators import zero_cost
    result = sn.search(sn.spaces.nasbench201(), sn.algorithms.RegularizedEvolution(),
                       zero_cost.evaluator("nwot"), budget=1000, objective="nwot")
    zero_cost.get("synflow")(model, zero_cost.batch(64, seed=0))

Proxies by name, several on one small model (:func:`scores`):

>>> import torch
>>> from torch import nn
>>> _ = torch.manual_seed(0)
>>> model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
...                       nn.Conv2d(8, 8, 3, padding=1), nn.ReLU(),
...                       nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 10))
>>> batch = (torch.randn(8, 3, 8, 8, generator=torch.Generator().manual_seed(0)), torch.arange(8))
>>> get("naswot") is nwot, "swap_reg" in names()
(True, True)
>>> {k: round(v, 4) for k, v in scores(model, batch, ["snip", "grad_norm", "params"]).items()}
{'snip': 0.327, 'grad_norm': 0.2838, 'params': 0.0009}
"""
from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import nn

from symnas.registry import PROXIES
from symnas.seeding import seeded

from ._zc_cost import flops, params
from ._zc_patterns import nwot, swap, swap_size_factor
from ._zc_pruning import fisher, grad_norm, grasp, loss_gradients, snip, synflow
from ._zc_response import epsinas, jacov, zen

# SWAP-NAS regularization defaults for NAS-Bench-201-sized networks (params in thousands):
# prefer the large end of the space (~1.5M parameters); see benchmarks/zero_cost_nb201.py.
SWAP_MU = 1500.0
SWAP_SIGMA = 1.0e6


def swap_reg(model: nn.Module, batch, *, mu: float = SWAP_MU, sigma: float = SWAP_SIGMA,
             seed: int = 0) -> float:
    """Regularized SWAP-Score: ``swap`` x exp(-(params_K - mu)^2 / sigma)."""
    return swap(model, batch, regular=True, mu=mu, sigma=sigma, seed=seed)


# PROXIES (symnas.registry) names the proxies; third-party packages add proxies through the
# ``symnas.proxies`` entry-point group.

for _name, _fn, *_aliases in (
        ("synflow", synflow), ("snip", snip), ("grad_norm", grad_norm, "gradnorm"),
        ("grasp", grasp), ("fisher", fisher), ("jacov", jacov, "jacob_cov"),
        ("nwot", nwot, "naswot"), ("zen", zen, "zen_score"), ("swap", swap),
        ("swap_reg", swap_reg, "swap_regularized"), ("epsinas", epsinas, "epsilon"),
        ("params", params), ("flops", flops)):
    PROXIES.register(_name, *_aliases)(_fn)
del _name, _fn, _aliases


def names() -> list[str]:
    """The registered proxy names (canonical, in registration order)."""
    return list(PROXIES)


def get(name: str) -> Callable[..., float]:
    """The proxy function ``proxy(model, batch, **options) -> float`` called ``name`` (or an alias)."""
    return PROXIES.lookup(name)


def register(name: str, fn: Callable[..., float] | None = None, *,
             aliases: Sequence[str] = ()) -> Any:
    """Adds a proxy ``fn(model, batch) -> float`` under ``name``; returns ``fn``.

    Without ``fn`` it is a decorator: ``@zero_cost.register("my_proxy")``.
    A name already taken by another proxy is a ``ValueError``.
    """
    def deco(f: Callable[..., float]) -> Callable[..., float]:
        if not callable(f):
            raise TypeError(f"a zero-cost proxy is a function (model, batch) -> float, got {f!r}.")
        return PROXIES.register(name, aliases=aliases)(f)
    return deco if fn is None else deco(fn)


def batch(n: int = 64, seed: int = 0, task: Any = None):
    """A seeded batch of ``n`` real CIFAR-10 training images and labels (on the Task's device)."""
    if task is not None:
        return task.batch(n, seed)
    from symnas.datasets import cifar10_batch
    return cifar10_batch(n, seed)


class ZeroCost:
    """An evaluator scoring architectures with one or more zero-cost proxies.

    Called with an ``Arch`` (or any object with ``.build()``, or an ``nn.Module``)
    it builds the module with ``torch.manual_seed(seed)`` (without touching the
    global random state), moves it to the Task's device, and scores it on the
    seeded batch of ``batch_size`` real training images. Scores are deterministic
    under ``seed``; every architecture of a search sees the same batch.
    ``options`` are per-proxy keyword arguments, e.g. ``{"swap_reg": {"mu": 800}}``.
    """

    def __init__(self, proxies: str | Sequence[str] = "nwot", task: Any = None,
                 batch_size: int = 64, seed: int = 0,
                 options: dict[str, dict] | None = None, with_params: bool = True):
        proxies = [proxies] if isinstance(proxies, str) else list(proxies)
        if not proxies:
            raise ValueError("ZeroCost needs at least one proxy name, e.g. 'nwot'.")
        for p in proxies:
            get(p)
        if batch_size < 2:
            raise ValueError(f"batch_size must be at least 2, got {batch_size}.")
        self.proxies = proxies
        self.task = task
        self.batch_size = int(batch_size)
        self.seed = int(seed)
        self.options = dict(options or {})
        unknown = set(self.options) - set(self.proxies)
        if unknown:
            raise ValueError(f"options= names proxies {sorted(unknown)} that are not scored "
                             f"(scored: {self.proxies}).")
        self.with_params = with_params
        self._batch = None

    @property
    def metric(self) -> str:
        """The metric this evaluator declares: the first proxy (the default objective)."""
        return self.proxies[0]

    def __getstate__(self) -> dict:   # the cached batch is re-made in the receiving process
        state = dict(self.__dict__)
        state["_batch"] = None
        return state

    def __repr__(self) -> str:
        return f"ZeroCost({self.proxies}, batch_size={self.batch_size}, seed={self.seed})"

    @property
    def device(self) -> torch.device:
        return self.task.torch_device if self.task is not None else torch.device("cpu")

    def batch(self):
        """The evaluator's seeded batch ``(x, y)`` on its device (made once)."""
        if self._batch is None:
            x, y = batch(self.batch_size, self.seed, self.task)
            self._batch = (x.to(self.device), y.to(self.device))
        return self._batch

    def build(self, arch: Any) -> nn.Module:
        """The architecture's module, initialized under this evaluator's seed, on its device."""
        if isinstance(arch, nn.Module):
            return arch.to(self.device)
        if not hasattr(arch, "build"):
            raise TypeError(f"ZeroCost scores an Arch (with .build()) or an nn.Module; "
                            f"got {type(arch).__name__}.")
        with seeded(self.seed):
            model = arch.build()
        return model.to(self.device)

    def score(self, model: nn.Module) -> dict[str, float]:
        """``{proxy: score}`` of a built module."""
        out = scores(model, self.batch(), self.proxies, seed=self.seed, options=self.options)
        if self.with_params and "params_M" not in out:
            out["params_M"] = params(model)
        return out

    def __call__(self, arch: Any) -> dict[str, float]:
        return self.score(self.build(arch))


_SHARES_GRADIENTS = ("snip", "grad_norm", "fisher", "grasp")
_BUILT_IN = {"snip": snip, "grad_norm": grad_norm, "fisher": fisher, "grasp": grasp}


def scores(model: nn.Module, batch: Any, proxies: Sequence[str], *, seed: int = 0,
           options: dict[str, dict] | None = None) -> dict[str, float]:
    """``{proxy: score}`` for several proxies on one model and batch.

    snip, grad_norm, fisher and grasp share one cross-entropy backward pass
    (the scores are the same as computing each alone), and swap_reg reuses the
    pattern count of swap when both run with default options. ``seed`` goes to
    the proxies that draw random numbers (zen, swap), and each proxy runs with the
    random generators seeded by it (a dropout layer draws the same mask every
    time), leaving the caller's random state as it was: a score depends only on
    the model, the batch, the proxy and ``seed``.
    """
    options = options or {}
    shared = None
    out: dict[str, float] = {}
    computed: dict[str, float] = {}   # by registered name
    for name in proxies:
        key = PROXIES.canonical(name)
        fn = PROXIES.lookup(key)
        kwargs = dict(options.get(name, {}))
        if (key == "swap_reg" and fn is swap_reg and "swap" in computed
                and not options.get("swap") and set(kwargs) <= {"mu", "sigma"}):
            out[name] = computed["swap"] * swap_size_factor(
                model, kwargs.get("mu", SWAP_MU), kwargs.get("sigma", SWAP_SIGMA))
            continue
        if "seed" in _kwonly(fn) and "seed" not in kwargs:
            kwargs["seed"] = seed
        with seeded(seed, model, batch):
            if key in _SHARES_GRADIENTS and fn is _BUILT_IN[key] and "shared" not in kwargs:
                if shared is None:
                    shared = loss_gradients(model, batch, key)
                kwargs["shared"] = shared
            out[name] = computed[key] = float(fn(model, batch, **kwargs))
    return out


@functools.cache
def _kwonly(fn: Callable) -> frozenset:
    import inspect
    return frozenset(p.name for p in inspect.signature(fn).parameters.values()
                     if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD))


def evaluator(proxies: str | Sequence[str] = "nwot", task: Any = None, batch_size: int = 64,
              seed: int = 0, **options: dict) -> ZeroCost:
    """A :class:`ZeroCost` evaluator for ``sn.search`` (see the module example).

    ``task`` (an ``sn.Task``) gives the device and data; default: CPU and the
    CIFAR-10 subset named by ``SYMNAS_DATA``. ``options``: per-proxy keyword
    arguments, e.g. ``evaluator("swap_reg", swap_reg={"mu": 800, "sigma": 4e5})``.
    """
    return ZeroCost(proxies, task=task, batch_size=batch_size, seed=seed, options=options)


__all__ = ["synflow", "snip", "grad_norm", "grasp", "fisher", "jacov", "nwot", "zen", "swap",
           "swap_reg", "epsinas", "params", "flops", "names", "get", "register", "batch",
           "scores", "ZeroCost", "evaluator", "SWAP_MU", "SWAP_SIGMA", "PROXIES"]
