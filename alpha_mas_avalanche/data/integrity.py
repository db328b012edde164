"""Dataset files present and sound: the missing-data and corrupt-file errors, the data root,
and the checks of the MNIST idx files, the official CIFAR-10 batches and the JPEG copy's .npz.

Run before torchvision/Avalanche reads anything (nothing is ever downloaded); numpy only.
"""
from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

MNIST_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte",
               "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
CIFAR10_FILES = ("data_batch_1", "data_batch_2", "data_batch_3", "data_batch_4",
                 "data_batch_5", "test_batch", "batches.meta")
CIFAR10_JPEG_FILE = Path("cifar10") / "lossy_jpeg_fallback" / "cifar10_jpeg_q75.npz"


class DatasetNotFoundError(FileNotFoundError):
    """A dataset's files are not where they must be (nothing is downloaded unless asked)."""


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
            f"They must be in {missing[0].parent}. {how} Nothing is downloaded unless asked: "
            "pass --data-root / data_root= or set ALPHA_MAS_DATA_ROOT to the folder that "
            "holds them, or (with internet access) add --download to let torchvision fetch "
            "MNIST / CIFAR-10 there."
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
