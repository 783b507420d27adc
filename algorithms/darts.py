"""DARTS: differentiable architecture search over a supernet derived from any Space.

Bilevel optimization (Liu et al., 2019): the supernet's operation weights are
trained by SGD on one half of the Task's training images, its architecture
weights (alphas) by Adam on the other half. ``order=1`` uses the gradient of the
validation loss at the current weights; ``order=2`` differentiates through one
unrolled SGD step, with the Hessian-vector product taken by finite differences
as in the DARTS paper. Defaults are DARTS's and NAS-Bench-201's: SGD lr 0.025
cosine to 0.001, momentum 0.9, weight decay 3e-4, gradient clip 5; Adam lr
3e-4, betas (0.5, 0.999), weight decay 1e-3; BN without affine parameters.
The training machinery is :mod:`symnas.algorithms.bilevel`.

The architecture is then selected by ``selection="magnitude"`` (argmax alpha,
``none`` excluded) or ``"perturbation"`` (DARTS-PT, see
:mod:`symnas.algorithms.perturbation`). :meth:`DARTS.pt_paper` (registered as
``"darts_pt"``) is DARTS-PT as the paper's code runs it on NAS-Bench-201.

The supernet may hold elastic choices too (widths, depths: a hybrid space
needs no freezing): each step draws their values uniformly while the module
choices stay mixed, and the derived architecture takes their largest values.
Training resumes: each epoch ends with a checkpoint beside the search's store
(:mod:`symnas.algorithms.checkpoint`); a killed search started again with
``resume=True`` continues from the last finished epoch.

**DARTS-PT as its code does it** (``DARTS.pt_paper()``, ruocwang/darts-pt,
``nasbench201/``): 100 supernet epochs, batch 64; BatchNorm without affine
parameters but *with* running statistics; every step's batches drawn afresh
at random from each half, with CIFAR augmentation (random crop, flip);
selection edges in random order, each candidate's removal scored on the whole
architecture half with BN in training mode; the first of equally harmful
candidates kept; ``5 * (edges - 1)`` tuning epochs in all (25 on NAS-Bench-201)
at lr 0.0025 (alphas still trained), a decision every 5 epochs and one before
the last; the magnitude baseline is argmax alpha *including* ``none``.
Differences that remain: augmentation pads with zeros in normalized space (the
paper pads black pixels before normalizing) and has no cutout (off in the
paper's NAS-Bench-201 script too); the alpha step uses the architecture half's
batch of the same step (as the paper), but scoring batches are fixed (the
paper reshuffles its loader each time, which only changes BN batch
composition); the edge order comes from Python's seeded ``random`` (the paper:
``numpy.random`` seeded with the run's seed).

Example::

    import symnas as sn
    space = sn.spaces.nasbench201(C=8, N=1)
    task = sn.Task.cifar10()
    algo = sn.algorithms.DARTS(selection="perturbation", epochs=10)
    result = sn.search(space, algo, task, budget=1, seed=0)
    result.trials[0].decisions            # the selected cell
"""
from __future__ import annotations

import logging
import time
from typing import Any

import pyglove as pg
import torch

from symnas.protocols import Session, WeightSharingAlgorithm
from symnas.supernet import Supernet

from .bilevel import Bilevel, SearchData, accuracy, evaluate, train_epoch
from .checkpoint import begin
from .perturbation import perturbation_select
from .registry import register

# Bilevel, SearchData, evaluate and train_epoch live in .bilevel; they stay importable here.
__all__ = ["DARTS", "Bilevel", "SearchData", "darts_pt", "evaluate", "train_epoch"]

logger = logging.getLogger("symnas")


