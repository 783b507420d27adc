"""Damaged, foreign, newer and read-only store files: diagnosed, never written (issue 13, item 3).

Every case is a real SQLite file damaged the way disks and users damage them
(cut short, a page overwritten with garbage, a page zeroed, the schema page
zeroed), or a real read-only file or folder. Permissions are made to bind
even for root: the child process that opens them runs without the
capabilities that let root ignore permission bits (``setpriv``), and a
second test reads a store on a read-only tmpfs in a private mount namespace,
which refuses root too (skipped where mounting is not permitted).
"""
from __future__ import annotations

import hashlib
import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

import evaluators_for_tests as E
import symnas as sn
from symnas import storecheck
from symnas.cli import main
from symnas.recover import recover
from symnas.store import SCHEMA_VERSION, SQLiteStore, StoreError

TESTS = Path(__file__).resolve().parent
PAGE = 4096


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def good(tmp_path_factory) -> Path:
    """A real store: 300 trials of the toy space (with failures), closed cleanly."""
    path = tmp_path_factory.mktemp("good") / "good.sqlite"
    sn.search(E.toy_space(), sn.algorithms.Random(), E.raises_on_b2, budget=300, seed=0,
              dedup=False, storage=path, name="good", progress=False)
    SQLiteStore.open(path).close()
    return path


