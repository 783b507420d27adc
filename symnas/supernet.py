"""Supernets derived from any Space: mixed ops for module choices, shared slices for the rest.

:class:`Supernet` runs the Space's own program (symbolic or traced, no
annotation needed) with every choice stood in for (:mod:`symnas.program`):

* a choice over modules, module factories or tensor functions becomes a mixed
  op with architecture weights ``alpha`` (one vector per decision *name*);
  ``sum_k softmax(alpha)_k * op_k(x)``, ``none`` and masked candidates skipped,
  a decided choice running its one candidate (:mod:`symnas.mixed`);
* a ``manyof`` over modules becomes gated branches with an alpha of their own;
  a ``manyof`` read through the inputs protocol (the DARTS cell) an
  :class:`InputChoice`; one used as a plain list of values is refused;
* every other choice -- a width, a kernel size, an expansion ratio, a number of
  blocks, a float -- is *elastic*: the supernet holds the largest configuration
  (``net.model``) and each smaller one runs the program built with its values on
  slices of the same tensors (:mod:`symnas.elastic` says how they are aligned).

One configuration is active at a time: :meth:`Supernet.use` sets it from a
genome (module choices fixed too: single path; ``single_path=False`` keeps them
mixed, as DARTS wants), :meth:`Supernet.sample` draws one uniformly. A trained
supernet hands back one architecture as a plain module of the user's class with
the inherited weights (:meth:`Supernet.subnet`) and is an evaluator for any
black-box algorithm (:meth:`Supernet.evaluator`).

Example::

    space = sn.spaces.mobilenet(num_classes=10)
    net = Supernet(space, affine=None, track_running_stats=None)   # BN as the model writes it
    net.sharing                                  # {'width': 'entangled', 'stage1_kernel': 'mixed', ...}
    genome = net.sample(random.Random(0))        # a uniformly random single path, now active
    logits = net(torch.randn(2, 3, 32, 32))
    model = net.subnet(genome, task)             # MobileNet with inherited weights, BN recalibrated
    result = sn.search(space, "evolution", net.evaluator(task), budget=100)

    net = Supernet(sn.spaces.nasbench201(C=8, N=1))   # module choices only: DARTS's supernet
    net.genome(); net.top_k(3)
    with net.masked("edge_1_0", 3): ...
    net.fix("edge_1_0", 3)
"""
from __future__ import annotations

import contextlib
import logging
import random
from collections import OrderedDict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any, cast

import torch
from torch import nn

from symnas import meta_checks, probing
from symnas import subnet as _subnet
from symnas.derive import Deriving
from symnas.elastic import Aligner, Slot, handed, plan
from symnas.mixed import GatedOp, InputChoice, MixedDecision, MixedOp, UnmixableChoice, _State, path_weights
from symnas.program import ELASTIC, ChoiceInfo, ProgramBuilder
from symnas.space import Space

__all__ = ["InputChoice", "MixedDecision", "MixedOp", "Supernet", "UnmixableChoice"]

logger = logging.getLogger("symnas")


