"""Benchmarks of the reference protocol: Split MNIST, Split CIFAR-10 and offline Split digits.

Every benchmark has five two-class tasks, a ``train_stream``, a ``valid_stream`` carved
from the training data with Avalanche's ``benchmark_with_validation_stream`` (used for
every hyperparameter choice) and a ``test_stream``. Task-incremental (multi-head,
``return_task_id=True``) is the default; class-incremental is an option.

Datasets are never downloaded: the files are checked before torchvision/Avalanche is
called, and :class:`DatasetNotFoundError` says which files are missing and how to get them.
"""
from __future__ import annotations

import functools
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from alpha_mas_avalanche.validation import check_choice

#: Pair index k -> the two original class ids of the reference's task k+1.
MNIST_CLASS_ORDER = (1, 2, 3, 4, 5, 6, 7, 8, 9, 0)
CIFAR10_CLASS_ORDER = (2, 1, 3, 4, 5, 6, 7, 8, 9, 0)
CIFAR10_CLASS_NAMES = ("airplane", "automobile", "bird", "cat", "deer",
                       "dog", "frog", "horse", "ship", "truck")
N_TASKS = 5
BENCHMARKS = ("split_mnist", "split_cifar10", "split_cifar10_jpeg", "split_digits")
DISPLAY_NAMES = {
    "split_mnist": "Split MNIST",
    "split_cifar10": "Split CIFAR-10",
    "split_cifar10_jpeg": "CIFAR-10 (JPEG q75 copy)",
    "split_digits": "Split digits (scikit-learn, 8x8)",
}
SCENARIOS = ("task", "class")

MNIST_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte",
               "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
CIFAR10_FILES = ("data_batch_1", "data_batch_2", "data_batch_3", "data_batch_4",
                 "data_batch_5", "test_batch", "batches.meta")
CIFAR10_JPEG_FILE = Path("cifar10") / "lossy_jpeg_fallback" / "cifar10_jpeg_q75.npz"
#: Digits test split: fixed (independent of the run seed), stratified, 30 %.
DIGITS_TEST_FRACTION = 0.3


class DatasetNotFoundError(FileNotFoundError):
    """A dataset's files are not where they must be (nothing is downloaded)."""


class DatasetCorruptError(DatasetNotFoundError):
    """A dataset file is present but truncated or malformed (the message names the file
    and what is wrong). A subclass of :class:`DatasetNotFoundError`: same handling."""


def resolve_data_root(data_root: str | Path | None = None) -> Path:
    """``data_root``, else env ``ALPHA_MAS_DATA_ROOT``, else ``./data``."""
    if data_root is not None:
        return Path(data_root)
    return Path(os.environ.get("ALPHA_MAS_DATA_ROOT", "data"))


def _require_files(paths: Sequence[Path], what: str, how: str) -> None:
    missing = [p for p in paths if not p.is_file()]
    if missing:
        listed = "\n  ".join(str(p) for p in missing)
        raise DatasetNotFoundError(
            f"{what}: missing {len(missing)} file(s):\n  {listed}\n"
            f"They must be in {missing[0].parent}. {how} Nothing is downloaded at run time; "
            "pass --data-root / data_root= or set ALPHA_MAS_DATA_ROOT to the folder that "
            "holds them."
        )


def mnist_files(data_root: str | Path | None = None) -> list[Path]:
    """The four raw MNIST files torchvision reads, under ``<data_root>/mnist/MNIST/raw``."""
    raw = resolve_data_root(data_root) / "mnist" / "MNIST" / "raw"
    return [raw / name for name in MNIST_FILES]


def cifar10_files(data_root: str | Path | None = None) -> list[Path]:
    """The official CIFAR-10 python batches, under ``<data_root>/cifar10/cifar-10-batches-py``."""
    folder = resolve_data_root(data_root) / "cifar10" / "cifar-10-batches-py"
    return [folder / name for name in CIFAR10_FILES]


