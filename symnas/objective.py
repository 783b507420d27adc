"""Objectives and constraints: which metric a search optimizes, and in which direction.

``objective="acc"`` maximizes ``acc``; ``sn.minimize("loss")`` minimizes;
a list of them is a multi-objective search (the reward is a tuple).
Constraints are strings like ``"params <= 1.5"`` or callables on the metrics;
a trial that breaks one is recorded as infeasible and never rewarded.

Without ``objective=`` the objective is the evaluator's declared metric
(``default=``: a Task's ``metric``, the NB201 table's, a zero-cost proxy's
name), else the only entry of a one-metric dict, else ``reward`` (what a
plain number is recorded as). Rewards and metrics are numbers: a string
(``"0.9"``) or a boolean is an error, numpy and torch scalars are fine.

Example::

    objs = Objectives.parse([sn.maximize("acc"), sn.minimize("params")],
                            constraints=["params <= 1.5"])
    objs.reward({"acc": 0.9, "params": 1.2})   # (0.9, -1.2)
    Objectives.parse(None, default="valid_acc")[0].name        # 'valid_acc'
    objs.check_metrics({"acc": 0.9})  # MissingMetric: ... 'params' ... returned ['acc'] ...

A *derived* objective is computed from other metrics and recorded as a
metric of its own; :func:`mnasnet_reward` is MnasNet's accuracy-latency
reward (Tan et al. 2019), one number a single-objective algorithm (a
controller, say) can climb:

>>> reward = mnasnet_reward("acc", "latency_ms", target=80.0, w=-0.07)
>>> objs = Objectives.parse(reward)
>>> m = objs.metrics({"acc": 0.75, "latency_ms": 160.0})      # 0.75 * (160 / 80) ** -0.07
>>> round(m["mnasnet_reward"], 4), round(objs.reward(m), 4)
(0.7145, 0.7145)
"""
from __future__ import annotations

import dataclasses
import difflib
import math
import operator
import re
from typing import Any, Callable, Mapping, Sequence, Union

REWARD = "reward"   # the metric a bare number is recorded as


class MissingMetric(KeyError):
    """An objective or constraint names a metric the evaluator did not return.

    ``args[0]`` is the whole message: the metric, the metrics returned, the fix.
    """

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


def as_number(value: Any, what: str) -> float:
    """``float(value)`` for real numbers (numpy/torch scalars too); strings and booleans refused."""
    if isinstance(value, (str, bytes)):
        raise TypeError(f"{what} is the string {value!r}, not a number; return a float "
                        f"(e.g. float({value!r}) if you mean it as one).")
    dtype = getattr(value, "dtype", None)
    if isinstance(value, bool) or (dtype is not None and str(dtype) in ("bool", "torch.bool")):
        raise TypeError(f"{what} is the boolean {value!r}, not a number; return a float "
                        "(a reward of True/False is almost always a mistake).")
    try:
        return float(value)
    except (TypeError, ValueError):
        raise TypeError(f"{what} is {type(value).__name__} {value!r}, not a number.") from None


def _did_you_mean(name: str, available: Sequence[str]) -> str:
    close = difflib.get_close_matches(name, list(available), n=1, cutoff=0.5)
    return f" (did you mean {close[0]!r}?)" if close else ""

_OPS = {"<=": operator.le, ">=": operator.ge, "<": operator.lt, ">": operator.gt,
        "==": operator.eq, "!=": operator.ne}


@dataclasses.dataclass(frozen=True)
class Objective:
    """One metric and its direction."""
    name: str
    mode: str = "max"

    def __post_init__(self):
        if self.mode not in ("max", "min"):
            raise ValueError(f"objective mode must be 'max' or 'min', got {self.mode!r}.")

    @property
    def sign(self) -> float:
        return 1.0 if self.mode == "max" else -1.0


def maximize(name: str) -> Objective:
    """Maximize the metric ``name``."""
    return Objective(name, "max")


def minimize(name: str) -> Objective:
    """Minimize the metric ``name``."""
    return Objective(name, "min")


@dataclasses.dataclass(frozen=True)
class Constraint:
    """``metric op bound``, e.g. ``params <= 1.5``; or any callable on the metrics."""
    text: str
    fn: Callable[[Mapping[str, Any]], bool]
    metric: str | None = None     # the metric a 'metric op bound' constraint reads

    @classmethod
    def parse(cls, c: str | Callable | Constraint) -> Constraint:
        if isinstance(c, Constraint):
            return c
        if callable(c):
            return cls(getattr(c, "__name__", "constraint"), c)
        m = re.fullmatch(r"\s*([A-Za-z_][\w.]*)\s*(<=|>=|==|!=|<|>)\s*([-+0-9.eE]+)\s*", str(c))
        if not m:
            raise ValueError(f"cannot read constraint {c!r}: write it as 'metric <= number' "
                             "(operators <=, >=, <, >, ==, !=) or pass a function of the metrics.")
        key, op, bound = m.group(1), _OPS[m.group(2)], float(m.group(3))

        text = str(c).strip()

        def check(metrics: Mapping[str, Any]) -> bool:
            if key not in metrics:
                raise MissingMetric(_missing_constraint_metric(text, key, metrics))
            return bool(op(as_number(metrics[key], f"metric {key!r} (constraint {text!r})"), bound))
        return cls(text, check, key)


