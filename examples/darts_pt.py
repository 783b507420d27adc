"""DARTS with perturbation-based selection (DARTS-PT) on NAS-Bench-201 and CIFAR-10.

The supernet is derived from the NAS-Bench-201 Space itself (every edge choice
becomes a mixed op; the 3N cells share one alpha per edge), trained by DARTS
on the real CIFAR-10 subset, and the cell is chosen by perturbation: each
candidate op's influence on the supernet's accuracy. The selected cell is then
looked up in the NAS-Bench-201 table, next to the cell magnitude selection
(argmax alpha) would have picked.

    python examples/darts_pt.py                              # C=8, N=1, ~10 min on 2 CPU cores
    SYMNAS_EXAMPLE_BUDGET=1 python examples/darts_pt.py      # CI: C=4, N=1, a few batches
"""
from __future__ import annotations

import os

import torch

import symnas as sn
from symnas.evaluators import nb201


def main() -> None:
    tiny = bool(os.environ.get("SYMNAS_EXAMPLE_BUDGET"))
    torch.set_num_threads(1 if tiny else 2)
    space = sn.spaces.nasbench201(C=4 if tiny else 8, N=1)
    task = sn.Task.cifar10(device="auto", eval_batch_size=128 if tiny else 512)
    if tiny:
        algo = sn.algorithms.DARTS(selection="perturbation", epochs=1, batch_size=32,
                                   max_batches=2, tune_epochs=1, tune_batches=1,
                                   eval_batches=1, top_k=1)
    else:
        algo = sn.algorithms.DARTS(selection="perturbation", epochs=6, max_batches=16,
                                   tune_epochs=1, tune_batches=8, eval_batches=16, top_k=1)
    result = sn.search(space, algo, task, budget=1, seed=0)

    table = nb201.NB201Table()
    selected, magnitude = result.trials[0], result.trials[1]
    for label, trial in (("perturbation (DARTS-PT)", selected), ("magnitude (DARTS)", magnitude)):
        acc = table.query(trial.genome)["test200_cifar10"]
        print(f"{label:24s} {nb201.genome_to_arch_str(trial.genome)}  "
              f"NAS-Bench-201 test accuracy {acc:.2f}%")
    model = result.best.build()            # the selected cell's network, a plain nn.Module
    print(f"selected network: {sum(p.numel() for p in model.parameters()):,} parameters")


if __name__ == "__main__":
    main()
