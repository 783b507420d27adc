"""``sn.load``: an architecture file read back, rebuilt in this process or any other.

Reads what :class:`symnas.arch.ArchFile` writes (``Arch.save``,
``Trial.save``, ``symnas export``). The program's classes are imported by
name; classes and traced functions defined in a script (``__main__``) are
imported from the script file recorded at save time (its definitions only,
see :func:`symnas.names.script_module`). When that is impossible (a
notebook, a moved file, a renamed class), the error says in one line to pass
the space: ``sn.load(path, space=space)``. Like a pickle, an architecture
file names code to import and run: load only files you trust.

Example::

    arch = sn.load("best.json")
    arch.decisions                        # {'width': 64, ...}
    model = arch.build()                  # the same module, fresh weights
    model = sn.load("best.json", space=space).build()   # rebuilt from a Space you have
"""
from __future__ import annotations

import json
import os
from typing import Any

import pyglove as pg

from symnas import names
from symnas.arch import FORMAT
from symnas.hyper import to_module
from symnas.space import Space

__all__ = ["LoadedArch", "load"]


class LoadedArch:
    """An architecture read back from JSON: ``build()`` rebuilds the same module.

    The program's classes must be importable (``@sn.searchable`` classes are
    imported by their module path, or from the recorded script file when they
    were defined in ``__main__``). Traced architectures need their function to
    be importable the same way, or ``space=`` given to :func:`load`.
    """

    def __init__(self, data: dict, space: Any = None, path: str | None = None):
        self.data = data
        self.space = space
        self.path = path
        self.metrics: dict = data.get("metrics", {})

    @property
    def decisions(self) -> dict:
        return self.data.get("decisions", {})

    @property
    def genome(self) -> tuple:
        return tuple(self.data["genome"])

    @property
    def dna(self) -> pg.DNA:
        return pg.from_json(self.data["dna"])

    @property
    def value(self) -> Any:
        if self.space is not None:
            return self.space.materialize(self.data["genome"])
        if "traced" in self.data:
            return self.data["program"]
        return self._rebuilding(self._program)

    def build(self) -> Any:
        """A fresh ``nn.Module`` of this architecture (the user's own classes)."""
        if self.space is not None:
            return self.space.build(self.data["genome"])
        if "traced" in self.data:
            self.space = self._rebuilding(self._traced_space)
            return self.space.build(self.data["genome"])
        return to_module(self._rebuilding(self._program))

    # ---- rebuilding in this process -------------------------------------------------------
    @property
    def _files(self) -> dict[str, str]:
        return self.data.get("modules") or {}

    def _program(self) -> Any:
        program, main = self.data["program"], self._files.get(names.MAIN)
        if main is not None and not _is_this_script(main):
            program = names.rename_module(program, names.MAIN,
                                          names.script_module(main).__name__)
        return pg.from_json(program, auto_import=True)

    def _traced_space(self) -> Space:
        return Space.trace(names.import_name(self.data["traced"], self._files))

    def _rebuilding(self, step: Any) -> Any:
        """Runs ``step``; an error finding the program's code becomes the one-line advice."""
        try:
            return step()
        except (ImportError, AttributeError, FileNotFoundError, SyntaxError, NameError) as e:
            raise ValueError(self._cannot(e)) from e
        except (TypeError, ValueError) as e:   # PyGlove: "Cannot load class ..."; a lambda
            text = str(e)
            if "Cannot load" in text or "cannot be re-imported" in text:
                raise ValueError(self._cannot(e)) from e
            raise

    def _cannot(self, error: BaseException) -> str:
        where = repr(self.path) if self.path else "this architecture"
        what = self.data.get("traced") or _first_type(self.data.get("program"))
        main = self._files.get(names.MAIN)
        if main is not None:
            origin = f"defined in the script {main}"
        elif (what or "").startswith(names.MAIN):
            origin = "defined in a script or notebook whose file was not recorded"
        else:
            origin = "not importable here"
        why = (str(error).strip().splitlines() or [""])[0]
        return (f"cannot rebuild {where}: {what or 'its program'} is {origin} "
                f"({type(error).__name__}: {why}); pass the space: sn.load(path, space=space).")

    def __repr__(self) -> str:
        return f"LoadedArch({self.decisions})"


def _is_this_script(path: str) -> bool:
    """True when this process runs the script itself (its ``__main__`` is that file)."""
    here = names.main_file()
    if here is None or not os.path.exists(path):
        return False
    return os.path.samefile(here, path)


def _first_type(program: Any) -> str | None:
    """The first class name a program's JSON mentions that is not PyGlove's own."""
    if isinstance(program, dict):
        t = program.get("_type")
        if isinstance(t, str) and t not in ("type", "function", "method") \
                and not t.startswith("pyglove."):
            return t
        for v in program.values():
            found = _first_type(v)
            if found:
                return found
    elif isinstance(program, list):
        for v in program:
            found = _first_type(v)
            if found:
                return found
    return None


def load(path: str | os.PathLike, space: Any = None) -> LoadedArch:
    """Reads an architecture written by ``Arch.save`` / ``Trial.save`` / ``symnas export``.

    ``space=`` rebuilds it from that Space (by genome) instead of from the
    recorded program: needed when the program's classes or traced function
    cannot be imported here (defined in a notebook, say).
    """
    with open(path) as f:
        data = json.load(f)
    if data.get("format") != FORMAT:
        raise ValueError(f"{str(path)!r} is not a symnas architecture file "
                         f"(expected format {FORMAT!r}, got {data.get('format')!r}).")
    return LoadedArch(data, space, path=str(path))