def _missing_constraint_metric(text: str, key: str, metrics: Mapping[str, Any]) -> str:
    return (f"constraint {text!r} names metric {key!r}, which the evaluator did not return "
            f"(it returned {sorted(metrics)}){_did_you_mean(key, sorted(metrics))}; write the "
            "constraint on one of those metrics, or return it from the evaluator.")


@dataclasses.dataclass(frozen=True)
class Derived(Objective):
    """An objective computed from other metrics by ``fn(metrics)``; recorded under ``name``."""
    inputs: tuple[str, ...] = ()
    fn: Callable[[Mapping[str, Any]], float] | None = dataclasses.field(
        default=None, compare=False, repr=False)
    text: str = ""     # how it is computed, for messages

    def compute(self, metrics: Mapping[str, Any]) -> float:
        """The derived value; a missing input is a :class:`MissingMetric` naming it."""
        for key in self.inputs:
            if key not in metrics:
                raise MissingMetric(
                    f"objective {self.name!r} ({self.text}) needs metric {key!r}, which the "
                    f"evaluator did not return (it returned {sorted(metrics)})"
                    f"{_did_you_mean(key, sorted(metrics))}; return it from the evaluator.")
            as_number(metrics[key], f"metric {key!r} (objective {self.name!r})")
        if self.fn is None:
            raise ValueError(f"derived objective {self.name!r} has no function to compute it.")
        return as_number(self.fn(metrics), f"objective {self.name!r}")


def mnasnet_reward(accuracy: str, latency: str, *, target: float, w: float = -0.07,
                   w_above: float | None = None, name: str = "mnasnet_reward") -> Derived:
    """MnasNet's reward ``acc * (lat / target) ** w`` (Tan et al. 2019) as a maximized objective.

    ``w`` is the exponent when ``lat <= target`` (MnasNet's alpha) and
    ``w_above`` when ``lat > target`` (beta; default ``w``). ``w = w_above =
    -0.07`` is MnasNet's soft trade-off (a network twice as slow must be
    about 5% more accurate); ``w=0, w_above=-1`` a hard latency target. The
    value is recorded as the metric ``name``.
    """
    if not target > 0:
        raise ValueError(f"mnasnet_reward needs target > 0 (a latency), got {target}.")
    above = w if w_above is None else w_above

    def fn(metrics: Mapping[str, Any]) -> float:
        acc, lat = float(metrics[accuracy]), float(metrics[latency])
        if lat <= 0:
            raise ValueError(f"mnasnet_reward: latency {latency!r} is {lat}; it must be positive.")
        return acc * (lat / target) ** (w if lat <= target else above)

    text = f"{accuracy} * ({latency} / {target:g}) ** {w:g}" + (
        f" ({w_above:g} above the target)" if w_above is not None and w_above != w else "")
    return Derived(name, "max", inputs=(accuracy, latency), fn=fn, text=text)


ObjectiveLike = Union[None, str, Objective, Sequence[Union[str, Objective]]]  # noqa: UP007


