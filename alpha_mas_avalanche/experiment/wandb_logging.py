"""Weights & Biases logging of a comparison (optional; results never depend on it).

One W&B run per finished run (method, hyperparameters, seed, task order), grouped by the
experiment name, named readably (``AlphaMAS λ=2N · seed 0 · order 01234``) and tagged with
the method, each hyperparameter, the seed, the order and the benchmark; it logs against the
epoch step the training accuracy, loss and penalty and the held-out accuracy of every task
seen so far (``heldout/acc/task_k``, ``heldout/acc/mean``), against the ``experience`` step
the test accuracy of every seen task after each experience (``eval/acc/task_k``,
``eval/acc/mean``; k = position in the run's task order), the alphas, and the accuracy
matrix as a ``wandb.Table``. One ``summary`` run holds the final tables and the figures. Every W&B run is finished (``wandb.finish``), also when logging raises. A W&B
failure never stops the experiment: one warning says what happened, W&B logging is off for
the rest of the experiment (so an unreachable server costs one ``init_timeout``, not one
per run; set ``WANDB_INIT_TIMEOUT`` to shorten it), local results are kept.
"""
from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any

from alpha_mas_avalanche.experiment.config import ExperimentConfig
from alpha_mas_avalanche.experiment.methods import REGISTRY, with_defaults
from alpha_mas_avalanche.experiment.report.frames import METRICS


class WandbSession:
    """Logs runs of one experiment to W&B in mode ``config.wandb`` (no-op if disabled)."""

    def __init__(self, config: ExperimentConfig) -> None:
        self.config = config
        self.enabled = config.wandb != "disabled"
        self.warned = False
        self.logged: list[str] = []
        self._folder_checked = False

    def _warn(self, what: str, err: BaseException) -> None:
        """The one warning; W&B logging is off from now on."""
        self.enabled = False
        if not self.warned:
            warnings.warn(
                f"W&B logging failed ({what}: {type(err).__name__}: {err}); the experiment "
                f"goes on without W&B and all results are written locally to "
                f"{self.config.output_dir}.",
                stacklevel=3,
            )
            self.warned = True

    def _check_folder(self) -> None:
        """W&B writes under ``<output_dir>/wandb``; fail early (OSError) if that folder
        cannot be created or written (a file in its place, a full disk, no permission)
        rather than let W&B fall back to another folder or fail half-way."""
        if self._folder_checked:
            return
        folder = Path(self.config.output_dir) / "wandb"
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / f".write-test-{os.getpid()}"
        try:
            with open(probe, "wb") as handle:
                handle.write(bytes(256 * 1024))
                handle.flush()
                os.fsync(handle.fileno())
        finally:
            probe.unlink(missing_ok=True)
        self._folder_checked = True

    def _start(self, name: str, job_type: str, extra_config: dict[str, Any],
               tags: list[str] | None = None):
        import wandb

        self._check_folder()
        return wandb.init(
            project=self.config.wandb_project, group=self.config.name, name=name,
            job_type=job_type, mode=self.config.wandb, dir=str(self.config.output_dir),
            config={"experiment": self.config.to_dict(), **extra_config}, tags=tags,
            reinit="create_new", settings=wandb.Settings(silent=True),
        )

    def run_tags(self, record: dict[str, Any]) -> list[str]:
        """Method, each hyperparameter, seed, task order, benchmark and scenario."""
        params = [f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}"
                  for k, v in sorted(effective_params(record).items())
                  if isinstance(v, (bool, int, float, str))]
        return [record["method"], *params, f"seed={record['seed']}",
                "order=" + "".join(map(str, record["task_order"])), self.config.benchmark,
                f"{self.config.scenario}-incremental"]

    def log_run(self, spec, record: dict[str, Any]) -> None:
        """One W&B run for a finished run's record."""
        if not self.enabled:
            return
        run = None
        try:
            import wandb

            run = self._start(run_name(record), "run", {
                "method": record["method"], "label": record["label"], "params": record["params"],
                "seed": record["seed"], "task_order": record["task_order"],
                "task_classes": record.get("task_classes"), "run_id": record["run_id"],
            }, tags=self.run_tags(record))
            run.define_metric("experience")
            run.define_metric("eval/*", step_metric="experience")
            for step, values in epoch_rows(record).items():
                run.log(values, step=step)
            for i, alphas in enumerate(record.get("alphas_per_experience") or []):
                run.log({f"alpha/task{k}": a for k, a in enumerate(alphas)}
                        | {"alpha/after_experience": i})
            columns = [f"task{j}" for j in range(len(record["acc_matrix"][0]))]
            run.log({"accuracy_matrix": wandb.Table(
                columns=["after_experience"] + columns,
                data=[[i] + row for i, row in enumerate(record["acc_matrix"])])})
            run.summary.update({
                key: record[key] for key in
                ("final_avg_acc", "avalanche_forgetting", "avalanche_bwt", "train_time_s")
                if record.get(key) is not None
            })
            self.logged.append(record["run_id"])
        except Exception as err:  # noqa: BLE001 - W&B must never stop the experiment
            self._warn(f"run {record.get('run_id')}", err)
        finally:
            self._finish(run)

    def log_summary(self, summary: dict[str, Any], output_dir: str | Path) -> None:
        """A ``summary`` run with the final table, comparisons and figures."""
        if not self.enabled:
            return
        run = None
        try:
            import wandb

            run = self._start(f"{self.config.name}-summary", "summary", {})
            metrics = list(METRICS)
            rows = [[label] + [entry[m]["mean"] for m in metrics] + [entry["final_avg_acc"]["n"]]
                    for label, entry in summary["methods"].items()]
            tables = {"results": wandb.Table(columns=["method"] + metrics + ["n_seeds"], data=rows)}
            comparisons = summary["paired_comparisons"] + summary["placement_spread_comparisons"]
            if comparisons:
                keys = list(comparisons[0])
                tables["paired_comparisons"] = wandb.Table(
                    columns=keys, data=[[c.get(k) for k in keys] for c in comparisons])
            images = {f"figures/{Path(p).stem}": wandb.Image(str(p))
                      for p in summary.get("figures", []) if Path(p).suffix == ".png"}
            run.log({**tables, **images})
            run.summary.update({f"{label}/{m}": entry[m]["mean"]
                                for label, entry in summary["methods"].items() for m in metrics
                                if entry[m]["mean"] is not None})
        except Exception as err:  # noqa: BLE001
            self._warn("summary", err)
        finally:
            self._finish(run)

    def _finish(self, run) -> None:
        """Finish ``run`` (also after an error or an interrupt); a failure only warns."""
        if run is None:
            return
        try:
            run.finish(exit_code=0 if self.enabled else 1)
        except Exception as err:  # noqa: BLE001
            self._warn("finish", err)


