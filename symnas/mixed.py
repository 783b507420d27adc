"""Mixed ops: the pieces a supernet puts in place of a Space's choices.

Each choice of a :class:`symnas.supernet.Supernet` is one
:class:`MixedDecision` (its candidates, 0/1 mask, fixed choice). What stands
in the program for that choice reads the decision's state at forward time:

* :class:`MixedOp` holds every candidate module and returns
  ``sum_k w_k * op_k(x)``; ``none``/Zero and masked candidates are skipped, a
  fixed decision runs its one candidate.
* ``_MixedCallable`` stands for a choice over factories or functions: called
  with factory arguments it builds a :class:`MixedOp`, called on tensors it
  mixes the candidates' outputs.
* :class:`InputChoice` stands for a ``manyof`` over values read through the
  inputs protocol (a node's inputs): the list of candidates with a 0/1 weight each.
* :class:`GatedOp` (and :class:`GatedCallable` for factories) stands for each
  candidate of a ``manyof`` over modules that plain code uses as a list of
  branches: candidate ``i`` returns ``w_i * op_i(x)``, ``w = k * softmax(alpha)``
  times the 0/1 mask, so masking or fixing it changes the output.

The mixing weights of one forward pass live in a ``_State`` shared by the
supernet and its mixed ops (the supernet fills it from its alphas).

Example::

    state = _State()
    state.decisions[0] = MixedDecision("op", "oneof", (0,), ("a", "b"), [False] * 2, [1.0] * 2)
    op = MixedOp([nn.Identity(), nn.Tanh()], 0, state)
    state.weights[0] = torch.tensor([0.5, 0.5]).unbind()
    op(torch.ones(1))                  # 0.5 * 1 + 0.5 * tanh(1)
"""
from __future__ import annotations

import dataclasses
import inspect
import itertools
from collections.abc import Sequence
from typing import Any

import pyglove as pg
import torch
from torch import nn

from symnas.hyper import bound_call_fix

__all__ = ["GatedCallable", "GatedOp", "InputChoice", "MixedDecision", "MixedOp", "UnmixableChoice"]


class UnmixableChoice(ValueError):
    """A choice whose candidates a supernet cannot mix (it names the decision)."""


@dataclasses.dataclass
class MixedDecision:
    """One decision of a supernet and its state.

    ``genes`` are the decision's gene indices in ``space.genome_spec`` (one for
    a oneof, ``k`` for a manyof). ``mask`` holds a 0/1 multiplier per
    candidate; ``chosen`` is the fixed candidate (oneof) or candidates (manyof).
    """
    name: str
    kind: str                       # 'oneof' | 'manyof'
    genes: tuple[int, ...]
    labels: tuple
    zero: list[bool]                # candidate is a `none` op (skipped, excluded by magnitude)
    mask: list[float]
    chosen: Any = None              # None: undecided
    k: int = 1
    links: dict = dataclasses.field(default_factory=dict)  # manyof: candidate -> {oneof names}
    gated: bool = False             # manyof over modules: gated branches with their own alpha

    @property
    def size(self) -> int:
        return len(self.labels)

    @property
    def decided(self) -> bool:
        return self.chosen is not None

    @property
    def active(self) -> list[int]:
        return [i for i, m in enumerate(self.mask) if m != 0.0]


class _State:
    """What mixed ops read at forward time: the per-decision weights of this pass."""

    def __init__(self):
        self.decisions: dict[int, MixedDecision] = {}   # first gene -> decision
        self.weights: dict[int, tuple] = {}             # first gene -> per-candidate weights
        self.device = torch.device("cpu")
        self.building = False                           # a program is being constructed


