"""The search progress bar: trials done, best so far, failures (tqdm, on stderr).

``sn.search(..., progress=True)`` shows it; ``progress=False`` hides it; the
default (``None``) shows it only when stderr is a terminal.

Example::

    result = sn.search(space, algo, evaluate, budget=100, progress=True)
    # search: 42%|████▏     | 42/100 [00:10<00:14, best=0.913, failed=1]
"""
from __future__ import annotations

import math
import sys
from typing import Any, Sequence

from symnas.trial import FAILED, counts


class Bar:
    """A tqdm bar over a search's trials."""

    def __init__(self, total: int | None, objectives: Any, name: str | None = None, nested: bool = False,
                 start: Sequence[Any] = ()):
        from tqdm.auto import tqdm
        self.objectives = objectives
        self.best, self.failed = -math.inf, 0
        self._bar = tqdm(total=total, desc=name or "search", unit="trial", leave=not nested,
                         file=sys.stderr, dynamic_ncols=True)
        for t in start:
            self._count(t)
        if start:
            self._bar.update(len(start))
            self._postfix()

    def _count(self, trial: Any) -> None:
        if counts(trial):
            self.best = max(self.best, self.objectives.scalar(trial.metrics))
        elif trial.status == FAILED:
            self.failed += 1

    def _postfix(self) -> None:
        best = self.best * self.objectives[0].sign if self.best > -math.inf else None
        self._bar.set_postfix(best=f"{best:.4g}" if best is not None else "-",
                              failed=self.failed, refresh=False)

    def update(self, trial: Any) -> None:
        """Counts one finished trial."""
        self._count(trial)
        self._postfix()
        self._bar.update(1)

    def close(self) -> None:
        self._bar.close()


def enabled(progress: bool | None) -> bool:
    """``progress`` as given, or (None) whether stderr is a terminal."""
    if progress is None:
        return bool(getattr(sys.stderr, "isatty", lambda: False)())
    return bool(progress)


def make(progress: bool | None, total: int | None, objectives: Any, **kw: Any) -> Bar | None:
    """A :class:`Bar`, or None when the bar is off (by default also for nested searches)."""
    if not enabled(progress) or (progress is None and kw.get("nested")):
        return None
    try:
        return Bar(total, objectives, **kw)
    except ImportError:
        if progress:
            raise ImportError("progress=True needs tqdm: pip install tqdm") from None
        return None
