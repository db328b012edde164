"""Data-parallel runs for ``tests/test_distributed.py``: each plugin (built as the experiment
registry builds it) trains a tiny MLP on two digit pairs, in one process, or on 2 ranks
under DDP (gloo, CPU) launched as Avalanche's ``DistributedHelper`` does (every rank holds
the whole experience; Avalanche's loader gives rank ``r`` the samples ``r, r + 2, ...``)
or as plain DDP with each rank holding its own shard (the same samples) and a plain loader. After each experience the parameters and the plugin's state are kept,
flattened to ``{key: tensor}`` with the wrapper prefixes removed from the names."""
from __future__ import annotations

import os
import warnings
from collections.abc import Callable

import torch
import torch.distributed as dist
from avalanche.benchmarks.scenarios.dataset_scenario import benchmark_from_datasets
from avalanche.benchmarks.scenarios.task_aware import with_task_labels
from avalanche.benchmarks.utils import _make_taskaware_tensor_classification_dataset
from avalanche.core import SupervisedPlugin
from avalanche.training import Naive
from avalanche.training.plugins import EvaluationPlugin
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader

from alpha_mas_avalanche.experiment.methods import build_method
from alpha_mas_avalanche.parameters import stripped_name, unwrap
from digits import digits_tensors

#: samples per experience, mini-batch per rank, learning rate
SAMPLES, BATCH, LR = 128, 16, 0.1
#: the one-process run's mini-batch: what the ranks see together at each step
REFERENCE_BATCH = 2 * BATCH
PAIRS = ((1, 2), (3, 4))


class Net(nn.Module):
    """64 -> 24 -> 10 with ``features`` / ``classifier`` (EBLL's contract); ``norm=True``
    puts a LayerNorm in the trunk (no fast rule: AlphaMAS's generic ``torch.func`` path)."""

    def __init__(self, norm: bool = False) -> None:
        super().__init__()
        layers = [nn.Linear(64, 24)] + ([nn.LayerNorm(24)] if norm else []) + [nn.ReLU()]
        self.trunk = nn.Sequential(*layers)
        self.classifier = nn.Linear(24, 10)

    def features(self, x):
        return self.trunk(x)

    def forward(self, x):
        return self.classifier(self.trunk(x))


class RecomputedLoss(SupervisedPlugin, supports_distributed=True):
    """Replaces ``strategy.loss`` by a new one (as some plugins do): AlphaMAS's loss hook
    never fires and its penalty gradient is added in ``after_backward``, after DDP's
    gradient average."""

    def before_backward(self, strategy, **kwargs):
        strategy.loss = strategy._criterion(strategy.mb_output, strategy.mb_y)


def _registry(name: str, **params) -> Callable[[], list]:
    return lambda: build_method(name, params, len(PAIRS))[1]


#: config -> (plugins factory, LayerNorm model?)
CONFIGS: dict[str, tuple[Callable[[], list], bool]] = {
    "alpha_mas": (_registry("alpha_mas"), False),
    "alpha_mas_generic": (_registry("alpha_mas"), True),
    "alpha_mas_last_epochs": (_registry("alpha_mas_last_epochs"), False),
    "alpha_mas_replaced_loss": (lambda: _registry("alpha_mas")() + [RecomputedLoss()], False),
    "mas": (_registry("mas"), False),
    "mas_reference": (_registry("mas_reference"), False),
    "avalanche_mas": (_registry("avalanche_mas"), False),
    "ewc": (_registry("ewc"), False),
    "si": (_registry("si"), False),
    "l2": (_registry("l2"), False),
    "ebll": (_registry("ebll", code_size=8, autoencoder_epochs=2), False),
    "imm_mode": (_registry("imm", max_fisher_samples=None), False),
    "imm_mean": (_registry("imm", mode="mean"), False),
}


def experiences(rank: int = 0, shard: int = 1) -> list:
    """The two experiences' datasets: all SAMPLES of each pair, or rank's samples
    ``rank, rank + shard, ...`` (its own shard)."""
    x, y = digits_tensors()
    datasets = []
    for pair in PAIRS:
        keep = (y == pair[0]) | (y == pair[1])
        xs, ys = x[keep][:SAMPLES][rank::shard], y[keep][:SAMPLES][rank::shard]
        datasets.append(_make_taskaware_tensor_classification_dataset(xs, ys))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        benchmark = with_task_labels(benchmark_from_datasets(train=datasets, test=datasets))
        return list(benchmark.train_stream)  # task-aware: Avalanche's loader shards it