def _trial_leaf(path: Path) -> int:
    """A leaf page of the trials table, in the middle of the file (0-based page index)."""
    conn = sqlite3.connect(path)
    try:
        pages = [r[0] for r in conn.execute(
            "SELECT pageno FROM dbstat WHERE name='trials' AND pagetype='leaf' ORDER BY pageno")]
    finally:
        conn.close()
    return pages[len(pages) // 2] - 1


def _damage(good: Path, folder: Path, kind: str) -> Path:
    data = bytearray(good.read_bytes())
    if kind == "truncated":
        data = data[:len(data) // 2]
    elif kind == "corrupt page":
        i = _trial_leaf(good) * PAGE
        data[i:i + PAGE] = bytes((k * 37 + 11) % 256 for k in range(PAGE))
    elif kind == "zeroed page":
        i = _trial_leaf(good) * PAGE
        data[i:i + PAGE] = bytes(PAGE)
    elif kind == "zeroed first page":
        data[:PAGE] = bytes(PAGE)
    elif kind == "not sqlite":
        data = bytearray(b"my precious notes\n" * 300)
    elif kind == "newer":
        path = folder / "newer.sqlite"
        shutil.copyfile(good, path)
        conn = sqlite3.connect(path)
        conn.execute("UPDATE meta SET value='symnas.store/99' WHERE key='format'")
        conn.commit()
        conn.close()
        return path
    elif kind == "not a store":
        path = folder / "other.sqlite"
        conn = sqlite3.connect(path)
        conn.execute("CREATE TABLE users (name TEXT)")
        conn.execute("INSERT INTO users VALUES ('ada')")
        conn.commit()
        conn.close()
        return path
    path = folder / f"{kind.replace(' ', '_')}.sqlite"
    path.write_bytes(bytes(data))
    return path


CASES = {   # kind -> (error class, words its message must have)
    "truncated": (storecheck.DamagedStore, ["truncated", "symnas recover", "Still readable"]),
    "corrupt page": (storecheck.DamagedStore, ["damaged", "symnas recover", "Still readable"]),
    "zeroed page": (storecheck.DamagedStore, ["damaged", "symnas recover", "Still readable"]),
    "zeroed first page": (storecheck.DamagedStore, ["first page is all zeros"]),
    "not sqlite": (storecheck.NotSQLiteFile, ["not an SQLite file", "untouched"]),
    "not a store": (storecheck.NotAStore, ["not a symnas store", "tables: users", "untouched"]),
    "newer": (storecheck.NewerStore, ["schema 99", "Upgrade symnas", "untouched"]),
}


@pytest.mark.parametrize("kind", list(CASES))
def test_each_bad_file_gets_its_own_error_and_stays_byte_for_byte(good, tmp_path, kind, capsys):
    path = _damage(good, tmp_path, kind)
    cls, words = CASES[kind]
    before = _digest(path)
    for readonly in (False, True):
        with pytest.raises(cls) as info:
            SQLiteStore.open(path, readonly=readonly)
        assert isinstance(info.value, StoreError)       # `except StoreError` still catches it
        for w in words:
            assert w in str(info.value), (w, str(info.value))
        assert type(info.value) is cls                   # the diagnosis is specific
    with pytest.raises(cls):     # a refused resume
        sn.search(E.toy_space(), sn.algorithms.Random(), E.raises_on_b2, budget=310, seed=0,
                  dedup=False, storage=path, name="good", resume=True, progress=False)
    assert main(["show", str(path)]) == 1
    assert info.value.reason in capsys.readouterr().err
    assert _digest(path) == before
    assert not Path(f"{path}-wal").exists() and not Path(f"{path}-shm").exists()


def test_damage_that_reading_meets_later_is_diagnosed_too(good, tmp_path, monkeypatch, capsys):
    """Big files are opened for reading without quick_check; the damage is then met mid-read."""
    monkeypatch.setattr(storecheck, "READ_CHECK_BYTES", 0)        # every file counts as big
    path = _damage(good, tmp_path, "corrupt page")
    before = _digest(path)
    SQLiteStore.open(path, readonly=True)                          # the cheap checks pass
    assert main(["show", str(path)]) == 1
    err = capsys.readouterr().err
    assert "is damaged" in err and "symnas recover" in err and "Traceback" not in err
    assert main(["ls", str(tmp_path)]) == 0
    assert capsys.readouterr().err.startswith(f"symnas: skipped {path}: it is damaged")
    with pytest.raises(storecheck.DamagedStore):                   # writing always checks
        SQLiteStore.open(path)
    assert _digest(path) == before


def test_the_damaged_kinds_are_told_apart(good, tmp_path):
    reasons = {}
    for kind in CASES:
        try:
            SQLiteStore.open(_damage(good, tmp_path, kind))
        except storecheck.StoreFileError as err:
            reasons[kind] = (type(err).__name__, err.reason)
    assert len(reasons) == len(CASES) and len(set(reasons.values())) == len(CASES)
    assert len({name for name, _ in reasons.values()}) == 4


def test_recover_copies_every_readable_row_into_a_new_store(good, tmp_path, capsys):
    original = {r.id: r for r in SQLiteStore.open(good, readonly=True).trials("good")}
    for kind in ("corrupt page", "truncated"):
        bad = _damage(good, tmp_path, kind)
        before = _digest(bad)
        new = tmp_path / f"{bad.stem}-recovered.sqlite"
        assert main(["recover", str(bad), str(new)]) == 0
        out = capsys.readouterr().out
        assert "recovered 1 experiment(s)" in out and str(new) in out
        assert _digest(bad) == before                      # the damaged file was only read
        store = SQLiteStore.open(new)                      # whole: quick_check passes for writing
        rows = store.trials("good")
        assert 0 < len(rows) < len(original)
        for r in rows:                                     # each row exactly as recorded
            assert r == original[r.id]
        missing = sorted(set(range(max(original) + 1)) - {r.id for r in rows})
        assert ("trial ids missing" in out) == (missing[0] < max(r.id for r in rows))
        assert main(["show", str(new), "--limit", "3"]) == 0
        assert "experiment 'good'" in capsys.readouterr().out
    with pytest.raises(StoreError, match="exists"):          # never over an existing file
        recover(bad, new)


def test_ls_skips_each_bad_file_with_one_line_and_lists_the_rest(good, tmp_path, capsys):
    folder = tmp_path / "runs"
    folder.mkdir()
    shutil.copyfile(good, folder / "good.sqlite")
    for kind in CASES:
        _damage(good, folder, kind)
    assert main(["ls", str(folder)]) == 0
    out, err = capsys.readouterr()
    assert [line.split()[0] for line in out.splitlines()[1:]] == ["good"]
    warnings = err.splitlines()
    assert len(warnings) == len(CASES)
    assert all(w.startswith("symnas: skipped ") for w in warnings)


def _v1(good: Path, folder: Path) -> Path:
    """The same store in schema version 1 (the columns version 2 added dropped)."""
    path = folder / "v1.sqlite"
    shutil.copyfile(good, path)
    conn = sqlite3.connect(path)
    for table, col in [("experiments", c) for c in ("status", "owner", "heartbeat", "shared", "seq")] \
            + [("trials", c) for c in ("owner", "heartbeat")]:
        conn.execute(f"ALTER TABLE {table} DROP COLUMN {col}")
    conn.execute("UPDATE meta SET value='symnas.store/1' WHERE key='format'")
    conn.commit()
    conn.close()
    return path


def test_an_older_store_is_read_without_a_write_and_migrated_when_written(good, tmp_path):
    path = _v1(good, tmp_path)
    before = _digest(path)
    ro = SQLiteStore.open(path, readonly=True)
    assert ro.experiment("good").done == SQLiteStore.open(good, readonly=True).experiment().done
    assert ro.best().id == SQLiteStore.open(good, readonly=True).best().id
    ro.close()
    assert _digest(path) == before
    SQLiteStore.open(path).close()                                     # writing migrates
    conn = sqlite3.connect(path)
    assert conn.execute("SELECT value FROM meta").fetchone()[0] == f"symnas.store/{SCHEMA_VERSION}"
    conn.close()


# ---- read-only files and folders, for real ------------------------------------------------
_CHILD = r"""
import hashlib, json, sys
import symnas as sn
from symnas.store import SQLiteStore
from symnas.cli import main
from symnas.recover import recover
import evaluators_for_tests as E
path = sys.argv[1]
out = {}
try:
    SQLiteStore.open(path)
    out["write"] = "opened"
except Exception as err:
    out["write"] = [type(err).__name__, str(err)]
try:
    sn.search(E.toy_space(), sn.algorithms.Random(), E.raises_on_b2, budget=310, seed=0,
              dedup=False, storage=path, name="good", resume=True, progress=False)
    out["resume"] = "ran"
except Exception as err:
    out["resume"] = type(err).__name__
store = SQLiteStore.open(path, readonly=True)
out["read"] = [store.experiment().done, store.best().id]
out["ls"] = main(["ls", sys.argv[2]])
out["show"] = main(["show", path, "--limit", "2"])
print("RESULT" + json.dumps(out))
"""


# Root ignores permission bits through three capabilities; without them (setpriv drops them
# from the bounding set, so the exec'd child has none) root is bound by the bits like any user.
_NO_OVERRIDE = ["setpriv", "--bounding-set", "-dac_override,-dac_read_search,-fowner"]


def _child(path: Path) -> dict:
    import json
    prefix: list[str] = []
    if os.geteuid() == 0:
        if shutil.which("setpriv") is None:
            pytest.skip("running as root, and setpriv(1) is missing to make permissions bind")
        prefix = _NO_OVERRIDE
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")]))
    proc = subprocess.run([*prefix, sys.executable, "-c", _CHILD, str(path), str(path.parent)],
                          capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr
    line = next(x for x in proc.stdout.splitlines() if x.startswith("RESULT"))
    return json.loads(line[len("RESULT"):])


@pytest.mark.parametrize("what", ["folder", "file"])
def test_a_read_only_folder_or_file_is_read_but_never_written(good, tmp_path, what):
    folder = tmp_path / "runs"
    folder.mkdir()
    path = folder / "good.sqlite"
    shutil.copyfile(good, path)
    if what == "folder":
        os.chmod(folder, 0o555)
    else:
        os.chmod(path, 0o444)
    before = _digest(path)
    try:
        out = _child(path)
    finally:
        os.chmod(folder, 0o755)
    name, message = out["write"]
    assert name == "ReadOnlyStore"
    assert f"{'its folder' if what == 'folder' else 'the file'} is read-only" in message
    assert "readonly=True" in message and "chmod" in message
    assert out["resume"] == "ReadOnlyStore"
    ro = SQLiteStore.open(good, readonly=True)
    assert out["read"] == [ro.experiment().done, ro.best().id]
    assert out["ls"] == 0 and out["show"] == 0
    assert _digest(path) == before
    if what == "folder":
        assert sorted(os.listdir(folder)) == ["good.sqlite"]       # nothing created beside it


_NAMESPACE = r"""
set -e
mount -t tmpfs -o size=16m tmpfs "$1"
mkdir "$1/runs"
cp "$2" "$1/runs/good.sqlite"
mount -o remount,ro "$1"
exec "$3" -c "$4" "$1/runs/good.sqlite" "$1/runs"
"""


def test_a_store_on_a_read_only_filesystem_refuses_writes_even_for_root(good, tmp_path):
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        pytest.skip("needs root and unshare(1) to mount a private read-only tmpfs")
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")]))
    proc = subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-c", _NAMESPACE,
                           "sh", str(mnt), str(good), sys.executable, _CHILD],
                          capture_output=True, text=True, env=env, timeout=120)
    if proc.returncode != 0 and ("mount" in proc.stderr or "unshare" in proc.stderr):
        pytest.skip(f"mounting a private tmpfs is not permitted here: {proc.stderr.strip()[:200]}")
    assert proc.returncode == 0, proc.stderr
    import json
    out = json.loads(next(x for x in proc.stdout.splitlines() if x.startswith("RESULT"))[6:])
    assert out["write"][0] == "ReadOnlyStore" and "read-only" in out["write"][1]
    assert out["resume"] == "ReadOnlyStore"
    ro = SQLiteStore.open(good, readonly=True)
    assert out["read"] == [ro.experiment().done, ro.best().id]
    assert out["ls"] == 0 and out["show"] == 0
    assert not any(mnt.iterdir())       # the mount lived only in the child's namespace
