"""The domain-incremental scenario and the Hsu et al. (2018) benchmark on real MNIST slices:
one shared 2-output head, labels = position within the pair, no task labels; every method
of the registry trains in it."""
from __future__ import annotations

import math

import pytest
import torch

from alpha_mas_avalanche.cli import preset
from alpha_mas_avalanche.data import make_benchmark
from alpha_mas_avalanche.experiment import execute_run
from alpha_mas_avalanche.experiment.methods import REGISTRY
from alpha_mas_avalanche.experiment.specs import base_spec
from alpha_mas_avalanche.models import SharedHeadNet, make_model

pytestmark = pytest.mark.slow


def test_hsu_benchmark_is_padded_32x32_in_label_order_with_one_shared_head(mnist_root):
    import torchvision

    bm = make_benchmark("split_mnist_hsu2018", scenario="domain", data_root=mnist_root.parent,
                        train_samples_per_task=50, eval_samples_per_task=30)
    assert [tuple(c) for c in bm.task_classes] == [(0, 1), (2, 3), (4, 5), (6, 7), (8, 9)]
    raw = torchvision.datasets.MNIST(str(mnist_root), train=False)
    for position, experience in enumerate(bm.test_stream):
        assert experience.task_labels == [0]
        x, y, t = experience.dataset[0]
        assert tuple(x.shape) == (1, 32, 32) and t == 0
        labels = {int(experience.dataset[i][1]) for i in range(len(experience.dataset))}
        assert labels == {0, 1}
        # the two-pixel border is the padded zero, normalised as in Hsu et al.'s loader
        assert torch.allclose(x[0, :2], torch.full((2, 32), -0.1 / 0.2752))
    # by hand: the raw test digits 0 and 1, padded, scaled, normalised; the first task's
    # first test image is one of them, and its label is its position in the pair (0, 1)
    digits = raw.data[raw.targets <= 1].float() / 255
    expected = (torch.nn.functional.pad(digits, (2, 2, 2, 2)) - 0.1) / 0.2752
    x, y, _ = bm.test_stream[0].dataset[0]
    match = (expected - x[0]).abs().flatten(1).amax(1).argmin()
    assert float((expected[match] - x[0]).abs().max()) < 1e-6
    assert int(raw.targets[raw.targets <= 1][match]) == int(y)


def test_shared_head_model_has_two_outputs_for_every_task():
    model = make_model("mlp", input_shape=(1, 32, 32), scenario="domain")
    assert isinstance(model, SharedHeadNet) and model(torch.zeros(3, 1, 32, 32)).shape == (3, 2)


@pytest.mark.parametrize("method", sorted(REGISTRY))
def test_every_method_trains_in_the_domain_scenario(mnist_root, method):
    config = preset("hsu2018", "domain")
    spec = base_spec(config, 0, [0, 1, 2, 3, 4], method=method)
    spec.data_root, spec.epochs = str(mnist_root.parent), 1
    spec.train_samples_per_task, spec.eval_samples_per_task = 300, 40  # 3 steps per task
    record = execute_run(spec)
    final = record["final_acc"]
    assert len(final) == 5 and all(0.0 <= a <= 1.0 for a in final)
    assert record["benchmark_name"].startswith("Split MNIST, Hsu et al. 2018")
    penalties = record["penalty_per_epoch"]
    assert all(p is not None and math.isfinite(p) for p in penalties)
    if method in ("alpha_mas", "alpha_mas_per_task", "mas", "si", "l2"):
        assert penalties[0] == 0.0 and all(p > 0 for p in penalties[1:]), penalties
