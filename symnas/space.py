"""Space: one symbolic program with hyper-values, and the architectures in it.

A Space wraps either a symbolic value (``sn.Space(Net(width=sn.oneof(...)))``)
or a traced function (``sn.trace(fn)``). Its DNASpec and genome layout are
computed once. ``materialize`` gives the concrete program, ``build`` the
``nn.Module``. Every decision has a stable name: its ``name=`` or its key path;
choices that share a name are one decision.

Example::

    space = sn.Space(Net(width=sn.oneof([32, 64]), act=sn.oneof([nn.ReLU, nn.GELU])))
    space.size                       # 4
    arch = space.sample(seed=0)      # an Arch: genome, dna, value, build()
    model = arch.build()
"""
from __future__ import annotations

import copy
import dataclasses
import functools
import json
import math
import random
from typing import Any, Callable, Iterator, Sequence

import pyglove as pg

from symnas.arch import Arch
from symnas.genome import Genome, GenomeSpec
from symnas.hyper import to_module as _to_module
from symnas.names import MAIN, import_name, main_file
from symnas.names import qualified_name as _qualified_name

try:  # torch is a hard dependency, imported lazily for fast CLI start-up
    import torch
    from torch import nn
except ImportError:  # pragma: no cover
    torch = nn = None  # type: ignore


@dataclasses.dataclass(frozen=True)
class Decision:
    """One decision of a Space: its name, kind and candidates (or range)."""
    name: str
    kind: str                 # 'oneof' | 'manyof' | 'float'
    candidates: tuple = ()
    low: float | None = None
    high: float | None = None
    conditional: bool = False


def _as_symbolic(value: Any) -> pg.Symbolic:
    if isinstance(value, pg.Symbolic):
        return value
    if isinstance(value, dict):
        return pg.Dict(value)
    if isinstance(value, (list, tuple)):
        return pg.List(value)
    raise TypeError(
        f"sn.Space takes a symbolic value (an @sn.searchable class or function called "
        "with sn.oneof/manyof/floatv arguments, or a dict/list of them); "
        f"got {type(value).__name__}. "
        "For code you cannot annotate, use sn.trace(fn).")


def _count(spec: GenomeSpec) -> int | float:
    """Architectures of a layout without manyof groups, pinned genes held (inf with a float):
    per gene, the sum over its values of the product of the counts its children make."""
    children = spec.children

    def under(i: int) -> int | float:
        g = spec.genes[i]
        if g.size is None:
            return 1 if i in spec.pins else float("inf")
        values = [spec.pins[i]] if i in spec.pins else range(g.size)
        return sum(math.prod(under(c) for c in children.get((i, v), ())) for v in values)

    return math.prod(under(i) for i in children.get((None, None), ()))


def _hyper_name(path: pg.KeyPath, h: pg.hyper.HyperPrimitive) -> str:
    return h.name if h.name is not None else str(path)


