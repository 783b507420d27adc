"""One architecture out of a trained supernet: a plain module, BN recalibration, an evaluator.

* :func:`subnet` builds the architecture as the user's own class (through the
  Space's program, every choice made) and copies the inherited weights in;
  its eval-mode output equals the supernet's in that configuration.
* :func:`recalibrate` recomputes the BatchNorm running statistics of one
  configuration on a few training batches (as SPOS and OFA do before scoring a
  subnet: shared statistics fit no single subnet).
* :class:`SupernetEvaluator` is a trained supernet as an evaluator: for each
  architecture, recalibrate, then top-1 accuracy (%) on the Task's valid split.
  Any black-box algorithm searches it at the cost of forward passes. It holds
  the supernet, so it runs in the searching process only.

Example::

    model = net.subnet(genome, task)               # ready to fine-tune or export
    evaluator = net.evaluator(task)
    sn.search(space, "evolution", evaluator, budget=200, constraints=["params_M <= 2"])
"""
from __future__ import annotations

import numbers
import time
from collections import OrderedDict
from collections.abc import Iterable
from typing import Any

import torch
from torch import nn

from symnas.elastic import index_into, plan
from symnas.outputs import logits
from symnas.program import ELASTIC, FIXED

# ``net`` below is a :class:`symnas.supernet.Supernet` (which imports this module).
Supernet = Any

__all__ = ["subnet", "recalibrate", "count_params", "SupernetEvaluator"]


def _values(net: Supernet, genome: tuple) -> dict[int, Any]:
    """Every gene's value for a single-architecture build (manyof: the picks, first gene)."""
    values: dict[int, Any] = {}
    for gene, info in net.builder.choices.items():
        if info.kind == FIXED:
            continue
        if info.kind == ELASTIC or info.k == 1:
            values[gene] = genome[gene]
        else:
            values[gene] = [int(genome[g]) for g in range(gene, gene + info.k)]
    return values


def _genome(net: Supernet, genome: Any) -> tuple:
    """``genome`` (or an Arch's) in canonical form, refused when it is not one the supernet
    holds: the wrong number of genes, or another value of a ``fixed=`` decision."""
    genes = tuple(getattr(genome, "genome", genome))
    spec = net.space.genome_spec
    if len(genes) != len(spec):
        raise ValueError(f"a genome of {len(genes)} genes given to a supernet whose Space has "
                         f"{len(spec)} ({', '.join(spec.names)}); give a genome or an Arch of "
                         "that Space (e.g. net.space.sample(seed=0)).")
    bad = [f"{g.name}={v!r} (0..{g.size - 1})" for g, v in zip(spec.genes, genes)
           if g.size is not None and not (isinstance(v, numbers.Integral) and 0 <= int(v) < g.size)]
    if bad:
        raise ValueError(f"genome genes out of range: {', '.join(bad)}; each categorical gene is "
                         "a candidate's index.")
    out = spec.canonical(genes)
    fixed = net.builder.fixed_genes
    if not fixed:
        return out
    act = spec.active(out)            # a fixed choice nested in a candidate not taken is moot
    wrong = [i for i, v in fixed.items() if act[i] and
             out[i] != (v if spec.genes[i].size is not None else spec.genes[i].quantize(v))]
    if wrong:
        names = ", ".join(f"{spec.genes[i].name!r}" for i in wrong)
        raise ValueError(f"this architecture varies {names}, which the supernet holds fixed "
                         f"(Supernet(fixed=...)): it would be scored as another architecture. "
                         f"Search net.search_space (those decisions held at their values), e.g. "
                         f"sn.search(net.search_space, 'evolution', net.evaluator(task), budget=100).")
    return net.search_space.genome_spec.canonical(out)     # a fixed float exactly as fixed


def subnet(net: Supernet, genome: Any, data: Any = None, *, batches: int = 8) -> nn.Module:
    """The architecture ``genome`` as a plain module of the user's class, with its weights
    (parameters and buffers) copied from the supernet.

    BatchNorm inside module-choice candidates has the supernet's settings
    (``affine``/``track_running_stats``), so the module computes exactly what
    the supernet computes in that configuration. ``data`` (a Task, or an
    iterable of batches: input tensors or ``(x, y)`` pairs) recalibrates the
    BatchNorm statistics first, on ``batches`` batches.
    """
    genome = _genome(net, genome)
    if data is not None:
        recalibrate(net, genome, _calibration_batches(data, batches))
    values = _values(net, genome)
    origin: dict[int, tuple] = {}
    model = net.builder.build(values, mixed=False, init=False, origin=origin)
    pairs, loose = net.aligner.align(model, net.model, values, origin)
    slots, _ = plan(pairs, loose)
    device = next((t.device for t in net.model.parameters()), torch.device("cpu"))
    model.to(device)
    tensors = {**dict(model.named_parameters(remove_duplicate=False)),     # (tied: each name)
               **dict(model.named_buffers(remove_duplicate=False))}
    with torch.no_grad():
        for s in slots:            # (a weight the supernet lacks: the error _slot_index gives)
            index = net._slot_index(s)
            tensors[s.name].copy_(index_into(net._tensor(s.key), index))
    return model


def _calibration_batches(data: Any, n: int) -> list:
    if hasattr(data, "batches"):
        return list(data.batches("train", seed=4242, max_batches=n))
    if isinstance(data, torch.Tensor):
        return [data]                                    # one batch of inputs
    out = []
    for b in data:
        out.append(b)
        if len(out) >= n:
            break
    return out