def check_mnist(data_root: str | Path | None = None) -> Path:
    """Return the folder to give Avalanche as ``dataset_root``; raise if a file is missing."""
    _require_files(
        mnist_files(data_root), "MNIST",
        "Get the official MNIST files (e.g. on a machine with network: "
        "torchvision.datasets.MNIST('<data_root>/mnist', download=True)) and copy the "
        "uncompressed idx files there.",
    )
    counts = [check_idx_file(path) for path in mnist_files(data_root)]
    for images, labels in ((0, 1), (2, 3)):
        if counts[images][0] != counts[labels][0]:
            raise DatasetCorruptError(
                f"MNIST: {mnist_files(data_root)[images]} holds {counts[images][0]} images but "
                f"{mnist_files(data_root)[labels]} holds {counts[labels][0]} labels; "
                f"{MNIST_FIX}"
            )
    return resolve_data_root(data_root) / "mnist"


MNIST_FIX = "replace the file(s) with the official MNIST files (see README, 'Data')."
#: idx magic number -> (what, number of dimensions); MNIST uses unsigned bytes (0x08).
IDX_KINDS = {0x00000801: ("labels", 1), 0x00000803: ("images", 3)}
MNIST_SHAPES = {"images": (28, 28)}


def check_idx_file(path: str | Path) -> tuple[int, ...]:
    """The dimensions of an MNIST idx file; :class:`DatasetCorruptError` naming the file
    if its header is not an unsigned-byte idx header or its size does not match it."""
    import struct

    path = Path(path)
    size = path.stat().st_size
    with open(path, "rb") as handle:
        header = handle.read(16)
    if len(header) < 8:
        raise DatasetCorruptError(f"MNIST: {path} is truncated ({size} bytes, shorter than an "
                                  f"idx header); {MNIST_FIX}")
    magic = struct.unpack(">I", header[:4])[0]
    if magic not in IDX_KINDS:
        raise DatasetCorruptError(
            f"MNIST: {path} is not an MNIST idx file (magic number 0x{magic:08x}, expected "
            f"0x00000801 for labels or 0x00000803 for images; a gzip file starts with "
            f"0x1f8b); {MNIST_FIX}"
        )
    kind, ndim = IDX_KINDS[magic]
    header_size = 4 + 4 * ndim
    if len(header) < header_size:
        raise DatasetCorruptError(f"MNIST: {path} is truncated ({size} bytes, shorter than its "
                                  f"{header_size}-byte idx header); {MNIST_FIX}")
    dims = struct.unpack(f">{ndim}I", header[4:header_size])
    if kind == "images" and dims[1:] != MNIST_SHAPES["images"]:
        raise DatasetCorruptError(
            f"MNIST: {path} holds images of {dims[1]}x{dims[2]} pixels, expected 28x28; "
            f"{MNIST_FIX}"
        )
    expected = header_size + int(np.prod(dims, dtype=np.int64))
    if size != expected:
        state = "truncated" if size < expected else "longer than its header says"
        raise DatasetCorruptError(
            f"MNIST: {path} is {state}: {size} bytes, its idx header ({kind}, shape "
            f"{'x'.join(map(str, dims))}) needs {expected}; {MNIST_FIX}"
        )
    if kind == "labels":
        labels = np.fromfile(path, dtype=np.uint8, offset=header_size)
        if labels.size and labels.max() > 9:
            raise DatasetCorruptError(
                f"MNIST: {path} holds label {int(labels.max())}, expected labels 0..9; "
                f"{MNIST_FIX}"
            )
    return dims


