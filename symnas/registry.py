"""One registry type for everything symnas looks up by name.

Algorithms, search spaces, zero-cost proxies and executors each have one
:class:`Registry`, defined here (:data:`ALGORITHMS`, :data:`SPACES`,
:data:`PROXIES`, :data:`EXECUTORS`) so that any layer can look names up
without importing the layer that fills it. A registry maps *canonical names* (plus *aliases*) to
factories, filled by a decorator where each thing is defined; one name
normalisation (:func:`normalize`: lower case, ``-`` and spaces become ``_``)
applies when registering and when looking up. A name taken by a different
object is an error. Third-party packages add entries through a package
entry-point group (``[project.entry-points."symnas.algorithms"]``), loaded on
the first unknown name or listing; symnas's own packages are entry points of
these groups too, so ``ALGORITHMS.get("evolution")`` works before
``symnas.algorithms`` is imported.

Example:

>>> widgets = Registry("widget", default_kind="small")
>>> @widgets.register("tiny-widget", "tw")
... def tiny(size=1):
...     return ("tiny", size)
>>> widgets.get("Tiny Widget", size=2)
('tiny', 2)
>>> widgets.lookup("tw") is tiny, widgets.canonical("TW"), widgets.aliases("tiny_widget")
(True, 'tiny_widget', ['tw'])
>>> _ = widgets.register("huge", kind="big")(lambda: "huge")
>>> widgets.names(), widgets.names(kind="big"), widgets.names(aliases=True)
(['huge', 'tiny_widget'], ['huge'], ['huge', 'tiny_widget', 'tw'])
>>> widgets.get("tiny_widgte")  # doctest: +ELLIPSIS
Traceback (most recent call last):
    ...
KeyError: "unknown widget 'tiny_widgte' (...); did you mean 'tiny_widget'? Registered: huge, tiny_widget."
"""
from __future__ import annotations

import difflib
import importlib.metadata
import logging
import threading
import types
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any, Generic, TypeVar, overload

__all__ = ["ALGORITHMS", "BLACK_BOX", "EXECUTORS", "PROXIES", "SPACES", "WEIGHT_SHARING",
           "Registry", "normalize"]

T = TypeVar("T")
_log = logging.getLogger("symnas")


def normalize(name: str) -> str:
    """The one spelling of a registry name: stripped, lower case, ``-`` and spaces -> ``_``.

    >>> normalize(" My-Algo v2")
    'my_algo_v2'
    """
    if not isinstance(name, str):
        raise TypeError(f"a registry name is a str, got {type(name).__name__}: {name!r}.")
    key = "_".join(name.strip().lower().replace("-", " ").split())
    if not key:
        raise ValueError(f"a registry name cannot be empty, got {name!r}.")
    return key


