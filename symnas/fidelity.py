"""Fidelities: the training budgets a multi-fidelity search evaluates at, and what each costs.

``sn.search(space, "hyperband", task, budget=50, fidelity=[1, 3, 9])`` runs
trials at 1, 3 or 9 epochs; :class:`Fidelity` holds those levels and prices
a trial in *full evaluations*: a trial at fidelity ``f`` costs ``f / max``
(a 12-epoch trial of a 200-epoch schedule costs 0.06), so ``budget`` means
the same for a multi-fidelity search as for a black-box one. A trial that
continues an earlier trial's training (a promotion, with an evaluator that
declares ``resumable = True``, such as a Task) costs only the epochs it adds;
a pruned trial costs the epochs it ran.

:func:`plan` checks a search's ``fidelity=`` and ``pruner=`` against its
algorithm and evaluator before anything runs, and names the fix.

Example:

>>> f = Fidelity.parse([12, 200])
>>> f.levels, f.max, f.cost(12), f.cost(200, start=12)
((12, 200), 200, 0.06, 0.94)
>>> Fidelity.parse(None) is None
True
"""
from __future__ import annotations

import math
from typing import Any, Sequence

from symnas.protocols import Pruner

__all__ = ["Fidelity", "plan"]


class Fidelity:
    """The increasing fidelity levels of a search, and the cost of a trial at one of them."""

    __slots__ = ("levels", "resumes")

    def __init__(self, levels: Sequence[float], resumes: bool = False):
        self.levels = tuple(levels)
        self.resumes = resumes

    @classmethod
    def parse(cls, fidelity: Any, resumes: bool = False) -> Fidelity | None:
        """``fidelity=`` as given (a number, or increasing numbers), checked; None stays None."""
        if fidelity is None:
            return None
        if isinstance(fidelity, Fidelity):
            return fidelity
        levels = [fidelity] if isinstance(fidelity, (int, float)) else list(fidelity)
        ok = bool(levels) and all(isinstance(v, (int, float)) and not isinstance(v, bool)
                                  and math.isfinite(v) and v > 0 for v in levels)
        if not ok or any(b <= a for a, b in zip(levels, levels[1:])):
            raise ValueError(f"fidelity= takes positive, increasing training budgets (e.g. epochs: "
                             f"fidelity=[12, 200], or fidelity=20 for one), got {fidelity!r}.")
        return cls(levels, resumes)

    @property
    def max(self) -> float:
        """The highest level: a full evaluation."""
        return self.levels[-1]

    def cost(self, fidelity: float, start: float = 0.0) -> float:
        """The cost in full evaluations of training from ``start`` to ``fidelity``."""
        return round((float(fidelity) - float(start)) / float(self.max), 12)

    def to_json(self) -> list:
        return list(self.levels)

    def __repr__(self) -> str:
        return f"Fidelity({list(self.levels)})"


def plan(algorithm: Any, call: Any, fidelity: Any, pruner: Any,
         resumes: bool = False) -> tuple[Fidelity | None, Pruner | None]:
    """Checks ``fidelity=`` and ``pruner=`` against the algorithm and the evaluator.

    ``call`` is the evaluator adapted by :func:`symnas.trial.evaluator_call`.
    Returns the parsed fidelity and the pruner (set up on its levels).
    """
    from symnas import pruners
    levels = Fidelity.parse(fidelity, resumes)
    name = type(algorithm).__name__
    if getattr(algorithm, "multi_fidelity", False):
        if levels is None or len(levels.levels) < 2:
            raise ValueError(f"{name} chooses fidelities: pass fidelity= with at least two "
                             "increasing levels, e.g. fidelity=[12, 200] (epochs).")
        if pruner is not None:
            raise ValueError(f"{name} decides itself which trials to stop; pruner= is for "
                             "black-box algorithms (leave it out, or use e.g. 'evolution').")
    rule = None
    if pruner is not None:
        if levels is None:
            raise ValueError("pruner= needs fidelity= (the training budget a trial runs to, e.g. "
                             "fidelity=20 epochs, or fidelity=[3, 9, 27] for rungs).")
        rule = pruners.get(pruner)
        rule.setup(levels.levels)
        if not call.reports:
            raise TypeError("pruner= needs an evaluator that takes report= (a callback for its "
                            "intermediate values, as sn.Task does); add a report=None parameter "
                            "and call report(value, step) after each epoch.")
    if levels is not None and call.fidelity_param is None:
        raise TypeError("fidelity= needs an evaluator that takes epochs= (or fidelity=), the "
                        "training budget of a trial, as sn.Task and the NAS-Bench-201 table do; "
                        "add that parameter to the evaluator.")
    check = getattr(call.fn, "check_fidelity", None)
    if levels is not None and callable(check):
        check(levels.levels)        # the evaluator's own limits (a Task's schedule, the table's)
    return levels, rule
