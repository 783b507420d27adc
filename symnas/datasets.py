"""The real CIFAR-10 subset as tensors (from the data folder setting).

Images are float32 NCHW, normalized with the CIFAR-10 channel mean/std;
labels are int64. Loaded once per process and cached.

Example::

    from symnas.datasets import cifar10, cifar10_batch
    x, y = cifar10("train")            # (5085, 3, 32, 32), (5085,)
    xb, yb = cifar10_batch(64, seed=0)  # a seeded batch of real training images
"""
from __future__ import annotations

import functools
import os

import numpy as np

from symnas.data import data_path

MEAN = (0.4914, 0.4822, 0.4465)
STD = (0.2470, 0.2435, 0.2616)
CLASSES = 10


@functools.lru_cache(maxsize=4)
def _load(data_dir: str | None):
    with np.load(data_path("cifar10/cifar10_subset.npz", data_dir)) as z:
        return {k: z[k] for k in z.files}


@functools.lru_cache(maxsize=8)
def _tensors(split: str, data_dir: str | None):
    """The split's normalized image and label tensors, built once (callers get copies)."""
    import torch
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}.")
    z = _load(data_dir)
    x = torch.from_numpy(z[f"{split}_images"]).permute(0, 3, 1, 2).float().div_(255.0)
    mean = torch.tensor(MEAN).view(1, 3, 1, 1)
    std = torch.tensor(STD).view(1, 3, 1, 1)
    x = (x - mean) / std
    y = torch.from_numpy(z[f"{split}_labels"].astype(np.int64))
    return x.contiguous(), y


def cifar10(split: str = "train", data_dir: str | os.PathLike | None = None):
    """``(images, labels)`` tensors of the subset's ``train`` (5,085) or ``test`` (1,017) split."""
    x, y = _tensors(split, None if data_dir is None else str(data_dir))
    return x.clone(), y.clone()


def cifar10_batch(n: int = 64, seed: int = 0, split: str = "train",
                  data_dir: str | os.PathLike | None = None):
    """A seeded batch of ``n`` real images and labels."""
    import torch
    x, y = _tensors(split, None if data_dir is None else str(data_dir))
    g = torch.Generator().manual_seed(seed)
    idx = torch.randperm(len(y), generator=g)[:n]
    return x[idx], y[idx]
