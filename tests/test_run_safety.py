"""Run folders are as safe as stores: a lock, resume from the run's own config.toml, the same store,
no write before every check, checksummed checkpoints, and the selection split recorded."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import cfg_for
from typer.testing import CliRunner

from tmkt_data.pairing import pair_store
from tmkt_train.cli import app
from tmkt_train.trainer import TrainError, fit

runner = CliRunner()

# a run whose options all differ from the defaults that a bare `fit STORE --out RUN --resume` would use
NON_DEFAULT = ["--method", "scratch", "--model", "demo", "--epochs", "1", "--batch-size", "16",
               "--workers", "0", "--lr", "0.02", "--set", "max_steps_per_epoch=2", "--set", "warmup_epochs=1"]  # fmt: skip


def cli_fit(store: Path, out: Path, *extra: str):
    return runner.invoke(app, ["fit", str(store), "--out", str(out), "--quiet", *extra])


def files_of(run: Path) -> dict[str, bytes]:
    """Every file of a run folder and its bytes."""
    return {str(p.relative_to(run)): p.read_bytes() for p in sorted(run.rglob("*")) if p.is_file()}


@pytest.fixture()
def dead_pid() -> int:
    """The pid of a process that has ended."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def write_run_lock(run: Path, pid: int) -> Path:
    run.mkdir(parents=True, exist_ok=True)
    lock = run / "run.lock"
    lock.write_text(json.dumps({"pid": pid, "host": socket.gethostname(), "action": "fit", "started": "now"}))
    return lock


