"""Task: data, loss, training recipe and metric — the evaluator every algorithm understands.

A Task trains the module of an architecture and returns its metrics
(``valid_acc`` in percent, ``train_loss``, ``params_M``, ``seconds``). It is a
plain, picklable settings object: data is named (``dataset="cifar10"``) and
loaded lazily in whichever process runs the trial, or given as tensors.

Example::

    task = sn.Task.cifar10(epochs=1, batch_size=128)
    metrics = task(space.sample(seed=0))           # trains a real model
    faster = task.with_(epochs=1, max_batches=5)   # a changed copy
    result = sn.search(space, sn.algorithms.Random(), task, budget=4, objective="valid_acc")
"""
from __future__ import annotations

import math
import time
from typing import Any, Callable, Iterator

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
        from torch import nn

        from symnas.outputs import logits
        torch.manual_seed(seed)
        dev = self.torch_device
        model.to(dev).train()
        params = [p for p in model.parameters() if p.requires_grad]
        opt = torch.optim.SGD(params, lr=self.lr, momentum=self.momentum,
                              weight_decay=self.weight_decay, nesterov=self.nesterov and self.momentum > 0)
        per_epoch = math.ceil(len(self.splits()["train"][1]) / self.batch_size)
        if self.max_batches is not None:
            per_epoch = min(per_epoch, self.max_batches)
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, max(1, self.epochs * per_epoch))
        loss_fn = nn.CrossEntropyLoss()
        loss_sum, count = 0.0, 0
        for epoch in range(self.epochs):
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
        return loss_sum / max(count, 1)

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

    def __call__(self, arch: Any, seed: int | None = None) -> dict:
        """Builds, trains and scores one architecture (an Arch, or an nn.Module)."""
        model = arch.build() if hasattr(arch, "build") else arch
        t0 = time.perf_counter()
        loss = self.train(model, seed or 0)
        if not math.isfinite(loss):
            raise FloatingPointError(f"training diverged (loss {loss}); lower lr={self.lr}.")
        acc = self.accuracy(model, "valid")
        return {self.metric: acc, "train_loss": loss,
                "params_M": sum(p.numel() for p in model.parameters()) / 1e6,
                "train_seconds": time.perf_counter() - t0}
