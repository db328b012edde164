"""Run records on disk: one gzip-compressed, compact JSON file per run,
``<run_id>.json.gz`` (``zcat`` or Python's ``gzip.open`` read it); encoding one, decoding
one, reading every record of a folder, and retiring the records older code made. Plain
``<run_id>.json`` records of older results folders are still read."""
from __future__ import annotations

import gzip
import json
import os
from pathlib import Path
from typing import Any, Callable

SUFFIX = ".json.gz"
PLAIN_SUFFIX = ".json"
#: The folder of the single-task reference records, and ``rerun_uncommitted``'s name for them
SINGLE_TASK = "single_task"


def encode_record(data: Any) -> bytes:
    """``data`` (finite numbers only) as compact JSON, gzip-compressed with no timestamp, so
    the same record always gives the same bytes."""
    text = json.dumps(data, separators=(",", ":"), allow_nan=False)
    return gzip.compress(text.encode("utf-8"), compresslevel=9, mtime=0)


def _reject_constant(name: str) -> None:
    raise ValueError(f"non-finite number {name} (results hold finite numbers or null)")


def decode_record(path: Path) -> Any:
    """The JSON value in ``path`` (gzip-compressed if it ends in ``.gz``). Raises
    ``ValueError``, ``OSError`` or ``EOFError`` for a corrupt, truncated or non-finite file."""
    raw = path.read_bytes()
    if path.name.endswith(".gz"):
        raw = gzip.decompress(raw)
    return json.loads(raw.decode("utf-8"), parse_constant=_reject_constant)


def run_id_of(path: Path) -> str:
    """The run a record file belongs to: its name without ``.json.gz`` / ``.json``."""
    name = path.name
    for suffix in (SUFFIX, PLAIN_SUFFIX):
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return path.stem


def record_file(folder: Path, run_id: str) -> Path:
    """Where run ``run_id``'s record is written in ``folder``."""
    return folder / f"{run_id}{SUFFIX}"


def existing_record_file(folder: Path, run_id: str) -> Path:
    """The file holding ``run_id``'s record: the compressed one, else an older plain one,
    else (neither exists) the compressed one's path."""
    compressed = record_file(folder, run_id)
    plain = folder / f"{run_id}{PLAIN_SUFFIX}"
    return plain if not compressed.is_file() and plain.is_file() else compressed


def record_paths(folder: Path, prefix: str = "") -> list[Path]:
    """The record files in ``folder`` whose run id starts with ``prefix``, one per run (the
    compressed file where a run has both), sorted by run id."""
    if not folder.is_dir():
        return []
    found = {run_id_of(p): p for p in folder.glob(f"{prefix}*{PLAIN_SUFFIX}")}
    found.update({run_id_of(p): p for p in folder.glob(f"{prefix}*{SUFFIX}")})
    return [found[run_id] for run_id in sorted(found)]


def load_records(folder: Path, prefix: str = "") -> list[dict[str, Any]]:
    """Every record in ``folder`` whose run id starts with ``prefix``, sorted by run id."""
    return [decode_record(path) for path in record_paths(folder, prefix)]


def _retire(source: Path, target: Path, wanted: Callable[[dict[str, Any]], bool]) -> list[str]:
    """Move the records in ``source`` that name no commit and are ``wanted`` to ``target``;
    their run ids."""
    retired = []
    for path in record_paths(source):
        try:
            record = decode_record(path)
        except (ValueError, OSError, EOFError):  # unusable: the grid reports and re-runs it
            continue
        if isinstance(record, dict) and record.get("commit") is None and wanted(record):
            target.mkdir(parents=True, exist_ok=True)
            os.replace(path, target / path.name)
            retired.append(run_id_of(path))
    return retired


def retire_uncommitted(output_dir: Path, methods: set[str]) -> list[str]:
    """Move the records in ``output_dir/runs`` of ``methods`` that name no commit (made before
    commits were recorded) to ``output_dir/retired`` and, where ``methods`` holds
    :data:`SINGLE_TASK`, the single-task references that name none to
    ``output_dir/retired/single_task``, where they are kept and not read; their run ids. A grid
    then runs them again."""
    retired = []
    if methods - {SINGLE_TASK}:
        retired += _retire(output_dir / "runs", output_dir / "retired",
                           lambda record: record.get("method") in methods)
    if SINGLE_TASK in methods:
        retired += _retire(output_dir / SINGLE_TASK, output_dir / "retired" / SINGLE_TASK,
                           lambda record: True)
    return retired