def check_cifar10(data_root: str | Path | None = None) -> Path:
    """Return the folder to give Avalanche as ``dataset_root``; raise if a file is missing
    or fails torchvision's MD5 check (torchvision would then try to download)."""
    how = ("Extract the official cifar-10-python.tar.gz (md5 c58f30108f718f92721af3b95e74349a, "
           "https://www.cs.toronto.edu/~kriz/cifar.html) into <data_root>/cifar10. "
           "Offline alternative: benchmark 'split_cifar10_jpeg' (a lossy JPEG copy).")
    paths = cifar10_files(data_root)
    _require_files(paths, "CIFAR-10", how)
    from torchvision.datasets import CIFAR10
    from torchvision.datasets.utils import check_integrity

    expected = dict(CIFAR10.train_list + CIFAR10.test_list)
    expected[CIFAR10.meta["filename"]] = CIFAR10.meta["md5"]
    corrupt = [p for p in paths if not check_integrity(str(p), expected[p.name])]
    if corrupt:
        raise DatasetNotFoundError(
            "CIFAR-10: file(s) fail the official MD5 check: "
            + ", ".join(map(str, corrupt)) + f". {how}"
        )
    return resolve_data_root(data_root) / "cifar10"


def check_cifar10_jpeg(data_root: str | Path | None = None) -> Path:
    """Path of the JPEG q75 copy; raise if it is missing."""
    path = resolve_data_root(data_root) / CIFAR10_JPEG_FILE
    _require_files(
        [path], "CIFAR-10 (JPEG q75 copy)",
        "It ships with the project's shared data folder (see its README.md, "
        "'lossy_jpeg_fallback').",
    )
    check_jpeg_npz(path)
    return path


JPEG_NPZ_FIX = ("replace it with the shared data folder's copy (sha256 a88f6083..., see its "
                "README.md, 'lossy_jpeg_fallback').")


def _npz_headers(path: Path) -> dict[str, tuple[tuple[int, ...], np.dtype]]:
    """``{array name: (shape, dtype)}`` of an ``.npz``, from the headers only."""
    import zipfile

    out = {}
    with zipfile.ZipFile(path) as archive:
        for name in archive.namelist():
            with archive.open(name) as handle:
                read = (np.lib.format.read_array_header_1_0
                        if np.lib.format.read_magic(handle) == (1, 0)
                        else np.lib.format.read_array_header_2_0)
                shape, _, dtype = read(handle)
            out[name.removesuffix(".npy")] = (shape, dtype)
    return out


def check_jpeg_npz(path: str | Path) -> None:
    """Check the JPEG q75 copy's arrays (names, shapes, dtypes, offsets, labels) without
    decoding it; :class:`DatasetCorruptError` naming the file and the array otherwise."""
    import zipfile

    path = Path(path)
    what = f"CIFAR-10 (JPEG q75 copy): {path}"
    try:
        headers = _npz_headers(path)
    except (zipfile.BadZipFile, ValueError, OSError, EOFError) as err:
        raise DatasetCorruptError(f"{what} is not a readable .npz archive (truncated or "
                                  f"corrupt: {err}); {JPEG_NPZ_FIX}") from None
    problems = []
    needed = [f"{split}_{part}" for split in ("train", "test") for part in ("jpeg", "offsets")]
    missing = [key for key in needed + ["y_train", "y_test"] if key not in headers]
    if missing:
        raise DatasetCorruptError(f"{what} lacks the array(s) {missing} (it holds "
                                  f"{sorted(headers)}); {JPEG_NPZ_FIX}")
    with np.load(path) as archive:
        for split, n in (("train", 50000), ("test", 10000)):
            (jpeg_shape, jpeg_dtype) = headers[f"{split}_jpeg"]
            if len(jpeg_shape) != 1 or jpeg_dtype != np.uint8:
                problems.append(f"'{split}_jpeg' must be 1-D uint8 bytes, got shape "
                                f"{jpeg_shape} dtype {jpeg_dtype}")
                continue
            for key, shape in ((f"{split}_offsets", (n + 1,)), (f"y_{split}", (n,))):
                if headers[key][0] != shape or headers[key][1].kind not in "iu":
                    problems.append(f"'{key}' must be integers of shape {shape}, got shape "
                                    f"{headers[key][0]} dtype {headers[key][1]}")
            if problems:
                continue
            offsets = archive[f"{split}_offsets"]
            if offsets[0] != 0 or offsets[-1] != jpeg_shape[0] or np.any(np.diff(offsets) <= 0):
                problems.append(f"'{split}_offsets' must rise strictly from 0 to the length of "
                                f"'{split}_jpeg' ({jpeg_shape[0]}), got {offsets[0]} .. "
                                f"{offsets[-1]}")
            labels = archive[f"y_{split}"]
            if labels.min() < 0 or labels.max() > 9:
                problems.append(f"'y_{split}' must hold labels 0..9, got {labels.min()} .. "
                                f"{labels.max()}")
    if problems:
        raise DatasetCorruptError(f"{what}: " + "; ".join(problems) + f"; {JPEG_NPZ_FIX}")


