"""ArchFile: writes an architecture in ``sn.load``'s format (pyglove-free).

The file format (:data:`FORMAT`): the DNA, genome, readable decisions and the
materialized program as JSON; for traced spaces the function's import name
(``"traced"``); and ``"modules"``, ``{"__main__": "/abs/path/script.py"}``,
when the program's classes or the traced function live in the script that
ran. It is read by :mod:`symnas.saved`. :class:`symnas.arch.Arch` and
:class:`symnas.records.StoredArch` are its two kinds; this module imports
neither PyGlove nor torch, so reading a store (``symnas show``) needs neither.

Example::

    >>> class Fixed(ArchFile):
    ...     genome = (1, 0)
    ...     decisions = {"width": 64, "act": "ReLU"}
    ...     def program_json(self): return {"width": 64}
    ...     def _dna_json(self): return [1, 0]
    >>> sorted(Fixed().to_json())
    ['decisions', 'dna', 'format', 'genome', 'program']
"""
from __future__ import annotations

import json
import os
from typing import Any

from symnas import names

FORMAT = "symnas.arch/1"

__all__ = ["FORMAT", "ArchFile"]


class ArchFile:
    """Writes an architecture in :func:`load`'s format; subclasses give its parts.

    The parts: ``genome``, ``decisions``, :meth:`program_json`, :meth:`_dna_json`,
    :meth:`_traced_name` (and :meth:`_traced_fn` when the function is at hand).
    """

    __slots__ = ()
    genome: Any

    @property
    def decisions(self) -> dict:
        raise NotImplementedError

    def program_json(self) -> Any:
        raise NotImplementedError

    def _dna_json(self) -> Any:
        raise NotImplementedError

    def _traced_name(self) -> str | None:
        return None

    def to_json(self, **extra: Any) -> dict:
        """The file's content. Refuses a traced function that no other process could import."""
        traced = self._traced_name()
        if traced is not None and not names.importable(traced):
            raise ValueError(
                f"cannot save an architecture of sn.trace({traced.partition(':')[2]}): a lambda "
                "or local function cannot be imported by the process that loads the file. "
                "Define it with def at module level and trace that (def make_net(): ...; "
                "sn.trace(make_net)), or keep the Space and rebuild with space.build(arch.genome).")
        program = self.program_json()
        data = {"format": FORMAT, "dna": self._dna_json(), "genome": list(self.genome),
                "decisions": self.decisions, "program": program}
        if traced is not None:
            data["traced"] = traced
        files = self._module_files(traced, program)
        if files:
            data["modules"] = files
        data.update(extra)
        return data

    def _module_files(self, traced: str | None, program: Any) -> dict[str, str]:
        """``{"__main__": script path}`` when the program or traced function lives in the script."""
        if traced is not None:
            module, _, qualname = traced.partition(":")
            if module != names.MAIN:
                return {}
            fn = self._traced_fn()
            file = (names.main_file(fn) if fn is not None
                    else names.main_file_for_names({f"{module}.{qualname}"}))
        else:
            file = names.main_file_for_names(names.main_names(program))
        return {names.MAIN: file} if file else {}

    def _traced_fn(self) -> Any:
        """The traced function itself, when this process has it (else the name is used)."""
        return None

    def save(self, path: str | os.PathLike, **extra: Any) -> str:
        """Writes the architecture as JSON that :func:`symnas.load` rebuilds."""
        data = self.to_json(**extra)       # first: a refused architecture writes no file
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        with open(path, "w") as f:
            json.dump(data, f, indent=1, default=str)
        return str(path)
