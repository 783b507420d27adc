"""What a store file is, before symnas reads or writes it: the diagnosis and its errors.

:func:`inspect` looks at a file without changing it (a read-only connection)
and either returns its schema version or raises one of these, each a
:class:`~symnas.records.StoreError` with a one-line :attr:`~StoreFileError.reason`
(what ``symnas ls`` prints) and a message that says what to do:

- :class:`NotSQLiteFile` -- not an SQLite file at all;
- :class:`NotAStore` -- an SQLite database, but not one symnas wrote;
- :class:`NewerStore` -- a store of a newer schema than this symnas reads (upgrade symnas);
- :class:`DamagedStore` -- truncated, or pages SQLite's own ``PRAGMA quick_check``
  rejects; the message counts what is still readable and names
  ``symnas recover`` (:mod:`symnas.recover`), which copies it into a new file;
- :class:`ReadOnlyStore` -- opened for writing, but the file or its folder is
  read-only (SQLite's WAL writes ``FILE-wal`` and ``FILE-shm`` beside the file).

Opening for writing always runs ``quick_check`` (about 2 ms per MB); opening
for reading runs it on files up to :data:`READ_CHECK_BYTES` and otherwise
relies on the cheap checks (header, size, schema), and :func:`damaged` explains
an error that reading meets later. Stores in a read-only folder are read
through SQLite's ``immutable`` mode when no ``-wal`` file is beside them.

Example::

    >>> import os, tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "notes.sqlite")
    >>> _ = open(path, "w").write("my notes")
    >>> try:
    ...     inspect(path, newest=2)
    ... except NotSQLiteFile as err:
    ...     print(err.reason)
    is not an SQLite file
"""
from __future__ import annotations

import contextlib
import os
import re
import shutil
import sqlite3
import tempfile
from pathlib import Path
from typing import Iterator

from symnas.records import StoreError

MAGIC = b"SQLite format 3\x00"
READ_CHECK_BYTES = 64 << 20          # reading runs quick_check on files up to this size
FORMAT_PREFIX = "symnas.store/"

__all__ = ["StoreFileError", "NotSQLiteFile", "NotAStore", "NewerStore", "DamagedStore",
           "ReadOnlyStore", "inspect", "quick_check", "connect_ro", "check_writable", "damaged", "explain",
           "salvage", "readable_rows", "MAGIC", "READ_CHECK_BYTES"]


class StoreFileError(StoreError):
    """A store file that cannot be used as asked; ``reason`` is the one-line cause."""

    def __init__(self, path: str, reason: str, advice: str):
        self.path, self.reason, self.advice = path, reason, advice
        super().__init__(f"{path!r} {reason}; {advice}")


class NotSQLiteFile(StoreFileError):
    """The file is not an SQLite database."""


class NotAStore(StoreFileError):
    """An SQLite database that symnas did not write."""


class NewerStore(StoreFileError):
    """A store written by a newer symnas (a schema version this one does not know)."""


class DamagedStore(StoreFileError):
    """A store SQLite cannot read whole: truncated, or pages that fail its checks."""


class ReadOnlyStore(StoreFileError):
    """A store opened for writing whose file or folder cannot be written."""


_UNTOUCHED = "it was left untouched. Choose another storage= path."


# ---- looking at a file ----------------------------------------------------------------------
def _uri(path: str, immutable: bool = False) -> str:
    return Path(path).as_uri() + ("?mode=ro&immutable=1" if immutable else "?mode=ro")


def _wal_pending(path: str) -> bool:
    """Whether a non-empty ``-wal`` file (committed writes not yet in the file) is beside it."""
    try:
        return os.path.getsize(path + "-wal") > 0
    except OSError:
        return False


