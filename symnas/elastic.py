"""Weight entanglement: which slice of the supernet's tensors each configuration uses.

An elastic supernet keeps one *store* of weights: its largest configuration
(the program built with every elastic choice at its largest value; module
choices as mixed ops). Every other configuration is the program built again
with its own values, and each of its parameters and buffers is a slice of a
store tensor: the leading output/input channels, the centre of a larger conv
kernel, the first ``k`` blocks of a stage. Tensors that pack equal blocks side by
side (attention's ``in_proj`` q|k|v, a recurrent layer's gates) take the leading
part of each block (:class:`Blocks`); a block packed by hand code (one ``Linear``
cut into q, k, v in ``forward``) is not known and is cut as one tensor.

**Alignment.** Which store module a configuration's module corresponds to is
decided by position in the program, not by attribute name alone. The module
trees of the configuration and of the store are walked together; at each
container the children are matched

1. where the store's children hold a manyof's branches (gated ops, or a
   wrapper per pick), each child holding picks to the first unused store
   child holding the same branches, in the genome's order of the picks (the
   other children by the rules below);
2. by name, where both have the same names and each pair has the same type
   (the common case: a width or kernel changed nothing structural);
3. where names are keys, not positions (a ``ModuleDict`` or a module's
   attributes; not a ``Sequential`` or ``ModuleList``), each child to the
   store's child of its name when the two have the same type (ops keyed by
   input, optional attributes), the others by the rules below;
4. else by the *removal rules* learned from probes: the supernet builds, for
   every elastic decision and every other value it can take, the program with
   only that decision changed, and records which store children the change
   removes (in a flat ``features`` list, stage 2 with one block fewer removes
   exactly stage 2's last block: the others are identical to the store's, so
   an order-preserving match finds it). A configuration's present children are
   the store's children no rule removes at its values;
5. else by an order-preserving alignment that prefers identical modules, then
   modules of the same structure, then of the same type; among those, modules
   the same lines of code created (:mod:`symnas.sites`: a stage's blocks, not
   the same-shaped layer written after them), and the earliest store child on
   ties (the first ``k`` blocks keep their weights).

A module choice's candidate in a single-path program is matched to the store's
mixed op by the candidate that made it (``origin``). Two tensors share only if
they have the same rank and the configuration's fits inside the store's;
modules with no counterpart and tensors of another rank keep *separate*
weights of their own.

Example::

    aligner = Aligner()
    aligner.learn(probe, store, values={3: 1}, gene=3, value=1)   # what gene 3 = 1 removes
    pairs, loose = aligner.align(config_program, store, values)
    slots, need = plan(pairs, loose)
"""
from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import torch
from torch import nn

from symnas.layouts import Blocks, centred, kind, packed, roles
from symnas.mixed import GatedOp, MixedOp, UnmixableChoice
from symnas.sites import site

__all__ = ["Aligner", "Slot", "plan", "handed", "index_into", "join"]


def join(prefix: str, name: str) -> str:
    if not name:
        return prefix
    return f"{prefix}.{name}" if prefix else name


def _children(m: nn.Module) -> list[tuple[str, nn.Module]]:
    return [(n, c) for n, c in m._modules.items() if c is not None]


@dataclasses.dataclass(frozen=True)
class Slot:
    """Where one tensor of a configuration's program comes from."""
    name: str                  # the tensor's name in the configuration's program
    key: str                   # the store key (the store program's name, or a separate key)
    buffer: bool
    shape: tuple               # the configuration's shape
    centred: tuple = ()        # dims that shrink around their centre (conv kernels)
    separate: bool = False
    packed: tuple = ()         # (dim, n): n blocks side by side on dim (q|k|v, an LSTM's gates)

    def index(self, store_shape: tuple) -> tuple:
        """The slices of a store tensor of ``store_shape`` that hold this tensor."""
        if any(c > s for c, s in zip(self.shape, store_shape)) or len(self.shape) != len(store_shape):
            raise ValueError(f"{self.name}: shape {self.shape} does not fit in the supernet's "
                             f"tensor {self.key!r} of shape {store_shape}.")
        return _index(self.shape, tuple(store_shape), self.centred, dict(self.packed))