class Space:
    """A searchable program: a symbolic value or a traced function."""

    def __init__(self, value: Any, *, name: str | None = None):
        self.name = name
        self._fn: Callable | None = None
        self._ctx: Any = None
        self.value = _as_symbolic(value)
        self._template: Any = None  # set by _compile
        self._shared: list[tuple[int, int]] = []  # (full gene, public gene) pairs
        self._compile()

    # ---- construction ----------------------------------------------------------------
    @classmethod
    def trace(cls, fn: Callable[[], Any], *, name: str | None = None) -> Space:
        """Define-by-run: the choices are made while ``fn()`` runs (see :func:`symnas.trace`)."""
        self = cls.__new__(cls)
        self.name = name
        self._fn = fn
        self._shared = []
        ctx = pg.hyper.DynamicEvaluationContext(require_hyper_name=True)
        try:
            with _meta_device(), ctx.collect():
                fn()
        except ValueError as e:
            msg = str(e)
            if "'name' must be specified" in msg:
                raise ValueError(
                    "sn.trace: every choice in traced code needs a name, for example "
                    "sn.oneof([32, 64], name='width'); found an unnamed one: "
                    + msg.split("hyper primitive", 1)[-1].strip()) from None
            if "different hyper primitives under the same name" in msg:
                raise ValueError(
                    "sn.trace: one name is used for choices with different candidates; give "
                    "each distinct choice its own name. " + msg) from None
            raise
        self._ctx = ctx
        self.value = pg.Dict(ctx.hyper_dict)
        self._template = pg.template(self.value)
        self.dna_spec = self._template.dna_spec()
        self.genome_spec = GenomeSpec.of(self.dna_spec)
        self._full_gs = self.genome_spec
        return self

    def _compile(self) -> None:
        prims = pg.template(self.value).hyper_primitives
        if not prims:
            raise ValueError("sn.Space found no choices in this value: mark at least one "
                             "argument with sn.oneof, sn.manyof or sn.floatv.")
        seen: dict[str, tuple[pg.KeyPath, Any]] = {}
        renames: dict[str, Any] = {}
        for path, h in prims:
            key = _hyper_name(path, h)
            if key in seen:
                first_path, first = seen[key]
                if first.sym_clone(override={"name": None}) != h.sym_clone(override={"name": None}):
                    raise ValueError(
                        f"decision name {key!r} is used at {str(first_path)!r} and {str(path)!r} "
                        "with different candidates; choices that share a name must be identical. "
                        "Rename one of them.")
                renames[str(path)] = h.sym_clone(override={"name": f"{key}@{str(path)}"})
            else:
                seen[key] = (path, h)
        if renames:
            self.value = self.value.sym_clone(deep=True)
            self.value.rebind(renames, raise_on_no_change=False, skip_notification=True)
            public = pg.Dict({k: h for k, (p, h) in seen.items()})
            self.dna_spec = pg.dna_spec(public)
        self._template = pg.template(self.value)
        full_spec = self._template.dna_spec()
        self._full_gs = GenomeSpec.of(full_spec)
        if not renames:
            self.dna_spec = full_spec
            self.genome_spec = self._full_gs
            return
        self.genome_spec = GenomeSpec.of(self.dna_spec)
        # Every top-level choice owns a contiguous block of genes (itself, then its
        # nested choices); a renamed duplicate's block copies its original's block.
        block = {k: len(pg.dna_spec(pg.Dict(x=h)).decision_points) for k, (_, h) in seen.items()}
        pub_start, off = {}, 0
        for k in seen:
            pub_start[k], off = off, off + block[k]
        full_off = 0
        for path, h in prims:
            key = _hyper_name(path, h)
            for j in range(block[key]):
                self._shared.append((full_off + j, pub_start[key] + j))
            full_off += block[key]

    # ---- facts -----------------------------------------------------------------------
    @functools.cached_property
    def size(self) -> int | float:
        """Number of architectures; ``math.inf`` when a float decision makes it infinite."""
        n = self.dna_spec.space_size
        return float("inf") if n < 0 else n

    @functools.cached_property
    def decisions(self) -> list[Decision]:
        """Name, kind and candidates of every decision (nested ones included)."""
        out = []
        for p, g in zip(self.genome_spec.points, self.genome_spec.genes):
            if g.size is None:
                out.append(Decision(g.name, "float", low=g.low, high=g.high,
                                    conditional=g.parent is not None))
            else:
                kind = "manyof" if isinstance(p.parent_spec, pg.geno.Choices) else "oneof"
                out.append(Decision(g.name, kind, self.labels[len(out)],
                                    conditional=g.parent is not None))
        return out

    @functools.cached_property
    def labels(self) -> list[tuple]:
        """Readable candidate labels of each gene (numbers stay numbers)."""
        return [() if g.size is None
                else tuple(_label(v, k) for k, v in enumerate(p.literal_values))
                for p, g in zip(self.genome_spec.points, self.genome_spec.genes)]

    def __len__(self) -> int:
        return len(self.genome_spec)

    def __repr__(self) -> str:
        kind = "traced" if self._fn is not None else type(self.value).__name__
        return f"Space({kind}, decisions={len(self)}, size={self.size})"

    # ---- architectures ---------------------------------------------------------------
    def arch(self, dna_or_genome: pg.DNA | Sequence) -> Arch:
        """The architecture of a DNA or genome (canonicalized)."""
        if isinstance(dna_or_genome, pg.DNA):
            genome = self.genome_spec.from_dna(dna_or_genome)
            as_given = not self.genome_spec.pins or \
                GenomeSpec.of(self.dna_spec).from_dna(dna_or_genome) == genome   # unpinned
            return Arch(self, genome, dna=dna_or_genome if as_given else None)
        return Arch(self, self.genome_spec.canonical(dna_or_genome))

    def pinned(self, genes: dict[int, Any]) -> Space:
        """This Space with some genes (index -> value) held at one value: every architecture
        it makes has them, so a search over it never varies them (what
        ``Supernet(fixed=...).search_space`` is).

        >>> space = Space(dict(a=pg.oneof([1, 2, 3]), b=pg.oneof([4, 5])))
        >>> space.pinned({1: 1}).arch([2, 0]).decisions
        {'a': 3, 'b': 5}
        """
        view = copy.copy(self)
        view.genome_spec = self.genome_spec.pinned(genes)
        if not self.genome_spec.groups:      # a count of its own (else the unpinned one bounds it)
            view.__dict__["size"] = _count(view.genome_spec)
        return view

    def sample(self, seed: int | None = None) -> Arch:
        """A uniformly random architecture."""
        return self.arch(self.genome_spec.random(random.Random(seed)))

    def samples(self, n: int, seed: int | None = None) -> Iterator[Arch]:
        """``n`` random architectures from one seeded generator."""
        rng = random.Random(seed)
        for _ in range(n):
            yield self.arch(self.genome_spec.random(rng))

    def _full_dna(self, genome: Genome) -> pg.DNA:
        if not self._shared:
            return self._full_gs.to_dna(genome)
        full = [0] * len(self._full_gs)
        for i, j in self._shared:
            full[i] = genome[j]
        return self._full_gs.to_dna(full)

    def _as_genome(self, dna: pg.DNA | Sequence) -> Genome:
        if isinstance(dna, pg.DNA):
            return self.genome_spec.from_dna(dna)
        return self.genome_spec.canonical(dna)

    def _decodable(self, dna: pg.DNA | Sequence) -> pg.DNA:
        """The DNA the template decodes: a DNA of this space as it is (no genome round trip)
        unless shared names map it onto the full spec."""
        if isinstance(dna, pg.DNA) and not self._shared:
            return dna
        return self._full_dna(self._as_genome(dna))

    def materialize(self, dna: pg.DNA | Sequence) -> Any:
        """The concrete symbolic program (for traced spaces: ``{name: value}``)."""
        return self._template.decode(self._decodable(dna))

    def build(self, dna: pg.DNA | Sequence) -> nn.Module:
        """The ``nn.Module`` of an architecture: an instance of the user's own class.

        ``@sn.searchable`` wrappers in the built tree are turned back into the
        classes they wrap (:func:`symnas.hyper.to_module`): ``print(model)``
        shows the layers and ``copy.deepcopy`` copies the weights.
        """
        if self._fn is not None:
            try:
                with self._ctx.apply(self._decodable(dna)):
                    return _to_module(self._fn())
            except ValueError as e:
                if "not defined during search space inspection" not in str(e):
                    raise
                name = str(e).split("name='", 1)[-1].split("'", 1)[0]
                raise ValueError(unrecorded_choice(name)) from None
        return _to_module(self.materialize(dna))

    def validate(self, input_shape: Sequence[int], n: int = 8, seed: int = 0) -> list[dict]:
        """Builds ``n`` sampled architectures on the ``meta`` device and runs a forward pass.

        Returns the problems found (empty when all pass), one dict per failing
        sample: ``decisions`` (all of its decision values), ``error``,
        ``suspects`` (its values that no passing sample has) and ``common``
        (the values every failing sample has and no passing one: the likely
        culprit, e.g. ``{"w4": 512}``). Raises nothing for shape errors.

        Example::

            problems = space.validate((2, 3, 32, 32), n=16)
            assert not problems, problems
        """
        problems, passed = [], []
        for arch in self.samples(n, seed):
            try:
                with _meta_device():
                    model = arch.build()
                    model(torch.empty(*input_shape, device="meta"))
            except Exception as e:  # noqa: BLE001 - reported, not raised
                problems.append({"decisions": arch.decisions, "error": f"{type(e).__name__}: {e}"})
            else:
                passed.append(arch.decisions)
        _name_culprits(problems, passed)
        return problems

    def check(self, input_shape: Sequence[int], n: int = 8, seed: int = 0) -> None:
        """Like :meth:`validate` but raises a ValueError naming the failing choices."""
        problems = self.validate(input_shape, n, seed)
        if problems:
            lines = [f"  {p['decisions']} -> {p['error']}" for p in problems[:5]]
            raise ValueError(f"{len(problems)} of {n} sampled architectures fail a forward pass "
                             f"on input {tuple(input_shape)}; {culprit_summary(problems)}:\n"
                             + "\n".join(lines))

    # ---- JSON ------------------------------------------------------------------------
    def to_json(self) -> dict:
        """The program with its choices, as JSON (traced spaces: the decisions and fn name)."""
        if self._fn is not None:
            data = {"traced": _qualified_name(self._fn), "decisions": self.value.to_json()}
            file = main_file(self._fn) if self._fn.__module__ == MAIN else None
            if file:
                data["modules"] = {MAIN: file}   # another process imports it from the script
            return data
        return {"program": self.value.to_json()}

    @classmethod
    def from_json(cls, data: dict) -> Space:
        if "traced" in data:
            fn = import_name(data["traced"], data.get("modules"))
            return cls.trace(fn)
        return cls(pg.from_json(data["program"]))

    def fingerprint(self) -> str:
        """A stable hash of the decisions (names and candidates) of this space."""
        import hashlib
        text = json.dumps([dataclasses.astuple(d) for d in self.decisions], default=str)
        return hashlib.sha1(text.encode()).hexdigest()[:16]


