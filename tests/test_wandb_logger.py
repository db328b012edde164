"""Avalanche 0.6's own ``WandBLogger`` beside AlphaMASPlugin with the installed wandb (real
wandb, offline), and ``PenaltyMetric`` reaching Avalanche's loggers: the README's plugin
example (``examples/plugin_wandb.py``) on a 256-sample slice (2 mini-batches) of each Split MNIST task."""
from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from wandb_records import offline_history

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "examples" / "plugin_wandb.py"


def _readme_block(after: str) -> str:
    """The first python block of README after the line ``after``."""
    readme = (REPO / "README.md").read_text()
    return readme.split(after, 1)[1].split("```python\n", 1)[1].split("```", 1)[0]


def test_readme_examples_are_the_example_files():
    block = _readme_block("<!-- example: examples/plugin_wandb.py -->")
    assert len(block.splitlines()) > 20 and block in EXAMPLE.read_text()
    assert _readme_block("## The plugin in ten lines") == \
        (REPO / "examples" / "ten_lines.py").read_text()


def test_wandb_names_the_logger_needs_are_wandbs_own_objects_once_a_logger_is_built(tmp_path):
    done = subprocess.run([sys.executable, "-c", """
import wandb
from alpha_mas_avalanche import AlphaMASPlugin
from avalanche.logging import WandBLogger
logger = WandBLogger(project_name="names", save_code=False)  # calls wandb.util.generate_id()
chart = wandb.viz.CustomChart
print(isinstance(wandb.util.generate_id(), str), chart.__module__.startswith("wandb."))
wandb.finish()
"""], capture_output=True, text=True, timeout=300, cwd=tmp_path,
        env={**os.environ, "WANDB_MODE": "offline", "WANDB_DIR": str(tmp_path), "WANDB_SILENT": "true"})
    assert done.stdout.split() == ["True", "True"], done.stderr[-2000:]


@pytest.fixture
def example():
    spec = importlib.util.spec_from_file_location("plugin_wandb_example", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_readme_example_logs_alphas_s_t_and_penalty_through_avalanches_loggers(
        example, mnist_root, tmp_path, monkeypatch, capsys):
    import wandb

    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path))
    monkeypatch.delenv("WANDB_RUN_ID", raising=False)
    monkeypatch.chdir(tmp_path)  # the logger may write Checkpoints/ here
    wandb.teardown()
    metrics = example.run(str(mnist_root.parent), epochs=1, train_samples=256)
    text = capsys.readouterr().out
    assert 0 <= metrics["Top1_Acc_Stream/eval_phase/test_stream/Task004"] <= 1

    rows = offline_history(next((tmp_path / "wandb").glob("offline-run-*")))
    logged: dict[str, float] = {}
    for row in rows:
        logged.update({k: v for k, v in row.items() if k.startswith("AlphaMASPlugin/")})
    alphas = np.array([logged[f"AlphaMASPlugin/alpha/task{k}"] for k in range(5)])
    totals = np.array([logged[f"AlphaMASPlugin/S_t/task{k}"] for k in range(5)])
    # the method's definition, computed here from the logged S_t: alpha_t S_t equal, sum = 5
    expected = 5.0 * (1 / totals) / (1 / totals).sum()
    np.testing.assert_allclose(alphas, expected, rtol=1e-6)
    penalties = [row["AlphaMASPlugin/penalty_epoch"] for row in rows
                 if "AlphaMASPlugin/penalty_epoch" in row]
    # zero on the first task (nothing consolidated), positive once a task is: each later
    # epoch has a second mini-batch, taken after the weights left their anchor
    assert len(penalties) == 5 and penalties[0] == 0 and all(p > 0 for p in penalties[1:])
    assert any(k.startswith("Top1_Acc_Exp/eval_phase/test_stream") for row in rows for k in row)
    # the same values in the InteractiveLogger's text (4 decimals)
    for k in range(5):
        assert f"AlphaMASPlugin/alpha/task{k} = {alphas[k]:.4f}" in text
        assert f"AlphaMASPlugin/S_t/task{k} = {totals[k]:.4f}" in text
    assert f"alphas: {[round(float(a), 4) for a in alphas]}" in text


def test_penalty_metric_reaches_tensorboard_and_text_loggers_not_csv(tmp_path):
    """Two plugins with a penalty (AlphaMAS, L2) on scikit-learn digits: both report through
    Avalanche's TensorBoardLogger and TextLogger; Avalanche's CSVLogger writes only its fixed
    accuracy/loss/forgetting columns, so no PluginMetric (this one included) reaches it."""
    import torch
    from avalanche.evaluation.metrics import accuracy_metrics
    from avalanche.logging import CSVLogger, TensorboardLogger, TextLogger
    from avalanche.training import Naive
    from avalanche.training.plugins import EvaluationPlugin
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from alpha_mas_avalanche import AlphaMASPlugin, L2Plugin, PenaltyMetric
    from digits import MultiHeadMLP, digits_benchmark

    torch.manual_seed(0)
    benchmark, model = digits_benchmark(), MultiHeadMLP()
    alpha_mas = AlphaMASPlugin(lambda_reg=3.0)
    with open(tmp_path / "log.txt", "w") as text:
        evaluator = EvaluationPlugin(
            accuracy_metrics(epoch=True, experience=True), PenaltyMetric(),
            loggers=[TensorboardLogger(tmp_path / "tb"), TextLogger(text), CSVLogger(tmp_path / "csv")])
        strategy = Naive(model=model, optimizer=torch.optim.SGD(model.parameters(), lr=0.05),
                         criterion=torch.nn.CrossEntropyLoss(), train_mb_size=64, train_epochs=1,
                         plugins=[alpha_mas, L2Plugin(lambda_reg=0.1)], evaluator=evaluator)
        for experience in benchmark.train_stream[:3]:
            strategy.train(experience)
            strategy.eval(benchmark.test_stream[:1])  # text loggers print at evaluation
        tensorboard, _, csv = evaluator.loggers
        tensorboard.writer.close()
        csv.close()
    events = EventAccumulator(str(tmp_path / "tb")).Reload()
    tags = set(events.Tags()["scalars"])
    for k, alpha in enumerate(alpha_mas.alphas):
        assert events.Scalars(f"AlphaMASPlugin/alpha/task{k}")[-1].value == pytest.approx(alpha)
    assert {"AlphaMASPlugin/penalty_epoch", "L2Plugin/penalty_epoch"} <= tags
    assert [e.value > 0 for e in events.Scalars("L2Plugin/penalty_epoch")] == [False, True, True]
    log = (tmp_path / "log.txt").read_text()
    assert f"AlphaMASPlugin/S_t/task2 = {alpha_mas.importance_totals[2]:.4f}" in log
    csv_text = "".join(p.read_text() for p in (tmp_path / "csv").glob("*.csv"))
    assert "Top1_Acc" not in csv_text and "penalty" not in csv_text and "acc" in csv_text