def connect_ro(path: str, snapshot: bool = False) -> sqlite3.Connection:
    """A read-only connection; in a read-only folder SQLite's ``immutable`` mode is used.

    A WAL database needs its ``-shm`` file, which a read-only folder cannot
    get; without a ``-wal`` beside it nothing can be missed by reading it as
    immutable. ``snapshot=True`` (a diagnosis: short, and no process has the
    file open when there is no ``-wal``) reads as immutable whenever there is
    no ``-wal``, so that looking at a file creates nothing beside it.
    """
    if snapshot and not os.path.exists(path + "-wal"):
        return sqlite3.connect(_uri(path, immutable=True), uri=True, timeout=60,
                               check_same_thread=False)
    conn = sqlite3.connect(_uri(path), uri=True, timeout=60, check_same_thread=False)
    try:
        conn.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()
        return conn
    except sqlite3.Error as err:
        conn.close()
        if getattr(err, "sqlite_errorname", "") not in ("SQLITE_READONLY_DIRECTORY",
                                                        "SQLITE_CANTOPEN", "SQLITE_READONLY"):
            raise
    if _wal_pending(path):
        raise ReadOnlyStore(
            path, "is in a read-only folder with unsaved writes in its -wal file",
            f"copy {os.path.basename(path)} and {os.path.basename(path)}-wal together to a "
            "writable folder and read the copy (SQLite must write the -shm file to read them).")
    return sqlite3.connect(_uri(path, immutable=True), uri=True, timeout=60,
                           check_same_thread=False)


def _header_problem(path: str, head: bytes, size: int) -> StoreFileError | None:
    """What the first 100 bytes and the size say is wrong, if anything."""
    if head[:16] != MAGIC:
        if size >= 1024 and size % 512 == 0 and not head.strip(b"\x00"):
            return DamagedStore(path, "is damaged: its first page is all zeros (the schema "
                                "page; nothing is readable without it)",
                                "symnas did not write to it. Restore it from a backup.")
        shown = head[:24].decode("utf-8", "replace").split("\n")[0]
        return NotSQLiteFile(path, "is not an SQLite file",
                             f"it is not a symnas store (it starts with {shown!r}); " + _UNTOUCHED)
    page, pages = _pages(head)
    if not _wal_pending(path) and (size % page or size < pages * page):
        return _damaged(path, f"truncated: {size:,} bytes of the {pages * page:,} its header "
                        f"records ({size // page} of {pages} pages)")
    return None


def _pages(head: bytes) -> tuple[int, int]:
    """(page size, page count) from the header; the count is 0 where the header has none."""
    page = int.from_bytes(head[16:18], "big")
    page = 65536 if page == 1 else page
    pages = int.from_bytes(head[28:32], "big")
    valid = head[92:96] == head[24:28]          # "version-valid-for" == change counter
    return page, pages if valid else 0


