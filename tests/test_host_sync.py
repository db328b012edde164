"""No plugin reads a tensor back to the host during a training iteration: zero calls of
``item`` / ``float`` / ``int`` / ``bool`` / ``tolist`` / ``numpy`` / ``cpu`` from the
package's frames in the training iterations of a second experience (penalty active),
for every plugin and for ``importance_from="last_epochs"``, and for the harness's own
per-iteration plugins. Values are still right when read afterwards."""
from __future__ import annotations

import math

import pytest
import torch

from alpha_mas_avalanche.experiment.heldout import HeldOutAccuracy
from alpha_mas_avalanche.experiment.metrics import TrainingRecorder
from amp_helpers import MODELS, PLUGINS, make_strategy, train
from digits import digits_benchmark
from sync_counter import CountFrom, CountUntil, SyncCounter


def count_second_experience(plugin, device, extra=(), model="mlp", amp="off"):
    bm = digits_benchmark(n_train=300)
    counter = SyncCounter()
    torch.manual_seed(0)
    strategy = make_strategy(MODELS[model](), [CountFrom(counter, 1), plugin, *extra,
                                               CountUntil(counter)], device=device, amp=amp)
    counter.start()
    try:
        train(strategy, bm.train_stream[:2], device)
    finally:
        counter.stop()
    return counter


@pytest.mark.parametrize("plugin_name", sorted(PLUGINS))
@pytest.mark.parametrize("model", ["mlp", "cnn_bn"])
def test_no_host_sync_in_training_iterations(plugin_name, model, device):
    plugin = PLUGINS[plugin_name]()
    counter = count_second_experience(plugin, device, model=model)
    assert counter.total == 0, dict(counter.counts)
    for attr in ("last_penalty", "last_code_loss", "last_l2_penalty"):
        if hasattr(plugin, attr):  # read afterwards: a number
            assert isinstance(getattr(plugin, attr), float)
    if hasattr(plugin, "last_penalty") and plugin_name != "imm":
        assert math.isfinite(plugin.last_penalty) and plugin.last_penalty > 0


def test_no_host_sync_with_autocast_and_the_harness_plugins(device):
    """With autocast and the harness's recorder and held-out accuracy beside AlphaMAS."""
    bm = digits_benchmark(n_train=300)
    plugin = PLUGINS["alpha_mas_last_epochs"]()
    recorder = TrainingRecorder([plugin])
    heldout = HeldOutAccuracy(bm.test_stream, 64)
    amp = "bf16" if torch.device(device).type == "cpu" else "fp16"
    counter = count_second_experience(plugin, device, extra=(recorder, heldout), amp=amp)
    assert counter.total == 0, dict(counter.counts)
    assert len(recorder.penalty_per_epoch) == 2 and recorder.penalty_per_epoch[1] > 0
