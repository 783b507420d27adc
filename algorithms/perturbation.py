"""Perturbation-based architecture selection (DARTS-PT; Wang et al., ICLR 2021).

Instead of trusting the magnitude of architecture weights, measure each
candidate's influence on the trained supernet: take an undecided choice
(random order, seeded), score each candidate by the supernet's accuracy with
that candidate's weight set to zero, keep the candidate whose removal hurts
most, and tune the supernet for a few epochs before the next decision
(paper: 5 epochs at a constant lr of 0.0025 between decisions). Op choices
come first; then, for choices over a node's inputs (a ``manyof``, as in the
DARTS space), input edges are removed one at a time — each time the one whose
removal hurts least — until the node keeps as many as it chooses.

It works on any :class:`symnas.supernet.Supernet`, hence on any Space whose
choices the supernet can mix.

Example::

    net = Supernet(space)                  # trained, e.g. by DARTS (symnas.algorithms.bilevel)
    opt = Bilevel(net, epochs=1)
    genome = perturbation_select(net, opt, SearchData(task, 64), evals=batches, seed=0)
"""
from __future__ import annotations

import logging
import random
from collections.abc import Callable, Sequence
from typing import Any

from symnas.supernet import Supernet

from .bilevel import Bilevel, SearchData, evaluate, train_epoch

__all__ = ["perturbation_select", "score_candidates", "select_inputs", "select_op"]

logger = logging.getLogger("symnas")


def score_candidates(net: Supernet, name: str, evals: Sequence, candidates: Sequence[int] | None = None
                     ) -> dict[int, float]:
    """``{candidate: accuracy with that candidate's weight zeroed}`` for one decision."""
    d = net.decision(name)
    out = {}
    for k in (d.active if candidates is None else candidates):
        with net.masked(name, k):
            out[k] = evaluate(net, evals)
    return out


def select_op(net: Supernet, name: str, evals: Sequence, tie_break: str = "alpha") -> tuple[int, dict]:
    """The candidate of a oneof whose removal hurts the supernet's accuracy most
    (ties: ``"alpha"``, the larger architecture weight, then the first; ``"first"``: the
    first, as DARTS-PT's code does)."""
    scores = score_candidates(net, name, evals)
    if tie_break == "first":
        return min(scores, key=lambda k: (scores[k], k)), scores
    weight = net.probabilities()[name]
    return min(scores, key=lambda k: (scores[k], -weight[k], k)), scores


def select_inputs(net: Supernet, name: str, evals: Sequence) -> tuple[list[int], list[dict]]:
    """A manyof's kept candidates: drop the least harmful removal until ``k`` remain."""
    d = net.decision(name)
    keep = list(d.active)
    rounds = []
    while len(keep) > d.k:
        dropped = [i for i in range(d.size) if i not in keep]
        with net.masked(name, *dropped):
            scores = score_candidates(net, name, evals, keep)
        rounds.append(scores)
        keep.remove(max(scores, key=lambda i: (scores[i], -i)))
    return sorted(keep), rounds


def perturbation_select(net: Supernet, opt: Bilevel, data: SearchData, *, evals: Sequence,
                        seed: int = 0, tune_epochs: int = 5, tune_lr: float | None = 0.0025,
                        tune_batches: int | None = None, order: int = 1, fix_alpha: bool = False,
                        log: Callable[[str], Any] | None = None, schedule: str = "per_decision",
                        interval: int = 5, tie_break: str = "alpha") -> tuple:
    """Discretizes every undecided decision of ``net`` by perturbation; returns the genome.

    ``opt`` is the :class:`~symnas.algorithms.bilevel.Bilevel` that trained the
    supernet; tuning continues the bilevel updates (architecture weights too,
    unless ``fix_alpha``) with the weight learning rate held at ``tune_lr``.
    ``evals`` are the batches candidates are scored on. ``schedule``:

    * ``"per_decision"``: ``tune_epochs`` epochs after every decision;
    * ``"paper"``: DARTS-PT's code: ``interval * (n - 1)`` tuning epochs in all
      for ``n`` decisions, a decision before epochs ``0, interval, 2 interval, ...``
      and before the last one.

    ``tie_break`` is passed to :func:`select_op`. Each decision and each tuning
    round is reported to ``log`` (default: the ``symnas`` logger at INFO).
    """
    if schedule not in ("per_decision", "paper"):
        raise ValueError(f"perturbation schedule {schedule!r}: use 'per_decision' or 'paper'.")
    if log is None:
        log = logger.info
    rng = random.Random(seed)
    ops = [n for n in net.undecided() if net.decision(n).kind == "oneof"]
    inputs = [n for n in net.undecided() if net.decision(n).kind == "manyof"]
    rng.shuffle(ops)
    rng.shuffle(inputs)
    queue = ops + inputs
    if tune_lr is not None:
        opt.set_constant_lr(tune_lr)
    order_done: list[str] = []

    def decide() -> None:
        name = queue[len(order_done)]
        d = net.decision(name)
        if d.kind == "oneof":
            pick, scores = select_op(net, name, evals, tie_break)
            net.fix(name, pick)
            what = f"{d.labels[pick]} (acc without each: " + ", ".join(
                f"{d.labels[k]} {v:.1f}" for k, v in scores.items()) + ")"
        else:
            keep, _ = select_inputs(net, name, evals)
            net.fix(name, keep)
            what = f"inputs {[d.labels[i] for i in keep]}"
        order_done.append(name)
        log(f"[darts-pt] decision {len(order_done)}/{len(queue)}: {name} <- {what}")

    def tune(epochs: int, key: int) -> None:
        loss = float("nan")
        for e in range(epochs):
            loss = train_epoch(net, opt, data, 10_000 + 100 * key + e, seed, order=order,
                               fix_alpha=fix_alpha, max_batches=tune_batches)
        if epochs:
            log(f"[darts-pt]   tuned {epochs} epoch(s), loss {loss:.3f}, "
                f"acc {evaluate(net, evals):.1f}")

    if schedule == "per_decision":
        for step in range(len(queue)):
            decide()
            tune(tune_epochs, step)
    else:
        total = max(0, interval * (len(queue) - 1))
        for e in range(total):
            if (e % interval == 0 or e == total - 1) and len(order_done) < len(queue):
                decide()
            tune(1, e)
        while len(order_done) < len(queue):
            decide()
    net.selection_order = order_done
    return net.genome()
