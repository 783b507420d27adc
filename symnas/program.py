"""The programs of a supernet: a Space's own program, built with every choice stood in for.

A supernet never rewrites the user's model by hand. It runs the Space's
program (the symbolic value, or the traced function) with each hyper-value
replaced, and :class:`ProgramBuilder` decides what replaces it:

=====================  ==========================================================
kind                   stands in the program as
=====================  ==========================================================
``module``             a oneof over modules, module factories or tensor functions:
                       a :class:`~symnas.mixed.MixedOp` (mixed), or the chosen
                       candidate (single path, ``values`` holds it)
``branches``           a manyof over modules/factories: a list of gated candidates
                       (:class:`~symnas.mixed.GatedOp`), or the chosen ones
``inputs``             a manyof over values read through the inputs protocol
                       (``.weights()``, ``.active()``): an :class:`~symnas.mixed.InputChoice`
``elastic``            any other choice (a width, a kernel size, a block count, a
                       float): the value ``values`` gives, default the largest
``fixed``              a decision ``Supernet(fixed=...)`` sets
=====================  ==========================================================

Symbolic programs are instantiated directly (user classes called with plain
values), not through PyGlove's decode, so a supernet can build one
configuration per training step cheaply; :func:`symnas.instantiate.no_init` skips weight
initialisation for programs whose weights come from elsewhere.

Example::

    builder = ProgramBuilder(space, state)
    model = builder.build({})                    # module choices mixed, elastic ones largest
    small = builder.build({0: 0}, device="meta")  # gene 0 at its first candidate, no memory
"""
from __future__ import annotations

import contextlib
import copy
import dataclasses
import inspect
import types
from collections.abc import Callable, Mapping
from typing import Any

import pyglove as pg
import torch
from torch import nn

from symnas import meta_checks, sites
from symnas.choice_checks import check_no_hidden_choices, readable_labels
from symnas.hyper import PARTIAL_CLASS_FIX, picklable
from symnas.instantiate import Recording, call_user, finish, no_init
from symnas.mixed import (
    GatedCallable,
    GatedOp,
    InputChoice,
    MixedDecision,
    MixedOp,
    UnmixableChoice,
    _is_factory,
    _MixedCallable,
    _set_bn,
    _State,
)
from symnas.space import Space, unrecorded_choice

__all__ = ["ChoiceInfo", "ProgramBuilder", "no_init"]  # no_init: from symnas.instantiate

MODULE, BRANCHES, INPUTS, ELASTIC, FIXED = "module", "branches", "inputs", "elastic", "fixed"


@dataclasses.dataclass
class ChoiceInfo:
    """One decision as the supernet sees it: its gene, kind, candidates and largest value."""
    gene: int
    name: str
    kind: str
    candidates: tuple
    labels: tuple
    size: int | None = None          # None: a float decision
    low: float = 0.0
    high: float = 0.0
    largest: Any = 0                 # candidate index (or float) the store is built at
    k: int = 1                       # manyof: how many are chosen

    def values(self) -> list:
        """The gene values a probe tries: every candidate (floats: low, middle, high)."""
        if self.size is None:
            return [self.low, (self.low + self.high) / 2, self.high]
        return list(range(self.size))


def _largest(candidates: tuple) -> int:
    """Index of the largest number (True for booleans); the first for other values."""
    nums = [(c, i) for i, c in enumerate(candidates)
            if isinstance(c, (int, float)) and not isinstance(c, bool)]
    if len(nums) == len(candidates) and nums:
        return max(nums)[1]
    bools = [i for i, c in enumerate(candidates) if c is True]
    if bools and all(isinstance(c, bool) for c in candidates):
        return bools[0]
    seqs = [(len(c), i) for i, c in enumerate(candidates) if isinstance(c, (tuple, list))]
    if len(seqs) == len(candidates) and seqs:
        return max(seqs)[1]
    return 0


