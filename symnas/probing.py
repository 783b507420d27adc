"""Sizing an elastic supernet's store: one probe program per elastic value.

At construction a :class:`~symnas.supernet.Supernet` builds, for every elastic
decision and every value it can take, the program with only that decision
changed (plus a few random configurations), on the meta device. Module choices
take their candidate with the most weights, except those enclosing the decision
probed: they take the candidate that holds it, so a choice nested in a smaller
candidate is probed where it is built. Aligning each with the store
(:class:`symnas.elastic.Aligner`) teaches the supernet which store children
each value removes, and tells it which tensors must be enlarged and which
configurations need weights of their own (separate tensors, initialised as the
program that first needed them initialises them). It also fills
``net.sharing``: per decision, ``"entangled"`` (slices or removes),
``"separate"`` (keeps some weights apart) or ``"no weights"``; and
:func:`check_every_decision_seen` refuses decisions no build reaches.
"""
from __future__ import annotations

import random
from typing import Any

import torch
from torch import nn

from symnas.elastic import plan
from symnas.mixed import UnmixableChoice

__all__ = ["probe", "allocate", "check_every_decision_seen"]


def probe(net: Any, n_random: int, seed: int) -> None:
    """Builds one program per elastic value (and ``n_random`` random configurations), learns
    what each removes, and sizes the store (enlarged and separate tensors)."""
    needs: dict[str, tuple] = {}
    first: dict[str, dict] = {}
    effect: dict[int, set] = {c.gene: set() for c in net.elastic}

    path = net._path_values(largest=True)
    held: dict[tuple, set] = {}     # the store tensors the largest configuration uses, per path

    def slots_of(values: dict, on: dict, learn: tuple | None) -> tuple[list, dict]:
        """The slots of the program at ``values`` (module choices ``on``), learning what
        ``learn`` = (gene, value) removes."""
        origin: dict = {}
        prog = net.builder.build({**values, **on}, mixed=False, device="meta", init=False,
                                  origin=origin)
        if learn is None:
            return plan(*net.aligner.align(prog, net.model, values, origin))
        before = sum(len(v) for v in net.aligner.removed.values())
        out = plan(*net.aligner.learn(prog, net.model, values, learn[0], learn[1], origin=origin))
        if sum(len(v) for v in net.aligner.removed.values()) > before:
            effect[learn[0]].add("removes")
        return out

    def run(values: dict, learn: tuple | None) -> None:
        on = _enabling(net, learn[0], path) if learn is not None else path
        slots, need = slots_of(values, on, learn)
        if learn is not None:         # tensors the value drops inside a module (an LSTM's layer)
            at = tuple(sorted((g, str(v)) for g, v in on.items()))
            if at not in held:
                held[at] = {s.key for s in slots_of(dict(net._config), on, None)[0] if not s.separate}
            if held[at] - {s.key for s in slots if not s.separate}:
                effect[learn[0]].add("removes")
        for s in slots:
            if learn is not None and s.separate:
                effect[learn[0]].add("separate")
                keys = net.separate.setdefault(net._info(learn[0]).name, [])
                if s.key not in keys:          # (one entry per tensor, not per value probed)
                    keys.append(s.key)
            elif learn is not None and s.key in net._store and \
                    tuple(net._tensor(s.key).shape) != s.shape:
                effect[learn[0]].add("slices")
        for key, shape in need.items():
            old = needs.get(key)
            needs[key] = shape if old is None else tuple(max(a, b) for a, b in zip(old, shape))
            first.setdefault(key, dict(values))

    for c in net.elastic:
        for v in c.values():
            if v != c.largest:
                run({**net._config, c.gene: v}, (c.gene, v))
    rng = random.Random(seed)
    for _ in range(n_random):
        run({c.gene: c.values()[rng.randrange(len(c.values()))] if c.size is not None
             else rng.uniform(c.low, c.high) for c in net.elastic}, None)
    allocate(net, needs, first)
    for c in net.elastic:
        e = effect[c.gene]
        net.sharing[c.name] = ("separate" if "separate" in e else
                                "entangled" if e else "no weights")
    net._programs.clear()


