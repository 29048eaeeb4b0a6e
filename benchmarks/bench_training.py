"""The one training loop against a plain hand-written PyTorch loop: same model, data, seed and batches.

.venv/bin/python benchmarks/bench_training.py [--samples 12000] [--repeats 5]
"""

from __future__ import annotations

import argparse

import numpy as np
import torch
import torch.nn.functional as F
from common import alternate, benchmark_data, ratio_line

from modeldeed.models import build_model, spec_for_data
from modeldeed.training import TrainConfig, epoch_order, train


def plain_loop(model, data, config):
    optimizer = torch.optim.SGD(
        model.parameters(), lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay
    )
    model.train()
    for epoch in range(config.epochs):
        order = torch.from_numpy(epoch_order(config.seed, epoch, len(data)))
        for start in range(0, len(data), config.batch_size):
            index = order[start : start + config.batch_size]
            optimizer.zero_grad(set_to_none=True)
            F.cross_entropy(model(data.x[index]), data.y[index]).backward()
            optimizer.step()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--samples", type=int, default=12000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--model", default="cnn")
    args = parser.parse_args()
    splits = benchmark_data(limit=args.samples)
    data = splits.train
    config = TrainConfig(epochs=1, batch_size=100, seed=0)
    spec = spec_for_data(args.model, data.input_shape, data.num_classes)
    print(
        f"data {data.name}, {len(data)} samples, model {args.model}, batch {config.batch_size}, "
        f"{torch.get_num_threads()} threads"
    )
    models = {}

    def ours():
        models["ours"] = build_model(spec, seed=0)
        train(models["ours"], data, config, progress=False)

    def plain():
        models["plain"] = build_model(spec, seed=0)
        plain_loop(models["plain"], data, config)

    times = alternate({"modeldeed.train": ours, "plain loop": plain}, args.repeats)
    same = all(
        torch.equal(a, b) for a, b in zip(models["ours"].state_dict().values(), models["plain"].state_dict().values())
    )
    print(ratio_line(times, "modeldeed.train", "plain loop"))
    print(f"identical final weights: {same}")
    np.testing.assert_(same, "the two loops must compute the same updates")


if __name__ == "__main__":
    main()