class OwnShardNaive(Naive):
    """Naive training each rank's own data as it is (a plain loader: no sampler shards it)."""

    def make_train_dataloader(self, **kwargs):
        data = self.adapted_dataset
        self.dataloader = DataLoader(data, batch_size=self.train_mb_size, shuffle=False,
                                     collate_fn=data.collate_fn)


def flatten(obj, prefix: str = "") -> dict[str, torch.Tensor]:
    """``{path: tensor}`` of every tensor and number in ``obj`` (dicts, lists, modules,
    Avalanche's ``ParamData``), names without wrapper prefixes."""
    out: dict[str, torch.Tensor] = {}
    if isinstance(obj, torch.Tensor):
        out[prefix] = obj.detach().cpu().clone()
    elif isinstance(obj, nn.Module):
        out.update(flatten(unwrap(obj).state_dict(), prefix))
    elif isinstance(obj, dict):
        for key, value in obj.items():
            out.update(flatten(value, f"{prefix}/{stripped_name(str(key))}"))
    elif isinstance(obj, (list, tuple)):
        for i, value in enumerate(obj):
            out.update(flatten(value, f"{prefix}/{i}"))
    elif isinstance(obj, set):  # parameter names, as bytes
        out[prefix] = torch.tensor(list("|".join(sorted(map(str, obj))).encode()))
    elif isinstance(obj, (int, float)) and not isinstance(obj, bool):
        out[prefix] = torch.tensor(obj, dtype=torch.float64)
    elif isinstance(getattr(obj, "data", None), torch.Tensor):  # Avalanche's ParamData
        out[prefix] = obj.data.detach().cpu().clone()
    return out


def plugin_state(plugin) -> dict[str, torch.Tensor]:
    """Everything the plugin keeps: its state_dict, or (Avalanche's plugins) its attributes."""
    if hasattr(plugin, "state_dict"):
        return flatten(plugin.state_dict(), type(plugin).__name__)
    return flatten({k: v for k, v in vars(plugin).items() if not k.startswith("_")},
                   type(plugin).__name__)


def run_config(name: str, mode: str, rank: int = 0, world: int = 1,
               batch: int = BATCH) -> list[dict]:
    """Train config ``name`` for the two experiences with mini-batch ``batch``; ``mode``:
    "single" (one process), "helper" (Avalanche's DistributedHelper.wrap_model, whole data
    on each rank) or "plain" (DDP, each rank its own shard). One record per experience."""
    make_plugins, norm = CONFIGS[name]
    torch.manual_seed(0)
    model = Net(norm)
    plugins = make_plugins()
    strategy_class = OwnShardNaive if mode == "plain" else Naive
    if mode == "helper":
        from avalanche.distributed import DistributedHelper

        model = DistributedHelper.wrap_model(model)
    elif mode == "plain":
        model = DistributedDataParallel(model)
    data = experiences(rank, world) if mode == "plain" else experiences()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        strategy = strategy_class(
            model=model, optimizer=torch.optim.SGD(model.parameters(), lr=LR),
            criterion=nn.CrossEntropyLoss(), train_mb_size=batch, train_epochs=1,
            device="cpu", plugins=plugins, evaluator=EvaluationPlugin(loggers=[]))
    records = []
    for experience in data:
        torch.manual_seed(100 + experience.current_experience)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            strategy.train(experience, eval_streams=[], shuffle=False)
        record = flatten(strategy.model, "model")
        for plugin in plugins:
            record.update(plugin_state(plugin))
        records.append(record)
    return records


def worker(rank: int, world: int, port: int, mode: str, names: list[str], out: str) -> None:
    """One rank: join the gloo group (as DistributedHelper or plain torch does), run every
    config in ``names``, save ``{name: records}`` to ``out``."""
    torch.set_num_threads(1)
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank),
                      LOCAL_RANK=str(rank), WORLD_SIZE=str(world))
    if mode == "helper":
        from avalanche.distributed import DistributedHelper

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            DistributedHelper.init_distributed(random_seed=0, backend="gloo", use_cuda=False)
    else:
        dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        torch.save({name: run_config(name, mode, rank, world) for name in names}, out)
    finally:
        dist.destroy_process_group()
