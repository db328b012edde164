"""``device=`` means one thing everywhere: computations run on the model's device and data
is moved there (a ``device`` naming another one is an error naming the parameter); state
restored with ``load_state_dict`` follows the model's device and dtype. The CUDA tests run
with ``pytest --device cuda`` and skip without CUDA."""
from __future__ import annotations

import copy

import pytest
import torch

from alpha_mas_avalanche import mas_importance
from alpha_mas_avalanche.imm_merge import diagonal_fisher
from amp_helpers import MODELS, PLUGINS, make_strategy, train
from compatibility_helpers import ClassILMLP, benchmark
from digits import digits_benchmark, digits_tensors


def small_model():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(64, 8), torch.nn.ReLU(), torch.nn.Linear(8, 2))


@pytest.mark.parametrize("call", ["mas_importance", "fisher", "alpha_mas", "imm"])
def test_device_naming_another_device_is_refused(call):
    model, x = small_model(), digits_tensors()[0][:16]
    y = torch.zeros(16, dtype=torch.long)
    calls = {
        "mas_importance": lambda: mas_importance(model, x, device="cuda:3"),
        "fisher": lambda: diagonal_fisher(model, [(x, y)], device="cuda:3"),
        "alpha_mas": lambda: PLUGINS["alpha_mas"]().consolidate(model, x, device="cuda:3"),
        "imm": lambda: PLUGINS["imm"]().consolidate(model, [(x, y)], device="cuda:3"),
    }
    with pytest.raises(ValueError, match=r"device: 'cuda:3', but the model is on 'cpu'"):
        calls[call]()


def test_device_naming_the_models_device_is_accepted(device):
    model, x = small_model().to(device), digits_tensors()[0][:16]
    got = mas_importance(model, x, device=torch.device(device).type)  # data moved there
    want = mas_importance(model, x.to(device))
    for name in want:
        assert got[name].device == want[name].device == next(model.parameters()).device
        torch.testing.assert_close(got[name], want[name])


def _restored(plugin_name, plugin):
    fresh = PLUGINS[plugin_name]()
    fresh.load_state_dict(copy.deepcopy(plugin.state_dict()))
    return fresh


@pytest.mark.parametrize("plugin_name", ["si", "alpha_mas", "l2", "ebll", "imm"])
def test_restored_state_follows_the_models_dtype(plugin_name):
    """State saved from a float32 run, restored into a run of the float64 copy of the
    model on float64 data: the next experience trains in float64 without a dtype error."""
    bm, bm64 = benchmark(), benchmark(dtype=torch.float64)
    torch.manual_seed(0)
    model, plugin = ClassILMLP(), PLUGINS[plugin_name]()
    train(make_strategy(model, [plugin]), bm.train_stream[:1])
    model64 = copy.deepcopy(model).double()
    train(make_strategy(model64, [_restored(plugin_name, plugin)]), bm64.train_stream[1:2])
    assert all(p.dtype == torch.float64 and torch.isfinite(p).all() for p in model64.parameters())


@pytest.mark.parametrize("plugin_name", ["si", "alpha_mas", "alpha_mas_last_epochs", "l2",
                                         "ebll", "imm"])
def test_checkpoint_moves_between_cpu_and_cuda(plugin_name, cuda_device):
    """Trained on the CPU, restored beside the model on CUDA (and back): the state follows."""
    bm = digits_benchmark(n_train=300)
    torch.manual_seed(0)
    model, plugin = MODELS["cnn_bn"](), PLUGINS[plugin_name]()
    train(make_strategy(model, [plugin]), bm.train_stream[:1])
    for device, stream in ((cuda_device, bm.train_stream[1:2]), ("cpu", bm.train_stream[2:3])):
        plugin = _restored(plugin_name, plugin)
        train(make_strategy(model, [plugin], device=device), stream, device)
        assert all(p.device.type == torch.device(device).type for p in model.parameters())
    for value in (getattr(plugin, a, None) for a in ("last_penalty", "last_code_loss")):
        assert value is None or value == value


def test_importance_of_a_dataset_on_cuda(cuda_device):
    """A Dataset's batches are loaded (pinned, worker processes) and moved to the model."""
    x = digits_tensors()[0][:64]
    model = small_model()
    want = mas_importance(model, x, batch_size=16)
    dataset = torch.utils.data.TensorDataset(x, torch.zeros(64, dtype=torch.long))
    got = mas_importance(model.to(cuda_device), dataset, batch_size=16)
    for name in want:
        assert got[name].is_cuda
        torch.testing.assert_close(got[name].cpu(), want[name], rtol=1e-4, atol=1e-7)
