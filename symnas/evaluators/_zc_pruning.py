"""Pruning-at-initialization saliencies as zero-cost proxies (Abdelfattah et al., ICLR 2021).

Each saliency is computed per weight of every Conv2d/Linear layer and summed over
the network, as in SamsungLabs/zero-cost-nas and NASLib (``find_measures``):

- ``synflow``: |theta * dR/dtheta| with R = sum of the output of the network whose
  parameters and buffers are all made positive (abs), BatchNorm removed, on one
  all-ones input, in float64 (Tanaka et al., 2020).
- ``snip``: |theta * dL/dtheta| with L the cross-entropy of the batch (Lee et al., 2019).
- ``grad_norm``: the sum over layers of each layer's gradient norm ||dL/dW||_2.
- ``grasp``: -theta * (H g), H g the Hessian-gradient product (Wang et al., 2020).
- ``fisher``: per output channel 0.5 * mean_n (sum_hw a * dL/da)^2 for the layer's
  output a, spread over the channel's weights (Theis et al., 2018; Turner et al., 2020).

Example:

>>> import torch
>>> from torch import nn
>>> _ = torch.manual_seed(0)
>>> model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
...                       nn.Conv2d(8, 8, 3, padding=1), nn.ReLU(),
...                       nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 10))
>>> batch = (torch.randn(8, 3, 8, 8, generator=torch.Generator().manual_seed(0)), torch.arange(8))
>>> round(synflow(model, batch), 2), round(snip(model, batch), 4), round(grad_norm(model, batch), 4)
(304.36, 0.327, 0.2838)
>>> shared = loss_gradients(model, batch)          # one backward pass for snip, grad_norm, ...
>>> snip(model, batch, shared=shared) == snip(model, batch)
True
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from symnas.outputs import logits

from ._zc_common import prunable_layers, split_batch, working_copy


def synflow(model: nn.Module, batch) -> float:
    """SynFlow: sum |theta * dR/dtheta| on the all-positive, BN-free network in float64,
    in eval mode as SynFlow's own pruning loop scores (dropout off: the score is data- and
    noise-free)."""
    x, _ = split_batch(batch, "synflow")
    net = working_copy(model, x.device).eval()
    for module in list(net.modules()):  # bn=False in the reference: BN is skipped
        for child_name, child in list(module.named_children()):
            if isinstance(child, nn.modules.batchnorm._BatchNorm):
                setattr(module, child_name, nn.Identity())
    net = net.double()
    with torch.no_grad():
        for t in net.state_dict().values():
            if t.is_floating_point():
                t.abs_()
    layers = prunable_layers(net)
    ones = torch.ones((1,) + tuple(x.shape[1:]), dtype=torch.float64, device=x.device)
    torch.sum(logits(net(ones))).backward()
    total = torch.zeros((), dtype=torch.float64, device=x.device)
    for layer in layers:
        if layer.weight.grad is not None:
            total += (layer.weight * layer.weight.grad).abs().sum()
    return float(total.detach())


def _loss_grads(net: nn.Module, x: torch.Tensor, y: torch.Tensor, weights: list,
                create_graph: bool = False) -> tuple:
    loss = F.cross_entropy(logits(net(x)), y)
    return torch.autograd.grad(loss, weights, allow_unused=True, create_graph=create_graph)


def loss_gradients(model: nn.Module, batch, proxy: str = "snip") -> dict:
    """One forward/backward of the cross-entropy on a working copy, shared by snip,
    grad_norm and fisher: ``layers``, their ``weights`` and weight ``grads``, and each
    layer call's output ``acts`` with its gradient ``act_grads``."""
    x, y = split_batch(batch, proxy, needs_labels=True)
    net = working_copy(model, x.device)
    layers = prunable_layers(net)
    weights = [m.weight for m in layers]
    acts: list[tuple[nn.Module, torch.Tensor]] = []
    handles = [m.register_forward_hook(lambda m, inp, out: acts.append((m, out))) for m in layers]
    try:
        loss = F.cross_entropy(logits(net(x)), y)
    finally:
        for h in handles:
            h.remove()
    grads = torch.autograd.grad(loss, weights + [a for _, a in acts], allow_unused=True)
    return {"layers": layers, "weights": weights, "grads": grads[:len(weights)],
            "acts": acts, "act_grads": grads[len(weights):]}


def snip(model: nn.Module, batch, *, shared: dict | None = None) -> float:
    """SNIP: sum over Conv/Linear weights of |theta * dL/dtheta| (cross-entropy on the batch)."""
    g = shared or loss_gradients(model, batch, "snip")
    return float(sum(float((w.detach() * d).abs().sum())
                     for w, d in zip(g["weights"], g["grads"]) if d is not None))


def grad_norm(model: nn.Module, batch, *, shared: dict | None = None) -> float:
    """Gradient norm: the sum over Conv/Linear layers of ||dL/dW||_2."""
    g = shared or loss_gradients(model, batch, "grad_norm")
    return float(sum(float(d.norm()) for d in g["grads"] if d is not None))


def grasp(model: nn.Module, batch, *, shared: dict | None = None) -> float:
    """GraSP: sum over Conv/Linear weights of -theta * (H g) (temperature 1, one batch).

    ``shared``: a :func:`loss_gradients` result for the same batch supplies g.
    """
    x, y = split_batch(batch, "grasp", needs_labels=True)
    net = working_copy(model, x.device)
    weights = [m.weight for m in prunable_layers(net)]
    first = shared["grads"] if shared is not None else _loss_grads(net, x, y, weights)
    g = [None if t is None else t.detach() for t in first]
    grad_f = _loss_grads(net, x, y, weights, create_graph=True)
    z = sum((gw * gf).sum() for gw, gf in zip(g, grad_f) if gw is not None and gf is not None)
    if not isinstance(z, torch.Tensor) or not z.requires_grad:
        return 0.0
    hg = torch.autograd.grad(z, weights, allow_unused=True)
    return float(sum(float((-w.detach() * h).sum()) for w, h in zip(weights, hg) if h is not None))


def fisher(model: nn.Module, batch, *, shared: dict | None = None) -> float:
    """Fisher: per channel 0.5 * mean_n (sum_hw a * dL/da)^2 of each Conv/Linear output a.

    Each channel's value counts once per weight of that channel (the reference
    broadcasts it over ``weight.shape[1:]`` before summing).
    """
    g = shared or loss_gradients(model, batch, "fisher")
    total = 0.0
    for (layer, act), grad in zip(g["acts"], g["act_grads"]):
        if grad is None:
            continue
        prod = act.detach() * grad
        g_nk = prod.sum(dim=tuple(range(2, prod.dim()))) if prod.dim() > 2 else prod
        per_channel = g_nk.pow(2).mean(0).mul(0.5).abs()
        total += float(per_channel.sum()) * layer.weight[0].numel()
    return total
