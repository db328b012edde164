"""The named experiments of ``compare-baselines`` (``--quick``, ``--full``, ``--cifar``,
``--preset NAME``): :data:`PRESETS` maps each name to a function ``scenario -> config``;
adding a preset is one function and one line there."""
from __future__ import annotations

from collections.abc import Callable

from alpha_mas_avalanche.data.names import placements
from alpha_mas_avalanche.experiment.config import ExperimentConfig, MethodConfig
from alpha_mas_avalanche.experiment.methods import available_methods
from alpha_mas_avalanche.experiment.names import check_name

#: the baselines a preset runs beside AlphaMAS (those installed)
BASELINES = ("naive", "joint", "mas", "alpha_mas_per_task", "avalanche_mas", "ewc",
             "online_ewc", "si", "si_avalanche", "l2", "lwf", "ebll", "imm")


def comparison_methods(select: bool, orders: list[list[int]]) -> list[MethodConfig]:
    """AlphaMAS (lambda sweep) and every available baseline; ``orders`` for MAS/AlphaMAS."""
    methods = [MethodConfig.default("alpha_mas", task_orders=orders)]
    for name in BASELINES:
        if name in available_methods():
            changes = {"task_orders": orders} if name == "mas" else {}
            methods.append(MethodConfig.default(name, select=select, **changes))
    return methods


def quick(scenario: str = "task") -> ExperimentConfig:
    """Offline digits: registry defaults, 2 seeds, 2 epochs, AlphaMAS at N and 2N, pair
    (1,2) first and last for MAS and AlphaMAS (``scenario`` is set by the caller)."""
    orders = placements(0)
    methods = comparison_methods(False, [orders[0], orders[-1]])
    methods[0].sweep = {"lambda_multiplier": [1.0, 2.0]}
    return ExperimentConfig(name="quick_digits", benchmark="split_digits", methods=methods,
                            epochs=2, batch_size=32, seeds=[0, 1], output_dir="results/quick_digits")


def full(scenario: str = "task") -> ExperimentConfig:
    """The reference protocol on Split MNIST in ``scenario`` (all 5 placements)."""
    suffix = "" if scenario == "task" else "_" + scenario
    return ExperimentConfig(
        name="full_split_mnist", benchmark="split_mnist", methods=comparison_methods(True, placements(0)),
        epochs=5, batch_size=128, seeds=[0, 1, 2, 3, 4], selection_seeds=[0, 1],
        scenario=scenario, output_dir=f"results/split_mnist{suffix}")


def cifar(scenario: str = "task") -> ExperimentConfig:
    """The reference protocol on the CIFAR-10 JPEG q75 copy (``scenario`` is set by the caller)."""
    return ExperimentConfig(
        name="cifar10_jpeg", benchmark="split_cifar10_jpeg", methods=comparison_methods(True, placements(0)),
        epochs=5, batch_size=64, seeds=[0, 1, 2, 3, 4], selection_seeds=[0, 1],
        eval_batch_size=128,  # 1.6x faster CNN evaluation than 512 (benchmarks/cnn_throughput.py)
        output_dir="results/cifar10_jpeg")


def hsu2018(scenario: str = "task") -> ExperimentConfig:
    """Hsu, Liu, Ramasamy & Kira (2018), Table 2's split MNIST protocol: MLP400 on 32x32
    MNIST, Adam 1e-3, 4 epochs, batch 128, pairs (0,1)...(8,9) in label order, one order;
    10 repeats in their table, 5 seeds here."""
    return ExperimentConfig(
        name=f"hsu2018_{scenario}", benchmark="split_mnist_hsu2018", scenario=scenario,
        methods=comparison_methods(True, [placements(0)[0]]), epochs=4, batch_size=128, lr=1e-3,
        seeds=[0, 1, 2, 3, 4], selection_seeds=[0, 1], output_dir=f"results/hsu2018_{scenario}")


#: preset name -> ``scenario -> ExperimentConfig``
PRESETS: dict[str, Callable[[str], ExperimentConfig]] = {
    "quick": quick,
    "full": full,
    "cifar": cifar,
    "hsu2018": hsu2018,
}


def preset(name: str, scenario: str = "task") -> ExperimentConfig:
    """The preset ``name`` (one of :data:`PRESETS`) in ``scenario``."""
    return PRESETS[check_name("preset", name, PRESETS)](scenario)