class Registry(Generic[T]):
    """Canonical names and aliases -> factories, with kinds and entry-point discovery.

    ``what`` names the registered things in messages ("algorithm", "search
    space", ...). ``group`` is the package entry-point group searched for
    third-party entries: an entry point naming a module is imported (its
    decorators register), one naming an object is registered under the entry
    point's name unless that name is already registered. Entry points load
    once, on the first unknown name or listing (:meth:`discover` loads ones
    installed later); one that fails to load is logged, skipped and named in
    the unknown-name error. ``default_kind`` is the kind of entries registered
    without one; ``kinds``, if given, is the closed set of allowed kinds.

    Registration and discovery hold a lock; lookups of registered names do not
    wait on it.
    """

    def __init__(self, what: str, group: str | None = None, default_kind: str | None = None,
                 kinds: Sequence[str] | None = None):
        self.what = what
        self.group = group
        self.kinds: tuple[str, ...] | None = None if kinds is None else tuple(kinds)
        if self.kinds is not None and default_kind is not None and default_kind not in self.kinds:
            raise ValueError(f"default_kind {default_kind!r} is not one of kinds {self.kinds}.")
        self.default_kind = default_kind
        self._objects: dict[str, T] = {}          # canonical name -> object
        self._kinds: dict[str, str | None] = {}   # canonical name -> kind
        self._names: dict[str, str] = {}          # any name (canonical or alias) -> canonical
        self._lock = threading.RLock()
        self._discovered = group is None
        self._loaded: set[tuple[str, str]] = set()      # (name, value) of loaded entry points
        self._failed: dict[str, str] = {}               # entry point name -> why it failed

    # ---- registering ------------------------------------------------------------------
    @overload
    def register(self, obj: T, /) -> T: ...

    @overload
    def register(self, *names: str, kind: str | None = None,
                 aliases: Iterable[str] = ()) -> Callable[[T], T]: ...

    def register(self, *names: Any, kind: str | None = None,
                 aliases: Iterable[str] = ()) -> Any:
        """Registers a factory: ``@reg.register("name", "alias", ..., kind=...)``.

        The first name is canonical, the others (and ``aliases``) are aliases;
        without names the object's ``__name__`` is used, also as a bare
        ``@reg.register``. Returns the object unchanged. A name already taken by
        a different object raises ``ValueError``; registering the same object
        again is a no-op (new names become aliases of its canonical name).
        """
        if len(names) == 1 and not isinstance(names[0], str) and callable(names[0]):
            return self.register()(names[0])
        extra = [aliases] if isinstance(aliases, str) else list(aliases)
        keys = [normalize(n) for n in (*names, *extra)]
        if kind is not None and self.kinds is not None and kind not in self.kinds:
            raise ValueError(f"unknown {self.what} kind {kind!r}; kinds are "
                             f"{', '.join(self.kinds)}.")

        def deco(obj: T) -> T:
            self._add(obj, keys or [normalize(_name_of(obj, self.what))], kind)
            return obj
        return deco

    def _add(self, obj: T, keys: list[str], kind: str | None) -> None:
        with self._lock:
            known = next((c for c, o in self._objects.items() if o is obj), None)
            for key in keys:
                taken = self._names.get(key)
                if taken is not None and self._objects[taken] is not obj:
                    raise ValueError(
                        f"cannot register {_describe(obj)} as {self.what} {key!r}: that name is "
                        f"taken by {_describe(self._objects[taken])}"
                        + (f" (registered as {taken!r})" if taken != key else "")
                        + "; choose another name.")
            kind = kind if kind is not None else (self._kinds[known] if known else self.default_kind)
            if known is not None and kind != self._kinds[known]:
                raise ValueError(f"{_describe(obj)} is registered as {self.what} {known!r} of kind "
                                 f"{self._kinds[known]!r}; cannot register it again as kind {kind!r}.")
            canonical = known if known is not None else keys[0]
            self._objects[canonical] = obj
            self._kinds[canonical] = kind
            for key in keys:
                self._names.setdefault(key, canonical)

    def unregister(self, name: str) -> T:
        """Removes the named entry with all its aliases (tests, notebooks); returns its object."""
        with self._lock:
            canonical = self.canonical(name)
            for key in [k for k, c in self._names.items() if c == canonical]:
                del self._names[key]
            del self._kinds[canonical]
            return self._objects.pop(canonical)

    # ---- looking up -------------------------------------------------------------------
    def canonical(self, name: str) -> str:
        """The canonical name that ``name`` (any spelling, or an alias) stands for."""
        key = normalize(name)
        canonical = self._names.get(key)
        if canonical is None and self._discover_once():
            canonical = self._names.get(key)
        if canonical is None:
            raise KeyError(self._unknown(name, key))
        return canonical

    def lookup(self, name: str) -> T:
        """The registered factory itself (not called)."""
        return self._objects[self.canonical(name)]

    def get(self, name: str, /, **kwargs: Any) -> Any:
        """Creates the named thing: ``lookup(name)(**kwargs)``."""
        # T is not bound to Callable (a registry may hold classes or functions); entries are factories.
        return self.lookup(name)(**kwargs)  # type: ignore[operator]

    def kind(self, name: str) -> str | None:
        """The kind of the named entry (``default_kind`` unless registered with one)."""
        return self._kinds[self.canonical(name)]

    def aliases(self, name: str) -> list[str]:
        """The aliases of the named entry, sorted (its canonical name left out)."""
        canonical = self.canonical(name)
        return sorted(k for k, c in self._names.items() if c == canonical and k != canonical)

    def names(self, kind: str | None = None, aliases: bool = False) -> list[str]:
        """Sorted canonical names, of one ``kind`` if given; with ``aliases=True`` aliases too."""
        self._discover_once()
        if kind is not None and self.kinds is not None and kind not in self.kinds:
            raise ValueError(f"unknown {self.what} kind {kind!r}; kinds are {', '.join(self.kinds)}.")
        keep = {c for c, k in self._kinds.items() if kind is None or k == kind}
        pool = self._names.items() if aliases else ((c, c) for c in self._objects)
        return sorted(n for n, c in pool if c in keep)

    def __contains__(self, name: object) -> bool:
        if not isinstance(name, str):
            return False
        try:
            self.canonical(name)
        except (KeyError, ValueError):
            return False
        return True

    def __iter__(self) -> Iterator[str]:
        """Canonical names in registration order."""
        self._discover_once()
        return iter(list(self._objects))

    def __len__(self) -> int:
        self._discover_once()
        return len(self._objects)

    def __repr__(self) -> str:
        group = f", group={self.group!r}" if self.group else ""
        return f"Registry({self.what!r}{group}, {len(self._objects)} registered)"

    # ---- entry points -----------------------------------------------------------------
    def discover(self) -> list[str]:
        """Loads the entry points of ``group`` not loaded yet; returns their names."""
        if self.group is None:
            return []
        with self._lock:
            self._discovered = True
            loaded = []
            for ep in importlib.metadata.entry_points(group=self.group):
                if (ep.name, ep.value) in self._loaded:
                    continue
                self._loaded.add((ep.name, ep.value))
                try:
                    obj = ep.load()
                    if not isinstance(obj, types.ModuleType):
                        key = normalize(ep.name)
                        if key not in self._names or self._objects[self._names[key]] is not obj:
                            self._add(obj, [key], None)
                except Exception as e:  # noqa: BLE001 -- a broken plugin must not break the built-ins
                    why = f"{type(e).__name__}: {e}"
                    self._failed[ep.name] = why
                    _log.warning("symnas: entry point %r (%s) of group %r failed to load: %s",
                                 ep.name, ep.value, self.group, why)
                    continue
                loaded.append(ep.name)
            return loaded

    def _discover_once(self) -> bool:
        """Runs :meth:`discover` the first time; True if it ran now."""
        if self._discovered:
            return False
        self.discover()
        return True

    def _unknown(self, name: str, key: str) -> str:
        close = difflib.get_close_matches(key, list(self._names), n=1)
        hint = f"; did you mean {self._names[close[0]]!r}?" if close else "."
        msg = (f"unknown {self.what} {name!r} (no {self.what} named {name!r}){hint} "
               f"Registered: {', '.join(sorted(self._objects)) or 'none'}.")
        if self._failed:
            msg += " Entry points that failed to load: " + "; ".join(
                f"{n} ({why})" for n, why in sorted(self._failed.items())) + "."
        return msg


