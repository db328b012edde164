"""One prepared check on a GPU machine: the CUDA tests, a training experience of every plugin
under ``torch.cuda.set_sync_debug_mode("error")``, the reference write-up's CIFAR-10
protocol (VGG-16 from scratch, 5 epochs per task, AlphaMAS at N, 2N, 3N against MAS and
Naive, 3 seeds, bfloat16 autocast, several runs at once on the one GPU) and training
images/s.

What travels to that machine is the repository's tracked tree plus ``.gpu_check/`` (listed
in ``.gitignore``): the wheels the GPU image lacks and a reduced copy of the CIFAR-10
JPEG q75 file. The reduced copy keeps the file's layout (50,000 + 10,000 images) with the
real JPEG bytes of every image the check's runs read (found by building the same
benchmarks here) and one tiny black JPEG in every other slot, compressed: about 8 MiB
instead of 53.6 MiB. ``run`` checks that no run reads a placeholder.

    python scripts/gpu_check.py prepare          # here: data + wheels, prints the size
    python scripts/gpu_check.py size             # what would travel; exit 2 if > 64 MiB
    bash scripts/gpu_check.sh                    # there (the device command)
    python scripts/gpu_check.py run --dry-run    # here, on the CPU, tiny
"""
from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
CARRY = REPO / ".gpu_check"
LIMIT_MIB = 64
JPEG_PATH = Path("cifar10/lossy_jpeg_fallback/cifar10_jpeg_q75.npz")
#: Wheels the GPU image (Python 3.12, torch 2.11) lacks: Avalanche and what it imports.
WHEELS = ("avalanche-lib==0.6.0", "dill", "gdown", "pytorchcv", "wandb", "gputil", "qpsolvers")
PLATFORMS = ("manylinux_2_28_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64")
FULL = dict(samples=1000, eval_samples=500, seeds=[0, 1, 2], epochs=5, model="vgg16",
            multipliers=[1.0, 2.0, 3.0])
TINY = dict(samples=6, eval_samples=4, seeds=[0], epochs=1, model="cnn", multipliers=[1.0])
TEST_FILES = ["tests/test_mixed_precision.py", "tests/test_host_sync.py", "tests/test_devices.py",
              "tests/test_gpu_harness.py"]
PLUGINS = ("alpha_mas", "alpha_mas_last_epochs", "si", "l2", "ebll", "imm")


# ------------------------------------------------------------------ what travels
def travel_sizes(carry: Path = CARRY) -> dict[str, int]:
    """Bytes that travel: tracked files (by top folder), untracked-not-ignored, ``carry``."""
    def listed(*args: str) -> list[str]:
        out = subprocess.run(["git", "-C", str(REPO), "ls-files", "-z", *args],
                             capture_output=True, check=True).stdout
        return [p for p in out.decode().split("\0") if p]

    sizes: dict[str, int] = {}
    for path in listed():
        key = "tracked: " + (path.split("/")[0] + "/" if "/" in path else "(top level files)")
        file = REPO / path
        sizes[key] = sizes.get(key, 0) + (file.stat().st_size if file.is_file() else 0)
    sizes["untracked, not ignored"] = sum((REPO / p).stat().st_size
                                          for p in listed("--others", "--exclude-standard"))
    if carry.is_dir():
        for part in sorted(p for p in carry.iterdir()):
            files = [part] if part.is_file() else [f for f in part.rglob("*") if f.is_file()]
            sizes[f"carried: {carry.name}/{part.name}"] = sum(f.stat().st_size for f in files)
    return sizes


def report_size(carry: Path = CARRY, limit_mib: float = LIMIT_MIB) -> bool:
    """Print what would travel; False if it is over the limit."""
    sizes = travel_sizes(carry)
    total = sum(sizes.values())
    for name, size in sorted(sizes.items(), key=lambda kv: -kv[1]):
        print(f"  {size / 2**20:8.2f} MiB  {name}")
    fits = total <= limit_mib * 2**20
    print(f"  {total / 2**20:8.2f} MiB  in all (limit {limit_mib} MiB): "
          f"{'fits' if fits else 'TOO MUCH, refusing'}")
    return fits


