"""Trials and search results.

A :class:`Trial` is one evaluated architecture: id, genome (and DNA), the
materialized program, metrics, status (``running``/``done``/``failed``), error
text, seed and timings. A :class:`SearchResult` holds every trial of a search.

Example::

    result = sn.search(space, algo, evaluator, budget=20)
    result.best.reward, result.best.metrics
    model = result.best.build()
    result.best.save("best.json")
    for t in result.top_k(3): print(t.id, t.reward)
"""
from __future__ import annotations

import json
import math
import os
from typing import Any, Iterator, Sequence

from symnas.objective import Objectives
from symnas.trial import DONE, FAILED, RUNNING, Trial, best_of, counts, jsonable

_jsonable = jsonable  # the name older modules import
__all__ = ["SearchResult", "Trial", "RUNNING", "DONE", "FAILED"]


class SearchResult:
    """Every trial of one search, with the best ones and exports."""

    def __init__(self, space: Any, objectives: Objectives, trials: Sequence[Trial] = (),
                 name: str | None = None, algorithm: Any = None):
        self.space = space
        self.objectives = objectives
        self.trials: list[Trial] = list(trials)
        self.name = name
        self.algorithm = algorithm
        self.store: Any = None        # the store the search recorded into

    def __len__(self) -> int:
        return len(self.trials)

    def __iter__(self) -> Iterator[Trial]:
        return iter(self.trials)

    @property
    def done(self) -> list[Trial]:
        """Finished trials (failed ones excluded)."""
        return [t for t in self.trials if t.status == DONE]

    @property
    def failed(self) -> list[Trial]:
        return [t for t in self.trials if t.status == FAILED]

    def _key(self, t: Trial) -> float:
        return self.objectives.scalar(t.metrics)

    @property
    def best(self) -> Trial | None:
        """The feasible finished trial with the best (first) objective; None if there is none."""
        return best_of(self.trials, self.objectives)

    def top_k(self, k: int) -> list[Trial]:
        """The ``k`` best feasible finished trials, best first."""
        return sorted((t for t in self.trials if counts(t)), key=self._key, reverse=True)[:k]

    def best_so_far(self) -> list[float]:
        """The best objective value after each trial (NaN until one finishes)."""
        out, best = [], -math.inf
        sign = self.objectives[0].sign
        for t in self.trials:
            if counts(t):
                best = max(best, self._key(t))
            out.append(best * sign if best > -math.inf else math.nan)
        return out

    def pareto_front(self) -> list[Trial]:
        """Feasible finished trials that no other one dominates, in trial order.

        Trials with equal objective values are all on the front. Sorting the
        candidates by their signed objective vectors (best first) means only
        earlier points can dominate a later one, and only front members need
        checking: ``O(n log n + n * front)``.
        """
        pts = [(t, self.objectives.vector(t.metrics)) for t in self.trials if counts(t)]
        pts.sort(key=lambda p: p[1], reverse=True)
        front: list[tuple[Trial, tuple]] = []
        for t, v in pts:
            if not any(all(a >= b for a, b in zip(w, v)) and w != v for _, w in front):
                front.append((t, v))
        ids = {id(t) for t, _ in front}
        return [t for t in self.trials if id(t) in ids]

    def export(self, directory: str | os.PathLike, k: int = 1) -> list[str]:
        """Writes the top-k architectures as JSON files that ``sn.load`` rebuilds."""
        os.makedirs(directory, exist_ok=True)
        return [t.save(os.path.join(directory, f"rank{r}_trial{t.id}.json"))
                for r, t in enumerate(self.top_k(k), 1)]

    def to_json(self) -> dict:
        return {"name": self.name, "objectives": self.objectives.to_json(),
                "trials": [t.to_json() for t in self.trials]}

    def save(self, path: str | os.PathLike) -> str:
        with open(path, "w") as f:
            json.dump(self.to_json(), f, default=str)
        return str(path)

    def __repr__(self) -> str:
        b = self.best
        best = f", best={b.metrics}" if b else ""
        return (f"SearchResult(trials={len(self.trials)}, done={len(self.done)}, "
                f"failed={len(self.failed)}{best})")
