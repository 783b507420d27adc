"""Shared fixtures. The one place tests learn where the reference data lives.

``SYMNAS_DATA`` names the data folder; CI sets it (see .ci/run). Without it,
the fixture uses the checkout's sibling ``shared/data`` folder, the layout of
every developer checkout and CI run.
"""
from __future__ import annotations

import os
from pathlib import Path

import pytest


def _data_dir() -> Path:
    env = os.environ.get("SYMNAS_DATA")
    path = Path(env) if env else Path(__file__).resolve().parents[2] / "shared" / "data"
    return path


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """The reference data folder (NAS-Bench-201 CSV, CIFAR-10 subset); sets SYMNAS_DATA."""
    path = _data_dir()
    assert (path / "nb201" / "nb201.csv").exists(), (
        f"reference data not found at {path}: set SYMNAS_DATA to the folder holding nb201/ and cifar10/")
    os.environ["SYMNAS_DATA"] = str(path)
    return path


@pytest.fixture(autouse=True)
def _seed_torch():
    import torch
    torch.manual_seed(0)
    torch.set_num_threads(2)
    yield
