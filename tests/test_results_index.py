"""docs/results.md is what ``compare-baselines --results-index`` writes from the committed
result folders, and any new ``results/<name>/`` folder gets its row and section."""
from __future__ import annotations

import shutil
from pathlib import Path

from alpha_mas_avalanche.cli import main
from alpha_mas_avalanche.experiment.results_index import results_index

REPO = Path(__file__).resolve().parents[1]


def test_the_committed_results_page_is_what_the_command_writes():
    page = REPO / "docs" / "results.md"
    assert page.read_text() == results_index(REPO / "results", page), (
        "docs/results.md is stale: run `compare-baselines --results-index` in the repository root")


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
    assert "| Split MNIST | class | 1 | 6 | -0.05 pp (AlphaMAS λ=N, p n/a, n 1) |" in rows[0]
    assert "## a_new_benchmark" in text and "## unfinished" not in text
    assert "[accuracy_matrix](../results/a_new_benchmark/figures/accuracy_matrix.png)" in text
    assert (source / "table.md").read_text().strip() in text
