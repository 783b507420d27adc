"""Single-path training of elastic supernets: uniform sampling (SPOS) and the sandwich rule.

Both train a :class:`~symnas.supernet.Supernet` derived from the Space (every
choice kind: widths, kernels, depths as shared slices; module choices as mixed
ops run one candidate at a time), then search the trained supernet with a
black-box algorithm through :meth:`Supernet.evaluator` (inherited weights,
recalibrated BatchNorm) and report what it scored.

* :class:`SPOS` (Guo et al., ECCV 2020): each step trains one architecture drawn
  uniformly from the Space.
* :class:`Sandwich` (BigNAS, Yu et al. 2020; OFA, Cai et al. 2020): each step
  accumulates the gradients of the largest architecture (on the labels), the
  smallest and ``n_random`` random ones (on the largest's soft predictions:
  in-place distillation). Largest and smallest are taken over the elastic
  decisions (nested slices); module choices, whose candidates share no weights,
  are drawn at random in them too (``module_choices="extreme"``: pinned to the
  candidate with the most / fewest weights, which trains each candidate at one
  end of the elastic range only).

Training is resumable: every ``checkpoint_every`` steps and at each epoch end
the weights, optimizer, scheduler, random generators and position are saved
beside the search's store (:mod:`symnas.algorithms.checkpoint`); a killed run
started again with ``resume=True`` continues from there.

Example::

    import symnas as sn
    space = sn.spaces.mobilenet(num_classes=10)
    result = sn.search(space, sn.algorithms.Sandwich(epochs=10), sn.Task.cifar10(),
                       storage="runs/ofa.sqlite", name="ofa", constraints=["params_M <= 2"])
    result.best.decisions                       # the architecture evolution found on the supernet
"""
from __future__ import annotations

import logging
import math
import random
import time
from typing import Any

import pyglove as pg
import torch
from torch import nn
from torch.nn import functional as F

from symnas.outputs import logits
from symnas.protocols import Session, WeightSharingAlgorithm
from symnas.supernet import Supernet

from .bilevel import augment_cifar
from .checkpoint import Checkpoint, begin
from .registry import register

__all__ = ["SinglePath", "SPOS", "Sandwich"]

logger = logging.getLogger("symnas")


