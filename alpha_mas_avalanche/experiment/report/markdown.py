"""The paper-like markdown table of a comparison (table.md)."""
from __future__ import annotations

from typing import Any

import numpy as np

from alpha_mas_avalanche.experiment.methods import REGISTRY, family_of
from alpha_mas_avalanche.experiment.report.claims import p_text
from alpha_mas_avalanche.experiment.report.sensitivity import markdown_lines
from alpha_mas_avalanche.experiment.report.significance import ALPHA
from alpha_mas_avalanche.experiment.report.frames import METRICS, PERCENT
from alpha_mas_avalanche.experiment.report.labels import sci


# ------------------------------------------------------------------ writing
def _cell(stat: dict[str, Any], percent: bool) -> str:
    """``mean ± 95 % CI`` for n >= 3, ``mean ± std`` for n = 2, the mean alone for n = 1."""
    if stat["mean"] is None:
        return "n/a"
    scale = 100.0 if percent else 1.0
    text = f"{stat['mean'] * scale:.2f}"
    error = stat["ci95"] if stat["n"] >= 3 else stat["std"]
    if error is not None:
        text += f" ± {error * scale:.2f}"
    return text


def _row(cells: list[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def markdown_table(result: dict[str, Any]) -> str:
    """The main table (bounds at the bottom), the order-sensitivity table and the importance
    totals table, with what ± means."""
    summary = result["methods"]
    header = ["Method"] + list(METRICS.values()) + ["n"]
    lines = [f"**{result['title']}**", "", _row(header),
             "|" + "|".join(["---"] + ["---:"] * (len(header) - 1)) + "|"]
    separated = False
    for label, entry in summary.items():
        if family_of(entry["method"]) == "bound" and not separated:
            lines.append(_row(["*bounds*"] + [""] * (len(header) - 1)))
            separated = True
        cells = [_cell(entry[m], m in PERCENT) for m in METRICS]
        lines.append(_row([entry["display_label"]] + cells + [str(entry["final_avg_acc"]["n"])]))
    ns = {entry["final_avg_acc"]["n"] for entry in summary.values()}
    spread = ("Mean ± 95 % CI half-width of the mean (Student t) over n seeds" if min(ns) >= 3 else
              "Mean over n = 1 seed (no spread)" if max(ns) == 1 else
              "Mean ± one standard deviation over n seeds (n = 2: a Student-t interval would be "
              "wider than the scale)" if max(ns) <= 2 else
              "Mean ± 95 % CI half-width (Student t) where n ≥ 3, ± one std where n = 2, the mean "
              "alone where n = 1")
    lines += ["", f"{spread}. Learning acc: accuracy right after training each task, "
                  "averaged (Riemer et al. 2019); forgetting: accuracy right after training a "
                  "task minus final, averaged over (or the maximum over) the tasks before the "
                  "last (Avalanche's metrics); intransigence: single-task accuracy minus accuracy "
                  "right after training, averaged (Chaudhry et al. 2018); 'ref.' = the reference "
                  "paper's forgetting (single-task accuracy minus final accuracy: learning "
                  "accuracy and forgetting together); train time excludes "
                  "evaluation. 'chosen': picked on the validation "
                  "stream; 'at grid edge': the smallest or largest value of the grid (after any "
                  "extension of the grid); 'within noise, grid p': a two-way analysis of "
                  "variance of the validation accuracy over the grid's values, selection seeds as "
                  "blocks, did not reject 'every value scores the same' at 0.05, so the choice is "
                  "the best of noise; 'default': the registry value, no grid run."]
    display = {m: REGISTRY[m].label for m in result.get("sensitivity", {}) if m in REGISTRY}
    lines += (_provenance(result) + _paired_table(result) + _claims(result)
              + markdown_lines(result.get("sensitivity_peaks", []), display)
              + _order_table(result) + _importance_table(result))
    return "\n".join(lines) + "\n"


#: how the compared quantities are named in the tests' table
COMPARED_NAMES = {"final_avg_acc": "final avg acc", "avg_forgetting_avalanche": "avg forgetting",
                  "max_forgetting_avalanche": "max forgetting", "intransigence": "intransigence",
                  "moved_pair_final_acc_spread": "moved task's spread over placements"}


def _pp(value: float | None, signed: bool = True) -> str:
    return "n/a" if value is None else f"{100 * value:+.2f}" if signed else f"{100 * value:.2f}"


def _paired_table(result: dict[str, Any]) -> list[str]:
    comparisons = result["paired_comparisons"] + result["placement_spread_comparisons"]
    if not comparisons:
        return []
    display = {lb: e["display_label"] for lb, e in result["methods"].items()}
    first = comparisons[0]
    lines = ["", f"**Every row − {first['baseline']}, paired over seeds**", "",
             f"Family of tests: {first['family']} ({first['family_size']} tests). p: two-sided "
             f"paired t-test; Holm p: Holm-adjusted within the family; equivalence: two one-sided "
             f"paired t-tests (TOST) with margin ±{100 * first['margin']:g} pp, Holm-adjusted "
             f"within the family. Verdict at {ALPHA}: better / worse (Holm p), else equivalent "
             "(TOST Holm p), else inconclusive. MDE: the smallest difference these seeds detect "
             f"with 80 % power (two-sided, at the family's first Holm level {ALPHA} / "
             f"{first['family_size']}); seeds: how many would give 80 % power to a verdict at "
             "that level, at the observed mean and spread.", "",
             _row(["Method", "quantity", "Δ (pp)", "p", "Holm p", "TOST Holm p", "verdict",
                   "MDE (pp)", "n", "seeds to decide"]),
             "|---|---|---:|---:|---:|---:|---|---:|---:|---:|"]
    order = {lb: i for i, lb in enumerate(display)}
    metrics = list(COMPARED_NAMES)
    for c in sorted(comparisons, key=lambda c: (metrics.index(c["metric"]),
                                                order.get(c["label"], len(order)))):
        decide = "" if c["verdict"] != "inconclusive" else (
            str(c["seeds_to_decide"]) if c["seeds_to_decide"] else
            "n/a" if not c.get("sd_difference") else "> 1000")  # no spread: no estimate
        lines.append(_row([display.get(c["label"], c["label"]), COMPARED_NAMES[c["metric"]],
                           _pp(c["mean_difference"]), p_text(c["p_value"]), p_text(c["p_holm"]),
                           p_text(c["p_tost_holm"]), f"**{c['verdict']}**",
                           _pp(c["mde_80"], signed=False), str(c["n_seeds"]), decide]))
    lines += ["", "Forgetting, intransigence and spread: positive = the row is higher than MAS "
                  "(worse). p is n/a where every seed gave the same difference or fewer than 2 "
                  "seeds were paired."]
    return lines


def _provenance(result: dict[str, Any]) -> list[str]:
    """Which commits the runs come from, dirty trees flagged."""
    commits = result.get("provenance") or {}
    if not commits:
        return []
    parts = [f"{n} run{'s' if n != 1 else ''} at {key}" for key, n in commits.items()]
    return ["", "Code: " + "; ".join(parts) + "."]


def _claims(result: dict[str, Any]) -> list[str]:
    if not result["seed_claims"]:
        return []
    return (["", "**The write-up's claims** (from the verdicts above: confirmed where every "
                 "verdict is better, contradicted where one is worse):", ""]
            + [f"- {sentence}" for sentence in result["seed_claims"]])


def _order_table(result: dict[str, Any]) -> list[str]:
    sensitivity = result["order_sensitivity"]
    if not sensitivity:
        return []
    moved = result["task_names"][result["moved_pair"]]
    display = {lb: e["display_label"] for lb, e in result["methods"].items()}
    lines = ["", f"**Order sensitivity: task {moved} moved from first to last place**", "",
             _row(["Method", "placements", "final acc spread (pp)", "final acc std (pp)"]),
             "|---|---:|---:|---:|"]
    for label in [lb for lb in result["methods"] if lb in sensitivity]:
        entry = sensitivity[label]
        values = [entry[k] for k in ("final_acc_spread", "final_acc_std")]
        lines.append(_row([display[label], str(len(entry["per_placement"]))]
                          + ["n/a" if v is None else f"{v * 100:.2f}" for v in values]))
    lines += ["", "The moved task's final accuracy per placement (mean over seeds): spread = "
                  "max − min over placements, std over placements (ddof = 1). Its reference "
                  "forgetting moves by the same amounts (the single-task accuracy it is measured "
                  "against does not depend on the order)."]
    return lines


def _importance_table(result: dict[str, Any]) -> list[str]:
    totals = result["importance_totals"]
    if not totals:
        return []
    names = [result["task_names"][p] for p in result["main_task_order"]]
    display = {lb: e["display_label"] for lb, e in result["methods"].items()}
    lines = ["", "**Importance totals S_t = sum of Omega_t per task (training order), mean over "
                 "seeds**", "", _row(["Method"] + [f"S {n}" for n in names] + ["max/min", "n"]),
             "|" + "|".join(["---"] + ["---:"] * (len(names) + 2)) + "|"]
    for label in [lb for lb in result["methods"] if lb in totals]:
        entry = totals[label]
        lines.append(_row([display[label]] + [sci(v) for v in entry["per_position"]]
                          + [_ratio_cell(entry["max_over_min"]), str(entry["n"])]))
    lines += ["", "max/min: the largest over the smallest S_t of a run, median over seeds "
                  "(range in brackets); "
                  "alpha-scaling gives every task alpha_t * S_t equal, plain MAS leaves this "
                  "ratio in the penalty."]
    return lines


def _ratio_cell(ratios: list[float]) -> str:
    median = float(np.median(ratios))
    if len(ratios) == 1:
        return f"{median:.2f}"
    return f"{median:.2f} ({min(ratios):.2f}–{max(ratios):.2f})"