# --------------------------------------------------------------------------- arrays
class ArrayImageDataset(Dataset):
    """Images as a uint8 NHWC array with labels; items are ``(PIL image, int)`` like
    torchvision's ``CIFAR10``, so the same transforms apply."""

    def __init__(self, images: np.ndarray, labels: Sequence[int]) -> None:
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

    def __len__(self) -> int:
        return len(self.targets)

    def __getitem__(self, index: int):
        from PIL import Image

        image = self.images[index]
        return Image.fromarray(image[..., 0] if image.shape[-1] == 1 else image), self.targets[index]


class TensorClassificationDataset(Dataset):
    """Float input tensors with integer labels (``targets``), for ``nc_benchmark``."""

    def __init__(self, inputs: torch.Tensor, labels: Sequence[int]) -> None:
        self.inputs = inputs
        self.targets = [int(t) for t in labels]

    def __len__(self) -> int:
        return len(self.targets)

    def __getitem__(self, index: int):
        return self.inputs[index], self.targets[index]


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


# ----------------------------------------------------------------------- benchmark
def class_order(name: str, task_order: Sequence[int] | None = None) -> list[int]:
    """The ``fixed_class_order`` giving pairs in ``task_order`` (pair indices 0..4)."""
    base = CIFAR10_CLASS_ORDER if name in ("split_cifar10", "split_cifar10_jpeg") else MNIST_CLASS_ORDER
    order = check_task_order(task_order)
    return [c for k in order for c in base[2 * k: 2 * k + 2]]


def check_task_order(task_order: Sequence[int] | None) -> list[int]:
    """A permutation of the pair indices ``0..4`` (None: the reference order)."""
    if task_order is None:
        return list(range(N_TASKS))
    order = list(task_order)
    if sorted(order) != list(range(N_TASKS)) or any(isinstance(k, bool) for k in order):
        raise ValueError(
            f"task_order: expected a permutation of the pair indices 0..{N_TASKS - 1}, "
            f"got {task_order!r}"
        )
    return [int(k) for k in order]


def placements(moved: int = 0, n_tasks: int = N_TASKS) -> list[list[int]]:
    """The task orders that move pair ``moved`` from first to last place, others in order."""
    rest = [k for k in range(n_tasks) if k != moved]
    return [rest[:p] + [moved] + rest[p:] for p in range(n_tasks)]


def pair_classes(name: str, pair: int) -> tuple[int, int]:
    """Original class ids of pair ``pair``."""
    base = CIFAR10_CLASS_ORDER if name in ("split_cifar10", "split_cifar10_jpeg") else MNIST_CLASS_ORDER
    return base[2 * pair], base[2 * pair + 1]