@register("darts", kind="weight-sharing")
class DARTS(pg.Object, WeightSharingAlgorithm):
    """Weight-sharing search: DARTS training of a supernet derived from the Space.

    A :class:`~symnas.protocols.WeightSharingAlgorithm`: it reports its trials to
    the search's session, so ``sn.search(space, DARTS(...), task)`` records them
    like a black-box search's. The budget is not used (the epochs set the cost);
    the search returns a SearchResult whose first trial is
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
    ``tune_batches``, ``eval_batches``, ``tune_schedule`` ('per_decision' or
    'paper', with ``proj_interval``), ``tie_break`` ('alpha' or 'first'); data
    settings ``fresh_batches``, ``augment``; ``track_running_stats`` (BN of the
    candidates), ``magnitude_none`` (magnitude argmax includes ``none``);
    ``fixed`` (decisions left out of the search), ``checkpoint`` (a path;
    default beside the store), ``seed`` (overrides the search's seed), ``quiet``
    (progress lines go to the ``symnas`` logger at DEBUG instead of INFO).
    """

    selection: str = "magnitude"
    order: int = 1
    epochs: int = 50
    batch_size: int = 64
    max_batches: int | None = None
    lr: float = 0.025
    lr_min: float = 0.001
    momentum: float = 0.9
    weight_decay: float = 3e-4
    grad_clip: float | None = 5.0
    arch_lr: float = 3e-4
    arch_betas: tuple[float, float] = (0.5, 0.999)
    arch_weight_decay: float = 1e-3
    fix_alpha: bool = False
    tune_epochs: int = 5
    tune_lr: float = 0.0025
    tune_batches: int | None = None
    eval_batches: int | None = None
    top_k: int = 3
    tune_schedule: str = "per_decision"
    proj_interval: int = 5
    tie_break: str = "alpha"
    fresh_batches: bool = False
    augment: bool = False
    track_running_stats: bool = False
    magnitude_none: bool = False
    fixed: dict | None = None
    checkpoint: str | None = None
    seed: int | None = None
    quiet: bool = False

    #: what DARTS ranks its trials by when the search names no objective
    metric = "reward"

    def _on_bound(self):
        super()._on_bound()
        if self.selection not in ("magnitude", "perturbation"):
            raise ValueError(f"DARTS(selection={self.selection!r}): use 'magnitude' or "
                             "'perturbation'.")
        if self.order not in (1, 2):
            raise ValueError(f"DARTS(order={self.order}): use 1 (first order) or 2 (unrolled).")
        if self.epochs < 0 or self.batch_size < 1:
            raise ValueError("DARTS needs epochs >= 0 and batch_size >= 1.")
        if self.tune_schedule not in ("per_decision", "paper"):
            raise ValueError(f"DARTS(tune_schedule={self.tune_schedule!r}): use 'per_decision' "
                             "or 'paper'.")
        if self.tie_break not in ("alpha", "first"):
            raise ValueError(f"DARTS(tie_break={self.tie_break!r}): use 'alpha' or 'first'.")

    @classmethod
    def pt_paper(cls, **overrides: Any) -> DARTS:
        """DARTS-PT as the paper's code runs it on NAS-Bench-201 (see the module docstring)."""
        settings: dict[str, Any] = dict(
            selection="perturbation", epochs=100, batch_size=64, tune_schedule="paper",
            proj_interval=5, tune_lr=0.0025, tie_break="first", fresh_batches=True, augment=True,
            track_running_stats=True, magnitude_none=True, eval_batches=None)
        settings.update(overrides)
        return cls(**settings)

    # ---- the search ----------------------------------------------------------------
    def supernet(self, space: Any) -> Supernet:
        """The supernet of ``space`` with this algorithm's settings."""
        return Supernet(space, fixed=dict(self.fixed or {}),
                        track_running_stats=None if self.track_running_stats else False)

    def run(self, space: Any, task: Any, session: Session) -> None:
        """Builds the supernet, trains it on ``task``, selects; reports the trials to ``session``.

        The selected architecture is reported first, then the ``top_k`` by alpha.
        The seed is this algorithm's ``seed`` when set, else the search's.
        """
        t0 = time.perf_counter()
        net, seed, ckpt = begin(self, space, task, session)
        if self.fix_alpha:
            with torch.no_grad():
                for a in net.arch_parameters():
                    a.zero_()
        search = SearchData(task, self.batch_size, self.max_batches, fresh=self.fresh_batches,
                            augment=self.augment)
        opt = self.optimizer(net)
        start = 0
        state = ckpt.load() if ckpt is not None else None
        if state is not None and ckpt is not None:
            net.load_state_dict(state["net"])
            opt.load_state_dict(state["optimizer"])
            torch.set_rng_state(state["torch_rng"])
            start = int(state["epoch"])
            self._log(f"[darts] resumed from {ckpt.path} after epoch {start}")
        for epoch in range(start, self.epochs):
            loss = self.train_epoch(net, opt, search, epoch, seed)
            opt.end_epoch()
            if ckpt is not None:
                ckpt.save({"net": net.state_dict(), "optimizer": opt.state_dict(),
                           "torch_rng": torch.get_rng_state(), "epoch": epoch + 1})
            self._log(f"[darts] epoch {epoch + 1}/{self.epochs} loss {loss:.3f} "
                      f"genome {self._genome(net)}")
        alphas = net.probabilities()
        net_genome_none = None
        if self.magnitude_none:
            try:
                net_genome_none = net.genome(include_none=True)
            except ValueError:
                pass
        try:
            top = net.top_k(self.top_k)
        except ValueError as e:         # a choice magnitude cannot rank (perturbation can)
            if self.selection != "perturbation":
                raise
            self._log(f"[darts] no magnitude top-k: {e}")
            top = []
        candidates = [(g, score, self._oneshot(net, g, task)) for g, score in top]
        if self.selection == "perturbation":
            evals = search.valid_batches(self.eval_batches)
            genome = perturbation_select(net, opt, search, evals=evals, seed=seed,
                                         tune_epochs=self.tune_epochs, tune_lr=self.tune_lr,
                                         tune_batches=self.tune_batches, order=self.order,
                                         fix_alpha=self.fix_alpha, log=self._log,
                                         schedule=self.tune_schedule, interval=self.proj_interval,
                                         tie_break=self.tie_break)
            acc = accuracy(net, task, self.eval_batches)
        else:
            genome = net.genome(include_none=self.magnitude_none)
            scored = [a for g, _, a in candidates if g == genome]
            acc = scored[0] if scored else self._oneshot(net, genome, task)
        rows = [(genome, {"supernet_acc": acc, "selected": True, "selection": self.selection,
                          "alpha_score": net.score(genome), "alphas": alphas,
                          "search_seconds": time.perf_counter() - t0})]
        rows += [(g, {"supernet_acc": a, "alpha_score": s, "selected": False,
                      "selection": "magnitude_top_k"}) for g, s, a in candidates]
        if net_genome_none is not None and self.selection == "perturbation":
            g = net_genome_none
            rows.append((g, {"supernet_acc": self._oneshot(net, g, task), "alpha_score": net.score(g),
                             "selected": False, "selection": "magnitude_with_none"}))
        for rank, (g, metrics) in enumerate(rows):
            # Without a named objective, `reward` ranks the trials as DARTS prefers them.
            metrics["rank"] = rank
            for o in session.objectives:
                metrics.setdefault(o.name, float(len(rows) - rank) if o.name == "reward"
                                   else metrics["supernet_acc"])
            session.report(g, metrics)

    def _oneshot(self, net: Supernet, genome: tuple, task: Any) -> float:
        """Accuracy of the supernet with every decision fixed to ``genome``'s choices."""
        with net.using(genome):
            return accuracy(net, task, self.eval_batches)

    def _genome(self, net: Supernet) -> tuple | str:
        try:
            return net.genome(include_none=self.magnitude_none)
        except ValueError as e:           # a choice magnitude cannot rank (perturbation can)
            return f"(not by magnitude: {e})"

    def optimizer(self, net: Supernet) -> Bilevel:
        """The bilevel optimizers with this algorithm's settings."""
        return Bilevel(net, epochs=self.epochs, lr=self.lr,
                       lr_min=self.lr_min, momentum=self.momentum,
                       weight_decay=self.weight_decay, grad_clip=self.grad_clip,
                       arch_lr=self.arch_lr, arch_betas=self.arch_betas,
                       arch_weight_decay=self.arch_weight_decay)

    def train_epoch(self, net: Supernet, opt: Bilevel, data: SearchData, epoch: int,
                    seed: int, max_batches: int | None = None) -> float:
        """One epoch of bilevel updates (alphas skipped with ``fix_alpha``); the mean loss."""
        return train_epoch(net, opt, data, epoch, seed, order=self.order,
                           fix_alpha=self.fix_alpha, max_batches=max_batches)

    def _log(self, text: str) -> None:
        """A progress line to the ``symnas`` logger (DEBUG when ``quiet``, else INFO)."""
        logger.log(logging.DEBUG if self.quiet else logging.INFO, text)


@register("darts_pt", kind="weight-sharing")
def darts_pt(**overrides: Any) -> DARTS:
    """DARTS-PT as the paper's code runs it (:meth:`DARTS.pt_paper`), settings overridable."""
    return DARTS.pt_paper(**overrides)
