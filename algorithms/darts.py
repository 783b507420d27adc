"""DARTS: differentiable architecture search over a supernet derived from any Space.

Bilevel optimization (Liu et al., 2019): the supernet's operation weights are
trained by SGD on one half of the Task's training images, its architecture
weights (alphas) by Adam on the other half. ``order=1`` uses the gradient of the
validation loss at the current weights; ``order=2`` differentiates through one
unrolled SGD step, with the Hessian-vector product taken by finite differences
as in the DARTS paper. Defaults are DARTS's and NAS-Bench-201's: SGD lr 0.025
cosine to 0.001, momentum 0.9, weight decay 3e-4, gradient clip 5; Adam lr
3e-4, betas (0.5, 0.999), weight decay 1e-3; BN without affine parameters.

The architecture is then selected by ``selection="magnitude"`` (argmax alpha,
``none`` excluded) or ``"perturbation"`` (DARTS-PT, see
:mod:`symnas.algorithms.perturbation`).

Example::

    import symnas as sn
    space = sn.spaces.nasbench201(C=8, N=1)
    task = sn.Task.cifar10()
    algo = sn.algorithms.DARTS(selection="perturbation", epochs=10)
    result = sn.search(space, algo, task, budget=1, seed=0)
    result.trials[0].decisions            # the selected cell
"""
from __future__ import annotations

import time
from typing import Any, Optional, Sequence, Tuple

import pyglove as pg
import torch
from torch import nn
from torch.nn import functional as F

from symnas.outputs import logits
from symnas.result import DONE, SearchResult, Trial
from symnas.supernet import Supernet

from .registry import register

__all__ = ["DARTS", "Bilevel"]


