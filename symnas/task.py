"""Task: data, loss, training recipe and metric — the evaluator every algorithm understands.

A Task trains the module of an architecture and returns its metrics
(``valid_acc`` in percent, ``train_loss``, ``params_M``, ``seconds``). It is a
plain, picklable settings object: data is named (``dataset="cifar10"``) and
loaded lazily in whichever process runs the trial, or given as tensors.

Multi-fidelity. ``epochs`` is the full training budget: the learning-rate
schedule (cosine) spans ``epochs`` epochs whatever a trial trains, so
``task(arch, seed=s, epochs=3)`` trains the first 3 epochs of that schedule.
A later call for the same architecture and seed with more epochs continues
from the checkpoint the earlier one left (weights, optimizer, schedule, RNG),
so training to 3 and then to 9 epochs gives exactly the weights of training to
9 at once. Checkpoints are kept in this process (the last
:data:`MEMORY_CHECKPOINTS`) or, with ``checkpoints="folder"``, in files any
process can read; one that reached the end of the schedule is not kept
(nothing can continue it). With ``report=`` the validation accuracy is reported after
every epoch (``report(metrics, epoch)``), which is what pruners judge.

Example::

    task = sn.Task.cifar10(epochs=1, batch_size=128)
    metrics = task(space.sample(seed=0))           # trains a real model
    faster = task.with_(epochs=1, max_batches=5)   # a changed copy
    result = sn.search(space, sn.algorithms.Random(), task, budget=4, objective="valid_acc")
    mf = sn.search(space, "hyperband", task.with_(epochs=9), budget=4, fidelity=[1, 3, 9])
"""
from __future__ import annotations

import collections
import copy
import hashlib
import json
import math
import os
import time
from typing import Any, Callable, ClassVar, Iterator

import attrs

_DATASETS: dict[str, Callable] = {}


def _cifar10_splits(data_dir: str | None, valid_size: int):
    from symnas.datasets import cifar10
    x, y = cifar10("train", data_dir)
    n = len(y) - valid_size
    xt, yt = cifar10("test", data_dir)
    return {"train": (x[:n], y[:n]), "valid": (x[n:], y[n:]), "test": (xt, yt)}


_DATASETS["cifar10"] = _cifar10_splits
_CACHE: dict[tuple, dict] = {}
MEMORY_CHECKPOINTS = 32           # training checkpoints kept in this process (least recent dropped)
_CHECKPOINTS: collections.OrderedDict[str, dict] = collections.OrderedDict()


