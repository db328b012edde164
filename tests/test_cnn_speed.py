"""The CNN speed levers change nothing beyond float rounding: uint8 tensors normalised on
the fly give Avalanche's PIL transform values exactly (and a whole training run on them
equals the run on PIL images), and the channels_last trunk gives the NCHW trunk's outputs,
gradients and importance to float tolerance on a real CIFAR-10 slice. Speed itself is
measured in ``benchmarks/cnn_throughput.py``."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from avalanche.benchmarks.classic.ccifar10 import (
    _default_cifar10_eval_transform,
    _default_cifar10_train_transform,
)

from alpha_mas_avalanche.data.cifar10 import (
    ArrayImageDataset,
    cifar10_benchmark_from_arrays,
    tensor_eval_transform,
    tensor_train_transform,
)
from alpha_mas_avalanche.data.names import check_task_order
from alpha_mas_avalanche.data.streams import class_split, label_pairs, scenario_options, with_validation
from alpha_mas_avalanche.importance import mas_importance
from alpha_mas_avalanche.models import make_model


@pytest.fixture(scope="module")
def cifar_slice(cifar10_exact_path):
    """The first 400 training and 100 test images of the exact CIFAR-10 subset."""
    with np.load(cifar10_exact_path) as z:
        return (z["x_train_exact"][:400], z["y_train"][z["train_index"][:400]],
                z["x_test_exact"][:100], z["y_test"][z["test_index"][:100]])


def test_uint8_tensor_transforms_equal_avalanches_pil_transforms(cifar_slice):
    x, y = cifar_slice[0][:64], cifar_slice[1][:64]
    pil, tensors = ArrayImageDataset(x, y), ArrayImageDataset(x, y, as_tensor=True)
    train = tensor_train_transform()
    torch.manual_seed(3)
    expected = torch.stack([_default_cifar10_train_transform(pil[i][0]) for i in range(64)])
    torch.manual_seed(3)
    got = torch.stack([train(tensors[i][0]) for i in range(64)])
    assert torch.equal(got, expected)  # same crops and flips, same arithmetic
    assert torch.equal(torch.stack([tensor_eval_transform()(tensors[i][0]) for i in range(64)]),
                       torch.stack([_default_cifar10_eval_transform(pil[i][0]) for i in range(64)]))
    assert [tensors[i][1] for i in range(64)] == [int(v) for v in y]


def test_channels_last_trunk_matches_nchw_outputs_gradients_and_importance(cifar_slice):
    torch.manual_seed(0)
    fast = make_model("cnn", input_shape=(3, 32, 32), scenario="domain")
    assert fast.trunk.channels_last  # the harness's default
    eager = make_model("cnn", input_shape=(3, 32, 32), scenario="domain")
    eager.load_state_dict(fast.state_dict())
    eager.trunk.channels_last = False
    x = torch.stack([tensor_eval_transform()(t) for t in
                     ArrayImageDataset(cifar_slice[0][:32], cifar_slice[1][:32], as_tensor=True).tensors])
    for model in (fast, eager):
        model(x).square().sum().backward()
    torch.testing.assert_close(fast(x), eager(x), rtol=1e-5, atol=1e-5)
    for (name, p), q in zip(fast.named_parameters(), eager.parameters()):
        assert p.is_contiguous(), name  # parameters keep their layout
        torch.testing.assert_close(p.grad, q.grad, rtol=1e-4, atol=1e-6, msg=name)
    got, ref = mas_importance(fast, x), mas_importance(eager, x)
    for name in ref:
        torch.testing.assert_close(got[name], ref[name], rtol=1e-4, atol=1e-8, msg=name)


def _pil_reference_benchmark(x_train, y_train, x_test, y_test, seed: int):
    """What ``cifar10_benchmark_from_arrays`` built before: PIL images with Avalanche's
    own CIFAR-10 transforms, through the same split."""
    order = check_task_order(None)
    base = class_split(ArrayImageDataset(x_train, y_train), ArrayImageDataset(x_test, y_test),
                       scenario_options("split_cifar10", order, "task", seed),
                       train_transform=_default_cifar10_train_transform,
                       eval_transform=_default_cifar10_eval_transform)
    bm = with_validation(base, order, 0.1, seed, None, None)
    return label_pairs(bm, "CIFAR-10 (PIL reference)", "split_cifar10", order)


def _train(bm, channels_last: bool, seed: int):
    """Avalanche Naive with Adam over the first 2 tasks, seeded per experience like the
    harness; returns the model, how far training moved it, and the test accuracies."""
    from avalanche.training import Naive
    from avalanche.training.determinism.rng_manager import RNGManager
    from torch.utils.data import DataLoader

    RNGManager.set_random_seeds(seed)
    model = make_model("cnn", input_shape=(3, 32, 32), scenario="task")
    model.trunk.channels_last = channels_last
    start = [p.detach().clone() for p in model.trunk.parameters()]
    strategy = Naive(model=model, optimizer=torch.optim.Adam(model.parameters(), lr=1e-3),
                     criterion=torch.nn.CrossEntropyLoss(), train_mb_size=16, train_epochs=2,
                     eval_mb_size=50, evaluator=None)
    for i, experience in enumerate(bm.train_stream[:2]):
        RNGManager.set_random_seeds(seed + i + 1)
        strategy.train(experience, num_workers=0)
    moved = max(float((p.detach() - q).abs().max()) for p, q in zip(model.trunk.parameters(), start))
    model.eval()
    accuracies = []
    with torch.no_grad():
        for experience in bm.test_stream[:2]:
            correct = total = 0
            for x, y, t in DataLoader(experience.dataset.eval(), batch_size=100):
                correct += int((model(x, t).argmax(1) == y).sum())
                total += len(y)
            accuracies.append(correct / total)
    return model, moved, accuracies


@pytest.mark.slow
@pytest.mark.parametrize("channels_last", [False, True])
def test_training_on_uint8_tensors_equals_training_on_pil_images(cifar_slice, channels_last):
    """The data lever through a whole training run: 2 tasks x 2 epochs of Adam on real
    images, same seeds, the trunk in the same memory format on both sides. The data are
    bit-identical (test above), so the runs are too: every weight and accuracy equal.
    (The memory-format lever changes the convolutions' rounding, which Adam amplifies over
    a run; it is compared where it may be, one step's outputs, gradients and importance,
    in the test above.)"""
    seed = 0
    pil_model, moved, pil_acc = _train(_pil_reference_benchmark(*cifar_slice, seed),
                                       channels_last, seed)
    fast_model, _, fast_acc = _train(cifar10_benchmark_from_arrays(*cifar_slice, seed=seed),
                                     channels_last, seed)
    assert moved > 1e-3  # training moved the weights: the comparison is not vacuous
    for (name, p), q in zip(fast_model.named_parameters(), pil_model.parameters()):
        assert torch.equal(p, q), name
    assert fast_acc == pil_acc
