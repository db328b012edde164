"""The reference write-up's MNIST claims, checked on a ``mas_demo`` results folder.

The write-up's figures (``published-numbers.md``) give, on its MNIST protocol, average
forgetting MAS 0.066 against 0.032 at sum of alphas N and 0.031 at 2N, and maximum forgetting
0.37 against 0.11 and 0.10. Its "MAS" is the reference code's (summed Omega, one anchor,
``reg_lambda`` 1): the ``mas_reference`` rows here. Forgetting is measured both ways: the
write-up's text (single-task accuracy minus final accuracy) and the reference code's
(accuracy right after training the task minus final accuracy, averaged over all 5 tasks).

``compare-baselines --results-index`` writes ``results/mas_demo/writeup_claims.md`` from the
final runs that the reports (``runs.csv``) of ``results/mas_demo`` and of
``results/mas_demo_reference_lambda1`` hold (the reference code's MAS at its own
``reg_lambda`` 1, run with ``--methods mas_reference --no-select``); runs are paired by seed, and every claim's tests form one family, Holm-adjusted.
No Avalanche.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from alpha_mas_avalanche.experiment.methods import REGISTRY, with_defaults, with_role
from alpha_mas_avalanche.experiment.records import load_records
from alpha_mas_avalanche.experiment.report.significance import adjust_family
from alpha_mas_avalanche.experiment.report.statistics import mean_std_ci
from alpha_mas_avalanche.experiment.report.alpha_map import paired, reported_final_records, task_forgetting

#: the folders the claims page reads, in the results folder: the protocol's grid, then the
#: reference code's MAS at its own strength
FOLDERS = ("mas_demo", "mas_demo_reference_lambda1")
FAMILY = ("AlphaMAS N and 2N minus each reference-code MAS row, on average and maximum "
          "forgetting, in both definitions")

#: (metric, write-up's MAS, write-up's AlphaMAS at N, at 2N)
CLAIMS = (("avg_forgetting", 0.0664, 0.0316, 0.0307), ("max_forgetting", 0.37, 0.11, 0.10))
DEFINITIONS = {"code": "accuracy right after training minus final accuracy",
               "ref": "single-task accuracy minus final accuracy"}


def row_label(record: dict) -> str:
    """The run's label with its strength (the registry default where the run used it)."""
    params = with_defaults(record["method"], record["params"]) if record["method"] in REGISTRY \
        else record["params"]
    if "lambda_multiplier" in params:
        return f"AlphaMAS {float(params['lambda_multiplier']):g}N"
    if "lambda_reg" in params:
        return f"{record['label']} λ={float(params['lambda_reg']):g}"
    return record["label"]


def run_rows(*folders: Path) -> pd.DataFrame:
    """One row per final run that ``folders``' reports hold (their sensitivity-curve runs at
    other strengths are left out): forgetting both ways (each run against its own
    folder's single-task references), final accuracy, final alphas."""
    return pd.DataFrame([row for folder in folders for row in _folder_rows(folder)])


def _folder_rows(folder: Path) -> list[dict[str, Any]]:
    singles = {(r["seed"], r["pair"]): r["acc"] for r in
               load_records(folder / "single_task")}
    rows = []
    for record in reported_final_records(folder):
        matrix, final = record["acc_matrix"], record["acc_matrix"][-1]
        if len(matrix) == 1:  # joint training: no sequence, no forgetting
            continue
        code = task_forgetting(matrix) + [0.0]  # the last task's own forgetting is 0
        ref = [singles.get((record["seed"], pair)) for pair in record["task_order"]]
        ref = [s - f for s, f in zip(ref, final)] if None not in ref else None
        rows.append({"label": row_label(record), "seed": record["seed"],
                     "final_avg_acc": record["final_avg_acc"],
                     "avg_forgetting_code": float(np.mean(code)), "max_forgetting_code": max(code),
                     "avg_forgetting_ref": float(np.mean(ref)) if ref else None,
                     "max_forgetting_ref": max(ref) if ref else None,
                     "alphas": (record.get("alphas_per_experience") or [[]])[-1]})
    return rows


def _mean_ci(values: pd.Series) -> str:
    stat = mean_std_ci(values.tolist())
    if stat["mean"] is None:
        return "–"
    return f"{stat['mean']:.4f}" + ("" if stat["ci95"] is None else f" ± {stat['ci95']:.4f}")


def claim_tests(runs: pd.DataFrame, baselines: list[str]) -> list[dict[str, Any]]:
    """Every claim's paired tests (AlphaMAS N and 2N against each of ``baselines``, per
    metric and definition), Holm-adjusted within :data:`FAMILY`."""
    tests = []
    for baseline in baselines:
        base = runs[runs.label == baseline]
        for metric, *_ in CLAIMS:
            for multiplier in ("1", "2"):
                alpha = runs[runs.label == f"AlphaMAS {multiplier}N"]
                for kind in DEFINITIONS:
                    stat = None if base.empty or alpha.empty else paired(alpha, base, f"{metric}_{kind}")
                    if stat is not None:
                        tests.append({**stat, "higher_is_better": False, "baseline": baseline,
                                      "claim": (metric, multiplier, kind)})
    return adjust_family(tests, FAMILY)


