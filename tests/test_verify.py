"""Run records say which code made them, and ``--verify-records`` re-runs them: a real tiny
digits grid, re-run at this commit, reproduces bit for bit; a changed number is found."""
from __future__ import annotations

import json
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest

from alpha_mas_avalanche.cli import main
from alpha_mas_avalanche.experiment import ExperimentConfig, MethodConfig, run_experiment
from alpha_mas_avalanche.experiment.records import decode_record, encode_record, record_paths
from alpha_mas_avalanche.experiment.verify import (
    differences, summarize_differences, verification_summary,
)

REPO = Path(__file__).resolve().parents[1]


def test_differences_name_each_moved_field_and_by_how_much():
    old = {"final_avg_acc": 0.5, "acc_matrix": [[0.9, None], [0.4, 0.6]], "label": "MAS",
           "wall_time_s": 3.0, "commit": "abc"}
    assert differences(old, {**old, "wall_time_s": 9.0, "commit": "def"}) == {}
    # a row label follows the registry: a relabelled record has not moved; its method has
    new = {**old, "acc_matrix": [[0.9, None], [0.41, 0.6]], "label": "MAS (x)",
           "method": "l2"}
    old["method"] = "mas"
    assert differences(old, new) == {"acc_matrix[1][0]": pytest.approx(0.01), "method": "changed"}
    assert summarize_differences({"a[0]": 0.1, "a[1]": 0.3, "b": "changed"}) == {
        "a": 0.3, "b": "changed"}


def test_the_verification_summary_counts_commits_and_names_what_moved():
    results = [
        {"run_id": "a", "commit": None, "verified_at": "f" * 40, "verified_dirty": False,
         "reproduced": True, "moved": {}},
        {"run_id": "b", "commit": "d" * 40, "verified_at": "f" * 40, "verified_dirty": False,
         "reproduced": True, "moved": {}},
        {"run_id": "c", "commit": None, "verified_at": "f" * 40, "verified_dirty": False,
         "reproduced": False, "moved": {"epochs": 1.5e-7, "heldout_per_epoch": "added"}},
    ]
    line = verification_summary(Path("results/x"), results)
    assert line == ("`results/x`: 2 of 3 reproduced bit for bit (2 made before commits were "
                    "recorded, 1 at ddddddd; re-run at fffffff; "
                    "[verification.json](../results/x/verification.json)); moved: `c`: "
                    "epochs by 1.5e-07, heldout_per_epoch added")
    older = [{k: v for k, v in r.items() if not k.startswith("verified")} for r in results[:1]]
    assert "re-run at a commit the file does not record" in verification_summary(Path("x"), older)


@pytest.mark.slow
def test_records_carry_their_commit_and_reproduce_at_it(tmp_path, capsys):
    config = ExperimentConfig(benchmark="split_digits", epochs=1, batch_size=32,
                              train_samples_per_task=40, eval_samples_per_task=30, seeds=[0],
                              methods=[MethodConfig("alpha_mas")],
                              output_dir=str(tmp_path / "out"))
    run_experiment(config, report=False)
    out = Path(config.output_dir)
    record = decode_record(record_paths(out / "runs")[0])
    head = subprocess.run(["git", "-C", str(REPO), "rev-parse", "HEAD"], capture_output=True,
                          text=True).stdout.strip()
    assert record["commit"] == (head or None)
    assert isinstance(record["dirty"], bool) or record["dirty"] is None
    assert record["versions"]["torch"] == metadata.version("torch")
    assert record["versions"]["avalanche-lib"] == metadata.version("avalanche-lib")
    assert (record["device"], record["precision"]) == ("cpu", "fp32")

    assert main(["--verify-records", str(out), "--sample", "2"]) == 0
    verification = json.loads((out / "verification.json").read_text())
    assert len(verification) == 2 and all(v["reproduced"] for v in verification)
    assert {v["verified_at"] for v in verification} == {head or None}
    assert "2 of 2 reproduced bit for bit" in capsys.readouterr().out

    path = record_paths(out / "runs")[0]  # a record whose numbers were edited is caught
    edited = decode_record(path)
    edited["final_avg_acc"] += 0.25
    path.write_bytes(encode_record(edited))
    assert main(["--verify-records", str(out), "--sample", "5"]) == 1
    moved = {v["run_id"]: v["moved"] for v in json.loads((out / "verification.json").read_text())}
    assert moved[edited["run_id"]] == {"final_avg_acc": pytest.approx(0.25)}

    # a record made before commits were recorded is retired and run again at today's code
    del edited["commit"]
    path.write_bytes(encode_record(edited))
    config.rerun_uncommitted = ["alpha_mas"]
    run_experiment(config, report=False)
    assert decode_record(out / "retired" / path.name) == edited  # kept, not read
    again = decode_record(path)
    assert again["commit"] == (head or None)
    assert again["final_avg_acc"] == pytest.approx(edited["final_avg_acc"] - 0.25, abs=1e-12)
    run_experiment(config, report=False)  # nothing without a commit is left: nothing moves
    assert decode_record(path) == again

    # the single-task references too, with the entry "single_task"
    reference = record_paths(out / "single_task")[0]
    made = decode_record(reference)
    assert made["commit"] == (head or None)
    older = {k: v for k, v in made.items() if k != "commit"}
    reference.write_bytes(encode_record({**older, "acc": made["acc"] - 0.5}))
    config.rerun_uncommitted = ["alpha_mas", "single_task"]
    run_experiment(config, report=False)
    assert decode_record(out / "retired" / "single_task" / reference.name)["acc"] == \
        pytest.approx(made["acc"] - 0.5)
    rerun = decode_record(reference)  # run again: the same record, but for its time
    assert {**rerun, "wall_time_s": 0} == {**made, "wall_time_s": 0}
    assert decode_record(path) == again  # the method's records, all committed, stay


