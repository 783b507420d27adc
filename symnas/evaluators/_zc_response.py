"""Output-response proxies: how a network's output reacts to its input or its weights.

- ``jacov`` (Mellor et al., 2020, v1; as in zero-cost-nas / NASLib): the input
  Jacobian J of the summed logits for each example; with C the correlation matrix
  of the examples' Jacobians and eigenvalues v, the score is
  ``-sum(log(v + k) + 1 / (v + k))``, k = 1e-5. NaN when the output does not
  depend on the input (a correlation of constant rows is undefined).
- ``zen`` (Lin et al., ICCV 2021): Gaussian re-initialization, Gaussian inputs x and
  x + 0.01 * e, the mean over examples of the summed |difference| of the feature
  maps before global pooling, on a log scale, plus sum over BN layers of
  log sqrt(mean running_var) (running statistics start fresh).
- ``epsinas`` (Gracheva, 2022): every weight (conv, linear, affine norm) set to one
  constant and every bias to 0, twice (1e-7 and 1); the batch's logits are
  min-max normalized each time, zeros dropped, and the score is
  mean|f1 - f2| / mean(f1, f2).

Example:

>>> import torch
>>> from torch import nn
>>> _ = torch.manual_seed(0)
>>> model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
...                       nn.Conv2d(8, 8, 3, padding=1), nn.ReLU(),
...                       nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 10))
>>> batch = (torch.randn(8, 3, 8, 8, generator=torch.Generator().manual_seed(0)), torch.arange(8))
>>> round(jacov(model, batch), 3), round(zen(model, batch, seed=0), 3)
(-8.319, 3.261)
>>> zen(model, batch, seed=1) != zen(model, batch, seed=0)     # zen draws its weights and noise
True
>>> f"{epsinas(model, batch):.3g}"
'2.78e-07'
"""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import torch
from torch import nn

from symnas.outputs import logits

from ._zc_common import gaussian_init_, global_pool_input, seeded_generator, split_batch, working_copy


def jacov(model: nn.Module, batch) -> float:
    """Jacobian covariance: -sum(log(v + k) + 1/(v + k)) over the eigenvalues of corr(J)."""
    x, _ = split_batch(batch, "jacov")
    net = working_copy(model, x.device)
    xg = x.detach().clone().requires_grad_(True)
    out = logits(net(xg))
    (jac,) = torch.autograd.grad(out, xg, torch.ones_like(out), allow_unused=True)
    if jac is None:
        return float("nan")
    rows = jac.reshape(jac.shape[0], -1).double().cpu().numpy()
    with np.errstate(divide="ignore", invalid="ignore"):
        corr = np.corrcoef(rows)
    if not np.all(np.isfinite(corr)):
        return float("nan")
    v = np.linalg.eigvalsh(corr)
    k = 1e-5
    with np.errstate(divide="ignore", invalid="ignore"):
        return float(-np.sum(np.log(v + k) + 1.0 / (v + k)))


def zen(model: nn.Module, batch, *, mixup_gamma: float = 1e-2, repeat: int = 1,
        seed: int = 0) -> float:
    """Zen-score: log E|f(x) - f(x + gamma e)| + sum_BN log sqrt(mean running_var)."""
    x, _ = split_batch(batch, "zen")
    net = working_copy(model, x.device)
    gen = seeded_generator(seed)
    scores = []
    with torch.no_grad():
        for _ in range(repeat):
            gaussian_init_(net, gen)
            for m in net.modules():
                if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats:
                    m.reset_running_stats()
            a = torch.randn(x.shape, generator=gen).to(x)
            b = torch.randn(x.shape, generator=gen).to(x)
            out = global_pool_input(net, a)
            mixed = global_pool_input(net, a + mixup_gamma * b)
            diff = torch.abs(out - mixed).sum(dim=tuple(range(1, out.dim()))).mean()
            log_bn = 0.0
            for m in net.modules():
                if isinstance(m, nn.BatchNorm2d) and m.running_var is not None:
                    log_bn += float(torch.log(torch.sqrt(torch.mean(m.running_var))))
            scores.append(math.log(float(diff)) + log_bn if float(diff) > 0 else float("-inf"))
    return float(np.mean(scores))


def epsinas(model: nn.Module, batch, *, weights: Sequence[float] = (1e-7, 1.0)) -> float:
    """epsinas: mean |f_w1 - f_w2| / mean(f) of min-max-normalized constant-weight logits."""
    x, _ = split_batch(batch, "epsinas")
    if len(weights) != 2:
        raise ValueError(f"epsinas compares two constant weights, e.g. (1e-7, 1.0); got {weights!r}.")
    net = working_copy(model, x.device)
    runs = []
    with torch.no_grad():
        for w in weights:
            for m in net.modules():
                bias = getattr(m, "bias", None)
                if isinstance(bias, torch.Tensor):
                    bias.zero_()
                weight = getattr(m, "weight", None)
                if isinstance(weight, torch.Tensor) and getattr(m, "affine", True):
                    weight.fill_(w)
            p = logits(net(x)).double().flatten().cpu().numpy()
            p[~np.isfinite(p)] = np.nan
            lo, hi = np.nanmin(p), np.nanmax(p)
            with np.errstate(divide="ignore", invalid="ignore"):
                runs.append((p - lo) / (hi - lo))
    preds = np.array(runs)
    preds[preds == 0] = np.nan
    with np.errstate(divide="ignore", invalid="ignore"):
        import warnings
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            return float(np.nanmean(np.abs(preds[0] - preds[1])) / np.nanmean(preds))
