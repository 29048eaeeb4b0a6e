"""The one training loop: accuracy, exact reproducibility, resumption, hooks, schedule."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from modeldeed.errors import ModeldeedError
from modeldeed.models import build_model, spec_for_data
from modeldeed.training import (
    Hook,
    TrainConfig,
    accuracy,
    batch_indices,
    epoch_batches,
    make_batch,
    make_optimizer,
    sgd_step,
    train,
)

FAST = TrainConfig(epochs=2, batch_size=64, lr=0.05, seed=11)


def fresh_cnn(digits, seed=0):
    return build_model(spec_for_data("cnn", digits.train.input_shape, digits.train.num_classes), seed=seed)


def weights(model):
    return [t.detach().clone() for t in model.state_dict().values()]


def test_cnn_on_digits_reaches_95_percent(digits):
    model = fresh_cnn(digits)
    result = train(model, digits.train, TrainConfig(epochs=15, seed=0), progress=False)
    assert result.steps == 15 * 23
    assert result.epoch_losses[-1] < result.epoch_losses[0]
    assert accuracy(model, digits.test) >= 0.95


def test_same_seed_gives_bitwise_identical_weights(digits):
    a, b = fresh_cnn(digits), fresh_cnn(digits)
    train(a, digits.train, FAST, progress=False)
    train(b, digits.train, FAST, progress=False)
    assert all(torch.equal(x, y) for x, y in zip(weights(a), weights(b)))
    c = fresh_cnn(digits)
    train(c, digits.train, TrainConfig(epochs=2, batch_size=64, lr=0.05, seed=12), progress=False)
    assert not all(torch.equal(x, y) for x, y in zip(weights(a), weights(c)))


def test_batch_order_is_a_pure_function_of_the_seed():
    config = TrainConfig(batch_size=10, seed=5)
    first = epoch_batches(config, 95, 0)
    assert len(first) == 10 and len(first[-1]) == 5
    assert sorted(np.concatenate(first).tolist()) == list(range(95))
    assert all(np.array_equal(batch_indices(config, 95, 10 + i), b) for i, b in enumerate(epoch_batches(config, 95, 1)))
    assert not np.array_equal(epoch_batches(config, 95, 0)[0], epoch_batches(config, 95, 1)[0])


class Interrupt(Hook):
    def __init__(self, at_step):
        self.at_step = at_step
        self.optimizer_state = None

    def on_step_end(self, state, batch, loss):
        if state.step == self.at_step:
            self.optimizer_state = state.optimizer.state_dict()
            raise KeyboardInterrupt


def test_resume_after_interruption_is_exact(digits):
    reference = fresh_cnn(digits)
    train(reference, digits.train, FAST, progress=False)
    model = fresh_cnn(digits)
    stopper = Interrupt(at_step=30)
    with pytest.raises(KeyboardInterrupt):
        train(model, digits.train, FAST, hooks=[stopper], progress=False)
    # Simulate a restart: fresh objects, state copied from the checkpoint taken at the interruption.
    resumed = fresh_cnn(digits)
    resumed.load_state_dict(model.state_dict())
    state = stopper.optimizer_state
    state["state"] = {k: {n: t.clone() for n, t in v.items()} for k, v in state["state"].items()}
    result = train(resumed, digits.train, FAST, optimizer_state=state, start_step=30, progress=False)
    assert result.steps == 46
    assert all(torch.equal(x, y) for x, y in zip(weights(reference), weights(resumed)))


class Recorder(Hook):
    def __init__(self):
        self.events = []

    def on_train_start(self, state):
        self.events.append(("start", state.step))

    def on_batch(self, state, batch):
        # Append two extra samples, as watermark marking does.
        extra = torch.zeros(2, *batch.inputs.shape[1:])
        batch.inputs = torch.cat([batch.inputs, extra])
        batch.labels = torch.cat([batch.labels, torch.zeros(2, dtype=torch.int64)])
        return batch

    def on_step_end(self, state, batch, loss):
        self.events.append(("step", state.step, len(batch.labels), batch.lr))

    def on_epoch_end(self, state, epoch):
        self.events.append(("epoch", epoch))

    def on_train_end(self, state):
        self.events.append(("end", state.step))


def test_hooks_fire_in_order_and_can_change_the_batch(digits):
    recorder = Recorder()
    config = TrainConfig(epochs=2, batch_size=500, lr=0.1, lr_milestones=(1,), lr_gamma=0.5)
    train(fresh_cnn(digits), digits.train, config, hooks=[recorder], progress=False)
    assert recorder.events[0] == ("start", 0) and recorder.events[-1] == ("end", 6)
    steps = [e for e in recorder.events if e[0] == "step"]
    assert [s[1] for s in steps] == [1, 2, 3, 4, 5, 6]
    assert [s[2] for s in steps] == [502, 502, 440, 502, 502, 440]
    assert [s[3] for s in steps] == [0.1, 0.1, 0.1, 0.05, 0.05, 0.05]
    assert ("epoch", 0) in recorder.events and recorder.events.index(("epoch", 0)) == 4


def test_replaying_a_step_outside_the_loop_matches(digits):
    """The verifier's view: make_batch + sgd_step reproduce the loop's first step exactly."""
    config = TrainConfig(epochs=1, batch_size=64, seed=4, augment=True)

    class StopAfterOne(Hook):
        def on_step_end(self, state, batch, loss):
            raise StopIteration

    model = fresh_cnn(digits)
    with pytest.raises(StopIteration):
        train(model, digits.train, config, hooks=[StopAfterOne()], progress=False)
    replay = fresh_cnn(digits)
    optimizer = make_optimizer(replay.parameters(), config)
    batch = make_batch(digits.train, config, 0, batch_indices(config, len(digits.train), 0))
    sgd_step(replay, optimizer, batch.inputs, batch.labels, batch.lr)
    assert all(torch.equal(x, y) for x, y in zip(weights(model), weights(replay)))


def test_last_layer_only(digits):
    model = fresh_cnn(digits)
    before = weights(model)
    head = model.classifier[3]
    train(model, digits.train, TrainConfig(epochs=1), parameters=head.parameters(), progress=False)
    after = weights(model)
    names = list(model.state_dict())
    for name, x, y in zip(names, before, after):
        assert torch.equal(x, y) == (not name.startswith("classifier.3"))


def test_bad_settings_are_rejected(digits):
    with pytest.raises(ModeldeedError, match=r"batch size must lie in \[1, "):
        TrainConfig(batch_size=0)
    with pytest.raises(ModeldeedError, match="momentum must lie in"):
        TrainConfig(momentum=1.5)
    with pytest.raises(ModeldeedError, match="unknown training settings: nope"):
        TrainConfig.from_json({"nope": 1})
    assert TrainConfig.from_json(TrainConfig(lr_milestones=(3, 1)).to_json()) == TrainConfig(lr_milestones=(1, 3))