class SinglePath(pg.Object, WeightSharingAlgorithm):
    """Shared settings and loop of single-path supernet training (subclasses: one ``step``).

    Settings: ``epochs``, ``batch_size``, ``max_batches`` (cap per epoch), SGD
    ``lr`` (cosine to ``lr_min`` over all steps), ``momentum``, ``nesterov``,
    ``weight_decay``, ``grad_clip``, ``augment`` (random crop with 4 pixels of padding and
    horizontal flip of each training batch, as SPOS and OFA train; seeded per batch, so a
    resumed training sees the same images); after training, ``search`` (a registered
    black-box algorithm) evaluates ``search_budget`` architectures on the
    supernet, each after recalibrating BN on ``calibration_batches`` batches and
    scored on ``eval_batches`` valid batches (all by default); ``fixed``
    (decisions left out), ``checkpoint`` (a path; default beside the store),
    ``checkpoint_every`` (steps), ``seed`` (overrides the search's), ``quiet``.
    """

    epochs: int = 10
    batch_size: int = 64
    max_batches: int | None = None
    lr: float = 0.05
    lr_min: float = 0.0
    momentum: float = 0.9
    nesterov: bool = True
    weight_decay: float = 4e-5
    grad_clip: float | None = 5.0
    augment: bool = False
    search: str = "evolution"
    search_budget: int = 50
    calibration_batches: int = 4
    eval_batches: int | None = None
    fixed: dict | None = None
    checkpoint: str | None = None
    checkpoint_every: int = 50
    seed: int | None = None
    quiet: bool = False

    #: what the trials are ranked by when the search names no objective
    metric = "supernet_acc"
    #: the name in progress lines
    tag = "single-path"

    def _on_bound(self) -> None:
        super()._on_bound()
        self._trained: Supernet | None = None
        if self.epochs < 0 or self.batch_size < 1 or self.search_budget < 1:
            raise ValueError(f"{type(self).__name__} needs epochs >= 0, batch_size >= 1 and "
                             "search_budget >= 1.")
        if self.checkpoint_every < 1:
            raise ValueError("checkpoint_every is a number of steps >= 1.")

    @property
    def trained(self) -> Supernet | None:
        """The supernet the last :meth:`run` of this object trained (None before one; also
        None when ``sn.search`` returned a finished search from its store without running):
        after ``sn.search(space, algo, task)``, ``algo.trained.evaluator(task)`` scores more
        architectures on it and ``algo.trained.subnet(genome, task)`` gives a plain model."""
        return self._trained

    # ---- pieces a subclass may change ----------------------------------------------------
    def supernet(self, space: Any) -> Supernet:
        """The supernet of ``space``: BatchNorm as the model writes it (affine, running stats)."""
        return Supernet(space, fixed=dict(self.fixed or {}), affine=None, track_running_stats=None)

    def step(self, net: Supernet, x: torch.Tensor, y: torch.Tensor, rng: random.Random) -> float:
        """Accumulates one step's gradients; returns its loss."""
        raise NotImplementedError

    # ---- training --------------------------------------------------------------------
    def steps_per_epoch(self, task: Any) -> int:
        n = math.ceil(len(task.splits()["train"][1]) / self.batch_size)
        return n if self.max_batches is None else min(n, self.max_batches)

    def train(self, net: Supernet, task: Any, seed: int, ckpt: Checkpoint | None = None) -> dict:
        """Trains ``net`` on ``task`` (resuming from ``ckpt``); returns training statistics."""
        if not hasattr(task, "splits"):
            raise TypeError(f"{type(self).__name__}.train(net, task, seed) needs a Task (its "
                            f"training data), got {type(task).__name__}; e.g. sn.Task.cifar10().")
        params = net.weight_parameters()
        opt = torch.optim.SGD(params, lr=self.lr, momentum=self.momentum,
                              weight_decay=self.weight_decay,
                              nesterov=self.nesterov and self.momentum > 0)
        per_epoch = self.steps_per_epoch(task)
        total = max(1, self.epochs * per_epoch)
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, total, eta_min=self.lr_min)
        rng = random.Random(seed)
        start_epoch = start_step = 0
        state = ckpt.load() if ckpt is not None else None
        if state is not None and ckpt is not None:
            net.load_state_dict(state["net"])
            opt.load_state_dict(state["optimizer"])
            sched.load_state_dict(state["scheduler"])
            rng.setstate(_tuple(state["rng"]))
            torch.set_rng_state(state["torch_rng"])
            start_epoch, start_step = int(state["epoch"]), int(state["step"])
            self._log(f"[{self.tag}] resumed from {ckpt.path} at epoch {start_epoch + 1}, "
                      f"step {start_step}")
        else:
            torch.manual_seed(seed)
        t0 = time.perf_counter()
        images = steps = 0
        loss = float("nan")

        def save(epoch: int, step: int) -> None:
            if ckpt is not None:
                ckpt.save({"net": net.state_dict(), "optimizer": opt.state_dict(),
                           "scheduler": sched.state_dict(), "rng": rng.getstate(),
                           "torch_rng": torch.get_rng_state(), "epoch": epoch, "step": step})

        net.train()
        for epoch in range(start_epoch, self.epochs):
            losses = []
            batches = task.batches("train", self.batch_size, seed=seed * 1000 + epoch,
                                   max_batches=per_epoch)
            for b, (x, y) in enumerate(batches):
                if epoch == start_epoch and b < start_step:
                    continue
                if self.augment:
                    if x.dim() != 4:
                        raise ValueError(f"augment=True crops and flips images (N, C, H, W), but "
                                         f"this Task's batches have shape {tuple(x.shape)}; leave "
                                         "augment off for data that is not images.")
                    # one generator per batch: a resumed epoch skips to batch b with no draws to replay
                    x = augment_cifar(x, torch.Generator().manual_seed((seed * 1000 + epoch) * 100_003 + b))
                opt.zero_grad(set_to_none=True)
                loss = self.step(net, x, y, rng)
                if self.grad_clip:
                    nn.utils.clip_grad_norm_(params, self.grad_clip)
                opt.step()
                sched.step()
                losses.append(loss)
                images += len(y)
                steps += 1
                self._log(f"[{self.tag}] epoch {epoch + 1}/{self.epochs} step {b + 1}/{per_epoch} "
                          f"loss {loss:.3f}", debug=True)
                if (b + 1) % self.checkpoint_every == 0 and b + 1 < per_epoch:
                    save(epoch, b + 1)
            save(epoch + 1, 0)
            if losses:
                self._log(f"[{self.tag}] epoch {epoch + 1}/{self.epochs} loss "
                          f"{sum(losses) / len(losses):.3f}")
        seconds = time.perf_counter() - t0
        net.reset_config()
        return {"train_steps": steps, "train_images": images, "train_seconds": seconds,
                "train_images_per_s": images / seconds if seconds > 0 else 0.0}

    # ---- the search --------------------------------------------------------------------
    def run(self, space: Any, task: Any, session: Session) -> None:
        """Trains the supernet, searches it with ``search``, reports the scored architectures
        (the best first) to ``session``."""
        from symnas.search import search

        t0 = time.perf_counter()
        net, seed, ckpt = begin(self, space, task, session)
        stats = self.train(net, task, seed, ckpt)
        self._trained = net
        evaluator = net.evaluator(task, calibration_batches=self.calibration_batches,
                                  eval_batches=self.eval_batches, batch_size=self.batch_size)
        inner = search(net.search_space, self.search, evaluator, budget=self.search_budget, seed=seed,
                       objective=evaluator.metric, constraints=session.objectives.constraints,
                       progress=False, storage=False)
        ranked = sorted(inner.trials, key=lambda t: (not t.ok, -(t.metrics or {}).get(evaluator.metric, 0.0)))
        best = inner.best.genome if inner.best is not None else None
        ranked.sort(key=lambda t: t.genome != best)
        seconds = time.perf_counter() - t0
        for rank, t in enumerate(ranked):
            if not t.metrics:
                continue
            metrics = {**t.metrics, "supernet_acc": t.metrics[evaluator.metric], "rank": rank,
                       "selected": rank == 0, "selection": self.search}
            if rank == 0:
                metrics.update(stats, search_seconds=seconds)
            for o in session.objectives:
                if o.name == "reward":
                    metrics.setdefault("reward", float(len(ranked) - rank))
            session.report(t.genome, metrics)

    def _log(self, text: str, debug: bool = False) -> None:
        logger.log(logging.DEBUG if (self.quiet or debug) else logging.INFO, text)


