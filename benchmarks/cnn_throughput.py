"""Images/s of the CIFAR-10 CNN on CPU: training, evaluation, the importance pass, the
held-out pass and the data pipeline, for the CIFAR-10 speed levers, beside the eager path.

Every variant of a section runs in one process, interleaved (the order rotates every
round); medians after one warm-up round. Ratios divide by the section's baseline
("eager": float32 inputs, contiguous NCHW, not compiled, ``--threads`` threads, which is
the harness's path before this benchmark). Images are the first training images of the
CIFAR-10 (JPEG q75 copy); the model is ``make_model("cnn", ...)`` with its 5 task heads.

    python benchmarks/cnn_throughput.py                    # everything, 1 thread
    python benchmarks/cnn_throughput.py --sections train eval --rounds 7
    python benchmarks/cnn_throughput.py --width 16          # also a CNN of half the width
    python benchmarks/cnn_throughput.py --sections width --width 16 --pairs 0 2 --epochs 3

The ``width`` section is not a timing: it trains the present CNN and the ``--width`` one on
whole single tasks of Split CIFAR-10 (JPEG q75 copy, the harness's data path) and prints
their test accuracies (a narrower CNN only if within 2 pp).

The run-cost estimate at the end uses this run's medians for the CIFAR-10 grid
(5 tasks x 9,000 training, 1,000 validation and 2,000 test images, at 3 and 5 epochs).
"""
from __future__ import annotations

import argparse
import functools
import os
import time
from collections.abc import Callable

import numpy as np
import torch
from avalanche.benchmarks.utils import _make_taskaware_tensor_classification_dataset
from avalanche.models.dynamic_modules import avalanche_model_adaptation
from avalanche.models.utils import avalanche_forward
from torch import nn
from torch.utils.data import DataLoader

from alpha_mas_avalanche.importance import mas_importance
from alpha_mas_avalanche.models import ConvTrunk, MultiHeadNet, make_model
from speed_common import data_root, interleaved_medians, median, print_table, task_benchmark

MEAN = torch.tensor([0.4914, 0.4822, 0.4465]).view(1, 3, 1, 1)
STD = torch.tensor([0.2023, 0.1994, 0.2010]).view(1, 3, 1, 1)
TASKS, TRAIN, VALID, TEST = 5, 9000, 1000, 2000
SECTIONS = ("train", "compile", "eval", "importance", "heldout", "data", "width")