class _Sigs:
    """Memoised structural signatures of modules (per alignment).

    A mixed op and a candidate made by the same decision have the same
    signature (``("mixed", gene)``; gated branches ``("gated", gene, index)``),
    so a single-path program's blocks look like the store's.
    """

    def __init__(self, origin: Mapping[int, tuple]) -> None:
        self.origin = origin
        self._struct: dict[int, Any] = {}
        self._exact: dict[int, Any] = {}
        self._picks: dict[int, frozenset] = {}
        self._sites: dict[int, tuple] = {}

    def _choice(self, m: nn.Module) -> Any:
        if isinstance(m, MixedOp):
            return ("mixed", m.gene)
        if isinstance(m, GatedOp):
            return ("gated", m.gene, m.index)
        o = self.origin.get(id(m))
        if o is None:
            return None
        return ("mixed", o[0]) if o[2] == "module" else ("gated", o[0], o[1])

    def struct(self, m: nn.Module) -> Any:
        key = id(m)
        if key not in self._struct:
            self._struct[key] = self._choice(m) or \
                (kind(m), tuple((n, self.struct(c)) for n, c in _children(m)))
        return self._struct[key]

    def picks(self, m: nn.Module) -> frozenset:
        """The manyof branches ``(gene, index)`` in ``m`` or below it: gated ops in the
        store, picks (by ``origin``) in a configuration's program."""
        key = id(m)
        if key not in self._picks:
            c = self._choice(m)
            own = {c[1:]} if c is not None and c[0] == "gated" else set()
            self._picks[key] = frozenset(own.union(*(self.picks(x) for _, x in _children(m))))
        return self._picks[key]

    def sites(self, m: nn.Module) -> tuple:
        """Where the modules holding weights in ``m``'s tree were created (:mod:`symnas.sites`)."""
        key = id(m)
        if key not in self._sites:
            self._sites[key] = tuple(site(x) for x in m.modules() if x._parameters)
        return self._sites[key]

    def exact(self, m: nn.Module) -> Any:
        key = id(m)
        if key not in self._exact:
            choice = self._choice(m)
            if choice is not None:
                self._exact[key] = choice
            else:
                own = tuple((n, tuple(t.shape)) for n, t in
                            [*m._parameters.items(), *m._buffers.items()] if t is not None)
                self._exact[key] = (kind(m), m.extra_repr(), own,
                                    tuple((n, self.exact(c)) for n, c in _children(m)))
        return self._exact[key]


