"""docs/results.md is what ``compare-baselines --results-index`` writes from the committed
result folders, any new ``results/<name>/`` folder gets its row and section, and a run of
one's own (``compare-baselines --quick``) lands outside ``results/``."""
from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from alpha_mas_avalanche.cli import build_parser, main, resolve_config
from alpha_mas_avalanche.experiment.results_index import result_folders, results_index

REPO = Path(__file__).resolve().parents[1]
#: a committed result folder the tests copy
SOURCE = REPO / "results" / "class_il_split_mnist"


def test_the_committed_results_page_is_what_the_command_writes():
    page = REPO / "docs" / "results.md"
    text = page.read_text()
    unlisted = [f.name for f in result_folders(REPO / "results") if f'<a id="{f.name}"></a>' not in text]
    hint = (f"; results/ holds folders the page does not list: {', '.join(unlisted)} (a run of "
            "your own? move it out of results/: compare-baselines --quick writes to out/)"
            if unlisted else "")
    assert text == results_index(REPO / "results", page), (
        f"docs/results.md is stale{hint}. For committed result folders: run "
        "`compare-baselines --results-index` in the repository root")


def quick_output() -> Path:
    """Where ``compare-baselines --quick`` writes, relative to the folder it runs in."""
    return Path(resolve_config(build_parser().parse_args(["--quick"])).output_dir)


def test_a_quick_run_in_the_checkout_leaves_the_results_page_check_as_it_was(tmp_path):
    """README's order: install, ``compare-baselines --quick`` in the checkout, ``pytest``."""
    output = quick_output()
    assert not output.is_absolute() and output.parts[0] == "out"
    checkout = tmp_path / "checkout"
    folder = checkout / "results" / SOURCE.name
    folder.mkdir(parents=True)
    for file in ("summary.json", "table.md"):
        shutil.copy(SOURCE / file, folder / file)
    page = checkout / "docs" / "results.md"
    page.parent.mkdir()
    page.write_text(results_index(checkout / "results", page))
    run = checkout / output  # the quick run's folder as its report leaves it
    run.mkdir(parents=True)
    for file in ("summary.json", "table.md"):
        shutil.copy(SOURCE / file, run / file)
    assert page.read_text() == results_index(checkout / "results", page)
    # the same folder under results/ (where --quick used to write) turns the check red
    shutil.copytree(run, checkout / "results" / output.name)
    assert page.read_text() != results_index(checkout / "results", page)


@pytest.mark.skipif(shutil.which("git") is None or not (REPO / ".git").exists(),
                    reason="not a git checkout")
def test_git_ignores_what_a_quick_run_writes():
    path = quick_output() / "table.md"
    done = subprocess.run(["git", "check-ignore", "--no-index", "-q", path.as_posix()], cwd=REPO)
    assert done.returncode == 0, f"{path} is not git-ignored"


def test_a_new_result_folder_gets_a_row_a_section_and_links(tmp_path, monkeypatch, capsys):
    source = REPO / "results" / "class_il_split_mnist"
    for name in ("a_new_benchmark", "zz_later"):
        folder = tmp_path / "results" / name
        (folder / "figures").mkdir(parents=True)
        for file in ("summary.json", "table.md"):
            shutil.copy(source / file, folder / file)
        shutil.copy(source / "figures" / "accuracy_matrix.png", folder / "figures")
    (tmp_path / "results" / "unfinished").mkdir()  # no summary yet: not listed
    monkeypatch.chdir(tmp_path)
    assert main(["--results-index"]) == 0
    assert capsys.readouterr().out.strip() == "written: docs/results.md"
    text = (tmp_path / "docs" / "results.md").read_text()
    rows = [line for line in text.splitlines() if line.startswith("| [")]
    assert [row.split("]")[0] for row in rows] == ["| [a_new_benchmark", "| [zz_later"]
    # its Naive − MAS cell: the folder's difference and raw p, Holm-adjusted anew in the
    # overview's family (the two copies' tests together)
    naive = next(c for c in json.loads((source / "summary.json").read_text())["paired_comparisons"]
                 if c["method"] == "naive" and c["metric"] == "final_avg_acc")
    assert rows[0].startswith("| [a_new_benchmark](#a_new_benchmark) | Split MNIST | class | ")
    assert (f"| {100 * naive['mean_difference']:+.2f} (p {naive['p_value']:.3f}, Holm "
            in rows[0]) and f"n {naive['n_seeds']}) **" in rows[0]
    assert "## a_new_benchmark" in text and "## unfinished" not in text
    assert "[accuracy_matrix](../results/a_new_benchmark/figures/accuracy_matrix.png)" in text
    assert (source / "table.md").read_text().strip() in text


def test_readmes_findings_block_is_what_the_command_writes():
    from alpha_mas_avalanche.experiment.results_index import readme_with_findings

    readme = (REPO / "README.md").read_text()
    assert readme == readme_with_findings(readme, REPO / "results"), (
        "README's findings block is stale: run `compare-baselines --results-index` in the "
        "repository root")


def test_analysis_blocks_are_what_the_command_writes():
    from alpha_mas_avalanche.experiment.results_index import (
        VERIFY_END, VERIFY_START, analysis_findings, verification_block, with_block,
    )

    analysis = (REPO / "docs" / "analysis.md").read_text()
    expected = with_block(analysis, analysis_findings(REPO / "results"))
    expected = with_block(expected, verification_block(REPO / "results"), (VERIFY_START, VERIFY_END))
    assert analysis == expected, (
        "docs/analysis.md's generated blocks are stale: run `compare-baselines --results-index` "
        "in the repository root")


def test_the_headline_names_each_mode_s_wins_and_losses_with_their_differences():
    """Hand-made verdicts: the per-task ablation better in one folder on both quantities,
    AlphaMAS worse in one and equivalent in another; Naive's tests are not headlined."""
    from alpha_mas_avalanche.experiment.results_index import headline

    def test(folder, method, metric, diff, verdict):
        return {"folder": folder, "method": method, "metric": metric, "mean_difference": diff,
                "verdict": verdict}

    tests = [test("perm", "alpha_mas_per_task", "final_avg_acc", 0.0075, "better"),
             test("perm", "alpha_mas_per_task", "avg_forgetting_avalanche", -0.0085, "better"),
             test("rot", "alpha_mas", "final_avg_acc", -0.0382, "worse"),
             test("rot", "alpha_mas", "avg_forgetting_avalanche", 0.004, "inconclusive"),
             test("split", "alpha_mas", "final_avg_acc", 0.0004, "equivalent"),
             test("split", "naive", "final_avg_acc", -0.09, "worse")]
    assert headline(tests) == [
        "- **AlphaMAS** against MAS: worse on rot (final avg acc -3.82 pp); of its 3 tests, "
        "1 equivalent and 1 inconclusive.",
        "- **AlphaMAS (per-task)** against MAS: better on perm (final avg acc +0.75 pp, "
        "avg forgetting -0.85 pp); of its 2 tests, 0 equivalent and 0 inconclusive."]
    assert "better or worse nowhere" in headline(tests[4:5])[0]