class Objectives(list):
    """The ordered objectives of a search plus its constraints.

    ``implicit`` is True when nobody named the objective (no ``objective=``,
    no declared metric): it is ``reward`` until an evaluator returns a
    one-metric dict without ``reward``, whose metric then becomes the objective.
    """

    def __init__(self, objectives: Sequence[Objective], constraints: Sequence[Constraint] = (),
                 implicit: bool = False):
        super().__init__(objectives)
        self.constraints = list(constraints)
        self.implicit = implicit

    @classmethod
    def parse(cls, objective: ObjectiveLike = None, constraints: Sequence = (),
              default: str | None = None) -> Objectives:
        """Objectives from ``objective=``; without it, ``default`` (the evaluator's metric).

        ``default`` is what the evaluator declares it measures (``evaluator.metric``);
        with neither, the objective is ``reward`` (see ``implicit``).
        """
        implicit = False
        if objective is None:
            objs: list = [Objective(default) if default else Objective(REWARD)]
            implicit = not default
        elif isinstance(objective, (str, Objective)):
            objs = [objective]
        else:
            objs = list(objective)
        objs = [o if isinstance(o, Objective) else _from_text(o) for o in objs]
        if not objs:
            raise ValueError("objective= needs at least one metric name.")
        if isinstance(constraints, (str, Constraint)) or callable(constraints):
            constraints = [constraints]
        return cls(objs, [Constraint.parse(c) for c in constraints or ()], implicit=implicit)

    @property
    def multi(self) -> bool:
        return len(self) > 1

    def metrics(self, value: Any) -> dict:
        """Turns an evaluator's return value into a metrics dict and checks it.

        A number is the (single) objective's value; a dict must hold every
        objective. Objective values must be finite numbers: a string or a
        boolean is a ``TypeError``, NaN/inf a ``ValueError`` (the trial fails).
        """
        if isinstance(value, Mapping):
            metrics = dict(value)
            self._adopt(metrics)
        else:
            if self.multi:
                raise TypeError(f"the evaluator returned {type(value).__name__} {value!r}, but "
                                f"this search has {len(self)} objectives "
                                f"({', '.join(o.name for o in self)}): return a dict of metrics.")
            metrics = {self[0].name: as_number(value, "the evaluator's return value")}
        self._derive(metrics)
        for o in self:
            if o.name not in metrics:
                raise MissingMetric(self._missing_objective(o.name, metrics))
            v = as_number(metrics[o.name], f"metric {o.name!r}")
            if not math.isfinite(v):
                raise ValueError(f"the evaluator returned {v} for {o.name!r}; a reward must be "
                                 "a finite number (the trial is recorded as failed).")
            metrics[o.name] = v
        return metrics

    def check_metrics(self, metrics: Mapping[str, Any]) -> None:
        """Checks one finished trial's metrics against the objectives and the constraints.

        Meant for the first finished trial of a search: a metric missing there
        is missing from every trial, so the search can stop at once. Raises
        :class:`MissingMetric` (a ``KeyError``) naming the missing metric, the
        metrics the evaluator returned and the fix, or ``TypeError`` for a
        value that is not a number; returns None when all is well. NaN/inf
        are not checked (they fail one architecture, not the set-up).
        """
        if not isinstance(metrics, Mapping):
            self.metrics(metrics)
            return
        metrics = dict(metrics)
        self._adopt(metrics)
        self._derive(metrics)
        for o in self:
            if o.name not in metrics:
                raise MissingMetric(self._missing_objective(o.name, metrics))
            as_number(metrics[o.name], f"metric {o.name!r}")
        for c in self.constraints:
            if c.metric is not None:
                if c.metric not in metrics:
                    raise MissingMetric(_missing_constraint_metric(c.text, c.metric, metrics))
                as_number(metrics[c.metric], f"metric {c.metric!r} (constraint {c.text!r})")
            else:
                try:
                    c.fn(metrics)
                except KeyError as e:
                    name = e.args[0] if e.args else "?"
                    raise MissingMetric(
                        f"constraint {c.text!r} reads metric {name!r}, which the evaluator did "
                        f"not return (it returned {sorted(metrics)}); fix the constraint or "
                        "return that metric.") from None

    def _derive(self, metrics: dict) -> None:
        """Adds each derived objective's value to ``metrics``."""
        for o in self:
            if isinstance(o, Derived):
                metrics[o.name] = o.compute(metrics)

    def _adopt(self, metrics: Mapping[str, Any]) -> None:
        """An unnamed objective becomes the only metric of a one-metric dict."""
        if self.implicit and REWARD not in metrics and len(metrics) == 1:
            self[0] = Objective(next(iter(metrics)), self[0].mode)
            self.implicit = False

    def _missing_objective(self, name: str, metrics: Mapping[str, Any]) -> str:
        names = sorted(metrics)
        hint = _did_you_mean(name, names)
        example = (f" (e.g. objective={names[0]!r})" if names and not hint else "")
        return (f"objective {name!r} is not among the evaluator's metrics {names}{hint}; pass "
                f"objective= one of those names{example}, or return {name!r} from the evaluator.")

    def vector(self, metrics: Mapping[str, Any]) -> tuple:
        """Signed objective values (larger is better for every entry)."""
        return tuple(o.sign * float(metrics[o.name]) for o in self)

    def scalar(self, metrics: Mapping[str, Any]) -> float:
        return self[0].sign * float(metrics[self[0].name])

    def reward(self, metrics: Mapping[str, Any]) -> float | tuple:
        """What the algorithm is told: a float, or a tuple when multi-objective."""
        v = self.vector(metrics)
        return v if self.multi else v[0]

    def feasible(self, metrics: Mapping[str, Any]) -> bool:
        return all(c.fn(metrics) for c in self.constraints)

    def to_json(self) -> dict:
        return {"objectives": [{"name": o.name, "mode": o.mode} for o in self],
                "constraints": [c.text for c in self.constraints]}


def _from_text(text: str) -> Objective:
    text = text.strip()
    for prefix, mode in (("max:", "max"), ("min:", "min")):
        if text.startswith(prefix):
            return Objective(text[len(prefix):], mode)
    if text.startswith("-"):
        return Objective(text[1:], "min")
    return Objective(text, "max")
