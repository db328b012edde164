"""Broken dataset files: a truncated or corrupt MNIST idx file and a CIFAR-10 JPEG-copy
``.npz`` with a wrong array give one error naming the file and what is wrong, raised
before torchvision/Avalanche read anything (no loader stack trace)."""
from __future__ import annotations

import os
import shutil
import struct
from pathlib import Path

import numpy as np
import pytest

from alpha_mas_avalanche.data import (
    CIFAR10_JPEG_FILE,
    MNIST_FILES,
    DatasetCorruptError,
    DatasetNotFoundError,
    make_benchmark,
)


def mnist_copy(mnist_root: Path, tmp_path: Path, broken: str) -> tuple[Path, Path]:
    """A data root whose ``broken`` file is a real copy (to damage), the others links (to
    absolute paths: a relative data root such as README's ../shared/data would leave them
    dangling)."""
    raw = tmp_path / "mnist" / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for name in MNIST_FILES:
        source = (mnist_root / "MNIST" / "raw" / name).resolve()
        if name == broken:
            shutil.copyfile(source, raw / name)
        else:
            os.symlink(source, raw / name)
    return tmp_path, raw / broken


def assert_clean_error(info, path: Path, *phrases: str) -> None:
    message = str(info.value)
    assert str(path) in message
    for phrase in phrases:
        assert phrase in message, message
    # raised by the check, before any loader: the traceback ends in the data's file checks
    assert info.traceback[-1].path.name == "integrity.py"
    assert info.traceback[-1].name in ("check_idx_file", "check_mnist", "check_jpeg_npz")


def test_truncated_mnist_images_file(mnist_root, tmp_path):
    root, path = mnist_copy(mnist_root, tmp_path, "train-images-idx3-ubyte")
    with open(path, "r+b") as handle:
        handle.truncate(2_883_584)  # the truncated copies found in public repositories
    with pytest.raises(DatasetCorruptError) as info:
        make_benchmark("split_mnist", data_root=root)
    assert_clean_error(info, path, "is truncated", "2883584 bytes", "60000x28x28",
                       "needs 47040016")
    assert isinstance(info.value, DatasetNotFoundError)  # handled like a missing file


def test_mnist_labels_file_with_a_corrupt_header(mnist_root, tmp_path):
    root, path = mnist_copy(mnist_root, tmp_path, "t10k-labels-idx1-ubyte")
    with open(path, "r+b") as handle:
        handle.write(b"\x1f\x8b\x08\x00")  # a gzip file under the raw name
    with pytest.raises(DatasetCorruptError) as info:
        make_benchmark("split_mnist", data_root=root)
    assert_clean_error(info, path, "not an MNIST idx file", "0x1f8b0800")


def test_mnist_images_and_labels_disagree(mnist_root, tmp_path):
    root, path = mnist_copy(mnist_root, tmp_path, "t10k-images-idx3-ubyte")
    with open(path, "r+b") as handle:  # a consistent file of 9999 images
        handle.seek(4)
        handle.write(struct.pack(">I", 9999))
        handle.truncate(16 + 9999 * 784)
    with pytest.raises(DatasetCorruptError) as info:
        make_benchmark("split_mnist", data_root=root)
    assert_clean_error(info, path, "holds 9999 images", "10000 labels")


def test_mnist_label_out_of_range(mnist_root, tmp_path):
    root, path = mnist_copy(mnist_root, tmp_path, "train-labels-idx1-ubyte")
    with open(path, "r+b") as handle:
        handle.seek(8 + 123)
        handle.write(b"\xff")
    with pytest.raises(DatasetCorruptError) as info:
        make_benchmark("split_mnist", data_root=root)
    assert_clean_error(info, path, "label 255", "0..9")


@pytest.fixture(scope="module")
def jpeg_arrays(cifar10_jpeg_path):
    with np.load(cifar10_jpeg_path) as archive:
        return {key: archive[key] for key in archive.files}


def write_jpeg_copy(tmp_path: Path, arrays: dict) -> Path:
    path = tmp_path / CIFAR10_JPEG_FILE
    path.parent.mkdir(parents=True)
    np.savez(path, **arrays)
    return path


@pytest.mark.parametrize(("change", "phrases"), [
    ("y_train_short", ["'y_train' must be integers of shape (50000,)", "(49999,)"]),
    ("offsets_2d", ["'test_offsets' must be integers of shape (10001,)", "(10001, 1)"]),
    ("jpeg_float", ["'train_jpeg' must be 1-D uint8 bytes"]),
    ("offsets_past_end", ["'test_offsets' must rise strictly from 0"]),
    ("missing_array", ["lacks the array(s) ['y_test']"]),
])
def test_jpeg_copy_with_a_wrong_array(jpeg_arrays, tmp_path, change, phrases):
    arrays = dict(jpeg_arrays)
    if change == "y_train_short":
        arrays["y_train"] = arrays["y_train"][:-1]
    elif change == "offsets_2d":
        arrays["test_offsets"] = arrays["test_offsets"][:, None]
    elif change == "jpeg_float":
        arrays["train_jpeg"] = arrays["train_jpeg"][:1000].astype(np.float32)
    elif change == "offsets_past_end":
        arrays["test_offsets"] = arrays["test_offsets"] + 7
    else:
        del arrays["y_test"]
    path = write_jpeg_copy(tmp_path, arrays)
    with pytest.raises(DatasetCorruptError) as info:
        make_benchmark("split_cifar10_jpeg", data_root=tmp_path)
    assert_clean_error(info, path, *phrases)


def test_truncated_jpeg_copy(cifar10_jpeg_path, tmp_path):
    path = tmp_path / CIFAR10_JPEG_FILE
    path.parent.mkdir(parents=True)
    with open(cifar10_jpeg_path, "rb") as source, open(path, "wb") as target:
        target.write(source.read(5_000_000))
    with pytest.raises(DatasetCorruptError) as info:
        make_benchmark("split_cifar10_jpeg", data_root=tmp_path)
    assert_clean_error(info, path, "not a readable .npz archive")


def test_jpeg_copy_with_an_undecodable_image(jpeg_arrays, tmp_path):
    arrays = dict(jpeg_arrays)
    arrays["test_jpeg"] = arrays["test_jpeg"].copy()
    start, end = arrays["test_offsets"][5], arrays["test_offsets"][6]
    arrays["test_jpeg"][start:end] = 0  # shapes and offsets intact, bytes destroyed
    path = write_jpeg_copy(tmp_path, arrays)
    with pytest.raises(DatasetCorruptError, match=r"'test_jpeg' holds an image that does not "
                       r"decode") as info:
        make_benchmark("split_cifar10_jpeg", data_root=tmp_path)
    assert str(path) in str(info.value)
