"""Weight-sharing search records into the same store as black-box search, and resumes."""
from __future__ import annotations

import torch

import symnas as sn
from symnas.store import Store


def test_darts_records_to_the_store_and_a_finished_run_resumes_without_retraining(data_dir, tmp_path):
    torch.set_num_threads(1)
    space = sn.spaces.nasbench201(C=4, N=1)
    task = sn.Task.cifar10(batch_size=32)
    algo = sn.algorithms.DARTS(selection="magnitude", epochs=1, max_batches=2, quiet=True)
    path = tmp_path / "ws.sqlite"
    first = sn.search(space, algo, task, seed=0, storage=path, name="ws")   # no budget needed
    stored = Store.open(path).result("ws")
    assert [t.genome for t in stored.trials] == [t.genome for t in first.trials]
    assert stored.best.genome == first.best.genome
    again = sn.search(space, algo, task, budget=1, seed=0, storage=path, name="ws", resume=True)
    assert [t.genome for t in again.trials] == [t.genome for t in first.trials]
    assert again.best.metrics["supernet_acc"] == first.best.metrics["supernet_acc"]
