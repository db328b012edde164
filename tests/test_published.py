"""The Hsu et al. (2018) comparison table against a hand-made summary."""
from __future__ import annotations

import pytest

from alpha_mas_avalanche.experiment.published import HSU2018_TABLE2, hsu2018_comparison


def _summary(scenario, accuracies):
    return {"scenario": scenario, "methods": {
        f"{name} label": {"method": name, "final_avg_acc": {"mean": mean, "std": 0.01, "n": 5}}
        for name, mean in accuracies.items()}}


def test_rows_differences_and_verdicts_by_hand():
    table = hsu2018_comparison(_summary("task", {"si": 0.9890, "ewc": 0.9650}))
    rows = {line.split(" | ")[0].lstrip("| "): line for line in table.splitlines()[2:]}
    assert "+0.34 | reproduced" in rows["SI"]          # 98.90 - 98.56
    assert "-1.20 | not reproduced" in rows["EWC"]     # 96.50 - 97.70
    assert "not run" in rows["MAS"]
    assert len(rows) == len(HSU2018_TABLE2)
    domain = hsu2018_comparison(_summary("domain", {"mas": 0.62}))  # 62.00 vs 68.57 ± 6.85
    assert "-6.57 | reproduced" in domain
    with pytest.raises(ValueError, match="scenario"):
        hsu2018_comparison(_summary("class", {}))