def _value_key(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str)


def _name_culprits(problems: list[dict], passed: list[dict]) -> None:
    """Adds ``suspects`` and ``common`` to each problem (see :meth:`Space.validate`)."""
    ok = {(k, _value_key(v)) for d in passed for k, v in d.items()}
    common: set | None = None
    for p in problems:
        items = {(k, _value_key(v)) for k, v in p["decisions"].items()}
        p["suspects"] = {k: v for k, v in p["decisions"].items() if (k, _value_key(v)) not in ok}
        common = items - ok if common is None else common & items
    for p in problems:
        p["common"] = {k: v for k, v in p["decisions"].items()
                       if (k, _value_key(v)) in (common or set())}


def culprit_summary(problems: list[dict]) -> str:
    """One phrase naming what the failures of :meth:`Space.validate` have in common."""
    common = problems[0].get("common") if problems else None
    values = ", ".join(f"{k}={v}" for k, v in (common or {}).items())
    n = len(problems)
    if values:
        every = "the failure has" if n == 1 else f"all {n} failures have"
        return f"{every} {values}, which no passing sample has"
    suspects = {f"{k}={v}" for p in problems for k, v in p.get("suspects", {}).items()}
    if suspects:
        return ("no one value is in every failure; values only failing samples have: "
                + ", ".join(sorted(suspects)))
    return "no decision value is only in failing samples (the program may fail for all)"


