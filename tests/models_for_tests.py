"""Small real models used by the core tests (importable, so JSON reloads find them)."""
from __future__ import annotations

import torch
from torch import nn

import symnas as sn


@sn.searchable
class ConvNet(nn.Module):
    """An ordinary small CNN; the decorator only makes its arguments searchable."""

    def __init__(self, width: int = 8, kernel: int = 3, act: type = nn.ReLU, depth: int = 1,
                 num_classes: int = 10):
        super().__init__()
        layers = [nn.Conv2d(3, width, kernel, padding=kernel // 2), nn.BatchNorm2d(width), act()]
        for _ in range(depth - 1):
            layers += [nn.Conv2d(width, width, kernel, padding=kernel // 2), nn.BatchNorm2d(width), act()]
        self.features = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.head = nn.Linear(width, num_classes)

    def forward(self, x):
        return self.head(self.features(x))


@sn.searchable
class Block(nn.Module):
    def __init__(self, c_in: int, c_out: int, act: type = nn.ReLU):
        super().__init__()
        self.lin = nn.Linear(c_in, c_out)
        self.act = act()

    def forward(self, x):
        return self.act(self.lin(x))


@sn.searchable
class TwoBlocks(nn.Module):
    def __init__(self, first: nn.Module, second: nn.Module, out: int = 2):
        super().__init__()
        self.first, self.second = first, second
        self.out = nn.Linear(8, out)

    def forward(self, x):
        return self.out(self.second(self.first(x)))


@sn.searchable
def mlp(width: int = 8, act: type = nn.ReLU) -> nn.Module:
    """A builder function made searchable."""
    return nn.Sequential(nn.Linear(4, width), act(), nn.Linear(width, 2))


class Existing(nn.Module):
    """Unchanged code with choices made inside __init__ (for sn.trace)."""

    def __init__(self):
        super().__init__()
        width = sn.oneof([8, 16], name="width")
        self.l1 = nn.Linear(4, width)
        self.act = sn.oneof([lambda: nn.ReLU(),
                             lambda: nn.Sequential(nn.Linear(width, width),
                                                   sn.oneof([nn.ReLU, nn.GELU], name="inner")())],
                            name="act")
        self.l2 = nn.Linear(width, sn.oneof([8, 16], name="width"))   # same name: same decision

    def forward(self, x):
        return self.l2(self.act(self.l1(x)))


def make_existing() -> nn.Module:
    return Existing()


def subnet_agrees(net, genome, x: torch.Tensor) -> nn.Module:
    """``net.subnet(genome)`` in eval mode, checked to compute what the supernet (in eval mode)
    computes in that configuration."""
    model = net.subnet(genome).eval()
    with net.using(genome), torch.no_grad():
        assert torch.allclose(net(x), model(x), atol=1e-6), genome
    return model
