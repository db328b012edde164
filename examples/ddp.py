"""AlphaMASPlugin in Avalanche's Naive strategy with data parallelism: one process per GPU
(or CPU process), launched by torchrun, the model in DDP through Avalanche's
``DistributedHelper``, one W&B run for the whole job (rank 0 logs), a checkpoint after
every experience, and resuming from it.

    WANDB_MODE=offline torchrun --nproc_per_node 2 examples/ddp.py --data-root ../shared/data \\
        --checkpoint ddp_ckpt.pt --train-samples 512
    # the same command again resumes after the last experience saved (--until N stops early)

Every rank trains on its share of each mini-batch (Avalanche's loader shards task-aware
experiences); the plugin adds its importance sums over the ranks, so every rank ends each
experience with the same importance, alphas and anchors. Single-head model: Avalanche's
multi-head models add heads after DDP has wrapped the model, and DDP does not average the
gradients of parameters added later.
"""
from __future__ import annotations

import argparse
import os
import warnings

import torch
import torch.distributed as dist
from avalanche.benchmarks.classic import SplitMNIST
from avalanche.distributed import DistributedHelper
from avalanche.evaluation.metrics import accuracy_metrics
from avalanche.logging import InteractiveLogger, WandBLogger
from avalanche.models import SimpleMLP
from avalanche.training import Naive
from avalanche.training.plugins import EvaluationPlugin

from alpha_mas_avalanche import AlphaMASPlugin, PenaltyMetric
from alpha_mas_avalanche.parameters import unwrap


def run(data_root: str, checkpoint: str, epochs: int = 1, train_samples: int | None = None,
        use_cuda: bool = True, until: int = 5) -> dict:
    """Train experiences up to ``until`` (of 5) of class-incremental Split MNIST, resuming
    from ``checkpoint``."""
    with warnings.catch_warnings():  # outside torchrun: one process, no group
        warnings.simplefilter("ignore")
        DistributedHelper.init_distributed(random_seed=0, use_cuda=use_cuda)
    device = DistributedHelper.make_device()
    main = DistributedHelper.is_main_process
    benchmark = SplitMNIST(n_experiences=5, seed=0, dataset_root=f"{data_root}/mnist")
    model = SimpleMLP(num_classes=10, hidden_size=400).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    plugin = AlphaMASPlugin(lambda_reg=5.0)
    start, run_id = 0, None
    if os.path.exists(checkpoint):  # every rank reads rank 0's file, before DDP wraps
        saved = torch.load(checkpoint, map_location=device, weights_only=False)
        model.load_state_dict(saved["model"])
        optimizer.load_state_dict(saved["optimizer"])
        plugin.load_state_dict(saved["plugin"])
        start, run_id = saved["next_experience"], saved["wandb_id"]
    loggers = []
    if main:  # one W&B run per job, resumed with the checkpoint
        wandb_logger = WandBLogger(project_name="alpha-mas-ddp",
                                   params={"id": run_id, "resume": "allow"} if run_id else None)
        loggers = [InteractiveLogger(), wandb_logger]
    strategy = Naive(
        model=DistributedHelper.wrap_model(model), optimizer=optimizer,
        criterion=torch.nn.CrossEntropyLoss(), train_mb_size=128, train_epochs=epochs,
        eval_mb_size=512, device=device, plugins=[plugin],
        evaluator=EvaluationPlugin(accuracy_metrics(stream=True), PenaltyMetric(),
                                   loggers=loggers))
    tests = [first(e, train_samples) for e in benchmark.test_stream]
    metrics = {}
    for experience in benchmark.train_stream[start:until]:
        strategy.train(first(experience, train_samples))
        metrics = strategy.eval(tests)
        if main:
            torch.save({"model": unwrap(strategy.model).state_dict(),
                        "optimizer": optimizer.state_dict(), "plugin": plugin.state_dict(),
                        "next_experience": experience.current_experience + 1,
                        "wandb_id": wandb_logger.wandb.run.id}, checkpoint)
        if dist.is_initialized():
            dist.barrier()  # the checkpoint is complete before any rank goes on
    if main:
        wandb_logger.wandb.finish()  # Avalanche's WandBLogger leaves the run open
        print("alphas:", [round(a, 4) for a in plugin.alphas])
    return metrics


def first(experience, samples: int | None):
    """The experience on its first ``samples`` samples (None: all of them)."""
    if samples is not None:
        experience.dataset = experience.dataset.subset(range(samples))
    return experience


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-root", required=True, help="folder holding mnist/MNIST/raw")
    parser.add_argument("--checkpoint", required=True, help="file to save to and resume from")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--train-samples", type=int, help="first N samples of each experience")
    parser.add_argument("--cpu", action="store_true", help="gloo on the CPU, even with GPUs")
    parser.add_argument("--until", type=int, default=5, help="stop after this experience")
    args = parser.parse_args()
    final = run(args.data_root, args.checkpoint, args.epochs, args.train_samples,
                use_cuda=not args.cpu, until=args.until)
    if DistributedHelper.is_main_process and final:
        print(f"stream accuracy {final['Top1_Acc_Stream/eval_phase/test_stream/Task000']:.4f}")
    if dist.is_initialized():
        dist.destroy_process_group()
