"""Where symnas finds reference data (CIFAR-10 subset, NAS-Bench-201 CSV).

The location is a setting, never a hard-coded path: the ``SYMNAS_DATA``
environment variable, or the ``data_dir=`` argument of the functions that read
data. The folder holds ``cifar10/cifar10_subset.npz`` and ``nb201/nb201.csv``.

A relative path is resolved once, where it is read: against the working
directory at that first read. The absolute path is then written back to
``SYMNAS_DATA``, so later reads, ``os.chdir`` and child processes (worker
processes, scripts run in another folder) all see the same folder.

Example::

    import os
    os.environ["SYMNAS_DATA"] = "/path/to/data"
    from symnas.data import data_path
    data_path("cifar10/cifar10_subset.npz")
"""
from __future__ import annotations

import os
from pathlib import Path

ENV_VAR = "SYMNAS_DATA"


def data_dir(data_dir: str | os.PathLike | None = None) -> Path:
    """Returns the data folder (absolute): the argument if given, else ``$SYMNAS_DATA``.

    A relative ``$SYMNAS_DATA`` is resolved against the current working
    directory and exported back as an absolute path (see the module docstring).
    """
    from_env = data_dir is None
    chosen = os.environ.get(ENV_VAR) if from_env else data_dir
    if not chosen:
        raise FileNotFoundError(
            f"symnas needs its data folder: set the {ENV_VAR} environment variable "
            "(or pass data_dir=...) to the folder that holds "
            "cifar10/cifar10_subset.npz and nb201/nb201.csv.")
    given = Path(chosen).expanduser()
    path = given if given.is_absolute() else Path.cwd() / given
    if not path.is_dir():
        rel = ("" if given.is_absolute()
               else f" (the relative path {str(given)!r} read in {os.getcwd()!r})")
        raise FileNotFoundError(
            f"symnas data folder {str(path)!r}{rel} (from {ENV_VAR} or data_dir=) does not "
            "exist; point it at the folder that holds cifar10/ and nb201/.")
    path = path.resolve()
    if from_env and str(path) != chosen:
        os.environ[ENV_VAR] = str(path)   # resolved once: children and later reads agree
    return path


def data_path(relative: str, data_dir_: str | os.PathLike | None = None) -> Path:
    """Returns ``<data folder>/<relative>`` and checks that the file exists."""
    path = data_dir(data_dir_) / relative
    if not path.exists():
        raise FileNotFoundError(
            f"{str(path)!r} is missing from the symnas data folder; "
            f"check {ENV_VAR} points at the folder that holds {relative}.")
    return path