def epoch_rows(record: dict[str, Any]) -> dict[int, dict[str, Any]]:
    """What a run logs per epoch step: training accuracy/loss/penalty, the held-out accuracy
    of each seen task, and, at the last epoch of each experience, the test accuracy of each
    seen task with its ``experience`` index."""
    penalty = record.get("penalty_per_epoch") or []
    heldout = {p["epoch"]: p["acc"] for p in record.get("heldout_per_epoch") or []}
    last_epoch = {p["experience"]: p["epoch"] for p in record["epochs"]}
    evaluated = {epoch: i for i, epoch in last_epoch.items() if i < len(record["acc_matrix"])}
    rows: dict[int, dict[str, Any]] = {}
    for point in record["epochs"]:
        epoch = point["epoch"]
        values: dict[str, Any] = {"train/acc": point["train_acc"], "train/experience": point["experience"]}
        if point["train_loss"] is not None:
            values["train/loss"] = point["train_loss"]
        if epoch < len(penalty) and penalty[epoch] is not None:
            values["train/penalty"] = penalty[epoch]
        if heldout.get(epoch):
            values.update({f"heldout/acc/task_{k}": a for k, a in enumerate(heldout[epoch])})
            values["heldout/acc/mean"] = sum(heldout[epoch]) / len(heldout[epoch])
        if epoch in evaluated:
            row = [a for a in record["acc_matrix"][evaluated[epoch]] if a is not None]
            values.update({f"eval/acc/task_{k}": a for k, a in enumerate(row)})
            values.update({"eval/acc/mean": sum(row) / len(row), "experience": evaluated[epoch]})
        rows[epoch] = values
    return rows


def effective_params(record: dict[str, Any]) -> dict[str, Any]:
    """The run's hyperparameters over its registry defaults (what the plugin ran with)."""
    if record["method"] not in REGISTRY:
        return dict(record["params"])
    return with_defaults(record["method"], record["params"])


def run_name(record: dict[str, Any]) -> str:
    """``EWC (ewc_lambda=10000) · seed 0 · order 01234``; a swept parameter is in the label
    already (``AlphaMAS λ=2N``)."""
    swept = REGISTRY[record["method"]].sweep if record["method"] in REGISTRY else {}
    params = {k: v for k, v in effective_params(record).items() if k not in swept}
    shown = ", ".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in params.items())
    order = "".join(map(str, record["task_order"]))
    return (f"{record['label']}{f' ({shown})' if shown else ''} · seed {record['seed']} "
            f"· order {order}")
