"""Import names of Python objects, including ones defined in a script (``__main__``).

A saved architecture refers to the classes and functions of its program by
name (``package.module:attr`` or PyGlove's ``package.module.Attr``). Names in
an importable module are imported as they are. Names in ``__main__`` (a
script run as ``python script.py``) are recorded with the script's file, and
:func:`script_module` imports that file's *definitions* under another module
name: its imports, functions, classes and constant assignments run; its other
statements (the ``if __name__ == "__main__":`` block, a search at top level)
do not. A notebook's ``__main__`` has no file, so nothing can be recorded:
the caller then asks for the space to be passed explicitly.

This module imports nothing else from symnas.

Example::

    qualified_name(make_net)                      # 'my_project.models:make_net'
    import_name("my_project.models:make_net")     # the function
    import_name("__main__:make", files={"__main__": "/abs/path/search.py"})
"""
from __future__ import annotations

import ast
import hashlib
import importlib
import importlib.util
import inspect
import os
import re
import sys
import types
from typing import Any, Callable, Mapping

MAIN = "__main__"


def qualified_name(fn: Callable) -> str:
    """``module:qualname``; for lambdas and local functions it is for information only."""
    return f"{fn.__module__}:{fn.__qualname__}"


def importable(name: str) -> bool:
    """False for ``module:attr`` names that name a lambda or a local function."""
    attr = name.partition(":")[2]
    return "<lambda>" not in attr and "<locals>" not in attr


def import_name(name: str, files: Mapping[str, str] | None = None) -> Any:
    """Imports ``'package.module:attr.sub'``; ``files`` maps unimportable modules to their files."""
    module, _, attr = name.partition(":")
    if not importable(name):
        raise ValueError(f"{name!r} is a lambda or local function and cannot be re-imported; "
                         "define it at module level, or pass the Space explicitly.")
    obj: Any = module_for(module, files)
    for part in attr.split("."):
        obj = getattr(obj, part)
    return obj


def module_for(module: str, files: Mapping[str, str] | None = None) -> types.ModuleType:
    """The module of that name: ``__main__`` from its recorded file unless it is this process's."""
    path = (files or {}).get(module)
    if path is not None and not _is_current_main(module, path):
        return script_module(path)
    return importlib.import_module(module)


def _is_current_main(module: str, path: str) -> bool:
    main = sys.modules.get(module)
    file = getattr(main, "__file__", None)
    return file is not None and os.path.abspath(file) == os.path.abspath(path)


def main_file(obj: Any = None) -> str | None:
    """The file of this process's ``__main__`` when it defines ``obj`` (or at all, if None).

    None in a notebook or ``python -c`` (no file), or when ``obj`` was defined elsewhere.
    """
    main = sys.modules.get(MAIN)
    file = getattr(main, "__file__", None)
    if not file or not os.path.isfile(file):
        return None
    if obj is not None:
        try:
            if os.path.abspath(inspect.getfile(obj)) != os.path.abspath(file):
                return None
        except (TypeError, OSError):
            return None
    return os.path.abspath(file)


def main_names(program_json: Any) -> set[str]:
    """The ``__main__.X`` type and symbol names a PyGlove program's JSON refers to."""
    found: set[str] = set()

    def walk(x: Any) -> None:
        if isinstance(x, dict):
            for k, v in x.items():
                if k in ("_type", "name") and isinstance(v, str) and v.startswith(MAIN + "."):
                    found.add(v)
                walk(v)
        elif isinstance(x, (list, tuple)):
            for v in x:
                walk(v)
    walk(program_json)
    return found


def main_file_for_names(names: set[str]) -> str | None:
    """This process's script file if it defines every ``__main__.X`` name, else None."""
    main = sys.modules.get(MAIN)
    file = main_file()
    if file is None or not names:
        return None
    for name in names:
        obj: Any = main
        for part in name.split(".")[1:]:
            obj = getattr(obj, part, None)
            if obj is None:
                return None
    return file


def rename_module(program_json: Any, old: str, new: str) -> Any:
    """A copy of a PyGlove JSON value whose ``old.X`` type and symbol names read ``new.X``."""
    prefix = old + "."
    if isinstance(program_json, dict):
        out = {}
        for k, v in program_json.items():
            if k in ("_type", "name") and isinstance(v, str) and v.startswith(prefix):
                out[k] = new + "." + v[len(prefix):]
            else:
                out[k] = rename_module(v, old, new)
        return out
    if isinstance(program_json, list):
        return [rename_module(v, old, new) for v in program_json]
    return program_json


_SCRIPTS: dict[str, types.ModuleType] = {}


def script_alias(path: str) -> str:
    """The module name a script's definitions are imported under (stable per file path)."""
    stem = re.sub(r"\W", "_", os.path.splitext(os.path.basename(path))[0]).lower() or "script"
    digest = hashlib.sha1(os.path.abspath(path).encode()).hexdigest()[:8]
    return f"_symnas_script_{stem}_{digest}"


def script_module(path: str) -> types.ModuleType:
    """Imports the definitions of a script file, without running its other statements.

    Kept: imports, function and class definitions (their decorators run),
    assignments of values that call nothing (``WIDTHS = [32, 64]``), and
    ``try`` blocks made of those. Skipped: everything else, including the
    ``if __name__ == "__main__":`` block. The module's ``__name__`` is
    :func:`script_alias` (never ``"__main__"``); the script's folder is on
    ``sys.path`` while it runs, so its sibling imports work.
    """
    path = os.path.abspath(path)
    if path in _SCRIPTS:
        return _SCRIPTS[path]
    if not os.path.isfile(path):
        raise FileNotFoundError(f"the script {path!r} that defined this architecture's classes "
                                "is gone")
    with open(path, encoding="utf-8") as f:
        tree = ast.parse(f.read(), filename=path)
    tree.body = [s for s in tree.body if _is_definition(s)]
    alias = script_alias(path)
    module = types.ModuleType(alias)
    module.__file__ = path
    sys.modules[alias] = module
    folder = os.path.dirname(path)
    added = folder not in sys.path
    if added:
        sys.path.insert(0, folder)
    try:
        exec(compile(tree, path, "exec"), module.__dict__)  # noqa: S102 - the user's own script
    except BaseException:
        del sys.modules[alias]
        raise
    finally:
        if added:
            sys.path.remove(folder)
    _SCRIPTS[path] = module
    return module


def _is_definition(stmt: ast.stmt) -> bool:
    if isinstance(stmt, (ast.Import, ast.ImportFrom, ast.FunctionDef, ast.AsyncFunctionDef,
                         ast.ClassDef, ast.Pass)):
        return True
    if isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Constant):  # a docstring
        return True
    if isinstance(stmt, (ast.Assign, ast.AnnAssign)):
        return stmt.value is not None and not _calls(stmt.value)
    if isinstance(stmt, ast.Try):
        return all(_is_definition(s) for s in stmt.body) and all(
            _is_definition(s) for h in stmt.handlers for s in h.body)
    return False


def _calls(node: ast.AST) -> bool:
    """True if evaluating ``node`` calls something (a lambda's body does not run)."""
    if isinstance(node, ast.Lambda):
        return False
    if isinstance(node, (ast.Call, ast.Await, ast.Yield, ast.YieldFrom, ast.NamedExpr)):
        return True
    return any(_calls(child) for child in ast.iter_child_nodes(node))
