"""The store's bookkeeping layout: zarr-python iterates a converted and paired store without a warning,
the completion records are zarr-readable (byte for byte zarr-python's chunks), and a store written
before the records array (records as ``_tmkt/shards/<k>.json``) still reads, verifies, resumes,
pairs and trains."""

from __future__ import annotations

import ast
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import zarr
from conftest import make_nmnist_tree
from test_convert import assert_same_store

from tmkt_data import FrameDataset
from tmkt_data.convert import ConvertOptions, convert
from tmkt_data.pairing import pair_store, read_pairs
from tmkt_data.store import (
    StoreGeometry,
    completed_shards,
    create_store,
    file_sha256,
    open_store,
    read_record,
    record_path,
    shard_file,
    verify_store,
    write_shard,
)
from tmkt_data.store.records import encode_record

OPTS = ConvertOptions(frames=3, shard_samples=4)
CHECK = "import zarr; g = zarr.open_group({!r}, mode='r'); list(g.members()); list(g.members(max_depth=None))"


@pytest.fixture(scope="module")
def paired(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A converted (2 train + 1 test N-MNIST-like recordings per digit) and paired store."""
    base = tmp_path_factory.mktemp("layout")
    store = base / "store.zarr"
    convert("nmnist", make_nmnist_tree(base / "raw", per_digit=2), store, OPTS)
    pair_store(store, "digits", None, val_fraction=0.0)
    return store


def old_layout(src: Path, dst: Path) -> Path:
    """A copy of ``src`` laid out as stores were before the records array: ``_tmkt`` a group with
    the record files ``_tmkt/shards/<k:06d>.json`` (read back here with plain zarr)."""
    shutil.copytree(src, dst)
    records = zarr.open_group(str(dst), mode="r")["_tmkt/shard_records"]
    texts = [str(records[k]) for k in range(records.shape[0])]
    shutil.rmtree(dst / "_tmkt")
    zarr.open_group(str(dst), mode="r+").create_group(
        "_tmkt", attributes={"about": "tmkt bookkeeping: per-shard completion records"}
    )
    (dst / "_tmkt" / "shards").mkdir()
    for k, text in enumerate(texts):
        (dst / "_tmkt" / "shards" / f"{k:06d}.json").write_text(text)
    return dst


def test_zarr_python_iterates_the_store_without_warnings(paired: Path) -> None:
    res = subprocess.run(
        [sys.executable, "-W", "error", "-c", CHECK.format(str(paired))], capture_output=True
    )
    assert res.returncode == 0, res.stderr.decode()[-2000:]
    g = open_store(paired)
    key = g.attrs["params_hash"]
    records = zarr.open_group(str(paired), mode="r")["_tmkt/shard_records"]
    assert records.shape == (g.attrs["n_shards"],)
    for k in range(records.shape[0]):
        rec = json.loads(str(records[k]))  # plain zarr reads a record
        assert rec == read_record(paired, k)
        assert rec["params_hash"] == key and rec["shard_sha256"] == file_sha256(shard_file(paired, k))
    assert not (paired / "_tmkt" / "shards").exists()


def test_record_chunks_are_zarr_python_bytes(tmp_path: Path) -> None:
    text = json.dumps({"shard": 1, "samples": [{"sample_id": "Öl/é", "labels": 3}]}, ensure_ascii=False)
    store = tmp_path / "s.zarr"
    geo = StoreGeometry(6, (2, 2, 3, 3), "uint8", 4)
    create_store(store, geo, {"dataset": "x", "classes": ["a"]})
    theirs = zarr.open_group(str(tmp_path / "z.zarr"), mode="w", zarr_format=3)
    arr = theirs.create_array(
        "r", shape=(2,), chunks=(1,), dtype=str, compressors=None, fill_value="", dimension_names=("shard",)
    )
    arr[1] = text
    assert encode_record(text) == (tmp_path / "z.zarr" / "r" / "c" / "1").read_bytes()
    ours = json.loads((store / "_tmkt" / "shard_records" / "zarr.json").read_text())
    meta = json.loads((tmp_path / "z.zarr" / "r" / "zarr.json").read_text())
    assert {k: v for k, v in ours.items() if k != "attributes"} == {
        k: v for k, v in meta.items() if k != "attributes"
    }
    write_shard(store, 1, np.ones((2, 2, 2, 3, 3), np.uint8), [{"sample_id": "é"}] * 2, "key")
    assert record_path(store, 1) == store / "_tmkt" / "shard_records" / "c" / "1"
    back = zarr.open_group(str(store), mode="r")["_tmkt/shard_records"][:]
    assert back[0] == "" and json.loads(back[1])["samples"][0]["sample_id"] == "é"
    assert read_record(store, 0) is None and read_record(store, 1)["params_hash"] == "key"
    (store / "_tmkt" / "shard_records" / "c" / "1").write_bytes(encode_record(text)[:-3])  # torn
    assert read_record(store, 1) is None


def test_old_layout_store_reads_verifies_pairs_and_trains(paired: Path, tmp_path: Path) -> None:
    old = old_layout(paired, tmp_path / "old.zarr")
    n_shards = open_store(old).attrs["n_shards"]
    assert record_path(old, 0) == old / "_tmkt" / "shards" / "000000.json"
    assert verify_store(old) == []
    assert completed_shards(old, n_shards, open_store(old).attrs["params_hash"]) == set(range(n_shards))
    assert read_record(old, 1) == read_record(paired, 1)
    (old / "_tmkt" / "shards" / "000001.json").write_text('{"shard": 1, "params')  # torn
    assert any("shard 1: completion record" in p for p in verify_store(old))
    (old / "_tmkt" / "shards" / "000001.json").write_text(json.dumps(read_record(paired, 1)))
    a, b = FrameDataset(paired, "train"), FrameDataset(old, "train")
    assert len(a) == len(b) > 0
    np.testing.assert_array_equal(a[len(a) - 1][0], b[len(b) - 1][0])
    np.testing.assert_array_equal(read_pairs(old).dvs["train"], read_pairs(paired).dvs["train"])
    pair_store(old, "digits", None, val_fraction=0.2)  # re-pairing an old store
    assert len(read_pairs(old).dvs["val"]) > 0

    from tmkt_train.config import make_config
    from tmkt_train.trainer import fit

    cfg = make_config(
        store=str(old), out=str(tmp_path / "run"), model="demo", method="scratch", epochs=1,
        batch_size=8, num_workers=0, max_steps_per_epoch=2,
    )  # fmt: skip
    assert fit(cfg, progress=False)["epochs"] == 1


def test_resuming_an_old_layout_store_keeps_its_record_files(paired: Path, tmp_path: Path) -> None:
    """A conversion begun before the records array resumes in the old layout and ends in the same store."""
    tree = make_nmnist_tree(tmp_path / "raw", per_digit=2)
    old = old_layout(paired, tmp_path / "old.zarr")
    shutil.rmtree(old / "rgb")
    shutil.rmtree(old / "pairs")
    zarr.open_group(str(old), mode="r+").attrs["status"] = "in_progress"
    (old / "_tmkt" / "shards" / "000002.json").unlink()
    shard_file(old, 2).unlink()
    res = convert("nmnist", tree, old, OPTS)
    assert res.shards_done_before == res.shards_total - 1
    assert (old / "_tmkt" / "shards" / "000002.json").is_file()
    assert not (old / "_tmkt" / "shard_records").exists()
    assert verify_store(old) == []
    assert_same_store(paired, old)


def test_only_the_store_package_imports_zarr() -> None:
    """Nothing outside ``tmkt_data/store/`` opens Zarr: the store package owns every byte of a store."""
    root = Path(__file__).resolve().parents[1]
    offenders = []
    for pkg in ("tmkt_data", "tmkt_train"):
        for path in sorted((root / pkg).rglob("*.py")):
            if (root / "tmkt_data" / "store") in path.parents:
                continue
            for node in ast.walk(ast.parse(path.read_text())):
                names = []
                if isinstance(node, ast.Import):
                    names = [a.name for a in node.names]
                elif isinstance(node, ast.ImportFrom) and node.module:
                    names = [node.module]
                if any(n == "zarr" or n.startswith("zarr.") for n in names):
                    offenders.append(f"{path.relative_to(root)}:{node.lineno}")
    assert offenders == []
