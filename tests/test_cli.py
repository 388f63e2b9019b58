"""Command-line behaviour: inspect (table and JSON), demo, clear one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from conftest import REAL_AEDAT4, REAL_NMNIST_TONIC, require_real
from typer.testing import CliRunner

from tmkt_data.cli import app
from tmkt_train.cli import app as train_app

runner = CliRunner()


def test_inspect_json_real_nmnist() -> None:
    path = require_real(REAL_NMNIST_TONIC)
    res = runner.invoke(app, ["inspect", str(path), "--json"])
    assert res.exit_code == 0, res.output
    info = json.loads(res.stdout)
    assert info["format"] == "atis_bin"
    assert info["events"] == 4325
    assert info["on"] == 2145 and info["off"] == 2180
    assert info["sensor_size"] == [34, 34]
    assert info["duration_s"] == pytest.approx((311_175 - 654) / 1e6)
    assert info["events_per_s"] == pytest.approx(4325 / ((311_175 - 654) / 1e6))


def test_inspect_table_real_aedat4() -> None:
    path = require_real(REAL_AEDAT4)
    res = runner.invoke(app, ["inspect", str(path)])
    assert res.exit_code == 0, res.output
    assert "aedat4" in res.stdout and "111,954" in res.stdout and "320" in res.stdout


@pytest.mark.parametrize(
    ("name", "content"),
    [
        ("garbage.aedat4", b"not an aedat file at all" * 10),
        ("empty.bin", b""),
        ("odd.bin", b"\x01\x02\x03\x04\x05\x06\x07"),
        ("notes.txt", b"hello"),
        ("trunc.aedat", b"#!AER-DAT2.0\r\n# AEChip: ch.unizh.ini.jaer.chip.retina.DVS128\r\n\x00\x00\x01"),
    ],
)
def test_inspect_bad_file_is_one_line_exit_2(tmp_path: Path, name: str, content: bytes) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    res = runner.invoke(app, ["inspect", str(path)])
    assert res.exit_code == 2
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, res.stderr
    assert name in lines[0] and "Traceback" not in res.output


def test_inspect_missing_file(tmp_path: Path) -> None:
    res = runner.invoke(app, ["inspect", str(tmp_path / "nope.bin")])
    assert res.exit_code == 2
    assert "nope.bin" in res.stderr and "not found" in res.stderr


def test_demo_writes_reads_and_bins_every_format(tmp_path: Path) -> None:
    res = runner.invoke(app, ["demo", "--out", str(tmp_path), "--frames", "5"])
    assert res.exit_code == 0, res.output
    assert "MISMATCH" not in res.stdout
    files = sorted(p.name for p in tmp_path.iterdir())
    assert len(files) >= 6
    for suffix in (".aedat", ".bin", ".npz", ".h5", ".mat"):
        assert any(f.endswith(suffix) for f in files)
    # every written file inspects to the same count as the demo printed
    from tmkt_data import read_events, to_frames

    for f in files:
        rec = read_events(tmp_path / f)
        frames = to_frames(rec.events, rec.sensor_size, n_time_bins=5, remainder="last")
        assert int(frames.sum()) == len(rec)  # "last" keeps every event
        assert np.all(np.diff(rec.events["t"]) >= 0)


def test_train_prints_help() -> None:
    res = runner.invoke(train_app, ["--help"])
    assert res.exit_code == 0
    assert "Time-step Mixup" in res.stdout
