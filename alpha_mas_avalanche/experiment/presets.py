"""The named experiments of ``compare-baselines`` (``--quick``, ``--full``, ``--cifar``,
``--preset NAME``): :data:`PRESETS` maps each name to a function ``scenario -> config``;
adding a preset is one function and one line there."""
from __future__ import annotations

from collections.abc import Callable

from alpha_mas_avalanche.data.names import LONG_STREAMS, placements
from alpha_mas_avalanche.experiment.config import ExperimentConfig, MethodConfig
from alpha_mas_avalanche.experiment.methods import available_methods
from alpha_mas_avalanche.experiment.names import check_name

#: the baselines a preset runs beside AlphaMAS (those installed)
BASELINES = ("naive", "joint", "mas", "alpha_mas_per_task", "avalanche_mas", "ewc",
             "online_ewc", "si", "si_avalanche", "l2", "lwf", "ebll", "imm")
#: what the alpha-scaling map compares beside AlphaMAS: MAS, the per-task ablation, Naive
#: and Joint
ALPHA_MAP_METHODS = ("mas", "alpha_mas_per_task", "naive", "joint")
#: the methods whose strength grid is refined to thirds of a decade around the decade choice
REFINED_METHODS = ("mas", "alpha_mas", "alpha_mas_per_task")
#: the methods the comparison turns on, run over :data:`DECIDING_SEEDS` on the MNIST family
DECIDING_METHODS = ("mas", "alpha_mas", "alpha_mas_per_task", "naive")
DECIDING_SEEDS = list(range(10))
#: validation-grid seeds of the refined methods where the deciding seeds apply: three, for
#: the sensitivity curves' 95 % intervals
SENSITIVITY_SEEDS = [0, 1, 2]


def tuned(methods: list[MethodConfig], seeds: list[int] | None) -> list[MethodConfig]:
    """``methods`` with :data:`REFINED_METHODS` refined (where they select) and, given
    ``seeds``, :data:`DECIDING_METHODS` over them and the refined methods' sensitivity curves
    over :data:`SENSITIVITY_SEEDS`."""
    for method in methods:
        method.refine = method.name in REFINED_METHODS and bool(method.select)
        if seeds is None:
            continue
        if method.name in DECIDING_METHODS:
            method.seeds = list(seeds)
        if method.refine:
            method.selection_seeds, method.sensitivity = list(SENSITIVITY_SEEDS), True
    return methods


def comparison_methods(select: bool, orders: list[list[int]] | None,
                       seeds: list[int] | None = None) -> list[MethodConfig]:
    """AlphaMAS (tuned, and at the write-up's strengths) and every available baseline;
    ``orders`` for MAS and the write-up's AlphaMAS; ``seeds`` for the deciding methods."""
    methods = [MethodConfig.default("alpha_mas", select=select),
               MethodConfig.default("alpha_mas_writeup", task_orders=orders)]
    for name in BASELINES:
        if name in available_methods():
            changes = {"task_orders": orders} if name == "mas" else {}
            methods.append(MethodConfig.default(name, select=select, **changes))
    return tuned(methods, seeds)


def alpha_mas_beside(multipliers: list[float], names: tuple[str, ...],
                     seeds: list[int] | None = None) -> list[MethodConfig]:
    """AlphaMAS tuned and at ``multipliers`` x N, then the registry methods ``names`` with
    their validation grids; ``seeds`` for the deciding methods."""
    writeup = MethodConfig.default("alpha_mas_writeup", sweep={"lambda_multiplier": multipliers})
    methods = [MethodConfig.default("alpha_mas"), writeup]
    return tuned(methods + [MethodConfig.default(name) for name in names], seeds)


def quick(scenario: str = "task") -> ExperimentConfig:
    """Offline digits, 2 seeds, 2 epochs, written to ``out/quick_digits`` (``out/`` is
    git-ignored: one's own runs stay apart from the committed ``results/``). The quadratic
    regularisers barely act at the registry's default strengths on digits, so each one's
    strength is chosen on the validation stream (first seed) from three values a decade
    apart around where it acts (two for SI (Avalanche), which has no effect on CPU); no grid
    growth or refinement, to keep the run short. LwF, EBLL and IMM act at their defaults; L2
    stays at its default (its registry grid picks the weakest value on digits). AlphaMAS
    also at the write-up's N and 2N; pair (1,2) first and last for MAS and that AlphaMAS."""
    mas_grid, ewc_grid = {"lambda_reg": [1.0, 10.0, 100.0]}, {"ewc_lambda": [1e4, 1e5, 1e6]}
    grids = {"alpha_mas": mas_grid, "alpha_mas_per_task": mas_grid, "mas": mas_grid,
             "avalanche_mas": mas_grid, "ewc": ewc_grid, "online_ewc": ewc_grid,
             "si": {"si_lambda": [100.0, 1000.0, 10000.0]}, "si_avalanche": {"si_lambda": [1.0, 100.0]}}
    orders = placements(0)
    methods = comparison_methods(True, [orders[0], orders[-1]])
    methods[1].sweep = {"lambda_multiplier": [1.0, 2.0]}
    for method in methods:
        method.select, method.refine = dict(grids.get(method.name, {})), False
    suffix = "" if scenario == "task" else "_" + scenario
    return ExperimentConfig(name="quick_digits", benchmark="split_digits", methods=methods,
                            epochs=2, batch_size=32, seeds=[0, 1], grid_extensions=0,
                            output_dir=f"out/quick_digits{suffix}")