def make_benchmark(
    name: str,
    *,
    scenario: str = "task",
    data_root: str | Path | None = None,
    seed: int = 0,
    task_order: Sequence[int] | None = None,
    validation_size: float = 0.1,
    train_samples_per_task: int | None = None,
    eval_samples_per_task: int | None = None,
):
    """An Avalanche benchmark with ``train_stream``, ``valid_stream`` and ``test_stream``.

    Args:
        name: one of :data:`BENCHMARKS`.
        scenario: ``"task"`` (multi-head, task labels, class ids from zero in each
            experience) or ``"class"`` (single head, class ids from zero from the first).
        data_root: folder holding ``mnist/`` and ``cifar10/`` (see :func:`resolve_data_root`).
        seed: seeds the validation split and the optional subsets.
        task_order: permutation of the pair indices (0 = the reference's first pair).
        validation_size: fraction of each training experience moved to ``valid_stream``.
        train_samples_per_task, eval_samples_per_task: optional seeded random subsets
            (for quick runs and tests); ``None`` keeps everything.

    The returned scenario also has ``display_name``, ``task_pairs`` (pair index per
    position) and ``task_classes`` (original class ids per position).
    """
    check_choice("name", name, BENCHMARKS)
    check_choice("scenario", scenario, SCENARIOS)
    order = check_task_order(task_order)
    if not isinstance(validation_size, (int, float)) or isinstance(validation_size, bool) \
            or not 0 < validation_size < 1:
        raise ValueError(f"validation_size: expected a fraction in (0, 1), got {validation_size!r}")
    for label, value in (("train_samples_per_task", train_samples_per_task),
                         ("eval_samples_per_task", eval_samples_per_task)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
            raise ValueError(f"{label}: expected an int >= 1 or None (all samples), got {value!r}")
    options = dict(
        n_experiences=N_TASKS,
        return_task_id=scenario == "task",
        seed=seed,
        fixed_class_order=class_order(name, order),
        class_ids_from_zero_in_each_exp=scenario == "task",
        class_ids_from_zero_from_first_exp=scenario == "class",
    )
    if name == "split_mnist":
        from avalanche.benchmarks.classic import SplitMNIST

        base = SplitMNIST(dataset_root=check_mnist(data_root), **options)
    elif name == "split_cifar10":
        from avalanche.benchmarks.classic import SplitCIFAR10

        base = SplitCIFAR10(dataset_root=check_cifar10(data_root), **options)
    elif name == "split_cifar10_jpeg":
        arrays = _decoded_jpeg_copy(str(check_cifar10_jpeg(data_root)))
        base = _cifar10_like_benchmark(*arrays["train"], *arrays["test"], options)
    else:
        base = _digits_benchmark(options)
    bm = _with_validation(base, order, validation_size, seed, train_samples_per_task,
                          eval_samples_per_task, precompute=name in ("split_mnist", "split_digits"))
    bm.display_name = DISPLAY_NAMES[name]
    bm.task_pairs = order
    bm.task_classes = [pair_classes(name, k) for k in order]
    return bm


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
    options = dict(
        n_experiences=N_TASKS, return_task_id=scenario == "task", seed=seed,
        fixed_class_order=class_order("split_cifar10", order),
        class_ids_from_zero_in_each_exp=scenario == "task",
        class_ids_from_zero_from_first_exp=scenario == "class",
    )
    base = _cifar10_like_benchmark(x_train, y_train, x_test, y_test, options)
    bm = _with_validation(base, order, validation_size, seed, None, None)
    bm.display_name = display_name
    bm.task_pairs = order
    bm.task_classes = [pair_classes("split_cifar10", k) for k in order]
    return bm


def _cifar10_like_benchmark(x_train, y_train, x_test, y_test, options: dict[str, Any]):
    from avalanche.benchmarks import nc_benchmark
    from avalanche.benchmarks.classic.ccifar10 import (
        _default_cifar10_eval_transform,
        _default_cifar10_train_transform,
    )

    return nc_benchmark(
        ArrayImageDataset(x_train, y_train), ArrayImageDataset(x_test, y_test),
        n_experiences=options["n_experiences"], task_labels=options["return_task_id"],
        seed=options["seed"], fixed_class_order=options["fixed_class_order"],
        class_ids_from_zero_in_each_exp=options["class_ids_from_zero_in_each_exp"],
        class_ids_from_zero_from_first_exp=options["class_ids_from_zero_from_first_exp"],
        train_transform=_default_cifar10_train_transform,
        eval_transform=_default_cifar10_eval_transform,
    )


def _digits_benchmark(options: dict[str, Any]):
    from avalanche.benchmarks import nc_benchmark
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    x = torch.tensor(digits.images / 16.0, dtype=torch.float32).unsqueeze(1)  # (N, 1, 8, 8)
    index_train, index_test = train_test_split(
        np.arange(len(x)), test_size=DIGITS_TEST_FRACTION, stratify=digits.target, random_state=0
    )
    y = digits.target
    return nc_benchmark(
        TensorClassificationDataset(x[index_train], y[index_train]),
        TensorClassificationDataset(x[index_test], y[index_test]),
        n_experiences=options["n_experiences"], task_labels=options["return_task_id"],
        seed=options["seed"], fixed_class_order=options["fixed_class_order"],
        class_ids_from_zero_in_each_exp=options["class_ids_from_zero_in_each_exp"],
        class_ids_from_zero_from_first_exp=options["class_ids_from_zero_from_first_exp"],
    )


def as_tensor_dataset(dataset):
    """The same samples with their (deterministic) transforms applied once, as an Avalanche
    tensor dataset with the same targets and task labels.

    Avalanche reads a dataset one sample at a time through its transform chain (for
    MNIST: PIL image -> ToTensor -> Normalize on every read), which dominated a Split MNIST
    run's time. Only for datasets whose train and eval transforms are equal and
    deterministic (MNIST, digits): the values are those every read would give.
    """
    from avalanche.benchmarks.utils import _make_taskaware_tensor_classification_dataset
    from torch.utils.data import DataLoader

    loader = DataLoader(dataset, batch_size=1024, shuffle=False,
                        collate_fn=getattr(dataset, "collate_fn", None), generator=torch.Generator())
    inputs, targets, tasks = [], [], []
    for x, y, t in loader:
        inputs.append(x)
        targets.append(y)
        tasks.append(t)
    return _make_taskaware_tensor_classification_dataset(
        torch.cat(inputs), torch.cat(targets), task_labels=torch.cat(tasks).tolist()
    )


def _with_validation(base, order: list[int], validation_size: float, seed: int,
                     train_samples: int | None, eval_samples: int | None,
                     precompute: bool = False):
    """Avalanche's validation split, optional seeded subsets, task labels and classes;
    with ``precompute`` the deterministic transforms are applied once (:func:`as_tensor_dataset`)."""
    from avalanche.benchmarks.scenarios.dataset_scenario import benchmark_from_datasets
    from avalanche.benchmarks.scenarios.supervised import with_classes_timeline
    from avalanche.benchmarks.scenarios.task_aware import with_task_labels
    from avalanche.benchmarks.scenarios.validation_scenario import benchmark_with_validation_stream

    split = benchmark_with_validation_stream(base, validation_size, shuffle=True, seed=seed)

    def subset(stream_id: int, pair: int, dataset, limit):
        # one generator per (seed, stream, pair): a pair gets the same samples at any position
        if limit is not None and len(dataset) > limit:
            generator = np.random.default_rng([seed, stream_id, pair])
            dataset = dataset.subset(np.sort(generator.permutation(len(dataset))[:limit]).tolist())
        return as_tensor_dataset(dataset) if precompute else dataset

    streams = {
        name: [subset(stream_id, pair, e.dataset, limit) for pair, e in zip(order, stream)]
        for stream_id, (name, stream, limit) in enumerate((
            ("train", split.train_stream, train_samples),
            ("valid", split.valid_stream, eval_samples),
            ("test", split.test_stream, eval_samples),
        ))
    }
    bm = with_task_labels(with_classes_timeline(benchmark_from_datasets(**streams)))
    for stream in bm.streams.values():
        for experience in stream:
            # Avalanche 0.6's MultiHeadClassifier indexes with this: a list, not a set
            experience.classes_in_this_experience = sorted(experience.classes_in_this_experience)
    return bm

