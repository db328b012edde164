"""Split CIFAR-10: the official batches through Avalanche's ``SplitCIFAR10``, and the JPEG q75
copy (or any uint8 arrays) built the same way through ``nc_benchmark``, held as uint8
tensors and normalised on the fly (the same values as Avalanche's PIL transforms)."""
from __future__ import annotations

import functools
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from alpha_mas_avalanche.data.integrity import (
    JPEG_NPZ_FIX,
    DatasetCorruptError,
    check_cifar10,
    check_cifar10_jpeg,
)
from alpha_mas_avalanche.data.names import SCENARIOS, check_task_order
from alpha_mas_avalanche.data.streams import class_split, label_pairs, scenario_options, with_validation
from alpha_mas_avalanche.validation import check_choice


def split_cifar10(data_root: str | Path | None, options: dict[str, Any]):
    """``SplitCIFAR10`` on the checked official batches."""
    from avalanche.benchmarks.classic import SplitCIFAR10

    return SplitCIFAR10(dataset_root=check_cifar10(data_root), **options)


def split_cifar10_jpeg(data_root: str | Path | None, options: dict[str, Any]):
    """The JPEG q75 copy, decoded once per process, split like ``SplitCIFAR10``."""
    arrays = _decoded_jpeg_copy(str(check_cifar10_jpeg(data_root)))
    return _cifar10_like_benchmark(*arrays["train"], *arrays["test"], options)


class ArrayImageDataset(Dataset):
    """Images as a uint8 NHWC array with labels; items are ``(PIL image, int)`` like
    torchvision's ``CIFAR10``, so the same transforms apply, or with ``as_tensor``
    ``(uint8 CHW tensor, int)`` for :func:`tensor_train_transform` and
    :func:`tensor_eval_transform` (no PIL image per read)."""

    def __init__(self, images: np.ndarray, labels: Sequence[int], *, as_tensor: bool = False) -> None:
        images = np.asarray(images)
        if images.dtype != np.uint8 or images.ndim != 4 or images.shape[-1] not in (1, 3):
            raise ValueError(
                "images: expected a uint8 array of shape (N, H, W, C) with C in (1, 3), "
                f"got dtype {images.dtype} shape {images.shape}"
            )
        if len(labels) != len(images):
            raise ValueError(
                f"labels: expected {len(images)} labels (one per image), got {len(labels)}"
            )
        self.images = images
        self.targets = [int(t) for t in labels]
        # a CHW view of the same memory (no copy)
        self.tensors = torch.from_numpy(images).permute(0, 3, 1, 2) if as_tensor else None

    def __len__(self) -> int:
        return len(self.targets)

    def __getitem__(self, index: int):
        if self.tensors is not None:
            return self.tensors[index], self.targets[index]
        from PIL import Image

        image = self.images[index]
        return Image.fromarray(image[..., 0] if image.shape[-1] == 1 else image), self.targets[index]


@functools.lru_cache(maxsize=1)
def _decoded_jpeg_copy(path: str) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    return load_cifar10_jpeg_arrays(path)


def load_cifar10_jpeg_arrays(path: str | Path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Decode the JPEG q75 copy: ``{"train": (x, y), "test": (x, y)}``, x uint8 NHWC."""
    from torchvision.io import decode_jpeg

    with np.load(path) as archive:
        out = {}
        for split in ("train", "test"):
            buffer, offsets = archive[f"{split}_jpeg"], archive[f"{split}_offsets"]
            chunks = [torch.from_numpy(buffer[offsets[i]:offsets[i + 1]])
                      for i in range(len(offsets) - 1)]
            try:
                images = torch.stack(decode_jpeg(chunks)).permute(0, 2, 3, 1).numpy()
            except RuntimeError as err:
                raise DatasetCorruptError(
                    f"CIFAR-10 (JPEG q75 copy): {path}: '{split}_jpeg' holds an image that "
                    f"does not decode ({err}); {JPEG_NPZ_FIX}"
                ) from None
            out[split] = (images, archive[f"y_{split}"].astype(np.int64))
    return out


def cifar10_benchmark_from_arrays(
    x_train: np.ndarray,
    y_train: Sequence[int],
    x_test: np.ndarray,
    y_test: Sequence[int],
    *,
    scenario: str = "task",
    seed: int = 0,
    task_order: Sequence[int] | None = None,
    validation_size: float = 0.1,
    display_name: str = "CIFAR-10 (from arrays)",
):
    """Split CIFAR-10 from arrays (x uint8 NHWC, y in 0..9), built like ``SplitCIFAR10``:
    same class order, same transforms, Avalanche's ``nc_benchmark``."""
    check_choice("scenario", scenario, SCENARIOS)
    order = check_task_order(task_order)
    options = scenario_options("split_cifar10", order, scenario, seed)
    base = _cifar10_like_benchmark(x_train, y_train, x_test, y_test, options)
    bm = with_validation(base, order, validation_size, seed, None, None)
    return label_pairs(bm, display_name, "split_cifar10", order)


#: Avalanche's ``SplitCIFAR10`` normalisation (``ccifar10._default_cifar10_*_transform``).
CIFAR10_MEAN, CIFAR10_STD = (0.4914, 0.4822, 0.4465), (0.2023, 0.1994, 0.2010)


def tensor_train_transform():
    """Avalanche's CIFAR-10 train transform (RandomCrop 32 pad 4, RandomHorizontalFlip,
    ToTensor, Normalize) on uint8 CHW tensors: the same random draws and the same
    arithmetic, so the same values for the same torch seed."""
    from torchvision import transforms

    return transforms.Compose([
        transforms.RandomCrop(32, padding=4), transforms.RandomHorizontalFlip(),
        *tensor_eval_transform().transforms,
    ])


def tensor_eval_transform():
    """Avalanche's CIFAR-10 eval transform (ToTensor, Normalize) on uint8 CHW tensors."""
    from torchvision import transforms

    return transforms.Compose([
        transforms.ConvertImageDtype(torch.float32),  # x / 255, as ToTensor
        transforms.Normalize(CIFAR10_MEAN, CIFAR10_STD),
    ])


def _cifar10_like_benchmark(x_train, y_train, x_test, y_test, options: dict[str, Any]):
    return class_split(
        ArrayImageDataset(x_train, y_train, as_tensor=True),
        ArrayImageDataset(x_test, y_test, as_tensor=True), options,
        train_transform=tensor_train_transform(), eval_transform=tensor_eval_transform(),
    )
