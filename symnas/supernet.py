"""Supernets derived from any Space: every module choice becomes a mixed op.

:class:`Supernet` takes the Space's own symbolic program (or traced function)
and replaces each choice over modules or module factories by a mixed op that
holds every candidate plus architecture weights ``alpha`` (one vector per
decision *name*: choices that share a name share one alpha). Nested choices
become mixed too, with their own alphas. The output of a mixed op is
``sum_k softmax(alpha)_k * op_k(x)``; ``none``/Zero candidates and candidates
masked to zero are skipped instead of computed, and a decision fixed to one
candidate runs that candidate alone.

A ``manyof`` choice (e.g. the inputs of a DARTS node) is replaced by an
:class:`InputChoice`: the program sees every candidate with a 0/1 weight and
sums the active ones (see the DARTS space's cell). A choice the supernet
cannot mix (an int, float or string that changes tensor shapes) raises
:class:`UnmixableChoice` naming it; fix it with ``Supernet(space, fixed={name: value})``.

Example::

    space = sn.spaces.nasbench201(C=8, N=1)
    net = Supernet(space)                        # BN without affine parameters
    logits = net(torch.randn(2, 3, 32, 32))
    net.genome()                                 # argmax of alpha, `none` excluded
    net.top_k(3)                                 # [(genome, score), ...] best first
    with net.masked("edge_1_0", 3):              # candidate 3's weight set to 0
        ...
    net.fix("edge_1_0", 3)                       # decision made: one-hot
"""
from __future__ import annotations

import contextlib
import copy
import dataclasses
import heapq
import inspect
import itertools
import math
import re
import types
from typing import Any, Iterator, Sequence

import pyglove as pg
import torch
from torch import nn

__all__ = ["Supernet", "MixedOp", "InputChoice", "MixedDecision", "UnmixableChoice"]


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


def _is_zero_op(m: Any) -> bool:
    t = m if isinstance(m, type) else type(m)
    return t.__name__ in ("Zero", "Zeros", "none") or getattr(t, "op_name", None) == "none"


class MixedOp(nn.Module):
    """``sum_k w_k * op_k(x)`` over a decision's candidates (zero/masked ones skipped)."""

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
        if d.chosen is not None:
            return self.ops[d.chosen](*args, **kwargs)
        w = self._state.weights.get(self.gene)
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
        raise UnmixableChoice(
            f"the candidates of decision {self.state.decisions[self.gene].name!r} returned "
            f"{[type(o).__name__ for o in outs]}; a supernet mixes module factories (returning "
            "nn.Module) or functions on tensors.")

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

    @property
    def decision(self) -> MixedDecision:
        return self.state.decisions[self.gene]

    def active(self) -> list:
        return [self.candidates[i] for i in self.decision.active]

    def weights(self) -> torch.Tensor | None:
        """None (every input counts) or a 0/1 tensor per candidate (the DARTS cell protocol)."""
        mask = self.decision.mask
        if all(m == 1.0 for m in mask):
            return None
        return torch.tensor(mask, device=self.state.device)

    def weight(self, index: int) -> float:
        return self.decision.mask[index]

    def link(self, index: int, op: Any) -> None:
        """Records that candidate ``index`` feeds through ``op`` (a MixedOp or a decision name)."""
        name = op if isinstance(op, str) else self.state.decisions[op.gene].name
        self.decision.links.setdefault(index, set()).add(name)

    def __getitem__(self, i):
        return self.candidates[i]

    def __len__(self) -> int:
        return len(self.candidates)

    def __repr__(self) -> str:
        return f"InputChoice({self.decision.name!r}, {self.candidates})"


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
            m.weight = None
            m.bias = None
        if track_running_stats is False and m.track_running_stats:
            m.track_running_stats = False
            m.running_mean = m.running_var = m.num_batches_tracked = None


def _literal(v: Any) -> Any:
    try:
        return int(str(v))
    except ValueError:
        return str(v)


def _is_factory(c: Any) -> bool:
    if isinstance(c, (str, bytes, int, float, bool)) or c is None:
        return False
    return callable(c)