class Aligner:
    """Aligns configurations' module trees with the store's (see the module docstring)."""

    def __init__(self) -> None:
        #: (store container path, child name) -> {(gene, value)} that remove that child
        self.removed: dict[tuple[str, str], set[tuple[int, Any]]] = {}
        self.fallbacks = 0          # containers aligned by step 5 (for the supernet's report)

    # ---- public ------------------------------------------------------------------------
    def learn(self, probe: nn.Module, store: nn.Module, values: Mapping[int, Any], gene: int,
              value: Any, origin: Mapping[int, tuple] | None = None) -> tuple[list, list]:
        """Aligns a probe (only ``gene`` changed, to ``value``) and records what it removes."""
        return self._align(probe, store, values, origin or {}, learn=(gene, value))

    def align(self, program: nn.Module, store: nn.Module, values: Mapping[int, Any],
              origin: Mapping[int, tuple] | None = None) -> tuple[list, list]:
        """``(pairs, loose)``: ``(path, module, store path, store module)`` for every matched
        module, ``(path, module, store parent path)`` for modules with no counterpart."""
        return self._align(program, store, values, origin or {}, learn=None)

    # ---- walking -----------------------------------------------------------------------
    def _align(self, c: nn.Module, m: nn.Module, values: Mapping[int, Any], origin: Mapping,
               learn: tuple | None) -> tuple[list, list]:
        pairs: list = []
        loose: list = []
        sigs = _Sigs(origin)

        def rec(cp: str, cm: nn.Module, mp: str, mm: nn.Module) -> None:
            if isinstance(mm, MixedOp) and not isinstance(cm, MixedOp):
                o = origin.get(id(cm))
                k = o[1] if o is not None and o[0] == mm.gene and o[2] == "module" else None
                if k is None:
                    loose.append((cp, cm, mp))
                    return
                rec(cp, cm, join(mp, f"ops.{int(k)}"), mm.ops[int(k)])
                return
            if isinstance(mm, GatedOp) and not isinstance(cm, GatedOp):
                rec(cp, cm, join(mp, "op"), mm.op)
                return
            pairs.append((cp, cm, mp, mm))
            keyed = not isinstance(mm, (nn.Sequential, nn.ModuleList))
            for (cn, cx), match in self._match(_children(cm), _children(mm), mp, values, origin,
                                               sigs, learn, keyed):
                if match is None:
                    loose.append((join(cp, cn), cx, mp))
                else:
                    rec(join(cp, cn), cx, join(mp, match[0]), match[1])

        rec("", c, "", m)
        return pairs, loose

    def _compatible(self, cx: nn.Module, mx: nn.Module, origin: Mapping) -> bool:
        if isinstance(mx, MixedOp):
            if isinstance(cx, MixedOp):
                return cx.gene == mx.gene
            o = origin.get(id(cx))
            return o is not None and o[0] == mx.gene and o[2] == "module"
        if isinstance(mx, GatedOp):
            if isinstance(cx, GatedOp):
                return (cx.gene, cx.index) == (mx.gene, mx.index)
            o = origin.get(id(cx))
            return o is not None and (o[0], o[1], o[2]) == (mx.gene, mx.index, "branches")
        return kind(cx) is kind(mx) and id(cx) not in origin

    def _match(self, cc: list, mc: list, mp: str, values: Mapping, origin: Mapping, sigs: _Sigs,
               learn: tuple | None, keyed: bool = False) -> list:
        """``[((name, child), (store name, store child) | None), ...]`` for the children ``cc``
        (``keyed``: their names are keys, not positions: not a Sequential or ModuleList)."""
        if any(isinstance(x, GatedOp) for _, x in mc) or self._wrapped(cc, mc, sigs):
            return self._match_picks(cc, mc, mp, values, origin, sigs, learn, keyed)
        if [n for n, _ in cc] == [n for n, _ in mc] and \
                all(self._compatible(a, b, origin) for (_, a), (_, b) in zip(cc, mc)):
            return list(zip(cc, mc))
        if keyed:
            return self._match_keyed(cc, mc, mp, values, origin, sigs, learn)
        if learn is None and any((mp, n) in self.removed for n, _ in mc):
            present = [(n, x) for n, x in mc
                       if not any(values.get(g) == v for g, v in self.removed.get((mp, n), ()))]
            if len(present) == len(cc) and \
                    all(self._compatible(a, b, origin) for (_, a), (_, b) in zip(cc, present)):
                return list(zip(cc, present))
        out = self._order_preserving(cc, mc, origin, sigs)
        if learn is not None:
            matched = {id(b[1]) for _, b in out if b is not None}
            for n, x in mc:
                if id(x) not in matched:
                    self.removed.setdefault((mp, n), set()).add(learn)
        else:
            self.fallbacks += 1
        return out

    def _match_keyed(self, cc: list, mc: list, mp: str, values: Mapping, origin: Mapping,
                     sigs: _Sigs, learn: tuple | None) -> list:
        """:meth:`_match` where names are keys: each child to the store's child of its name
        when the two are compatible (ops keyed by input, optional attributes); the others
        aligned among themselves by the rules after this one."""
        store = dict(mc)
        named = {n for n, x in cc if n in store and self._compatible(x, store[n], origin)}
        rc, rm = [c for c in cc if c[0] not in named], [m for m in mc if m[0] not in named]
        if not rc:
            if learn is not None:           # what this configuration lacks, by name
                for n, _ in rm:
                    self.removed.setdefault((mp, n), set()).add(learn)
            return [((n, x), (n, store[n])) for n, x in cc]
        rest = iter(self._match(rc, rm, mp, values, origin, sigs, learn))
        return [((n, x), (n, store[n])) if n in named else next(rest) for n, x in cc]

    @staticmethod
    def _wrapped(cc: list, mc: list, sigs: _Sigs) -> bool:
        """Whether the store's children wrap a manyof's branches, each only some of them
        (``nn.Sequential(b(c), proj)`` per pick, once or once per layer; not layers that each
        hold every branch), and the configuration has picks here."""
        held = [p for p in (sigs.picks(x) for _, x in mc) if p]
        union = frozenset().union(*held)
        return len(held) > 1 and any(h != union for h in held) and any(sigs.picks(x) for _, x in cc)

    def _match_picks(self, cc: list, mc: list, mp: str, values: Mapping, origin: Mapping,
                     sigs: _Sigs, learn: tuple | None, keyed: bool) -> list:
        """:meth:`_match` where the store's children hold a manyof's branches (gated ops, or
        children wrapping them): each child holding picks, in the order the genome lists them,
        to the first unused store child of the same type that holds those branches; the other
        children as :meth:`_match` aligns them."""
        held = {id(x): sigs.picks(x) for _, x in mc}
        used: set[int] = set()
        picks: dict[int, tuple | None] = {}
        for i, (_, cx) in enumerate(cc):
            p = sigs.picks(cx)
            if p:
                hit = next(((n, x) for n, x in mc if id(x) not in used and p <= held[id(x)]
                            and self._compatible(cx, x, origin)), None)
                if hit is None and learn is None and any(held.values()):
                    raise UnmixableChoice(
                        f"the manyof picks {sorted(k for _, k in p)} sit together in "
                        f"{join(mp, cc[i][0])!r} ({type(cx).__name__}), but no module of the "
                        "supernet there holds those branches together (it groups them as the "
                        "program groups the first picks, e.g. two per module): build one module "
                        "per pick, fix the decision with Supernet(space, fixed=...), or search "
                        "it by black-box.")
                if hit is not None:
                    used.add(id(hit[1]))
                picks[i] = hit
        if learn is not None:          # the repeats of the picks the probe's configuration lost
            taken = frozenset().union(*(held[id(h[1])] for h in picks.values() if h is not None))
            for n, x in mc:            # (all of them when it has no pick left here)
                if held[id(x)] and id(x) not in used and (not taken or held[id(x)] & taken):
                    self.removed.setdefault((mp, n), set()).add(learn)
        others = iter(self._match([c for i, c in enumerate(cc) if i not in picks],
                                  [m for m in mc if not held[id(m[1])]],
                                  mp, values, origin, sigs, learn, keyed))
        return [(c, picks[i]) if i in picks else next(others) for i, c in enumerate(cc)]

    def _order_preserving(self, cc: list, mc: list, origin: Mapping, sigs: _Sigs) -> list:
        a, b = len(cc), len(mc)

        unit = a + 1                            # sites only break ties: a pairs' worth < 1 unit

        def score(i: int, j: int) -> int:
            x, y = cc[i][1], mc[j][1]
            if not self._compatible(x, y, origin):
                return 0
            same = int(sigs.sites(x) == sigs.sites(y))
            if sigs.exact(x) == sigs.exact(y):
                return 3 * unit + same
            if sigs.struct(x) == sigs.struct(y):
                return 2 * unit + same
            return unit + same

        scores = [[score(i, j) for j in range(b)] for i in range(a)]
        best = [[0] * (b + 1) for _ in range(a + 1)]
        for i in range(a - 1, -1, -1):
            for j in range(b - 1, -1, -1):
                s = scores[i][j]
                take = s + best[i + 1][j + 1] if s else -1
                best[i][j] = max(take, best[i + 1][j], best[i][j + 1])
        out: list = []
        i = j = 0
        while i < a and j < b:
            s = scores[i][j]
            if s and s + best[i + 1][j + 1] == best[i][j]:
                out.append((cc[i], mc[j]))
                i, j = i + 1, j + 1
            elif best[i][j + 1] == best[i][j]:
                j += 1
            else:
                out.append((cc[i], None))
                i += 1
        out.extend((cc[k], None) for k in range(i, a))
        return out