def test_rerun_uncommitted_names_methods_of_the_config_or_the_single_task_references():
    with pytest.raises(ValueError, match=r"rerun_uncommitted: expected a list of this "
                                         r"config's method names \['naive'\] or 'single_task' "
                                         r"\(the single-task references\), got \['mas'\]"):
        ExperimentConfig(benchmark="split_digits", rerun_uncommitted=["mas"])
    config = ExperimentConfig(benchmark="split_digits", rerun_uncommitted=["single_task", "naive"])
    assert config.rerun_uncommitted == ["single_task", "naive"]


def test_verify_records_refuses_a_folder_without_a_config(tmp_path, capsys):
    assert main(["--verify-records", str(tmp_path)]) == 2
    assert "--verify-records" in capsys.readouterr().err
    assert main(["--quick", "--sample", "2"]) == 2
    assert "--sample: only with --verify-records" in capsys.readouterr().err


def test_retired_records_beside_their_re_runs(tmp_path):
    """scripts/retired_vs_rerun.py: per kind and method, how many re-ran bit for bit and by how
    much the rest moved (hand-made records: MAS 0.80 → 0.80 and 0.70 → 0.72; a retired record
    with no re-run is left out)."""
    folder = tmp_path / "bench"
    for sub, seed, acc, commit in [("retired", 0, 0.80, None), ("runs", 0, 0.80, "abcdef012"),
                                   ("retired", 1, 0.70, None), ("runs", 1, 0.72, "abcdef012"),
                                   ("retired", 2, 0.10, None)]:
        (folder / sub).mkdir(parents=True, exist_ok=True)
        record = {"method": "mas", "final_avg_acc": acc, "commit": commit}
        (folder / sub / f"final__mas__lambda_reg=1__seed{seed}__order01.json.gz").write_bytes(
            encode_record(record))
    out = subprocess.run([sys.executable, str(REPO / "scripts" / "retired_vs_rerun.py"), str(folder)],
                         capture_output=True, text=True, check=True).stdout.splitlines()
    assert out[0].startswith("| folder | kind | method | records | bit for bit |")
    assert out[2] == "| bench | final | mas | 2 | 1 | 0 / 0 | 1.0 | 2.0 | 1.0 | abcdef0 |"
    refused = subprocess.run([sys.executable, str(REPO / "scripts" / "retired_vs_rerun.py"),
                              str(tmp_path)], capture_output=True, text=True)
    assert refused.returncode == 2 and "folders: no retired/ in" in refused.stderr
    waiting = tmp_path / "waiting"  # records retired, none re-run yet: no row, no error
    (waiting / "retired").mkdir(parents=True)
    (waiting / "runs").mkdir()
    (waiting / "retired" / "final__mas__lambda_reg=1__seed0__order01.json.gz").write_bytes(
        encode_record({"method": "mas", "final_avg_acc": 0.5, "commit": None}))
    both = subprocess.run([sys.executable, str(REPO / "scripts" / "retired_vs_rerun.py"),
                           str(folder), str(waiting)], capture_output=True, text=True, check=True)
    assert both.stdout.splitlines() == out
    for sub, acc, commit in [("retired", None, None), ("runs", None, "abcdef012")]:
        record = {"method": "mas", "final_avg_acc": acc, "commit": commit, "diverged": "NaN"}
        (folder / sub / "select__mas__lambda_reg=1000__seed0__order01.json.gz").write_bytes(
            encode_record(record))
    for sub, acc, commit in [("retired/single_task", 0.9, None), ("single_task", 0.905, "abcdef012")]:
        (folder / sub).mkdir(parents=True, exist_ok=True)
        (folder / sub / "single__bench__task__pair0__seed0__test__0b6bd5f12c.json.gz").write_bytes(
            encode_record({"acc": acc, "commit": commit}))
    rows = subprocess.run([sys.executable, str(REPO / "scripts" / "retired_vs_rerun.py"),
                           str(folder)], capture_output=True, text=True, check=True).stdout
    assert "| bench | select | mas | 1 | 0 | 1 / 0 | – | – | – | abcdef0 |" in rows
    assert "| bench | single | single-task reference | 1 | 0 | 0 / 0 | 0.5 | 0.5 | 0.5 | abcdef0 |" in rows
