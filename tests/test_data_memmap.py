"""Datasets read per batch from memory-mapped .npy files: bounded, checked readers, and the same bytes, fingerprint
and Merkle root as the data held in memory."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch

from modeldeed.data import DataSplits, load_dataset
from modeldeed.data.memmap import ArraySamples, save_memmap
from modeldeed.errors import ModeldeedError
from modeldeed.files import map_npy
from modeldeed.pol.merkle import MerkleTree, streaming_root
from modeldeed.pol.statement import dataset_root


@pytest.fixture(scope="module")
def small(digits) -> DataSplits:
    return DataSplits(digits.train.subset(range(200)), digits.test.subset(range(50)))


@pytest.fixture(scope="module")
def mapped_dir(small, tmp_path_factory) -> Path:
    return save_memmap(tmp_path_factory.mktemp("mm") / "data", small)


def test_a_mapped_dataset_is_the_same_data(small, mapped_dir):
    mapped = load_dataset(f"memmap:{mapped_dir}")
    assert torch.equal(mapped.train.x, small.train.x) and torch.equal(mapped.train.y, small.train.y)
    assert mapped.train.fingerprint == small.train.fingerprint  # taken in chunks, the same value
    assert mapped.test.fingerprint == small.test.fingerprint
    assert mapped.train.classes == small.train.classes
    assert dataset_root(mapped.train) == MerkleTree.from_samples(small.train.x, small.train.y).root.hex()


def test_a_mapped_dataset_reads_the_file_not_a_copy(small, tmp_path):
    root = save_memmap(tmp_path / "d", small)
    mapped = load_dataset(f"memmap:{root}").train
    assert float(mapped.x[0].sum()) != 0.0
    file = root / "train_images.npy"
    size = small.train.x[0].numel() * 4
    with open(file, "r+b") as handle:  # zero the first image on disk, after the dataset was loaded
        handle.seek(file.stat().st_size - len(small.train) * size)
        handle.write(b"\0" * size)
    assert float(mapped.x[0].sum()) == 0.0 and torch.equal(mapped.x[1], small.train.x[1])


def test_a_dataloader_with_workers_reads_the_exact_rows(small, mapped_dir):
    loader = torch.utils.data.DataLoader(ArraySamples(mapped_dir), batch_sampler=[[5, 1, 150], [0, 199]], num_workers=2)
    batches = list(loader)
    for (index, x, y), wanted in zip(batches, ([5, 1, 150], [0, 199])):
        assert index.tolist() == wanted
        assert torch.equal(x, small.train.x[wanted]) and torch.equal(y, small.train.y[wanted])


@pytest.mark.parametrize("n", [0, 1, 2, 3, 7, 8, 9, 33, 64, 65])
@pytest.mark.parametrize("chunk", [1, 4, 1024])
def test_the_streaming_root_is_the_trees(n, chunk):
    generator = torch.Generator().manual_seed(n)
    x, y = torch.rand(n, 1, 2, 2, generator=generator), torch.randint(0, 5, (n,), generator=generator)
    assert streaming_root(x, y, chunk) == MerkleTree.from_samples(x, y).root


def write_array(path: Path, array: np.ndarray, **options) -> Path:  # type: ignore[no-untyped-def]
    np.save(path, array, **options)
    return path


def mapped(path: Path) -> np.ndarray:
    return map_npy(path, within=path.parent, max_bytes=1 << 20, dtypes=("f4",), ndim=4)


def test_map_npy_maps_a_valid_array(tmp_path):
    array = np.arange(24, dtype=np.float32).reshape(2, 3, 2, 2)
    assert np.array_equal(mapped(write_array(tmp_path / "a.npy", array)), array)


@pytest.mark.parametrize(
    "make,message",
    [
        (lambda p: p.write_bytes(p.read_bytes()[:-4]), "but its header declares [2, 1, 2, 2] float32"),
        (lambda p: p.write_bytes(p.read_bytes() + b"\0" * 4), "but its header declares"),
        (lambda p: write_array(p, np.zeros((2, 1, 2, 2), np.float64)), "holds <f8 elements"),
        (lambda p: write_array(p, np.zeros((2, 4), np.float32)), "expected 4 dimensions"),
        (lambda p: write_array(p, np.asfortranarray(np.zeros((2, 1, 2, 2), np.float32))), "Fortran-order"),
        (lambda p: write_array(p, np.array([{"a": 1}] * 2, dtype=object), allow_pickle=True), "holds |O"),
        (lambda p: p.write_bytes(b"not an npy file at all"), "is not a .npy array file"),
        (lambda p: p.write_bytes(b"\x93NUMPY\x01\x00" + (60000).to_bytes(2, "little") + b"{" * 60000), "not a .npy"),
    ],
)
def test_map_npy_refuses_files_that_are_not_what_they_claim(tmp_path, make, message):
    path = write_array(tmp_path / "a.npy", np.zeros((2, 1, 2, 2), np.float32))
    make(path)
    with pytest.raises(ModeldeedError, match=None) as caught:
        mapped(path)
    assert message in str(caught.value) and str(path) in str(caught.value)


def test_map_npy_refuses_links_out_fifos_directories_and_big_files(tmp_path):
    outside = write_array(tmp_path / "outside.npy", np.zeros((2, 1, 2, 2), np.float32))
    inside = tmp_path / "data"
    inside.mkdir()
    (inside / "link.npy").symlink_to(outside)
    with pytest.raises(ModeldeedError, match="is outside"):
        map_npy(inside / "link.npy", within=inside, max_bytes=1 << 20, dtypes=("f4",), ndim=4)
    os.mkfifo(inside / "fifo.npy")
    with pytest.raises(ModeldeedError, match="not a regular file"):
        map_npy(inside / "fifo.npy", within=inside, max_bytes=1 << 20, dtypes=("f4",), ndim=4)
    (inside / "dir.npy").mkdir()
    with pytest.raises(ModeldeedError, match="not a regular file|cannot be opened|directory"):
        map_npy(inside / "dir.npy", within=inside, max_bytes=1 << 20, dtypes=("f4",), ndim=4)
    with pytest.raises(ModeldeedError, match="more than the 64 allowed"):
        map_npy(outside, within=tmp_path, max_bytes=64, dtypes=("f4",), ndim=4)


def test_a_memmap_directory_with_mismatched_labels_is_refused(small, tmp_path):
    root = save_memmap(tmp_path / "d", small)
    np.save(root / "train_labels.npy", small.train.y.numpy()[:-1])
    with pytest.raises(ModeldeedError, match="199 labels for 200 images"):
        load_dataset(f"memmap:{root}")
    np.save(root / "train_labels.npy", np.full(200, 99, dtype=np.int64))
    with pytest.raises(ModeldeedError, match="labels must lie in"):
        load_dataset(f"memmap:{root}")
    with pytest.raises(ModeldeedError, match="directory not found"):
        load_dataset(f"memmap:{tmp_path / 'nothing'}")
