"""A single run resumed from an Avalanche checkpoint (``save_checkpoint`` /
``maybe_load_checkpoint``) mid-stream gives the same metrics as an uninterrupted run, with
every plugin of the method registry: the check Avalanche uses for its own plugins (metrics
aligned with and without a checkpoint; the checkpoint carries the RNG state)."""
from __future__ import annotations

import pytest
import torch

from alpha_mas_avalanche import compat
from alpha_mas_avalanche.data import make_benchmark
from alpha_mas_avalanche.experiment.methods import REGISTRY, build_method
from alpha_mas_avalanche.models import make_model

#: every registry entry but "joint" (a strategy of its own, not a plugin)
METHODS = sorted(set(REGISTRY) - {"joint"})
#: hyperparameters that fit the small model below (EBLL's code must be under its 32 features)
PARAMS = {"ebll": {"code_size": 8, "autoencoder_epochs": 3}}
CHECKPOINT_AFTER = 1  # experiences 0..1 before the checkpoint, 2..3 after it
N_EXPERIENCES = 4  # (of 5) enough to have plugin state from two tasks at the checkpoint


@pytest.fixture(scope="module")
def benchmark():
    return make_benchmark("split_digits", seed=0, train_samples_per_task=60,
                          eval_samples_per_task=40)


def build_strategy(benchmark, method: str):
    from avalanche.evaluation.metrics import accuracy_metrics, forgetting_metrics, loss_metrics
    from avalanche.training import Naive
    from avalanche.training.determinism.rng_manager import RNGManager
    from avalanche.training.plugins import EvaluationPlugin

    RNGManager.set_random_seeds(0)
    model = make_model("mlp", input_shape=(1, 8, 8), hidden_size=32)
    _, plugins = build_method(method, PARAMS.get(method, {}), 5)
    evaluator = EvaluationPlugin(
        accuracy_metrics(epoch=True, experience=True, stream=True), loss_metrics(epoch=True),
        forgetting_metrics(experience=True, stream=True), loggers=[],
    )
    return Naive(model=model, optimizer=torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9),
                 criterion=torch.nn.CrossEntropyLoss(), train_mb_size=16, train_epochs=1,
                 eval_mb_size=64, device="cpu", plugins=plugins, evaluator=evaluator,
                 eval_every=-1)


def train(strategy, benchmark, start: int, stop: int) -> None:
    """Train experiences ``start..stop-1``; evaluate on every experience at the checkpoint
    and at the end (plugin state, model and metrics all enter the comparison)."""
    for i in range(start, stop):
        strategy.train(benchmark.train_stream[i], num_workers=0)
        if i in (CHECKPOINT_AFTER, N_EXPERIENCES - 1):
            strategy.eval(benchmark.test_stream[:N_EXPERIENCES], num_workers=0)


def final_metrics(strategy) -> dict:
    return {k: v for k, v in strategy.evaluator.get_all_metrics().items()}


def test_every_registry_plugin_is_covered():
    assert {"alpha_mas", "mas", "avalanche_mas", "ewc", "online_ewc", "si", "lwf", "ebll", "imm",
            "naive"} <= set(METHODS)


@pytest.mark.slow
@pytest.mark.parametrize("method", METHODS)
def test_resumed_from_checkpoint_equals_uninterrupted(benchmark, method, tmp_path):
    from avalanche.checkpointing import maybe_load_checkpoint, save_checkpoint

    compat.for_avalanche()  # registry plugins come from their modules: apply the fixes here
    reference = build_strategy(benchmark, method)
    train(reference, benchmark, 0, N_EXPERIENCES)
    expected = final_metrics(reference)

    first = build_strategy(benchmark, method)
    train(first, benchmark, 0, CHECKPOINT_AFTER + 1)
    path = tmp_path / "checkpoint.pkl"
    save_checkpoint(first, path)
    del first

    torch.manual_seed(12345)  # a different RNG state: the checkpoint must restore its own
    resumed = build_strategy(benchmark, method)
    torch.rand(7)
    resumed, next_experience = maybe_load_checkpoint(resumed, path)
    assert next_experience == CHECKPOINT_AFTER + 1
    train(resumed, benchmark, next_experience, N_EXPERIENCES)
    got = final_metrics(resumed)

    assert got.keys() == expected.keys()
    for name in expected:
        assert got[name][0] == expected[name][0], name  # same steps
        assert got[name][1] == expected[name][1], name  # the same values, exactly
    for exp in range(N_EXPERIENCES):  # evaluated at the checkpoint and at the end
        (key,) = [k for k in got if k.startswith("Top1_Acc_Exp/eval_phase/test_stream/")
                  and k.endswith(f"Exp{exp:03d}")]
        assert len(got[key][1]) == 2 and all(0 <= a <= 1 for a in got[key][1])