def cifar_uint8(n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The first ``n`` training images of the JPEG q75 copy, uint8 NCHW, and labels."""
    from torchvision.io import decode_jpeg

    path = data_root() / "cifar10" / "lossy_jpeg_fallback" / "cifar10_jpeg_q75.npz"
    with np.load(path) as z:
        buf, off = z["train_jpeg"], z["train_offsets"]
        images = decode_jpeg([torch.from_numpy(buf[off[i]:off[i + 1]].copy()) for i in range(n)])
        labels = torch.from_numpy(z["y_train"][:n]).long()
    return torch.stack(images), labels


def normalise(x_uint8: torch.Tensor) -> torch.Tensor:
    """What ToTensor + Normalize give, on a whole uint8 batch at once."""
    return (x_uint8.float().div(255) - MEAN) / STD


def cnn(width: int = 32, channels_last: bool = False, weights_too: bool = False) -> nn.Module:
    """The project's CNN with its 5 task heads (Avalanche masks a head's units until it
    has seen their classes); ``width`` scales every layer (32 = ``make_model``)."""
    if width == 32:
        model = make_model("cnn", input_shape=(3, 32, 32), scenario="task")
    else:
        w = width
        trunk = ConvTrunk(
            nn.Conv2d(3, w, 3, padding=1), nn.ReLU(),
            nn.Conv2d(w, w, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(w, 2 * w, 3, padding=1), nn.ReLU(),
            nn.Conv2d(2 * w, 2 * w, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Flatten(), nn.Linear(2 * w * 8 * 8, 8 * w), nn.ReLU(),
        )
        model = MultiHeadNet(trunk, 8 * w)
    model.trunk.channels_last = channels_last
    if channels_last and weights_too:
        model.trunk.to(memory_format=torch.channels_last)
    for experience in _heads_benchmark().train_stream:  # the 5 heads, their units active
        avalanche_model_adaptation(model, experience)
    return model


@functools.lru_cache(maxsize=1)
def _heads_benchmark():
    return task_benchmark("cnn", 200)


class Trainer:
    """One Adam step of cross-entropy on task 0's head, like Avalanche's Naive."""

    def __init__(self, model: nn.Module, compile_trunk: bool = False) -> None:
        self.model = model
        if compile_trunk:
            model.trunk = torch.compile(model.trunk)
        self.optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
        self.criterion = nn.CrossEntropyLoss()

    def step(self, x: torch.Tensor, y: torch.Tensor) -> None:
        self.model.train()
        self.optimizer.zero_grad()
        out = avalanche_forward(self.model, x, torch.zeros(len(x), dtype=torch.long))
        self.criterion(out, y).backward()
        self.optimizer.step()


def with_threads(n: int, fn: Callable[[], None]) -> Callable[[], None]:
    def run() -> None:
        before = torch.get_num_threads()
        torch.set_num_threads(n)
        try:
            fn()
        finally:
            torch.set_num_threads(before)
    return run


@torch.no_grad()
def evaluate(model: nn.Module, x: torch.Tensor, batch: int, uint8: bool = False) -> int:
    model.eval()
    correct = 0
    for i in range(0, len(x), batch):
        xb = normalise(x[i:i + batch]) if uint8 else x[i:i + batch]
        correct += int(avalanche_forward(model, xb, torch.zeros(len(xb), dtype=torch.long))
                       .argmax(1).eq(0).sum())
    return correct


def report(title: str, times: dict[str, list[float]], images: dict[str, int], base: str) -> dict[str, float]:
    """Print images/s and the ratio to ``base``; return images/s per variant."""
    ips = {name: images[name] / median(t) for name, t in times.items()}
    print(f"\n### {title}\n")
    print_table(["variant", "median s", "images/s", f"x {base}"],
                [[n, f"{median(times[n]):.3f}", f"{ips[n]:.1f}", f"{ips[n] / ips[base]:.2f}x"]
                 for n in times])
    return ips


def train_section(x8, y, args, out: dict) -> None:
    for batch in args.train_batches:
        xb, yb = normalise(x8[:batch]), (y[:batch] % 2)
        variants: dict[str, Callable[[], None]] = {}
        trainers = {
            "eager": (Trainer(cnn()), xb),
            "channels_last (input; make_model's default)": (Trainer(cnn(channels_last=True)), xb),
            "channels_last weights too": (Trainer(cnn(channels_last=True, weights_too=True)), xb),
        }
        if args.width != 32:
            trainers[f"width {args.width}, channels_last"] = (
                Trainer(cnn(args.width, channels_last=True)), xb)
        if "compile" in args.sections:
            trainers["torch.compile(trunk)"] = (Trainer(cnn(), compile_trunk=True), xb)
            trainers["torch.compile(trunk) + channels_last"] = (
                Trainer(cnn(channels_last=True), compile_trunk=True), xb)
            for name in ("torch.compile(trunk)", "torch.compile(trunk) + channels_last"):
                start = time.perf_counter()
                trainers[name][0].step(xb, yb)  # compile outside the timed rounds
                out.setdefault("compile_s", {})[(name, batch)] = time.perf_counter() - start
        for name, (trainer, xin) in trainers.items():
            variants[name] = (lambda t=trainer, xi=xin: t.step(xi, yb))
        variants["eager, 2 threads"] = with_threads(2, lambda t=trainers["eager"][0]: t.step(xb, yb))
        times = interleaved_medians(variants, args.rounds)
        ips = report(f"Training, Adam step, batch {batch} (images/s)", times,
                     {n: batch for n in times}, "eager")
        out[("train", batch)] = ips


def eval_section(x8, args, out: dict) -> None:
    n = VALID
    x = normalise(x8[:n])
    model, model_cl = cnn(), cnn(channels_last=True)
    model_cl.load_state_dict(model.state_dict())
    variants = {}
    for batch in args.eval_batches:
        variants[f"eager, batch {batch}"] = (lambda b=batch: evaluate(model, x, b))
        variants[f"channels_last, batch {batch}"] = (lambda b=batch: evaluate(model_cl, x, b))
    variants[f"channels_last, batch {args.eval_batches[-1]}, 2 threads"] = with_threads(
        2, lambda: evaluate(model_cl, x, args.eval_batches[-1]))
    if args.width != 32:
        narrow = cnn(args.width, channels_last=True)
        variants[f"width {args.width}, channels_last, batch 512"] = lambda: evaluate(narrow, x, 512)
    base = f"eager, batch {512 if 512 in args.eval_batches else args.eval_batches[0]}"
    times = interleaved_medians(variants, args.rounds)
    out["eval"] = report(f"Evaluation, no_grad, {n} images (images/s)", times,
                         {k: n for k in times}, base)
    out["eval_base"] = base


def importance_section(x8, args, out: dict) -> None:
    n = args.importance_images
    x = normalise(x8[:n])
    model, model_cl = cnn(), cnn(channels_last=True)
    model_cl.load_state_dict(model.state_dict())
    common = dict(task_label=0, exact=True, batch_size=256)
    ref = mas_importance(model, x, **common)
    got = mas_importance(model_cl, x, **common)
    scale = max(float(v.abs().max()) for v in ref.values())
    diff = max(float((ref[k] - got[k]).abs().max()) for k in ref) / scale
    variants = {
        "eager": lambda: mas_importance(model, x, **common),
        "channels_last": lambda: mas_importance(model_cl, x, **common),
    }
    if args.width != 32:
        narrow = cnn(args.width, channels_last=True)
        variants[f"width {args.width}, channels_last"] = lambda: mas_importance(narrow, x, **common)
    times = interleaved_medians(variants, args.rounds)
    out["importance"] = report(
        f"Importance pass, mas_importance(exact=True, batch_size=256), {n} images (images/s)",
        times, {k: n for k in times}, "eager")
    print(f"\nlargest |eager - channels_last| / largest importance: {diff:.1e}")


def _datasets(x8, y, n: int, train: bool):
    """Today's PIL dataset with Avalanche's transform, and the uint8 tensor dataset of
    ``alpha_mas_avalanche.data.cifar10`` with its tensor transform, on the same images."""
    from avalanche.benchmarks.classic.ccifar10 import (
        _default_cifar10_eval_transform,
        _default_cifar10_train_transform,
    )
    from avalanche.benchmarks.utils import _make_taskaware_classification_dataset

    from alpha_mas_avalanche.data.cifar10 import (
        ArrayImageDataset,
        tensor_eval_transform,
        tensor_train_transform,
    )
    images, labels = x8[:n].permute(0, 2, 3, 1).numpy(), (y[:n] % 2).tolist()
    return (
        _make_taskaware_classification_dataset(
            ArrayImageDataset(images, labels),
            transform=_default_cifar10_train_transform if train else _default_cifar10_eval_transform,
            task_labels=0),
        _make_taskaware_classification_dataset(
            ArrayImageDataset(images, labels, as_tensor=True),
            transform=tensor_train_transform() if train else tensor_eval_transform(),
            task_labels=0),
    )


def heldout_section(x8, y, args, out: dict) -> None:
    """The per-epoch validation pass of ``experiment/heldout.py`` (1,000 images, batch 512)
    over PIL images (per read: ToTensor, Normalize), uint8 tensors normalised per read,
    and float tensors normalised once."""
    try:
        from alpha_mas_avalanche.experiment.heldout import dataset_accuracy
        how = "alpha_mas_avalanche.experiment.heldout.dataset_accuracy"
    except ImportError:
        dataset_accuracy, how = None, "a plain no-grad loop (heldout.py not importable)"
    n = VALID
    pil, uint8 = _datasets(x8, y, n, train=False)
    floats = _make_taskaware_tensor_classification_dataset(normalise(x8[:n]), y[:n] % 2, task_labels=0)
    model = cnn(channels_last=True)

    def run(dataset) -> Callable[[], None]:
        if dataset_accuracy is not None:
            return lambda: dataset_accuracy(model, dataset, 512, "cpu")

        def loop() -> None:
            model.eval()
            with torch.no_grad():
                for xb, _, tb, *_ in DataLoader(dataset, batch_size=512):
                    avalanche_forward(model, xb, tb)
        return loop
    base = "PIL images (before)"
    times = interleaved_medians({
        base: run(pil),
        "uint8 tensors, normalised per read (now)": run(uint8),
        "float tensors, normalised once": run(floats),
    }, args.rounds)
    out["heldout"] = report(f"Held-out pass, {n} images, batch 512, channels_last CNN, via {how} "
                            "(images/s)", times, {k: n for k in times}, base)


def data_section(x8, y, args, out: dict) -> None:
    """The data pipeline alone (no model), batch 128: training reads (random crop, flip,
    normalise) and evaluation reads (normalise), PIL path vs uint8 tensor path."""
    n = 2048
    variants = {}
    for kind, train in (("train", True), ("eval", False)):
        pil, uint8 = _datasets(x8, y, n, train)
        for path, dataset in (("PIL (before)", pil), ("uint8 tensors (now)", uint8)):
            variants[f"{kind} reads, {path}"] = (
                lambda d=dataset: [None for _ in DataLoader(d, batch_size=128, shuffle=True)])
    times = interleaved_medians(variants, args.rounds)
    ips = report(f"Data pipeline alone, {n} images, batch 128 (images/s)", times,
                 {k: n for k in times}, "train reads, PIL (before)")
    for kind in ("train", "eval"):
        out[f"data_{kind}"] = {"pil": ips[f"{kind} reads, PIL (before)"],
                               "uint8": ips[f"{kind} reads, uint8 tensors (now)"]}


def width_section(args) -> None:
    """Single-task test accuracy of width 32 (``make_model``) and ``--width``: Avalanche
    Naive, Adam 1e-3, batch 64, ``--epochs`` epochs on all training images of each pair in
    ``--pairs`` (90 %; 10 % held out), tested on the pair's 2,000 test images."""
    from avalanche.training import Naive
    from avalanche.training.determinism.rng_manager import RNGManager

    from alpha_mas_avalanche.data import make_benchmark
    bm = make_benchmark("split_cifar10_jpeg", seed=args.seed, data_root=data_root())
    rows = []
    for pair in args.pairs:
        accuracy = {}
        for width in (32, args.width):
            RNGManager.set_random_seeds(args.seed)
            model = cnn(width, channels_last=True)
            strategy = Naive(model=model, optimizer=torch.optim.Adam(model.parameters(), lr=1e-3),
                             criterion=nn.CrossEntropyLoss(), train_mb_size=64,
                             train_epochs=args.epochs, eval_mb_size=128, evaluator=None)
            start = time.perf_counter()
            strategy.train(bm.train_stream[pair], num_workers=0)
            seconds = time.perf_counter() - start
            model.eval()
            correct = total = 0
            with torch.no_grad():
                for x, y, t in DataLoader(bm.test_stream[pair].dataset.eval(), batch_size=500):
                    correct += int((model(x, t).argmax(1) == y).sum())
                    total += len(y)
            accuracy[width] = correct / total
            rows.append([pair, bm.task_classes[pair], width, sum(p.numel() for p in model.trunk.parameters()),
                         len(bm.train_stream[pair].dataset), total, f"{100 * accuracy[width]:.2f}",
                         f"{seconds:.0f}"])
        rows.append([pair, "", f"{args.width} - 32", "", "", "",
                     f"{100 * (accuracy[args.width] - accuracy[32]):+.2f} pp", ""])
    print(f"\n### Single-task test accuracy, seed {args.seed}, {args.epochs} epoch(s), batch 64, Adam 1e-3\n")
    print_table(["pair", "classes", "width", "trunk parameters", "train images", "test images",
                 "test acc %", "train s"], rows)


