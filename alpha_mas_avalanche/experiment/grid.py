"""The driver of a comparison: its phases, each phase's loop over an executor (writing records,
retrying failures, the progress bar), and the report from finished runs.

Phases: (1) validation-grid runs (``eval_stream="valid"``) for methods with a ``select``
grid, together with the single-task reference runs (one per seed and pair, cached in
``single_task/``); the best grid value is kept; (2) the final runs on the test stream.
Executors (:mod:`~alpha_mas_avalanche.experiment.executors`) run each phase's specs in this
process, in local worker processes or on Ray; a failed run is retried once, then recorded
in ``failed/`` and re-run by the next invocation.
"""
from __future__ import annotations

import sys
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

from alpha_mas_avalanche.experiment import report as reporting
from alpha_mas_avalanche.experiment.config import ExperimentConfig
from alpha_mas_avalanche.experiment.devices import check_device_available
from alpha_mas_avalanche.experiment.executors import Executor, sequential_executor
from alpha_mas_avalanche.experiment.records import retire_uncommitted
from alpha_mas_avalanche.experiment.report.sensitivity import curves
from alpha_mas_avalanche.experiment.selection import (
    Grids,
    choose_hyperparameters,
    initial_grids,
    selection_specs,
    settle_grids,
)
from alpha_mas_avalanche.experiment.specs import (
    RunSpec,
    final_specs,
    sensitivity_specs,
    single_task_specs,
)
from alpha_mas_avalanche.experiment.store import (
    RunFailure,
    check_resumable,
    failure_path,
    read_record,
    record_environment,
    record_failure,
    spec_path,
    write_json_atomic,
    write_record,
)
from alpha_mas_avalanche.experiment.wandb_logging import WandbSession

#: Attempts per run and grid invocation: a failed run is retried once.
MAX_ATTEMPTS = 2


class GridProgress:
    """One tqdm bar over a grid: finished runs, with ``running`` and ``failed`` beside it."""

    def __init__(self, total: int, desc: str = "runs") -> None:
        from tqdm.auto import tqdm

        self.bar = tqdm(total=total, desc=desc, unit="run", position=0, dynamic_ncols=True)
        self.failed = 0

    def add(self, count: int, desc: str | None = None) -> None:
        """``count`` more runs in the grid (a validation grid that grew, the ablation's
        runs once its choice is made); ``desc`` replaces the bar's description."""
        self.bar.total += count
        if desc is not None:
            self.bar.set_description(desc, refresh=False)
        self.bar.refresh()

    def skip(self, count: int) -> None:
        """``count`` runs were finished before (not counted in the rate)."""
        self.bar.initial += count
        self.bar.n += count
        self.bar.refresh()

    def show(self, running: int | None, finished: int = 0) -> None:
        self.bar.set_postfix_str(
            (f"running={running}, " if running is not None else "") + f"failed={self.failed}",
            refresh=not finished)
        if finished:
            self.bar.update(finished)

    def write(self, message: str) -> None:
        self.bar.write(message, file=sys.stderr)

    def close(self) -> None:
        self.bar.close()


def run_phase(specs: list[RunSpec], output_dir: Path, executor: Executor | None = None,
              on_result: Callable[[RunSpec, dict], None] | None = None,
              desc: str = "runs", progress: GridProgress | None = None) -> dict[str, dict]:
    """Execute the specs without a result file; return the finished specs' records by run_id.

    The driver writes each record as it comes back (workers need no shared filesystem).
    A failed run (exception, lost worker) is written to ``failed/<run_id>.json`` and
    retried once; if it fails again it is left out of the returned records, the others go
    on, and the next invocation retries it. A success removes its failure file.
    """
    executor = executor or sequential_executor
    records, pending = _read_finished(specs, output_dir)
    own_progress = progress is None
    if own_progress:
        if not pending:
            return records
        progress = GridProgress(len(specs), desc)
    progress.skip(len(specs) - len(pending))

    def running() -> int | None:
        return 1 if executor is sequential_executor else getattr(executor, "running", None)

    attempts: dict[str, int] = {}
    queue = pending
    try:
        while queue:
            retry = []
            outcomes = iter(executor(queue))
            try:
                for spec, result in outcomes:
                    if isinstance(result, RunFailure):
                        if _record_attempt(output_dir, spec, result, attempts, progress):
                            retry.append(spec)
                        progress.show(running())
                        continue
                    write_record(spec_path(output_dir, spec), result)
                    failure_path(output_dir, spec).unlink(missing_ok=True)
                    records[spec.run_id] = result
                    if on_result is not None:
                        on_result(spec, result)
                    progress.show(running(), finished=1)
            finally:
                close = getattr(outcomes, "close", None)
                if close is not None:  # stops the executor's runs in flight on errors/Ctrl-C
                    close()
            queue = retry
    finally:
        if own_progress:
            progress.close()
    return records


