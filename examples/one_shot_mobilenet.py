"""One-shot NAS on a MobileNet-style space: one elastic supernet, evolution on it, a plain model back.

Every choice of the space is searchable at once -- width multiplier, expansion
ratio, number of blocks, kernel and squeeze-and-excite per stage -- and none is
frozen: the supernet derives shared weights from the space's own program
(widths and depths are slices of one largest network, kernels and SE are mixed
ops). It is trained with the sandwich rule (largest, smallest and random
subnets each step, in-place distillation), then searched by regularized
evolution at the cost of forward passes (inherited weights, BatchNorm
recalibrated) under a parameter budget, and the chosen architecture comes back
as an ordinary ``MobileNet`` with its inherited weights, which is fine-tuned
on its own.

    python examples/one_shot_mobilenet.py                  # a few minutes on 2 CPU cores
    SYMNAS_EXAMPLE_BUDGET=2 python examples/one_shot_mobilenet.py   # CI: a few batches
"""
from __future__ import annotations

import os

import torch

import symnas as sn
from symnas.supernet import Supernet


def main() -> None:
    tiny = int(os.environ.get("SYMNAS_EXAMPLE_BUDGET", "0"))
    torch.set_num_threads(1 if tiny else max(1, min(2, os.cpu_count() or 1)))
    if tiny:
        space = sn.spaces.mobilenet(num_classes=10, width_multipliers=(0.25, 0.35),
                                    expansions=(1, 3), depth_deltas=(-1, 0))
        train = dict(epochs=1, max_batches=tiny, batch_size=16)
        budget, finetune = max(2, 2 * tiny), dict(epochs=1, max_batches=tiny)
        task = sn.Task.cifar10(device="auto", batch_size=16, eval_batch_size=64, valid_size=64)
    else:
        space = sn.spaces.mobilenet(num_classes=10, width_multipliers=(0.35, 0.5, 0.75))
        train = dict(epochs=3, max_batches=60, batch_size=64)
        budget, finetune = 100, dict(epochs=2, max_batches=60)
        task = sn.Task.cifar10(device="auto", batch_size=64, eval_batch_size=256)

    torch.manual_seed(0)
    net = Supernet(space, affine=None, track_running_stats=None)   # BN as MobileNet writes it
    store = sum(p.numel() for p in net.weight_parameters())
    largest = net.count_params(net.extreme(largest=True))
    print(f"supernet over {len(space.decisions)} decisions: {store:,} weights "
          f"({store / largest:.2f}x the largest subnet)")

    sandwich = sn.algorithms.Sandwich(**train)
    stats = sandwich.train(net.to(task.torch_device), task, seed=0)
    print(f"sandwich training: {stats['train_steps']} steps, "
          f"{stats['train_images_per_s']:.0f} images/s")

    # The one-line swap: any black-box algorithm searches the trained supernet.
    limit = 1.0 if tiny else 0.5
    evaluator = net.evaluator(task, calibration_batches=1 if tiny else 4)
    result = sn.search(space, "evolution", evaluator, budget=budget, seed=0,
                       constraints=[f"params_M <= {limit}"], name="one_shot_mobilenet", progress=False)
    best = result.best
    print(f"evolution on the supernet: {len(result.trials)} architectures, best one-shot "
          f"accuracy {best.metrics['valid_acc']:.1f}% with {best.metrics['params_M']:.2f}M "
          f"parameters (<= {limit}M)")

    model = net.subnet(best.genome, task, batches=1 if tiny else 8)   # a plain MobileNet
    before = task.accuracy(model)
    task.with_(**finetune).train(model, seed=0)
    print(f"chosen {type(model).__name__}: inherited {before:.1f}% -> fine-tuned "
          f"{task.accuracy(model):.1f}% valid accuracy; decisions {best.decisions}")


if __name__ == "__main__":
    main()
