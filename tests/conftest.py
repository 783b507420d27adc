"""Shared fixtures. The one place tests learn where the reference data lives.

``SYMNAS_DATA`` names the data folder; README's test command sets it to
``../shared/data``, relative to the checkout pytest is started in. It is
resolved here once, against the directory pytest was started from, and
exported as an absolute path, so tests that change directory and the
processes they start (examples run in a temporary folder) find the same
folder. Without it, the fixture uses the checkout's sibling ``shared/data``
folder, the layout of every developer checkout and CI run.

Markers (registered in pyproject.toml): ``slow`` marks the tests that take
tens of seconds on a 2-core machine; ``-m "not slow"`` leaves them out
(``.ci/run`` runs them in a second pass).
"""
from __future__ import annotations

import os
from pathlib import Path

import pytest

_INSTALL_HINT = ("symnas is not installed: the subpackages symnas.spaces and symnas.algorithms "
                 "live in spaces/ and algorithms/ and exist only through the install's "
                 "package-dir mapping. Run `pip install -e \".[test]\"` in the checkout, "
                 "then `python -m pytest tests`.")


def _check_installed() -> None:
    try:
        import symnas.algorithms  # noqa: F401
        import symnas.spaces  # noqa: F401
    except ModuleNotFoundError as e:
        if e.name in ("symnas", "symnas.spaces", "symnas.algorithms"):
            raise pytest.UsageError(_INSTALL_HINT) from None
        raise


def _resolve_data(start: Path) -> Path:
    env = os.environ.get("SYMNAS_DATA")
    if not env:
        return Path(__file__).resolve().parents[2] / "shared" / "data"
    path = Path(env).expanduser()
    return (path if path.is_absolute() else start / path).resolve()


def pytest_configure(config: pytest.Config) -> None:
    _check_installed()
    os.environ["SYMNAS_DATA"] = str(_resolve_data(Path(config.invocation_params.dir)))


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """The reference data folder (NAS-Bench-201 CSV, CIFAR-10 subset), absolute; in SYMNAS_DATA."""
    path = Path(os.environ["SYMNAS_DATA"])
    assert (path / "nb201" / "nb201.csv").exists(), (
        f"reference data not found at {path}: set SYMNAS_DATA to the folder holding nb201/ "
        "and cifar10/")
    return path


@pytest.fixture(autouse=True)
def _seed_torch():
    import torch
    torch.manual_seed(0)
    torch.set_num_threads(2)
    yield


@pytest.fixture
def one_thread():
    """One intra-op thread (for supernet tests: on a shared 2-core machine two threads contend
    badly); use it with ``pytestmark = pytest.mark.usefixtures("one_thread")``."""
    import torch
    torch.set_num_threads(1)
    yield