def _read_finished(specs: list[RunSpec], output_dir: Path) -> tuple[dict[str, dict], list[RunSpec]]:
    """The records of the specs with a usable result file (by run_id), and the other specs."""
    records: dict[str, dict] = {}
    pending = []
    for spec in specs:
        record = read_record(spec_path(output_dir, spec))
        if record is None:
            pending.append(spec)
        else:
            records[spec.run_id] = record
    return records, pending


def _record_attempt(output_dir: Path, spec: RunSpec, result: RunFailure, attempts: dict[str, int],
                    progress: GridProgress) -> bool:
    """Write the failure to ``failed/``, say so; True if the run gets another attempt."""
    attempts[spec.run_id] = attempts.get(spec.run_id, 0) + 1
    record_failure(output_dir, spec, result, attempts[spec.run_id])
    if result.config_error:  # deterministic: another attempt would fail the same way
        progress.failed += 1
        progress.write(f"run {spec.run_id}: config error, not retried ({result.error}); "
                       f"recorded in {failure_path(output_dir, spec)}; the grid goes on")
        return False
    if attempts[spec.run_id] < MAX_ATTEMPTS:
        progress.write(f"run {spec.run_id} failed ({result.error}); "
                       "it will be retried once")
        return True
    progress.failed += 1
    progress.write(
        f"run {spec.run_id} failed again ({result.error}); recorded in "
        f"{failure_path(output_dir, spec)}; the grid goes on")
    return False


