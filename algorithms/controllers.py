"""Policy-gradient controllers: REINFORCE and PPO over the whole genome layout.

The policy is a product of independent distributions, one per gene of the
genome layout (:mod:`symnas.genome`): a softmax over the candidates of each
categorical gene (each slot of a ``manyof`` is a gene), and a Gaussian over
each float gene's range, parameterized in ``[0, 1]`` units (mean
``sigmoid(mu)``, a learned standard deviation; samples are clipped to the
range). Genes of conditional decisions are sampled always, but only the genes
active in a proposal count towards its log-probability, so a choice that does
not exist in an architecture gets no credit for it. A float's ``[0, 1]`` units
are on its scale (``GeneLayout.unit``): uniform steps of a ``scale='log'``
float are ratios.

Rewards are raw objective values; a failed trial (``None``) counts as the
worst reward seen so far. A controller learns from one number: a tuple reward
(several objectives) is scalarized as ``sum(w * r)`` with ``weights`` (default:
its first entry). For a trade-off with a target, such as MnasNet's
``acc * (lat / T) ** w``, use :func:`symnas.objective.mnasnet_reward` as the
objective: it is one derived metric.
Advantages are the reward minus an exponential moving average of rewards
(momentum 0.9, the NAS-Bench-201 REINFORCE baseline), divided by a running
estimate of the reward's standard deviation (``normalize=True``) so that the
learning rate does not depend on the reward's units.

A sample that repeats a genome this search has already proposed is redrawn
(up to ``redraws`` times), then mutated until new: a converged policy keeps
proposing new cells rather than ones ``sn.search`` answers from its record.

Sampling does not touch torch: the policy's probabilities are cached as
Python lists after each update, so a proposal costs microseconds and each
update is one small torch step (Adam), run on one intra-op thread (tiny
tensors are slower, not faster, on several busy threads).

Example:

>>> import symnas as sn
>>> space = sn.Space({f"x{i}": sn.oneof([0, 1, 2, 3, 4]) for i in range(4)})   # 625 architectures
>>> evaluator = lambda arch: float(sum(arch.decisions.values()))              # best: 16.0
>>> sn.search(space, sn.algorithms.Reinforce(), evaluator, budget=30, seed=0).best.reward
16.0
>>> sn.search(space, sn.algorithms.PPO(batch_size=10), evaluator, budget=30, seed=0).best.reward
16.0
"""
from __future__ import annotations

import bisect
import math
from typing import Sequence

import torch

from .base import Algorithm, scalar
from .registry import register


class _one_thread:
    """Runs tiny torch ops on one intra-op thread (restored after).

    Measured: with 2 intra-op threads on busy cores, one REINFORCE update on a
    6x5 policy takes ~50 ms instead of ~1 ms; switching costs under a microsecond.
    """

    def __enter__(self):
        self.n = torch.get_num_threads()
        if self.n != 1:
            torch.set_num_threads(1)

    def __exit__(self, *exc):
        if self.n != 1:
            torch.set_num_threads(self.n)


