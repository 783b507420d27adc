"""Seeded work that leaves the caller's random state as it was.

``seeded(seed, *devices)`` forks the CPU generator (and the generators of the
CUDA ``devices`` named, e.g. where a model and its batch live), seeds the
forked ones, and restores them all on exit. Unlike ``torch.manual_seed`` inside
``torch.random.fork_rng(devices=[])`` it never reseeds a CUDA generator it did
not fork, so scoring a CPU model in a process that also trains on a GPU does
not reset that GPU's random stream.

>>> import torch
>>> before = torch.random.get_rng_state()
>>> with seeded(0):
...     a = torch.rand(2)
>>> with seeded(0):
...     b = torch.rand(2)
>>> torch.equal(a, b), torch.equal(before, torch.random.get_rng_state())
(True, True)
"""
from __future__ import annotations

import contextlib
from typing import Any, Iterator

import torch

__all__ = ["cuda_devices", "seeded"]


def cuda_devices(*items: Any) -> list[int]:
    """The CUDA device indices of ``items``: tensors, modules (their parameters), devices,
    or tuples/lists of them (a batch)."""
    found: set[int] = set()
    for item in items:
        if isinstance(item, (tuple, list)):
            found.update(cuda_devices(*item))
            continue
        if isinstance(item, torch.nn.Module):
            found.update(cuda_devices(*item.parameters(), *item.buffers()))
            continue
        device = item.device if isinstance(item, torch.Tensor) else item
        if isinstance(device, (str, torch.device)):
            device = torch.device(device)
            if device.type == "cuda":
                found.add(device.index if device.index is not None else torch.cuda.current_device())
    return sorted(found)


@contextlib.contextmanager
def seeded(seed: int, *devices: Any) -> Iterator[None]:
    """Within the block, the CPU generator and those of ``devices``' CUDA devices (see
    :func:`cuda_devices`) start from ``seed``; on exit every one is as it was."""
    cuda = cuda_devices(*devices)
    with torch.random.fork_rng(devices=cuda):
        torch.default_generator.manual_seed(int(seed))
        for index in cuda:
            torch.cuda.default_generators[index].manual_seed(int(seed))
        yield