# ------------------------------------------------------------------- the data
def grid_config(settings: dict, device: str, output_dir: str, data_root: str | None):
    from alpha_mas_avalanche.experiment import ExperimentConfig, MethodConfig

    methods = [MethodConfig("alpha_mas", sweep={"lambda_multiplier": list(settings["multipliers"])}),
               MethodConfig("mas"), MethodConfig("naive")]
    return ExperimentConfig(
        name="gpu_check_cifar10_vgg16", benchmark="split_cifar10_jpeg", model=settings["model"],
        methods=methods, epochs=settings["epochs"], lr=1e-3, optimizer="adam", batch_size=128,
        seeds=list(settings["seeds"]), train_samples_per_task=settings["samples"],
        eval_samples_per_task=settings["eval_samples"], data_root=data_root, device=device,
        amp="bf16", output_dir=output_dir)


def images_read(config) -> dict[str, set[int]]:
    """The train/test indices of the JPEG file that ``config``'s benchmarks read: built
    from stand-in images whose pixels encode their index (labels are the file's own)."""
    import torch

    from alpha_mas_avalanche.data import cifar10, make_benchmark
    from alpha_mas_avalanche.data.cifar10 import CIFAR10_MEAN, CIFAR10_STD
    from alpha_mas_avalanche.data.integrity import check_cifar10_jpeg

    with np.load(check_cifar10_jpeg(config.data_root)) as archive:
        labels = {s: archive[f"y_{s}"].astype(np.int64) for s in ("train", "test")}

    def encoded(n: int) -> np.ndarray:
        index = np.arange(n)
        channels = np.stack([index % 256, index // 256 % 256, index // 65536], 1).astype(np.uint8)
        return np.broadcast_to(channels[:, None, None, :], (n, 32, 32, 3)).copy()

    real = cifar10._decoded_jpeg_copy
    cifar10._decoded_jpeg_copy = lambda path: {s: (encoded(len(labels[s])), labels[s])
                                               for s in ("train", "test")}
    mean, std = torch.tensor(CIFAR10_MEAN), torch.tensor(CIFAR10_STD)
    used: dict[str, set[int]] = {"train": set(), "test": set()}
    try:
        for seed in config.seeds:
            for order in config.task_orders:
                bm = make_benchmark(
                    config.benchmark, scenario=config.scenario, data_root=config.data_root,
                    seed=seed, task_order=order, validation_size=config.validation_size,
                    train_samples_per_task=config.train_samples_per_task,
                    eval_samples_per_task=config.eval_samples_per_task)
                for split, streams in (("train", (bm.train_stream, bm.valid_stream)),
                                       ("test", (bm.test_stream,))):
                    for stream in streams:
                        for exp in stream:
                            data = exp.dataset.eval()
                            for i in range(len(data)):
                                pixel = (data[i][0][:, 0, 0] * std + mean) * 255
                                c = pixel.round().long().tolist()
                                used[split].add(c[0] + 256 * c[1] + 65536 * c[2])
    finally:
        cifar10._decoded_jpeg_copy = real
    return used


def black_jpeg() -> np.ndarray:
    import torch
    from torchvision.io import encode_jpeg

    return encode_jpeg(torch.zeros(3, 32, 32, dtype=torch.uint8), quality=75).numpy()


def write_reduced_copy(source: Path, target: Path, used: dict[str, set[int]]) -> None:
    """The JPEG file with every image not in ``used`` replaced by a black placeholder."""
    placeholder = black_jpeg()
    arrays = {}
    with np.load(source) as archive:
        for split in ("train", "test"):
            buffer, offsets = archive[f"{split}_jpeg"], archive[f"{split}_offsets"]
            pieces, new_offsets = [], [0]
            for i in range(len(offsets) - 1):
                piece = buffer[offsets[i]:offsets[i + 1]] if i in used[split] else placeholder
                pieces.append(piece)
                new_offsets.append(new_offsets[-1] + len(piece))
            arrays[f"{split}_jpeg"] = np.concatenate(pieces)
            arrays[f"{split}_offsets"] = np.asarray(new_offsets, dtype=np.int64)
            arrays[f"y_{split}"] = archive[f"y_{split}"]
    target.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(target, **arrays)


def check_no_placeholder(config) -> int:
    """Raise if any image ``config``'s benchmarks read is a placeholder; the count read."""
    from alpha_mas_avalanche.data import make_benchmark

    count = 0
    for seed in config.seeds:
        for order in config.task_orders:
            bm = make_benchmark(config.benchmark, scenario=config.scenario,
                                data_root=config.data_root, seed=seed, task_order=order,
                                validation_size=config.validation_size,
                                train_samples_per_task=config.train_samples_per_task,
                                eval_samples_per_task=config.eval_samples_per_task)
            for stream in (bm.train_stream, bm.valid_stream, bm.test_stream):
                for exp in stream:
                    data = exp.dataset.eval()
                    for i in range(len(data)):
                        if float(data[i][0].flatten(1).std(1).max()) == 0.0:  # uniform
                            raise RuntimeError(f"seed {seed}: {stream.name} experience "
                                               f"{exp.current_experience} reads a placeholder "
                                               "image; run prepare with these settings")
                        count += 1
    return count


def download_wheels(target: Path) -> None:
    target.mkdir(parents=True, exist_ok=True)
    platforms = [a for p in PLATFORMS for a in ("--platform", p)]
    for requirement in WHEELS:
        command = [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "-d", str(target),
                   "--python-version", "3.12", "--implementation", "cp", *platforms, requirement]
        if subprocess.run([*command, "--only-binary=:all:"]).returncode != 0:
            # a source-only package (GPUtil): build its wheel here
            subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w",
                            str(target), requirement], check=True)


