"""The shape of the codebase: no import cycles, no oversized modules, layered core.

Everything here is computed from the source with :mod:`ast`; nothing is
imported. The rules (issue 11, "Done when"):

(a) The import graph of the project's own modules has no cycle.
(b) No module is over 500 lines; ``symnas/search.py`` is under 300.
(c) The lower layers (:data:`LOWER`) import nothing above them.
(d) The core (``symnas/*.py``) does not import the plugin layer
    (``symnas.spaces``, ``symnas.algorithms``), except the applications in
    :data:`APPLICATIONS`, which exist to put the parts together.

**Which modules.** Exactly what setuptools installs: the folders of
``[tool.setuptools] package-dir`` in pyproject.toml, so ``spaces/x.py`` is
``symnas.spaces.x``, ``algorithms/x.py`` is ``symnas.algorithms.x`` and
``symnas/evaluators/x.py`` is ``symnas.evaluators.x``; a folder's
``__init__.py`` is the package itself.

**What is an edge** from module ``M`` to a project module ``T``: any import
statement in ``M``'s source, wherever it stands (module level, inside a
function or method, inside ``try``), in every form -- ``import a.b.c``,
``import a.b.c as x``, ``from a.b import c`` (``T`` is the submodule ``a.b.c``
when there is one, else the module ``a.b`` that defines the name ``c``),
``from . import x``, ``from ..x import y``:

* The named target is always an edge, even when it is a package above ``M``:
  ``import symnas as sn`` inside ``spaces/darts.py`` is an edge to ``symnas``
  (the package ``__init__``), because ``M`` reads names from that ``__init__``.
  Whether that closes a cycle depends on what ``symnas/__init__.py`` itself
  imports: it reaches the subpackages only through ``importlib.import_module``
  in ``__getattr__`` (a string, decided at run time, so not an edge), hence
  ``spaces.darts -> symnas`` is no cycle as long as no real import statement
  leads from ``symnas`` back to ``spaces.darts``.
* The packages Python runs on the way to the target (``a`` and ``a.b`` for
  ``import a.b.c``, and ``a.b`` for ``from a.b import c``) are edges too,
  except the packages that contain ``M``: those are always imported before
  ``M`` runs, so depending on them implicitly is no cycle.
* ``importlib.import_module("...")`` and ``__import__`` calls are not edges.
* For the cycle check, imports under ``if TYPE_CHECKING:`` are not edges
  (they never run). For the layering check (c) they count: a lower layer
  should not even name a type from above it.
"""
from __future__ import annotations

import ast
import itertools
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# The package-dir remap of pyproject.toml (checked against it below).
PACKAGE_DIRS = {
    "symnas": "symnas",
    "symnas.spaces": "spaces",
    "symnas.algorithms": "algorithms",
    "symnas.evaluators": "symnas/evaluators",
}

MAX_LINES = 500
MAX_SEARCH_LINES = 300  # symnas/search.py must have fewer than this

# (c) The lower layers: the data model every other part builds on.
LOWER = {
    "symnas.genome",     # flat genome view of a DNASpec
    "symnas.space",      # Space: the symbolic program and its decisions
    "symnas.arch",       # Arch: one point of a Space
    "symnas.objective",  # objectives, constraints, reward
    "symnas.result",     # SearchResult
    "symnas.trial",      # Trial record, status constants, "best"
    "symnas.protocols",  # the written extension-point contracts
}
# Small helper modules a lower layer may also import. They must be leaves:
# each may import only other helpers (checked below), so that allowing them
# can never smuggle an upper layer in. Names that do not exist are skipped.
HELPERS = {
    "symnas.names",      # qualified names of Python objects and their import (stdlib only)
    "symnas.hyper",      # oneof / manyof / floatv / searchable: the space language, pyglove only
    "symnas.archfile",   # the architecture file format (imports only symnas.names)
    "symnas.choice_checks",  # choices written where PyGlove misreads them; labels (pyglove only)
}


