"""A MobileNetV2 / MnasNet-style factorized hierarchical space.

The network is MobileNetV2's (Sandler et al., 2018): a stride-2 3x3 stem, 7
stages of inverted-residual blocks, a 1x1 conv to 1280 channels, global
pooling, dropout and a linear classifier; channels are ``make_divisible(c *
width, 8)`` as in torchvision. As in MnasNet (Tan et al., 2019), each stage
chooses its own blocks; all blocks of a stage share the stage's choices:

==========================  =========================================  ===========
decision                    candidates (defaults)                       mixable
==========================  =========================================  ===========
``width``                   width multiplier 0.5, 0.75, 1.0             no
``stage{i}_kernel``         depthwise conv factory 3x3, 5x5, 7x7        yes
``stage{i}_expand``         expansion ratio 1, 3, 6                     no
``stage{i}_blocks``         MobileNetV2's ``n`` + (-1, 0, +1), >= 1     no
``stage{i}_se``             squeeze-and-excite factory: no_se, se       yes
==========================  =========================================  ===========

``i`` is 1..7. *Mixable* choices are over module factories with one
constructor signature and one output shape (kernel: ``(C, stride)``; SE:
``(C, C_in)``), so a supernet can replace them with a mixed op. Width,
expansion and block count change tensor shapes or the number of layers and
cannot be mixed in place.

The standard MobileNetV2 1.0 (``MOBILENET_V2``, 1000 classes) is in the space
and builds with 3,504,872 parameters, torchvision's ``mobilenet_v2`` count.

Example:

>>> import symnas as sn
>>> from symnas.spaces import mobilenet_space as M
>>> space = sn.spaces.mobilenet(num_classes=10, width_multipliers=(0.25, 0.5))   # = M.mobilenet
>>> model = space.sample(seed=0).build()               # CIFAR-size inputs work (32x32)
>>> full = M.build_mobilenet_v2()
>>> sum(p.numel() for p in full.parameters())     # torchvision's mobilenet_v2 count
3504872
>>> genome = M.to_genome(M.mobilenet(), M.MOBILENET_V2)   # the same network, in the space
"""
from __future__ import annotations

from collections import namedtuple
from collections.abc import Mapping, Sequence
from typing import Any

import pyglove as pg
import torch
from torch import nn

import symnas as sn

from .factories import Named, is_named, keep_old_paths
from .registry import register

__all__ = ["make_divisible", "V2_STAGES", "StageChoice", "MOBILENET_V2", "Stage", "MobileNet",
           "InvertedResidual", "DWConv3x3", "DWConv5x5", "DWConv7x7", "KERNELS", "NoSE",
           "SqueezeExcite", "mobilenet", "build_mobilenet_v2", "config_decisions", "to_genome",
           "genome_to_decisions"]


