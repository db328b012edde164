"""Do finished runs reproduce? Re-run a random sample of a results folder's run records at
today's code and compare every recorded number: bit for bit, or which fields moved and by
how much."""
from __future__ import annotations

import math
import random
from pathlib import Path
from typing import Any

from alpha_mas_avalanche.experiment.records import decode_record, record_paths
from alpha_mas_avalanche.experiment.specs import RunSpec

#: record fields that are not results: timings, provenance, the spec that made the run and
#: its row label (which follows the registry)
NOT_RESULTS = frozenset({"wall_time_s", "train_time_s", "commit", "dirty", "versions", "device",
                         "precision", "threads", "spec", "label"})


def differences(old: Any, new: Any, path: str = "") -> dict[str, float | str]:
    """Every leaf where ``new`` differs from ``old``: ``{path: |difference|}`` for numbers,
    ``{path: "changed"}`` for anything else (keys of :data:`NOT_RESULTS` at the top level are
    skipped). Equal NaN-free JSON values give ``{}``."""
    if isinstance(old, dict) and isinstance(new, dict):
        out: dict[str, float | str] = {}
        for key in sorted(set(old) | set(new)):
            if not path and key in NOT_RESULTS:
                continue
            where = f"{path}.{key}" if path else key
            if key not in old or key not in new:
                out[where] = "added" if key not in old else "missing"
            else:
                out.update(differences(old[key], new[key], where))
        return out
    if isinstance(old, list) and isinstance(new, list):
        if len(old) != len(new):
            return {path: f"length {len(old)} -> {len(new)}"}
        out = {}
        for index, (a, b) in enumerate(zip(old, new)):
            out.update(differences(a, b, f"{path}[{index}]"))
        return out
    numbers = (int, float)
    if (isinstance(old, numbers) and isinstance(new, numbers) and not isinstance(old, bool)
            and not isinstance(new, bool)):
        return {} if old == new else {path: abs(float(new) - float(old))}
    return {} if old == new else {path: "changed"}


def summarize_differences(diff: dict[str, float | str]) -> dict[str, float | str]:
    """Per field (the path up to its first index), the largest absolute difference."""
    out: dict[str, float | str] = {}
    for path, value in diff.items():
        field = path.split("[")[0]
        previous = out.get(field)
        if isinstance(value, str) or isinstance(previous, str):
            out[field] = value if isinstance(value, str) else previous
        else:
            out[field] = max(value, previous or 0.0)
    return out


def sample_records(folder: Path, sample: int, seed: int = 0) -> list[Path]:
    """``sample`` record files of ``folder`` (``runs/`` and ``single_task/``), drawn at
    random with ``seed``."""
    paths = record_paths(folder / "runs") + record_paths(folder / "single_task")
    if not paths:
        raise ValueError(f"--verify-records {folder}: no run records in runs/ or single_task/")
    return sorted(random.Random(seed).sample(paths, min(sample, len(paths))))


def verify_record(path: Path, *, data_root: str | None = None, threads: int = 1) -> dict[str, Any]:
    """Re-run one record's spec at today's code and compare: ``run_id``, the record's
    ``commit`` (None before commits were recorded), ``verified_at`` (the commit that re-ran
    it, and ``verified_dirty``), ``reproduced`` (bit for bit) and ``moved``
    (:func:`summarize_differences`). The run trains on the number of torch threads its record
    gives (``threads`` where it gives none: the grids' one per run)."""
    import torch

    from alpha_mas_avalanche.experiment.train import execute_run

    old = decode_record(path)
    spec = RunSpec(**{**old["spec"], "show_progress": False})
    if data_root is not None:
        spec.data_root = data_root
    before = torch.get_num_threads()
    torch.set_num_threads(old.get("threads") or threads)
    try:
        new = execute_run(spec)
    finally:
        torch.set_num_threads(before)
    moved = summarize_differences(differences(old, new))
    return {"run_id": old["run_id"], "commit": old.get("commit"),
            "verified_at": new["commit"], "verified_dirty": new["dirty"],
            "reproduced": not moved, "moved": moved}


def verify_records(folder: Path, sample: int, *, seed: int = 0, data_root: str | None = None,
                   threads: int = 1) -> list[dict[str, Any]]:
    """:func:`verify_record` on each of :func:`sample_records`."""
    return [verify_record(path, data_root=data_root, threads=threads)
            for path in sample_records(folder, sample, seed)]


def moved_text(moved: dict[str, float | str]) -> str:
    """``epochs by 1.53e-07, heldout_per_epoch added``: the fields that moved."""
    return ", ".join(f"{k} by {v:.3g}" if isinstance(v, float) and math.isfinite(v)
                     else f"{k} {v}" for k, v in moved.items())


def report_lines(results: list[dict[str, Any]]) -> list[str]:
    """One line per re-run run."""
    lines = []
    for r in results:
        made = r["commit"][:7] if r["commit"] else "no recorded commit"
        if r["reproduced"]:
            lines.append(f"{r['run_id']} ({made}): reproduced bit for bit")
        else:
            lines.append(f"{r['run_id']} ({made}): moved: {moved_text(r['moved'])}")
    return lines


def verification_summary(folder: Path, results: list[dict[str, Any]]) -> str:
    """One markdown line on a folder's ``verification.json``: how many reproduced, which
    commits made and re-ran them, what moved."""
    made = [r["commit"] for r in results]
    before = sum(c is None for c in made)
    at = sorted({c[:7] for c in made if c})
    origin = ", ".join(([f"{before} made before commits were recorded"] if before else [])
                       + ([f"{len(made) - before} at {', '.join(at)}"] if at else []))
    again = sorted({(r.get("verified_at") or "")[:7] + (" (modified tree)" if r.get("verified_dirty")
                                                       else "") for r in results})
    again_text = ", ".join(a for a in again if a) or "a commit the file does not record"
    line = (f"`results/{folder.name}`: {sum(r['reproduced'] for r in results)} of {len(results)} "
            f"reproduced bit for bit ({origin}; re-run at {again_text}; "
            f"[verification.json](../results/{folder.name}/verification.json))")
    moved = [f"`{r['run_id']}`: {moved_text(r['moved'])}" for r in results if not r["reproduced"]]
    return line + ("; moved: " + "; ".join(moved) if moved else "")