# (d) The plugin layer, and the core modules allowed to use it by name.
PLUGINS = ("symnas.spaces", "symnas.algorithms")
APPLICATIONS = {
    "symnas.cli",        # the `symnas` command
    "symnas.demo",       # `symnas demo`: every registered algorithm on the NB201 table
}


@dataclass
class Edge:
    target: str
    line: int
    explicit: bool        # the module the statement names (vs. a package run on the way)
    type_checking: bool   # under `if TYPE_CHECKING:`


@dataclass
class Module:
    name: str
    path: Path
    is_package: bool
    lines: int = 0
    edges: list[Edge] = field(default_factory=list)

    @property
    def package(self) -> str:
        """The package relative imports are resolved against."""
        return self.name if self.is_package else self.name.rpartition(".")[0]

    @property
    def rel(self) -> str:
        try:
            return str(self.path.relative_to(ROOT))
        except ValueError:
            return str(self.path)


def ancestors(name: str) -> list[str]:
    """``a.b.c`` -> ``['a', 'a.b']``."""
    parts = name.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts))]


def discover(root: Path = ROOT, package_dirs: dict[str, str] = PACKAGE_DIRS) -> dict[str, Path]:
    """Module name -> source file, for every ``.py`` setuptools installs."""
    found: dict[str, Path] = {}
    for pkg, folder in package_dirs.items():
        for path in sorted((root / folder).glob("*.py")):
            name = pkg if path.stem == "__init__" else f"{pkg}.{path.stem}"
            found[name] = path
    return found