def _tuple(state: Any) -> Any:
    """``random.Random.getstate()`` back from its saved form (lists become tuples)."""
    return tuple(_tuple(s) for s in state) if isinstance(state, list) else state


@register("spos", "uniform_sampling", kind="weight-sharing")
class SPOS(SinglePath):
    """Single-path one-shot (Guo et al., 2020): each step trains one architecture drawn
    uniformly from the Space (see :class:`SinglePath` for the settings)."""

    tag = "spos"

    def step(self, net: Supernet, x: torch.Tensor, y: torch.Tensor, rng: random.Random) -> float:
        net.sample(rng)
        loss = F.cross_entropy(logits(net(x)), y)
        loss.backward()
        return float(loss.detach())


@register("sandwich", "bignas", kind="weight-sharing")
class Sandwich(SinglePath):
    """The sandwich rule with in-place distillation (BigNAS / OFA): each step the largest
    architecture learns from the labels, the smallest and ``n_random`` random ones from the
    largest's predictions (``distill=False``: from the labels too).

    ``module_choices``: how the largest and smallest take the module choices (mixed ops,
    whose candidates have separate weights): ``"random"`` (drawn uniformly each step) or
    ``"extreme"`` (the candidate with the most / fewest weights: each candidate is then
    trained at one end of the elastic range only, and the architectures that mix candidates
    score far below both ends).
    """

    n_random: int = 2
    distill: bool = True
    module_choices: str = "random"
    tag = "sandwich"

    def _on_bound(self) -> None:
        super()._on_bound()
        if self.module_choices not in ("random", "extreme"):
            raise ValueError(f"Sandwich(module_choices={self.module_choices!r}): use 'random' "
                             "(module choices drawn in the largest and smallest) or 'extreme'.")

    def step(self, net: Supernet, x: torch.Tensor, y: torch.Tensor, rng: random.Random) -> float:
        draw = rng if self.module_choices == "random" else None
        net.use(net.extreme(largest=True, rng=draw))
        out = logits(net(x))
        loss = F.cross_entropy(out, y)
        loss.backward()
        soft = torch.softmax(out.detach(), -1)
        total = float(loss.detach())
        small = [net.extreme(largest=False, rng=draw)] + [net.space.genome_spec.random(rng)
                                                for _ in range(self.n_random)]
        for genome in small:
            net.use(genome)
            out = logits(net(x))
            sub = -(soft * torch.log_softmax(out, -1)).sum(-1).mean() if self.distill \
                else F.cross_entropy(out, y)
            sub.backward()
            total += float(sub.detach())
        return total / (1 + len(small))