class Supernet(nn.Module):
    """The weight-sharing supernet of a Space (see the module docstring).

    Args:
      space: a :class:`symnas.Space` (symbolic or traced) whose choices are over
        modules, module factories or functions on tensors.
      fixed: ``{decision name: value}`` for choices the supernet cannot mix
        (e.g. a width); the value is a candidate (or its index).
      affine, track_running_stats: BN settings of the candidates (DARTS: both
        False). Passed to factories that accept them and applied to every BN
        inside a candidate; None leaves them as they are.
      alpha_std: the architecture weights start as ``alpha_std * randn``.
    """

    def __init__(self, space: Any, *, fixed: dict | None = None, affine: bool | None = False,
                 track_running_stats: bool | None = False, alpha_std: float = 1e-3):
        super().__init__()
        from symnas.space import Space, _to_module
        if not isinstance(space, Space):
            space = Space(space)
        self.space = space
        self._state = _State()
        self._bn = {k: v for k, v in (("affine", affine), ("track_running_stats", track_running_stats))
                    if v is not None}
        self._fixed_in = dict(fixed or {})
        self._fixed_genes: dict[int, Any] = {}
        self._used_fixed: set[str] = set()
        self.alpha_std = alpha_std
        self.alphas = nn.ParameterDict()
        gs = space.genome_spec
        self._children: dict[tuple, list[int]] = {}
        for i, g in enumerate(gs.genes):
            self._children.setdefault((g.parent, g.parent_value), []).append(i)
        if space._fn is not None:
            with pg.hyper.dynamic_evaluate(self._trace_eval):
                model = space._fn()
        else:
            value = space.value.sym_clone(deep=True)
            updates = {}
            for path, h in pg.template(value).hyper_primitives:
                key = h.name.split("@")[0] if h.name else str(path)
                updates[str(path)] = self._convert(h, self._top_gene(key), key)
            value.rebind(updates, raise_on_no_change=False)
            model = _to_module(value)
        unused = set(self._fixed_in) - self._used_fixed
        if unused:
            raise KeyError(f"Supernet(fixed=...) names unknown decisions {sorted(unused)}; "
                           f"decisions: {[g.name for g in gs.genes]}.")
        if not isinstance(model, nn.Module):
            raise TypeError(f"the Space's program built a {type(model).__name__}, not an "
                            "nn.Module; a supernet needs a module program.")
        if not self._state.decisions:
            raise ValueError("this Space has no module choice to mix; search it by black-box "
                             "(e.g. sn.algorithms.RegularizedEvolution()).")
        self.model = model
        self.decisions: list[MixedDecision] = sorted(self._state.decisions.values(),
                                                     key=lambda d: d.genes[0])
        self._by_name = {d.name: d for d in self.decisions}

    # ---- building --------------------------------------------------------------------
    def _top_gene(self, key: str) -> int:
        for i, g in enumerate(self.space.genome_spec.genes):
            if g.parent is None and g.name == key:
                return i
        raise KeyError(f"decision {key!r} not found in the Space's genome layout.")

    def _decision(self, h: Any, gene: int, name: str) -> MixedDecision:
        d = self._state.decisions.get(gene)
        if d is not None:
            return d
        labels = tuple(self.space.labels[gene]) if hasattr(self.space, "labels") else \
            tuple(str(c) for c in h.candidates)
        n = len(h.candidates)
        if isinstance(h, pg.hyper.ManyOf):
            k = h.num_choices
            if not h.choices_distinct:
                raise UnmixableChoice(
                    f"decision {name!r} is a manyof that is not distinct; "
                    f"a supernet mixes distinct manyof (input) choices only. Fix it with "
                    f"Supernet(space, fixed={{{name!r}: ...}}) or search it by black-box.")
            genes = tuple(range(gene, gene + k))
            d = MixedDecision(name, "manyof", genes, labels, [False] * n, [1.0] * n, k=k)
            if k == n:  # nothing to choose
                d.chosen = list(range(n))
        else:
            d = MixedDecision(name, "oneof", (gene,), labels, [False] * n, [1.0] * n)
            self.alphas[f"g{gene}"] = nn.Parameter(self.alpha_std * torch.randn(n))
        self._state.decisions[gene] = d
        return d

    def _fixed_value(self, h: Any, name: str) -> Any:
        want = self._fixed_in[name]
        self._used_fixed.add(name)
        cands = list(h.candidates)
        for i, c in enumerate(cands):
            if c is want or (type(c) is type(want) and c == want):
                return i, c
        # An int may name a candidate by position, unless the candidates are numbers
        # themselves (then 1 means the value 1, never "the second one").
        numeric = any(isinstance(c, (int, float)) for c in cands)
        if isinstance(want, int) and not isinstance(want, bool) and not numeric \
                and 0 <= want < len(cands):
            return want, cands[want]
        raise ValueError(f"fixed[{name!r}] = {want!r} is not a candidate of that decision; "
                         f"candidates: {cands}.")

    def _convert(self, h: Any, gene: int, name: str, trace: bool = False) -> Any:
        """The stand-in for one hyper primitive (recursing into nested choices)."""
        if name in self._fixed_in:
            k, c = self._fixed_value(h, name)
            self._fixed_genes[gene] = k
            return self._nested(c, gene, k, trace)
        if isinstance(h, pg.hyper.ManyOf):
            self._decision(h, gene, name)
            return InputChoice(list(h.candidates), gene, self._state)
        if not isinstance(h, pg.hyper.OneOf):
            raise UnmixableChoice(
                f"decision {name!r} is a {type(h).__name__} (a number range); a supernet cannot "
                f"mix it. Fix it with Supernet(space, fixed={{{name!r}: value}}) or search it "
                "by black-box.")
        cands = [self._nested(c, gene, k, trace) for k, c in enumerate(h.candidates)]
        if not all(_is_factory(c) for c in cands):
            bad = next(c for c in cands if not _is_factory(c))
            raise UnmixableChoice(
                f"decision {name!r} chooses among {list(h.candidates)!r}: a supernet mixes "
                f"modules, module factories or functions, not {type(bad).__name__} values "
                f"(they may change tensor shapes). Fix it for the supernet with "
                f"Supernet(space, fixed={{{name!r}: {h.candidates[0]!r}}}) (or "
                f"DARTS(fixed=...)), make the choice one over modules in the Space, or search it "
                "by black-box (e.g. sn.algorithms.RegularizedEvolution()).")
        self._decision(h, gene, name)
        if all(isinstance(c, nn.Module) for c in cands):
            for c in cands:
                _set_bn(c, **self._bn)
            return MixedOp(cands, gene, self._state)
        return _MixedCallable(cands, gene, self._state, self._bn)

    def _nested(self, c: Any, gene: int, k: int, trace: bool) -> Any:
        """Candidate ``k`` of ``gene`` with its own choices made mixed (a fresh copy)."""
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
            c = c.sym_clone(deep=True)
            prims = pg.template(c).hyper_primitives if isinstance(c, pg.Symbolic) else []
            if prims:
                genes = iter(self._children.get((gene, k), []))
                updates = {}
                for path, h in prims:
                    g = next(genes)
                    name = self.space.genome_spec.genes[g].name
                    updates[str(path)] = self._convert(h, g, name)
                    for _ in range(getattr(h, "num_choices", 1) - 1):
                        next(genes)
                c.rebind(updates, raise_on_no_change=False)
            return c
        return copy.deepcopy(c) if isinstance(c, nn.Module) else c

    def _trace_eval(self, h: Any) -> Any:
        name = h.name
        gene = next(i for i, g in enumerate(self.space.genome_spec.genes) if g.name == name)
        return self._convert(h, gene, name, trace=True)

    # ---- forward ---------------------------------------------------------------------
    def forward(self, *args: Any, **kwargs: Any) -> Any:
        weights = self._state.weights
        if self.alphas:
            self._state.device = next(iter(self.alphas.values())).device
        for d in self.decisions:
            if d.kind == "oneof" and d.chosen is None:
                w = torch.softmax(self.alphas[f"g{d.genes[0]}"], dim=-1)
                if not all(m == 1.0 for m in d.mask):
                    w = w * w.new_tensor(d.mask)
                weights[d.genes[0]] = w.unbind()
        return self.model(*args, **kwargs)

    # ---- parameters ------------------------------------------------------------------
    def arch_parameters(self) -> list[nn.Parameter]:
        """The architecture weights (one alpha vector per oneof decision)."""
        return list(self.alphas.values())

    def weight_parameters(self) -> list[nn.Parameter]:
        """The operations' weights (everything but alphas)."""
        return list(self.model.parameters())

    def probabilities(self) -> dict[str, list[float]]:
        """``{decision: softmax(alpha)}`` for every oneof decision."""
        with torch.no_grad():
            return {d.name: torch.softmax(self.alphas[f"g{d.genes[0]}"], -1).tolist()
                    for d in self.decisions if d.kind == "oneof"}

    # ---- masking and fixing (perturbation) -----------------------------------------
    def decision(self, name: str) -> MixedDecision:
        try:
            return self._by_name[name]
        except KeyError:
            raise KeyError(f"no mixed decision {name!r}; decisions: {list(self._by_name)}.") from None

    def undecided(self) -> list[str]:
        """Names of the decisions not yet fixed."""
        return [d.name for d in self.decisions if d.chosen is None]

    @contextlib.contextmanager
    def masked(self, name: str, *candidates: int) -> Iterator[None]:
        """Within the block, the given candidates' weights are zero (they are not computed)."""
        d = self.decision(name)
        old = list(d.mask)
        for c in candidates:
            d.mask[c] = 0.0
        try:
            yield
        finally:
            d.mask[:] = old

    def fix(self, name: str, choice: int | Sequence[int]) -> None:
        """Makes a decision: a oneof runs only ``choice``; a manyof keeps only ``choice``."""
        d = self.decision(name)
        if d.kind == "oneof":
            choice = int(choice)
            d.chosen = choice
            d.mask[:] = [1.0 if i == choice else 0.0 for i in range(d.size)]
        else:
            chosen = sorted(int(c) for c in choice)
            if len(chosen) != d.k or len(set(chosen)) != d.k:
                raise ValueError(f"decision {name!r} keeps {d.k} distinct candidates, got {chosen}.")
            d.chosen = chosen
            d.mask[:] = [1.0 if i in chosen else 0.0 for i in range(d.size)]

    def unfix(self, name: str) -> None:
        d = self.decision(name)
        d.chosen = None
        d.mask[:] = [1.0] * d.size

    # ---- deriving architectures -----------------------------------------------------
    def _log_probs(self, d: MixedDecision, raw: bool = False) -> list[tuple[int, float]]:
        """(candidate, log-probability) options of a oneof, `none` and masked ones excluded
        (``raw``: every candidate, from the alphas alone, masks and fixed decisions ignored)."""
        if d.chosen is not None and not raw:
            return [(d.chosen, 0.0)]
        with torch.no_grad():
            a = self.alphas[f"g{d.genes[0]}"].detach().float().cpu()
        allowed = list(range(d.size)) if raw else \
            [i for i in d.active if not d.zero[i]] or d.active or list(range(d.size))
        lp = torch.log_softmax(a[allowed], -1).tolist()
        return list(zip(allowed, lp))

    def _links(self, d: MixedDecision) -> dict:
        """Candidate -> op decisions on its edge: explicit links, else the naming convention
        ``<p>node_<j>_inputs`` candidate ``i`` <-> ``<p>edge_<i>_<j>`` (the DARTS space)."""
        if d.links:
            return d.links
        m = re.fullmatch(r"(.*)node_(\d+)_inputs", d.name)
        links = {}
        if m:
            for i, c in enumerate(self._candidates_of(d)):
                name = f"{m.group(1)}edge_{c}_{m.group(2)}"
                if name in self._by_name:
                    links[i] = {name}
        return links

    def _candidates_of(self, d: MixedDecision) -> list:
        p = self.space.genome_spec.points[d.genes[0]]
        return [_literal(v) for v in p.literal_values]

    def _strengths(self, d: MixedDecision) -> list[float]:
        """Manyof: each candidate's strongest non-`none` op weight on its linked edges."""
        links = self._links(d)
        if not links:
            raise ValueError(
                f"cannot rank the candidates of {d.name!r} by magnitude: no op decision is linked "
                "to them (InputChoice.link, or names '<p>node_<j>_inputs' / '<p>edge_<i>_<j>'); "
                "use perturbation selection.")
        out = []
        with torch.no_grad():
            for i in range(d.size):
                best = 0.0
                for name in links.get(i, ()):
                    od = self._by_name[name]
                    if od.chosen is not None:
                        best = max(best, 0.0 if od.zero[od.chosen] else 1.0)
                        continue
                    p = torch.softmax(self.alphas[f"g{od.genes[0]}"].detach().float(), -1)
                    best = max([best] + [float(p[j]) for j in od.active if not od.zero[j]])
                out.append(best if d.mask[i] != 0.0 else -1.0)
        return out

    def _options(self, d: MixedDecision) -> list[tuple[Any, float]]:
        if d.kind == "oneof":
            return self._log_probs(d)
        if d.chosen is not None:
            return [(tuple(d.chosen), 0.0)]
        s = self._strengths(d)
        total = sum(max(v, 1e-12) for v in s)
        opts = []
        for combo in itertools.combinations(range(d.size), d.k):
            if any(s[i] < 0 for i in combo):
                continue
            opts.append((combo, sum(math.log(max(s[i], 1e-12) / total) for i in combo)))
        return sorted(opts, key=lambda o: -o[1])

    def _genome_of(self, picks: dict[int, Any]) -> tuple:
        gs = self.space.genome_spec
        g = [0 if x.size is not None else x.low for x in gs.genes]
        for gene, k in self._fixed_genes.items():
            g[gene] = k
        for d in self.decisions:
            v = picks[d.genes[0]]
            if d.kind == "oneof":
                g[d.genes[0]] = v
            else:
                for gene, c in zip(d.genes, v):
                    g[gene] = c
        return gs.canonical(g)

    def genome(self) -> tuple:
        """The architecture of the current weights: argmax (``none`` excluded), fixed ones kept."""
        picks = {d.genes[0]: self._options(d)[0][0] if d.kind == "manyof" else
                 max(self._options(d), key=lambda o: o[1])[0] for d in self.decisions}
        return self._genome_of(picks)

    def arch(self):
        """The derived architecture as an :class:`symnas.Arch` (``.build()`` gives the module)."""
        return self.space.arch(self.genome())

    def score(self, genome: Sequence) -> float:
        """Sum of log-softmax weights (over all candidates) of ``genome``'s op choices, from the
        alphas alone (fixed decisions do not count as certain)."""
        total = 0.0
        for d in self.decisions:
            if d.kind != "oneof":
                continue
            opts = dict(self._log_probs(d, raw=True))
            total += opts.get(genome[d.genes[0]], -math.inf)
        return total

    def top_k(self, k: int = 5) -> list[tuple[tuple, float]]:
        """The ``k`` best architectures by the sum of log-softmax weights (``none`` excluded).

        Decisions are scored independently (exact for spaces without nested
        choices); returns ``[(genome, score), ...]`` best first, distinct genomes.
        """
        beams: list[tuple[float, dict]] = [(0.0, {})]
        for d in self.decisions:
            opts = sorted(self._options(d), key=lambda o: -o[1])[: max(k, 1) * 2]
            cand = [(s + ls, {**p, d.genes[0]: v}) for s, p in beams for v, ls in opts]
            beams = heapq.nlargest(max(k, 1) * 4, cand, key=lambda t: t[0])
        out, seen = [], set()
        for s, p in beams:
            g = self._genome_of(p)
            if g not in seen:
                seen.add(g)
                out.append((g, s))
            if len(out) == k:
                break
        return out

    def extra_repr(self) -> str:
        return f"decisions={[d.name for d in self.decisions]}"
