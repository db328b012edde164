"""Read an offline W&B run's transaction log ``run-<id>.wandb`` back from disk.

wandb >= 0.19 offline runs keep their records there (no ``wandb-summary.json``).
LevelDB-log framing: 7-byte file header, 32 KiB blocks, 7-byte record headers
``<crc32, length, type>``, type 1 full / 2 first / 3 middle / 4 last.
"""
from __future__ import annotations

import struct
from collections.abc import Iterator
from pathlib import Path


def offline_records(run_folder: Path) -> Iterator:
    """Every ``wandb_internal_pb2.Record`` of the run, in order.

    ``run.finish()`` can return before W&B's service has flushed the file (seen once in a
    full-suite run: an empty log), so the service is shut down first; the next
    ``wandb.init`` starts a new one."""
    import wandb
    from wandb.proto import wandb_internal_pb2

    wandb.teardown()
    data = next(run_folder.glob("run-*.wandb")).read_bytes()
    assert data[:4] == b":W&B"
    position, block, chunk = 7, 32768, b""
    while position + 7 <= len(data):
        if block - position % block < 7:
            position += block - position % block
            continue
        _, length, kind = struct.unpack("<IHB", data[position:position + 7])
        if length == 0 and kind == 0:
            return
        chunk += data[position + 7:position + 7 + length]
        position += 7 + length
        if kind in (1, 4):
            record = wandb_internal_pb2.Record()
            record.ParseFromString(chunk)
            chunk = b""
            yield record


def offline_history(run_folder: Path) -> list[dict]:
    """The run's logged rows (``run.log`` calls), in order: ``{key: value, "_step": step}``."""
    import json

    rows = []
    for record in offline_records(run_folder):
        if record.WhichOneof("record_type") == "history":
            rows.append({item.key or "/".join(item.nested_key): json.loads(item.value_json)
                         for item in record.history.item})
    return rows