class Supernet(Deriving, nn.Module):
    """The weight-sharing supernet of a Space (see the module docstring).

    Args:
      space: a :class:`symnas.Space` (symbolic or traced).
      fixed: ``{decision name: value}`` for choices to leave out of the search
        (the value is a candidate, or its index).
      affine, track_running_stats: BN settings of the candidates of module
        choices (DARTS: both False). Passed to factories that accept them and
        applied to every BN inside a candidate; None leaves them as written.
      alpha_std: the architecture weights start as ``alpha_std * randn``.
      probes: random configurations built at construction, besides one per
        elastic value, to find every tensor a configuration may need.
      cache: how many configurations' programs to keep built.
      seed: seeds the random probes.

    Attributes: ``model`` (the store: the program at the largest elastic values,
    module choices mixed), ``decisions`` (mixed decisions), ``elastic`` (the
    other decisions, :class:`~symnas.program.ChoiceInfo`), ``sharing`` (per
    decision: ``mixed``, ``gated``, ``inputs``, ``entangled``, ``separate`` or
    ``no weights``), ``separate`` (the separate tensors each decision needs).
    """

    #: the order perturbation selection made the decisions in (set by it)
    selection_order: list[str]

    def __init__(self, space: Any, *, fixed: dict | None = None, affine: bool | None = False,
                 track_running_stats: bool | None = False, alpha_std: float = 1e-3,
                 probes: int = 4, cache: int = 32, seed: int = 0):
        super().__init__()
        if not isinstance(space, Space):
            space = Space(space)
        self.space = space
        self._state = _State()
        self._bn = {k: v for k, v in (("affine", affine), ("track_running_stats", track_running_stats))
                    if v is not None}
        self.alpha_std = alpha_std
        self.alphas = nn.ParameterDict()
        self.builder = ProgramBuilder(space, self._state, fixed=fixed, bn=self._bn,
                                      on_decision=self._new_decision)
        self.model = self.builder.build({})
        meta_checks.check_holdable(self.model)
        unused = [n for n in self.builder.unused_fixed() if n not in space.genome_spec.names]
        if unused:                  # (names the build never reaches: probing.check_every_decision_seen)
            raise KeyError(f"Supernet(fixed=...) names unknown decisions {unused}; "
                           f"decisions: {[g.name for g in space.genome_spec.genes]}.")
        self.builder.check_choices_read(self.model)
        self.decisions: list[MixedDecision] = sorted(self._state.decisions.values(),
                                                     key=lambda d: d.genes[0])
        self._by_name = {d.name: d for d in self.decisions}
        self._gated = any(d.gated for d in self.decisions)        # (read on every forward)
        self.elastic: list[ChoiceInfo] = sorted(
            (c for c in self.builder.choices.values() if c.kind == ELASTIC), key=lambda c: c.gene)
        if not self.decisions and not self.elastic:
            raise ValueError("this Space has no choice to share weights over (every decision is "
                             "fixed); search it by black-box (e.g. sn.algorithms.RegularizedEvolution()).")
        self._config: dict[int, Any] = {c.gene: c.largest for c in self.elastic}
        self.extra = nn.ParameterDict()           # separate weights (no counterpart in the store)
        self._extra_buffers = nn.Module()
        self._extra_names: dict[str, tuple[str, bool]] = {}
        self.aligner = Aligner()
        self._programs: OrderedDict = OrderedDict()
        self._cache_size = max(1, cache)
        self._store: dict[str, tuple[nn.Module, str, bool]] = {}
        self.sharing: dict[str, str] = {d.name: ("gated" if d.gated else "inputs") if d.kind == "manyof"
                                        else "mixed" for d in self.decisions}
        self.separate: dict[str, list[str]] = {}
        self._index_store()
        if self.elastic:
            self._probe(probes, seed)
        probing.check_every_decision_seen(self)
        logger.debug("supernet of %s:\n%s", space, self.describe())

    # ---- building --------------------------------------------------------------------
    def _new_decision(self, d: MixedDecision) -> None:
        if d.kind == "oneof" or d.gated:
            self.alphas[f"g{d.genes[0]}"] = nn.Parameter(self.alpha_std * torch.randn(d.size))

    def _index_store(self) -> None:
        self._store = {}
        for mname, mod in self.model.named_modules(remove_duplicate=False):   # (a reused block
            for n in mod._parameters:                                         # under each name)
                if mod._parameters[n] is not None:
                    self._store[f"{mname}.{n}" if mname else n] = (mod, n, False)
            for n in mod._buffers:
                if mod._buffers[n] is not None:
                    self._store[f"{mname}.{n}" if mname else n] = (mod, n, True)

    def _tensor(self, key: str) -> torch.Tensor:
        if key in self._store:
            mod, n, buf = self._store[key]
            return cast(torch.Tensor, mod._buffers[n] if buf else mod._parameters[n])
        name, buf = self._extra_names[key]
        return cast(torch.Tensor, self._extra_buffers._buffers[name] if buf else self.extra[name])

    def _probe(self, n_random: int, seed: int) -> None:
        """Learns what each elastic value removes and sizes the store (:mod:`symnas.probing`)."""
        probing.probe(self, n_random, seed)
        self._programs.clear()

    def _info(self, gene: int) -> ChoiceInfo:
        return next(c for c in self.elastic if c.gene == gene)

    # ---- the active configuration ------------------------------------------------------
    def _path_values(self, largest: bool | None = None) -> dict[int, Any]:
        """Builder values of the module decisions: their chosen candidates (``largest``: each
        at its candidate with the most weights, manyof at its first picks)."""
        out: dict[int, Any] = {}
        for d in self.decisions:
            if largest is not None:
                if d.kind == "oneof":
                    sizes = self._candidate_sizes(d)
                    out[d.genes[0]] = max(range(d.size), key=lambda k: (sizes[k], -k))
                else:
                    out[d.genes[0]] = list(range(d.k))
            elif d.kind == "oneof":
                out[d.genes[0]] = int(cast(int, d.chosen))
            else:
                out[d.genes[0]] = list(d.chosen)
        return out

    def _runs_program(self) -> bool:
        """Whether the active configuration runs as its own program on slices of the store:
        with elastic choices, or a single path with manyof branches (its picks only, in the
        genome's order; the store runs every branch, gated)."""
        return bool(self.elastic) or (self._gated and all(d.chosen is not None for d in self.decisions))

    def _current(self) -> tuple[nn.Module, list[tuple[str, str, tuple]]]:
        """The program of the active configuration and its binding (name, store key, index).

        When every module decision is decided (a single path) the program is built with
        only the chosen candidates; otherwise with mixed ops.
        """
        single = all(d.chosen is not None for d in self.decisions)
        path = self._path_values() if single else {}
        key = (tuple(sorted(self._config.items())),
               tuple((g, tuple(v) if isinstance(v, list) else v) for g, v in sorted(path.items()))
               if single else None)
        hit = self._programs.get(key)
        if hit is not None:
            self._programs.move_to_end(key)
            return hit
        values = dict(self._config)
        origin: dict = {}
        prog = self.builder.build({**values, **path}, mixed=not single, device="meta", init=False,
                                  origin=origin)
        pairs, loose = self.aligner.align(prog, self.model, values, origin)
        slots, _ = plan(pairs, loose)
        binding = [(s.name, s.key, self._slot_index(s)) for s in slots]
        self._programs[key] = (prog, binding)
        if len(self._programs) > self._cache_size:
            self._programs.popitem(last=False)
        return prog, binding

    def _slot_index(self, s: Slot) -> tuple:
        if s.key not in self._store and s.key not in self._extra_names:
            raise UnmixableChoice(
                f"configuration {self.config} needs a weight the supernet was not built with "
                f"({s.key!r}); build it with more probes (Supernet(space, probes=...)).")
        return s.index(tuple(self._tensor(s.key).shape))

    @property
    def config(self) -> dict[str, Any]:
        """The active elastic configuration, ``{decision: value}``."""
        out = {}
        for c in self.elastic:
            v = self._config[c.gene]
            out[c.name] = v if c.size is None else c.candidates[int(v)]
        return out

    def _elastic_values(self) -> dict[int, Any]:
        return {c.gene: c.largest for c in self.elastic}

    def _fixed_genes(self) -> dict[int, Any]:
        return dict(self.builder.fixed_genes)

    @property
    def search_space(self) -> Space:
        """The Space to search this supernet with: ``space`` with the ``fixed=`` decisions held
        at their values, so every architecture a search proposes is one the supernet scores
        (``space`` itself when nothing is fixed)."""
        if not self.builder.fixed_genes:
            return self.space
        view = self.__dict__.get("_search_space")
        if view is None:
            view = self.__dict__["_search_space"] = self.space.pinned(self.builder.fixed_genes)
        return view

    def use(self, genome: Sequence | Any, *, single_path: bool = True) -> tuple:
        """Makes ``genome``'s configuration active; returns the canonical genome.

        Elastic decisions take the genome's values; with ``single_path`` module,
        branch and input decisions are fixed to its choices too (only that path
        runs), else they stay as they are (mixed, for DARTS).
        """
        genome = self.space.genome_spec.canonical(getattr(genome, "genome", genome))
        for c in self.elastic:
            self._config[c.gene] = genome[c.gene]
        if single_path:
            act = self.space.genome_spec.active(genome)
            for d in self.decisions:
                if d.kind == "oneof":
                    self.fix(d.name, int(genome[d.genes[0]]))
                elif act[d.genes[0]]:
                    self.fix(d.name, [int(genome[g]) for g in d.genes])
                else:                        # inside a candidate not taken: any distinct picks
                    self.fix(d.name, list(range(d.k)))
        return genome

    def sample(self, rng: random.Random, *, single_path: bool = True) -> tuple:
        """A uniformly random architecture, made active (see :meth:`use`)."""
        return self.use(self.space.genome_spec.random(rng), single_path=single_path)

    def extreme(self, largest: bool = True, rng: random.Random | None = None) -> tuple:
        """The largest (or smallest) architecture: every elastic decision at the value, and
        each module choice at the candidate, with the most (fewest) weights (a float at its
        highest or lowest value; the choices inside a candidate at theirs), each manyof at the
        picks with the most (fewest).

        With ``rng`` the module choices are drawn uniformly instead: their candidates keep
        weights of their own (nothing nested), so no candidate bounds the others and only the
        elastic decisions have a largest and a smallest (what the sandwich rule trains).
        """
        cache = self.__dict__.setdefault("_extremes", {})
        if rng is not None and self.decisions:
            draw = self.space.genome_spec.random(rng)
            out = list(self.extreme(largest))
            for d in self.decisions:
                for gene in d.genes:
                    out[gene] = draw[gene]
            return self.space.genome_spec.canonical(out)
        if largest in cache:
            return cache[largest]
        gs = self.space.genome_spec
        g: list = [0 if x.size is not None else x.low for x in gs.genes]
        for gene, k in self.builder.fixed_genes.items():
            g[gene] = k
        for c in self.elastic:
            if c.size is None:
                g[c.gene] = c.high if largest else c.low
                continue
            vals = [(v, i) for i, v in enumerate(c.candidates)
                    if isinstance(v, (int, float)) and not isinstance(v, bool)]
            g[c.gene] = c.largest if largest or len(vals) != c.size else min(vals)[1]
        for d in self.decisions:
            counts = self._candidate_sizes(d, largest)
            best = sorted(range(d.size), key=lambda k: (-counts[k] if largest else counts[k], k))
            if d.kind == "oneof":
                g[d.genes[0]] = best[0]
            else:                             # the k with the most (fewest) weights
                for gene, pick in zip(d.genes, sorted(best[:d.k])):
                    g[gene] = pick
        cache[largest] = self._most_weights(gs.canonical(g), largest)
        return cache[largest]

    def _most_weights(self, genome: tuple, largest: bool) -> tuple:
        """``genome`` with each choice over candidates (elastic, or a oneof over modules) moved,
        one at a time, to the value that gives the most (fewest) parameters, the others held: a
        larger number is not always more weights (``width // reduction``), and a candidate's size
        can change with the widths around it. Ties keep the value given."""
        g, fixed = list(genome), self.builder.fixed_genes
        genes = [(c.gene, c.size) for c in self.elastic if c.size is not None]
        genes += [(d.genes[0], d.size) for d in self.decisions     # (with no elastic choice, the
                  if self.elastic and d.kind == "oneof" and d.genes[0] not in fixed  # sizes are
                  and any(self._candidate_sizes(d))]                                 # known)
        for _ in range(len(genes) + 1):
            moved = False
            for gene, size in genes:
                now = g[gene]
                counts = {k: self.count_params(g[:gene] + [k] + g[gene + 1:]) for k in range(size)}
                best = max(counts, key=lambda k: (counts[k], k == now)) if largest \
                    else min(counts, key=lambda k: (counts[k], k != now))
                if counts[best] != counts[now]:
                    g[gene], moved = best, True
            if not moved:
                break
        return self.space.genome_spec.canonical(g)

    def reset_config(self, decisions: bool = True) -> None:
        """Back to the largest elastic configuration and (``decisions``) every module decision
        undecided (mixed)."""
        self._config = {c.gene: c.largest for c in self.elastic}
        if decisions:
            for d in self.decisions:
                self.unfix(d.name)

    def _candidate_sizes(self, d: MixedDecision, largest: bool = True) -> list[int]:
        """Each candidate's weights, the choices inside it at their largest (smallest)."""
        k = {x.genes[0]: x.k for x in self.decisions if x.kind == "manyof"}
        counts = [0] * d.size
        for m in self.model.modules():
            if isinstance(m, MixedOp) and m.gene == d.genes[0]:
                for i, op in enumerate(m.ops):
                    counts[i] += path_weights(op, k, largest)
            elif isinstance(m, GatedOp) and m.gene == d.genes[0]:
                counts[m.index] += path_weights(m.op, k, largest)
        return counts

    @contextlib.contextmanager
    def using(self, genome: Sequence | Any, *, single_path: bool = True) -> Iterator[tuple]:
        """Within the block ``genome`` is active; the previous configuration and decision
        states are restored afterwards."""
        saved = (dict(self._config), self.decision_state())
        try:
            yield self.use(genome, single_path=single_path)
        finally:
            self._config = saved[0]
            self.load_decision_state(saved[1])

    def decision_state(self) -> dict[str, Any]:
        """The fixed choices and masks of the module decisions (for checkpoints)."""
        return {d.name: (d.chosen if not isinstance(d.chosen, list) else list(d.chosen), list(d.mask))
                for d in self.decisions}

    def load_decision_state(self, state: Mapping[str, Any]) -> None:
        for name, (chosen, mask) in state.items():
            d = self.decision(name)
            d.chosen = list(chosen) if isinstance(chosen, (list, tuple)) else chosen
            d.mask[:] = list(mask)

    # ---- forward ---------------------------------------------------------------------
    def _mix_weights(self) -> None:
        weights = self._state.weights
        first = next(iter(self.alphas.values()), None) if self.alphas else \
            next(iter(self.model.parameters()), None)
        if first is not None:
            self._state.device = first.device
        for d in self.decisions:
            if d.chosen is not None or (d.kind == "manyof" and not d.gated):
                continue
            w = torch.softmax(self.alphas[f"g{d.genes[0]}"], dim=-1)
            if d.kind == "manyof":
                w = w * d.k
            if not all(m == 1.0 for m in d.mask):
                w = w * w.new_tensor(d.mask)
            weights[d.genes[0]] = w.unbind()

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        self._mix_weights()
        if not self._runs_program():
            return self.model(*args, **kwargs)
        prog, binding = self._current()
        prog.train(self.training)
        with handed(binding, self._tensor) as tensors:      # (updates in place land)
            return torch.func.functional_call(prog, tensors, args, kwargs, tie_weights=False)

    # ---- parameters ------------------------------------------------------------------
    def arch_parameters(self) -> list[nn.Parameter]:
        """The architecture weights (one alpha vector per oneof and gated manyof)."""
        return list(self.alphas.values())

    def weight_parameters(self) -> list[nn.Parameter]:
        """The operations' weights (everything but alphas)."""
        return list(self.model.parameters()) + list(self.extra.values())

    def probabilities(self) -> dict[str, list[float]]:
        """``{decision: softmax(alpha)}`` for every decision with an alpha."""
        with torch.no_grad():
            return {d.name: torch.softmax(self.alphas[f"g{d.genes[0]}"], -1).tolist()
                    for d in self.decisions if f"g{d.genes[0]}" in self.alphas}

    def count_params(self, genome: Sequence | Any) -> int:
        """Parameters of ``genome``'s architecture as the Space builds it (no memory used)."""
        return _subnet.count_params(self, genome)

    def subnet(self, genome: Sequence | Any, data: Any = None, *, batches: int = 8) -> nn.Module:
        """``genome``'s architecture as a plain module of the user's class, inherited weights
        copied in; with ``data`` (a Task or batches) BatchNorm statistics are first
        recalibrated on ``batches`` batches (see :func:`symnas.subnet.subnet`)."""
        return _subnet.subnet(self, genome, data, batches=batches)

    def recalibrate(self, genome: Sequence | Any, batches: Iterable) -> None:
        """Recomputes ``genome``'s BatchNorm running statistics on ``batches`` (SPOS/OFA)."""
        _subnet.recalibrate(self, genome, batches)

    def evaluator(self, task: Any, **kwargs: Any) -> Any:
        """This trained supernet as an evaluator (inherited weights, recalibrated BN, accuracy
        on the Task's valid split): :class:`symnas.subnet.SupernetEvaluator`."""
        return _subnet.SupernetEvaluator(self, task, **kwargs)

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
            pick = int(cast(int, choice))
            d.chosen = pick
            d.mask[:] = [1.0 if i == pick else 0.0 for i in range(d.size)]
        else:
            chosen = [int(c) for c in cast(Sequence[int], choice)]    # in order: picks run so
            if any(g[0] == d.genes[0] and srt for g, _, srt in self.space.genome_spec.groups):
                chosen.sort()                                   # sorted=True: a set of picks
            if len(chosen) != d.k or len(set(chosen)) != d.k:
                raise ValueError(f"decision {name!r} keeps {d.k} distinct candidates, got {chosen}.")
            d.chosen = chosen
            d.mask[:] = [1.0 if i in chosen else 0.0 for i in range(d.size)]

    def unfix(self, name: str) -> None:
        d = self.decision(name)
        d.chosen = None if d.kind == "oneof" or d.k < d.size else list(range(d.size))
        d.mask[:] = [1.0] * d.size

    def describe(self) -> str:
        """One line per decision: how the supernet shares its weights."""
        lines = [f"{name}: {how}" + (f" ({len(self.separate[name])} separate tensors)"
                                     if name in self.separate else "")
                 for name, how in self.sharing.items()]
        return "\n".join(lines)

    def extra_repr(self) -> str:
        return f"decisions={[d.name for d in self.decisions]}, elastic={[c.name for c in self.elastic]}"
