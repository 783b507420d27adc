"""Checkpoints of weight-sharing training, kept as a file beside the search's store.

A killed supernet training resumes from its last checkpoint, not from
scratch: the weights (architecture weights included), the optimizers and
schedulers, the decision states, the random generators and the position
(epoch, step) are written with :func:`torch.save` to a temporary file and moved
over the checkpoint with :func:`os.replace`, so a kill at any moment leaves the
previous checkpoint whole.

Where: the algorithm's ``checkpoint=`` path when given; else the session's
``checkpoint_path`` (:class:`symnas.protocols.Session`):
``<store file>.<experiment name>.ckpt`` when the search records to a SQLite
file (``sn.search(..., storage="runs/x.sqlite", name="spos")`` ->
``runs/x.sqlite.spos.ckpt``); an in-memory search keeps none. A checkpoint
whose space, settings or seed differ from the run's is ignored (and logged),
never loaded into the wrong supernet.

``begin(algorithm, space, task, session)`` starts a weight-sharing run with
its checkpoint: the Task check, the seed, the supernet on the task's device.

Example::

    ckpt = Checkpoint.for_session(session, algorithm, space, seed)
    state = ckpt.load() if ckpt else None            # None: start from scratch
    ckpt.save({"epoch": 3, "step": 0, "net": net.state_dict(), ...})
"""
from __future__ import annotations

import logging
import os
from typing import Any

import pyglove as pg
import torch

from symnas.protocols import Session
from symnas.task import Task

__all__ = ["Checkpoint", "checkpoint_path", "begin"]

logger = logging.getLogger("symnas")

#: settings that say where and how often to checkpoint (not part of a run's identity)
_NOT_IDENTITY = ("checkpoint", "checkpoint_every", "quiet")


def checkpoint_path(session: Session, setting: str | os.PathLike | None = None) -> str | None:
    """The checkpoint file of a search: ``setting`` when given, else the session's
    :attr:`~symnas.protocols.Session.checkpoint_path` (None: keep no checkpoint)."""
    if setting:
        return os.fspath(setting)
    path = session.checkpoint_path
    return None if path is None else os.fspath(path)


def _identity(algorithm: Any, space: Any, seed: int) -> dict:
    settings = pg.to_json(algorithm) if isinstance(algorithm, pg.Symbolic) else repr(algorithm)
    if isinstance(settings, dict):
        settings = {k: v for k, v in settings.items() if k not in _NOT_IDENTITY}
    return {"space": space.fingerprint(), "settings": repr(settings), "seed": int(seed)}


class Checkpoint:
    """One run's checkpoint file (see the module docstring)."""

    def __init__(self, path: str, identity: dict):
        self.path = path
        self.identity = identity

    @classmethod
    def for_session(cls, session: Session, algorithm: Any, space: Any, seed: int) -> Checkpoint | None:
        path = checkpoint_path(session, getattr(algorithm, "checkpoint", None))
        return None if path is None else cls(path, _identity(algorithm, space, seed))

    def load(self) -> dict | None:
        """The saved state, or None when there is none for this run."""
        if not os.path.exists(self.path):
            return None
        try:
            data = torch.load(self.path, map_location="cpu", weights_only=True)
        except Exception as e:  # noqa: BLE001 - a damaged file is reported and ignored
            logger.warning("checkpoint %s cannot be read (%s); starting from scratch", self.path, e)
            return None
        if data.get("identity") != self.identity:
            logger.warning("checkpoint %s belongs to another run (space, settings or seed differ); "
                           "ignoring it", self.path)
            return None
        return data

    def save(self, state: dict) -> None:
        """Writes ``state`` atomically (a temporary file moved over the checkpoint)."""
        os.makedirs(os.path.dirname(os.path.abspath(self.path)), exist_ok=True)
        tmp = f"{self.path}.tmp{os.getpid()}"
        torch.save({**state, "identity": self.identity}, tmp)
        os.replace(tmp, self.path)

    def __repr__(self) -> str:
        return f"Checkpoint({self.path!r})"


def begin(algorithm: Any, space: Any, task: Any, session: Session) -> tuple[Any, int, Checkpoint | None]:
    """The start of a weight-sharing run: ``(supernet, seed, checkpoint)``.

    Checks that ``task`` is a :class:`~symnas.task.Task` (a supernet needs its
    data and device), takes the algorithm's ``seed`` when set, else the search's,
    else 0, builds ``algorithm.supernet(space)`` under that seed on the task's
    device, and finds the run's checkpoint (None: keep none).
    """
    if not isinstance(task, Task):
        raise TypeError(f"{type(algorithm).__name__} trains a supernet and needs a sn.Task as "
                        f"evaluator (data, device), got {type(task).__name__}; e.g. sn.Task.cifar10().")
    seed = algorithm.seed if algorithm.seed is not None else session.seed
    seed = 0 if seed is None else int(seed)
    torch.manual_seed(seed)
    net = algorithm.supernet(space).to(task.torch_device)
    return net, seed, Checkpoint.for_session(session, algorithm, space, seed)
