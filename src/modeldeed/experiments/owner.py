"""The owner's side of every watermark experiment: a key, and the No-WM / FROMSCRATCH / PRETRAINED models.

Trained once per output directory and reused by the later experiments (unremovability, piracy,
transfer), as in the paper, where every attack starts from the same watermarked models.
"""

from __future__ import annotations

import logging
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from pathlib import Path

from torch import nn

from ..data import DataSplits, load_dataset
from ..models import ModelInfo, ModelSpec, build_model, load_model, read_model_info, save_model, spec_for_data
from ..progress import Tracker
from ..training import TrainConfig, accuracy, train
from ..watermark import (
    MarkingKey,
    VerificationKey,
    auto_triggers_per_batch,
    keygen,
    load_marking_key,
    load_verification_key,
    mark_from_scratch,
    mark_pretrained,
    save_key_pair,
)
from .setting import ExperimentSetting

log = logging.getLogger(__name__)

EMBEDDINGS = ("No-WM", "FROMSCRATCH", "PRETRAINED")


@dataclass
class Owner:
    data: DataSplits
    spec: ModelSpec
    config: TrainConfig
    marking_key: MarkingKey
    verification_key: VerificationKey
    models: dict[str, nn.Module]
    k: int  # triggers appended to each batch


def training_config(setting: ExperimentSetting) -> TrainConfig:
    """SGD with the learning rate dropped 10x at 50 % and 75 % of training, as in the papers' schedules."""
    milestones = tuple(sorted({m for m in (setting.epochs // 2, (3 * setting.epochs) // 4) if 0 < m}))
    return TrainConfig(
        epochs=setting.epochs,
        batch_size=setting.batch_size,
        lr=setting.lr,
        lr_milestones=milestones,
        seed=setting.seed,
        device=setting.device,
    )


def pretrained_config(setting: ExperimentSetting) -> TrainConfig:
    """PRETRAINED continues the converged No-WM model with the triggers for half the epochs (rate dropped halfway)."""
    epochs = max(2, setting.epochs // 2)
    return TrainConfig(
        epochs=epochs,
        batch_size=setting.batch_size,
        lr=setting.lr,
        lr_milestones=(epochs // 2,),
        seed=setting.seed + 1,
        device=setting.device,
    )


def triggers_per_batch(setting: ExperimentSetting, train_size: int) -> int:
    """k: the setting's, or the paper's 2 raised where a small dataset would show each trigger too rarely."""
    if setting.triggers_per_batch is not None:
        return setting.triggers_per_batch
    steps = -(-train_size // setting.batch_size) * setting.epochs
    return auto_triggers_per_batch(setting.trigger_size, steps, batch_size=setting.batch_size)


def experiment_data(setting: ExperimentSetting) -> DataSplits:
    data = load_dataset(setting.data, setting.data_dir)
    if setting.train_limit is not None and len(data.train) > setting.train_limit:
        data = DataSplits(data.train.subset(range(setting.train_limit)), data.test)
    return data


def owner_is_cached(setting: ExperimentSetting, out: str | Path) -> bool:
    """True when `out` holds the owner's key and three models made with this very setting."""
    out = Path(out)
    return (out / "owner-key" / "verification_key.json").is_file() and all(
        _cached(out / "models" / n, setting) for n in EMBEDDINGS
    )


def step(tracker: Tracker | None, label: str) -> AbstractContextManager[None]:
    """The tracker's next item, or nothing when no one tracks the run."""
    return tracker.item(label) if tracker is not None else nullcontext()


def prepare_owner(
    setting: ExperimentSetting, out: str | Path, *, progress: bool = True, tracker: Tracker | None = None
) -> Owner:
    """Load the owner's key and three models from `out` if they were made with this setting; else make them
    (three items of `tracker`'s plan, see `plan.owner_plan`)."""
    out = Path(out)
    data = experiment_data(setting)
    spec = spec_for_data(setting.model, data.train.input_shape, data.train.num_classes)
    config = training_config(setting)
    key_dir = out / "owner-key"
    if owner_is_cached(setting, out):
        log.info("reusing the owner's key and models in %s", out)
        mk, vk = load_marking_key(key_dir), load_verification_key(key_dir)
        models = {name: load_model(out / "models" / name, device=setting.device)[0] for name in EMBEDDINGS}
        return Owner(data, spec, config, mk, vk, models, triggers_per_batch(setting, len(data.train)))
    k = triggers_per_batch(setting, len(data.train))
    mk, vk = keygen(data.train.classes, data.train.input_shape, size=setting.trigger_size)
    save_key_pair(key_dir, mk, vk)
    models: dict[str, nn.Module] = {}
    with step(tracker, "train No-WM (model 1 of 3)"):
        models["No-WM"] = build_model(spec, seed=setting.seed)
        train(models["No-WM"], data.train, config, progress=progress)
    with step(tracker, "train FROMSCRATCH (model 2 of 3)"):
        models["FROMSCRATCH"] = build_model(spec, seed=setting.seed)
        mark_from_scratch(models["FROMSCRATCH"], mk, data.train, config, k=k, progress=progress)
    with step(tracker, "train PRETRAINED (model 3 of 3)"):
        models["PRETRAINED"] = build_model(spec, seed=setting.seed)
        models["PRETRAINED"].load_state_dict(models["No-WM"].state_dict())
        mark_pretrained(models["PRETRAINED"], mk, data.train, pretrained_config(setting), k=k, progress=progress)
    for name, model in models.items():
        info = ModelInfo(
            spec,
            data.train.classes,
            data.train.input_shape,
            extra={
                "setting": setting.to_json(),
                "embedding": name,
                "training": config.to_json(),
                "triggers_per_batch": k,
                "test_accuracy": accuracy(model, data.test),
            },
        )
        save_model(out / "models" / name, model, info)
    return Owner(data, spec, config, mk, vk, models, k)


def _cached(model_dir: Path, setting: ExperimentSetting) -> bool:
    if not (model_dir / "model.json").is_file():
        return False
    info = read_model_info(model_dir)
    return bool(info.extra) and info.extra.get("setting") == setting.to_json()