def prepare(args) -> int:
    from alpha_mas_avalanche.data.integrity import check_cifar10_jpeg

    settings = TINY if args.tiny else FULL
    config = grid_config(settings, "cpu", "unused", args.data_root)
    used = images_read(config)
    source = check_cifar10_jpeg(args.data_root)
    write_reduced_copy(source, args.carry / "data" / JPEG_PATH, used)
    print(f"reduced CIFAR-10 copy: {len(used['train'])} train and {len(used['test'])} test "
          f"images kept of 50000 + 10000")
    if not args.no_wheels:
        download_wheels(args.carry / "wheels")
    return 0 if report_size(args.carry) else 2


# -------------------------------------------------------------------- the run
def test_command(device: str) -> list[str]:
    """The CUDA test selection: the device-aware tests, the earlier CUDA tests as well."""
    return [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--device", device,
            *TEST_FILES, "tests/test_compatibility.py", "tests/test_ebll.py", "tests/test_imm.py",
            "-k", "cuda or test_mixed or test_host or test_devices or test_gpu_harness"]


def step_tests(device: str, out: Path, dry_run: bool) -> str:
    command = test_command(device)
    if dry_run:  # the selection is the suite's own; here only check that its files exist
        missing = [f for f in command if f.startswith("tests/") and not (REPO / f).is_file()]
        return f"missing test files: {missing}" if missing else "dry run: not run, files present"
    result = subprocess.run(command, capture_output=True, text=True, cwd=REPO)
    (out / "tests.log").write_text(result.stdout[-200_000:] + result.stderr[-50_000:])
    return result.stdout.strip().splitlines()[-1] if result.stdout.strip() else "no output"


