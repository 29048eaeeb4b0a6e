"""Pruning attacks: magnitude weight pruning (sparsity) and fine-pruning (Liu et al., RAID 2018).

Both keep pruned weights at zero while they fine-tune, through a hook on the one training loop that
re-applies the masks after every step.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import nn

from ..data import Dataset
from ..errors import ModeldeedError
from ..training import Batch, Hook, TrainState, iterate_chunks
from .base import AttackContext, Outcome
from .finetune import TuningAttack, tune

PRUNABLE = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear)


class KeepMasked(Hook):
    """After every optimiser step, multiply each masked tensor by its 0/1 mask (pruned weights stay pruned)."""

    def __init__(self, masks: list[tuple[torch.Tensor, torch.Tensor]]) -> None:
        self.masks = masks

    def on_step_end(self, state: TrainState, batch: Batch, loss: torch.Tensor) -> None:
        apply_masks(self.masks)


@torch.no_grad()
def apply_masks(masks: list[tuple[torch.Tensor, torch.Tensor]]) -> None:
    for tensor, mask in masks:
        tensor.mul_(mask.to(tensor.device))


def prunable_weights(model: nn.Module) -> list[tuple[str, torch.Tensor]]:
    """The weight tensors of every convolution and linear layer (biases and norms are left alone)."""
    return [
        (f"{name}.weight" if name else "weight", module.weight)
        for name, module in model.named_modules()
        if isinstance(module, PRUNABLE)
    ]


def magnitude_masks(model: nn.Module, sparsity: float, scope: str = "layer") -> list[tuple[torch.Tensor, torch.Tensor]]:
    """0/1 masks that zero the `sparsity` share of smallest-magnitude weights, per layer or over all layers."""
    weights = [w for _, w in prunable_weights(model)]
    if not weights:
        raise ModeldeedError("the model has no convolution or linear weights to prune")
    if scope == "layer":
        return [(w, _smallest_mask(w.detach().abs().flatten(), sparsity).view_as(w)) for w in weights]
    if scope == "global":
        flat = torch.cat([w.detach().abs().flatten() for w in weights])
        mask = _smallest_mask(flat, sparsity)
        out, start = [], 0
        for w in weights:
            out.append((w, mask[start : start + w.numel()].view_as(w)))
            start += w.numel()
        return out
    raise ModeldeedError(f"pruning scope must be 'layer' or 'global', got {scope!r}")


def _smallest_mask(magnitudes: torch.Tensor, sparsity: float) -> torch.Tensor:
    k = int(round(sparsity * magnitudes.numel()))
    mask = torch.ones_like(magnitudes)
    if k > 0:
        mask[torch.argsort(magnitudes, stable=True)[:k]] = 0.0
    return mask


def sparsity_of(masks: list[tuple[torch.Tensor, torch.Tensor]]) -> float:
    total = sum(m.numel() for _, m in masks)
    return float(sum(int((m == 0).sum()) for _, m in masks)) / max(total, 1)


@dataclass(frozen=True, kw_only=True)
class MagnitudePruning(TuningAttack):
    """Magnitude weight pruning: zero the smallest weights, optionally fine-tune with the mask held.

    Paper: Han et al., "Learning both Weights and Connections for Efficient Neural Networks", NeurIPS 2015;
    as a watermark removal attack: Uchida et al. 2017, Lukas et al. (SoK, S&P 2022, "weight pruning").

    Threat model: white-box weights; no data needed unless `epochs` > 0.

    Arguments:
        sparsity (float): share of convolution/linear weights set to zero, in [0, 1). Default: 0.5.
        scope (str): "layer" (each layer pruned to `sparsity`) or "global" (one magnitude threshold). Default: "layer".
        epochs (int): fine-tuning epochs after pruning, pruned weights held at zero. Default: 0.
        lr, batch_size, momentum, weight_decay, augment, data_fraction, seed, device, progress: see TuningAttack.

    Returns: (pruned model, AttackResult); details["sparsity"] is the share of zeros reached.

    Example:
        >>> attacked, result = MagnitudePruning(sparsity=0.8)(model, splits.train, test=splits.test, verifier=v)
    """

    name: ClassVar[str] = "prune"
    sparsity: float = 0.5
    scope: str = "layer"
    epochs: int = 0

    def __post_init__(self) -> None:
        super().__post_init__()
        if not 0.0 <= self.sparsity < 1.0:
            raise ModeldeedError(f"prune: sparsity must lie in [0, 1), got {self.sparsity}")
        if self.scope not in ("layer", "global"):
            raise ModeldeedError(f"prune: scope must be 'layer' or 'global', got {self.scope!r}")

    def run(self, model: nn.Module, data: Dataset, context: AttackContext) -> Outcome:
        masks = magnitude_masks(model, self.sparsity, self.scope)
        apply_masks(masks)
        tune(model, data, self.train_config(), hooks=[KeepMasked(masks)], progress=context.progress)
        return Outcome(model, {"sparsity": sparsity_of(masks), "fine_tune_epochs": self.epochs})


def last_conv(model: nn.Module) -> tuple[str, nn.Conv2d, nn.BatchNorm2d | None]:
    """The last Conv2d in registration order, and a BatchNorm2d registered right after it, if one is."""
    modules = list(model.named_modules())
    for i in range(len(modules) - 1, -1, -1):
        name, module = modules[i]
        if isinstance(module, nn.Conv2d):
            following = modules[i + 1][1] if i + 1 < len(modules) else None
            norm = (
                following
                if isinstance(following, nn.BatchNorm2d) and following.num_features == module.out_channels
                else None
            )
            return name, module, norm
    raise ModeldeedError("fine-pruning needs a model with at least one Conv2d layer")


@torch.no_grad()
def mean_channel_activation(
    model: nn.Module, conv: nn.Conv2d, data: Dataset, device: str, batch_size: int = 500
) -> torch.Tensor:
    """Mean ReLU activation of each output channel of `conv` over `data` (eval mode)."""
    total = torch.zeros(conv.out_channels, dtype=torch.float64)
    captured: list[torch.Tensor] = []
    # Reduce inside the hook: an in-place activation after the convolution would overwrite its output.
    handle = conv.register_forward_hook(
        lambda _m, _i, out: captured.append(torch.relu(out.detach()).mean(dim=(2, 3)).sum(0).double().cpu())
    )
    was_training = model.training
    model.eval()
    try:
        for part in iterate_chunks(len(data), batch_size):
            captured.clear()
            model(data.x[part].to(device))
            total += captured[0]
    finally:
        handle.remove()
        model.train(was_training)
    return (total / max(len(data), 1)).float()


@dataclass(frozen=True, kw_only=True)
class FinePruning(TuningAttack):
    """Fine-pruning: prune the channels of the last convolution that clean data leaves dormant, then fine-tune.

    Paper: Liu, Dolan-Gavitt, Garg, "Fine-Pruning: Defending Against Backdooring Attacks on Deep Neural
    Networks", RAID 2018. Backdoors (and backdoor watermarks) tend to live in neurons that clean inputs do
    not activate; pruning them and fine-tuning is the classic removal attack.

    Threat model: white-box weights and some clean labelled data of the task.

    Arguments:
        fraction (float): share of the last convolution's channels pruned, least active first, in [0, 1).
            Default: 0.5. (A BatchNorm2d registered right after that convolution has the channels zeroed too.)
        epochs (int): fine-tuning epochs with the pruned channels held at zero. Default: 5.
        lr, batch_size, momentum, weight_decay, augment, data_fraction, seed, device, progress: see TuningAttack.

    Returns: (pruned and fine-tuned model, AttackResult); details name the layer and the channels pruned.

    Example:
        >>> attacked, result = FinePruning(fraction=0.6, epochs=5)(model, splits.train, test=splits.test, verifier=v)
    """

    name: ClassVar[str] = "fine-prune"
    fraction: float = 0.5
    epochs: int = 5

    def __post_init__(self) -> None:
        super().__post_init__()
        if not 0.0 <= self.fraction < 1.0:
            raise ModeldeedError(f"fine-prune: fraction must lie in [0, 1), got {self.fraction}")

    def run(self, model: nn.Module, data: Dataset, context: AttackContext) -> Outcome:
        name, conv, norm = last_conv(model)
        activation = mean_channel_activation(model, conv, data, context.device)
        k = int(round(self.fraction * conv.out_channels))
        pruned = torch.argsort(activation, stable=True)[:k]
        keep = torch.ones(conv.out_channels, device=conv.weight.device)
        keep[pruned] = 0.0
        masks = [(conv.weight, keep.view(-1, 1, 1, 1).expand_as(conv.weight).clone())]
        for layer in (conv, norm):
            for tensor in (getattr(layer, "bias", None), getattr(layer, "weight", None) if layer is norm else None):
                if tensor is not None:
                    masks.append((tensor, keep.clone()))
        apply_masks(masks)
        tune(model, data, self.train_config(), hooks=[KeepMasked(masks)], progress=context.progress)
        details: dict[str, Any] = {
            "layer": name,
            "channels": conv.out_channels,
            "pruned_channels": sorted(pruned.tolist()),
            "fine_tune_epochs": self.epochs,
        }
        return Outcome(model, details)