def claim_sentences(runs: pd.DataFrame, baseline: str, tests: list[dict[str, Any]]) -> list[str]:
    """One sentence per claim: AlphaMAS N and 2N against ``baseline``, both definitions;
    confirmed where the Holm-adjusted test says lower, contradicted where it says higher."""
    sentences = []
    base = runs[runs.label == baseline]
    found = {(t["baseline"], t["claim"]): t for t in tests}
    for metric, theirs_mas, theirs_n, theirs_2n in CLAIMS:
        for multiplier, theirs in (("1", theirs_n), ("2", theirs_2n)):
            alpha = runs[runs.label == f"AlphaMAS {multiplier}N"]
            parts = []
            for kind, definition in DEFINITIONS.items():
                stat = found.get((baseline, (metric, multiplier, kind)))
                if stat is None:
                    continue
                column = f"{metric}_{kind}"
                verdict = {"better": "confirmed", "worse": "contradicted"}.get(stat["verdict"],
                                                                                "not confirmed")
                p_text = "–" if stat["p_value"] is None else (
                    f"{stat['p_value']:.2g}, Holm p {stat['p_holm']:.2g}")
                parts.append(f"{definition}: {base[column].mean():.4f} against "
                             f"{alpha[column].mean():.4f}, paired difference {stat['mean']:+.4f} "
                             f"± {stat['ci95']:.4f} (95 % CI, p {p_text}, n {stat['n']}): "
                             f"**{verdict}**")
            if not parts:
                continue
            name = metric.replace("_", " ")
            sentences.append(
                f"- Write-up: {name} MAS {theirs_mas} against {theirs} at sum of alphas "
                f"{'' if multiplier == '1' else multiplier}N. Here, {baseline} against AlphaMAS "
                f"{'' if multiplier == '1' else multiplier}N, " + "; ".join(parts) + ".")
    return sentences


#: the write-up's own MAS (the registry's "writeup_baseline"), at its ``reg_lambda`` 1
WRITEUP_MAS_LABEL = REGISTRY[with_role("writeup_baseline")[0]].label
WRITEUP_MAS = f"{WRITEUP_MAS_LABEL} λ=1"


def markdown(*folders: Path) -> str:
    """The table, the alphas, and the claims against every reference-code MAS row (its
    ``reg_lambda`` 1 first, then the strengths chosen on validation)."""
    runs = run_rows(*folders)
    if runs.empty:
        return "No finished final runs yet.\n"
    columns = ["final_avg_acc", "avg_forgetting_code", "max_forgetting_code",
               "avg_forgetting_ref", "max_forgetting_ref"]
    lines = ["| Row | n | " + " | ".join(columns) + " |", "|---|---:|" + "---:|" * len(columns)]
    for label, group in runs.groupby("label", sort=True):
        lines.append(f"| {label} | {len(group)} | " + " | ".join(_mean_ci(group[c]) for c in columns) + " |")
    lines += ["", "Fractions, mean ± 95 % t-interval over seeds; 'code': " + DEFINITIONS["code"]
              + " (averaged over all 5 tasks, as the MAS reference code does); 'ref': "
              + DEFINITIONS["ref"] + " (the write-up's text).", "", "**Alphas after the last task**"
              " (mean over seeds, tasks in order):", ""]
    for label, group in runs[runs.label.str.startswith("AlphaMAS")].groupby("label", sort=True):
        alphas = np.mean(np.array(group.alphas.tolist(), dtype=float), axis=0)
        lines.append(f"- {label}: " + ", ".join(f"{a:.3f}" for a in alphas))
    baselines = sorted((label for label in set(runs.label) if label.startswith(WRITEUP_MAS_LABEL)),
                       key=lambda label: (label != WRITEUP_MAS, label))
    tests = claim_tests(runs, baselines)
    lines += ["", f"Family of the claims' tests: {FAMILY} ({len(tests)} paired t-tests); a claim "
              "is confirmed where its Holm-adjusted p < 0.05 and the difference is negative, "
              "contradicted where it is positive."]
    for name in baselines:
        lines += ["", f"**Claims of the write-up, against {name}:**", "",
                  *claim_sentences(runs, name, tests)]
    return "\n".join(lines) + "\n"


def write_writeup_claims(results: Path) -> Path | None:
    """Write ``writeup_claims.md`` into ``results``' first :data:`FOLDERS` folder from the
    folders present (None where the first is absent)."""
    folders = [results / name for name in FOLDERS if (results / name / "runs").is_dir()]
    if not folders or folders[0].name != FOLDERS[0]:
        return None
    page = folders[0] / "writeup_claims.md"
    page.write_text(markdown(*folders))
    return page