@pytest.fixture(scope="module")
def trained(paired_store: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A one-epoch scratch run made with non-default options (a read-only template: copy it)."""
    run = tmp_path_factory.mktemp("trained") / "run"
    res = cli_fit(paired_store, run, *NON_DEFAULT)
    assert res.exit_code == 0, res.output
    return run


@pytest.fixture()
def run_copy(trained: Path, tmp_path: Path) -> Path:
    run = tmp_path / "run"
    shutil.copytree(trained, run)
    return run


# ------------------------------------------------------------------------------------------ run lock


def test_a_locked_run_folder_is_refused_with_the_holders_pid(
    paired_store: Path,
    tmp_path: Path,
    live_pid: int,
) -> None:
    run = tmp_path / "run"
    lock = write_run_lock(run, live_pid)
    res = cli_fit(paired_store, run, *NON_DEFAULT)
    assert res.exit_code == 2, res.output
    assert f"pid {live_pid}" in res.stderr and str(lock) in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1 and "Traceback" not in res.output
    assert sorted(p.name for p in run.iterdir()) == ["run.lock"]  # nothing written, the lock left alone
    assert json.loads(lock.read_text())["pid"] == live_pid


def test_a_dead_holders_lock_is_taken_over_and_released(
    paired_store: Path,
    tmp_path: Path,
    dead_pid: int,
) -> None:
    run = tmp_path / "run"
    lock = write_run_lock(run, dead_pid)
    held = []

    def on_epoch(row: dict) -> None:
        held.append(json.loads(lock.read_text()))

    fit(cfg_for(paired_store, run, method="scratch", epochs=1, max_steps_per_epoch=1), progress=False,
        on_epoch=on_epoch)  # fmt: skip
    assert [h["pid"] for h in held] == [os.getpid()]  # held by this run while it trains
    assert not lock.exists()  # and released at the end
    assert (run / "checkpoint.pt").is_file()


# ------------------------------------------------------------------------------------------ resume


def test_resume_takes_the_runs_config_toml(paired_store: Path, run_copy: Path) -> None:
    res = cli_fit(paired_store, run_copy, "--resume", "--epochs", "2")
    assert res.exit_code == 0, res.output
    rows = [json.loads(x) for x in (run_copy / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [0, 1] and {r["method"] for r in rows} == {"scratch"}
    assert rows[1]["samples"] == 32  # max_steps_per_epoch = 2 from config.toml, batch 16
    text = (run_copy / "config.toml").read_text()
    assert "epochs = 2" in text and 'method = "scratch"' in text and 'model = "demo"' in text
    assert "max_steps_per_epoch = 2" in text and "lr = 0.02" in text


@pytest.mark.parametrize(
    ("extra", "option"),
    [
        (["--method", "finetune"], "method = 'finetune'"),
        (["--model", "resnet18"], "model = 'resnet18'"),
        (["--model", "bogus"], "model = 'bogus'"),
        (["--set", "seed=7"], "seed = 7"),
        (["--batch-size", "8"], "batch_size = 8"),
    ],
)
def test_resume_refuses_other_settings_and_writes_nothing(
    paired_store: Path,
    run_copy: Path,
    extra: list[str],
    option: str,
) -> None:
    before = files_of(run_copy)
    res = cli_fit(paired_store, run_copy, "--resume", *extra)
    assert res.exit_code == 2, res.output
    assert option in res.stderr and "config.toml" in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1
    assert files_of(run_copy) == before  # config.toml, metrics and checkpoints as they were


def test_library_resume_refuses_another_method(paired_store: Path, run_copy: Path) -> None:
    before = files_of(run_copy)
    cfg = cfg_for(paired_store, run_copy, method="finetune", epochs=2, max_steps_per_epoch=2, warmup_epochs=1)
    with pytest.raises(TrainError, match=r"method = 'finetune'.*method = 'scratch'"):
        fit(cfg, resume=True, progress=False)
    assert files_of(run_copy) == before


def test_resume_refuses_another_store(paired_store: Path, run_copy: Path, tmp_path: Path) -> None:
    other = tmp_path / "other.zarr"
    shutil.copytree(paired_store, other)
    before = files_of(run_copy)
    res = cli_fit(other, run_copy, "--resume", "--epochs", "2")
    assert res.exit_code == 2, res.output
    assert str(paired_store.resolve()) in res.stderr and "trained on" in res.stderr
    # a scratch run resumed as finetune on another store is refused, too
    res = cli_fit(other, run_copy, "--resume", "--method", "finetune")
    assert res.exit_code == 2, res.output
    assert files_of(run_copy) == before


def test_resume_refuses_a_store_paired_again(paired_store: Path, tmp_path: Path) -> None:
    store = tmp_path / "s.zarr"
    shutil.copytree(paired_store, store)
    run = tmp_path / "run"
    assert cli_fit(store, run, *NON_DEFAULT).exit_code == 0
    pair_store(store, "digits", None, val_fraction=0.3, seed=1)  # same path, other pairing
    before = files_of(run)
    res = cli_fit(store, run, "--resume", "--epochs", "2")
    assert res.exit_code == 2, res.output
    assert "pairing" in res.stderr
    assert files_of(run) == before


# ------------------------------------------------------------------------------------------ checksums


def flip_bytes(path: Path) -> None:
    data = bytearray(path.read_bytes())
    mid = len(data) // 2
    for i in range(mid, mid + 16):
        data[i] ^= 0xFF
    path.write_bytes(bytes(data))


def test_checkpoints_carry_a_sha256(run_copy: Path) -> None:
    for name in ("checkpoint.pt", "best.pt"):
        digest = hashlib.sha256((run_copy / name).read_bytes()).hexdigest()
        assert (run_copy / f"{name}.sha256").read_text().split()[0] == digest


def test_a_corrupted_checkpoint_is_refused_by_eval_and_resume(
    paired_store: Path,
    run_copy: Path,
) -> None:
    for name in ("best.pt", "checkpoint.pt"):
        flip_bytes(run_copy / name)
    res = runner.invoke(app, ["eval", str(run_copy / "best.pt"), str(paired_store), "--device", "cpu"])
    assert res.exit_code == 2, res.output
    assert "sha256" in res.stderr and "best.pt" in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1
    before = files_of(run_copy)
    res = cli_fit(paired_store, run_copy, "--resume", "--epochs", "2")
    assert res.exit_code == 2, res.output
    assert "sha256" in res.stderr and "checkpoint.pt" in res.stderr
    assert files_of(run_copy) == before


# ------------------------------------------------------------------------------------------ selection split


def test_an_empty_validation_split_is_a_warning_recorded_in_the_metrics(
    paired_store: Path,
    tmp_path: Path,
) -> None:
    store = tmp_path / "noval.zarr"
    shutil.copytree(paired_store, store)
    pair_store(store, "digits", None, val_fraction=0.0, seed=0)
    run = tmp_path / "run"
    res = cli_fit(store, run, *NON_DEFAULT, "--epochs", "2")
    assert res.exit_code == 0, res.output
    assert "warning:" in res.stderr and "no validation samples" in res.stderr
    assert "selected on training accuracy" in res.stderr
    rows = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["selected_on"] for r in rows] == ["train", "train"]
    assert all(r.get("val_acc") is None for r in rows)
    summary = json.loads(res.stdout.replace("\n", " "))  # the console wraps the line at spaces
    assert summary["selected_on"] == "train"
    # a run with a validation split says so
    fit(cfg_for(paired_store, tmp_path / "val", method="scratch", epochs=1, max_steps_per_epoch=1),
        progress=False)  # fmt: skip
    row = json.loads((tmp_path / "val" / "metrics.jsonl").read_text().splitlines()[0])
    assert row["selected_on"] == "val"


def test_the_results_table_says_when_an_epoch_was_selected_on_training_accuracy(capsys) -> None:
    from tmkt_train.cli import print_results_table
    from tmkt_train.pipeline import aggregate

    rows = [
        {"run": "a", "method": "tmkt", "seed": 1, "test_acc_at_best": 0.5, "wall_s": 1.0, "selected_on": "train"},
        {"run": "b", "method": "scratch", "seed": 1, "test_acc_at_best": 0.4, "wall_s": 1.0, "selected_on": "val"},
    ]  # fmt: skip
    agg = aggregate(rows)
    assert [r["selected_on"] for r in agg] == ["train", "val"]
    print_results_table(agg, "title")
    out = capsys.readouterr().out
    assert "selected on training accuracy" in out
    print_results_table(aggregate(rows[1:]), "title")
    assert "selected on training accuracy" not in capsys.readouterr().out


def test_checkpoint_holds_the_store_identity(run_copy: Path, paired_store: Path) -> None:
    from tmkt_data.pairing import read_pairs

    meta = torch.load(run_copy / "checkpoint.pt", weights_only=False)["meta"]
    assert meta["store"] == str(paired_store.resolve())
    assert meta["pairing_id"] == read_pairs(paired_store).attrs["pairing_id"]
