"""The prepared GPU check (scripts/gpu_check.py): what travels is counted and refused above
the limit, the reduced CIFAR-10 copy keeps exactly the images the check's runs read (a run
reading more is caught), and the whole check runs on the CPU with a tiny input (its test step
checks only that the selected test files exist)."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

from alpha_mas_avalanche.data.integrity import check_jpeg_npz

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "scripts"))
import gpu_check  # noqa: E402


@pytest.fixture(scope="module")
def tiny_carry(tmp_path_factory, cifar10_jpeg_path):
    carry = tmp_path_factory.mktemp("carry")
    data_root = str(cifar10_jpeg_path.parents[2])
    assert gpu_check.main(["prepare", "--tiny", "--no-wheels", "--carry", str(carry),
                           "--data-root", data_root]) == 0
    return carry


def test_reduced_copy_keeps_the_layout_and_only_the_images_read(tiny_carry, cifar10_jpeg_path):
    reduced = tiny_carry / "data" / gpu_check.JPEG_PATH
    check_jpeg_npz(reduced)  # 50,000 + 10,000 images, as the loader expects
    assert reduced.stat().st_size < 2**20 < cifar10_jpeg_path.stat().st_size
    config = gpu_check.grid_config(gpu_check.TINY, "cpu", "unused", str(tiny_carry / "data"))
    assert gpu_check.check_no_placeholder(config) > 0
    with np.load(reduced) as small, np.load(cifar10_jpeg_path) as full:
        for split in ("train", "test"):
            np.testing.assert_array_equal(small[f"y_{split}"], full[f"y_{split}"])
    more = gpu_check.grid_config({**gpu_check.TINY, "samples": 40}, "cpu", "unused",
                                 str(tiny_carry / "data"))
    with pytest.raises(RuntimeError, match="reads a placeholder image"):
        gpu_check.check_no_placeholder(more)


def test_size_counts_the_tree_and_the_carried_folder(tiny_carry, capsys):
    sizes = gpu_check.travel_sizes(tiny_carry)
    assert sizes["tracked: results/"] > 2**20
    assert sizes[f"carried: {tiny_carry.name}/data"] == sum(
        f.stat().st_size for f in (tiny_carry / "data").rglob("*") if f.is_file())
    assert gpu_check.report_size(tiny_carry) is True
    assert gpu_check.report_size(tiny_carry, limit_mib=1) is False
    assert "TOO MUCH, refusing" in capsys.readouterr().out


@pytest.mark.slow
def test_dry_run_on_the_cpu(tiny_carry, tmp_path):
    out = tmp_path / "out"
    assert gpu_check.main(["run", "--dry-run", "--carry", str(tiny_carry), "--out", str(out)]) == 0
    report = json.loads((out / "gpu_check.json").read_text())
    assert report["device"] == "cpu" and report["tests"] == "dry run: not run, files present"
    assert "-k" in gpu_check.test_command("cuda")
    assert set(report["sync_debug"]) == set(gpu_check.PLUGINS)
    assert all(v.startswith("ran") for v in report["sync_debug"].values())
    assert report["grid"]["runs"] and report["grid"]["images_checked"] > 0
    table = (out / "table.md").read_text()
    assert "AlphaMAS" in table and "Naive" in table
    assert (out / "grid.tar.gz").stat().st_size > 0
