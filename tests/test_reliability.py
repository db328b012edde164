"""Interrupted and damaged grids lose nothing: a results folder with corrupt or half-written
run files, and a grid killed with SIGKILL at random moments, on a tiny real grid (digits)."""
from __future__ import annotations

import gzip
import json
import os
import random
import signal
import subprocess
import time
import warnings
from pathlib import Path

import pytest
import torch

from alpha_mas_avalanche.experiment import ExperimentConfig, MethodConfig, run_experiment
from alpha_mas_avalanche.experiment.specs import final_specs, single_task_specs
from alpha_mas_avalanche.experiment.records import load_records
from alpha_mas_avalanche.experiment.store import git_state, read_record, write_record
from forkserver import forkserver_context

TINY = dict(benchmark="split_digits", epochs=1, batch_size=32, train_samples_per_task=60,
            eval_samples_per_task=40)
TIME_KEYS = ("wall_time_s", "train_time_s")


@pytest.fixture
def one_thread():
    """One torch thread: the killed grids (fork-server children), their resumption and the
    reference run compute with the same thread count, so their numbers compare exactly."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def result_files(out: Path) -> dict[str, bytes]:
    return {f"{p.parent.name}/{p.name}": p.read_bytes()
            for folder in ("runs", "single_task") for p in sorted((out / folder).glob("*"))
            if (out / folder).is_dir()}


def finished(out: Path) -> dict[str, bytes]:
    """The result files of finished runs (no temporary ``.name`` file of a run being written)."""
    return {n: c for n, c in result_files(out).items() if not n.split("/")[1].startswith(".")}


def decoded(content: bytes) -> dict:
    """A run record from its file's bytes (gzip-compressed JSON), decoded independently."""
    return json.loads(gzip.decompress(content))


def without_times(record: dict) -> dict:
    return {k: v for k, v in record.items() if k not in TIME_KEYS}


def numeric_summary(out: Path) -> dict:
    """summary.json's per-method statistics, timing statistics left out."""
    summary = json.loads((out / "summary.json").read_text())
    return {label: {m: v for m, v in entry.items() if "time" not in m}
            for label, entry in summary["methods"].items()}