@contextlib.contextmanager
def salvage(path: str) -> Iterator[sqlite3.Connection]:
    """A read-only connection to whatever of ``path`` is readable; the file is never written.

    A truncated file (SQLite refuses it whole) is read through a temporary
    copy padded with zero pages to the size its header records, so the rows
    on the pages that remain can be read.
    """
    with open(path, "rb") as f:
        head = f.read(100)
    page, pages = _pages(head) if head[:16] == MAGIC else (0, 0)
    size = os.path.getsize(path)
    if not page or _wal_pending(path) or size >= pages * page and not size % page:
        conn = connect_ro(path, snapshot=True)
        try:
            yield conn
        finally:
            conn.close()
        return
    with tempfile.TemporaryDirectory(prefix="symnas-salvage-") as tmp:
        copy = os.path.join(tmp, "padded.sqlite")
        shutil.copyfile(path, copy)
        with open(copy, "r+b") as f:
            f.truncate(max(pages * page, -(-size // page) * page))
        conn = connect_ro(copy, snapshot=True)
        try:
            yield conn
        finally:
            conn.close()


def inspect(path: str, *, newest: int, write: bool = False) -> int:
    """The schema version of a store file; raises a :class:`StoreFileError` if it is unusable.

    Reads only (a read-only connection): the file is unchanged byte for byte.
    ``write=True`` always runs ``PRAGMA quick_check``; reading runs it on files
    up to :data:`READ_CHECK_BYTES`.
    """
    size = os.path.getsize(path)
    with open(path, "rb") as f:
        head = f.read(100)
    problem = _header_problem(path, head, size)
    if problem is not None:
        raise problem
    try:
        conn = connect_ro(path, snapshot=True)
        conn.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()
    except sqlite3.DatabaseError as err:
        raise _damaged(path, str(err)) from err
    try:
        return _schema(conn, path, newest, check=write or size <= READ_CHECK_BYTES)
    finally:
        conn.close()


def _schema(conn: sqlite3.Connection, path: str, newest: int, check: bool) -> int:
    try:
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        row = (conn.execute("SELECT value FROM meta WHERE key='format'").fetchone()
               if "meta" in tables else None)
    except sqlite3.DatabaseError as err:
        raise _damaged(path, str(err), conn) from err
    fmt = str(row[0]) if row is not None else None
    version = fmt[len(FORMAT_PREFIX):] if fmt and fmt.startswith(FORMAT_PREFIX) else ""
    if not version.isdigit() or int(version) < 1 or not {"experiments", "trials"} <= tables:
        what = (f"its format is {fmt!r}" if fmt else
                f"it has no symnas format record (tables: {', '.join(sorted(tables)) or 'none'})")
        raise NotAStore(path, "is an SQLite file but not a symnas store",
                        f"{what}, expected {FORMAT_PREFIX}1..{newest}; " + _UNTOUCHED)
    if int(version) > newest:
        raise NewerStore(path, f"is a store of schema {version}, newer than this symnas reads "
                         f"({newest})", "it was written by a newer symnas and was left untouched. "
                         "Upgrade symnas (pip install -U symnas) to read or resume it.")
    if check:
        problem = quick_check(conn, path)
        if problem is not None:
            raise _damaged(path, problem, conn)
    return int(version)


def quick_check(conn: sqlite3.Connection, path: str) -> str | None:
    """What SQLite's ``PRAGMA quick_check`` finds wrong (None: nothing), with the page named."""
    found: list[str] = []
    try:    # (1): report the first problem (Python's cursor reads a row ahead, so more may raise)
        for (line,) in conn.execute("PRAGMA quick_check(1)"):
            found.extend(x for x in str(line).splitlines() if x and not x.startswith("***"))
    except sqlite3.DatabaseError as err:
        found.append(str(err))
    if found == ["ok"]:
        return None
    page = next((int(m.group(1)) for x in found for m in [re.search(r"[Pp]age (\d+)", x)] if m),
                None)
    if page is not None:
        size = conn.execute("PRAGMA page_size").fetchone()[0]
        with open(path, "rb") as f:
            f.seek((page - 1) * size)
            zeros = not f.read(size).strip(b"\x00")
        return f"page {page} is all zeros" if zeros else \
            f"page {page} is corrupt: SQLite says {'; '.join(found[:2])!r}"
    return "; ".join(found[:3])


def check_writable(path: str) -> None:
    """Raises :class:`ReadOnlyStore` unless this process may write the file and its folder.

    SQLite's WAL writes ``FILE-wal`` and ``FILE-shm`` beside the file, so the
    folder must be writable too. (``os.access`` asks the kernel: a read-only
    mount refuses even root; root may write a ``chmod``-ed file.)
    """
    folder = os.path.dirname(os.path.abspath(path))
    while not os.path.exists(folder) and os.path.dirname(folder) != folder:
        folder = os.path.dirname(folder)       # a new store's folder is made: check its parent
    if os.path.exists(path) and not os.access(path, os.W_OK):
        raise _read_only(path, "the file")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise _read_only(path, "its folder")


def _read_only(path: str, what: str) -> ReadOnlyStore:
    exists = os.path.exists(path)
    fix = (f"make {what} writable (chmod u+w {os.path.dirname(path) if what == 'its folder' else path}) "
           "or copy the file to a writable folder and use the copy")
    read = (" Reading needs no write access: symnas ls/show/export and "
            "SQLiteStore.open(path, readonly=True) work as it is." if exists else "")
    return ReadOnlyStore(
        path, f"cannot be written: {what} is read-only" if exists else
        f"cannot be created: {what} is read-only",
        ("symnas did not change it. " if exists else "") + f"To record a search, {fix} "
        "(SQLite writes FILE-wal and FILE-shm beside the file)." + read)


def explain(path: str, err: sqlite3.Error, *, write: bool) -> StoreError:
    """The store error for an SQLite error met while opening or reading ``path``."""
    name = getattr(err, "sqlite_errorname", "")
    if name.startswith("SQLITE_READONLY") or name == "SQLITE_CANTOPEN" or \
            "readonly" in str(err):
        return _read_only(path, "its folder" if os.path.exists(path) and os.access(path, os.W_OK)
                          else "the file")
    if name.startswith(("SQLITE_CORRUPT", "SQLITE_NOTADB")) or any(
            w in str(err) for w in ("malformed", "not a database")):
        return damaged(path, err)
    return StoreError(f"cannot {'write' if write else 'read'} {path!r}: {err}")


def damaged(path: str, err: BaseException | str) -> DamagedStore:
    """The :class:`DamagedStore` for an error that reading ``path`` met (e.g. mid-listing)."""
    return _damaged(path, str(err))


def _damaged(path: str, detail: str, conn: sqlite3.Connection | None = None) -> DamagedStore:
    if conn is not None:
        readable = _readable(conn)
    else:
        try:
            with salvage(path) as c:
                readable = _readable(c)
        except (sqlite3.Error, StoreError, OSError):
            readable = " SQLite cannot read its schema: nothing is readable."
    base = os.path.basename(path)
    stem = os.path.join(os.path.dirname(path), base[:-len(".sqlite")] if base.endswith(".sqlite")
                        else base)
    return DamagedStore(
        path, f"is damaged ({detail})",
        "symnas did not write to it and will not." + readable + " Copy what is readable into a "
        f"new store with `symnas recover {path} {stem}-recovered.sqlite`, then show, export or "
        "resume (storage=..., resume=True) the new file.")


def _readable(conn: sqlite3.Connection) -> str:
    try:
        exps, _ = readable_rows(conn, "experiments")
        trials, lost = readable_rows(conn, "trials")
    except sqlite3.Error:
        return " Its tables cannot be read at all."
    return (f" Still readable: {_n(len(exps), 'experiment')} and {_n(len(trials), 'trial')}"
            + (f" ({_n(lost, 'unreadable run')} of rows)" if lost else "") + ".")


def _n(k: int, what: str) -> str:
    return f"{k} {what}{'' if k == 1 else 's'}"


# ---- reading around damage ----------------------------------------------------------------
def readable_rows(conn: sqlite3.Connection, table: str) -> tuple[list[sqlite3.Row], int]:
    """Every row of ``table`` SQLite can still read (rowid order), and the runs of rowids it cannot.

    Ranges of rowids are read whole; a range that fails is halved until the
    failing rows are isolated, so a damaged page costs a few dozen queries.
    """
    if table not in ("experiments", "trials"):
        raise ValueError(f"no table {table!r}")
    conn.row_factory = sqlite3.Row
    try:
        top = conn.execute(f"SELECT MAX(rowid) FROM {table}").fetchone()[0]
    except sqlite3.DatabaseError:
        top = None
    if top is None:   # the table is empty, or its rightmost pages are gone: bound by the size
        pages = conn.execute("PRAGMA page_count").fetchone()[0]
        top = pages * 64 if pages else 0
    rows: list[sqlite3.Row] = []
    lost, last_bad = 0, -2
    for a, b, got in _ranges(conn, table, 1, int(top)):
        if got is None:
            lost += a != last_bad + 1          # a new run of unreadable rowids
            last_bad = b
        else:
            rows.extend(got)
    return rows, lost


def _ranges(conn: sqlite3.Connection, table: str, lo: int, hi: int,
            ) -> Iterator[tuple[int, int, list[sqlite3.Row] | None]]:
    """``(a, b, rows)`` over ``[lo, hi]`` in rowid order; ``rows`` is None where unreadable."""
    stack = [(lo, hi)]
    while stack:
        a, b = stack.pop()
        try:
            got = conn.execute(f"SELECT rowid AS _rowid, * FROM {table} WHERE rowid BETWEEN ? AND ? "
                               "ORDER BY rowid", (a, b)).fetchall()
        except sqlite3.DatabaseError:
            if a == b:
                yield a, b, None
            else:
                mid = (a + b) // 2
                stack.extend([(mid + 1, b), (a, mid)])
            continue
        yield a, b, got
