"""Shared plumbing of the zero-cost proxies: batches, working copies, logits, layers, inits.

Every proxy scores a *working copy* of the model (``working_copy``), so the
caller's module -- weights, BN running statistics, gradients, mode -- is never
changed. Models are scored in training mode, as the reference code scores
freshly built networks.

Example:

>>> import torch
>>> from torch import nn
>>> from symnas.outputs import logits
>>> model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 6 * 6, 10)).eval()
>>> images, labels = torch.zeros(4, 3, 8, 8), torch.tensor([0, 1, 2, 3])
>>> x, y = split_batch((images, labels), "snip", needs_labels=True)
>>> net = working_copy(model, x.device)        # a training-mode copy; model is untouched
>>> logits(net(x)).shape, net is model, net.training, model.training
(torch.Size([4, 10]), False, True, False)
>>> [type(m).__name__ for m in prunable_layers(net)]
['Conv2d', 'Linear']
>>> split_batch(images, "snip", needs_labels=True)
Traceback (most recent call last):
    ...
ValueError: zero-cost proxy 'snip' uses the labels: pass batch=(images, labels).
"""
from __future__ import annotations

import copy
from typing import Any, Literal, overload

import torch
from torch import nn


@overload
def split_batch(batch: Any, proxy: str, needs_labels: Literal[True]) -> tuple[torch.Tensor, torch.Tensor]:
    ...


@overload
def split_batch(batch: Any, proxy: str, needs_labels: bool = False
                ) -> tuple[torch.Tensor, torch.Tensor | None]:
    ...


def split_batch(batch: Any, proxy: str, needs_labels: bool = False
                ) -> tuple[torch.Tensor, torch.Tensor | None]:
    """``(x, y)`` from a batch, with a clear error for anything else."""
    if isinstance(batch, torch.Tensor):
        x, y = batch, None
    elif isinstance(batch, (tuple, list)) and len(batch) == 2 and isinstance(batch[0], torch.Tensor):
        x, y = batch
    else:
        raise TypeError(f"zero-cost proxy {proxy!r} takes batch=(images, labels) tensors "
                        f"(e.g. symnas.datasets.cifar10_batch(64)); got {type(batch).__name__}.")
    if x.dim() < 2 or x.shape[0] < 2:
        raise ValueError(f"zero-cost proxy {proxy!r} needs a batch of at least 2 examples "
                         f"with a batch dimension first; got images of shape {tuple(x.shape)}.")
    if needs_labels:
        if y is None:
            raise ValueError(f"zero-cost proxy {proxy!r} uses the labels: pass batch=(images, labels).")
        if y.shape[0] != x.shape[0]:
            raise ValueError(f"{proxy!r}: {x.shape[0]} images but {y.shape[0]} labels.")
        y = y.to(x.device)
    return x, y


def working_copy(model: nn.Module, device: torch.device | str | None = None,
                 dtype: torch.dtype | None = None) -> nn.Module:
    """A deep copy of ``model`` in training mode with gradients on (the original is untouched)."""
    if not isinstance(model, nn.Module):
        raise TypeError(f"zero-cost proxies score an nn.Module; got {type(model).__name__} "
                        "(build the architecture first: arch.build()).")
    # A symbolic (@sn.searchable) module deep-copies by re-running its __init__, which draws
    # fresh weights from the global RNG: keep that RNG untouched and copy the state exactly.
    with torch.random.fork_rng(devices=[]):
        net = copy.deepcopy(model)
    net.load_state_dict(model.state_dict())
    if device is not None:
        net = net.to(device)
    if dtype is not None:
        net = net.to(dtype)
    net.train()
    for p in net.parameters():
        p.requires_grad_(True)
        p.grad = None
    return net


def prunable_layers(net: nn.Module) -> list[nn.Conv2d | nn.Linear]:
    """The Conv2d and Linear modules (the layers the pruning-at-init proxies score)."""
    layers: list[nn.Conv2d | nn.Linear] = [
        m for m in net.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    if not layers:
        raise ValueError("this zero-cost proxy scores Conv2d/Linear weights, and the model has none.")
    return layers


def is_relu(module: nn.Module) -> bool:
    """ReLU-family modules, recognized by class name as NASWOT's reference code does."""
    return "ReLU" in type(module).__name__


def gaussian_init_(net: nn.Module, generator: torch.Generator) -> nn.Module:
    """Zen-NAS / SWAP init: conv and linear weights N(0, 1), biases 0, norm layers (1, 0)."""
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                _normal_(m.weight, generator)
                if m.bias is not None:
                    m.bias.zero_()
            elif isinstance(m, (nn.BatchNorm2d, nn.GroupNorm)) and m.weight is not None:
                m.weight.fill_(1.0)
                m.bias.zero_()
    return net


def _normal_(t: torch.Tensor, generator: torch.Generator) -> None:
    # Drawn on the CPU generator, so a seed gives the same weights on every device.
    t.copy_(torch.randn(t.shape, generator=generator, dtype=torch.float32).to(t))


def seeded_generator(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(int(seed))


def global_pool_input(net: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The feature map before the global average pooling (Zen-NAS's ``forward_pre_GAP``).

    Uses the model's own ``forward_pre_GAP``/``forward_before_global_avg_pool`` when it
    has one, else the input of its last ``AdaptiveAvgPool2d``/``AdaptiveMaxPool2d``.
    """
    for name in ("forward_pre_GAP", "forward_before_global_avg_pool"):
        if callable(getattr(net, name, None)):
            return getattr(net, name)(x)
    pools = [m for m in net.modules() if isinstance(m, (nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d))]
    if not pools:
        raise ValueError("Zen-score reads the feature map before global pooling: the model needs an "
                         "nn.AdaptiveAvgPool2d (or a forward_pre_GAP(x) method).")
    return _input_of(pools[-1], net, x)


def _input_of(module: nn.Module, net: nn.Module, x: torch.Tensor) -> torch.Tensor:
    seen: list[torch.Tensor] = []
    handle = module.register_forward_hook(lambda m, inp, out: seen.append(inp[0]))
    try:
        net(x)
    finally:
        handle.remove()
    if not seen:
        raise RuntimeError(f"{type(module).__name__} was not called in the forward pass.")
    return seen[-1]


def forward_with_hook(net: nn.Module, modules: list, hook, x: torch.Tensor) -> None:
    """Runs ``net(x)`` without gradients with ``hook`` on each of ``modules``, then removes it."""
    handles = [m.register_forward_hook(hook) for m in modules]
    try:
        with torch.no_grad():
            net(x)
    finally:
        for h in handles:
            h.remove()
