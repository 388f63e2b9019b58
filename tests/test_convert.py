"""tmkt-data convert: store contents against to_frames, resume, dask cluster, bad files, verify, show."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import zarr
from conftest import make_nmnist_tree
from typer.testing import CliRunner

from tmkt_data import read_events, to_frames
from tmkt_data.cli import app
from tmkt_data.convert import ConvertError, ConvertOptions, convert
from tmkt_data.store import StoreError, file_sha256, open_store, shard_file, store_summary, verify_store

runner = CliRunner()


@pytest.fixture()
def tree(tmp_path: Path) -> Path:
    return make_nmnist_tree(tmp_path / "raw")


OPTS = ConvertOptions(frames=5, split_by="number", remainder="last", shard_samples=4)


def arrays_of(store: Path) -> dict[str, np.ndarray]:
    g = zarr.open_group(str(store), mode="r")
    return {name: np.asarray(arr[:]) for name, arr in g.arrays()}


def assert_same_store(a: Path, b: Path) -> None:
    xa, xb = arrays_of(a), arrays_of(b)
    assert sorted(xa) == sorted(xb)
    for name in xa:
        np.testing.assert_array_equal(xa[name], xb[name], err_msg=name)
    ga, gb = zarr.open_group(str(a), mode="r").attrs, zarr.open_group(str(b), mode="r").attrs
    assert ga["params_hash"] == gb["params_hash"]


def test_store_frames_equal_to_frames_on_each_file(tree: Path, tmp_path: Path) -> None:
    out = tmp_path / "nmnist.zarr"
    res = convert("nmnist", tree, out, OPTS)
    assert res.files_failed == 0
    g = open_store(out)
    ids = [str(s) for s in g["sample_id"][:]]
    assert ids == sorted(ids)
    frames = g["frames"]
    assert frames.shape[1:] == (5, 2, 34, 34) and frames.dtype == np.uint16
    for i, sid in enumerate(ids):
        src = tree / str(g["source_path"][i])
        rec = read_events(src)
        expect = to_frames(rec.events, (34, 34), n_event_bins=5, remainder="last", dtype=np.uint16)
        np.testing.assert_array_equal(frames[i], expect, err_msg=sid)
        assert int(g["n_events"][i]) == len(rec) == int(expect.sum())
        assert str(g["source_sha256"][i]) == file_sha256(src)
        assert int(g["source_bytes"][i]) == src.stat().st_size
        folder, digit, _ = sid.split("/")
        assert int(g["labels"][i]) == int(digit)
        assert str(g["split"][i]) == {"Train": "train", "Test": "test"}[folder]
    assert g.attrs["classes"] == [str(d) for d in range(10)]
    assert g.attrs["params"]["conversion"]["frames"] == 5
    assert verify_store(out) == []


def test_resize_bilinear_matches_torch_interpolate(tree: Path, tmp_path: Path) -> None:
    out = tmp_path / "r.zarr"
    opts = ConvertOptions(frames=4, split_by="time", remainder="drop", size=(16, 16), dtype="float32")
    convert("nmnist", tree, out, opts)
    g = open_store(out)
    src = tree / str(g["source_path"][3])
    counts = to_frames(read_events(src).events, (34, 34), n_time_bins=4, remainder="drop")
    expect = F.interpolate(torch.from_numpy(counts).float(), size=(16, 16), mode="bilinear").numpy()
    np.testing.assert_allclose(g["frames"][3], expect, rtol=1e-6, atol=1e-6)


def test_interrupted_run_resumes_to_identical_store(tree: Path, tmp_path: Path, monkeypatch) -> None:
    ref = tmp_path / "ref.zarr"
    convert("nmnist", tree, ref, OPTS)

    import tmkt_data.convert as conv

    real = conv.convert_shard
    calls = {"n": 0}

    def crashing(job):
        calls["n"] += 1
        if calls["n"] == 3:  # a crash half way through writing shard data: torn shard file, no record
            sf = shard_file(Path(job.store), job.shard)
            sf.parent.mkdir(parents=True, exist_ok=True)
            sf.write_bytes(b"\x00partial")
            raise KeyboardInterrupt
        return real(job)

    out = tmp_path / "resumed.zarr"
    monkeypatch.setattr(conv, "convert_shard", crashing)
    with pytest.raises(KeyboardInterrupt):
        convert("nmnist", tree, out, OPTS, workers=1)
    with pytest.raises(StoreError, match="did not finish"):
        open_store(out)
    monkeypatch.setattr(conv, "convert_shard", real)
    res = convert("nmnist", tree, out, OPTS)
    assert res.shards_done_before == 2
    assert_same_store(ref, out)
    assert verify_store(out) == []


@pytest.mark.slow
def test_sigkill_then_rerun_gives_identical_store(tree: Path, tmp_path: Path) -> None:
    ref = tmp_path / "ref.zarr"
    convert("nmnist", tree, ref, ConvertOptions(frames=5, shard_samples=2))
    out = tmp_path / "killed.zarr"
    exe = [sys.executable, "-m", "tmkt_data.cli", "convert", "nmnist", str(tree), str(out), "--frames", "5"]
    exe += ["--shard-samples", "2", "--workers", "1"]
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1]))
    proc = subprocess.Popen(exe, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    records = out / "_tmkt" / "shard_records" / "c"  # chunk k: shard k's completion record
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        if records.is_dir() and len(list(records.glob("[0-9]*"))) >= 2:
            break
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    res = subprocess.run(exe, env=env, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    assert_same_store(ref, out)


@pytest.mark.slow
def test_local_cluster_equals_threads(tree: Path, tmp_path: Path) -> None:
    from distributed import Client, LocalCluster

    ref = tmp_path / "threads.zarr"
    convert("nmnist", tree, ref, OPTS, workers=2)
    out = tmp_path / "cluster.zarr"
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        with Client(cluster) as client:
            convert("nmnist", tree, out, OPTS, scheduler=client)
    assert_same_store(ref, out)


def test_corrupt_file_is_skipped_and_recorded(tree: Path, tmp_path: Path) -> None:
    bad = tree / "Train" / "7" / "00001.bin"
    bad.write_bytes(bad.read_bytes()[:-3])  # not a multiple of 5 bytes any more
    out = tmp_path / "s.zarr"
    res = runner.invoke(
        app, ["convert", "nmnist", str(tree), str(out), "--frames", "3", "--shard-samples", "4"]
    )
    assert res.exit_code == 1
    assert "Train/7/00001" in res.stdout and "failed" in res.stdout
    g = open_store(out)
    fails = g.attrs["failures"]
    assert [f["sample_id"] for f in fails] == ["Train/7/00001"]
    assert "multiple of 5" in fails[0]["reason"] or "byte" in fails[0]["reason"]
    valid = np.asarray(g["valid"][:])
    assert valid.sum() == len(valid) - 1
    i = int(np.flatnonzero(~valid)[0])
    assert not np.any(g["frames"][i])
    summary = store_summary(out)
    assert summary["valid_samples"] == len(valid) - 1


def test_on_error_fail_stops_with_clear_message(tree: Path, tmp_path: Path) -> None:
    (tree / "Test" / "2" / "00001.bin").write_bytes(b"\x01\x02")
    out = tmp_path / "s.zarr"
    res = runner.invoke(
        app, ["convert", "nmnist", str(tree), str(out), "--frames", "3", "--on-error", "fail"]
    )
    assert res.exit_code == 2
    assert "Test/2/00001.bin" in res.stderr and "Traceback" not in res.output


def test_parameter_mismatch_refused_then_overwritten(tree: Path, tmp_path: Path) -> None:
    out = tmp_path / "s.zarr"
    convert("nmnist", tree, out, OPTS)
    before = arrays_of(out)["frames"]
    other = ConvertOptions(frames=3, split_by="time", remainder="drop", shard_samples=4)
    with pytest.raises(ConvertError, match="other parameters"):
        convert("nmnist", tree, out, other)
    np.testing.assert_array_equal(arrays_of(out)["frames"], before)  # untouched
    convert("nmnist", tree, out, other, overwrite=True)
    g = open_store(out)
    assert g["frames"].shape[1] == 3 and g.attrs["params"]["conversion"]["split_by"] == "time"


def test_rerun_of_complete_store_redoes_nothing(tree: Path, tmp_path: Path) -> None:
    out = tmp_path / "s.zarr"
    first = convert("nmnist", tree, out, OPTS)
    again = convert("nmnist", tree, out, OPTS)
    assert again.shards_done_before == first.shards_total and again.files_converted == 0


def test_refuses_to_touch_a_folder_that_is_not_a_store(tree: Path, tmp_path: Path) -> None:
    out = tmp_path / "precious"
    out.mkdir()
    (out / "thesis.tex").write_text("do not delete")
    with pytest.raises(ConvertError, match="not a tmkt store"):
        convert("nmnist", tree, out, OPTS, overwrite=True)
    assert (out / "thesis.tex").read_text() == "do not delete"


def test_verify_catches_a_flipped_byte(tree: Path, tmp_path: Path) -> None:
    out = tmp_path / "s.zarr"
    convert("nmnist", tree, out, OPTS)
    assert runner.invoke(app, ["verify", str(out)]).exit_code == 0
    sf = shard_file(out, 1)
    data = bytearray(sf.read_bytes())
    data[len(data) // 2] ^= 0x10
    sf.write_bytes(bytes(data))
    res = runner.invoke(app, ["verify", str(out)])
    assert res.exit_code == 1
    assert "shard 1" in res.stderr


def test_inspect_and_show_store(tree: Path, tmp_path: Path) -> None:
    out = tmp_path / "s.zarr"
    convert("nmnist", tree, out, OPTS)
    res = runner.invoke(app, ["inspect", str(out), "--json"])
    assert res.exit_code == 0, res.output
    info = json.loads(res.stdout)
    assert info["dataset"] == "nmnist" and info["frame_shape"] == [5, 2, 34, 34]
    assert sum(info["splits"].values()) == info["samples"]
    assert info["compression_ratio"] > 1
    for suffix in (".png", ".gif"):
        pic = tmp_path / f"frames{suffix}"
        res = runner.invoke(app, ["show", str(out), "0", "--out", str(pic)])
        assert res.exit_code == 0, res.output
        from PIL import Image

        with Image.open(pic) as im:
            if suffix == ".gif":
                assert im.n_frames == 5
            else:
                assert im.width > 4 * im.height  # a strip of 5 frames
    res = runner.invoke(app, ["show", str(out), "999"])
    assert res.exit_code == 2 and "outside" in res.stderr


def test_bad_options_are_one_line(tree: Path, tmp_path: Path) -> None:
    res = runner.invoke(app, ["convert", "nmnist", str(tree), str(tmp_path / "s"), "--split-by", "events"])
    assert res.exit_code == 2 and "--split-by" in res.stderr
    res = runner.invoke(app, ["convert", "imagenet", str(tree), str(tmp_path / "s")])
    assert res.exit_code == 2 and "unknown dataset 'imagenet'" in res.stderr
    res = runner.invoke(app, ["convert", "cifar10dvs", str(tree), str(tmp_path / "s")])
    assert res.exit_code == 2 and "missing" in res.stderr
