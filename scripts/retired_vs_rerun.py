"""How far the records a grid re-ran (``rerun_uncommitted``) moved: each record in a results
folder's ``retired/`` (made before commits were recorded) beside the record of the same run id
in ``runs/`` (re-run at a recorded commit), final average accuracy in percentage points
(validation-grid runs whose training diverged counted apart), and each single-task reference
in ``retired/single_task/`` beside its re-run in ``single_task/`` (its accuracy); one row per
folder, kind of run (final, validation-grid or single-task) and method, as a Markdown table.

    python scripts/retired_vs_rerun.py results/split_mnist results/permuted_mnist
"""
from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

from alpha_mas_avalanche.experiment.records import (
    SINGLE_TASK, decode_record, existing_record_file, record_paths, run_id_of,
)


def differences(folder: Path) -> pd.DataFrame:
    """One row per retired record that has a re-run: kind, method, old and new commit, and the
    difference new − old in final average accuracy (pp)."""
    rows = []
    pairs = [(path, folder / "runs", "final_avg_acc") for path in record_paths(folder / "retired")]
    pairs += [(path, folder / SINGLE_TASK, "acc")
              for path in record_paths(folder / "retired" / SINGLE_TASK)]
    for old_path, rerun_folder, accuracy in pairs:
        new_path = existing_record_file(rerun_folder, run_id_of(old_path))
        if not new_path.is_file():  # not re-run (yet, or no longer in the grid)
            continue
        old, new = decode_record(old_path), decode_record(new_path)
        diverged = [bool(r.get("diverged")) for r in (old, new)]
        rows.append({"folder": folder.name, "kind": run_id_of(old_path).split("__")[0],
                     "method": old.get("method", "single-task reference"),
                     "commit": (new.get("commit") or "")[:7],
                     "diverged": sum(diverged),  # training diverged in 0, 1 or 2 of the pair
                     "d_pp": float("nan") if any(diverged)
                     else 100 * (new[accuracy] - old[accuracy])})
    return pd.DataFrame(rows, columns=["folder", "kind", "method", "commit", "diverged", "d_pp"])


def summary(table: pd.DataFrame) -> pd.DataFrame:
    """Per folder, kind and method: how many, how many bit for bit, how many diverged both
    times / once (no difference for those), mean and largest absolute difference, mean
    difference (pp), and the commits of the re-runs."""
    grouped = table.assign(abs_d=table["d_pp"].abs()).groupby(["folder", "kind", "method"])
    return pd.DataFrame({
        "records": grouped.size(),
        "bit for bit": grouped["d_pp"].apply(lambda d: int((d == 0).sum())),
        "diverged both / once": grouped["diverged"].agg(
            lambda d: f"{int((d == 2).sum())} / {int((d == 1).sum())}"),
        "mean abs. d (pp)": grouped["abs_d"].mean().round(2),
        "max abs. d (pp)": grouped["abs_d"].max().round(2),
        "mean d (pp)": grouped["d_pp"].mean().round(2) + 0.0,  # no "-0.0"
        "re-run at": grouped["commit"].agg(lambda c: ", ".join(sorted(set(c)))),
    }).reset_index()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folders", nargs="+", type=Path, help="results folders")
    folders = parser.parse_args().folders
    missing = [str(f) for f in folders if not (f / "retired").is_dir()]
    if missing:
        parser.error(f"folders: no retired/ in {', '.join(missing)}")
    table = pd.concat([differences(f) for f in folders], ignore_index=True)
    rows = summary(table).map(lambda v: "–" if pd.isna(v) else str(v))  # "–": diverged only
    print("| " + " | ".join(rows.columns) + " |")
    print("|" + "---|" * len(rows.columns))
    for row in rows.itertuples(index=False):
        print("| " + " | ".join(row) + " |")


if __name__ == "__main__":
    main()
