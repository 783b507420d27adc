"""The bilevel training of a supernet that DARTS and DARTS-PT share.

:class:`Bilevel` holds the two optimizers (SGD on the operation weights, Adam
on the architecture weights) and the DARTS update steps; :class:`SearchData`
splits a Task's training images into a weights half and an architecture half;
:func:`train_epoch` is one epoch of alternating updates; :func:`evaluate` and
:func:`accuracy` score the supernet. DARTS (:mod:`symnas.algorithms.darts`)
trains with them and perturbation selection
(:mod:`symnas.algorithms.perturbation`) tunes with them between decisions.

Example::

    net = Supernet(space)
    opt = Bilevel(net, epochs=10)
    data = SearchData(task, batch_size=64)
    for epoch in range(10):
        train_epoch(net, opt, data, epoch, seed=0, order=1)
        opt.end_epoch()
    accuracy(net, task)                    # % on the Task's valid split
"""
from __future__ import annotations

import random
from collections.abc import Iterator, Sequence
from typing import Any, cast

import torch
from torch import nn
from torch.nn import functional as F

from symnas.outputs import logits
from symnas.supernet import Supernet

__all__ = ["Bilevel", "SearchData", "accuracy", "augment_cifar", "evaluate", "train_epoch"]


class Bilevel:
    """The two optimizers of a supernet and the DARTS update steps.

    Example::

        opt = Bilevel(net, epochs=10)
        opt.arch_step(xt, yt, xv, yv, order=2)
        opt.weight_step(xt, yt)
        opt.end_epoch()
    """

    def __init__(self, net: Supernet, *, epochs: int = 50, lr: float = 0.025, lr_min: float = 0.001,
                 momentum: float = 0.9, weight_decay: float = 3e-4, grad_clip: float | None = 5.0,
                 arch_lr: float = 3e-4, arch_betas: tuple[float, float] = (0.5, 0.999),
                 arch_weight_decay: float = 1e-3, unrolled_eps: float = 0.01):
        self.net = net
        self.weights = [p for p in net.weight_parameters() if p.requires_grad]
        self.alphas = net.arch_parameters()
        self.momentum, self.weight_decay, self.grad_clip = momentum, weight_decay, grad_clip
        self.unrolled_eps = unrolled_eps
        self.w_opt = torch.optim.SGD(self.weights, lr=lr, momentum=momentum,
                                     weight_decay=weight_decay)
        self.sched: torch.optim.lr_scheduler.LRScheduler = \
            torch.optim.lr_scheduler.CosineAnnealingLR(self.w_opt, max(1, epochs), eta_min=lr_min)
        self.a_opt = torch.optim.Adam(self.alphas, lr=arch_lr,
                                      betas=(arch_betas[0], arch_betas[1]),
                                      weight_decay=arch_weight_decay) if self.alphas else None

    @property
    def lr(self) -> float:
        return self.w_opt.param_groups[0]["lr"]

    def loss(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(logits(self.net(x)), y)

    # ---- architecture gradients ----------------------------------------------------
    def _grads(self, loss: torch.Tensor, params: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        gs = torch.autograd.grad(loss, params, allow_unused=True)
        return [torch.zeros_like(p) if g is None else g for g, p in zip(gs, params)]

    def arch_grad_first(self, xv: torch.Tensor, yv: torch.Tensor) -> list[torch.Tensor]:
        """``d L_val(w, alpha) / d alpha`` at the current weights (first order)."""
        return self._grads(self.loss(xv, yv), self.alphas)

    def arch_grad_second(self, xt: torch.Tensor, yt: torch.Tensor, xv: torch.Tensor,
                         yv: torch.Tensor) -> list[torch.Tensor]:
        """The unrolled gradient ``dL_val(w', alpha)/dalpha - xi * H v`` (DARTS eq. 7-8).

        ``w' = w - xi (momentum buffer * m + dL_train/dw + wd * w)`` with ``xi`` the
        current weight learning rate; the Hessian-vector product is
        ``(dL_train(w+)/dalpha - dL_train(w-)/dalpha) / (2 eps)``, ``w± = w ± eps v``,
        ``v = dL_val(w')/dw'``, ``eps = 0.01 / ||v||``.
        """
        xi, W = self.lr, self.weights
        gw = self._grads(self.loss(xt, yt), W)
        backup = [w.detach().clone() for w in W]
        try:
            with torch.no_grad():
                for w, g in zip(W, gw):
                    buf = self.w_opt.state.get(w, {}).get("momentum_buffer")
                    step = g + self.weight_decay * w
                    if buf is not None:
                        step = step + self.momentum * buf
                    w.sub_(xi * step)
            grads = self._grads(self.loss(xv, yv), list(self.alphas) + W)
            d_alpha, v = grads[:len(self.alphas)], grads[len(self.alphas):]
            norm = torch.sqrt(cast(torch.Tensor, sum((g * g).sum() for g in v)))
            eps = self.unrolled_eps / float(norm) if float(norm) > 0 else 0.0
            hvp = [torch.zeros_like(a) for a in self.alphas]
            if eps > 0:
                for sign in (1.0, -1.0):
                    with torch.no_grad():
                        for w, b, g in zip(W, backup, v):
                            w.copy_(b + sign * eps * g)
                    ga = self._grads(self.loss(xt, yt), self.alphas)
                    hvp = [h + sign * g for h, g in zip(hvp, ga)]
                hvp = [h / (2 * eps) for h in hvp]
        finally:
            with torch.no_grad():
                for w, b in zip(W, backup):
                    w.copy_(b)
        return [d - xi * h for d, h in zip(d_alpha, hvp)]

    def arch_step(self, xt: torch.Tensor, yt: torch.Tensor, xv: torch.Tensor, yv: torch.Tensor,
                  order: int = 1) -> None:
        """One Adam step of the architecture weights."""
        if self.a_opt is None:
            return
        grads = self.arch_grad_first(xv, yv) if order == 1 else \
            self.arch_grad_second(xt, yt, xv, yv)
        for a, g in zip(self.alphas, grads):
            a.grad = g.detach()
        self.a_opt.step()
        self.a_opt.zero_grad(set_to_none=True)

    def weight_step(self, x: torch.Tensor, y: torch.Tensor) -> float:
        """One SGD step of the operation weights (alphas untouched); returns the loss."""
        for a in self.alphas:
            a.requires_grad_(False)
        try:
            loss = self.loss(x, y)
            self.w_opt.zero_grad(set_to_none=True)
            loss.backward()
            if self.grad_clip:
                nn.utils.clip_grad_norm_(self.weights, self.grad_clip)
            self.w_opt.step()
        finally:
            for a in self.alphas:
                a.requires_grad_(True)
        return float(loss.detach())

    def end_epoch(self) -> None:
        self.sched.step()

    def state_dict(self) -> dict:
        """The optimizers' and the scheduler's state (for checkpoints)."""
        return {"w_opt": self.w_opt.state_dict(), "sched": self.sched.state_dict(),
                "a_opt": self.a_opt.state_dict() if self.a_opt is not None else None}

    def load_state_dict(self, state: dict) -> None:
        self.w_opt.load_state_dict(state["w_opt"])
        self.sched.load_state_dict(state["sched"])
        if self.a_opt is not None and state.get("a_opt") is not None:
            self.a_opt.load_state_dict(state["a_opt"])

    def set_constant_lr(self, lr: float) -> None:
        """Tuning after a perturbation decision: a fresh SGD at a constant ``lr``."""
        self.w_opt = torch.optim.SGD(self.weights, lr=lr, momentum=self.momentum,
                                     weight_decay=self.weight_decay)
        self.sched = torch.optim.lr_scheduler.LambdaLR(self.w_opt, lambda e: 1.0)


def evaluate(net: nn.Module, batches: Any, train_mode: bool = True) -> float:
    """Top-1 accuracy (%) of the supernet over ``batches`` (DARTS-PT scores candidates
    with BN in training mode, on batch statistics)."""
    correct = total = 0
    was = net.training
    net.train(train_mode)
    with torch.no_grad():
        for x, y in batches:
            correct += int((logits(net(x)).argmax(1) == y).sum())
            total += len(y)
    net.train(was)
    return 100.0 * correct / max(total, 1)


def accuracy(net: Supernet, task: Any, max_batches: int | None = None) -> float:
    """Accuracy (%) on the Task's valid split (the first ``max_batches`` batches)."""
    net.eval()
    return evaluate(net, task.batches("valid", task.eval_batch_size, shuffle=False,
                                      max_batches=max_batches), train_mode=False)


class SearchData:
    """The Task's training images split in halves: weights ('train') and architecture ('arch').

    ``fresh=True`` draws every step's batches afresh at random from the whole
    half (DARTS-PT's ``next(iter(queue))``) instead of walking one shuffled
    epoch; ``augment=True`` applies CIFAR augmentation to each batch (random
    crop with 4 pixels of zero padding, horizontal flip).
    """

    def __init__(self, task: Any, batch_size: int, max_batches: int | None = None, *,
                 fresh: bool = False, augment: bool = False):
        x, y = task.splits()["train"]
        n = len(y) // 2
        self.task = task.with_(data={"train": (x[:n], y[:n]), "arch": (x[n:], y[n:])})
        self.batch_size = batch_size
        self.max_batches = max_batches
        self.fresh, self.augment = fresh, augment

    def _batches(self, split: str, seed: int, max_batches: int | None) -> Iterator[tuple]:
        if not self.fresh:
            batches: Iterator[tuple] = self.task.batches(split, self.batch_size, seed=seed,
                                                         max_batches=max_batches)
        else:
            batches = self._fresh(split, seed, max_batches)
        if not self.augment:
            return batches
        gen = torch.Generator().manual_seed(seed + 7)
        return ((augment_cifar(x, gen), y) for x, y in batches)

    def _fresh(self, split: str, seed: int, max_batches: int | None) -> Iterator[tuple]:
        x, y = self.task.splits()[split]
        n = len(y)
        steps = -(-n // self.batch_size)
        if max_batches is not None:
            steps = min(steps, max_batches)
        gen = torch.Generator().manual_seed(seed)
        dev = self.task.torch_device
        for _ in range(steps):
            idx = torch.randperm(n, generator=gen)[:self.batch_size]
            yield x[idx].to(dev), y[idx].to(dev)

    def pairs(self, seed: int, max_batches: int | None = None) -> Iterator[tuple]:
        """(weights batch, architecture batch) pairs of one epoch."""
        mb = self.max_batches if max_batches is None else max_batches
        return zip(self._batches("train", seed, mb), self._batches("arch", seed + 1, mb))

    def valid_batches(self, max_batches: int | None = None) -> list:
        """A fixed list of architecture-half batches to score perturbations on."""
        return list(self.task.batches("arch", self.batch_size, shuffle=True, seed=12345,
                                      max_batches=max_batches))


def augment_cifar(x: torch.Tensor, gen: torch.Generator, pad: int = 4) -> torch.Tensor:
    """Random crop (``pad`` pixels of zero padding) and horizontal flip of each image.

    >>> g = torch.Generator().manual_seed(0)
    >>> augment_cifar(torch.ones(2, 3, 8, 8), g).shape
    torch.Size([2, 3, 8, 8])
    """
    n, _, h, w = x.shape
    padded = F.pad(x, (pad, pad, pad, pad))
    dy = torch.randint(0, 2 * pad + 1, (n,), generator=gen).tolist()
    dx = torch.randint(0, 2 * pad + 1, (n,), generator=gen).tolist()
    flip = (torch.rand(n, generator=gen) < 0.5).tolist()
    out = torch.stack([padded[i, :, dy[i]:dy[i] + h, dx[i]:dx[i] + w] for i in range(n)])
    if any(flip):
        idx = torch.tensor([i for i, f in enumerate(flip) if f], device=x.device)
        out[idx] = out[idx].flip(-1)
    return out


def train_epoch(net: Supernet, opt: Bilevel, data: SearchData, epoch: int, seed: int, *,
                order: int = 1, fix_alpha: bool = False, max_batches: int | None = None) -> float:
    """One epoch of DARTS: per batch pair, an architecture step (unless ``fix_alpha``) then a
    weight step; returns the mean training loss.

    On a supernet with elastic choices (widths, depths...) each step first draws
    their values uniformly (module choices stay mixed: DARTS learns those), and the
    largest configuration is made active again at the end.
    """
    net.train()
    total = count = 0.0
    rng = random.Random(seed * 7919 + 2 * epoch + 1)
    for (xt, yt), (xv, yv) in data.pairs(seed * 7919 + 2 * epoch, max_batches):
        if net.elastic:
            net.sample(rng, single_path=False)
        if not fix_alpha:
            opt.arch_step(xt, yt, xv, yv, order=order)
        total += opt.weight_step(xt, yt) * len(yt)
        count += len(yt)
    if net.elastic:
        net.reset_config(decisions=False)
    return total / max(count, 1)