class _Policy:
    """Independent logits per categorical gene and a Gaussian per float gene."""

    def __init__(self, genome_spec, lr: float, init_std: float):
        self.gs = genome_spec
        genes = genome_spec.genes
        self.cat = [i for i, g in enumerate(genes) if g.size is not None]
        self.flt = [i for i, g in enumerate(genes) if g.size is None]
        k = max([genes[i].size for i in self.cat], default=1)
        self.logits = torch.zeros(len(self.cat), k, requires_grad=True)
        mask = torch.zeros(len(self.cat), k)
        for row, i in enumerate(self.cat):
            mask[row, genes[i].size:] = -1e4   # finite: keeps p*log(p) differentiable
        self.mask = mask
        self.mu = torch.zeros(len(self.flt), requires_grad=True)
        self.log_std = torch.full((len(self.flt),), math.log(init_std), requires_grad=True)
        params = [self.logits] + ([self.mu, self.log_std] if self.flt else [])
        self.opt = torch.optim.Adam(params, lr=lr)
        self.float_genes = [genes[i] for i in self.flt]
        self.refresh()

    # ---- sampling (pure Python) ---------------------------------------------------
    def refresh(self) -> None:
        """Caches cumulative probabilities and float means for sampling."""
        with torch.no_grad():
            probs = torch.softmax(self.logits + self.mask, dim=1)
            self.cum = []
            for row, i in enumerate(self.cat):
                c = probs[row, :self.gs.genes[i].size].cumsum(0).tolist()
                c[-1] = 1.0
                self.cum.append(c)
            self.mean = torch.sigmoid(self.mu).tolist()
            self.std = self.log_std.exp().tolist()

    def sample(self, rng) -> tuple:
        out: list = [0] * len(self.gs.genes)
        for row, i in enumerate(self.cat):
            out[i] = bisect.bisect_right(self.cum[row], rng.random())
            if out[i] >= len(self.cum[row]):
                out[i] = len(self.cum[row]) - 1
        for k, i in enumerate(self.flt):
            out[i] = self.float_genes[k].from_unit(rng.gauss(self.mean[k], self.std[k]))
        return self.gs.canonical(out)

    def log_prob_now(self, genome: tuple) -> float:
        """Log-probability of one genome under the cached policy (no torch)."""
        act = self.gs.active(genome) if self.gs.conditional else None
        total = 0.0
        for row, i in enumerate(self.cat):
            if act is None or act[i]:
                c, v = self.cum[row], int(genome[i])
                total += math.log(max(c[v] - (c[v - 1] if v else 0.0), 1e-300))
        for k, i in enumerate(self.flt):
            if act is None or act[i]:
                z = (self.float_genes[k].unit(genome[i]) - self.mean[k]) / self.std[k]
                total += -0.5 * z * z - math.log(self.std[k]) - 0.5 * math.log(2 * math.pi)
        return total

    def probabilities(self, gene: int) -> list[float]:
        """The current candidate probabilities of categorical gene ``gene``."""
        row = self.cat.index(gene)
        c = self.cum[row]
        return [c[0]] + [b - a for a, b in zip(c, c[1:])]

    # ---- log-probabilities (torch) ------------------------------------------------
    def encode(self, genomes: Sequence[tuple]):
        """Index, activity and float tensors of a batch of genomes."""
        gs = self.gs
        idx, act_c, xs, act_f = [], [], [], []
        for g in genomes:
            act = gs.active(g) if gs.conditional else None
            idx.append([int(g[i]) for i in self.cat])
            act_c.append([1.0 if act is None or act[i] else 0.0 for i in self.cat])
            if self.flt:
                xs.append([gene.unit(g[i]) for i, gene in zip(self.flt, self.float_genes)])
                act_f.append([1.0 if act is None or act[i] else 0.0 for i in self.flt])
        enc = [torch.tensor(idx, dtype=torch.long), torch.tensor(act_c)]
        if self.flt:
            enc += [torch.tensor(xs), torch.tensor(act_f)]
        return enc

    def log_prob(self, enc):
        """Log-probability of each encoded genome (active genes only), and the entropy."""
        logp_all = torch.log_softmax(self.logits + self.mask, dim=1)
        rows = torch.arange(len(self.cat))
        idx, act = enc[0], enc[1]
        logp = (logp_all[rows, idx] * act).sum(1) if self.cat else torch.zeros(len(idx))
        p = logp_all.exp()
        entropy = -(p * logp_all).sum()
        if self.flt:
            xs, act_f = enc[2], enc[3]
            mean = torch.sigmoid(self.mu)
            std = self.log_std.exp()
            lp = -0.5 * ((xs - mean) / std) ** 2 - self.log_std - 0.5 * math.log(2 * math.pi)
            logp = logp + (lp * act_f).sum(1)
            entropy = entropy + (self.log_std + 0.5 * math.log(2 * math.pi * math.e)).sum()
        return logp, entropy

    def step(self, loss) -> None:
        self.opt.zero_grad()
        loss.backward()
        self.opt.step()
        if self.flt:
            with torch.no_grad():
                self.log_std.clamp_(math.log(1e-3), math.log(1.0))
        self.refresh()


class _Controller(Algorithm):
    """Shared machinery: the policy, reward baseline and normalization."""

    lr: float = 0.01
    entropy: float = 0.0
    momentum: float = 0.9     # of the moving-average baseline
    normalize: bool = True    # divide advantages by a running reward std
    init_std: float = 0.25    # initial std of float genes, in units of their range
    redraws: int = 100        # samples drawn while one repeats a known genome
    weights: list[float] | None = None   # a tuple reward's scalarization (None: its first entry)

    def _start(self) -> None:
        self.policy = _Policy(self.genome_spec, self.lr, self.init_std)
        self._baseline: float | None = None
        self._var = 0.0            # the reward variance, once _baseline is set
        self._worst = math.inf
        self._known: set = set()   # genomes proposed or told so far

    def _ask(self):
        return self._sample_new()

    def _sample_new(self) -> tuple:
        """A policy sample this controller has not proposed before, when one is found.

        Redraws up to ``redraws`` times, then changes random genes of the last
        draw uniformly. A converged policy thus keeps proposing new cells
        instead of cells the search has already evaluated.
        """
        known = self._known
        for _ in range(self.redraws + 1):
            genome = self.policy.sample(self._rng)
            if genome not in known:
                break
        else:
            genome = self._perturb(genome)
        known.add(genome)
        return genome

    def _perturb(self, genome: tuple) -> tuple:
        out = genome
        for _ in range(4 * len(genome)):
            out = self.mutate(out)
            if out not in self._known:
                return out
        return out

    def probabilities(self, gene: int | str = 0) -> list[float]:
        """The policy's current candidate probabilities for a categorical gene (index or name)."""
        names = self.genome_spec.names
        if isinstance(gene, str):
            if gene not in names:
                raise KeyError(f"no decision named {gene!r}; decisions: {', '.join(names)}.")
            gene = names.index(gene)
        if gene not in self.policy.cat:
            raise ValueError(f"gene {gene} ({names[gene]!r}) is not categorical; "
                             "a float gene's policy is `policy.mean` / `policy.std`.")
        return self.policy.probabilities(gene)

    def _reward(self, genome: tuple, reward) -> float | None:
        """A float reward; a failed trial counts as the worst seen so far (None if none yet)."""
        self._known.add(genome)
        if reward is None:
            return self._worst if self._worst < math.inf else None
        if isinstance(reward, tuple) and self.weights is not None:
            if len(self.weights) != len(reward):
                raise ValueError(f"{type(self).__name__}(weights={list(self.weights)}) has "
                                 f"{len(self.weights)} weights for a reward of {len(reward)} "
                                 "objectives; give one weight per objective.")
            r = float(sum(w * float(x) for w, x in zip(self.weights, reward)))
        else:
            r = scalar(reward)
        self._worst = min(self._worst, r)
        return r

    def _advantage(self, r: float) -> float:
        """Updates the moving-average baseline and reward variance; returns r's advantage."""
        m = self.momentum
        if self._baseline is None:
            self._baseline, self._var = r, 0.0
        else:
            d = r - self._baseline
            self._baseline += (1 - m) * d
            self._var = m * (self._var + (1 - m) * d * d)
        adv = r - self._baseline
        if self.normalize:
            adv /= math.sqrt(self._var) + 1e-8 if self._var > 0 else 1.0
        return adv


