"""Deriving architectures from a supernet's architecture weights (magnitude and top-k).

:class:`Deriving` is the part of :class:`symnas.supernet.Supernet` that reads
the alphas: the argmax architecture (``none`` excluded unless asked), the
``k`` best by summed log-softmax weight, a genome's score. A oneof is ranked
by its own alpha; a manyof of gated branches by its alpha (the ``k``
strongest); a manyof over inputs (the DARTS cell) by the strongest
non-``none`` op weight on each input's edge (:meth:`Deriving._links`).
Elastic decisions (widths, depths...) have no alpha: a derived genome takes
their largest value unless told otherwise.

Example::

    net.genome()                          # argmax, `none` excluded
    net.genome(include_none=True)         # argmax over every candidate (DARTS-PT's baseline)
    net.top_k(3)                          # [(genome, score), ...]
"""
from __future__ import annotations

import heapq
import itertools
import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

import torch

from symnas.mixed import MixedDecision

__all__ = ["Deriving"]


def _literal(v: Any) -> Any:
    try:
        return int(str(v))
    except ValueError:
        return str(v)


class Deriving:
    """Mixin: architectures from the alphas of a supernet (see the module docstring)."""

    space: Any
    decisions: list[MixedDecision]
    alphas: Any
    _by_name: dict[str, MixedDecision]

    def _elastic_values(self) -> dict[int, Any]:
        raise NotImplementedError

    def _fixed_genes(self) -> dict[int, int]:
        raise NotImplementedError

    def _log_probs(self, d: MixedDecision, raw: bool = False,
                   include_none: bool = False) -> list[tuple[int, float]]:
        """(candidate, log-probability) options of a oneof, `none` and masked ones excluded
        (``raw``: every candidate, from the alphas alone, masks and fixed decisions ignored)."""
        if d.chosen is not None and not raw:
            return [(d.chosen, 0.0)]
        with torch.no_grad():
            a = self.alphas[f"g{d.genes[0]}"].detach().float().cpu()
        if raw:
            allowed = list(range(d.size))
        elif include_none:
            allowed = d.active or list(range(d.size))
        else:
            allowed = [i for i in d.active if not d.zero[i]] or d.active or list(range(d.size))
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
        """Manyof: each candidate's weight (gated branches: its own alpha; inputs: the
        strongest non-`none` op weight on its linked edges); masked ones -1."""
        if d.gated:
            with torch.no_grad():
                p = torch.softmax(self.alphas[f"g{d.genes[0]}"].detach().float(), -1).tolist()
            return [p[i] if d.mask[i] != 0.0 else -1.0 for i in range(d.size)]
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
                    probs = torch.softmax(self.alphas[f"g{od.genes[0]}"].detach().float(), -1)
                    best = max([best] + [float(probs[j]) for j in od.active if not od.zero[j]])
                out.append(best if d.mask[i] != 0.0 else -1.0)
        return out

    def _options(self, d: MixedDecision, include_none: bool = False) -> list[tuple[Any, float]]:
        if d.kind == "oneof":
            return self._log_probs(d, include_none=include_none)
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

    def _genome_of(self, picks: Mapping[int, Any], elastic: Mapping[int, Any] | None = None) -> tuple:
        gs = self.space.genome_spec
        g: list = [0 if x.size is not None else x.low for x in gs.genes]
        for gene, v in {**self._elastic_values(), **(elastic or {})}.items():
            g[gene] = v
        for gene, k in self._fixed_genes().items():
            g[gene] = k
        for d in self.decisions:
            v = picks[d.genes[0]]
            if d.kind == "oneof":
                g[d.genes[0]] = v
            else:
                for gene, c in zip(d.genes, v):
                    g[gene] = c
        return gs.canonical(g)

    def genome(self, include_none: bool = False, elastic: Mapping[int, Any] | None = None) -> tuple:
        """The architecture of the current weights: argmax (``none`` excluded unless
        ``include_none``), fixed ones kept, elastic decisions at their largest (or ``elastic``)."""
        picks = {d.genes[0]: self._options(d)[0][0] if d.kind == "manyof" else
                 max(self._options(d, include_none), key=lambda o: o[1])[0] for d in self.decisions}
        return self._genome_of(picks, elastic)

    def arch(self) -> Any:
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