def run_experiment(config: ExperimentConfig, *, executor: Executor | None = None,
                   report: bool = True) -> dict[str, Any]:
    """Run (or resume) the whole grid; write runs, selection, report; return the summary."""
    check_device_available("device", config.device)
    output_dir = Path(config.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    check_resumable(output_dir, config)
    config.save(output_dir / "config.yaml")
    record_environment(output_dir)
    retired = retire_uncommitted(output_dir, set(config.rerun_uncommitted))
    if retired:
        print(f"{len(retired)} record(s) of {config.rerun_uncommitted} without a commit moved "
              f"to {output_dir / 'retired'}: they run again", file=sys.stderr)

    wandb = WandbSession(config)
    select, singles = selection_specs(config), single_task_specs(config)
    n_final = len(final_specs(config))
    progress = GridProgress(n_final + len(singles) + len(select),
                            f"{config.name}: {_counts(n_final, len(singles), len(select))}")
    try:
        # validation-grid and single-task reference runs are independent: one phase, so
        # parallel workers stay busy; single-task models are computed once per (seed, pair)
        first = run_phase(select + singles, output_dir, executor, progress=progress)
        grids = _grow_grids(config, initial_grids(config), first, output_dir, executor, progress)
        select = selection_specs(config, grids)
        chosen = choose_hyperparameters(config, first, grids)
        write_json_atomic(output_dir / "selection.json", chosen)
        # a method whose validation grid is incomplete has no choice yet: its final runs wait
        final = final_specs(config, chosen)
        waiting = sorted({s.method for s in select if s.run_id not in first}
                         | ({m.name for m in config.methods} - {s.method for s in final}))
        final = [s for s in final if s.method not in waiting]
        # methods with a validation grid were not countable before their choice was made
        progress.add(max(0, len(final) - n_final), desc=f"{config.name}: " + _counts(
            max(n_final, len(final)), len(singles), len(select)))
        run_records = run_phase(final, output_dir, executor, on_result=wandb.log_run,
                                progress=progress)
        known = {s.run_id for s in final}
        curve_specs = [s for s in sensitivity_specs(config, chosen) if s.run_id not in known]
        progress.add(len(curve_specs))
        curve_records = run_phase(curve_specs, output_dir, executor, progress=progress)
    finally:
        progress.close()
    failed = [s.run_id for s in select + singles + final + curve_specs
              if s.run_id not in first and s.run_id not in run_records
              and s.run_id not in curve_records]
    finished = [run_records[s.run_id] for s in final if s.run_id in run_records]
    summary: dict[str, Any] = {"selection": chosen}
    if report and finished:
        summary = reporting.write_report(
            output_dir, finished, [first[s.run_id] for s in singles if s.run_id in first],
            config=config, selection=chosen,
            sensitivity=_sensitivity(config, chosen, first, {**run_records, **curve_records}),
        )
        wandb.log_summary(summary, output_dir)
    config_errors = [run_id for run_id in failed if _is_config_error(output_dir, run_id)]
    summary.update(failed_runs=failed, config_errors=config_errors, waiting_methods=waiting,
                   counts=_counts(len(finished), len(singles), len(select)))
    if config_errors:
        warnings.warn(
            f"{len(config_errors)} run(s) cannot be built from the config (errors in "
            f"{output_dir / 'failed'}); fix the method's params and re-run: {config_errors}",
            stacklevel=2)
    failed = [run_id for run_id in failed if run_id not in config_errors]
    if failed:
        warnings.warn(
            f"{len(failed)} run(s) failed twice (errors in {output_dir / 'failed'}); they are "
            f"left out of the report{f' and the final runs of {waiting} wait for their validation grid' if waiting else ''}. "
            "Re-run the same command to retry them; finished runs are kept.", stacklevel=2)
    return summary


def _counts(final: int, singles: int, select: int) -> str:
    """``"30 runs + 10 single-task references + 27 validation-grid runs"``: what a grid holds."""
    def many(count: int, what: str) -> str:
        return f"{count} {what}{'' if count == 1 else 's'}"

    text = f"{many(final, 'run')} + {many(singles, 'single-task reference')}"
    return text + (f" + {many(select, 'validation-grid run')}" if select else "")


def _is_config_error(output_dir: Path, run_id: str) -> bool:
    record = read_record(output_dir / "failed" / f"{run_id}.json")
    return bool(record and record.get("config_error"))


def _grow_grids(config: ExperimentConfig, grids: Grids, records: dict[str, dict],
                output_dir: Path, executor: Executor | None, progress: GridProgress) -> Grids:
    """Extend every grid whose best value is at an edge, run the new values, repeat
    (:func:`~.selection.settle_grids`); ``records`` gains the new runs."""
    while (grown := settle_grids(config, grids, records)) != grids:
        known = {s.run_id for s in selection_specs(config, grids)}
        new = [s for s in selection_specs(config, grown) if s.run_id not in known]
        progress.add(len(new))
        records.update(run_phase(new, output_dir, executor, progress=progress))
        grids = grown
    return grids


def _finished_grids(config: ExperimentConfig, output_dir: Path) -> tuple[Grids, dict[str, dict]]:
    """The grids as far as their finished runs go, and those runs' records."""
    grids, records = initial_grids(config), {}
    while True:
        records.update(_read_finished(selection_specs(config, grids), output_dir)[0])
        grown = settle_grids(config, grids, records)
        if grown == grids:
            return grids, records
        records.update(_read_finished(selection_specs(config, grown), output_dir)[0])
        settled = settle_grids(config, grids, records, finished_only=True)
        if settled == grids:
            return grids, records
        grids = settled


def report_finished(config: ExperimentConfig) -> dict[str, Any]:
    """Write the report from the runs already finished in ``config.output_dir``; run nothing.

    For a grid that is still running or was stopped: every table cell says over how many
    seeds (``n``) it was computed.
    """
    output_dir = Path(config.output_dir)
    singles = single_task_specs(config)
    grids, first = _finished_grids(config, output_dir)
    first.update(_read_finished(singles, output_dir)[0])
    chosen = choose_hyperparameters(config, first, grids)
    write_json_atomic(output_dir / "selection.json", chosen)
    final = _read_finished(final_specs(config, chosen), output_dir)[0]
    if not final:
        raise ValueError(f"output_dir {output_dir}: no finished final run to report on yet")
    at_grid = _read_finished(sensitivity_specs(config, chosen), output_dir)[0]
    return reporting.write_report(output_dir, list(final.values()),
                                  [first[s.run_id] for s in singles if s.run_id in first],
                                  config=config, selection=chosen,
                                  sensitivity=_sensitivity(config, chosen, first,
                                                           {**final, **at_grid}))


def _sensitivity(config: ExperimentConfig, chosen: dict[str, dict], select: dict[str, dict],
                 test: dict[str, dict]) -> dict[str, dict[str, Any]]:
    """The sensitivity curves of the methods with ``sensitivity``: their validation-grid
    runs and their test runs at every grid value (:func:`.report.sensitivity.curves`)."""
    methods = [m.name for m in config.methods if m.sensitivity]
    specs = sensitivity_specs(config, chosen)
    tests = [test[s.run_id] for s in specs if s.run_id in test]
    valid = [r for r in select.values() if r.get("eval_stream") == "valid"]
    return curves(chosen, valid, tests, methods)
