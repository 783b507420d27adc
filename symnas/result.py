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

RUNNING, DONE, FAILED = "running", "done", "failed"


class Trial:
    """One evaluation of one architecture."""

    __slots__ = ("id", "arch", "metrics", "status", "error", "seconds", "seed", "reward",
                 "started", "attempts", "__weakref__")

    def __init__(self, id: int, arch: Any, *, seed: int | None = None, started: float = 0.0):
        self.id = id
        self.arch = arch
        self.metrics: dict[str, Any] = {}
        self.status = RUNNING
        self.error: str | None = None
        self.seconds = 0.0
        self.seed = seed
        self.reward: Any = None
        self.started = started
        self.attempts = 1

    # ---- the architecture -------------------------------------------------------
    @property
    def genome(self) -> tuple:
        return self.arch.genome

    @property
    def dna(self):
        return self.arch.dna

    @property
    def decisions(self) -> dict:
        return self.arch.decisions

    def build(self):
        """A fresh ``nn.Module`` of this trial's architecture."""
        return self.arch.build()

    def save(self, path: str | os.PathLike) -> str:
        """Writes the architecture and its metrics as JSON (reload with ``sn.load``)."""
        return self.arch.save(path, metrics=_jsonable(self.metrics), trial=self.id)

    @property
    def ok(self) -> bool:
        return self.status == DONE

    def to_json(self, program: bool = True) -> dict:
        data = {"id": self.id, "genome": list(self.genome), "status": self.status,
                "metrics": _jsonable(self.metrics), "reward": _jsonable(self.reward),
                "error": self.error, "seconds": self.seconds, "seed": self.seed,
                "decisions": _jsonable(self.decisions)}
        if program:
            data["dna"] = self.arch.dna.to_json()
            data["program"] = self.arch.program_json()
        return data

    def __repr__(self) -> str:
        body = f"error={self.error!r}" if self.status == FAILED else f"metrics={self.metrics}"
        return f"Trial(id={self.id}, status={self.status}, {body})"


def _jsonable(x: Any) -> Any:
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if isinstance(x, float) and not math.isfinite(x):
        return str(x)
    if hasattr(x, "item") and callable(x.item):  # numpy / torch scalars
        return x.item()
    if isinstance(x, (str, int, float, bool)) or x is None:
        return x
    return str(x)


class SearchResult:
    """Every trial of one search, with the best ones and exports."""

    def __init__(self, space: Any, objectives: Objectives, trials: Sequence[Trial] = (),
                 name: str | None = None, algorithm: Any = None):
        self.space = space
        self.objectives = objectives
        self.trials: list[Trial] = list(trials)
        self.name = name
        self.algorithm = algorithm

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
        """The finished trial with the best (first) objective; None if none finished."""
        done = [t for t in self.done if self.objectives.feasible(t.metrics)] or self.done
        return max(done, key=self._key) if done else None

    def top_k(self, k: int) -> list[Trial]:
        """The ``k`` best finished trials, best first."""
        return sorted(self.done, key=self._key, reverse=True)[:k]

    def best_so_far(self) -> list[float]:
        """The best objective value after each trial (NaN until one finishes)."""
        out, best = [], -math.inf
        sign = self.objectives[0].sign
        for t in self.trials:
            if t.status == DONE:
                best = max(best, self._key(t))
            out.append(best * sign if best > -math.inf else math.nan)
        return out

    def pareto_front(self) -> list[Trial]:
        """Finished trials that no other finished trial dominates on all objectives."""
        pts = [(t, self.objectives.vector(t.metrics)) for t in self.done
               if self.objectives.feasible(t.metrics)]
        front = []
        for t, v in pts:
            if not any(all(a >= b for a, b in zip(w, v)) and any(a > b for a, b in zip(w, v))
                       for _, w in pts):
                front.append(t)
        return front

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