def step_sync_debug(device: str, n_train: int = 300, model: str = "cnn_bn") -> dict[str, str]:
    """A second training experience of each plugin with CUDA's sync debug mode "error"
    (on the CPU: the same runs, nothing to watch)."""
    import torch

    sys.path.insert(0, str(REPO / "tests"))
    from amp_helpers import MODELS, PLUGINS as FACTORIES, make_strategy, train
    from digits import digits_benchmark

    bm, outcome = digits_benchmark(n_train=n_train), {}
    for name in PLUGINS:
        torch.manual_seed(0)
        strategy = make_strategy(MODELS[model](), [FACTORIES[name]()], device=device,
                                 amp="bf16")
        train(strategy, bm.train_stream[:1], device)
        watched = torch.device(device).type == "cuda"
        try:
            if watched:
                torch.cuda.set_sync_debug_mode("error")
            strategy.train(bm.train_stream[1], eval_streams=[])
            outcome[name] = "no synchronisation" if watched else "ran (CPU: not watched)"
        except RuntimeError as err:
            outcome[name] = f"FAILED: {str(err).splitlines()[0]}"
        finally:
            if watched:
                torch.cuda.set_sync_debug_mode(0)
    return outcome


def step_grid(device: str, out: Path, settings: dict, data_root: str | None) -> dict:
    from alpha_mas_avalanche.experiment import run_experiment
    from alpha_mas_avalanche.experiment.executors import LocalProcessExecutor, sequential_executor
    from alpha_mas_avalanche.experiment.records import load_records

    work = Path("/tmp/gpu_check_grid")
    shutil.rmtree(work, ignore_errors=True)
    config = grid_config(settings, device, str(work), data_root)
    read = check_no_placeholder(config)
    cuda = device.startswith("cuda")
    executor = LocalProcessExecutor(device=device) if cuda else sequential_executor
    started = time.perf_counter()
    try:
        summary = run_experiment(config, executor=executor)
    finally:
        getattr(executor, "close", lambda: None)()
    wall = time.perf_counter() - started
    for name in ("table.md", "environment.json"):
        if (work / name).is_file():
            shutil.copy(work / name, out / name)
    with tarfile.open(out / "grid.tar.gz", "w:gz") as archive:
        archive.add(work, arcname="gpu_check_grid")
    records = load_records(work / "runs")
    # about: each task's training samples less the validation share, every epoch
    per_task = settings["samples"] * (1 - config.validation_size) * settings["epochs"]
    images = sum(per_task * len(r["acc_matrix"]) for r in records)
    train_s = sum(r["train_time_s"] for r in records)
    return {"images_checked": read, "runs": summary["counts"], "wall_s": round(wall, 1),
            "workers": getattr(executor, "workers", 1),
            "training_images_per_s_per_run": round(images / max(train_s, 1e-9), 1),
            "training_images_per_s_all_runs": round(images / max(wall, 1e-9), 1)}


def run(args) -> int:
    import torch

    device = "cpu" if args.dry_run else "cuda"
    if not args.dry_run and not torch.cuda.is_available():
        print("gpu_check: no CUDA device here; use --dry-run on a CPU machine")
        return 2
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    settings = TINY if args.dry_run else FULL
    data_root = str(args.carry / "data") if (args.carry / "data").is_dir() else args.data_root
    report = {"device": torch.cuda.get_device_name(0) if device == "cuda" else "cpu",
              "torch": torch.__version__, "settings": settings}
    started = time.perf_counter()
    report["tests"] = step_tests(device, out, args.dry_run)
    report["sync_debug"] = (step_sync_debug(device, n_train=100, model="mlp") if args.dry_run
                            else step_sync_debug(device))
    report["grid"] = step_grid(device, out, settings, data_root)
    report["total_s"] = round(time.perf_counter() - started, 1)
    (out / "gpu_check.json").write_text(json.dumps(report, indent=1))
    print(json.dumps(report, indent=1))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("command", choices=("prepare", "size", "run"))
    parser.add_argument("--carry", type=Path, default=CARRY, help="the folder that travels")
    parser.add_argument("--data-root", default=None, help="where the full JPEG copy is (prepare)")
    parser.add_argument("--tiny", action="store_true", help="prepare for the dry run's settings")
    parser.add_argument("--no-wheels", action="store_true", help="prepare the data only")
    parser.add_argument("--dry-run", action="store_true", help="run on the CPU, tiny")
    parser.add_argument("--out", default="gpu_check_out", help="where run writes its files")
    args = parser.parse_args(argv)
    if args.command == "size":
        return 0 if report_size(args.carry) else 2
    if args.command == "prepare":
        return prepare(args)
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
