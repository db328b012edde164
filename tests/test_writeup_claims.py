"""The write-up's MNIST claims checked on hand-made mas_demo records."""
from __future__ import annotations


import pytest

from alpha_mas_avalanche.experiment.records import encode_record
from alpha_mas_avalanche.experiment.report.writeup_claims import markdown, run_rows


def _write_run(folder, name, method, params, seed, matrix, alphas=None, label="MAS (reference code)",
               reported=True):
    """A final run's record, and its run id in the folder's report (``runs.csv``) if ``reported``."""
    record = {"method": method, "params": params, "seed": seed, "label": label,
              "task_order": [0, 1, 2], "acc_matrix": matrix,
              "final_avg_acc": sum(matrix[-1]) / 3, "alphas_per_experience": [alphas or []]}
    run_id = f"final__{name}__seed{seed}"
    (folder / "runs" / f"{run_id}.json.gz").write_bytes(encode_record(record))
    table = folder / "runs.csv"
    if reported:
        table.write_text((table.read_text() if table.is_file() else "run_id\n") + run_id + "\n")


def _write_singles(folder, seeds, acc=1.0):
    """Single-task references of every pair (``acc`` each) for ``seeds``."""
    for seed in seeds:
        for pair in range(3):
            (folder / "single_task" / f"s{seed}{pair}.json.gz").write_bytes(
                encode_record({"seed": seed, "pair": pair, "acc": acc}))


@pytest.fixture()
def folder(tmp_path):
    (tmp_path / "runs").mkdir()
    (tmp_path / "single_task").mkdir()
    _write_singles(tmp_path, (0, 1))
    mas = {0: [[0.9, None, None], [0.7, 0.9, None], [0.6, 0.8, 0.9]],
           1: [[0.9, None, None], [0.8, 0.9, None], [0.7, 0.8, 0.9]]}
    alpha = {0: [[0.9, None, None], [0.85, 0.9, None], [0.85, 0.85, 0.9]],
             1: [[0.9, None, None], [0.9, 0.9, None], [0.8, 0.9, 0.9]]}
    for seed in (0, 1):
        _write_run(tmp_path, "mas_reference", "mas_reference", {"lambda_reg": 1.0}, seed, mas[seed])
        _write_run(tmp_path, "alpha_mas_writeup", "alpha_mas_writeup", {"lambda_multiplier": 1.0}, seed, alpha[seed],
                   alphas=[1.0 + seed, 1.5, 0.5 - seed / 4], label="AlphaMAS")
    return tmp_path


def test_a_run_at_the_registry_default_is_labelled_with_that_strength(folder):
    _write_run(folder, "mas_reference__default", "mas_reference", {}, 0,
               [[0.9, None, None], [0.9, 0.9, None], [0.9, 0.9, 0.9]])
    assert "MAS (reference code) λ=1" in set(run_rows(folder).label)  # mas_reference's default


def test_a_run_the_report_does_not_hold_has_no_row(folder):
    """Sensitivity-curve runs at other strengths, diverged or not, stay out of the page."""
    record = {"method": "mas_reference", "params": {"lambda_reg": 1e3}, "seed": 0,
              "task_order": [0, 1, 2], "final_avg_acc": None, "diverged": "training diverged"}
    (folder / "runs" / "final__mas_reference__lambda_reg=1000__seed0.json.gz").write_bytes(
        encode_record(record))
    _write_run(folder, "mas_reference__lambda_reg=10", "mas_reference", {"lambda_reg": 10.0}, 0,
               [[0.9, None, None], [0.9, 0.9, None], [0.9, 0.9, 0.9]], reported=False)
    assert len(run_rows(folder)) == 4  # the fixture's four reported runs
    assert "MAS (reference code) λ=10" not in set(run_rows(folder).label)


def test_forgetting_both_ways_by_hand(folder):
    runs = run_rows(folder).set_index(["label", "seed"])
    mas0 = runs.loc[("MAS (reference code) λ=1", 0)]
    # after training minus final: 0.9-0.6, 0.9-0.8, 0 -> mean 0.4/3, max 0.3
    assert mas0.avg_forgetting_code == pytest.approx(0.4 / 3)
    assert mas0.max_forgetting_code == pytest.approx(0.3)
    # single-task accuracy 1.0 minus final: 0.4, 0.2, 0.1
    assert mas0.avg_forgetting_ref == pytest.approx(0.7 / 3)
    assert mas0.max_forgetting_ref == pytest.approx(0.4)


def test_claim_sentences_and_alphas(folder):
    text = markdown(folder)
    assert "- AlphaMAS 1N: 1.500, 1.500, 0.375" in text  # (1+2)/2, 1.5, (0.5+0.25)/2
    claims = [line for line in text.splitlines() if line.startswith("- Write-up")]
    assert len(claims) == 2  # N only: no 2N runs here
    assert claims[0].startswith("- Write-up: avg forgetting MAS 0.0664 against 0.0316")
    # max forgetting (code): MAS 0.3 and 0.2, AlphaMAS 0.05 and 0.1 -> -0.25, -0.1: mean -0.175
    assert "paired difference -0.1750" in claims[1]


def test_rows_of_a_second_folder_are_paired_by_seed(folder, tmp_path_factory):
    """The reference code's MAS at another strength, run into its own folder, is compared
    with the first folder's AlphaMAS runs seed by seed."""
    other = tmp_path_factory.mktemp("lambda01")
    (other / "runs").mkdir()
    (other / "single_task").mkdir()
    _write_singles(other, (0, 1))
    for seed in (0, 1):
        _write_run(other, "mas_reference", "mas_reference", {"lambda_reg": 0.1}, seed,
                   [[0.9, None, None], [0.9, 0.9, None], [0.9, 0.9, 0.9]])
    runs = run_rows(folder, other)
    assert sorted(set(runs.label)) == ["AlphaMAS 1N", "MAS (reference code) λ=0.1",
                                       "MAS (reference code) λ=1"]
    text = markdown(folder, other)
    first, second = text.split("**Claims of the write-up, against ")[1:]
    assert first.startswith("MAS (reference code) λ=1:") and second.startswith("MAS (reference code) λ=0.1:")
    claims = [line for line in second.splitlines() if line.startswith("- Write-up")]
    # max forgetting (code): lambda 0.1 forgets nothing; AlphaMAS 0.05 and 0.1 -> +0.075
    assert "paired difference +0.0750" in claims[1] and "not confirmed" in claims[1]


def test_a_significant_difference_the_other_way_is_called_contradicted(folder):
    """Five seeds where AlphaMAS forgets 0.10-0.14 more than MAS: p < 0.05, against the claim."""
    _write_singles(folder, range(5))
    for seed in range(5):
        _write_run(folder, "mas_reference", "mas_reference", {"lambda_reg": 1.0}, seed,
                   [[0.9, None, None], [0.9, 0.9, None], [0.9, 0.9, 0.9]])
        _write_run(folder, "alpha_mas_writeup", "alpha_mas_writeup", {"lambda_multiplier": 1.0}, seed,
                   [[0.9, None, None], [0.9, 0.9, None], [0.8 - 0.01 * seed, 0.9, 0.9]],
                   alphas=[1.0, 1.0, 1.0], label="AlphaMAS")
    claims = [line for line in markdown(folder).splitlines() if line.startswith("- Write-up: max")]
    assert "**contradicted**" in claims[0]