def full(scenario: str = "task") -> ExperimentConfig:
    """The reference protocol on Split MNIST in ``scenario`` (all 5 placements)."""
    suffix = "" if scenario == "task" else "_" + scenario
    return ExperimentConfig(
        name="full_split_mnist", benchmark="split_mnist",
        methods=comparison_methods(True, placements(0), DECIDING_SEEDS),
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
        methods=comparison_methods(True, [placements(0)[0]], DECIDING_SEEDS), epochs=4, batch_size=128, lr=1e-3,
        seeds=[0, 1, 2, 3, 4], selection_seeds=[0, 1], output_dir=f"results/hsu2018_{scenario}")


def mas_demo(scenario: str = "task") -> ExperimentConfig:
    """The MNIST protocol of Aljundi et al.'s MAS reference code (``MAS_to_be_published``),
    on which the reference write-up says it was built: MLP 784-256-256 with a 2-way head per
    task, pairs (1,2) (3,4) (5,6) (7,8) (9,0); SGD with momentum 0.9; task 1 for 10 epochs at
    lr 0.01, batch 200; tasks 2-5 for 20 epochs at lr 0.001, batch 150. Their "MAS" (summed
    Omega, one anchor) is ``mas_reference``; strengths are chosen on the validation split,
    never on the test split (their best epoch is picked on MNIST's test split; not here)."""
    methods = alpha_mas_beside([1.0, 1.5, 2.0],
                               ("mas_reference", "mas", "alpha_mas_per_task", "naive", "joint"),
                               DECIDING_SEEDS)
    return ExperimentConfig(
        name="mas_demo", benchmark="split_mnist", scenario="task", model="mlp256",
        methods=methods, optimizer="sgd", epochs=20, lr=1e-3, batch_size=150,
        first_task_epochs=10, first_task_lr=1e-2, first_task_batch_size=200,
        seeds=[0, 1, 2, 3, 4], selection_seeds=[0, 1], output_dir="results/mas_demo")


def split_mnist_scaled(scenario: str = "task") -> ExperimentConfig:
    """``--full``'s protocol, one task order, on Split MNIST pairs whose inputs are scaled
    by (1, 0.1, 3, 0.3, 10): importance totals S_t that differ by design. The methods the
    alpha-scaling map compares: AlphaMAS at N and 2N, MAS (lambda chosen on validation),
    the per-task ablation at MAS's lambda, Naive and Joint."""
    methods = alpha_mas_beside([1.0, 2.0], ALPHA_MAP_METHODS, DECIDING_SEEDS)
    return ExperimentConfig(
        name="split_mnist_scaled", benchmark="split_mnist_scaled",
        methods=methods, epochs=5, batch_size=128,
        seeds=[0, 1, 2, 3, 4], selection_seeds=[0, 1], output_dir="results/split_mnist_scaled")


def long_stream(benchmark: str) -> Callable[[str], ExperimentConfig]:
    """The preset of a long domain-incremental stream (permuted or rotated MNIST, 10 or 20
    tasks) sized for a CPU: 2,000 training images per task (plus 223 for validation), 1,000
    test images, the MLP 2x400 with one 10-way head, Adam at lr 1e-3, batch 128, 5 epochs per
    task, strengths chosen on the validation stream, 5 seeds. The 10-task streams run every
    method; the 20-task streams the methods of the alpha-scaling map (AlphaMAS at N and 2N,
    MAS, the per-task ablation, Naive, Joint). Grids may grow four decades per side: with
    ten or twenty per-task anchors MAS's best strength lies three decades below the
    registry grid."""
    def config(scenario: str = "domain") -> ExperimentConfig:
        if benchmark.endswith("_20"):
            methods = alpha_mas_beside([1.0, 2.0], ALPHA_MAP_METHODS, DECIDING_SEEDS)
        else:  # the stream's own order for every method
            methods = comparison_methods(True, None, DECIDING_SEEDS)
        return ExperimentConfig(
            name=benchmark, benchmark=benchmark, scenario="domain", model="mlp", methods=methods,
            epochs=5, batch_size=128, lr=1e-3, seeds=[0, 1, 2, 3, 4], selection_seeds=[0, 1],
            train_samples_per_task=2000, eval_samples_per_task=1000, grid_extensions=4,
            output_dir=f"results/{benchmark}")

    config.__doc__ = long_stream.__doc__
    return config


#: preset name -> ``scenario -> ExperimentConfig``
PRESETS: dict[str, Callable[[str], ExperimentConfig]] = {
    "quick": quick,
    "full": full,
    "cifar": cifar,
    "hsu2018": hsu2018,
    "mas_demo": mas_demo,
    "split_mnist_scaled": split_mnist_scaled,
    **{name: long_stream(name) for name in LONG_STREAMS},
}


def preset(name: str, scenario: str = "task") -> ExperimentConfig:
    """The preset ``name`` (one of :data:`PRESETS`) in ``scenario``."""
    return PRESETS[check_name("preset", name, PRESETS)](scenario)