def _holds_tensor(obj: Any, depth: int = 0) -> bool:
    """Whether call arguments hold a tensor, in lists, tuples, dicts or an object's fields."""
    if isinstance(obj, torch.Tensor):
        return True
    if depth > 3:
        return False
    items = obj.values() if isinstance(obj, dict) else obj if isinstance(obj, (list, tuple)) \
        else vars(obj).values() if hasattr(obj, "__dict__") and not isinstance(obj, type) else ()
    return any(_holds_tensor(x, depth + 1) for x in items)


def _plain(obj: Any) -> bool:
    """Whether a call's argument is a plain value (a number, string, None, or a list or tuple
    of them): what a layer factory takes, and what no module's forward is given."""
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return True
    return isinstance(obj, (list, tuple)) and all(_plain(x) for x in obj)


def _is_zero_op(m: Any) -> bool:
    t = m if isinstance(m, type) else type(m)
    return t.__name__ in ("Zero", "Zeros", "none") or getattr(t, "op_name", None) == "none"


class MixedOp(nn.Module):
    """``sum_k w_k * op_k(x)`` over a decision's candidates (zero/masked ones skipped)."""

    _state: _State

    def __init__(self, ops: Sequence[nn.Module], gene: int, state: _State):
        super().__init__()
        self.ops = nn.ModuleList(ops)
        self.gene = gene
        self.zero = [_is_zero_op(o) for o in ops]
        object.__setattr__(self, "_state", state)      # not a submodule
        d = state.decisions[gene]
        d.zero[:] = [a or b for a, b in zip(d.zero, self.zero)]

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        d = self._state.decisions[self.gene]
        w = self._state.weights.get(self.gene)
        if all(_plain(a) for a in (*args, *kwargs.values())) or \
                (w is None and d.chosen is None and not _holds_tensor((args, kwargs))):
            called = ", ".join([*map(repr, args), *(f"{k}={v!r}" for k, v in kwargs.items())])
            raise UnmixableChoice(
                f"decision {d.name!r} chooses among module instances {list(d.labels)}, but the "
                f"program calls the chosen one without a tensor, like a layer factory "
                f"(`({called})`). Pass classes or factories instead of instances, e.g. "
                "sn.oneof([nn.ReLU, nn.GELU]) rather than sn.oneof([nn.ReLU(), nn.GELU()]), or "
                "a searchable function's `.partial()` (a searchable class's `.partial()` with "
                "every argument given or defaulted is an instance, not a factory).")
        if d.chosen is not None:
            return self.ops[d.chosen](*args, **kwargs)
        if w is None:
            raise RuntimeError("a MixedOp ran before its Supernet computed the mixing weights: "
                               "call the Supernet itself, not its .model.")
        out = None
        for k in d.active:
            if self.zero[k]:
                continue
            y = self.ops[k](*args, **kwargs)
            # fused multiply-add into the running sum (one kernel per candidate)
            out = y * w[k] if out is None else out.addcmul_(y, w[k])
        if out is None:  # only `none` (or nothing) is left: zeros of the right shape
            z = next((k for k, is_z in enumerate(self.zero) if is_z), 0)
            return self.ops[z](*args, **kwargs) * 0.0
        return out

    def extra_repr(self) -> str:
        return f"gene={self.gene}"