# ---- slicing ---------------------------------------------------------------------------------
def _own(m: nn.Module) -> list[tuple[str, torch.Tensor, bool]]:
    return ([(n, t, False) for n, t in m._parameters.items() if t is not None]
            + [(n, t, True) for n, t in m._buffers.items() if t is not None])


def _index(c_shape: tuple, m_shape: tuple, centred: tuple[int, ...],
           packed: Mapping[int, int] | None = None) -> tuple:
    if c_shape == m_shape:
        return ()
    out: list = []
    for d, (c, m) in enumerate(zip(c_shape, m_shape)):
        n = (packed or {}).get(d, 1)
        if c == m:
            out.append(slice(None))
        elif n > 1 and c % n == 0 and m % n == 0:
            out.append(Blocks(n, c // n, m // n))
        elif d in centred:
            off = (m - c) // 2
            out.append(slice(off, off + c))
        else:
            out.append(slice(0, c))
    return tuple(out)


def plan(pairs: list, loose: list) -> tuple[list[Slot], dict[str, tuple]]:
    """The slots of a configuration's tensors, and the shapes its separate tensors need.

    Returns ``(slots, need)``: ``need`` maps a store key to the shape this
    configuration needs there when it is larger than the store's tensor (or
    when the key is separate, i.e. not in the store at all).
    """
    slots: list[Slot] = []
    need: dict[str, tuple] = {}
    role = roles([p[1] for p in pairs] + [x for p in loose for x in p[1].modules()])

    for cp, cm, mp, mm in pairs:
        mt = {n: (t, buf) for n, t, buf in _own(mm)}
        for n, t, buf in _own(cm):
            shape = tuple(t.shape)
            full = join(cp, n)
            if n in mt and mt[n][0].dim() == t.dim() and mt[n][1] == buf:
                key = join(mp, n)
                mshape = tuple(mt[n][0].shape)
                if any(c > s for c, s in zip(shape, mshape)):
                    need[key] = tuple(max(c, s) for c, s in zip(shape, mshape))
                slots.append(Slot(full, key, buf, shape, centred(*role(cm, n), t.dim()),
                                  packed=packed(*role(cm, n))))
            else:
                key = f"{join(mp, n)}~{t.dim()}d~{type(cm).__name__}"
                need[key] = shape
                slots.append(Slot(full, key, buf, shape, centred(*role(cm, n), t.dim()),
                                  separate=True))
    for cp, cm, mp in loose:
        for sub, mod in cm.named_modules():
            for n, t, buf in _own(mod):
                shape = tuple(t.shape)
                key = f"{mp}/{join(cp.rsplit('.', 1)[-1], sub)}~{type(cm).__name__}.{n}"
                need[key] = shape
                slots.append(Slot(join(join(cp, sub), n), key, buf, shape,
                                  centred(*role(mod, n), t.dim()), separate=True))
    return slots, need


@contextlib.contextmanager
def handed(binding: list, tensor: Callable[[str], torch.Tensor]) -> Iterator[dict]:
    """The tensors a configuration's program runs on, ``{name: slice of its store tensor}``.

    Each is contiguous: a slice that is not is a copy, and for a tensor autograd does not
    track (a buffer, a frozen weight) an update the program makes in place is written back
    to the store when the block ends.
    """
    tensors, back = {}, []
    for name, key, idx in binding:
        t = index_into(store := tensor(key), idx)
        c = t.contiguous()
        if c is not t and not (isinstance(store, nn.Parameter) and store.requires_grad):
            back.append((t, c, c._version))
        tensors[name] = c
    yield tensors
    with torch.no_grad():
        for view, copy, version in back:
            if copy._version != version:
                view.copy_(copy)


def index_into(t: torch.Tensor, index: tuple) -> torch.Tensor:
    """``t[index]``: a view of ``t`` (the whole tensor for an empty index), or a copy where a
    dim takes :class:`Blocks`."""
    if not index:
        return t
    blocks = [(d, b) for d, b in enumerate(index) if isinstance(b, Blocks)]
    if not blocks:
        return t[index]
    t = t[tuple(slice(None) if isinstance(b, Blocks) else b for b in index)]
    for d, b in blocks:
        t = b.take(t, d)
    return t