def _is_type_checking(test: ast.expr) -> bool:
    return ((isinstance(test, ast.Name) and test.id == "TYPE_CHECKING")
            or (isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"))


class _ImportCollector(ast.NodeVisitor):
    def __init__(self, module: Module, known: set[str]):
        self.module, self.known = module, known
        self.type_checking = False

    def visit_If(self, node: ast.If) -> None:
        if _is_type_checking(node.test):
            before, self.type_checking = self.type_checking, True
            for child in node.body:
                self.visit(child)
            self.type_checking = before
            for child in node.orelse:
                self.visit(child)
        else:
            self.generic_visit(node)

    def _resolve(self, dotted: str) -> str | None:
        """The longest prefix of ``dotted`` that is a project module."""
        parts = dotted.split(".")
        for i in range(len(parts), 0, -1):
            name = ".".join(parts[:i])
            if name in self.known:
                return name
        return None

    def _add(self, target: str, line: int, on_the_way: list[str]) -> None:
        m = self.module
        mine = set(ancestors(m.name)) | {m.name}
        if target != m.name:
            m.edges.append(Edge(target, line, True, self.type_checking))
        for pkg in on_the_way:
            if pkg in self.known and pkg not in mine and pkg != target:
                m.edges.append(Edge(pkg, line, False, self.type_checking))

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            target = self._resolve(alias.name)
            if target is not None:
                self._add(target, node.lineno, ancestors(target))

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        if node.level:
            parts = self.module.package.split(".")
            if node.level - 1 >= len(parts):
                raise AssertionError(f"{self.module.rel}:{node.lineno}: relative import "
                                     "beyond the top-level package")
            base = ".".join(parts[:len(parts) - (node.level - 1)])
            if node.module:
                base = f"{base}.{node.module}"
        else:
            base = node.module or ""
        resolved = self._resolve(base)
        if resolved is None:
            return                      # not one of ours (stdlib, torch, pyglove, ...)
        on_the_way = ancestors(resolved) + [resolved]
        for alias in node.names:
            sub = f"{base}.{alias.name}"
            target = sub if (resolved == base and sub in self.known) else resolved
            self._add(target, node.lineno, on_the_way)


def parse(name: str, path: Path, known: set[str], source: str | None = None) -> Module:
    """A module's line count and import edges to modules in ``known``."""
    text = path.read_text() if source is None else source
    module = Module(name, path, is_package=path.name == "__init__.py",
                    lines=len(text.splitlines()))
    _ImportCollector(module, known).visit(ast.parse(text, filename=str(path)))
    return module


def project(root: Path = ROOT) -> dict[str, Module]:
    files = discover(root)
    known = set(files)
    return {name: parse(name, path, known) for name, path in files.items()}


def graph(modules: dict[str, Module], *, type_checking: bool = False) -> dict[str, set[str]]:
    g: dict[str, set[str]] = {name: set() for name in modules}
    for m in modules.values():
        for e in m.edges:
            if type_checking or not e.type_checking:
                g[m.name].add(e.target)
    return g


def strongly_connected(g: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's algorithm (iterative); components with a cycle only, sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    out: list[list[str]] = []
    counter = 0
    for start in sorted(g):
        if start in index:
            continue
        work = [(start, iter(sorted(g[start])))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(g.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                comp = []
                while True:
                    w = stack.pop()
                    on_stack.discard(w)
                    comp.append(w)
                    if w == node:
                        break
                if len(comp) > 1 or node in g[node]:
                    out.append(sorted(comp))
    return sorted(out)


def shortest_cycle(g: dict[str, set[str]], comp: list[str]) -> list[str]:
    """A shortest cycle through the first module of a strongly connected component."""
    members, start = set(comp), comp[0]
    prev: dict[str, str] = {}
    frontier, seen = [start], {start}
    while frontier:
        nxt = []
        for node in frontier:
            for child in sorted(g[node] & members):
                if child == start:
                    path = [node]
                    while path[-1] != start:
                        path.append(prev[path[-1]])
                    return list(reversed(path)) + [start]
                if child not in seen:
                    seen.add(child)
                    prev[child] = node
                    nxt.append(child)
        frontier = nxt
    raise AssertionError(f"no cycle through {start} in {comp}")


def describe_cycles(modules: dict[str, Module]) -> list[str]:
    """One line per import cycle: the modules, then where each import of the cycle is."""
    g = graph(modules, type_checking=True)
    report = []
    for comp in strongly_connected(g):
        cycle = shortest_cycle(g, comp)
        where = []
        for a, b in itertools.pairwise(cycle):
            lines = sorted({e.line for e in modules[a].edges
                            if e.target == b and not e.type_checking})
            where.append(f"{modules[a].rel}:{','.join(map(str, lines))} imports {b}")
        bigger = len(comp) > len(cycle) - 1
        extra = f" (component of {len(comp)}: {', '.join(comp)})" if bigger else ""
        report.append(" -> ".join(cycle) + extra + "\n      " + "\n      ".join(where))
    return report


def layering_violations(modules: dict[str, Module]) -> list[str]:
    helpers = HELPERS & set(modules)
    allowed = LOWER | helpers
    bad = []
    for name in sorted(LOWER & set(modules)):
        for e in modules[name].edges:
            if e.target not in allowed:
                bad.append(f"{modules[name].rel}:{e.line} (lower layer) imports {e.target}"
                           + (" under TYPE_CHECKING" if e.type_checking else ""))
    for name in sorted(helpers):
        for e in modules[name].edges:
            if e.target not in helpers:
                bad.append(f"{modules[name].rel}:{e.line} (helper, must be a leaf) "
                           f"imports {e.target}")
    return bad


def core_imports_of_plugins(modules: dict[str, Module]) -> list[str]:
    def in_plugins(name: str) -> bool:
        return any(name == p or name.startswith(p + ".") for p in PLUGINS)
    bad = []
    for m in sorted(modules.values(), key=lambda m: m.name):
        core = m.path.parent == ROOT / "symnas"
        if not core or m.name in APPLICATIONS:
            continue
        for e in m.edges:
            if in_plugins(e.target):
                bad.append(f"{m.rel}:{e.line} (core) imports {e.target}")
    return bad


def oversized(modules: dict[str, Module]) -> list[str]:
    out = [f"{m.rel}: {m.lines} lines (max {MAX_LINES})"
           for m in sorted(modules.values(), key=lambda m: -m.lines) if m.lines > MAX_LINES]
    search = modules["symnas.search"]
    if search.lines >= MAX_SEARCH_LINES:
        out.append(f"{search.rel}: {search.lines} lines (must be under {MAX_SEARCH_LINES})")
    return out


@pytest.fixture(scope="module")
def modules() -> dict[str, Module]:
    return project()


# ---------------------------------------------------------------------------- the rules


def test_no_import_cycles(modules):
    cycles = describe_cycles(modules)
    assert not cycles, ("import cycles between the project's modules (function-level "
                        "imports count):\n  " + "\n  ".join(cycles))


def test_no_module_is_oversized(modules):
    too_big = oversized(modules)
    assert not too_big, "modules over the size limit:\n  " + "\n  ".join(too_big)


def test_lower_layers_import_nothing_above_them(modules):
    missing = sorted(LOWER - set(modules))
    assert not missing, f"lower-layer modules not found (renamed? update LOWER): {missing}"
    bad = layering_violations(modules)
    assert not bad, ("lower layers importing from above them (allowed: "
                     f"{sorted(LOWER | HELPERS)}):\n  " + "\n  ".join(bad))


def test_the_core_does_not_import_the_plugin_layer(modules):
    bad = core_imports_of_plugins(modules)
    assert not bad, ("the core names algorithms and spaces through registries, never by "
                     "import:\n  " + "\n  ".join(bad))


# ----------------------------------------------------- the checker itself, on known facts


def test_package_dirs_match_pyproject():
    if sys.version_info < (3, 11):
        pytest.skip("tomllib is Python 3.11+")
    import tomllib
    conf = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    assert {k: v.rstrip("/") for k, v in conf["package-dir"].items()} == PACKAGE_DIRS
    assert sorted(conf["packages"]) == sorted(PACKAGE_DIRS)


def test_the_graph_sees_the_real_project(modules):
    # the remap is applied and every package is found
    assert {"symnas", "symnas.search", "symnas.spaces", "symnas.algorithms",
            "symnas.evaluators", "symnas.evaluators.nb201"} <= set(modules)
    assert modules["symnas.spaces"].path.parent.name == "spaces"
    assert modules["symnas.algorithms"].path.parent.name == "algorithms"
    # symnas/__init__.py names Space and search under TYPE_CHECKING (it loads them lazily)
    g = graph(modules, type_checking=True)
    assert {"symnas.space", "symnas.search"} <= g["symnas"]
    # ... and reaches no subpackage by a statement (its __getattr__ uses importlib strings)
    assert not {"symnas.spaces", "symnas.algorithms", "symnas.evaluators"} & g["symnas"]
    assert sum(len(m.edges) for m in modules.values()) > 50


def _edges_of(source: str, known: set[str], name: str = "pkg.sub.mod",
              filename: str = "mod.py") -> set[tuple[str, bool, bool]]:
    m = parse(name, Path(filename), known, source=source)
    return {(e.target, e.explicit, e.type_checking) for e in m.edges}


def test_every_kind_of_import_statement_is_an_edge():
    known = {"pkg", "pkg.a", "pkg.a.deep", "pkg.b", "pkg.sub", "pkg.sub.mod", "pkg.sub.sib",
             "pkg.other", "pkg.other.x"}
    source = '''
import os, importlib
from typing import TYPE_CHECKING
import pkg.a.deep
from . import sib
from .. import b
from ..other import x, helper
if TYPE_CHECKING:
    from pkg.a import Thing

def later():
    import pkg as p
    importlib.import_module("pkg.other")   # a string: not an edge
    __import__("pkg.b")

class C:
    def method(self):
        try:
            from pkg.sub import missing_name   # a name defined in pkg/sub/__init__.py
        except ImportError:
            pass
'''
    edges = _edges_of(source, known)
    assert edges == {
        ("pkg.a.deep", True, False),   # import a.b.c ...
        ("pkg.a", False, False),       # ... runs pkg/a/__init__.py on the way (pkg contains M)
        ("pkg.sub.sib", True, False),  # from . import x
        ("pkg.b", True, False),        # from .. import b (a module)
        ("pkg.other.x", True, False),  # from ..other import x (a module)
        ("pkg.other", False, False),   # ... whose pkg/other/__init__.py runs on the way
        ("pkg.other", True, False),    # ... and helper, a name defined in pkg/other/__init__.py
        ("pkg.a", True, True),         # under TYPE_CHECKING
        ("pkg", True, False),          # import pkg as p, inside a function: own top package
        ("pkg.sub", True, False),      # from the own package's __init__, inside a method
    }


def test_relative_imports_in_a_package_init_and_in_a_remapped_folder(tmp_path):
    # spaces/__init__.py is symnas.spaces: `from .registry import x` there is symnas.spaces.registry
    known = {"symnas", "symnas.spaces", "symnas.spaces.registry", "symnas.spaces.darts"}
    edges = _edges_of("from .registry import get\nfrom . import darts\n", known,
                      name="symnas.spaces", filename="__init__.py")
    assert edges == {("symnas.spaces.registry", True, False), ("symnas.spaces.darts", True, False)}
    # and the remap itself: a folder outside symnas/ becomes a subpackage of it
    (tmp_path / "core").mkdir()
    (tmp_path / "plug").mkdir()
    for f in ("core/__init__.py", "core/low.py", "plug/__init__.py", "plug/one.py"):
        (tmp_path / f).write_text("")
    found = discover(tmp_path, {"core": "core", "core.plug": "plug"})
    assert set(found) == {"core", "core.low", "core.plug", "core.plug.one"}


def test_a_function_level_cycle_is_found_and_printed(tmp_path):
    (tmp_path / "core").mkdir()
    (tmp_path / "plug").mkdir()
    (tmp_path / "core/__init__.py").write_text("from core.low import A\n")
    (tmp_path / "core/low.py").write_text("def f():\n    from core import plug\n")
    (tmp_path / "plug/__init__.py").write_text("from . import one\n")
    (tmp_path / "plug/one.py").write_text("import core as c\n")
    files = discover(tmp_path, {"core": "core", "core.plug": "plug"})
    mods = {n: parse(n, p, set(files)) for n, p in files.items()}
    cycles = describe_cycles(mods)
    assert len(cycles) == 1
    assert cycles[0].startswith("core -> core.low -> core.plug -> core.plug.one -> core")
    # without the function-level import the same code has no cycle
    (tmp_path / "core/low.py").write_text("import importlib\n"
                                          "def f():\n    importlib.import_module('core.plug')\n")
    mods = {n: parse(n, p, set(files)) for n, p in files.items()}
    assert describe_cycles(mods) == []


def test_a_package_importing_its_own_init_is_no_cycle_unless_the_init_leads_back(tmp_path):
    (tmp_path / "core").mkdir()
    (tmp_path / "core/__init__.py").write_text(
        "from core.low import A\n"
        "def __getattr__(name):\n    import importlib\n"
        "    return importlib.import_module('core.' + name)\n")
    (tmp_path / "core/low.py").write_text("A = 1\n")
    (tmp_path / "core/plugin.py").write_text("import core as c\nfrom core import low\n")
    files = discover(tmp_path, {"core": "core"})
    mods = {n: parse(n, p, set(files)) for n, p in files.items()}
    assert graph(mods)["core.plugin"] == {"core", "core.low"}
    assert describe_cycles(mods) == []
    (tmp_path / "core/low.py").write_text("A = 1\nimport core.plugin\n")
    mods = {n: parse(n, p, set(files)) for n, p in files.items()}
    assert describe_cycles(mods) and "core.low -> core.plugin" in describe_cycles(mods)[0]


if __name__ == "__main__":   # python tests/test_structure.py: the report without pytest
    mods = project()
    print("cycles:", *(describe_cycles(mods) or ["none"]), sep="\n  ")
    print("oversized:", *(oversized(mods) or ["none"]), sep="\n  ")
    print("layering:", *(layering_violations(mods) or ["none"]), sep="\n  ")
    print("core -> plugins:", *(core_imports_of_plugins(mods) or ["none"]), sep="\n  ")
