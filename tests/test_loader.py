"""tmkt_train.batches: StoreBatches coverage, windows, determinism, workers, ranks, class mixing, errors."""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
import zarr
from conftest import set_store_attrs
from torch.utils.data import DataLoader

from tmkt_data.convert import ConvertOptions, convert
from tmkt_data.demo import sweeping_bar
from tmkt_data.formats import atis_bin
from tmkt_data.store import (
    ShardReader,
    StoreError,
    StoreGeometry,
    create_store,
    finalize_store,
    open_store,
    read_record,
    shard_file,
    verify_store,
    write_shard,
)
from tmkt_data.store.checksums import crc32c
from tmkt_data.store.frames import shard_chunk_crc32c
from tmkt_data.store.records import write_record
from tmkt_train.batches import StoreBatches, epoch_order, n_batches, rank_slice

SHARD = 4
TEST_SAMPLES = 20  # the store's first 5 shards; then 8 train samples per digit, 2 shards each


def make_tree(root: Path, train_per_digit: int = 8, test_per_digit: int = 2) -> Path:
    """A small N-MNIST tree (34x34 sweeping bars) with one unreadable (empty) file.

    Sample ids sort by folder, then digit: the store holds the classes in runs, so
    each train shard of 4 samples holds one class (real datasets' shards mostly do).
    """
    for folder, n in (("Train", train_per_digit), ("Test", test_per_digit)):
        for d in range(10):
            (root / folder / str(d)).mkdir(parents=True, exist_ok=True)
            for i in range(n):
                seed = 1000 * (folder == "Test") + 10 * d + i
                ev = sweeping_bar((34, 34), duration_us=60_000 + 7_000 * i, seed=seed)
                atis_bin.write(root / folder / str(d) / f"{i + 1:05d}.bin", ev, (34, 34))
    (root / "Train" / "4" / "00008.bin").write_bytes(b"")  # fails to convert: valid=False
    return root


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("loader")
    out = tmp / "nmnist.zarr"
    opts = ConvertOptions(frames=4, split_by="number", remainder="last", dtype="uint8", shard_samples=SHARD)
    res = convert("nmnist", make_tree(tmp / "raw"), out, opts, workers=2)
    assert res.files_failed == 1
    return out


@pytest.fixture(scope="module")
def arrays(store: Path) -> dict[str, np.ndarray]:
    g = zarr.open_group(str(store), mode="r")
    return {
        "frames": g["frames"][:],
        "labels": g["labels"][:].astype(np.int64),
        "split": np.asarray(g["split"][:]).astype(object).astype(str),
        "valid": g["valid"][:],
    }


def valid_of(arrays: dict[str, np.ndarray], split: str | None = None) -> np.ndarray:
    keep = arrays["valid"] if split is None else arrays["valid"] & (arrays["split"] == split)
    return np.flatnonzero(keep)


def order_of(items) -> np.ndarray:
    return np.concatenate([np.asarray(b["index"]) for b in items])


def check_items(items, arrays: dict[str, np.ndarray]) -> None:
    for b in items:
        assert all(isinstance(v, torch.Tensor) for v in b.values())
        idx = b["index"].numpy()
        np.testing.assert_array_equal(b["frames"].numpy(), arrays["frames"][idx])
        np.testing.assert_array_equal(b["labels"].numpy(), arrays["labels"][idx])
        assert b["labels"].dtype == torch.int64 and b["index"].dtype == torch.int64


def test_store_classes_are_sorted(arrays: dict) -> None:
    """The premise of the mixing test: each train shard of the fixture holds one class."""
    assert np.all(arrays["split"][TEST_SAMPLES:] == "train") and len(arrays["labels"]) == TEST_SAMPLES + 80
    labels = arrays["labels"][TEST_SAMPLES:].reshape(-1, SHARD)
    assert all(len(set(r.tolist())) == 1 for r in labels)


@pytest.mark.parametrize("num_workers", [0, 2])
@pytest.mark.parametrize("shuffle", [True, False])
def test_every_index_once_per_epoch(store: Path, arrays: dict, num_workers: int, shuffle: bool) -> None:
    want = valid_of(arrays)
    ds = StoreBatches(store, want, 5, shuffle=shuffle, seed=3, window_shards=2)
    assert ds.window == 10  # 2 shards of 4, rounded up to whole batches of 5
    for epoch in (0, 1):
        ds.set_epoch(epoch)
        items = list(DataLoader(ds, batch_size=None, num_workers=num_workers))
        got = order_of(items)
        assert np.array_equal(np.sort(got), want)  # exactly once each
        assert len(items) == len(ds) == n_batches(want.size, 5, 10)
        assert sorted(len(b["index"]) for b in items)[1:] == [5] * (len(items) - 1)  # one partial batch
        assert all(
            b["frames"].dtype == torch.uint8 and b["frames"].shape[1:] == (4, 2, 34, 34) for b in items
        )
        check_items(items, arrays)
        if num_workers:
            assert all(b["frames"].is_shared() for b in items)  # shared memory, no copy to the main process
        # workers yield the same batches as one process (whole windows, each to one worker)
        assert {tuple(b["index"].tolist()) for b in items} == {tuple(b.tolist()) for b in ds.batches()}
        if num_workers == 0:
            assert np.array_equal(got, np.concatenate(ds.batches()))
        if not shuffle:
            for w in ds.windows():  # evaluation: index order inside each window
                assert np.array_equal(np.concatenate(w), np.sort(np.concatenate(w)))


