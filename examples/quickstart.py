"""Quickstart: make an existing CNN searchable and search it with evolution on real CIFAR-10.

Three settings of an ordinary ``nn.Module`` become choices; each trial trains
the model for one epoch on the CIFAR-10 subset (``SYMNAS_DATA``) and reports
validation accuracy. The best architecture is printed and saved as JSON.

    SYMNAS_DATA=../shared/data python examples/quickstart.py
"""
from __future__ import annotations

import os

import torch
from torch import nn

import symnas as sn


@sn.searchable                      # the class body below is unchanged model code
class SmallCNN(nn.Module):
    def __init__(self, width: int = 32, kernel: int = 3, act: type = nn.ReLU,
                 num_classes: int = 10):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, width, kernel, padding=kernel // 2), nn.BatchNorm2d(width), act(),
            nn.MaxPool2d(2),
            nn.Conv2d(width, 2 * width, kernel, padding=kernel // 2), nn.BatchNorm2d(2 * width),
            act(),
            nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.classifier = nn.Linear(2 * width, num_classes)

    def forward(self, x):
        return self.classifier(self.features(x))


def main() -> None:
    tiny = os.environ.get("SYMNAS_EXAMPLE_BUDGET")       # CI runs every example tiny
    torch.set_num_threads(2)
    space = sn.Space(SmallCNN(width=sn.oneof([16, 32, 64]),
                              kernel=sn.oneof([3, 5]),
                              act=sn.oneof([nn.ReLU, nn.GELU])))
    task = sn.Task.cifar10(epochs=1, max_batches=3 if tiny else None)
    evolution = sn.algorithms.RegularizedEvolution(population_size=4, tournament_size=2)
    result = sn.search(space, evolution, task, budget=int(tiny) if tiny else 8, seed=0,
                       objective="valid_acc")
    best = result.best
    print(f"{len(result.trials)} trials; best valid accuracy {best.metrics['valid_acc']:.2f}% "
          f"with {best.decisions}")
    path = best.save(os.path.join("runs", "quickstart_best.json"))
    model = sn.load(path).build()                        # a plain nn.Module again
    print(f"saved {path}; rebuilt {type(model).__name__} with "
          f"{sum(p.numel() for p in model.parameters()):,} parameters")


if __name__ == "__main__":
    main()