def make_divisible(v: float, divisor: int = 8, min_value: int | None = None) -> int:
    """Rounds ``v`` to a multiple of ``divisor``, never more than 10% down (torchvision's rule)."""
    min_value = divisor if min_value is None else min_value
    new_v = max(min_value, int(v + divisor / 2) // divisor * divisor)
    if new_v < 0.9 * v:
        new_v += divisor
    return new_v


#: MobileNetV2's stages: expansion t, channels c, blocks n, first stride s.
V2_STAGES: tuple[tuple[int, int, int, int], ...] = (
    (1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2),
    (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1))

#: A readable per-stage choice.
StageChoice = namedtuple("StageChoice", "expand kernel blocks se")


# ---- factories ----------------------------------------------------------------------
class _DWConv(nn.Sequential):
    kernel_size = 3

    def __init__(self, C: int, stride: int):
        k = self.kernel_size
        super().__init__(nn.Conv2d(C, C, k, stride, k // 2, groups=C, bias=False),
                         nn.BatchNorm2d(C), nn.ReLU6(inplace=True))


class DWConv3x3(_DWConv, metaclass=Named):
    """Depthwise 3x3 conv, BN, ReLU6: ``(C, stride)``."""
    name, kernel_size = "dw_conv_3x3", 3


class DWConv5x5(_DWConv, metaclass=Named):
    """Depthwise 5x5 conv, BN, ReLU6: ``(C, stride)``."""
    name, kernel_size = "dw_conv_5x5", 5


class DWConv7x7(_DWConv, metaclass=Named):
    """Depthwise 7x7 conv, BN, ReLU6: ``(C, stride)``."""
    name, kernel_size = "dw_conv_7x7", 7


#: ``{kernel size: depthwise conv factory}``.
KERNELS: dict[int, type[nn.Module]] = {3: DWConv3x3, 5: DWConv5x5, 7: DWConv7x7}


class NoSE(nn.Identity, metaclass=Named):
    """No squeeze-and-excite: ``(C, C_in)``, no parameters."""
    name, enabled = "no_se", False

    def __init__(self, C: int, C_in: int):
        super().__init__()


class SqueezeExcite(nn.Module, metaclass=Named):
    """Squeeze-and-excite on ``C`` channels, squeezed to ``max(1, C_in // 4)`` (MnasNet/EfficientNet)."""
    name, enabled = "se", True

    def __init__(self, C: int, C_in: int):
        super().__init__()
        squeezed = max(1, int(C_in * 0.25))
        self.reduce = nn.Conv2d(C, squeezed, 1)
        self.expand = nn.Conv2d(squeezed, C, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = x.mean((2, 3), keepdim=True)
        return x * torch.sigmoid(self.expand(torch.relu(self.reduce(s))))


def _readable(candidate: Any) -> Any:
    """A candidate as a person writes it: kernel size, SE on/off, or the number itself."""
    if is_named(candidate):
        if hasattr(candidate, "enabled"):
            return bool(candidate.enabled)
        return int(candidate.kernel_size)
    return candidate


# ---- modules ------------------------------------------------------------------------
def _conv_bn_relu6(C_in: int, C_out: int, kernel_size: int, stride: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(C_in, C_out, kernel_size, stride, kernel_size // 2, bias=False),
                         nn.BatchNorm2d(C_out), nn.ReLU6(inplace=True))


class InvertedResidual(nn.Module):
    """Expand (1x1, skipped when ``expand == 1``), depthwise conv, SE, project (1x1, linear)."""

    def __init__(self, C_in: int, C_out: int, stride: int, expand: float,
                 kernel: type[nn.Module] = DWConv3x3, se: type[nn.Module] = NoSE):
        super().__init__()
        hidden = int(round(C_in * expand))
        layers: list[nn.Module] = []
        if expand != 1:
            layers.append(_conv_bn_relu6(C_in, hidden, 1, 1))
        layers += [kernel(hidden, stride), se(hidden, C_in),
                   nn.Conv2d(hidden, C_out, 1, bias=False), nn.BatchNorm2d(C_out)]
        self.conv = nn.Sequential(*layers)
        self.use_residual = stride == 1 and C_in == C_out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv(x) if self.use_residual else self.conv(x)


@pg.members([
    ("channels", pg.typing.Int(min_value=1), "Output channels at width 1.0."),
    ("stride", pg.typing.Int(min_value=1), "Stride of the stage's first block."),
    ("blocks", pg.typing.Any(), "Number of blocks (int)."),
    ("expand", pg.typing.Any(), "Expansion ratio of every block."),
    ("kernel", pg.typing.Any(), "Depthwise conv factory, called as kernel(C, stride)."),
    ("se", pg.typing.Any(), "Squeeze-and-excite factory, called as se(C, C_in)."),
])
class Stage(pg.Object):
    """One stage: ``blocks`` inverted-residual blocks that share their choices."""


@sn.searchable
class MobileNet(nn.Module):
    """MobileNetV2's network over a list of :class:`Stage` s (torchvision's layout and init)."""

    def __init__(self, stages: list, width: float = 1.0, num_classes: int = 1000,
                 stem_channels: int = 32, last_channels: int = 1280, dropout: float = 0.2,
                 round_nearest: int = 8):
        super().__init__()
        if width <= 0:
            raise ValueError(f"MobileNet width must be > 0, got {width}.")
        C = make_divisible(stem_channels * width, round_nearest)
        last = make_divisible(last_channels * max(1.0, width), round_nearest)
        features: list[nn.Module] = [_conv_bn_relu6(3, C, 3, 2)]
        for stage in stages:
            C_out = make_divisible(stage.channels * width, round_nearest)
            for b in range(int(stage.blocks)):
                features.append(InvertedResidual(C, C_out, stage.stride if b == 0 else 1,
                                                 stage.expand, stage.kernel, stage.se))
                C = C_out
        features.append(_conv_bn_relu6(C, last, 1, 1))
        self.features = nn.Sequential(*features)
        self.classifier = nn.Sequential(nn.Dropout(dropout), nn.Linear(last, num_classes))
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm2d) and m.affine:
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0, 0.01)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.features(x)
        return self.classifier(torch.flatten(nn.functional.adaptive_avg_pool2d(x, 1), 1))


# ---- the space ----------------------------------------------------------------------
def _choice(candidates: Sequence[Any], name: str) -> Any:
    candidates = list(candidates)
    if not candidates:
        raise ValueError(f"mobilenet: no candidates for {name!r}; give at least one.")
    return candidates[0] if len(candidates) == 1 else sn.oneof(candidates, name=name)


@register("mobilenet", "mobilenet_v2")
def mobilenet(num_classes: int = 1000, width_multipliers: Sequence[float] = (0.5, 0.75, 1.0),
              kernel_sizes: Sequence[int] = (3, 5, 7), expansions: Sequence[float] = (1, 3, 6),
              depth_deltas: Sequence[int] = (-1, 0, 1),
              squeeze_excite: Sequence[bool] = (False, True),
              base: Sequence[tuple[int, int, int, int]] = V2_STAGES,
              dropout: float = 0.2) -> sn.Space:
    """The factorized hierarchical space around MobileNetV2 (see the module docstring).

    A candidate list of length one fixes that setting (no decision).

    Example:

    >>> space = mobilenet(num_classes=10, width_multipliers=(0.35, 0.5))
    >>> len(space.genome_spec), space.genome_spec.names[-1]
    (29, 'width')
    >>> fixed = mobilenet(kernel_sizes=(3,), squeeze_excite=(False,), width_multipliers=(1.0,))
    >>> len(fixed.genome_spec), fixed.genome_spec.names[:2]   # blocks and expansion per stage
    (14, ('stage1_blocks', 'stage1_expand'))
    """
    bad = [k for k in kernel_sizes if k not in KERNELS]
    if bad:
        raise ValueError(f"mobilenet kernel_sizes must be among {sorted(KERNELS)}, got {bad}.")
    stages = []
    for i, (_, c, n, s) in enumerate(base, start=1):
        depths = sorted({max(1, n + d) for d in depth_deltas})
        stages.append(Stage(
            channels=c, stride=s,
            blocks=_choice(depths, f"stage{i}_blocks"),
            expand=_choice(list(expansions), f"stage{i}_expand"),
            kernel=_choice([KERNELS[k] for k in kernel_sizes], f"stage{i}_kernel"),
            se=_choice([SqueezeExcite if on else NoSE for on in squeeze_excite], f"stage{i}_se")))
    net = MobileNet(stages=stages, width=_choice(list(width_multipliers), "width"),
                    num_classes=num_classes, dropout=dropout)
    return sn.Space(net, name="mobilenet")


def build_mobilenet_v2(width: float = 1.0, num_classes: int = 1000, dropout: float = 0.2) -> MobileNet:
    """Standard MobileNetV2 (1.0, 1000 classes: 3,504,872 parameters, as torchvision's)."""
    stages = [Stage(channels=c, stride=s, blocks=n, expand=t, kernel=DWConv3x3, se=NoSE)
              for t, c, n, s in V2_STAGES]
    return MobileNet(stages=stages, width=width, num_classes=num_classes, dropout=dropout)


# ---- readable decisions <-> genomes --------------------------------------------------
def config_decisions(stages: Sequence[StageChoice | tuple], width: float = 1.0) -> dict[str, Any]:
    """``{decision: readable value}`` of a per-stage config ``(expand, kernel, blocks, se)``.

    Example:

    >>> d = config_decisions([(1, 3, 1, False)] + [(6, 5, 2, True)] * 6, width=0.75)
    >>> len(d), d["width"], d["stage1_kernel"], d["stage7_se"]
    (29, 0.75, 3, True)
    """
    out: dict[str, Any] = {"width": width}
    for i, st in enumerate(stages, start=1):
        st = StageChoice(*st)
        out.update({f"stage{i}_expand": st.expand, f"stage{i}_kernel": int(st.kernel),
                    f"stage{i}_blocks": int(st.blocks), f"stage{i}_se": bool(st.se)})
    return out


#: Standard MobileNetV2 1.0 as readable decisions (use :func:`to_genome` for a space's genome).
MOBILENET_V2: dict[str, Any] = config_decisions(
    [StageChoice(t, 3, n, False) for t, _, n, _ in V2_STAGES], width=1.0)


def _settings(space: sn.Space) -> dict[str, Any]:
    """``{decision name: hyper primitive or fixed value}`` read from a mobilenet space's program."""
    value: Any = space.value
    if not isinstance(value, MobileNet):
        raise ValueError("expected a space made by symnas.spaces.mobilenet(...).")
    args: Any = value.sym_init_args
    out: dict[str, Any] = {"width": args.width}
    for i, st in enumerate(args.stages, start=1):
        for key in ("expand", "kernel", "blocks", "se"):
            out[f"stage{i}_{key}"] = st.sym_getattr(key)
    return out


def to_genome(space: sn.Space, decisions: Mapping[str, Any]) -> tuple:
    """The genome of readable decisions (e.g. :data:`MOBILENET_V2`) in a mobilenet ``space``.

    Example:

    >>> space = mobilenet()
    >>> genome = to_genome(space, MOBILENET_V2)
    >>> sum(p.numel() for p in space.build(genome).parameters())   # = build_mobilenet_v2()
    3504872
    """
    settings = _settings(space)
    unknown = sorted(set(decisions) - set(settings))
    if unknown:
        raise ValueError(f"unknown mobilenet decisions {unknown}; names are 'width' and "
                         "'stage{i}_expand|kernel|blocks|se' for i in 1..7.")
    genes = {name: k for k, name in enumerate(space.genome_spec.names)}
    genome = [0] * len(space.genome_spec)
    for name, setting in settings.items():
        if name not in decisions:
            if isinstance(setting, pg.hyper.OneOf):
                raise ValueError(f"decision {name!r} is missing; choose one of "
                                 f"{[_readable(c) for c in setting.candidates]}.")
            continue
        want = decisions[name]
        if isinstance(setting, pg.hyper.OneOf):
            options = [_readable(c) for c in setting.candidates]
            if want not in options:
                raise ValueError(f"{name}={want!r} is not in this space; choose one of {options}.")
            genome[genes[name]] = options.index(want)
        elif _readable(setting) != want:
            raise ValueError(f"this space fixes {name} to {_readable(setting)!r}, got {want!r}.")
    return space.genome_spec.canonical(genome)


def genome_to_decisions(space: sn.Space, genome: Sequence[int]) -> dict[str, Any]:
    """Readable decisions (fixed settings included) of a genome or DNA of a mobilenet ``space``."""
    genome = space.arch(genome).genome
    genes = {name: k for k, name in enumerate(space.genome_spec.names)}
    out = {}
    for name, setting in _settings(space).items():
        if isinstance(setting, pg.hyper.OneOf):
            out[name] = _readable(setting.candidates[genome[genes[name]]])
        else:
            out[name] = _readable(setting)
    return out


# Programs saved before the module was renamed name its classes by the old path.
keep_old_paths("symnas.spaces.mobilenet", Stage, MobileNet)
