"""Swap the search algorithm with one line: Random, then RegularizedEvolution, same search.

    SYMNAS_DATA=../shared/data python examples/swap_algorithm.py
"""
from __future__ import annotations

import os

import torch
from quickstart import SmallCNN
from torch import nn

import symnas as sn


def main() -> None:
    tiny = os.environ.get("SYMNAS_EXAMPLE_BUDGET")
    torch.set_num_threads(2)
    space = sn.Space(SmallCNN(width=sn.oneof([16, 32, 64]), kernel=sn.oneof([3, 5]),
                              act=sn.oneof([nn.ReLU, nn.GELU])))
    task = sn.Task.cifar10(epochs=1, max_batches=3 if tiny else 10)
    budget = int(tiny) if tiny else 6
    for algorithm in (sn.algorithms.Random(),
                      sn.algorithms.RegularizedEvolution(population_size=3, tournament_size=2)):
        result = sn.search(space, algorithm, task, budget=budget, seed=0, objective="valid_acc")
        print(f"{type(algorithm).__name__:>22}: best {result.best.metrics['valid_acc']:.2f}% "
              f"{result.best.decisions}")


if __name__ == "__main__":
    main()
