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

    net = Supernet(space)                  # trained, e.g. by DARTS
    opt = Bilevel(net, epochs=1)
    genome = perturbation_select(net, opt, SearchData(task, 64), evals=batches, seed=0)
"""
from __future__ import annotations

import random
from typing import Any, Callable, Sequence

from symnas.supernet import Supernet

__all__ = ["perturbation_select", "score_candidates"]


def score_candidates(net: Supernet, name: str, evals: Sequence, candidates: Sequence[int] | None = None
                     ) -> dict[int, float]:
    """``{candidate: accuracy with that candidate's weight zeroed}`` for one decision."""
    from .darts import evaluate
    d = net.decision(name)
    out = {}
    for k in (d.active if candidates is None else candidates):
        with net.masked(name, k):
            out[k] = evaluate(net, evals)
    return out


def select_op(net: Supernet, name: str, evals: Sequence) -> tuple[int, dict]:
    """The candidate of a oneof whose removal hurts the supernet's accuracy most
    (ties: the larger architecture weight, then the first)."""
    scores = score_candidates(net, name, evals)
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


def perturbation_select(net: Supernet, opt: Any, data: Any, *, evals: Sequence, seed: int = 0,
                        tune_epochs: int = 5, tune_lr: float | None = 0.0025,
                        tune_batches: int | None = None, order: int = 1, fix_alpha: bool = False,
                        log: Callable[[str], None] = print) -> tuple:
    """Discretizes every undecided decision of ``net`` by perturbation; returns the genome.

    ``opt`` is the :class:`~symnas.algorithms.darts.Bilevel` that trained the
    supernet; tuning continues the bilevel updates (architecture weights too,
    unless ``fix_alpha``) with the weight learning rate held at ``tune_lr``.
    ``evals`` are the batches candidates are scored on.
    """
    from .darts import evaluate, train_epoch
    rng = random.Random(seed)
    ops = [n for n in net.undecided() if net.decision(n).kind == "oneof"]
    inputs = [n for n in net.undecided() if net.decision(n).kind == "manyof"]
    rng.shuffle(ops)
    rng.shuffle(inputs)
    if tune_lr is not None:
        opt.set_constant_lr(tune_lr)
    order_done = []
    for step, name in enumerate(ops + inputs):
        d = net.decision(name)
        if d.kind == "oneof":
            pick, scores = select_op(net, name, evals)
            net.fix(name, pick)
            what = f"{d.labels[pick]} (acc without each: " + ", ".join(
                f"{d.labels[k]} {v:.1f}" for k, v in scores.items()) + ")"
        else:
            pick, _ = select_inputs(net, name, evals)
            net.fix(name, pick)
            what = f"inputs {[d.labels[i] for i in pick]}"
        order_done.append(name)
        log(f"[darts-pt] decision {step + 1}/{len(ops) + len(inputs)}: {name} <- {what}")
        for e in range(tune_epochs):
            loss = train_epoch(net, opt, data, 10_000 + 100 * step + e, seed, order=order,
                               fix_alpha=fix_alpha, max_batches=tune_batches)
        if tune_epochs:
            log(f"[darts-pt]   tuned {tune_epochs} epoch(s), loss {loss:.3f}, "
                f"acc {evaluate(net, evals):.1f}")
    net.selection_order = order_done
    return net.genome()