@register("reinforce")
class Reinforce(_Controller):
    """REINFORCE with a moving-average baseline, one Adam step per feedback.

    The NAS-Bench-201 baseline (Dong & Yang 2020): independent logits per
    decision, Adam, baseline = moving average of rewards with momentum 0.9,
    no entropy bonus (``entropy=0``). NAS-Bench-201 uses learning rate 0.01
    on raw accuracies; with normalized advantages 0.05 is better on the
    benchmark (``benchmarks/nb201_search.py``: 93.92 vs 93.86 test accuracy at
    100 queries, 94.34 vs 94.11 at 300, 30 seeds).
    """

    lr: float = 0.05

    def _tell(self, genome, reward):
        r = self._reward(genome, reward)
        if r is None:
            return
        adv = self._advantage(r)
        if adv == 0.0 and not self.entropy:
            return
        with _one_thread():
            logp, ent = self.policy.log_prob(self.policy.encode([genome]))
            self.policy.step(-adv * logp.sum() - self.entropy * ent)


@register("ppo")
class PPO(_Controller):
    """Proximal policy optimization (Schulman et al. 2017) as in PyGlove's paper.

    Feedback is collected into batches of ``batch_size``; each batch is used
    for ``epochs`` Adam steps on the clipped surrogate objective (clip
    ``clip``) plus an entropy bonus. Advantages are reward minus the moving
    average baseline, normalized. The log-probability a proposal had when it
    was made is kept until its feedback arrives (asynchronous workers).

    Defaults tuned on NAS-Bench-201 (30 seeds, test accuracy at 100 / 300
    queries): batch 3, 2 epochs, lr 0.2 gives 94.12 / 94.35; batch 10,
    4 epochs, lr 0.05 gives 93.95 / 94.35.
    """

    batch_size: int = 3
    epochs: int = 2
    clip: float = 0.2
    lr: float = 0.2
    entropy: float = 0.01

    def _start(self) -> None:
        super()._start()
        self._old: dict[tuple, list] = {}     # genome -> old log-probs of outstanding proposals
        self._batch: list[tuple] = []         # (genome, advantage, old log-prob)

    def _ask(self):
        genome = self._sample_new()
        self._old.setdefault(genome, []).append(self.policy.log_prob_now(genome))
        return genome

    def _tell(self, genome, reward):
        olds = self._old.get(genome)
        old = olds.pop(0) if olds else None
        if olds is not None and not olds:
            del self._old[genome]
        r = self._reward(genome, reward)
        if r is None:
            return
        self._batch.append((genome, self._advantage(r), old))
        if len(self._batch) >= self.batch_size:
            self._update()

    def _update(self) -> None:
        with _one_thread():
            self._ppo_steps()

    def _ppo_steps(self) -> None:
        genomes = [b[0] for b in self._batch]
        adv = torch.tensor([b[1] for b in self._batch])
        enc = self.policy.encode(genomes)
        with torch.no_grad():
            now, _ = self.policy.log_prob(enc)
        old_logp = torch.tensor([now[k].item() if b[2] is None else b[2]
                                 for k, b in enumerate(self._batch)])
        self._batch = []
        for _ in range(self.epochs):
            logp, ent = self.policy.log_prob(enc)
            ratio = torch.exp(logp - old_logp)
            surr = torch.min(ratio * adv, ratio.clamp(1 - self.clip, 1 + self.clip) * adv)
            self.policy.step(-surr.mean() - self.entropy * ent)
