"""Where in the user's code each module of a built program was created.

A module's *site* is the chain of the user's source lines (function, line
within it) that were running when its first parameter was registered: the line that called
``nn.Conv2d(...)`` and the lines that called the code around it (a stage's
loop, a helper's call). Two modules built by the same lines, in the same
loop, have the same site; a stage's blocks and a final layer of the same shape
written on another line do not. The aligner (:mod:`symnas.elastic`) uses sites
to break ties between modules of identical structure, so a shorter first stage
in a flat ``nn.Sequential`` keeps the weights of the layers written after it.

Frames of torch, PyGlove, the standard library (not what is installed under it)
and symnas's core are left out; lines count from their function's first line, so
an edit elsewhere in the file keeps them. The
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
import site as _site
import sys
import sysconfig
import threading
from collections.abc import Iterator
from types import FrameType

import pyglove as pg
import torch
from torch import nn

__all__ = ["recording", "site"]

Site = tuple[tuple, ...]

_TORCH = tuple(os.path.dirname(p) + os.sep for p in (torch.__file__, pg.__file__))
_STDLIB = sysconfig.get_paths()["stdlib"] + os.sep
_INSTALLED = tuple({sysconfig.get_paths()[k] + os.sep for k in ("purelib", "platlib")} |
                   {p + os.sep for p in _site.getsitepackages()})
_CORE = os.path.dirname(os.path.abspath(__file__))
_ATTR = "_symnas_site"                 # kept on the module: deepcopy and pickle keep it
_USER: dict[str, bool] = {}
_LOCAL = threading.local()             # per thread: the frames that opened its recordings


def _user(filename: str) -> bool:
    hit = _USER.get(filename)
    if hit is None:
        hit = not filename.startswith(_TORCH) and os.path.dirname(filename) != _CORE and \
            not filename.startswith("<frozen") and \
            (not filename.startswith(_STDLIB) or filename.startswith(_INSTALLED))
        _USER[filename] = hit
    return hit


def _record(module: nn.Module, name: str, param: object) -> None:
    stops = getattr(_LOCAL, "stops", None)
    if not stops or _ATTR in module.__dict__:       # (another thread's recording: not ours)
        return
    chain = []
    f: FrameType | None = sys._getframe(1)
    while f is not None and f is not stops[-1]:
        if _user(f.f_code.co_filename):
            chain.append(f)
        f = f.f_back
    frames = []
    for f, outer in zip(chain, chain[1:] + [None]):
        code = f.f_code                # the line within its function: edits elsewhere keep it
        name = getattr(code, "co_qualname", code.co_name)         # (Python 3.10: co_name)
        entry: tuple = (name, f.f_lineno - code.co_firstlineno)
        if "<" in name and outer is not None:    # lambdas, comprehensions: where defined too
            entry += (code.co_firstlineno - outer.f_code.co_firstlineno,)
        frames.append(entry)
    module.__dict__[_ATTR] = tuple(reversed(frames))


@contextlib.contextmanager
def recording() -> Iterator[None]:
    """Within the block, every module this thread creates records its site."""
    stops = _LOCAL.__dict__.setdefault("stops", [])
    handle = nn.modules.module.register_module_parameter_registration_hook(_record)
    stops.append(sys._getframe(2).f_back)   # walk up to the caller of the block's caller
    try:
        yield
    finally:
        stops.pop()
        handle.remove()


def site(module: nn.Module) -> Site | None:
    """The site ``module`` was created at (``None``: not recorded, or no parameter)."""
    return module.__dict__.get(_ATTR)
