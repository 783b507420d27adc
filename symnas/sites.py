"""Where in the user's code each module of a built program was created.

A module's *site* is the chain of the user's source lines (file, line) that
were running when its first parameter was registered: the line that called
``nn.Conv2d(...)`` and the lines that called the code around it (a stage's
loop, a helper's call). Two modules built by the same lines, in the same
loop, have the same site; a stage's blocks and a final layer of the same shape
written on another line do not. The aligner (:mod:`symnas.elastic`) uses sites
to break ties between modules of identical structure, so a shorter first stage
in a flat ``nn.Sequential`` keeps the weights of the layers written after it.

Frames of torch, PyGlove, the standard library and symnas's core are left out. The
site is kept on the module (``_symnas_site``), so a copied supernet aligns as the
original does.

>>> import torch
>>> with recording():
...     layers = [torch.nn.Linear(2, 2) for _ in range(2)]     # one line, twice
...     final = torch.nn.Linear(2, 2)                          # another line
>>> site(layers[0]) == site(layers[1]) != site(final)
True
"""
from __future__ import annotations

import contextlib
import os
import sys
import sysconfig
from collections.abc import Iterator
from types import FrameType

import pyglove as pg
import torch
from torch import nn

__all__ = ["recording", "site"]

Site = tuple[tuple[str, int], ...]

_SKIP = tuple(os.path.dirname(p) + os.sep for p in (torch.__file__, pg.__file__)) + \
    (sysconfig.get_paths()["stdlib"] + os.sep, "<frozen")
_CORE = os.path.dirname(os.path.abspath(__file__))


_ATTR = "_symnas_site"                 # kept on the module: deepcopy and pickle keep it
_USER: dict[str, bool] = {}
_STOP: list = []                       # the frame that opened the recording: walk up to it


def _user(filename: str) -> bool:
    hit = _USER.get(filename)
    if hit is None:
        hit = _USER[filename] = not filename.startswith(_SKIP) and os.path.dirname(filename) != _CORE
    return hit


def _record(module: nn.Module, name: str, param: object) -> None:
    if _ATTR in module.__dict__:
        return
    frames = []
    f: FrameType | None = sys._getframe(1)
    stop = _STOP[-1] if _STOP else None
    while f is not None and f is not stop:
        if _user(f.f_code.co_filename):
            frames.append((f.f_code.co_filename, f.f_lineno))
        f = f.f_back
    module.__dict__[_ATTR] = tuple(reversed(frames))


@contextlib.contextmanager
def recording() -> Iterator[None]:
    """Within the block, every module that registers a parameter records its site (the
    lines below the caller of the block)."""
    handle = nn.modules.module.register_module_parameter_registration_hook(_record)
    _STOP.append(sys._getframe(2))
    try:
        yield
    finally:
        _STOP.pop()
        handle.remove()


def site(module: nn.Module) -> Site | None:
    """The site ``module`` was created at (``None``: not recorded, or no parameter)."""
    return module.__dict__.get(_ATTR)