def _label(literal: Any, index: int) -> Any:
    """A short label for a PyGlove literal value: 3, 'relu', 'torch.nn.ReLU', 'Block(...)'."""
    text = str(literal)
    if text.startswith("<class '") and text.endswith("'>"):
        return text[8:-2].replace("torch.nn.modules.activation.", "torch.nn.")
    if len(text) >= 2 and text[0] == text[-1] == "'":
        return text[1:-1]
    try:
        return json.loads(text)
    except ValueError:
        pass
    if text in ("{}", "") or text.startswith("<function"):
        return f"#{index}"
    return text if len(text) <= 60 else text[:57] + "..."


class _meta_device:
    """``with torch.device('meta')`` when torch is present."""

    def __enter__(self):
        self._ctx = torch.device("meta") if torch is not None else None
        if self._ctx is not None:
            self._ctx.__enter__()
        return self

    def __exit__(self, *exc):
        if self._ctx is not None:
            self._ctx.__exit__(*exc)
        return False


def unrecorded_choice(name: str) -> str:
    """What to write when traced code makes a choice its recorded run never made."""
    return (f"sn.trace: this architecture makes the choice {name!r}, which the recorded run "
            "never made (sn.trace runs the function once, each choice at its first candidate): "
            "a choice inside a loop or branch that another choice controls (per-block choices "
            "in a loop over a searched depth). Make every such choice on each run, before the "
            "loop: flags = [sn.oneof([...], name=f'r{i}') for i in range(max_depth)], then use "
            "flags[:depth]; or write the model as an @sn.searchable class.")


def trace(fn: Callable[[], Any], *, name: str | None = None) -> Space:
    """Define-by-run Space over unchanged code: choices are made while ``fn()`` runs.

    Every choice in traced code needs a ``name=``; choices that share a name
    share one decision. Nested choices are zero-argument lambdas as candidates.

    Example::

        space = sn.trace(lambda: ExistingNet(width=sn.oneof([32, 64], name="width")))
        model = space.sample(seed=0).build()
    """
    return Space.trace(fn, name=name)
