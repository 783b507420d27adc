"""Weight-sharing search records into the same store as black-box search, and resumes."""
from __future__ import annotations

import contextlib
import sqlite3

import torch
from log_helpers import symnas_log

import symnas as sn
from symnas.store import Store


def _rows(path) -> tuple[list, list]:
    """Every trial row (all columns, timestamps included) and the experiment ids of the file."""
    with contextlib.closing(sqlite3.connect(path)) as conn:
        trials = conn.execute("SELECT * FROM trials ORDER BY experiment, id").fetchall()
        experiments = conn.execute("SELECT id FROM experiments ORDER BY id").fetchall()
    return trials, experiments


def test_darts_records_to_the_store_and_a_finished_run_resumes_without_retraining(data_dir, tmp_path):
    torch.set_num_threads(1)
    space = sn.spaces.nasbench201(C=4, N=1)
    task = sn.Task.cifar10(batch_size=32)
    algo = sn.algorithms.DARTS(selection="magnitude", epochs=1, max_batches=2, quiet=True)
    path = tmp_path / "ws.sqlite"
    with symnas_log() as lines:
        first = sn.search(space, algo, task, seed=0, storage=path, name="ws")   # no budget needed
    assert [line.split()[2] for line in lines if line.startswith("[darts] epoch")] == ["1/1"]
    stored = Store.open(path).result("ws")
    assert [t.genome for t in stored.trials] == [t.genome for t in first.trials]
    assert stored.best.genome == first.best.genome
    trials_before, experiments_before = _rows(path)
    assert len(trials_before) == len(first.trials) == 1 + algo.top_k

    with symnas_log() as lines:
        again = sn.search(space, algo, task, budget=1, seed=0, storage=path, name="ws",
                          resume=True)
    assert not [line for line in lines if line.startswith("[darts]")]     # no supernet training
    trials_after, experiments_after = _rows(path)
    assert trials_after == trials_before          # no new row; ids, timestamps, metrics untouched
    assert experiments_after == experiments_before
    assert [t.genome for t in again.trials] == [t.genome for t in first.trials]
    assert again.best.metrics["supernet_acc"] == first.best.metrics["supernet_acc"]


class _WhereDoICheckpoint(sn.protocols.WeightSharingAlgorithm):
    """A weight-sharing algorithm that only notes its session's ``checkpoint_path``."""

    def __init__(self):
        self.paths: list = []

    def __repr__(self) -> str:
        return "_WhereDoICheckpoint()"

    def run(self, space, evaluator, session):
        self.paths.append(session.checkpoint_path)
        session.report(space.genome_spec.canonical([0]), {"reward": 1.0})


def test_the_session_says_where_a_checkpoint_goes_beside_a_file_store_and_none_in_memory(tmp_path):
    from symnas.algorithms.checkpoint import checkpoint_path

    space = sn.Space(sn.oneof([1, 2], name="x"))
    algo = _WhereDoICheckpoint()
    sn.search(space, algo, lambda arch: 1.0, storage=tmp_path / "w.sqlite", name="spos 1/a",
              progress=False)
    sn.search(space, algo, lambda arch: 1.0, progress=False)          # in memory
    assert algo.paths == [f"{tmp_path / 'w.sqlite'}.spos_1_a.ckpt", None]

    class InMemory(sn.protocols.Session):         # a Session that says nothing keeps none
        seed, objectives, name = 0, None, None

        def report(self, genome, metrics):
            raise AssertionError("not called")

    assert InMemory().checkpoint_path is None and checkpoint_path(InMemory()) is None
    assert checkpoint_path(InMemory(), tmp_path / "x.ckpt") == str(tmp_path / "x.ckpt")
