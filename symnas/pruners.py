"""Early stopping for any black-box search: ``sn.search(..., fidelity=20, pruner="median")``.

Each trial runs to the highest fidelity and reports an intermediate value per
step (``report(value, step)``; a Task reports its validation accuracy after
every epoch). A pruner (:class:`symnas.protocols.Pruner`) stops the trials
whose values say they will not pay:

- ``"median"`` (:class:`MedianPruner`): below the median of the ended trials'
  values at the same step (Optuna's ``MedianPruner``);
- ``"asha"`` (:class:`ASHAPruner`): not in the top ``1/eta`` of the values
  reached at a rung (the fidelity levels below the highest; asynchronous
  successive halving, Li et al. 2020);
- ``"curve"`` (:class:`CurvePruner`): a learning-curve ensemble (pow3, log2
  and exp3 fits by least squares, as in Domhan et al. 2015) predicts the final
  value, and the trial stops when it is unlikely to beat the best one so far.

Where decisions are made. A trial carries, as it starts, a snapshot of the
trials ended before it (:meth:`Reporting.spec`); its evaluator's reports are
judged against that snapshot in whichever process runs it, inline, in a
``process:N`` worker or on Ray, with no messages back until it ends. So a
decision depends on the trial's own curve and on the snapshot it started
with, never on what ends while it runs (with ``exact=True`` the snapshots,
too, are the same in every run); a resumed search that re-runs an
interrupted trial gives it the snapshot it had. The curve and the decision
come back with the outcome and are recorded: status ``pruned``, ``error``
says why, ``cost`` counts the epochs it ran, and the algorithm is told the
value it was stopped with.

Example:

>>> p = get("median", min_trials=2)
>>> p.setup([10])
>>> for curve in ([[1, 0.5], [2, 0.6]], [[1, 0.7], [2, 0.8]]):
...     p.observe(curve, final=True)
>>> p.should_stop([[1, 0.3]], p.reference())
'0.3 at step 1 is below the median 0.6 of 2 ended trials'
>>> p.should_stop([[1, 0.65]], p.reference()) is None
True
"""
from __future__ import annotations

import bisect
import dataclasses
import math
from typing import Any, ClassVar, Sequence

from symnas.protocols import Pruner
from symnas.registry import Registry
from symnas.trial import DONE, PRUNED, Reporter

__all__ = ["PRUNERS", "MedianPruner", "ASHAPruner", "CurvePruner", "Reporting", "get",
           "from_json", "reporter_for"]

PRUNERS: Registry = Registry("pruner")


def _key(step: float) -> str:
    """A step as a JSON object key."""
    return repr(float(step))