class Bilevel:
    """The two optimizers of a supernet and the DARTS update steps.

    Example::

        opt = Bilevel(net, epochs=10)
        opt.arch_step(xt, yt, xv, yv, order=2)
        opt.weight_step(xt, yt)
        opt.end_epoch()
    """

    def __init__(self, net: Supernet, *, epochs: int = 50, lr: float = 0.025, lr_min: float = 0.001, momentum: float = 0.9,
                 weight_decay: float = 3e-4, grad_clip: float | None = 5.0,
                 arch_lr: float = 3e-4, arch_betas: Tuple[float, float] = (0.5, 0.999),
                 arch_weight_decay: float = 1e-3, unrolled_eps: float = 0.01):
        self.net = net
        self.weights = [p for p in net.weight_parameters() if p.requires_grad]
        self.alphas = net.arch_parameters()
        self.momentum, self.weight_decay, self.grad_clip = momentum, weight_decay, grad_clip
        self.unrolled_eps = unrolled_eps
        self.w_opt = torch.optim.SGD(self.weights, lr=lr, momentum=momentum,
                                     weight_decay=weight_decay)
        self.sched = torch.optim.lr_scheduler.CosineAnnealingLR(self.w_opt, max(1, epochs),
                                                                eta_min=lr_min)
        self.a_opt = torch.optim.Adam(self.alphas, lr=arch_lr, betas=tuple(arch_betas),
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
            norm = torch.sqrt(sum((g * g).sum() for g in v))
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


@register("darts")
class DARTS(pg.Object):
    """Weight-sharing search: DARTS training of a supernet derived from the Space.

    ``sn.search(space, DARTS(...), task, budget=...)`` ignores the budget
    (the epochs set the cost) and returns a SearchResult whose first trial is
    the selected architecture, followed by the ``top_k`` architectures by alpha
    (scored right after supernet training). Each trial's ``supernet_acc`` is the
    supernet's accuracy (%) on the Task's valid split with that architecture's
    choices fixed (a one-shot estimate), ``alpha_score`` its sum of log-softmax
    weights; the selected one also records the alphas. With the default
    objective, ``reward`` ranks the trials as DARTS prefers them, so
    ``result.best`` is the selected architecture; ``objective="supernet_acc"``
    ranks them by one-shot accuracy instead.

    Settings: ``selection`` ('magnitude' or 'perturbation'), ``order`` (1 or 2),
    ``epochs``, ``batch_size``, ``max_batches`` (cap per epoch), the optimizer
    settings (DARTS/NAS-Bench-201 defaults), ``fix_alpha`` (never train alphas:
    DARTS-PT's "fix alpha"), perturbation settings ``tune_epochs``, ``tune_lr``,
    ``tune_batches``, ``eval_batches``; ``fixed`` (values for choices the
    supernet cannot mix), ``quiet``.
    """

    selection: str = "magnitude"
    order: int = 1
    epochs: int = 50
    batch_size: int = 64
    max_batches: Optional[int] = None
    lr: float = 0.025
    lr_min: float = 0.001
    momentum: float = 0.9
    weight_decay: float = 3e-4
    grad_clip: Optional[float] = 5.0
    arch_lr: float = 3e-4
    arch_betas: Tuple[float, float] = (0.5, 0.999)
    arch_weight_decay: float = 1e-3
    fix_alpha: bool = False
    tune_epochs: int = 5
    tune_lr: float = 0.0025
    tune_batches: Optional[int] = None
    eval_batches: Optional[int] = None
    top_k: int = 3
    fixed: Optional[dict] = None
    seed: Optional[int] = None
    quiet: bool = False

    weight_sharing = True

    def _on_bound(self):
        super()._on_bound()
        if self.selection not in ("magnitude", "perturbation"):
            raise ValueError(f"DARTS(selection={self.selection!r}): use 'magnitude' or "
                             "'perturbation'.")
        if self.order not in (1, 2):
            raise ValueError(f"DARTS(order={self.order}): use 1 (first order) or 2 (unrolled).")
        if self.epochs < 0 or self.batch_size < 1:
            raise ValueError("DARTS needs epochs >= 0 and batch_size >= 1.")

    # ---- the search ----------------------------------------------------------------
    def supernet(self, space: Any) -> Supernet:
        """The supernet of ``space`` with this algorithm's settings."""
        return Supernet(space, fixed=dict(self.fixed or {}))

    def run(self, space: Any, task: Any, *, seed: int | None = None, objectives: Any = None,
            name: str | None = None) -> SearchResult:
        """Builds the supernet, trains it on ``task``, selects; returns a SearchResult."""
        from symnas.objective import Objectives
        from symnas.task import Task
        if not isinstance(task, Task):
            raise TypeError(f"DARTS trains a supernet and needs a sn.Task as evaluator (data, "
                            f"device), got {type(task).__name__}; e.g. sn.Task.cifar10().")
        objectives = objectives or Objectives.parse(None)
        seed = self.seed if seed is None else seed
        seed = 0 if seed is None else int(seed)
        t0 = time.perf_counter()
        torch.manual_seed(seed)
        dev = task.torch_device
        net = self.supernet(space).to(dev)
        if self.fix_alpha:
            with torch.no_grad():
                for a in net.arch_parameters():
                    a.zero_()
        search = SearchData(task, self.batch_size, self.max_batches)
        opt = self.optimizer(net)
        for epoch in range(self.epochs):
            loss = self.train_epoch(net, opt, search, epoch, seed)
            opt.end_epoch()
            self._log(f"[darts] epoch {epoch + 1}/{self.epochs} loss {loss:.3f} "
                      f"genome {net.genome()}")
        alphas = net.probabilities()
        top = net.top_k(self.top_k)
        candidates = [(g, score, self._oneshot(net, g, task)) for g, score in top]
        if self.selection == "perturbation":
            from .perturbation import perturbation_select
            evals = search.valid_batches(self.eval_batches)
            genome = perturbation_select(net, opt, search, evals=evals, seed=seed,
                                         tune_epochs=self.tune_epochs, tune_lr=self.tune_lr,
                                         tune_batches=self.tune_batches, order=self.order,
                                         fix_alpha=self.fix_alpha, log=self._log)
            acc = _accuracy(net, task, self.eval_batches)
        else:
            genome = net.genome()
            acc = next((a for g, _, a in candidates if g == genome), None)
            if acc is None:
                acc = self._oneshot(net, genome, task)
        result = SearchResult(space, objectives, name=name, algorithm=self)
        rows = [(genome, {"supernet_acc": acc, "selected": True, "selection": self.selection,
                          "alpha_score": net.score(genome), "alphas": alphas,
                          "search_seconds": time.perf_counter() - t0})]
        rows += [(g, {"supernet_acc": a, "alpha_score": s, "selected": False,
                      "selection": "magnitude_top_k"}) for g, s, a in candidates]
        for rank, (g, metrics) in enumerate(rows):
            # Without a named objective, `reward` ranks the trials as DARTS prefers them.
            metrics["rank"] = rank
            for o in objectives:
                metrics.setdefault(o.name, float(len(rows) - rank) if o.name == "reward"
                                   else metrics["supernet_acc"])
            t = Trial(rank, space.arch(g), seed=seed)
            t.metrics, t.reward, t.status = metrics, objectives.reward(metrics), DONE
            result.trials.append(t)
        return result

    def _oneshot(self, net: Supernet, genome: tuple, task: Any) -> float:
        """Accuracy of the supernet with every decision fixed to ``genome``'s choices."""
        saved = [(d.name, d.chosen, list(d.mask)) for d in net.decisions]
        try:
            for d in net.decisions:
                if d.kind == "oneof":
                    net.fix(d.name, genome[d.genes[0]])
                else:
                    net.fix(d.name, [genome[g] for g in d.genes])
            return _accuracy(net, task, self.eval_batches)
        finally:
            for name, chosen, mask in saved:
                d = net.decision(name)
                d.chosen, d.mask[:] = chosen, mask

    def optimizer(self, net: Supernet) -> Bilevel:
        """The bilevel optimizers with this algorithm's settings."""
        return Bilevel(net, epochs=self.epochs, lr=self.lr,
                       lr_min=self.lr_min, momentum=self.momentum,
                       weight_decay=self.weight_decay, grad_clip=self.grad_clip,
                       arch_lr=self.arch_lr, arch_betas=self.arch_betas,
                       arch_weight_decay=self.arch_weight_decay)

    def train_epoch(self, net: Supernet, opt: Bilevel, data: "SearchData", epoch: int,
                    seed: int, max_batches: int | None = None) -> float:
        """One epoch of bilevel updates (alphas skipped with ``fix_alpha``); the mean loss."""
        return train_epoch(net, opt, data, epoch, seed, order=self.order,
                           fix_alpha=self.fix_alpha, max_batches=max_batches)

    def _log(self, text: str) -> None:
        if not self.quiet:
            print(text, flush=True)


def _accuracy(net: Supernet, task: Any, max_batches: int | None = None) -> float:
    """Accuracy (%) on the Task's valid split (the first ``max_batches`` batches)."""
    net.eval()
    return evaluate(net, task.batches("valid", task.eval_batch_size, shuffle=False,
                                      max_batches=max_batches), train_mode=False)


class SearchData:
    """The Task's training images split in halves: weights ('train') and architecture ('arch')."""

    def __init__(self, task: Any, batch_size: int, max_batches: int | None = None):
        x, y = task.splits()["train"]
        n = len(y) // 2
        self.task = task.with_(data={"train": (x[:n], y[:n]), "arch": (x[n:], y[n:])})
        self.batch_size = batch_size
        self.max_batches = max_batches

    def pairs(self, seed: int, max_batches: int | None = None):
        """(weights batch, architecture batch) pairs of one epoch."""
        mb = self.max_batches if max_batches is None else max_batches
        return zip(self.task.batches("train", self.batch_size, seed=seed, max_batches=mb),
                   self.task.batches("arch", self.batch_size, seed=seed + 1, max_batches=mb))

    def valid_batches(self, max_batches: int | None = None) -> list:
        """A fixed list of architecture-half batches to score perturbations on."""
        return list(self.task.batches("arch", self.batch_size, shuffle=True, seed=12345,
                                      max_batches=max_batches))


def train_epoch(net: Supernet, opt: Bilevel, data: SearchData, epoch: int, seed: int, *,
                order: int = 1, fix_alpha: bool = False, max_batches: int | None = None) -> float:
    """One epoch of DARTS: per batch pair, an architecture step then a weight step."""
    net.train()
    total = count = 0.0
    for (xt, yt), (xv, yv) in data.pairs(seed * 7919 + 2 * epoch, max_batches):
        if not fix_alpha:
            opt.arch_step(xt, yt, xv, yv, order=order)
        total += opt.weight_step(xt, yt) * len(yt)
        count += len(yt)
    return total / max(count, 1)
