"""One small watermarked model on digits, built once per test process and shared by the attack tests."""

from __future__ import annotations

import copy
import functools
from dataclasses import dataclass

import torch
from torch import nn

from modeldeed.data import DataSplits, load_dataset
from modeldeed.models import ModelInfo, ModelSpec, build_model, spec_for_data
from modeldeed.training import TrainConfig, accuracy

# Tiny models train much faster on one thread (and do not fight other processes for cores).
THREADS = 1
TRAINING = TrainConfig(epochs=10, batch_size=32, lr=0.05, seed=0)
TRIGGERS = 20


@dataclass(frozen=True, eq=False)
class Marked:
    model: nn.Module
    spec: ModelSpec
    info: ModelInfo
    data: DataSplits
    marking_key: object
    verification_key: object
    test_accuracy: float

    def copy(self) -> nn.Module:
        return copy.deepcopy(self.model)


@functools.lru_cache(maxsize=1)
def watermarked_digits() -> Marked:
    """A cnn (width 32) marked FROMSCRATCH on digits with 20 abstract triggers, the real keygen and mark."""
    from modeldeed.watermark import keygen, mark_from_scratch

    threads = torch.get_num_threads()
    torch.set_num_threads(THREADS)
    try:
        data = load_dataset("digits")
        mk, vk = keygen(data.train.classes, data.train.input_shape, size=TRIGGERS, epsilon=0.1)
        spec = spec_for_data("cnn", data.train.input_shape, data.train.num_classes)
        model = build_model(spec, seed=0)
        mark_from_scratch(model, mk, data.train, TRAINING)
        model.eval()
        info = ModelInfo(spec, data.train.classes, data.train.input_shape, {"training": TRAINING.to_json()})
        return Marked(model, spec, info, data, mk, vk, accuracy(model, data.test))
    finally:
        torch.set_num_threads(threads)