def _name_of(obj: Any, what: str) -> str:
    name = getattr(obj, "__name__", None)
    if not isinstance(name, str):
        raise TypeError(f"register({obj!r}) needs a name: this {what} has no __name__; "
                         "write register('name')(obj).")
    return name


def _describe(obj: Any) -> str:
    module, name = getattr(obj, "__module__", None), getattr(obj, "__qualname__", None)
    return f"{module}.{name}" if module and name else repr(obj)


# ---- the registries of symnas ---------------------------------------------------------------
BLACK_BOX = "black-box"
WEIGHT_SHARING = "weight-sharing"

#: Search algorithms: ``"black-box"`` (the trial loop asks and tells) or ``"weight-sharing"``.
ALGORITHMS: Registry[Any] = Registry("algorithm", group="symnas.algorithms",
                                     default_kind=BLACK_BOX, kinds=(BLACK_BOX, WEIGHT_SHARING))
#: Search-space factories ``(**settings) -> sn.Space``.
SPACES: Registry[Any] = Registry("search space", group="symnas.spaces")
#: Zero-cost proxies ``(model, batch, **options) -> float``.
PROXIES: Registry[Any] = Registry("zero-cost proxy", group="symnas.proxies")
#: Executors: where trials run.
EXECUTORS: Registry[Any] = Registry("executor", group="symnas.executors")