class _MixedCallable:
    """Stands in for a choice over factories/functions in the program.

    Called at construction time with the factory arguments it returns a
    :class:`MixedOp` of every candidate's module; called at forward time on
    tensors it returns the weighted sum of the candidates' outputs.
    """

    def __init__(self, candidates: Sequence[Any], gene: int, state: _State, bn: dict):
        self.candidates = list(candidates)
        self.gene = gene
        self.state = state
        self.bn = bn

    def _call(self, c: Any, args: tuple, kwargs: dict) -> Any:
        keys = [k for k in self.bn if _accepts(c, k)]
        if not keys:
            return c(*args, **kwargs)
        bound = inspect.signature(c).bind_partial(*args, **kwargs)
        for k in keys:
            bound.arguments[k] = self.bn[k]
        return c(*bound.args, **bound.kwargs)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if any(isinstance(a, torch.Tensor) for a in itertools.chain(args, kwargs.values())):
            return self._mix(args, kwargs)
        outs = [self._call(c, args, kwargs) for c in self.candidates]
        if all(isinstance(o, nn.Module) for o in outs):
            for o in outs:
                _set_bn(o, **self.bn)
            return MixedOp(outs, self.gene, self.state)
        bound = [o for o in outs if isinstance(o, pg.Functor)]
        raise UnmixableChoice(
            f"the candidates of decision {self.state.decisions[self.gene].name!r} returned "
            f"{[type(o).__name__ for o in outs]}; a supernet mixes module factories (returning "
            "nn.Module) or functions on tensors." + (" " + bound_call_fix(bound[0]) if bound else ""))

    def _mix(self, args: tuple, kwargs: dict) -> Any:
        d = self.state.decisions[self.gene]
        if d.chosen is not None:
            return self.candidates[d.chosen](*args, **kwargs)
        w = self.state.weights[self.gene]
        out = None
        for k in d.active:
            y = self.candidates[k](*args, **kwargs) * w[k]
            out = y if out is None else out + y
        return out

    def __repr__(self) -> str:
        return f"Mixed({self.state.decisions[self.gene].name!r})"


class InputChoice(Sequence):
    """Stands in for a ``manyof`` (e.g. a node's inputs) in a supernet.

    It behaves as the list of every candidate; :meth:`active` lists the
    candidates whose weight is not zero (all of them until perturbation masks
    or fixes some). A program that mixes inputs sums the active candidates and
    may :meth:`link` each candidate to the mixed op on its edge, which lets
    magnitude selection rank inputs by their op's strongest non-``none`` weight
    (as DARTS does).

    Example (in a cell's supernet mode)::

        s = sum(self.edge[j](states[j]) for j in inputs.active())
    """

    def __init__(self, candidates: Sequence[Any], gene: int, state: _State):
        self.candidates = list(candidates)
        self.gene = gene
        self.state = state
        self.touched = False        # the program read it through the protocol
        self.listed = False         # the program read it as a plain list

    @property
    def decision(self) -> MixedDecision:
        return self.state.decisions[self.gene]

    def active(self) -> list:
        self.touched = True
        return [self.candidates[i] for i in self.decision.active]

    @property
    def weights(self) -> Any:
        """``weights()``: None (every input counts) or a 0/1 tensor per candidate (the DARTS
        cell protocol)."""
        self.touched = True
        return self._weights

    def _weights(self) -> torch.Tensor | None:
        mask = self.decision.mask
        if all(m == 1.0 for m in mask):
            return None
        return torch.tensor(mask, device=self.state.device)

    def weight(self, index: int) -> float:
        self.touched = True
        return self.decision.mask[index]

    def link(self, index: int, op: Any) -> None:
        """Records that candidate ``index`` feeds through ``op`` (a MixedOp or a decision name)."""
        self.touched = True
        name = op if isinstance(op, str) else self.state.decisions[op.gene].name
        self.decision.links.setdefault(index, set()).add(name)

    def __getitem__(self, i):
        self.listed = True
        return self.candidates[i]

    def __len__(self) -> int:
        self.listed = True
        return len(self.candidates)

    def __repr__(self) -> str:
        return f"InputChoice({self.decision.name!r}, {self.candidates})"


class GatedOp(nn.Module):
    """Candidate ``index`` of a manyof over modules, as one branch: ``w_index * op(x)``.

    ``w`` is what the supernet computed for the decision this pass (``k *
    softmax(alpha)`` times the mask); a decided decision gives 1 to its chosen
    candidates and 0 to the others (whose output is still computed, for its shape).
    """

    _state: _State

    def __init__(self, op: nn.Module, gene: int, index: int, state: _State):
        super().__init__()
        self.op = op
        self.gene, self.index = gene, index
        object.__setattr__(self, "_state", state)

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        return _gate(self._state, self.gene, self.index, self.op(*args, **kwargs))

    def extra_repr(self) -> str:
        return f"gene={self.gene}, index={self.index}"