def _inputs(batch: Any) -> torch.Tensor:
    """The inputs of one calibration batch: ``x`` itself or the first of ``(x, y)``."""
    if isinstance(batch, torch.Tensor):
        return batch
    if isinstance(batch, (tuple, list)) and batch and isinstance(batch[0], torch.Tensor):
        return batch[0]
    raise TypeError(f"a calibration batch is an input tensor or an (x, y) pair, got "
                    f"{type(batch).__name__}; give a Task or such batches.")


def _bn_modules(net: Supernet) -> tuple[nn.Module, list[tuple[str, nn.Module]]]:
    prog = net._current()[0] if net._runs_program() else net.model
    return prog, [(n, m) for n, m in prog.named_modules()
                  if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats]


def recalibrate(net: Supernet, genome: Any, batches: Iterable) -> None:
    """Resets and recomputes (cumulative average) the running statistics of the BatchNorm
    layers ``genome`` uses, in the supernet's own buffers, on ``batches``."""
    batches = list(batches)
    if not batches:
        return
    with net.using(_genome(net, genome)):
        prog, bns = _bn_modules(net)
        if not bns:
            return
        if net._runs_program():
            binding = {name: (key, idx) for name, key, idx in net._current()[1]}
            for name, _ in bns:
                for stat, value in (("running_mean", 0.0), ("running_var", 1.0),
                                    ("num_batches_tracked", 0)):
                    full = f"{name}.{stat}" if name else stat
                    if full in binding:
                        key, idx = binding[full]
                        index_into(net._tensor(key), idx).fill_(value)
        else:
            for _, m in bns:
                m.reset_running_stats()  # type: ignore[operator]
        momenta = [m.momentum for _, m in bns]
        was = net.training
        try:
            for _, m in bns:
                m.momentum = None  # type: ignore[assignment]  # cumulative average
            net.train()
            with torch.no_grad():
                for b in batches:
                    net(_inputs(b))
        finally:
            for (_, m), mom in zip(bns, momenta):
                m.momentum = mom
            net.train(was)


def count_params(net: Supernet, genome: Any) -> int:
    """Parameters of ``genome``'s architecture as the Space builds it (on the meta device)."""
    genome = _genome(net, genome)
    cache = net.__dict__.setdefault("_param_counts", OrderedDict())
    if genome in cache:
        return cache[genome]
    model = net.builder.build(_values(net, genome), mixed=False, device="meta", init=False, bn=False)
    n = sum(p.numel() for p in model.parameters())
    cache[genome] = n
    if len(cache) > 4096:
        cache.popitem(last=False)
    return n


class SupernetEvaluator:
    """A trained supernet as an evaluator: ``arch -> {valid_acc, params_M, eval_seconds}``.

    For each architecture: BatchNorm statistics recalibrated on
    ``calibration_batches`` fixed training batches, then top-1 accuracy (%) in
    eval mode on the Task's valid split (the first ``eval_batches`` batches,
    all by default). ``params_M`` is the architecture's parameter count as the
    Space builds it. It holds the trained supernet in this process: searches
    with it run inline (``executor="process:N"`` is refused with a clear error).
    """

    def __init__(self, net: Supernet, task: Any, *, calibration_batches: int = 4,
                 eval_batches: int | None = None, batch_size: int | None = None):
        if not hasattr(task, "batches"):
            raise TypeError(f"net.evaluator(task) needs a Task (its data: BN calibration and the "
                            f"valid split), got {type(task).__name__}; e.g. "
                            "net.evaluator(sn.Task.cifar10()).")
        self.net, self.task = net, task
        self.metric = getattr(task, "metric", None) or "valid_acc"
        bs = batch_size or getattr(task, "batch_size", 64)
        self._calib = list(task.batches("train", bs, seed=4242, max_batches=calibration_batches))
        self._valid = list(task.batches("valid", getattr(task, "eval_batch_size", bs), shuffle=False,
                                        max_batches=eval_batches))

    def __call__(self, arch: Any, seed: int | None = None) -> dict:
        t0 = time.perf_counter()
        genome = _genome(self.net, arch)
        net = self.net
        recalibrate(net, genome, self._calib)
        was = net.training
        correct = total = 0
        try:
            net.eval()
            with net.using(genome), torch.no_grad():
                for x, y in self._valid:
                    correct += int((logits(net(x)).argmax(1) == y).sum())
                    total += len(y)
        finally:
            net.train(was)
        return {self.metric: 100.0 * correct / max(total, 1),
                "params_M": count_params(net, genome) / 1e6,
                "eval_seconds": time.perf_counter() - t0}

    def check_space(self, space: Any) -> None:
        """Refuses, before a search starts, a Space whose architectures are not the supernet's
        as they are: another Space, or one that varies the supernet's ``fixed=`` decisions."""
        own = self.net.space
        if len(space.genome_spec) != len(own.genome_spec) or space.fingerprint() != own.fingerprint():
            raise ValueError("net.evaluator(task) scores architectures of the Space its supernet "
                             "was built from; this search's Space is another one. Search "
                             "net.search_space.")
        varied = [own.genome_spec.genes[i].name for i, v in self.net.builder.fixed_genes.items()
                  if space.genome_spec.pins.get(i) != v]
        if varied:
            raise ValueError(f"this search's Space varies {varied}, which the supernet holds fixed "
                             "(Supernet(fixed=...)): its trials would be scored as other "
                             "architectures. Search net.search_space instead: "
                             "sn.search(net.search_space, algorithm, net.evaluator(task), ...).")

    def __reduce__(self) -> Any:
        raise TypeError(
            "a supernet evaluator holds the trained supernet of this process and cannot be sent to "
            "worker processes; search it inline (leave executor= out: evaluations are forward "
            "passes only).")

    def __repr__(self) -> str:
        return f"SupernetEvaluator({self.metric!r}, {len(self._valid)} valid batches)"
