"""Successive halving and Hyperband (Jamieson & Talwalkar 2016; Li et al. 2018).

With fidelity levels ``L_0 < ... < L_K`` and ratio ``eta`` (by default the
levels' own ratio, :func:`~symnas.algorithms.multi_fidelity.level_ratio`), a *bracket*
``s`` (``0 <= s <= K``) starts ``n_s = ceil((K + 1) / (s + 1) * eta^s)``
configurations at level ``K - s`` and, rung by rung, promotes the best
``floor(n_s / eta^i)`` of them (at least one) to the next level, until level
``K``. Successive halving runs the most aggressive bracket (``s = K``) over and
over; Hyperband cycles through ``s = K, K - 1, ..., 0``, hedging between many
cheap and few full evaluations.

Asynchronous: a bracket whose rung waits for results hands out nothing; the
next proposal then comes from the next open bracket, or a new bracket opens,
so ``process:N`` and Ray keep every slot busy. Inline (one slot) the brackets
run one after another, exactly as in the papers.

Example (two levels, ``eta = 3``: a bracket of three configurations at 1
epoch whose best goes on to 3, then a bracket of two at 3, of which the
budget of 3 full evaluations leaves room for one):

>>> import symnas as sn
>>> space = sn.Space(dict(a=sn.oneof(list(range(10)))))
>>> evaluate = lambda arch, epochs: arch.genome[0] * epochs
>>> r = sn.search(space, "hyperband", evaluate, budget=3, fidelity=[1, 3], seed=0)
>>> [(t.genome[0], t.fidelity) for t in r.trials]
[(6, 1), (0, 1), (4, 1), (6, 3), (8, 3)]
"""
from __future__ import annotations

import math
from typing import Any

from .multi_fidelity import MULTI_FIDELITY, MultiFidelity, score
from .registry import register


class Bracket:
    """One bracket: its rungs' sizes, the rung it is at, what it handed out and got back."""

    __slots__ = ("s", "base", "counts", "rung", "handed", "taken", "results", "ranked")

    def __init__(self, s: int, base: int, counts: list[int]):
        self.s, self.base, self.counts = s, base, counts
        self.rung = 0
        self.handed = 0                     # proposals of the current rung handed out
        self.taken: set = set()             # genomes promoted into the current rung
        self.results: dict[tuple, Any] = {}  # the current rung's results
        self.ranked: list[tuple] = []       # the previous rung's genomes, best first

    @property
    def level(self) -> int:
        return self.base + self.rung

    @property
    def done(self) -> bool:
        return self.rung >= len(self.counts)

    def wants(self) -> bool:
        """Whether the current rung has proposals left to hand out."""
        return not self.done and self.handed < self.counts[self.rung]

    def told(self, genome: tuple, reward: Any) -> bool:
        """Takes a result of the current rung; True when that completed the rung."""
        self.results[genome] = reward
        if len(self.results) < self.counts[self.rung]:
            return False
        order = {g: i for i, g in enumerate(self.results)}
        self.ranked = sorted(self.results, key=lambda g: (-score(self.results[g]), order[g]))
        self.rung += 1
        self.handed, self.taken, self.results = 0, set(), {}
        return True

    def __repr__(self) -> str:
        return f"Bracket(s={self.s}, rung={self.rung}, counts={self.counts})"


def bracket_sizes(levels: int, eta: float, s: int) -> list[int]:
    """The rung sizes of bracket ``s`` over ``levels`` fidelity levels.

    >>> bracket_sizes(4, 3, 3), bracket_sizes(4, 3, 0), bracket_sizes(2, 3, 1)
    ([27, 9, 3, 1], [4], [3, 1])
    """
    k = levels - 1
    n = math.ceil(round((k + 1) / (s + 1) * eta ** s, 9))
    return [max(1, math.floor(round(n / eta ** i, 9))) for i in range(s + 1)]


@register("hyperband", "hb", kind=MULTI_FIDELITY)
class Hyperband(MultiFidelity):
    """Hyperband: successive-halving brackets of every aggressiveness, in turn."""

    def _brackets(self) -> list[int]:
        """The ``s`` of the brackets, in the order they cycle."""
        k = len(self.levels or ()) - 1
        return list(range(k, -1, -1))

    def _setup_levels(self) -> None:
        self._cycle = self._brackets()
        self._opened = 0
        self.open: list[Bracket] = []

    def _new_bracket(self) -> Bracket:
        s = self._cycle[self._opened % len(self._cycle)]
        self._opened += 1
        k = len(self.levels or ()) - 1
        b = Bracket(s, k - s, bracket_sizes(k + 1, self.ratio, s))
        self.open.append(b)
        return b

    def _next(self) -> tuple[tuple, int, Any]:
        for b in self.open:
            if b.wants():
                genome = self._job(b)
                if genome is not None:
                    return self._hand(b, genome)
        b = self._new_bracket()
        genome = self._job(b)
        if genome is None:  # pragma: no cover - a new bracket's first rung always has a job
            genome = self.new_genome(b.level)
        return self._hand(b, genome)

    def _hand(self, b: Bracket, genome: tuple) -> tuple[tuple, int, Any]:
        b.handed += 1
        if b.rung > 0:
            b.taken.add(genome)
        return genome, b.level, b

    def _job(self, b: Bracket) -> tuple | None:
        """The next proposal of bracket ``b``'s rung: a new configuration, or the best of the
        previous rung not yet promoted (None: those left are outstanding elsewhere)."""
        if b.rung == 0:
            return self.new_genome(b.level)
        for genome in b.ranked:
            if genome not in b.taken and not self.busy(genome):
                return genome
        return None

    def _told(self, genome: tuple, level: int, reward: Any, info: Any) -> None:
        b: Bracket = info
        if b.told(genome, reward) and b.done:
            self.open.remove(b)


@register("successive_halving", "sh", kind=MULTI_FIDELITY)
class SuccessiveHalving(Hyperband):
    """Successive halving: the most aggressive bracket (all levels), over and over."""

    def _brackets(self) -> list[int]:
        return [len(self.levels or ()) - 1]