@attrs.define(frozen=True, eq=False)
class Task:
    """Data + loss + training recipe + metric; callable as an evaluator."""

    dataset: str | None = "cifar10"
    data_dir: str | None = None
    valid_size: int = 1017                      # held out from the training images
    data: dict | None = attrs.field(default=None, repr=False)  # {'train': (x, y), 'valid': (x, y)}
    num_classes: int = 10
    epochs: int = 1
    batch_size: int = 96
    lr: float = 0.05
    momentum: float = 0.9
    weight_decay: float = 5e-4
    nesterov: bool = True
    grad_clip: float | None = 5.0
    max_batches: int | None = None              # cap per epoch (tiny CI budgets)
    eval_batch_size: int = 512
    device: str = "cpu"                         # 'cpu', 'cuda', 'cuda:1' or 'auto'
    metric: str = "valid_acc"
    checkpoints: str | None = None              # folder of training checkpoints (None: in memory)
    resumable: ClassVar[bool] = True            # a later rung continues an earlier one's training

    # ---- construction ----------------------------------------------------------------
    @classmethod
    def cifar10(cls, epochs: int = 1, **kwargs: Any) -> Task:
        """Real CIFAR-10 (the subset named by ``SYMNAS_DATA``): 4,068 train / 1,017 valid images."""
        return cls(dataset="cifar10", epochs=epochs, **kwargs)

    def with_(self, **changes: Any) -> Task:
        """A copy with some settings changed: ``task.with_(lr=0.1)``."""
        return attrs.evolve(self, **changes)

    # ---- data ----------------------------------------------------------------------
    def splits(self) -> dict:
        """``{'train': (x, y), 'valid': (x, y), ...}`` as CPU tensors (cached per process)."""
        if self.data is not None:
            return self.data
        if self.dataset not in _DATASETS:
            raise ValueError(f"unknown dataset {self.dataset!r}; known: {sorted(_DATASETS)}, "
                             "or pass data={'train': (x, y), 'valid': (x, y)}.")
        key = (self.dataset, self.data_dir, self.valid_size)
        if key not in _CACHE:
            _CACHE[key] = _DATASETS[self.dataset](self.data_dir, self.valid_size)
        return _CACHE[key]

    @property
    def torch_device(self):
        import torch
        if self.device == "auto":
            return torch.device("cuda" if torch.cuda.is_available() else "cpu")
        dev = torch.device(self.device)
        if dev.type == "cuda" and not torch.cuda.is_available():
            raise RuntimeError(f"Task(device={self.device!r}) but CUDA is not available here; "
                               "use device='cpu' or 'auto'.")
        return dev

    def batches(self, split: str = "train", batch_size: int | None = None, *,
                shuffle: bool = True, seed: int = 0, max_batches: int | None = None) -> Iterator:
        """Yields ``(x, y)`` batches of a split on the Task's device."""
        import torch
        x, y = self.splits()[split]
        bs = batch_size or self.batch_size
        order = torch.randperm(len(y), generator=torch.Generator().manual_seed(seed)) \
            if shuffle else torch.arange(len(y))
        dev = self.torch_device
        n = math.ceil(len(y) / bs)
        if max_batches is not None:
            n = min(n, max_batches)
        for b in range(n):
            idx = order[b * bs:(b + 1) * bs]
            yield x[idx].to(dev, non_blocking=True), y[idx].to(dev, non_blocking=True)

    def batch(self, n: int = 64, seed: int = 0, split: str = "train"):
        """One seeded batch of ``n`` real examples on the Task's device (for proxies)."""
        return next(self.batches(split, n, shuffle=True, seed=seed))

    # ---- training and evaluation --------------------------------------------------
    def train(self, model, seed: int = 0) -> float:
        """Trains ``model`` in place with the recipe (SGD, cosine); returns the last epoch's loss."""
        import torch
        torch.manual_seed(seed)
        return self._fit(model, seed, self.epochs)[0]

    def _per_epoch(self) -> int:
        per_epoch = math.ceil(len(self.splits()["train"][1]) / self.batch_size)
        return per_epoch if self.max_batches is None else min(per_epoch, self.max_batches)

    def _fit(self, model, seed: int, upto: int, resume: dict | None = None,
             after_epoch: Callable[[int, float], None] | None = None) -> tuple[float, dict]:
        """Trains epochs ``[start, upto)`` of the ``self.epochs``-epoch schedule.

        ``resume`` is a checkpoint of the same architecture and seed (its
        ``epoch`` is the start); returns the last epoch's loss and the
        checkpoint after epoch ``upto``.
        """
        import torch
        from torch import nn

        from symnas.outputs import logits
        dev = self.torch_device
        model.to(dev).train()
        params = [p for p in model.parameters() if p.requires_grad]
        opt = torch.optim.SGD(params, lr=self.lr, momentum=self.momentum,
                              weight_decay=self.weight_decay, nesterov=self.nesterov and self.momentum > 0)
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, max(1, self.epochs * self._per_epoch()))
        start, loss_avg = 0, math.nan
        if resume is not None:
            model.load_state_dict(resume["model"])
            opt.load_state_dict(resume["opt"])
            sched.load_state_dict(resume["sched"])
            torch.set_rng_state(resume["rng"])
            start, loss_avg = int(resume["epoch"]), float(resume["loss"])
        loss_fn = nn.CrossEntropyLoss()
        for epoch in range(start, upto):
            model.train()
            loss_sum, count = 0.0, 0
            for x, y in self.batches("train", seed=seed * 1000 + epoch, max_batches=self.max_batches):
                loss = loss_fn(logits(model(x), self.num_classes), y)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                if self.grad_clip:
                    nn.utils.clip_grad_norm_(params, self.grad_clip)
                opt.step()
                sched.step()
                loss_sum += float(loss.detach()) * len(y)
                count += len(y)
            loss_avg = loss_sum / max(count, 1)
            if after_epoch is not None:
                after_epoch(epoch + 1, loss_avg)
        state = {"epoch": upto, "loss": loss_avg, "rng": torch.get_rng_state(),
                 "model": {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()},
                 "opt": copy.deepcopy(opt.state_dict()), "sched": sched.state_dict()}
        return loss_avg, state

    def accuracy(self, model, split: str = "valid") -> float:
        """Top-1 accuracy in percent of ``model`` on a split."""
        import torch

        from symnas.outputs import logits
        model.to(self.torch_device).eval()
        correct = total = 0
        with torch.no_grad():
            for x, y in self.batches(split, self.eval_batch_size, shuffle=False):
                out = logits(model(x), self.num_classes)
                correct += int((out.argmax(1) == y).sum())
                total += len(y)
        return 100.0 * correct / max(total, 1)

    # ---- checkpoints ------------------------------------------------------------
    def checkpoint_key(self, arch: Any, model: Any, seed: int) -> str | None:
        """What identifies one architecture's training under this recipe and seed (None: an
        ``nn.Module`` passed in, which has no architecture to find it by)."""
        if not hasattr(arch, "genome") or not hasattr(arch, "space"):
            return None
        recipe = {k: v for k, v in attrs.asdict(self, recurse=False).items()
                  if k not in ("data", "checkpoints", "device", "eval_batch_size")}
        if self.data is not None:
            recipe["data"] = id(self.data)
        shapes = [(k, list(v.shape)) for k, v in model.state_dict().items()]
        text = json.dumps([arch.space.fingerprint(), list(arch.genome), seed, recipe,
                           type(model).__qualname__, shapes], default=str, sort_keys=True)
        return hashlib.sha1(text.encode()).hexdigest()[:24]

    def load_checkpoint(self, key: str, upto: int) -> dict | None:
        """The latest checkpoint of ``key`` at or before epoch ``upto``, if one is kept."""
        state = _CHECKPOINTS.get(key)
        if state is not None:
            _CHECKPOINTS.move_to_end(key)
        elif self.checkpoints is not None:
            import torch
            path = os.path.join(self.checkpoints, f"{key}.pt")
            if os.path.exists(path):
                try:
                    state = torch.load(path, map_location="cpu", weights_only=True)
                except Exception:  # noqa: BLE001 - a damaged checkpoint: train from the start
                    state = None
        if state is None or int(state["epoch"]) > upto:
            return None
        return copy.deepcopy(state)     # training must not change the kept checkpoint

    def save_checkpoint(self, key: str, state: dict) -> None:
        """Keeps a checkpoint in this process and, with ``checkpoints=``, in its folder."""
        _CHECKPOINTS[key] = state
        _CHECKPOINTS.move_to_end(key)
        while len(_CHECKPOINTS) > MEMORY_CHECKPOINTS:
            _CHECKPOINTS.popitem(last=False)
        if self.checkpoints is not None:
            import torch
            os.makedirs(self.checkpoints, exist_ok=True)
            path = os.path.join(self.checkpoints, f"{key}.pt")
            tmp = f"{path}.{os.getpid()}.tmp"
            torch.save(state, tmp)
            os.replace(tmp, path)

    def check_fidelity(self, levels: Any) -> None:
        """Refuses fidelity levels (epochs) this Task's schedule does not hold, before a search."""
        bad = [v for v in levels if not float(v).is_integer() or not 1 <= v <= self.epochs]
        if bad:
            raise ValueError(f"fidelity={list(levels)} asks this Task for {bad} epochs, but its "
                             f"schedule is 1..{self.epochs} whole epochs; use "
                             f"task.with_(epochs={int(max(levels))}) for a highest level of "
                             f"{max(levels)}.")

    def __call__(self, arch: Any, seed: int | None = None, epochs: int | None = None,
                 report: Callable | None = None) -> dict:
        """Builds, trains and scores one architecture (an Arch, or an nn.Module).

        ``epochs`` (at most the Task's ``epochs``) trains that far along the
        schedule, continuing this architecture's checkpoint when one is kept;
        ``report`` gets the validation metrics after every epoch.
        """
        import torch
        seed = seed or 0
        upto = self.epochs if epochs is None else int(epochs)
        if not 1 <= upto <= self.epochs:
            raise ValueError(f"epochs={epochs} is outside this Task's schedule of 1..{self.epochs} "
                             f"epochs; raise Task(epochs=) to the highest fidelity ({epochs}).")
        if hasattr(arch, "build"):
            torch.manual_seed(seed)     # the same initial weights for every rung of this arch
            model = arch.build()
        else:
            model = arch
        t0 = time.perf_counter()
        key = self.checkpoint_key(arch, model, seed) if epochs is not None else None
        resume = self.load_checkpoint(key, upto) if key is not None else None
        seen: dict[str, Any] = {}

        def after_epoch(epoch: int, loss: float) -> None:
            seen.update(epoch=epoch, acc=self.accuracy(model, "valid"))
            if not math.isfinite(loss):
                raise FloatingPointError(f"training diverged (loss {loss}); lower lr={self.lr}.")
            assert report is not None
            report({self.metric: seen["acc"], "train_loss": loss, "epoch": epoch}, epoch)

        if resume is None:
            torch.manual_seed(seed)
        loss, state = self._fit(model, seed, upto, resume, after_epoch if report else None)
        if not math.isfinite(loss):
            raise FloatingPointError(f"training diverged (loss {loss}); lower lr={self.lr}.")
        if key is not None and upto < self.epochs:   # at the end of the schedule nothing continues
            self.save_checkpoint(key, state)
        acc = seen["acc"] if seen.get("epoch") == upto else self.accuracy(model, "valid")
        out = {self.metric: acc, "train_loss": loss,
               "params_M": sum(p.numel() for p in model.parameters()) / 1e6,
               "train_seconds": time.perf_counter() - t0}
        if epochs is not None:      # what was trained: the search charges these epochs
            out["epochs"], out["resumed_from"] = upto, int(resume["epoch"]) if resume else 0
        return out