class ProgramBuilder:
    """Builds a Space's program with its choices stood in for (see the module docstring).

    ``state`` receives one :class:`~symnas.mixed.MixedDecision` per module,
    branches and inputs decision the first time the program meets it;
    ``on_decision`` is called with each new one (the supernet makes its alphas).
    ``choices`` lists every decision met so far, by gene.
    """

    def __init__(self, space: Space, state: _State, *, fixed: Mapping | None = None,
                 bn: Mapping | None = None, on_decision: Callable[[MixedDecision], None] | None = None):
        self.space = space
        self.state = state
        self.bn = dict(bn or {})
        self.fixed_in = dict(fixed or {})
        self.fixed_genes: dict[int, Any] = {}   # gene -> its value (a float's: the value)
        self.used_fixed: set[str] = set()
        self.on_decision = on_decision
        self.choices: dict[int, ChoiceInfo] = {}
        self.input_choices: list[InputChoice] = []
        gs = space.genome_spec
        self._children = gs.children
        self._by_name: dict[str, int] = {}
        for i, g in enumerate(gs.genes):
            self._by_name.setdefault(g.name, i)
        # top-level hyper primitives of a symbolic program -> their (public) gene, by name
        self._top: dict[int, int] = {}
        if space._fn is None:
            for path, h in pg.template(space.value).hyper_primitives:
                key = h.name.split("@")[0] if h.name else str(path)
                gene = next((i for i, g in enumerate(gs.genes) if g.parent is None and g.name == key),
                            None)
                if gene is None:
                    raise KeyError(f"decision {key!r} not found in the Space's genome layout.")
                self._top[id(h)] = gene
        # per-build settings
        self._values: Mapping[int, Any] = {}
        self._mixed = True
        self._origin: dict[int, tuple] = {}
        self._bn_now: dict = self.bn

    # ---- public ------------------------------------------------------------------------
    def build(self, values: Mapping[int, Any] | None = None, *, mixed: bool = True,
              device: Any = None, init: bool = True, origin: dict | None = None,
              bn: bool = True) -> nn.Module:
        """The program with elastic genes set from ``values`` (default: largest).

        ``mixed=False`` builds one architecture: module, branches and inputs
        decisions also take their value from ``values`` (candidate indices;
        a manyof's list of picks under its first gene). ``origin`` receives
        ``{id(module): (gene, candidate)}`` for the modules chosen candidates
        made, as ``(gene, candidate, kind)``. ``device="meta"`` builds without memory; ``init=False`` skips
        initialisation; ``bn=False`` leaves BatchNorm inside candidates as
        written.
        """
        self._values, self._mixed = dict(values or {}), mixed
        self._origin = origin if origin is not None else {}
        self._bn_now = self.bn if bn else {}
        ctx = contextlib.ExitStack()
        if not init:
            ctx.enter_context(no_init())
        if device is not None:
            ctx.enter_context(torch.device(device))
        with ctx, sites.recording():
            try:
                model = self._run()
            except (RuntimeError, NotImplementedError) as e:
                if device != "meta" or "meta" not in str(e):
                    raise
                raise meta_checks.value_read(e) from e
        if not isinstance(model, nn.Module):
            raise TypeError(f"the Space's program built a {type(model).__name__}, not an "
                            "nn.Module; a supernet needs a module program.")
        return model

    def check_choices_read(self, model: nn.Module) -> None:
        """Refuses, saying what to write instead, a manyof the supernet cannot score: one over
        values the program never read through the inputs protocol (a mask with no effect), and
        one over modules of which ``model`` (the store) built only some candidates: code that
        takes the picks by position (``branches[0](c)``) never builds the others."""
        built: dict[int, set[int]] = {}
        for m in model.modules():
            if isinstance(m, GatedOp):
                built.setdefault(m.gene, set()).add(m.index)
        for d in self.state.decisions.values():
            # (no gated op at all: a manyof over functions, gating tensors, not modules)
            missing = sorted(set(range(d.size)) - built.get(d.genes[0], set(range(d.size))))
            if d.gated and missing:
                raise UnmixableChoice(
                    f"decision {d.name!r} is a manyof whose candidates {missing} the program never "
                    "builds: it takes the picks by position (branches[0], branches[1]), so the "
                    "supernet, which hands it every candidate, holds weights for the first ones only. "
                    "Build every item it is given (for b in branches: ...), fix it with "
                    f"Supernet(space, fixed={{{d.name!r}: [...]}}), or search it by black-box.")
        for ic in self.input_choices:
            if ic.listed and not ic.touched:
                d = ic.decision
                raise UnmixableChoice(
                    f"decision {d.name!r} is a manyof over {list(ic.candidates)!r} that the program "
                    "uses as a plain list, so a supernet cannot tell which picks it used (masking "
                    "them would change nothing). Make it a manyof over modules or module "
                    "factories (each candidate becomes a gated branch the supernet can score), "
                    "read it through the inputs protocol (inputs.weights() / inputs.active(), as "
                    "the DARTS cell does), fix it with Supernet(space, fixed={"
                    f"{d.name!r}: [...]}}), or search it by black-box.")

    def unused_fixed(self) -> list[str]:
        return sorted(set(self.fixed_in) - self.used_fixed)

    # ---- running the program -------------------------------------------------------------
    def _run(self) -> Any:
        space = self.space
        if space._fn is not None:
            with pg.hyper.dynamic_evaluate(self._trace_eval):
                return finish(space._fn())
        check_no_hidden_choices(space.value)
        return finish(self._instantiate(space.value, _GeneCursor(self, None, None)))

    def _instantiate(self, node: Any, cursor: _GeneCursor) -> Any:
        """``node`` with every hyper primitive resolved (genes taken in PyGlove's order)."""
        if isinstance(node, pg.hyper.HyperPrimitive):
            gene = self._top[id(node)] if id(node) in self._top else cursor.next_gene(node)
            return self._convert(node, gene, self.space.genome_spec.genes[gene].name, trace=False)
        if isinstance(node, pg.List) or (isinstance(node, list) and not isinstance(node, pg.Symbolic)):
            return [self._instantiate(v, cursor) for v in node]
        if isinstance(node, pg.Dict):
            return {k: self._instantiate(v, cursor) for k, v in node.items()}
        if isinstance(node, pg.Object):
            kwargs = {k: self._instantiate(v, cursor) for k, v in node.sym_init_args.items()}
            cls = type(node)
            user = cls.__dict__.get("sym_wrapped_cls")
            if user is not None and issubclass(user, nn.Module):
                if node.sym_partial:
                    raise ValueError(f"{user.__name__}.partial(...) is given where a layer "
                                     f"factory is called. {PARTIAL_CLASS_FIX}")
                picklable(user, cls)
                return call_user(user, kwargs)
            if node.sym_partial or isinstance(node, pg.Functor):
                clone = node.sym_clone(deep=False)
                clone.rebind({k: v for k, v in kwargs.items()}, raise_on_no_change=False,
                             skip_notification=True)
                return clone
            return cls(**kwargs)
        if isinstance(node, nn.Module):
            return copy.deepcopy(node)
        return node

    def _trace_eval(self, h: Any) -> Any:
        name = h.name
        gene = self._by_name.get(name)
        if gene is None:
            raise ValueError(unrecorded_choice(name))
        return self._convert(h, gene, name, trace=True)

    # ---- one hyper primitive -------------------------------------------------------------
    def _convert(self, h: Any, gene: int, name: str, trace: bool) -> Any:
        if isinstance(h, pg.hyper.ManyOf):
            self._check_flat_manyof(gene, name)
        if name in self.fixed_in:
            self._note(gene, name, FIXED, h)
            if isinstance(h, pg.hyper.ManyOf):
                picks = self._fixed_picks(h, name)
                for j, p in enumerate(picks):
                    self.fixed_genes[gene + j] = p
                return [self._chosen(h.candidates[p], gene, p, trace, record=None) for p in picks]
            k, c = self._fixed_value(h, name)
            self.fixed_genes[gene] = k
            return self._chosen(c, gene, k, trace, record=None)
        if isinstance(h, pg.hyper.ManyOf):
            return self._manyof(h, gene, name, trace)
        if not isinstance(h, pg.hyper.OneOf):             # a float
            info = self._note(gene, name, ELASTIC, h)
            return float(self._values.get(gene, info.largest))
        cands = list(h.candidates)
        if all(_is_factory(c) for c in cands):
            return self._module_choice(h, gene, name, trace)
        info = self._note(gene, name, ELASTIC, h)
        k = int(self._values.get(gene, info.largest))
        return self._chosen(cands[k], gene, k, trace, record=None)

    def _module_choice(self, h: Any, gene: int, name: str, trace: bool) -> Any:
        self._note(gene, name, MODULE, h)
        if not self._mixed:
            k = int(self._values[gene])
            return self._chosen(h.candidates[k], gene, k, trace, record=MODULE)
        cands = [self._nested(c, gene, k, trace) for k, c in enumerate(h.candidates)]
        self._decision(h, gene, name, "oneof")
        if all(isinstance(c, nn.Module) for c in cands):
            for c in cands:
                _set_bn(c, **self._bn_now)
            return MixedOp(cands, gene, self.state)
        return _MixedCallable(cands, gene, self.state, self._bn_now)

    def _check_flat_manyof(self, gene: int, name: str) -> None:
        """Refuses a manyof whose candidates hold choices (fixed or not): their genes sit
        between its picks', which a supernet reads as one run of genes."""
        gs = self.space.genome_spec
        group = next((ix for ix, _, _ in gs.groups if gene in ix), (gene,))
        inner = sorted({g.name for g in gs.genes if g.parent in group})
        if inner:
            raise UnmixableChoice(
                f"decision {name!r} is a manyof whose candidates hold choices of their own "
                f"({', '.join(map(repr, inner))}); a supernet mixes manyof over fixed candidates, "
                "fixed= or not. Bind those values in the candidates (e.g. thin.partial(w=8)), give "
                "each value its own candidate, or search this space by black-box.")

    def _manyof(self, h: Any, gene: int, name: str, trace: bool) -> Any:
        cands = list(h.candidates)
        k = h.num_choices
        modules = all(_is_factory(c) for c in cands)
        self._note(gene, name, BRANCHES if modules else INPUTS, h)
        if not h.choices_distinct:
            raise UnmixableChoice(
                f"decision {name!r} is a manyof that is not distinct; a supernet mixes distinct "
                f"manyof choices only. Fix it with Supernet(space, fixed={{{name!r}: [...]}}) or "
                "search it by black-box.")
        if not self._mixed:
            picks = self._values[gene]
            picks = list(picks) if isinstance(picks, (list, tuple)) else \
                [int(self._values[gene + j]) for j in range(k)]
            return [self._chosen(cands[p], gene, p, trace, record=BRANCHES if modules else None)
                    for p in picks]
        d = self._decision(h, gene, name, "manyof", gated=modules)
        if not modules:
            ic = InputChoice(cands, gene, self.state)
            self.input_choices.append(ic)
            return ic
        out: list[Any] = []
        for i, c in enumerate(cands):
            c = self._nested(c, gene, i, trace)
            if isinstance(c, nn.Module):
                _set_bn(c, **self._bn_now)
                out.append(GatedOp(c, gene, i, self.state))
            else:
                out.append(GatedCallable(c, gene, i, self.state, self._bn_now))
        del d
        return out

    def _chosen(self, c: Any, gene: int, k: int, trace: bool, record: str | None) -> Any:
        """Candidate ``k`` as the program gets it; ``record``: the kind of decision whose
        chosen modules are recorded in the origin map as ``(gene, k, kind)``."""
        c = self._nested(c, gene, k, trace)
        if record is None:
            return c
        if isinstance(c, nn.Module):
            _set_bn(c, **self._bn_now)
            self._origin[id(c)] = (gene, k, record)
            return c
        if _is_factory(c):
            return Recording(c, gene, k, self._origin, self._bn_now, record)
        return c

    def _nested(self, c: Any, gene: int, k: int, trace: bool) -> Any:
        """Candidate ``k`` of ``gene`` with its own choices resolved (a fresh copy)."""
        if trace:
            if isinstance(c, types.FunctionType):
                try:
                    sig = inspect.signature(c)
                except (TypeError, ValueError):
                    sig = None
                if sig is not None and not sig.parameters:
                    return c()
            return copy.deepcopy(c) if isinstance(c, nn.Module) else c
        if isinstance(c, pg.Symbolic):
            cursor = _GeneCursor(self, gene, k)
            return self._instantiate(c, cursor)
        return copy.deepcopy(c) if isinstance(c, nn.Module) else c

    # ---- bookkeeping ---------------------------------------------------------------------
    def _note(self, gene: int, name: str, kind: str, h: Any) -> ChoiceInfo:
        info = self.choices.get(gene)
        if info is not None:
            return info
        g = self.space.genome_spec.genes[gene]
        if isinstance(h, pg.hyper.OneOf) or isinstance(h, pg.hyper.ManyOf):
            cands = tuple(h.candidates)
            labels = tuple(readable_labels(cands, self.space.labels[gene]))
            info = ChoiceInfo(gene, name, kind, cands, labels, size=len(cands),
                              largest=_largest(cands) if kind == ELASTIC else 0,
                              k=getattr(h, "num_choices", 1))
        else:
            info = ChoiceInfo(gene, name, kind, (), (), size=None, low=g.low, high=g.high,
                              largest=g.high)
        self.choices[gene] = info
        return info

    def _decision(self, h: Any, gene: int, name: str, kind: str, gated: bool = False) -> MixedDecision:
        d = self.state.decisions.get(gene)
        if d is not None:
            return d
        labels = self.choices[gene].labels
        n = len(h.candidates)
        if kind == "manyof":
            k = h.num_choices
            d = MixedDecision(name, "manyof", tuple(range(gene, gene + k)), labels, [False] * n,
                              [1.0] * n, k=k, gated=gated)
            if k == n:
                d.chosen = list(range(n))
        else:
            d = MixedDecision(name, "oneof", (gene,), labels, [False] * n, [1.0] * n)
        self.state.decisions[gene] = d
        if self.on_decision is not None:
            self.on_decision(d)
        return d

    def _fixed_picks(self, h: Any, name: str) -> list[int]:
        want = self.fixed_in[name]
        self.used_fixed.add(name)
        cands = list(h.candidates)
        if not isinstance(want, (list, tuple)) or len(want) != h.num_choices:
            raise ValueError(f"fixed[{name!r}] must list {h.num_choices} of {cands}, got {want!r}.")
        picks: list[int] = []
        for w in want:     # the very candidate first, then an equal one; each once if distinct
            hit = [i for i, c in enumerate(cands) if c is w] + \
                [i for i, c in enumerate(cands) if c is not w and type(c) is type(w) and c == w]
            if not hit:
                raise ValueError(f"fixed[{name!r}]: {w!r} is not a candidate; candidates: {cands}.")
            free = [i for i in hit if i not in picks] if h.choices_distinct else hit
            if not free:
                raise ValueError(f"fixed[{name!r}] lists {w!r} more often than the candidates hold "
                                 f"it; {name!r} picks {h.num_choices} distinct candidates of {cands}.")
            picks.append(free[0])
        return sorted(picks) if h.choices_sorted else picks

    def _fixed_value(self, h: Any, name: str) -> tuple[Any, Any]:
        """The gene value and the value of a fixed oneof or float."""
        want = self.fixed_in[name]
        self.used_fixed.add(name)
        if isinstance(h, pg.hyper.Float):
            if isinstance(want, (int, float)) and not isinstance(want, bool) \
                    and h.min_value <= want <= h.max_value:
                return float(want), float(want)     # exactly (a pinned gene is off the grid)
            raise ValueError(f"fixed[{name!r}] = {want!r} is outside that float decision's range "
                             f"[{h.min_value}, {h.max_value}]; give a number in it.")
        cands = list(h.candidates) if hasattr(h, "candidates") else []
        for i, c in enumerate(cands):
            if c is want or (type(c) is type(want) and c == want):
                return i, c
        numeric = any(isinstance(c, (int, float)) for c in cands)
        if isinstance(want, int) and not isinstance(want, bool) and not numeric \
                and 0 <= want < len(cands):
            return want, cands[want]
        raise ValueError(f"fixed[{name!r}] = {want!r} is not a candidate of that decision; "
                         f"candidates: {cands}.")


class _GeneCursor:
    """Hands out the genes of the hyper primitives met inside one (sub)program, in order."""

    def __init__(self, builder: ProgramBuilder, parent: int | None, value: int | None):
        self.builder = builder
        self.genes = list(builder._children.get((parent, value), []))
        self.pos = 0

    def next_gene(self, h: Any) -> int:
        gene = self.genes[self.pos]
        self.pos += getattr(h, "num_choices", 1) if isinstance(h, pg.hyper.ManyOf) else 1
        return gene