def check_every_decision_seen(net: Any) -> None:
    """Refuses a Space with decisions no supernet build reaches: a choice nested in a
    candidate of a choice over values (the store is built at the largest candidate);
    one that a fixed choice above it rules out is moot."""
    seen = {c.gene for c in net.elastic} | {g for d in net.decisions for g in d.genes} | \
        set(net.builder.fixed_genes)
    genes = net.space.genome_spec.genes
    fixed = net.builder.fixed_genes

    def possible(i: int) -> bool:    # not ruled out by a fixed choice above it
        g = genes[i]
        return g.parent is None or (fixed.get(g.parent, g.parent_value) == g.parent_value
                                    and possible(g.parent))

    missed = [i for i in range(len(genes)) if i not in seen and possible(i)]
    if missed:
        names = ", ".join(repr(genes[i].name) for i in missed)
        hold = ", ".join(f"{genes[i].name!r}: ..." for i in missed)
        parents = {genes[genes[i].parent].name for i in missed if genes[i].parent is not None}
        where = f" (inside a candidate of {', '.join(map(repr, sorted(parents)))})" if parents else ""
        raise UnmixableChoice(
            f"decisions {names}{where} are never built by the supernet (it is built at each "
            "choice over values' largest candidate), so their weights cannot be shared. Hold "
            f"them with Supernet(space, fixed={{{hold}}}), "
            "make the enclosing choice one over layer factories (searchable functions, e.g. "
            "block.partial(width=sn.oneof([4, 8]))), or search this space by black-box.")


def _enabling(net: Any, gene: int, path: dict[int, Any]) -> dict[int, Any]:
    """``path`` with the module choices that enclose ``gene`` set to the candidates holding it,
    so a choice nested in a candidate other than the largest is probed where it is built."""
    genes = net.space.genome_spec.genes
    out = dict(path)
    g = genes[gene]
    while g.parent is not None:
        if isinstance(out.get(g.parent), int):     # a oneof (a manyof's candidates hold no choices)
            out[g.parent] = g.parent_value
        g = genes[g.parent]
    return out


def allocate(net: Any, needs: dict[str, tuple], first: dict[str, dict]) -> None:
    """Enlarges store tensors some configuration outgrows; creates the separate ones,
    initialised as the program that first needed them initialises them."""
    real: dict[tuple, dict[str, torch.Tensor]] = {}
    grown: dict[int, torch.Tensor] = {}       # id of a replaced tensor -> its replacement (tied)
    for key, shape in needs.items():
        if key in net._store:
            mod, n, buf = net._store[key]
            old = net._tensor(key)
            if id(old) in grown:              # another name of the same tensor: keep them tied
                (mod._buffers if buf else mod._parameters)[n] = grown[id(old)]
                continue
            if tuple(old.shape) == tuple(shape):
                continue
            new = old.new_zeros(shape) if buf else \
                torch.randn(shape, dtype=old.dtype) * float(old.detach().float().std().nan_to_num(0.02))
            with torch.no_grad():
                new[tuple(slice(0, s) for s in old.shape)] = old.detach()
            if buf:
                mod._buffers[n] = grown[id(old)] = new
            else:
                mod._parameters[n] = grown[id(old)] = nn.Parameter(new, requires_grad=old.requires_grad)
            continue
        values = first[key]
        vkey = tuple(sorted(values.items()))
        if vkey not in real:
            origin: dict = {}
            prog = net.builder.build({**values, **net._path_values(largest=True)}, mixed=False,
                                      origin=origin)
            pairs, loose = net.aligner.align(prog, net.model, values, origin)
            slots, _ = plan(pairs, loose)
            tensors = {**dict(prog.named_parameters()), **dict(prog.named_buffers())}
            real[vkey] = {s.key: tensors[s.name] for s in slots if s.separate and s.name in tensors}
        src = real[vkey].get(key)
        buf = src is not None and not isinstance(src, nn.Parameter)
        t = torch.zeros(shape) if src is None else src.detach().new_zeros(shape)
        if src is not None:
            with torch.no_grad():
                t[tuple(slice(0, s) for s in src.shape)] = src.detach()
        name = f"w{len(net._extra_names)}"
        if buf:
            net._extra_buffers.register_buffer(name, t)
        else:
            net.extra[name] = nn.Parameter(t)
        net._extra_names[key] = (name, buf)
    net._index_store()