def cost_section(out: dict, args) -> None:
    """Minutes per run of the CIFAR-10 grid from this run's medians (one process, --threads):
    model time per image plus data time per image, for each kind of pass."""
    needed = (("train", 128), "eval", "importance", "data_train", "data_eval")
    if any(k not in out for k in needed):
        if out:
            print("\n(no cost estimate: it needs the train, eval, importance and data sections)")
        return
    tr, ev, imp = out[("train", 128)], out["eval"], out["importance"]
    dt, de = out["data_train"], out["data_eval"]
    cl = "channels_last (input; make_model's default)"
    paths = [
        ("before: NCHW, PIL data, eval batch 512", tr["eager"], ev[out["eval_base"]],
         imp["eager"], "pil"),
        ("now: channels_last, uint8 data, eval batch 512", tr[cl], ev["channels_last, batch 512"],
         imp["channels_last"], "uint8"),
    ]
    if "channels_last, batch 128" in ev:
        paths.append(("now + eval_batch_size 128", tr[cl], ev["channels_last, batch 128"],
                      imp["channels_last"], "uint8"))
    narrow = f"width {args.width}, channels_last"
    if args.width != 32 and narrow in tr:
        paths.append((f"width {args.width}, channels_last, uint8, eval batch 512", tr[narrow],
                      ev[f"{narrow}, batch 512"], imp[narrow], "uint8"))
    seen = sum(range(1, TASKS + 1))  # evaluations cover the tasks seen so far
    rows = []
    for label, t_ips, e_ips, i_ips, data in paths:
        per_train, per_eval = 1 / t_ips + 1 / dt[data], 1 / e_ips + 1 / de[data]
        for epochs in (3, 5):
            minutes = {
                "train": TASKS * TRAIN * epochs * per_train / 60,
                "held-out": epochs * VALID * seen * per_eval / 60,  # after every epoch
                "test": TEST * seen * per_eval / 60,  # after every task
                "importance": TASKS * TRAIN * (1 / i_ips + 1 / de[data]) / 60,
            }
            total = sum(minutes.values())
            rows.append([label, epochs, *(f"{m:.1f}" for m in minutes.values()), f"{total:.1f}",
                         f"{total / 60 * args.threads:.2f}"])
    print(f"\n### Estimated cost of one sequential run ({TASKS} tasks x {TRAIN} training images, "
          f"batch 128; {VALID} validation and {TEST} test images per task)\n")
    print_table(["path", "epochs", "train min", "held-out min", "test min", "importance min",
                 "total min", "core-hours"], rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--sections", nargs="+", default=list(SECTIONS[:-1]), choices=SECTIONS,
                        help="default: all but width (an accuracy run, minutes)")
    parser.add_argument("--train-batches", nargs="+", type=int, default=[64, 128])
    parser.add_argument("--eval-batches", nargs="+", type=int, default=[128, 512, 1000])
    parser.add_argument("--importance-images", type=int, default=256)
    parser.add_argument("--width", type=int, default=32, help="also time a CNN of this width")
    parser.add_argument("--pairs", nargs="+", type=int, default=[0], help="width section: task positions")
    parser.add_argument("--epochs", type=int, default=3, help="width section: epochs per task")
    parser.add_argument("--seed", type=int, default=0, help="width section: seed")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    print(f"torch {torch.__version__}, {args.threads} thread(s), load average "
          f"{' '.join(f'{v:.2f}' for v in os.getloadavg())}, rounds {args.rounds} (+1 warm-up)")
    x8, y = cifar_uint8(2048)
    out: dict = {}
    if "train" in args.sections:
        train_section(x8, y, args, out)
        if "compile_s" in out:
            print("\nFirst step of each compiled model (compilation included), s: " + ", ".join(
                f"{name} @ {b}: {s:.1f}" for (name, b), s in out["compile_s"].items()))
    if "eval" in args.sections:
        eval_section(x8, args, out)
    if "importance" in args.sections:
        importance_section(x8, args, out)
    if "heldout" in args.sections:
        heldout_section(x8, y, args, out)
    if "data" in args.sections:
        data_section(x8, y, args, out)
    cost_section(out, args)
    if "width" in args.sections and args.width != 32:
        width_section(args)
    print(f"\nload average at the end: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")


if __name__ == "__main__":
    main()
