"""ReLU activation-pattern proxies: NASWOT (Mellor et al., ICML 2021) and SWAP (Peng et al., ICLR 2024).

- ``nwot``: every ReLU module's *input* is binarized (``> 0``) per example; the
  kernel K[i, j] counts the units where examples i and j agree,
  ``K = sum over ReLUs of c c^T + (1 - c)(1 - c)^T``; the score is log|det K|
  (``slogdet``). Distinct codes for distinct images mean a more expressive network.
- ``swap``: every ReLU module's *output* (4-D feature maps) is concatenated per
  example after a Gaussian re-initialization (conv/linear N(0, 1), norm (1, 0));
  each unit's sign pattern across the batch is one "sample-wise activation
  pattern", and the score is the number of distinct patterns. ``regular=True``
  multiplies it by ``exp(-(params_K - mu)^2 / sigma)`` with params_K the number of
  parameters in thousands (SWAP-NAS's regularization, which lets the score prefer a
  model size).

Example:

>>> import torch
>>> from torch import nn
>>> _ = torch.manual_seed(0)
>>> model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
...                       nn.Conv2d(8, 8, 3, padding=1), nn.ReLU(),
...                       nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 10))
>>> batch = (torch.randn(8, 3, 8, 8, generator=torch.Generator().manual_seed(0)), torch.arange(8))
>>> round(nwot(model, batch), 2), swap(model, batch)     # swap: a count of patterns
(51.39, 248.0)
>>> swap(model, batch, regular=True, mu=500, sigma=1e4) < 1e-6   # 0.9K parameters, far from 500K
True
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from ._zc_common import (
    forward_with_hook,
    gaussian_init_,
    is_relu,
    seeded_generator,
    split_batch,
    working_copy,
)


def nwot(model: nn.Module, batch) -> float:
    """NASWOT: log|det K| of the batch's ReLU binary-code agreement kernel."""
    x, _ = split_batch(batch, "nwot")
    net = working_copy(model, x.device)
    relus = [m for m in net.modules() if is_relu(m)]
    if not relus:
        raise ValueError("nwot reads nn.ReLU modules' inputs; the model has none "
                         "(functional F.relu calls are invisible to it).")
    n = x.shape[0]
    K = torch.zeros((n, n), dtype=torch.float64, device=x.device)

    def hook(module, inp, out):
        c = (inp[0].detach().reshape(n, -1) > 0).to(torch.float32)
        # c c^T + (1 - c)(1 - c)^T = 2 c c^T - s_i - s_j + units (s = active units per example)
        s = c.sum(1, dtype=torch.float64)
        both = (c @ c.t()).to(torch.float64)
        K.add_(2.0 * both - s[:, None] - s[None, :] + c.shape[1])

    forward_with_hook(net, relus, hook, x)
    _, logdet = np.linalg.slogdet(K.cpu().numpy())
    return float(logdet)


def pack_patterns(active: torch.Tensor) -> torch.Tensor:
    """Each unit's sample-wise pattern as int64 words: ``active`` is (samples, units) bool;
    returns (units, ceil(samples / 63)), bit j of word w = sample 63 w + j."""
    n, units = active.shape
    words = []
    for start in range(0, n, 63):
        word = torch.zeros(units, dtype=torch.int64, device=active.device)
        for j in range(start, min(start + 63, n)):
            word |= active[j].to(torch.int64) << (j - start)
        words.append(word)
    return torch.stack(words, 1)


def count_patterns(keys: torch.Tensor) -> int:
    """Distinct rows of packed patterns (units, words)."""
    if keys.shape[1] == 1:
        return int(torch.unique(keys[:, 0]).numel())
    return int(torch.unique(keys, dim=0).shape[0])


def swap(model: nn.Module, batch, *, regular: bool = False, mu: float | None = None,
         sigma: float | None = None, seed: int = 0) -> float:
    """SWAP-Score: distinct sample-wise ReLU activation patterns (optionally size-regularized)."""
    x, _ = split_batch(batch, "swap")
    net = working_copy(model, x.device)
    gaussian_init_(net, seeded_generator(seed))
    relus = [m for m in net.modules() if isinstance(m, nn.ReLU)]
    if not relus:
        raise ValueError("swap reads nn.ReLU modules' outputs; the model has none.")
    n = x.shape[0]
    keys: list[torch.Tensor] = []

    def hook(module, inp, out):   # sign(ReLU output) is 1 exactly where the output is > 0
        if inp[0].dim() == 4:
            keys.append(pack_patterns(out.detach().reshape(n, -1) > 0))

    forward_with_hook(net, relus, hook, x)
    if not keys:
        raise ValueError("swap found no ReLU applied to a 4-D feature map.")
    score = float(count_patterns(torch.cat(keys, 0)))   # distinct patterns over all units
    if regular:
        if mu is None or sigma is None:
            raise ValueError("swap(regular=True) needs mu= and sigma= (model size in thousands of "
                             "parameters, and the width of the preference).")
        score *= swap_size_factor(model, mu, sigma)
    return score


def swap_size_factor(model: nn.Module, mu: float, sigma: float) -> float:
    """SWAP's size regularizer exp(-(params_K - mu)^2 / sigma), params_K in thousands."""
    params_k = sum(p.numel() for p in model.parameters()) / 1e3
    return float(np.exp(-((params_k - mu) ** 2) / sigma))