class GatedCallable:
    """Candidate ``index`` of a manyof over factories or functions: builds a :class:`GatedOp`
    when called with factory arguments, gates the output when called on tensors."""

    def __init__(self, fn: Any, gene: int, index: int, state: _State, bn: dict):
        self.fn, self.gene, self.index, self.state, self.bn = fn, gene, index, state, bn

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if any(isinstance(a, torch.Tensor) for a in itertools.chain(args, kwargs.values())):
            return _gate(self.state, self.gene, self.index, self.fn(*args, **kwargs))
        keys = [k for k in self.bn if _accepts(self.fn, k)]
        if keys:
            bound = inspect.signature(self.fn).bind_partial(*args, **kwargs)
            for k in keys:
                bound.arguments[k] = self.bn[k]
            out = self.fn(*bound.args, **bound.kwargs)
        else:
            out = self.fn(*args, **kwargs)
        if not isinstance(out, nn.Module):
            raise UnmixableChoice(
                f"candidate {self.index} of decision {self.state.decisions[self.gene].name!r} "
                f"returned {type(out).__name__}; a supernet gates module factories (returning "
                "nn.Module) or functions on tensors.")
        _set_bn(out, **self.bn)
        return GatedOp(out, self.gene, self.index, self.state)

    def __repr__(self) -> str:
        return f"Gated({self.state.decisions[self.gene].name!r}, {self.index})"


def _gate(state: _State, gene: int, index: int, y: Any) -> Any:
    d = state.decisions[gene]
    if d.chosen is not None:
        return y if index in d.chosen else y * 0.0
    w = state.weights.get(gene)
    if w is None:
        raise RuntimeError("a gated branch ran before its Supernet computed the mixing weights: "
                           "call the Supernet itself, not its .model.")
    return y * w[index]


def _accepts(fn: Any, key: str) -> bool:
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return False
    return key in params


def _set_bn(module: nn.Module, affine: bool | None = None,
            track_running_stats: bool | None = None) -> None:
    """Turns off BN affine parameters / running statistics inside ``module``."""
    for m in module.modules():
        if not isinstance(m, nn.modules.batchnorm._BatchNorm):
            continue
        if affine is False and m.affine:
            m.affine = False
            m.register_parameter("weight", None)
            m.register_parameter("bias", None)
        if track_running_stats is False and m.track_running_stats:
            m.track_running_stats = False
            m.running_mean = m.running_var = m.num_batches_tracked = None


def _is_factory(c: Any) -> bool:
    if isinstance(c, (str, bytes, int, float, bool)) or c is None:
        return False
    return callable(c)


def path_weights(m: nn.Module, k: dict[int, int], largest: bool = True) -> int:
    """Weights of ``m`` on its largest (``largest=False``: smallest) path: a mixed op inside
    counts its largest candidate, a manyof's gated branches the ``k[gene]`` largest (the same
    picks in every repeat), everything else all its weights.

    >>> path_weights(nn.Sequential(nn.Linear(2, 3), nn.Linear(3, 1)), {})
    13
    """
    if isinstance(m, MixedOp):
        sizes = [path_weights(op, k, largest) for op in m.ops]
        return max(sizes) if largest else min(sizes)
    total = sum(p.numel() for p in m.parameters(recurse=False))
    branches: dict[int, dict[int, int]] = {}
    for c in m.children():
        if isinstance(c, GatedOp):
            per = branches.setdefault(c.gene, {})
            per[c.index] = per.get(c.index, 0) + path_weights(c.op, k, largest)
        else:
            total += path_weights(c, k, largest)
    return total + sum(sum(sorted(per.values(), reverse=largest)[:k[gene]]) for gene, per in branches.items())
