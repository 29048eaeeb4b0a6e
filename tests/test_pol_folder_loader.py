"""A proof recorded over an image folder read per batch through DataLoader workers (`data.folder.FolderSamples`)
verifies against `--data folder:DIR`, and a swapped image file is detected."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from modeldeed.data import load_dataset
from modeldeed.data.folder import FolderSamples
from modeldeed.errors import DataError
from modeldeed.models import build_model, spec_for_data
from modeldeed.pol import verify_proof
from modeldeed.pol.own import PolRecorder, own_loop_settings
from modeldeed.pol.policy import hardened_policy
from modeldeed.pol.statement import CarriedStatement, make_statement


@pytest.fixture(autouse=True)
def _one_thread():
    torch.set_num_threads(1)


def write_folder(root: Path, digits, count: int = 60) -> Path:  # type: ignore[no-untyped-def]
    for i in range(count):
        label = int(digits.train.y[i]) % 3
        pixels = (digits.train.x[i, 0] * 255).round().to(torch.uint8).numpy()
        (root / f"c{label}").mkdir(parents=True, exist_ok=True)
        Image.fromarray(pixels, mode="L").save(root / f"c{label}" / f"{i:03d}.png")
    return root


@pytest.fixture(scope="module")
def recorded(digits, tmp_path_factory):  # type: ignore[no-untyped-def]
    """A proof of an own AdamW loop over the folder, read by 2 DataLoader workers."""
    root = tmp_path_factory.mktemp("folder")
    folder = write_folder(root / "images", digits)
    train = load_dataset(f"folder:{folder}").train
    spec = spec_for_data("cnn", train.input_shape, train.num_classes, {"width": 8})
    model = build_model(spec, seed=2)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    config, loop = own_loop_settings(optimizer, epochs=1, batch_size=16, seed=2)
    statement, opening = make_statement(train, config, spec, checkpoint_every=1, loop=loop)
    carried = CarriedStatement(statement=statement, opening=opening)
    samples = FolderSamples(folder)
    with PolRecorder(
        root / "proof", model, optimizer, data=train, spec=spec, config=config, loop=loop, statement=carried, every=1
    ) as rec:
        for indices, x, y in rec.loader(samples, 0, num_workers=2):
            rec.step(x, y, indices)
    return root, statement


def test_the_per_batch_reader_gives_the_verifiers_bytes(recorded):
    root, _ = recorded
    train = load_dataset(f"folder:{root / 'images'}").train
    samples = FolderSamples(root / "images")
    assert len(samples) == len(train) == 48
    for i in range(len(samples)):
        index, image, label = samples[i]
        assert index == i and label == int(train.y[i])
        assert image.dtype == torch.float32 and np.array_equal(
            image.numpy().view(np.uint32), train.x[i].numpy().view(np.uint32)
        )
    assert len(FolderSamples(root / "images", "test")) == 12


def test_a_proof_over_an_image_folder_through_workers_verifies(recorded):
    root, statement = recorded
    train = load_dataset(f"folder:{root / 'images'}").train
    verdict = verify_proof(root / "proof", train, hardened_policy(statement=statement), trust_code=True)
    assert verdict.accepted, verdict.reasons
    assert verdict.mode == "exact" and all(i.accepted for i in verdict.intervals)


def test_a_swapped_image_file_is_detected(recorded, tmp_path):
    root, statement = recorded
    swapped = tmp_path / "images"
    shutil.copytree(root / "images", swapped)
    train_file = FolderSamples(swapped).files[0]  # an image the proof trained on (step 0 or later)
    other = next(
        p for p in sorted(swapped.rglob("*.png")) if Image.open(p).tobytes() != Image.open(train_file).tobytes()
    )
    shutil.copyfile(other, train_file)
    train = load_dataset(f"folder:{swapped}").train
    verdict = verify_proof(root / "proof", train, hardened_policy(statement=statement), trust_code=True)
    assert not verdict.accepted
    failed = {c.name: " ".join(c.reasons) for c in verdict.checks if c.status == "failed"}
    assert "batch SHA-256 differs from the recorded one" in failed["data"]  # the batch hash of a step it trained
    assert "the statement commits to" in failed["dataset_membership"]  # the Merkle root over the samples
    # and a worker reading it refuses an image of another size (fixed size, checked per item)
    Image.new("L", (9, 8)).save(train_file)
    with pytest.raises(DataError, match=r"wrong image size \(1, 8, 9\)"):
        FolderSamples(swapped)[0]
