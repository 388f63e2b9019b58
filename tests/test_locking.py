"""One writer per store: the <store>.lock file taken by convert and pair."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tmkt_data.cli import app
from tmkt_data.convert import ConvertOptions, convert
from tmkt_data.store import StoreLockedError, lock_path, store_lock

runner = CliRunner()


def write_lock(store: Path, pid: int, host: str | None = None) -> Path:
    lock = lock_path(store)
    lock.write_text(
        json.dumps({"pid": pid, "host": host or socket.gethostname(), "action": "test", "started": "now"})
    )
    return lock


def test_second_writer_is_refused_and_the_lock_goes_away(tmp_path: Path) -> None:
    store = tmp_path / "s.zarr"
    with store_lock(store, "first") as lock:
        assert lock == tmp_path / "s.zarr.lock" and json.loads(lock.read_text())["pid"] == os.getpid()
        with pytest.raises(StoreLockedError, match=r"in use by 'first' \(pid \d+ on .*s\.zarr\.lock"):
            with store_lock(store, "second"):
                pass  # pragma: no cover
    assert not lock_path(store).exists()
    with pytest.raises(RuntimeError), store_lock(store, "failing"):
        raise RuntimeError("boom")
    assert not lock_path(store).exists()  # released on errors too


def test_lock_of_a_live_process_is_respected(tmp_path: Path, live_pid: int) -> None:
    store = tmp_path / "s.zarr"
    write_lock(store, live_pid)
    with pytest.raises(StoreLockedError, match=f"pid {live_pid}"):
        with store_lock(store, "me"):
            pass  # pragma: no cover
    assert json.loads(lock_path(store).read_text())["pid"] == live_pid  # not removed by the loser


def test_lock_of_a_dead_process_is_taken_over(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    store = tmp_path / "s.zarr"
    write_lock(store, int(proc.stdout))
    with store_lock(store, "me") as lock:
        assert json.loads(lock.read_text())["pid"] == os.getpid()
    assert not lock.exists()


def test_lock_from_another_host_is_never_guessed_stale(tmp_path: Path) -> None:
    store = tmp_path / "s.zarr"
    write_lock(store, 1, host="elsewhere.example")
    with pytest.raises(StoreLockedError, match="on elsewhere.example"):
        with store_lock(store, "me"):
            pass  # pragma: no cover


def test_unreadable_lock_is_stale_only_when_old(tmp_path: Path) -> None:
    store = tmp_path / "s.zarr"
    lock = lock_path(store)
    lock.write_text("")  # as seen while another process is writing it
    with pytest.raises(StoreLockedError):
        with store_lock(store, "me"):
            pass  # pragma: no cover
    old = time.time() - 60
    os.utime(lock, (old, old))
    with store_lock(store, "me"):
        pass
    assert not lock.exists()


def test_convert_and_pair_refuse_a_store_in_use(tmp_path: Path, live_pid: int) -> None:
    from test_convert import make_nmnist_tree

    tree = make_nmnist_tree(tmp_path / "raw", per_digit=1)
    store = tmp_path / "n.zarr"
    convert("nmnist", tree, store, ConvertOptions(frames=3))
    write_lock(store, live_pid)
    res = runner.invoke(app, ["convert", "nmnist", str(tree), str(store), "--frames", "3", "--overwrite"])
    assert res.exit_code == 2
    assert f"in use by 'test' (pid {live_pid}" in res.output and "Traceback" not in res.output
    res = runner.invoke(app, ["pair", str(store), "digits", "-"])
    assert res.exit_code == 2 and f"pid {live_pid}" in res.output
    lock_path(store).unlink()
    res = runner.invoke(app, ["pair", str(store), "digits", "-"])  # digits classes 0-9 match N-MNIST's
    assert res.exit_code == 0, res.output
    assert not lock_path(store).exists()