# ------------------------------------------------------------- corrupt result files
@pytest.mark.slow
def test_corrupt_and_half_written_run_files_are_reported_and_rerun(tmp_path, one_thread):
    config = ExperimentConfig(**TINY, methods=[MethodConfig("alpha_mas_writeup"), MethodConfig("naive")],
                              output_dir=str(tmp_path / "out"))
    run_experiment(config)
    out = Path(config.output_dir)
    original = result_files(out)
    records = {name: decoded(content) for name, content in original.items()}
    alpha = next(n for n in original if n.startswith("runs/final__alpha_mas_writeup"))
    naive = next(n for n in original if n.startswith("runs/final__naive"))
    single = sorted(n for n in original if n.startswith("single_task/"))
    damage = {
        alpha: original[alpha][: len(original[alpha]) // 2],  # half-written (crash)
        single[0]: b"",  # created, never written
        single[1]: b"\x00" * 512,  # zeroed blocks after a power loss
        single[2]: gzip.compress(gzip.decompress(original[single[2]]).replace(
            b'"acc":0.', b'"acc":NaN,"x":0.', 1)),
        single[3]: gzip.compress(json.dumps({**records[naive], "format": 1}).encode()),
    }
    for name, content in damage.items():
        (out / name).write_bytes(content)
    kept = {n: c for n, c in original.items() if n not in damage}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        run_experiment(config)
    messages = [str(w.message) for w in caught if "result file" in str(w.message)]
    assert len(messages) == len(damage)
    for name, expected in [(alpha, "unreadable"), (single[0], "unreadable"),
                           (single[1], "unreadable"), (single[2], "NaN"),
                           (single[3], "holds the result of run 'final__naive")]:
        assert any(str(out / name) in m and expected in m and "repeated" in m
                   for m in messages), (name, messages)
    after = result_files(out)
    assert set(after) == set(original)  # nothing added, nothing lost
    assert all(after[n] == c for n, c in kept.items())  # the others untouched, byte for byte
    for name in damage:  # re-run: same numbers as the first time
        assert without_times(decoded(after[name])) == without_times(records[name])


def test_read_record_accepts_only_complete_records_of_this_run(tmp_path):
    path = tmp_path / "final__x.json.gz"
    write_record(path, {"run_id": "final__x", "format": 1, "final_avg_acc": 0.5})
    assert gzip.decompress(path.read_bytes()) == b'{"run_id":"final__x","format":1,"final_avg_acc":0.5}'
    assert read_record(path)["final_avg_acc"] == 0.5
    write_record(path, {"run_id": "final__x", "format": 99})
    with pytest.warns(UserWarning, match=r"final__x.json.gz: has result format 99"):
        assert read_record(path) is None
    path.write_bytes(gzip.compress(b"\xff\xfe{"))
    with pytest.warns(UserWarning, match=r"final__x.json.gz: unreadable \(UnicodeDecodeError"):
        assert read_record(path) is None
    path.write_bytes(gzip.compress(b'{"run_id": "final__x", "format": 1}')[:-9])  # cut short
    with pytest.warns(UserWarning, match=r"final__x.json.gz: unreadable \(EOFError"):
        assert read_record(path) is None
    assert read_record(tmp_path / "absent.json.gz") is None


def test_read_record_reads_an_older_folders_plain_json(tmp_path):
    plain = tmp_path / "final__x.json"
    plain.write_text(json.dumps({"run_id": "final__x", "format": 1, "final_avg_acc": 0.25}))
    assert read_record(tmp_path / "final__x.json.gz")["final_avg_acc"] == 0.25
    write_record(tmp_path / "final__x.json.gz", {"run_id": "final__x", "format": 1,
                                                  "final_avg_acc": 0.75})
    assert read_record(tmp_path / "final__x.json.gz")["final_avg_acc"] == 0.75  # new one wins
    assert [r["final_avg_acc"] for r in load_records(tmp_path, "final__")] == [0.75]


def test_config_and_records_are_replaced_never_rewritten_in_place(tmp_path):
    """A resumed grid reads config.yaml back first: written in place, a kill between the
    truncation and the write left it empty and the next resume refused the folder. Each
    save must land as a new file (the old one stays whole under a second link to it)."""
    first = ExperimentConfig(**TINY, methods=[MethodConfig("naive")], output_dir=str(tmp_path))
    second = ExperimentConfig(**{**first.to_dict(), "seeds": [3, 4]})
    target = tmp_path / "config.yaml"
    first.save(target)
    os.link(target, tmp_path / "old_link")
    second.save(target)
    assert ExperimentConfig.load(tmp_path / "old_link").to_dict() == first.to_dict()
    assert ExperimentConfig.load(target).to_dict() == second.to_dict()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.yaml", "old_link"]


# ------------------------------------------------------------------- SIGKILL
def _grid_child(config_path: str, stderr_path: str) -> None:
    os.setsid()  # its own process group: a kill reaches any worker it starts
    torch.set_num_threads(1)
    stderr = open(stderr_path, "w")  # kept: a child that dies by itself says why
    os.dup2(stderr.fileno(), 2)
    warnings.simplefilter("ignore")
    run_experiment(ExperimentConfig.load(config_path))


def kill_group(process) -> None:
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:  # killed before its setsid()
        process.kill()
    process.join(60)
    assert not process.is_alive(), f"child {process.pid} survived SIGKILL for 60 s"


KILLS = 6


@pytest.mark.slow
def test_grid_killed_at_random_moments_loses_nothing(tmp_path, one_thread):
    placements = [[0, 1, 2, 3, 4], [1, 0, 2, 3, 4], [1, 2, 0, 3, 4], [1, 2, 3, 0, 4],
                  [1, 2, 3, 4, 0]]
    methods = [MethodConfig("alpha_mas_writeup", sweep={"lambda_multiplier": [1.0, 2.0]},
                            task_orders=placements),
               MethodConfig("mas", task_orders=placements), MethodConfig("ewc"),
               MethodConfig("naive")]
    # 17 runs + 5 single-task runs, ~10 s uninterrupted on one core
    config = ExperimentConfig(**{**TINY, "train_samples_per_task": 150}, methods=methods,
                              seeds=[0], output_dir=str(tmp_path / "killed"))
    config.save(tmp_path / "grid.yaml")
    expected_ids = {s.run_id for s in final_specs(config) + single_task_specs(config)}
    reference = ExperimentConfig(**{**config.to_dict(), "output_dir": str(tmp_path / "reference")})
    started = time.monotonic()
    run_experiment(reference)  # uninterrupted, same seeds
    # each child is killed at a random moment early in the run after its first finished one: it
    # lands mid-run or mid-write, and 6 kills leave the grid unfinished however loaded the
    # machine is (delays of a fixed share of the grid's time did not, under load)
    run_seconds = (time.monotonic() - started) / len(expected_ids)

    out = Path(config.output_dir)
    rng = random.Random(20240907)
    context = forkserver_context()
    kills, lost, seen = 0, 0, {}
    deadline = time.monotonic() + 150
    while kills < KILLS and time.monotonic() < deadline:
        stderr_path = tmp_path / f"child{kills}.stderr"
        process = context.Process(target=_grid_child,
                                  args=(str(tmp_path / "grid.yaml"), str(stderr_path)))
        before = len(finished(out))
        process.start()
        while process.is_alive() and len(finished(out)) == before and time.monotonic() < deadline:
            time.sleep(0.02)
        process.join(rng.uniform(0.0, 0.5) * run_seconds)
        if process.is_alive():
            kill_group(process)
            kills += 1
        elif process.exitcode == 0:
            break  # the grid finished before this kill
        else:
            pytest.fail(f"the grid died by itself (exit code {process.exitcode}); its "
                        f"stderr ends:\n{stderr_path.read_text()[-3000:]}")
        now = result_files(out)
        lost += sum(1 for name, content in seen.items() if now.get(name) != content)
        seen.update(finished(out))
    finished_before = len(seen)
    print(f"SIGKILLs survived: {kills}; runs finished while being killed: {finished_before} "
          f"of {len(expected_ids)}; runs lost: {lost}")
    assert kills >= KILLS, "each child must be killed mid-way: grow the grid"
    assert 0 < finished_before < len(expected_ids), "kills must land mid-grid"
    assert lost == 0

    run_experiment(ExperimentConfig.load(tmp_path / "grid.yaml"))  # to completion
    final = result_files(out)
    assert all(final[name] == content for name, content in seen.items())  # kept, untouched
    assert not [n for n in final if not n.endswith(".json.gz")], "stray temporary files"
    ids = [decoded(content)["run_id"] for content in final.values()]
    assert sorted(ids) == sorted(expected_ids)  # every run exactly once
    ref_out = Path(reference.output_dir)
    for name, content in result_files(ref_out).items():
        assert without_times(decoded(final[name])) == without_times(decoded(content))
    assert numeric_summary(out) == numeric_summary(ref_out)


def test_reading_the_git_state_writes_nothing_to_the_repository(tmp_path):
    """environment_info runs in every grid; a plain `git status` there refreshes the index
    under .git/index.lock, and a grid SIGKILLed at that moment left the lock behind (seen:
    the user's next `git commit` refused). The read must leave .git untouched."""
    repo = tmp_path / "repo"
    repo.mkdir()
    git = ["git", "-C", str(repo), "-c", "user.email=t@t", "-c", "user.name=t"]
    subprocess.run(git + ["init", "-q"], check=True)
    (repo / "tracked.txt").write_text("a\n")
    subprocess.run(git + ["add", "tracked.txt"], check=True)
    subprocess.run(git + ["commit", "-qm", "one"], check=True)
    later = time.time() + 5  # same content, newer mtime: the index's stat data is stale
    os.utime(repo / "tracked.txt", (later, later))
    index = (repo / ".git" / "index").read_bytes()

    commit, dirty = git_state(repo)

    head = subprocess.run(git + ["rev-parse", "HEAD"], capture_output=True, text=True,
                          check=True).stdout.strip()
    assert (commit, dirty) == (head, False)
    assert (repo / ".git" / "index").read_bytes() == index  # not refreshed, not locked
    subprocess.run(["git", "-C", str(repo), "status", "--porcelain"], check=True,
                   capture_output=True)  # the control: a plain status does rewrite it
    assert (repo / ".git" / "index").read_bytes() != index
    (repo / "notes.md").write_text("untracked\n")
    assert git_state(repo, ("tracked.txt",)) == (head, False)  # outside the given paths
    (repo / "tracked.txt").write_text("b\n")
    assert git_state(repo) == (head, True)
    assert git_state(repo, ("tracked.txt",)) == (head, True)
    assert git_state(tmp_path) == (None, None)  # not a repository