def test_window_semantics(store: Path, arrays: dict) -> None:
    idx = valid_of(arrays)
    ds = StoreBatches(store, idx, 6, shuffle=True, seed=5, rank=1, world_size=2, window_shards=3)
    assert ds.window == 12
    ds.set_epoch(2)
    part = rank_slice(epoch_order(idx, SHARD, 5, 2, True), 1, 2)
    wins = ds.windows()
    assert len(wins) == -(-part.size // 12)
    for w, batches in enumerate(wins):  # window w: the w-th consecutive chunk of the rank's part
        chunk = part[12 * w : 12 * (w + 1)]
        assert np.array_equal(np.sort(np.concatenate(batches)), np.sort(chunk))
        assert all(len(b) == 6 for b in batches[:-1])
        for b in batches:  # grouped by shard inside a batch
            s = b // SHARD
            assert np.array_equal(s, np.sort(s))
    assert not np.array_equal(np.concatenate([b for w in wins for b in w]), part)  # permuted in windows


def test_order_is_deterministic_and_changes_per_epoch(store: Path, arrays: dict) -> None:
    idx = valid_of(arrays, "train")
    a, b = (StoreBatches(store, idx, 4, shuffle=True, seed=7) for _ in range(2))
    a.set_epoch(2)
    b.set_epoch(2)
    assert np.array_equal(order_of(a), order_of(b))
    assert np.array_equal(order_of(a), order_of(a))  # same epoch again: same order
    b.set_epoch(3)
    assert not np.array_equal(order_of(a), order_of(b))
    c = StoreBatches(store, idx, 4, shuffle=True, seed=8)
    c.set_epoch(2)
    assert not np.array_equal(order_of(a), order_of(c))
    orders = [order_of(DataLoader(a, batch_size=None, num_workers=2)) for _ in range(2)]
    assert np.array_equal(orders[0], orders[1])  # deterministic with workers too
    assert np.array_equal(a.batches(2)[0], a.batches()[0]) and not np.array_equal(
        np.concatenate(a.batches(3)), np.concatenate(a.batches())
    )


def test_ranks_partition_the_samples(store: Path, arrays: dict) -> None:
    want = valid_of(arrays)
    for world in (2, 3):
        parts, counts = [], []
        for rank in range(world):
            ds = StoreBatches(
                store, want, 4, shuffle=True, seed=4, rank=rank, world_size=world, window_shards=2
            )
            ds.set_epoch(1)
            items = list(ds)
            assert len(items) == len(ds)
            counts.append(len(items))
            parts.append(order_of(items))
        allidx = np.concatenate(parts)
        assert allidx.size == len(set(allidx.tolist()))  # no overlap
        assert allidx.size == (want.size // world) * world  # remainder left out
        assert len({p.size for p in parts}) == 1 and len(set(counts)) == 1  # equal steps on every rank
    with pytest.raises(ValueError, match="rank"):
        StoreBatches(store, want, 4, shuffle=True, rank=2, world_size=2)


def test_store_batches_cover_each_sample_once_and_rank_split(store: Path, arrays: dict) -> None:
    """Moved from test_train: a strided subset, worlds of 1 and 2, and epoch_order itself."""
    n = len(arrays["labels"])
    idx = np.arange(0, n, 3)
    for world in (1, 2):
        seen = []
        for rank in range(world):
            ds = StoreBatches(str(store), idx, 5, shuffle=True, seed=1, rank=rank, world_size=world)
            ds.set_epoch(4)
            seen.append(np.concatenate([b["index"].numpy() for b in ds]))
        allseen = np.concatenate(seen)
        assert len(set(allseen.tolist())) == len(allseen)
        assert len(allseen) == (len(idx) // world) * world
        assert len({len(s) for s in seen}) == 1  # equal steps on every rank
    a, b = epoch_order(idx, 16, 1, 0, True), epoch_order(idx, 16, 1, 1, True)
    assert sorted(a.tolist()) == sorted(idx.tolist()) and not np.array_equal(a, b)
    assert np.array_equal(a, epoch_order(idx, 16, 1, 0, True))


def test_batches_mix_classes(store: Path, arrays: dict) -> None:
    """Every shard of the fixture holds one class; batches still mix the whole split's classes,
    whatever the window (the old reader drew a batch from one window's shards only)."""
    idx = valid_of(arrays, "train")
    labels = arrays["labels"]

    def distinct_labels(window_shards: int) -> float:
        ds = StoreBatches(store, idx, 8, shuffle=True, seed=0, window_shards=window_shards)
        per = []
        for epoch in range(5):
            ds.set_epoch(epoch)
            per += [len(set(b["labels"].tolist())) for b in ds if len(b["labels"]) == 8]
        return float(np.mean(per))

    # a uniform draw of 8 of the 79 samples: the expected number of classes in a batch
    counts = np.bincount(labels[idx])
    counts = counts[counts > 0]
    n, k = len(idx), 8
    p_absent = [np.prod([(n - c - j) / (n - j) for j in range(k)]) for c in counts]
    uniform = float(np.sum(1 - np.asarray(p_absent)))
    one_window = distinct_labels(1)  # 8-sample windows: the pass is permuted across all shards
    whole = distinct_labels(100)  # one window holds the pass: shard by shard, then permuted
    print(f"classes per batch of 8: window of 1 shard {one_window:.2f}, one window {whole:.2f}, "
          f"uniform draw {uniform:.2f}")  # fmt: skip
    assert uniform > 5.0
    for got in (one_window, whole):
        assert abs(got - uniform) < 0.6  # 2 classes a batch for a one-shard window before the fix


def test_windows_read_shard_by_shard_only_when_one_holds_the_pass(store: Path, arrays: dict) -> None:
    idx = valid_of(arrays, "train")
    big = StoreBatches(store, idx, 8, shuffle=True, seed=2, window_shards=100)
    small = StoreBatches(store, idx, 8, shuffle=True, seed=2, window_shards=2)
    assert len(big.windows()) == 1 and len(small.windows()) > 1
    by_shard = epoch_order(idx, SHARD, 2, 0, True, by_shard=True)
    assert not np.array_equal(np.sort(by_shard // SHARD), by_shard // SHARD)  # shards in random order
    runs = np.count_nonzero(np.diff(by_shard // SHARD)) + 1
    assert runs == len(np.unique(idx // SHARD))  # each shard's samples in one run
    uniform = epoch_order(idx, SHARD, 2, 0, True)
    assert np.count_nonzero(np.diff(uniform // SHARD)) + 1 > runs
    # the small windows' first window: drawn from the uniform order
    assert np.array_equal(np.sort(np.concatenate(small.windows(0)[0])), np.sort(uniform[: small.window]))
    assert np.array_equal(np.sort(np.concatenate(big.windows(0)[0])), np.sort(idx))


def test_read_ranges_scattered_and_adjacent_chunks(tmp_path: Path) -> None:
    from tmkt_data.store.frames import _read_ranges

    rng = np.random.default_rng(0)
    data = rng.integers(0, 256, 10_000, dtype=np.uint8).tobytes()
    f = tmp_path / "blob"
    f.write_bytes(data)
    cases = [
        ([0, 100, 9000], [100, 50, 1000]),  # adjacent pair, then far away: runs
        ([5000, 10, 30], [10, 20, 5]),  # unsorted, adjacent, sparse
        ([0, 10, 20], [10, 10, 10]),  # dense: one read
        ([200, 200, 9990], [8, 8, 10]),  # the same chunk twice, and the file's last bytes
    ]
    fd = os.open(f, os.O_RDONLY)
    try:
        for starts, lengths in cases:
            st, ln = np.asarray(starts, dtype=np.int64), np.asarray(lengths, dtype=np.int64)
            buf, off = _read_ranges(fd, st, ln)
            assert len(buf) <= 2 * ln.sum()  # never more than twice the chunks' bytes
            for a, n, o in zip(starts, lengths, off.tolist(), strict=True):
                assert buf[o : o + n] == data[a : a + n]
    finally:
        os.close(fd)


def test_zarr_fallback_reads_the_same(store: Path, arrays: dict) -> None:
    ds = StoreBatches(store, valid_of(arrays), 6, shuffle=True, seed=9)
    direct = list(ds)
    assert isinstance(ds.reader, ShardReader)
    assert ds.reader.layout is not None  # tmkt's own layout takes the direct path
    ds.reader.layout = None
    via_zarr = list(ds)
    assert ds.reader._zarr is not None
    for a, b in zip(direct, via_zarr, strict=True):
        assert torch.equal(a["index"], b["index"]) and torch.equal(a["frames"], b["frames"])
    check_items(via_zarr, arrays)
    reader = ShardReader(store, (4, 2, 34, 34), "uint8", SHARD)
    rows = np.array([3, 0, 2])
    np.testing.assert_array_equal(reader.read(1, rows), arrays["frames"][rows + SHARD])


def test_missing_chunks_and_float16_store(tmp_path: Path) -> None:
    """A chunk zarr leaves out of a shard (all fill value: absent from the shard index, read as
    the fill value) and a shard with fewer samples than shard_samples."""
    path = tmp_path / "s.zarr"
    geo = StoreGeometry(n_samples=7, frame_shape=(2, 2, 5, 6), dtype="float16", shard_samples=3)
    create_store(path, geo, {"dataset": "synthetic", "classes": ["a", "b"], "params_hash": "key"})
    rng = np.random.default_rng(0)
    frames = rng.random((7, 2, 2, 5, 6)).astype(np.float16)
    frames[1] = 0  # not written by zarr (equals the fill value)
    for k in range(geo.n_shards):
        a, b = geo.shard_range(k)
        rows = [
            {
                "sample_id": f"s{i}",
                "source_path": f"s{i}",
                "labels": i % 2,
                "split": "train",
                "valid": True,
                "n_events": 1,
                "n_binned": 1,
                "n_saturated": 0,
                "duration_us": 1,
                "source_bytes": 1,
                "source_sha256": "",
            }
            for i in range(a, b)
        ]
        write_shard(path, k, frames[a:b], rows, "key")
    # write_shard stores every chunk; zarr (a store written through zarr, as older tmkt did) leaves
    # out the all-zero sample 1: shard 0 rewritten so, its record's checksums updated to match
    zarr.open_group(str(path), mode="r+")["frames"][0:3] = frames[0:3]
    blob = shard_file(path, 0).read_bytes()
    chunk_sums = shard_chunk_crc32c(blob, geo.shard_samples)
    assert chunk_sums[1] is None and None not in (chunk_sums[0], chunk_sums[2])  # the absent chunk
    record = read_record(path, 0)
    record.update(
        shard_sha256=hashlib.sha256(blob).hexdigest(), shard_crc32c=crc32c(blob), chunk_crc32c=chunk_sums
    )
    write_record(path, 0, record)
    finalize_store(path)
    assert verify_store(path) == []
    reader = ShardReader(path, geo.frame_shape, geo.dtype, geo.shard_samples)
    assert reader.layout is not None  # decoded directly, not through zarr
    np.testing.assert_array_equal(reader.read(0, np.array([1, 2, 0])), frames[[1, 2, 0]])
    np.testing.assert_array_equal(open_store(path)["frames"][:], frames)
    items = list(StoreBatches(path, np.arange(7), 3, shuffle=True, seed=0))
    assert np.array_equal(np.sort(order_of(items)), np.arange(7))
    for b in items:
        assert b["frames"].dtype == torch.float16
        np.testing.assert_array_equal(b["frames"].numpy(), frames[b["index"].numpy()])
        np.testing.assert_array_equal(b["labels"].numpy(), b["index"].numpy() % 2)


def test_errors(store: Path, tmp_path: Path) -> None:
    idx = np.arange(8)
    with pytest.raises(StoreError, match="no such store"):
        StoreBatches(tmp_path / "nope.zarr", idx, 4, shuffle=True)
    for bad, match in (
        ({"batch_size": 0}, "batch_size"),
        ({"window_shards": 0}, "window_shards"),
        ({"seed": -1}, "seed"),
        ({"indices": np.array([0, 10_000])}, "indices"),
    ):
        kw = {"indices": idx, "batch_size": 4, **bad}
        with pytest.raises(ValueError, match=match):
            StoreBatches(store, kw.pop("indices"), kw.pop("batch_size"), shuffle=True, **kw)

    copy = tmp_path / "copy.zarr"
    shutil.copytree(store, copy)
    bad = shard_file(copy, 0)
    data = bytearray(bad.read_bytes())
    data[-10] ^= 0xFF  # inside the shard index
    bad.write_bytes(bytes(data))
    ds = StoreBatches(copy, idx, 4, shuffle=False)
    with pytest.raises(StoreError, match="checksum"):
        list(ds)
    with pytest.raises(StoreError, match="checksum"):  # a DataLoader worker re-raises it as StoreError
        list(DataLoader(ds, batch_size=None, num_workers=1))
    set_store_attrs(copy, status="in_progress")
    with pytest.raises(StoreError, match="did not finish"):
        open_store(copy)
    with pytest.raises(StoreError, match="did not finish"):
        StoreBatches(copy, idx, 4, shuffle=True)
