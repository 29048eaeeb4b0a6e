"""A small multilayer perceptron: the architecture that zero-knowledge watermark verification supports."""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn


class MLP(nn.Module):
    """Flatten, then (Linear, ReLU) per hidden width, then a Linear head.

    Why its own architecture: a proof circuit can only mirror a forward pass it knows exactly, so
    modeldeed.zk accepts this class (and nothing that merely looks like it). The layers sit in one
    `nn.Sequential` named `layers`, so the state dict names are `layers.1.weight`, `layers.3.weight`, ...
    """

    def __init__(
        self,
        in_channels: int = 1,
        num_classes: int = 10,
        input_size: Sequence[int] = (8, 8),
        hidden: Sequence[int] = (16,),
    ) -> None:
        super().__init__()
        if len(input_size) != 2 or min(int(d) for d in input_size) < 1:
            raise ValueError(f"mlp needs an input size [H, W], got {list(input_size)}")
        widths = [int(w) for w in hidden]
        if any(w < 1 for w in widths):
            raise ValueError(f"mlp hidden widths must be positive, got {widths}")
        features = int(in_channels) * int(input_size[0]) * int(input_size[1])
        layers: list[nn.Module] = [nn.Flatten()]
        for width in widths:
            layers += [nn.Linear(features, width), nn.ReLU()]
            features = width
        layers.append(nn.Linear(features, int(num_classes)))
        self.layers = nn.Sequential(*layers)
        self.hidden = tuple(widths)

    def forward(self, x):  # type: ignore[no-untyped-def]
        return self.layers(x)

    def linear_layers(self) -> list[nn.Linear]:
        return [m for m in self.layers if isinstance(m, nn.Linear)]