@PRUNERS.register("median")
@dataclasses.dataclass
class MedianPruner(Pruner):
    """Stops a trial whose value at a step is below the median of the ended trials' there."""

    warmup_steps: int = 1     # reports a trial makes before it can be stopped
    min_trials: int = 5       # ended trials with a value at a step before it is judged there
    name: ClassVar[str] = "median"

    def __post_init__(self) -> None:
        self._values: dict[str, list[float]] = {}
        self.levels: tuple = ()

    def observe(self, curve: Sequence[Sequence[float]], final: bool) -> None:
        for step, value in curve:
            bisect.insort(self._values.setdefault(_key(step), []), float(value))

    def reference(self) -> dict:
        out = {}
        for step, vals in self._values.items():
            if len(vals) >= self.min_trials:
                n = len(vals)
                out[step] = [n, (vals[(n - 1) // 2] + vals[n // 2]) / 2]
        return out

    def should_stop(self, curve: Sequence[Sequence[float]], reference: Any) -> str | None:
        if len(curve) < self.warmup_steps or not reference:
            return None
        step, value = curve[-1]
        if self.levels and step >= self.levels[-1]:
            return None
        got = reference.get(_key(step))
        if got is None or value >= got[1]:
            return None
        return (f"{value:.4g} at step {step:g} is below the median {got[1]:.4g} of {got[0]} "
                "ended trials")

    def to_json(self) -> dict:
        return {"name": self.name, **dataclasses.asdict(self)}


@PRUNERS.register("asha", "successive_halving")
@dataclasses.dataclass
class ASHAPruner(Pruner):
    """Stops a trial that is not in the top ``1/eta`` of the values reached at a rung.

    Rungs are the search's fidelity levels below the highest (with one level,
    ``1, eta, eta**2, ...`` below it). ``eta`` defaults to the levels' own
    ratio (3 with one level). A trial is judged once per rung, at its first
    report at or past it, against the trials that reached that rung before it
    started; with fewer than ``eta - 1`` of those it goes on.
    """

    eta: float | None = None
    rungs: tuple | None = None
    name: ClassVar[str] = "asha"

    def __post_init__(self) -> None:
        if self.eta is not None and not self.eta > 1:
            raise ValueError(f"ASHAPruner needs eta > 1 (the promotion ratio), got {self.eta}.")
        self._values: dict[str, list[float]] = {}
        self.levels: tuple = ()
        self.ratio = float(self.eta or 3.0)

    def setup(self, levels: Sequence[float]) -> None:
        self.levels = tuple(levels)
        if self.eta is None and len(self.levels) > 1:
            self.ratio = round(float((self.levels[-1] / self.levels[0])
                                     ** (1 / (len(self.levels) - 1))), 9)
        if self.rungs is None and self.levels:
            if len(self.levels) > 1:
                self.rungs = tuple(self.levels[:-1])
            else:
                r, out = 1.0, []
                while r < self.levels[-1]:
                    out.append(r)
                    r *= self.ratio
                self.rungs = tuple(out)
        self.rungs = tuple(float(r) for r in self.rungs or ())

    @staticmethod
    def _at(curve: Sequence[Sequence[float]], rung: float) -> float | None:
        """The value a curve had on reaching ``rung`` (its first report at or past it)."""
        for step, value in curve:
            if step >= rung:
                return float(value)
        return None

    def observe(self, curve: Sequence[Sequence[float]], final: bool) -> None:
        for rung in self.rungs or ():
            v = self._at(curve, rung)
            if v is not None:
                bisect.insort(self._values.setdefault(_key(rung), []), v)

    def reference(self) -> dict:
        out = {}
        for rung, vals in self._values.items():
            n = len(vals)
            k = max(1, math.floor((n + 1) / self.ratio))
            out[rung] = [n, vals[n - k]]          # the k-th best value of the n there
        return out

    def should_stop(self, curve: Sequence[Sequence[float]], reference: Any) -> str | None:
        if not curve or not reference:
            return None
        step, value = curve[-1]
        before = curve[-2][0] if len(curve) > 1 else -math.inf
        for rung in self.rungs or ():
            if before < rung <= step:          # this report is the first at or past the rung
                got = reference.get(_key(rung))
                if got is None or got[0] + 1 < self.ratio or value >= got[1]:
                    continue
                return (f"{value:.4g} at rung {rung:g} is not in the top 1/{self.ratio:.3g} of "
                        f"{got[0] + 1} trials there (needs {got[1]:.4g})")
        return None

    def to_json(self) -> dict:
        return {"name": self.name, "eta": self.ratio, "rungs": list(self.rungs or ())}


@PRUNERS.register("curve", "learning_curve")
@dataclasses.dataclass
class CurvePruner(Pruner):
    """Extrapolates a learning curve and stops the run unlikely to beat the best so far.

    Three parametric models of the value ``y`` at fidelity ``x`` (as a
    fraction of the highest level) are fitted by least squares: pow3
    ``c - a x^-alpha``, log2 ``a + b ln x``, exp3 ``c - a e^(-b x)``. The
    ensemble's prediction at ``x = 1`` is their mean, its uncertainty the
    spread between them plus their residual noise; a trial with at least
    ``min_points`` reports stops when the predicted probability of beating
    the best final value of the ended trials is below ``threshold``.
    """

    min_points: int = 3
    min_trials: int = 1
    threshold: float = 0.05
    name: ClassVar[str] = "curve"

    def __post_init__(self) -> None:
        self._best, self._n = -math.inf, 0
        self.levels: tuple = ()

    def observe(self, curve: Sequence[Sequence[float]], final: bool) -> None:
        if final and curve:
            self._best = max(self._best, float(curve[-1][1]))
            self._n += 1

    def reference(self) -> dict | None:
        return {"best": self._best, "n": self._n} if self._n else None

    def should_stop(self, curve: Sequence[Sequence[float]], reference: Any) -> str | None:
        if not reference or reference["n"] < self.min_trials or len(curve) < self.min_points:
            return None
        top = float(self.levels[-1]) if self.levels else float(curve[-1][0])
        if curve[-1][0] >= top:
            return None
        mean, std = predict_final([(s / top, v) for s, v in curve])
        p = 0.5 * math.erfc((reference["best"] - mean) / (std * math.sqrt(2)))
        if p >= self.threshold:
            return None
        return (f"predicted final {mean:.4g} +- {std:.3g} from {len(curve)} reports: "
                f"P(beats the best {reference['best']:.4g}) = {p:.3f} < {self.threshold:g}")

    def to_json(self) -> dict:
        return {"name": self.name, **dataclasses.asdict(self)}


def _models() -> list[tuple[str, Any, Any, Any]]:
    """(name, f(x, params), initial guess(x, y), bounds) of the learning-curve models."""
    import numpy as np

    def pow3(x, c, a, alpha):
        return c - a * np.power(x, -alpha)

    def log2(x, a, b):
        return a + b * np.log(x)

    def exp3(x, c, a, b):
        return c - a * np.exp(-b * x)

    span = lambda y: max(float(np.ptp(y)), 1e-6 * max(1.0, float(np.abs(y).max())))  # noqa: E731
    return [
        ("pow3", pow3, lambda x, y: [y[-1] + span(y), span(y), 0.5],
         ([-np.inf, 0.0, 1e-3], [np.inf, np.inf, 10.0])),
        ("log2", log2, lambda x, y: [y[-1], span(y)], ([-np.inf, 0.0], [np.inf, np.inf])),
        ("exp3", exp3, lambda x, y: [y[-1] + span(y), 2 * span(y), 1.0],
         ([-np.inf, 0.0, 1e-3], [np.inf, np.inf, 100.0])),
    ]


def predict_final(points: Sequence[tuple[float, float]]) -> tuple[float, float]:
    """The curve ensemble's prediction at ``x = 1`` from ``(x, y)`` points: (mean, std).

    >>> xs = [0.1, 0.2, 0.3, 0.4]
    >>> mean, std = predict_final([(x, 90 - 10 * x ** -0.5) for x in xs])
    >>> round(mean), std < 20
    (80, True)
    """
    import numpy as np
    from scipy.optimize import least_squares
    x = np.array([p[0] for p in points], dtype=float)
    y = np.array([p[1] for p in points], dtype=float)
    preds, noise = [], []
    for _, f, guess, bounds in _models():
        p0 = np.clip(guess(x, y), np.array(bounds[0]) + 1e-9, np.array(bounds[1]) - 1e-9)
        try:
            fit = least_squares(lambda p, f=f: f(x, *p) - y, p0, bounds=bounds, max_nfev=200)
        except (ValueError, FloatingPointError):
            continue
        pred = float(f(1.0, *fit.x))
        if not math.isfinite(pred):
            continue
        dof = max(1, len(x) - len(p0))
        preds.append(pred)
        noise.append(float(np.sum(fit.fun ** 2)) / dof)
    if not preds:
        return float(y[-1]), math.inf
    spread = float(np.var(preds)) if len(preds) > 1 else 0.0
    std = math.sqrt(spread + float(np.mean(noise)) + 1e-12 * (1 + float(np.abs(y).max())) ** 2)
    return float(np.mean(preds)), std


# ---- the searching process's side, and the trial's ----------------------------------------
class Reporting:
    """A search's intermediate values: the objective trials report, and the pruner judging them."""

    def __init__(self, objectives: Any, pruner: Pruner | None = None):
        self.objectives, self.pruner = objectives, pruner

    @property
    def sign(self) -> float:
        return float(self.objectives[0].sign)

    def spec(self) -> dict:
        """What a starting trial carries: the metric, its sign, the pruner and its snapshot."""
        out: dict[str, Any] = {"metric": self.objectives[0].name, "sign": self.sign}
        if self.pruner is not None:
            out["pruner"] = dict(self.pruner.to_json(), levels=list(self.pruner.levels))
            out["reference"] = self.pruner.reference()
        return out

    def observe(self, trial: Any) -> None:
        """Takes an ended trial (or stored row) into the pruner's reference."""
        curve = getattr(trial, "curve", None)
        if self.pruner is None or not curve or trial.status not in (DONE, PRUNED):
            return
        self.pruner.observe([[s, self.sign * v] for s, v in curve], final=trial.status == DONE)


def get(pruner: Any, **settings: Any) -> Pruner:
    """A fresh pruner from a registered name (``"median"``, ``"asha"``, ``"curve"``) and
    settings, or a copy of an instance."""
    if isinstance(pruner, Pruner):
        return dataclasses.replace(pruner, **settings) if dataclasses.is_dataclass(pruner) \
            else pruner
    if isinstance(pruner, str):
        return PRUNERS.get(pruner, **settings)
    raise TypeError(f"pruner= takes 'median', 'asha', 'curve' or a symnas.protocols.Pruner, "
                    f"got {type(pruner).__name__}.")


def from_json(d: dict) -> Pruner:
    """Rebuilds a pruner from :meth:`~symnas.protocols.Pruner.to_json` plus its ``levels``."""
    settings = {k: v for k, v in d.items() if k not in ("name", "levels")}
    if "rungs" in settings and settings["rungs"] is not None:
        settings["rungs"] = tuple(settings["rungs"])
    pruner = PRUNERS.get(d["name"], **settings)
    pruner.setup(d.get("levels") or ())
    return pruner


def reporter_for(spec: dict | None) -> Reporter | None:
    """The :class:`~symnas.trial.Reporter` a trial's evaluator gets from its spec (None: no spec)."""
    if not spec:
        return None
    if not spec.get("pruner"):
        return Reporter(spec["metric"])
    pruner, reference, sign = from_json(spec["pruner"]), spec.get("reference"), spec["sign"]

    def decide(curve: list) -> str | None:
        return pruner.should_stop([[s, sign * v] for s, v in curve], reference)
    return Reporter(spec["metric"], decide)
