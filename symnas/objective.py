"""Objectives and constraints: which metric a search optimizes, and in which direction.

``objective="acc"`` maximizes ``acc``; ``sn.minimize("loss")`` minimizes;
a list of them is a multi-objective search (the reward is a tuple).
Constraints are strings like ``"params <= 1.5"`` or callables on the metrics;
a trial that breaks one is recorded as infeasible and never rewarded.

Example::

    objs = Objectives.parse([sn.maximize("acc"), sn.minimize("params")],
                            constraints=["params <= 1.5"])
    objs.reward({"acc": 0.9, "params": 1.2})   # (0.9, -1.2)
"""
from __future__ import annotations

import dataclasses
import math
import operator
import re
from typing import Any, Callable, Mapping, Sequence, Union

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

    @classmethod
    def parse(cls, c: Union[str, Callable, "Constraint"]) -> "Constraint":
        if isinstance(c, Constraint):
            return c
        if callable(c):
            return cls(getattr(c, "__name__", "constraint"), c)
        m = re.fullmatch(r"\s*([A-Za-z_][\w.]*)\s*(<=|>=|==|!=|<|>)\s*([-+0-9.eE]+)\s*", str(c))
        if not m:
            raise ValueError(f"cannot read constraint {c!r}: write it as 'metric <= number' "
                             "(operators <=, >=, <, >, ==, !=) or pass a function of the metrics.")
        key, op, bound = m.group(1), _OPS[m.group(2)], float(m.group(3))

        def check(metrics: Mapping[str, Any]) -> bool:
            if key not in metrics:
                raise KeyError(f"constraint {c!r} names metric {key!r}, which the evaluator did "
                               f"not return (it returned {sorted(metrics)}).")
            return bool(op(float(metrics[key]), bound))
        return cls(str(c).strip(), check)


ObjectiveLike = Union[None, str, Objective, Sequence[Union[str, Objective]]]


class Objectives(list):
    """The ordered objectives of a search plus its constraints."""

    def __init__(self, objectives: Sequence[Objective], constraints: Sequence[Constraint] = ()):
        super().__init__(objectives)
        self.constraints = list(constraints)

    @classmethod
    def parse(cls, objective: ObjectiveLike = None, constraints: Sequence = ()) -> "Objectives":
        if objective is None:
            objs = [Objective("reward")]
        elif isinstance(objective, (str, Objective)):
            objs = [objective]
        else:
            objs = list(objective)
        objs = [o if isinstance(o, Objective) else _from_text(o) for o in objs]
        if not objs:
            raise ValueError("objective= needs at least one metric name.")
        return cls(objs, [Constraint.parse(c) for c in constraints or ()])

    @property
    def multi(self) -> bool:
        return len(self) > 1

    def metrics(self, value: Any) -> dict:
        """Turns an evaluator's return value into a metrics dict and checks it."""
        if isinstance(value, Mapping):
            metrics = dict(value)
        else:
            try:
                metrics = {self[0].name: float(value)}
            except (TypeError, ValueError):
                raise TypeError(f"the evaluator returned {type(value).__name__} {value!r}; return "
                                "a number or a dict of metrics.") from None
        for o in self:
            if o.name not in metrics:
                raise KeyError(f"objective {o.name!r} is not among the evaluator's metrics "
                               f"{sorted(metrics)}; pass objective= one of those names.")
            v = metrics[o.name]
            try:
                v = float(v)
            except (TypeError, ValueError):
                raise TypeError(f"metric {o.name!r} is {v!r}, not a number.") from None
            if not math.isfinite(v):
                raise ValueError(f"the evaluator returned {v} for {o.name!r}; a reward must be "
                                 "a finite number (the trial is recorded as failed).")
            metrics[o.name] = v
        return metrics

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
        return {"objectives": [dataclasses.asdict(o) for o in self],
                "constraints": [c.text for c in self.constraints]}


def _from_text(text: str) -> Objective:
    text = text.strip()
    for prefix, mode in (("max:", "max"), ("min:", "min")):
        if text.startswith(prefix):
            return Objective(text[len(prefix):], mode)
    if text.startswith("-"):
        return Objective(text[1:], "min")
    return Objective(text, "max")
