"""Multi-fidelity search: stop bad trainings early, spend epochs where they pay.

1. On the NAS-Bench-201 table, whose cells have 12- and 200-epoch results,
   DEHB and ASHA evaluate most cells at 12 epochs (a 12-epoch trial costs
   12/200 of a full one) and only the promising ones at 200; regularized
   evolution at full fidelity gets the same budget of full evaluations.
2. Real training on the CIFAR-10 subset: ASHA promotes a CNN from 1 to 3
   epochs, and the promoted trial continues the first rung's training from
   its checkpoint; then evolution with a median pruner stops the runs whose
   validation accuracy after an epoch is below the median. Both are recorded,
   and ``symnas show`` lists each trial's fidelity and where it was stopped.

    SYMNAS_DATA=../shared/data python examples/multi_fidelity.py
    SYMNAS_EXAMPLE_BUDGET=2 python examples/multi_fidelity.py      # CI: a few seconds
"""
from __future__ import annotations

import os

import torch
from torch import nn

import symnas as sn
from symnas.cli import main as symnas_cli
from symnas.evaluators import nb201


@sn.searchable
class SmallCNN(nn.Module):
    def __init__(self, width: int = 16, kernel: int = 3, num_classes: int = 10):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, width, kernel, padding=kernel // 2), nn.BatchNorm2d(width), nn.ReLU(),
            nn.MaxPool2d(2), nn.Conv2d(width, width, 3, padding=1), nn.BatchNorm2d(width),
            nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.classifier = nn.Linear(width, num_classes)

    def forward(self, x):
        return self.classifier(self.features(x))


def table_search(budget: int) -> None:
    space = sn.spaces.nasbench201()
    table = nb201.evaluator("valid_cifar10")      # valid accuracy at the trial's epochs
    for algo in ("dehb", "asha", "evolution"):
        fidelity = [12, 200] if algo != "evolution" else None
        evaluate = table if fidelity else nb201.evaluator("valid200_cifar10")
        r = sn.search(space, algo, evaluate, budget=budget, fidelity=fidelity, seed=0)
        best = r.best
        test = nb201.query(best.arch)["test200_cifar10"]
        cheap = sum(1 for t in r.trials if t.fidelity == 12)
        print(f"{algo:>9}: {len(r.trials):4d} trials ({cheap} at 12 epochs) for {budget} full "
              f"evaluations; best cell {nb201.index_of(best.arch)}, test accuracy {test:.2f}%")


def training_search(budget: float, tiny: bool) -> None:
    space = sn.Space(SmallCNN(width=sn.oneof([4, 6, 8] if tiny else [8, 16, 32]),
                              kernel=sn.oneof([3, 5])))
    task = sn.Task.cifar10(epochs=3, max_batches=2 if tiny else 20,
                           eval_batch_size=512, valid_size=200 if tiny else 1017)
    store = os.path.join("runs", "multi_fidelity.sqlite")
    asha = sn.search(space, sn.algorithms.ASHA(eta=2), task, budget=budget, fidelity=[1, 3],
                     seed=0, storage=store, name="asha", resume=True)
    promoted = [t for t in asha.trials if t.continues is not None]
    for t in promoted:
        print(f"trial {t.id} continued trial {t.continues}'s training from epoch "
              f"{t.curve[0][0] - 1} to {t.fidelity} (cost {t.cost:.2f} full evaluations)")
    median = sn.pruners.get("median", min_trials=2)        # judge from the third trial on
    pruned = sn.search(space, "evolution", task, budget=budget, fidelity=3, pruner=median,
                       seed=0, storage=store, name="median", resume=True)
    stopped = [t for t in pruned.trials if t.status == "pruned"]
    print(f"median pruner: {len(pruned.trials)} trials, {len(stopped)} stopped early; best "
          f"valid accuracy {pruned.best.metrics['valid_acc']:.1f}%")
    symnas_cli(["show", store, "-e", "median", "--limit", "6"])


def main() -> None:
    tiny = os.environ.get("SYMNAS_EXAMPLE_BUDGET")
    torch.set_num_threads(2)
    table_search(int(tiny) * 5 if tiny else 100)
    training_search(float(tiny) * 2 if tiny else 12, bool(tiny))


if __name__ == "__main__":
    main()
